//! CTranslate2 (faster-whisper) Whisper models, read natively.
//!
//! A CTranslate2 model directory holds `model.bin` (all weights, in CTranslate2's own binary
//! format), `config.json` (suppressed tokens, language ids, alignment heads), `tokenizer.json`
//! and a vocabulary file. [`load`] reads such a directory and renames every weight to the key
//! Hugging Face transformers' `WhisperForConditionalGeneration` uses, so the rest of the crate
//! loads one layout whatever the source.
//!
//! # The `model.bin` format (binary versions 4 to 6)
//!
//! Everything is little-endian. A string is a `u16` byte length that counts a trailing NUL,
//! then the bytes and the NUL.
//!
//! ```text
//! u32 binary version · string spec name ("WhisperSpec") · u32 spec revision
//! u32 variable count · per variable:
//!     string name · u8 rank · rank × u32 dims · u8 dtype · u32 byte count · raw data
//! u32 alias count · per alias: string alias · string target
//! ```
//!
//! dtypes are 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16. An i8/i16 weight `W` comes with a float
//! `W_scale` (one value per output row, or a single one): the real weight is `W / W_scale`.
//! An alias `A → T` also makes `A_scale` an alias of `T_scale`. Scalars (rank 0) carry options
//! such as `encoder/num_heads`.
//!
//! # Names
//!
//! | CTranslate2 | transformers |
//! |---|---|
//! | `encoder/conv{1,2}/{weight,bias}` | `model.encoder.conv{1,2}.{weight,bias}` |
//! | `encoder/position_encodings/encodings` | `model.encoder.embed_positions.weight` |
//! | `{enc,dec}oder/layer_N/self_attention/linear_0` (q, k, v fused) | `….layers.N.self_attn.{q,k,v}_proj` |
//! | `{enc,dec}oder/layer_N/self_attention/linear_1` | `….layers.N.self_attn.out_proj` |
//! | `{enc,dec}oder/layer_N/self_attention/layer_norm/{gamma,beta}` | `….layers.N.self_attn_layer_norm.{weight,bias}` |
//! | `decoder/layer_N/attention/linear_0` | `model.decoder.layers.N.encoder_attn.q_proj` |
//! | `decoder/layer_N/attention/linear_1` (k, v fused) | `….encoder_attn.{k,v}_proj` |
//! | `decoder/layer_N/attention/linear_2` | `….encoder_attn.out_proj` |
//! | `decoder/layer_N/attention/layer_norm` | `….encoder_attn_layer_norm` |
//! | `{enc,dec}oder/layer_N/ffn/linear_{0,1}` | `….layers.N.fc{1,2}` |
//! | `{enc,dec}oder/layer_N/ffn/layer_norm` | `….layers.N.final_layer_norm` |
//! | `{enc,dec}oder/layer_norm` | `model.{en,de}coder.layer_norm` |
//! | `decoder/embeddings/weight` | `model.decoder.embed_tokens.weight` |
//! | `decoder/position_encodings/encodings` | `model.decoder.embed_positions.weight` |
//! | `decoder/projection/weight` (an alias of the embeddings) | tied: `proj_out` is not emitted |
//!
//! transformers' `k_proj` has no bias: CTranslate2 stores zeros for it in the fused bias, and
//! the reader drops that slice. (A key bias adds the same amount to every attention score of a
//! query, which softmax cancels, so dropping it is exact in any case.)

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::model::Config;
use crate::{Result, SttError};

/// The weights file of a CTranslate2 model directory.
pub const MODEL_FILE: &str = "model.bin";
/// The CTranslate2 model configuration (suppressed tokens, language ids, alignment heads).
pub const CONFIG_FILE: &str = "config.json";
/// The Hugging Face tokenizer shipped with CTranslate2 Whisper models.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Oldest binary version with typed variables (dtype byte + byte count).
const MIN_BINARY_VERSION: u32 = 4;
/// Newest binary version this reader knows (the one CTranslate2 4.x writes).
const MAX_BINARY_VERSION: u32 = 6;
/// Newest `WhisperSpec` revision this reader knows.
const MAX_WHISPER_REVISION: u32 = 3;
/// Aliases never chain in files CTranslate2 writes; a few hops guard against cycles.
const MAX_ALIAS_HOPS: usize = 8;
/// Highest tensor rank accepted (CTranslate2 uses up to 3 for Whisper).
const MAX_RANK: usize = 8;

/// A CTranslate2 Whisper model read into Hugging Face transformers tensor names.
#[derive(Debug, Clone)]
pub struct Ct2Checkpoint {
    /// Hyper-parameters from the tensor shapes, `model.bin` scalars and `config.json`.
    pub config: Config,
    /// Weights keyed by transformers `WhisperForConditionalGeneration` names
    /// (`model.encoder.conv1.weight`, …), in the requested dtype and on the requested device.
    pub tensors: HashMap<String, Tensor>,
    /// `(decoder layer, head)` pairs whose cross-attention follows the audio (for word timing).
    pub alignment_heads: Vec<(usize, usize)>,
    /// Token ids of the language tokens (`<|en|>`, …), from `config.json`.
    pub lang_ids: Vec<u32>,
}

/// Whether `dir` looks like a CTranslate2 model directory: it holds a `model.bin` file.
///
/// This does not read the file; [`load`] says what is wrong with it, if anything.
pub fn looks_like_ct2(dir: &Path) -> bool {
    dir.join(MODEL_FILE).is_file()
}

/// Reads the CTranslate2 Whisper model in `dir` (`model.bin`, `config.json`, `tokenizer.json`).
///
/// Weights are dequantized (int8/int16) or converted (f16/bf16/f32) to `dtype`, which must be a
/// float type, and placed on `device`.
///
/// # Errors
/// [`SttError::Model`] when a file is missing or `model.bin` is truncated, corrupt, of another
/// architecture or lacks a weight; [`SttError::InvalidOption`] for a non-float `dtype`;
/// [`SttError::Io`] when a file cannot be read.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Ct2Checkpoint> {
    if !matches!(dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64) {
        return Err(SttError::InvalidOption(format!(
            "CTranslate2 weights load as a float dtype (f16, bf16, f32, f64), not {dtype:?}"
        )));
    }
    if !dir.is_dir() {
        return Err(SttError::model(
            dir,
            "not a directory (expected a CTranslate2 model directory)",
        ));
    }
    let model_path = dir.join(MODEL_FILE);
    if !model_path.is_file() {
        return Err(SttError::model(
            dir,
            "no model.bin: not a CTranslate2 model directory",
        ));
    }
    if !dir.join(TOKENIZER_FILE).is_file() {
        return Err(SttError::model(dir, "no tokenizer.json next to model.bin"));
    }
    let ct2_config = read_config(dir)?;
    let bytes = std::fs::read(&model_path).map_err(|source| SttError::Io {
        path: model_path.clone(),
        source,
    })?;
    let file = Ct2File::parse(&bytes).map_err(|m| SttError::model(&model_path, m))?;
    Converter {
        file: &file,
        path: &model_path,
        dtype,
        device,
    }
    .convert(ct2_config)
}

/// The part of CTranslate2's Whisper `config.json` this crate uses.
#[derive(Debug, Default, Deserialize)]
struct Ct2Config {
    #[serde(default)]
    suppress_ids: Option<Vec<u32>>,
    #[serde(default)]
    suppress_ids_begin: Option<Vec<u32>>,
    #[serde(default)]
    lang_ids: Option<Vec<u32>>,
    #[serde(default)]
    alignment_heads: Option<Vec<(usize, usize)>>,
    /// Set by CTranslate2 for AWQ-quantized models, which this reader does not handle.
    #[serde(default)]
    quantization_type: Option<serde_json::Value>,
}

fn read_config(dir: &Path) -> Result<Ct2Config> {
    let path = dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Err(SttError::model(dir, "no config.json next to model.bin"));
    }
    let text = std::fs::read_to_string(&path).map_err(|source| SttError::Io {
        path: path.clone(),
        source,
    })?;
    let config: Ct2Config = serde_json::from_str(&text)
        .map_err(|e| SttError::model(&path, format!("invalid CTranslate2 config.json: {e}")))?;
    match &config.quantization_type {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(0) => {}
        Some(other) => {
            return Err(SttError::model(
                &path,
                format!("quantization_type {other} (AWQ) is not supported; only CTranslate2's own int8/int16/float weights are"),
            ))
        }
    }
    Ok(config)
}

/// Element type of a `model.bin` variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ct2DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl Ct2DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::BF16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::BF16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        }
    }
}

/// One variable of `model.bin`, borrowing its bytes from the file.
#[derive(Debug)]
struct RawVar<'a> {
    shape: Vec<usize>,
    dtype: Ct2DType,
    data: &'a [u8],
}

impl RawVar<'_> {
    fn numel(&self) -> usize {
        self.data.len() / self.dtype.size()
    }

    /// The values as f32 (any dtype; integers are converted as is, without scale).
    fn to_f32(&self) -> Vec<f32> {
        let n = self.dtype.size();
        let chunks = self.data.chunks_exact(n);
        match self.dtype {
            Ct2DType::F32 => chunks
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Ct2DType::F16 => chunks
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Ct2DType::BF16 => chunks
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Ct2DType::I8 => self.data.iter().map(|&b| f32::from(b as i8)).collect(),
            Ct2DType::I16 => chunks
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])))
                .collect(),
            // Precision loss above 2^24 is irrelevant for the scalars this is used on.
            Ct2DType::I32 => chunks
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
                .collect(),
        }
    }

    /// The single value of an integer scalar (rank 0, or one element).
    fn int_scalar(&self) -> Option<i64> {
        if self.numel() != 1 {
            return None;
        }
        let d = self.data;
        match self.dtype {
            Ct2DType::I8 => Some(i64::from(d[0] as i8)),
            Ct2DType::I16 => Some(i64::from(i16::from_le_bytes([d[0], d[1]]))),
            Ct2DType::I32 => Some(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]]))),
            _ => None,
        }
    }
}

/// A parsed `model.bin`.
#[derive(Debug)]
struct Ct2File<'a> {
    variables: HashMap<String, RawVar<'a>>,
    aliases: HashMap<String, String>,
}

/// Bounds-checked little-endian reads over the file bytes; errors are one-line messages.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(
        &mut self,
        n: usize,
        what: &dyn Fn() -> String,
    ) -> std::result::Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "truncated CTranslate2 model.bin: {} needs {n} bytes at offset {} but only {} remain",
                what(),
                self.pos,
                self.remaining()
            ));
        }
        let bytes = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(bytes)
    }

    fn u8(&mut self, what: &dyn Fn() -> String) -> std::result::Result<u8, String> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &dyn Fn() -> String) -> std::result::Result<u16, String> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> std::result::Result<u32, String> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A `u16`-length string whose length counts a trailing NUL.
    fn string(&mut self, what: &dyn Fn() -> String) -> std::result::Result<String, String> {
        let offset = self.pos;
        let len = usize::from(self.u16(what)?);
        let bytes = self.take(len, what)?;
        let Some((&0, text)) = bytes.split_last() else {
            return Err(format!(
                "corrupt CTranslate2 model.bin: {} at offset {offset} is not a NUL-terminated string",
                what()
            ));
        };
        String::from_utf8(text.to_vec()).map_err(|_| {
            format!(
                "corrupt CTranslate2 model.bin: {} at offset {offset} is not UTF-8",
                what()
            )
        })
    }
}

impl<'a> Ct2File<'a> {
    fn parse(data: &'a [u8]) -> std::result::Result<Self, String> {
        let mut c = Cursor { data, pos: 0 };
        let version = c.u32(&|| "the binary version".into())?;
        if !(MIN_BINARY_VERSION..=MAX_BINARY_VERSION).contains(&version) {
            return Err(format!(
                "not a CTranslate2 model.bin this reader handles: binary version {version} \
                 (expected {MIN_BINARY_VERSION} to {MAX_BINARY_VERSION})"
            ));
        }
        let spec = c.string(&|| "the model spec name".into())?;
        if spec != "WhisperSpec" {
            return Err(format!(
                "CTranslate2 model.bin holds a {spec:?} model, not WhisperSpec"
            ));
        }
        let revision = c.u32(&|| "the spec revision".into())?;
        if revision > MAX_WHISPER_REVISION {
            return Err(format!(
                "WhisperSpec revision {revision} is newer than this reader knows ({MAX_WHISPER_REVISION})"
            ));
        }

        let count = c.u32(&|| "the variable count".into())? as usize;
        // Each variable takes at least 12 bytes: cap the allocation by what the file can hold.
        let mut variables = HashMap::with_capacity(count.min(c.remaining() / 12));
        for index in 0..count {
            let name = c.string(&|| format!("the name of variable #{index}"))?;
            let what = |field: &str| {
                let name = name.clone();
                let field = field.to_owned();
                move || format!("the {field} of variable '{name}'")
            };
            let rank = usize::from(c.u8(&what("rank"))?);
            if rank > MAX_RANK {
                return Err(format!(
                    "corrupt CTranslate2 model.bin: variable '{name}' has rank {rank}"
                ));
            }
            let dims_bytes = c.take(rank * 4, &what("dimensions"))?;
            let shape: Vec<usize> = dims_bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .collect();
            let type_id = c.u8(&what("dtype"))?;
            let dtype = Ct2DType::from_id(type_id).ok_or_else(|| {
                format!("corrupt CTranslate2 model.bin: variable '{name}' has unknown dtype id {type_id}")
            })?;
            let num_bytes = c.u32(&what("byte count"))? as usize;
            let expected = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
                .filter(|&n| n == num_bytes);
            if expected.is_none() {
                return Err(format!(
                    "corrupt CTranslate2 model.bin: variable '{name}' of shape {shape:?} and dtype {} \
                     declares {num_bytes} bytes",
                    dtype.name()
                ));
            }
            let data = c.take(num_bytes, &what("data"))?;
            if variables
                .insert(name.clone(), RawVar { shape, dtype, data })
                .is_some()
            {
                return Err(format!(
                    "corrupt CTranslate2 model.bin: variable '{name}' appears twice"
                ));
            }
        }

        // Binary versions from 3 on end with the alias table.
        let mut aliases = HashMap::new();
        let count = c.u32(&|| "the alias count".into())? as usize;
        for index in 0..count {
            let alias = c.string(&|| format!("alias #{index}"))?;
            let target = c.string(&|| format!("the target of alias '{alias}'"))?;
            if variables.contains_key(&alias) {
                return Err(format!(
                    "corrupt CTranslate2 model.bin: alias '{alias}' is also a variable"
                ));
            }
            aliases.insert(alias, target);
        }
        if c.remaining() != 0 {
            return Err(format!(
                "corrupt CTranslate2 model.bin: {} unexpected bytes after the alias table at offset {} \
                 (a badly joined file?)",
                c.remaining(),
                c.pos
            ));
        }
        Ok(Self { variables, aliases })
    }

    /// Follows aliases (including the implicit `A_scale → T_scale`) to a variable: its
    /// canonical name and value, or `None` when there is no such variable.
    fn resolve(&self, name: &str) -> std::result::Result<Option<(String, &RawVar<'a>)>, String> {
        let mut current = name.to_owned();
        for _ in 0..=MAX_ALIAS_HOPS {
            if let Some(var) = self.variables.get(&current) {
                return Ok(Some((current, var)));
            }
            if let Some(target) = self.aliases.get(&current) {
                current = target.clone();
                continue;
            }
            let implicit = ["_scale", "_zero"].iter().find_map(|suffix| {
                let base = current.strip_suffix(suffix)?;
                Some(format!("{}{suffix}", self.aliases.get(base)?))
            });
            match implicit {
                Some(next) => current = next,
                None => return Ok(None),
            }
        }
        Err(format!(
            "CTranslate2 model.bin: the aliases of '{name}' form a cycle"
        ))
    }
}

/// Turns the parsed variables into transformers-named tensors.
struct Converter<'f, 'a> {
    file: &'f Ct2File<'a>,
    path: &'f Path,
    dtype: DType,
    device: &'f Device,
}

impl Converter<'_, '_> {
    fn err(&self, message: impl Into<String>) -> SttError {
        SttError::model(self.path, message.into())
    }

    fn get(&self, name: &str) -> Result<Option<&RawVar<'_>>> {
        Ok(self
            .file
            .resolve(name)
            .map_err(|m| self.err(m))?
            .map(|(_, v)| v))
    }

    fn require(&self, name: &str) -> Result<&RawVar<'_>> {
        self.get(name)?
            .ok_or_else(|| self.err(format!("CTranslate2 model.bin has no variable '{name}'")))
    }

    /// The variable `name`, checked to have `shape`.
    fn require_shape(&self, name: &str, shape: &[usize]) -> Result<&RawVar<'_>> {
        let var = self.require(name)?;
        if var.shape != shape {
            return Err(self.err(format!(
                "CTranslate2 variable '{name}' has shape {:?}, expected {shape:?}",
                var.shape
            )));
        }
        Ok(var)
    }

    /// The shape of `name`, checked to be of `rank`.
    fn shape_of(&self, name: &str, rank: usize) -> Result<Vec<usize>> {
        let var = self.require(name)?;
        if var.shape.len() != rank || var.shape.contains(&0) {
            return Err(self.err(format!(
                "CTranslate2 variable '{name}' has shape {:?}, expected {rank} non-zero dimensions",
                var.shape
            )));
        }
        Ok(var.shape.clone())
    }

    fn int_scalar(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name)? {
            None => Ok(None),
            Some(var) => var.int_scalar().map(Some).ok_or_else(|| {
                self.err(format!(
                    "CTranslate2 variable '{name}' is not an integer scalar"
                ))
            }),
        }
    }

    /// The weight `name` (checked to have `shape`) as a CPU tensor in its stored float dtype,
    /// or dequantized to f32.
    fn weight(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.weight_rows(name, shape, 0, shape.first().copied().unwrap_or(1))
    }

    /// Rows `start..start + len` (along the first dimension) of the weight `name`, which must
    /// have `shape`: a tensor with storage of its own (no view into a fused tensor, so moving it
    /// to a device copies only these rows).
    fn weight_rows(&self, name: &str, shape: &[usize], start: usize, len: usize) -> Result<Tensor> {
        let var = self.require_shape(name, shape)?;
        let rows = shape.first().copied().unwrap_or(1);
        debug_assert!(start + len <= rows);
        let per_row = var.numel() / rows.max(1);
        let row_shape: Vec<usize> = if shape.is_empty() {
            Vec::new()
        } else {
            std::iter::once(len)
                .chain(shape[1..].iter().copied())
                .collect()
        };
        let size = var.dtype.size();
        let bytes = &var.data[start * per_row * size..(start + len) * per_row * size];
        let cpu = &Device::Cpu;
        let float = |dtype| Tensor::from_raw_buffer(bytes, dtype, &row_shape, cpu);
        Ok(match var.dtype {
            Ct2DType::F32 => float(DType::F32)?,
            Ct2DType::F16 => float(DType::F16)?,
            Ct2DType::BF16 => float(DType::BF16)?,
            Ct2DType::I8 | Ct2DType::I16 => {
                let scale = self.scale(name, var.dtype, rows)?;
                let quantized = RawVar {
                    shape: row_shape.clone(),
                    dtype: var.dtype,
                    data: bytes,
                };
                let dequantized: Vec<f32> = quantized
                    .to_f32()
                    .into_iter()
                    .enumerate()
                    .map(|(i, q)| q / scale[(start + i / per_row.max(1)).min(scale.len() - 1)])
                    .collect();
                Tensor::from_vec(dequantized, row_shape, cpu)?
            }
            Ct2DType::I32 => {
                return Err(self.err(format!(
                    "CTranslate2 variable '{name}' is int32, which is not a weight type"
                )))
            }
        })
    }

    /// The dequantization scale of the integer weight `name` with `rows` output rows: one value
    /// per row (a single stored value is repeated).
    fn scale(&self, name: &str, dtype: Ct2DType, rows: usize) -> Result<Vec<f32>> {
        if self.get(&format!("{name}_zero"))?.is_some() {
            return Err(self.err(format!(
                "CTranslate2 variable '{name}' is AWQ-quantized (has '{name}_zero'), which is not supported"
            )));
        }
        let scale_name = format!("{name}_scale");
        let scale = self.get(&scale_name)?.ok_or_else(|| {
            self.err(format!(
                "CTranslate2 variable '{name}' is {} but has no '{scale_name}'",
                dtype.name()
            ))
        })?;
        if !matches!(scale.dtype, Ct2DType::F32 | Ct2DType::F16 | Ct2DType::BF16) {
            return Err(self.err(format!(
                "CTranslate2 variable '{scale_name}' is {}, expected a float",
                scale.dtype.name()
            )));
        }
        let values = scale.to_f32();
        match values.len() {
            1 => Ok(vec![values[0]; rows]),
            n if n == rows => Ok(values),
            n => Err(self.err(format!(
                "CTranslate2 variable '{scale_name}' has {n} values for {rows} rows"
            ))),
        }
    }

    /// Converts `tensor` to the requested dtype and device and stores it under `key`.
    fn put(&self, out: &mut HashMap<String, Tensor>, key: String, tensor: Tensor) -> Result<()> {
        let tensor = tensor.to_dtype(self.dtype)?.to_device(self.device)?;
        out.insert(key, tensor);
        Ok(())
    }

    /// A linear layer `src/{weight,bias}` of shape `[rows, cols]` into `dst.{weight,bias}`.
    fn linear(
        &self,
        out: &mut HashMap<String, Tensor>,
        src: &str,
        dst: &str,
        rows: usize,
        cols: usize,
    ) -> Result<()> {
        let weight = self.weight(&format!("{src}/weight"), &[rows, cols])?;
        let bias = self.weight(&format!("{src}/bias"), &[rows])?;
        self.put(out, format!("{dst}.weight"), weight)?;
        self.put(out, format!("{dst}.bias"), bias)
    }

    /// A fused linear layer `src` of `parts.len() × d` output rows, split into `d`-row layers
    /// named by `parts`; `k_proj` keeps no bias.
    fn fused_linear(
        &self,
        out: &mut HashMap<String, Tensor>,
        src: &str,
        dst: &str,
        parts: &[&str],
        d: usize,
    ) -> Result<()> {
        let (weight, bias) = (format!("{src}/weight"), format!("{src}/bias"));
        let n = parts.len() * d;
        for (i, part) in parts.iter().enumerate() {
            let w = self.weight_rows(&weight, &[n, d], i * d, d)?;
            self.put(out, format!("{dst}.{part}.weight"), w)?;
            if *part != "k_proj" {
                let b = self.weight_rows(&bias, &[n], i * d, d)?;
                self.put(out, format!("{dst}.{part}.bias"), b)?;
            }
        }
        Ok(())
    }

    fn layer_norm(
        &self,
        out: &mut HashMap<String, Tensor>,
        src: &str,
        dst: &str,
        d: usize,
    ) -> Result<()> {
        let gamma = self.weight(&format!("{src}/gamma"), &[d])?;
        let beta = self.weight(&format!("{src}/beta"), &[d])?;
        self.put(out, format!("{dst}.weight"), gamma)?;
        self.put(out, format!("{dst}.bias"), beta)
    }

    /// Number of `{stack}/layer_N` blocks: the highest index + 1 (a gap in the numbering shows
    /// up as a missing variable when the layers are read).
    fn layer_count(&self, stack: &str) -> Result<usize> {
        let prefix = format!("{stack}/layer_");
        let mut max: Option<usize> = None;
        let names = self.file.variables.keys().chain(self.file.aliases.keys());
        for name in names {
            let Some(rest) = name.strip_prefix(&prefix) else {
                continue;
            };
            // `layer_norm` shares the prefix; only `layer_<number>/…` names a block.
            let Some(index) = rest.split('/').next().and_then(|s| s.parse::<usize>().ok()) else {
                continue;
            };
            max = Some(max.map_or(index, |m| m.max(index)));
        }
        let count = max.map_or(0, |m| m + 1);
        if count == 0 {
            return Err(self.err(format!("CTranslate2 model.bin has no {stack} layers")));
        }
        Ok(count)
    }

    /// Attention heads of `stack` from its `num_heads` scalar, else `d_model / 64`.
    fn heads(&self, stack: &str, d: usize) -> Result<usize> {
        let heads = match self.int_scalar(&format!("{stack}/num_heads"))? {
            Some(h) => usize::try_from(h).unwrap_or(0),
            None => d / 64,
        };
        if d.checked_rem(heads) != Some(0) {
            return Err(self.err(format!(
                "CTranslate2 {stack}: {heads} attention heads do not divide the width {d}"
            )));
        }
        Ok(heads)
    }

    fn convert(&self, ct2: Ct2Config) -> Result<Ct2Checkpoint> {
        let emb = self.shape_of("decoder/embeddings/weight", 2)?;
        let (vocab_size, d) = (emb[0], emb[1]);
        let conv1 = self.shape_of("encoder/conv1/weight", 3)?;
        let num_mel_bins = conv1[1];
        let max_source_positions = self.shape_of("encoder/position_encodings/encodings", 2)?[0];
        let max_target_positions = self.shape_of("decoder/position_encodings/encodings", 2)?[0];
        let encoder_layers = self.layer_count("encoder")?;
        let decoder_layers = self.layer_count("decoder")?;
        let encoder_ffn_dim = self.shape_of("encoder/layer_0/ffn/linear_0/weight", 2)?[0];
        let decoder_ffn_dim = self.shape_of("decoder/layer_0/ffn/linear_0/weight", 2)?[0];
        let encoder_attention_heads = self.heads("encoder", d)?;
        let decoder_attention_heads = self.heads("decoder", d)?;

        let mut t = HashMap::new();
        let out = &mut t;
        let w = |name: &str, shape: &[usize]| self.weight(name, shape);

        // Encoder.
        self.put(
            out,
            "model.encoder.conv1.weight".into(),
            w("encoder/conv1/weight", &[d, num_mel_bins, 3])?,
        )?;
        self.put(
            out,
            "model.encoder.conv1.bias".into(),
            w("encoder/conv1/bias", &[d])?,
        )?;
        self.put(
            out,
            "model.encoder.conv2.weight".into(),
            w("encoder/conv2/weight", &[d, d, 3])?,
        )?;
        self.put(
            out,
            "model.encoder.conv2.bias".into(),
            w("encoder/conv2/bias", &[d])?,
        )?;
        self.put(
            out,
            "model.encoder.embed_positions.weight".into(),
            w(
                "encoder/position_encodings/encodings",
                &[max_source_positions, d],
            )?,
        )?;
        for i in 0..encoder_layers {
            let (src, dst) = (
                format!("encoder/layer_{i}"),
                format!("model.encoder.layers.{i}"),
            );
            self.encoder_decoder_common(out, &src, &dst, d, encoder_ffn_dim)?;
        }
        self.layer_norm(out, "encoder/layer_norm", "model.encoder.layer_norm", d)?;

        // Decoder.
        self.put(
            out,
            "model.decoder.embed_tokens.weight".into(),
            w("decoder/embeddings/weight", &[vocab_size, d])?,
        )?;
        self.put(
            out,
            "model.decoder.embed_positions.weight".into(),
            w(
                "decoder/position_encodings/encodings",
                &[max_target_positions, d],
            )?,
        )?;
        for i in 0..decoder_layers {
            let (src, dst) = (
                format!("decoder/layer_{i}"),
                format!("model.decoder.layers.{i}"),
            );
            self.encoder_decoder_common(out, &src, &dst, d, decoder_ffn_dim)?;
            self.linear(
                out,
                &format!("{src}/attention/linear_0"),
                &format!("{dst}.encoder_attn.q_proj"),
                d,
                d,
            )?;
            self.fused_linear(
                out,
                &format!("{src}/attention/linear_1"),
                &format!("{dst}.encoder_attn"),
                &["k_proj", "v_proj"],
                d,
            )?;
            self.linear(
                out,
                &format!("{src}/attention/linear_2"),
                &format!("{dst}.encoder_attn.out_proj"),
                d,
                d,
            )?;
            self.layer_norm(
                out,
                &format!("{src}/attention/layer_norm"),
                &format!("{dst}.encoder_attn_layer_norm"),
                d,
            )?;
        }
        self.layer_norm(out, "decoder/layer_norm", "model.decoder.layer_norm", d)?;
        self.output_projection(out, vocab_size, d)?;

        let alignment_heads = match ct2.alignment_heads {
            Some(heads) => heads,
            // CTranslate2's default: every head of the second half of the decoder layers.
            None => (decoder_layers / 2..decoder_layers)
                .flat_map(|l| (0..decoder_attention_heads).map(move |h| (l, h)))
                .collect(),
        };
        if let Some(&(l, h)) = alignment_heads
            .iter()
            .find(|&&(l, h)| l >= decoder_layers || h >= decoder_attention_heads)
        {
            return Err(SttError::model(
                self.path.with_file_name(CONFIG_FILE),
                format!(
                    "alignment head ({l}, {h}) is outside the decoder ({decoder_layers} layers, \
                     {decoder_attention_heads} heads)"
                ),
            ));
        }

        Ok(Ct2Checkpoint {
            config: Config {
                vocab_size,
                num_mel_bins,
                d_model: d,
                encoder_layers,
                encoder_attention_heads,
                encoder_ffn_dim,
                decoder_layers,
                decoder_attention_heads,
                decoder_ffn_dim,
                max_source_positions,
                max_target_positions,
                suppress_tokens: ct2.suppress_ids.unwrap_or_default(),
                begin_suppress_tokens: ct2.suppress_ids_begin.unwrap_or_default(),
            },
            tensors: t,
            alignment_heads,
            lang_ids: ct2.lang_ids.unwrap_or_default(),
        })
    }

    /// Self-attention, its layer norm and the MLP, shared by encoder and decoder layers.
    fn encoder_decoder_common(
        &self,
        out: &mut HashMap<String, Tensor>,
        src: &str,
        dst: &str,
        d: usize,
        ffn: usize,
    ) -> Result<()> {
        self.fused_linear(
            out,
            &format!("{src}/self_attention/linear_0"),
            &format!("{dst}.self_attn"),
            &["q_proj", "k_proj", "v_proj"],
            d,
        )?;
        self.linear(
            out,
            &format!("{src}/self_attention/linear_1"),
            &format!("{dst}.self_attn.out_proj"),
            d,
            d,
        )?;
        self.layer_norm(
            out,
            &format!("{src}/self_attention/layer_norm"),
            &format!("{dst}.self_attn_layer_norm"),
            d,
        )?;
        self.linear(
            out,
            &format!("{src}/ffn/linear_0"),
            &format!("{dst}.fc1"),
            ffn,
            d,
        )?;
        self.linear(
            out,
            &format!("{src}/ffn/linear_1"),
            &format!("{dst}.fc2"),
            d,
            ffn,
        )?;
        self.layer_norm(
            out,
            &format!("{src}/ffn/layer_norm"),
            &format!("{dst}.final_layer_norm"),
            d,
        )
    }

    /// `decoder/projection`: normally an alias of the embeddings (tied, nothing to emit); a
    /// separate projection that differs from the embeddings becomes `proj_out.weight`.
    fn output_projection(
        &self,
        out: &mut HashMap<String, Tensor>,
        vocab: usize,
        d: usize,
    ) -> Result<()> {
        const PROJECTION: &str = "decoder/projection/weight";
        if let Some(bias) = self.get("decoder/projection/bias")? {
            if bias.to_f32().iter().any(|&b| b != 0.0) {
                return Err(self.err(
                    "CTranslate2 'decoder/projection/bias' is not zero; Whisper's output projection has no bias",
                ));
            }
        }
        let Some((canonical, _)) = self.file.resolve(PROJECTION).map_err(|m| self.err(m))? else {
            return Ok(()); // No projection: tied to the embeddings.
        };
        if canonical == "decoder/embeddings/weight" {
            return Ok(());
        }
        let projection = self.weight(PROJECTION, &[vocab, d])?.to_dtype(DType::F32)?;
        let embeddings = self
            .weight("decoder/embeddings/weight", &[vocab, d])?
            .to_dtype(DType::F32)?;
        let differs = projection
            .ne(&embeddings)?
            .flatten_all()?
            .max(0)?
            .to_scalar::<u8>()?
            != 0;
        if differs {
            self.put(out, "proj_out.weight".into(), projection)?;
        }
        Ok(())
    }
}
