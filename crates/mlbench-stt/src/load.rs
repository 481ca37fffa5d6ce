//! Loading a Whisper model from whatever `--model` points at, choosing the weight format by
//! what the source holds:
//! - `*.gguf` file: candle's quantized Whisper (config and tokenizer JSON beside it);
//! - `model.bin`: a CTranslate2 / faster-whisper directory ([`crate::ct2`]);
//! - `model.safetensors` (or shards) + `config.json`: a transformers checkpoint.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use mlbench_core::source::{ModelFiles, ModelSource};

use crate::model::{Config, Weights, Whisper};
use crate::tokenizer::WhisperTokenizer;
use crate::transcribe::Transcriber;
use crate::{ct2, Result, SttError};

/// The weight formats we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Hugging Face transformers (`config.json` + `model.safetensors`).
    Transformers,
    /// CTranslate2 / faster-whisper (`model.bin`).
    Ct2,
    /// Candle quantized GGUF.
    Gguf,
}

/// Loads a model and its tokenizer from `files` onto `device` in `dtype`.
pub fn load(files: &ModelFiles, dtype: DType, device: &Device) -> Result<Transcriber> {
    let listing = files.list()?;
    let has = |name: &str| listing.iter().any(|f| f == name);
    let gguf = listing.iter().find(|f| f.ends_with(".gguf")).cloned();
    let format = match (&gguf, has(ct2::MODEL_FILE)) {
        (Some(_), _) => Format::Gguf,
        (None, true) => Format::Ct2,
        (None, false) => Format::Transformers,
    };
    match format {
        Format::Ct2 => {
            let model_bin = files.get(ct2::MODEL_FILE)?;
            for f in [ct2::CONFIG_FILE, ct2::TOKENIZER_FILE] {
                files.get(f)?;
            }
            let dir = model_bin.parent().unwrap_or(Path::new(".")).to_path_buf();
            let ckpt = ct2::load(&dir, dtype, device)?;
            let weights = Weights::from_tensors(ckpt.tensors, dtype, device);
            build(&weights, ckpt.config, &dir.join(ct2::TOKENIZER_FILE), &dir)
        }
        Format::Gguf => {
            let name = gguf.expect("gguf file");
            let path = files.get(&name)?;
            let config = companion(files, &listing, "config")?;
            let tokenizer = companion(files, &listing, "tokenizer")?;
            let config = read_config(&config)?;
            let weights = Weights::from_gguf(&path, device)?;
            build(&weights, config, &tokenizer, &path)
        }
        Format::Transformers => {
            let config_path = files.get("config.json")?;
            let mut config = read_config(&config_path)?;
            if config.suppress_tokens.is_empty() {
                if let Some(generation) = files.get_optional("generation_config.json")? {
                    config.suppress_tokens = read_suppress_tokens(&generation)?;
                }
            }
            let weight_files = safetensors_files(files, &listing)?;
            let tokenizer = files.get("tokenizer.json")?;
            let weights = Weights::from_safetensors(&weight_files, dtype, device)?;
            build(&weights, config, &tokenizer, &config_path)
        }
    }
}

fn build(
    weights: &Weights,
    config: Config,
    tokenizer: &Path,
    origin: &Path,
) -> Result<Transcriber> {
    let tokenizer = WhisperTokenizer::from_file(tokenizer)?;
    let model = Whisper::load(weights, config).map_err(|e| {
        SttError::model(origin, format!("weights do not match a Whisper model: {e}"))
    })?;
    Ok(Transcriber::new(model, tokenizer))
}

/// `config.json` / `tokenizer.json`, or candle's `config-tiny.json` style names beside a GGUF.
fn companion(files: &ModelFiles, listing: &[String], stem: &str) -> Result<PathBuf> {
    if let Some(p) = files.get_optional(&format!("{stem}.json"))? {
        return Ok(p);
    }
    let alt = listing
        .iter()
        .find(|f| f.starts_with(&format!("{stem}-")) && f.ends_with(".json"));
    match (alt, files.source()) {
        (Some(name), _) => Ok(files.get(name)?),
        (None, ModelSource::File(path)) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            let found = std::fs::read_dir(dir)
                .ok()
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{stem}-")) && n.ends_with(".json"))
                });
            found.ok_or_else(|| {
                SttError::model(path, format!("no {stem}.json beside the GGUF file"))
            })
        }
        (None, _) => files.get(&format!("{stem}.json")).map_err(Into::into),
    }
}

fn safetensors_files(files: &ModelFiles, listing: &[String]) -> Result<Vec<PathBuf>> {
    if let Some(index) = files.get_optional("model.safetensors.index.json")? {
        let text = std::fs::read_to_string(&index).map_err(|source| SttError::Io {
            path: index.clone(),
            source,
        })?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| SttError::model(&index, e.to_string()))?;
        let mut names: Vec<String> = json["weight_map"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.dedup();
        return names
            .iter()
            .map(|n| files.get(n).map_err(Into::into))
            .collect();
    }
    if listing.iter().any(|f| f == "model.safetensors")
        || !matches!(files.source(), ModelSource::Hub { .. })
    {
        return Ok(vec![files.get("model.safetensors")?]);
    }
    Err(SttError::InvalidOption(format!(
        "{}: no model.safetensors, model.bin (CTranslate2) or .gguf file found",
        files.source().describe()
    )))
}

/// `suppress_tokens` of a transformers `generation_config.json`.
fn read_suppress_tokens(path: &Path) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(path).map_err(|source| SttError::Io {
        path: path.into(),
        source,
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| SttError::model(path, format!("not a JSON file: {e}")))?;
    Ok(json["suppress_tokens"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().map(|t| t as u32))
                .collect()
        })
        .unwrap_or_default())
}

/// Reads a transformers `config.json` as a Whisper [`Config`].
pub fn read_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|source| SttError::Io {
        path: path.into(),
        source,
    })?;
    serde_json::from_str(&text)
        .map_err(|e| SttError::model(path, format!("not a Whisper config.json: {e}")))
}
