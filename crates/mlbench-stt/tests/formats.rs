//! The three weight formats load the same real weights: the CTranslate2 tiny.en model is
//! re-written here as a transformers checkpoint (safetensors + config.json) and as a candle GGUF
//! file (q8_0 matmul weights), and each transcribes the LibriVox clips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_stt::transcribe::{TranscribeParams, Transcriber};

mod support;

use support::{librivox_clips as clips, real_model};

fn tiny_ct2() -> PathBuf {
    real_model("whisper-tiny.en-ct2")
}

fn texts(t: &Transcriber) -> Vec<String> {
    let params = TranscribeParams {
        beam_size: 1,
        ..TranscribeParams::default()
    };
    clips()
        .iter()
        .map(|c| {
            let samples = mlbench_stt::audio::load_audio(c).unwrap();
            t.transcribe(&samples, &params, &Progress::none())
                .unwrap()
                .text()
        })
        .collect()
}

fn load(source: ModelSource) -> Transcriber {
    mlbench_stt::load::load(
        &ModelFiles::new(source, Progress::none()),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap()
}

fn write_companions(
    dir: &Path,
    config: &mlbench_stt::model::Config,
    config_name: &str,
    tokenizer_name: &str,
) {
    std::fs::write(
        dir.join(config_name),
        serde_json::to_string(config).unwrap(),
    )
    .unwrap();
    std::fs::copy(tiny_ct2().join("tokenizer.json"), dir.join(tokenizer_name)).unwrap();
}

#[test]
fn transformers_safetensors_checkpoint_gives_the_same_text_as_ct2() {
    let ckpt = mlbench_stt::ct2::load(&tiny_ct2(), DType::F32, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    candle_core::safetensors::save(&ckpt.tensors, dir.path().join("model.safetensors")).unwrap();
    write_companions(dir.path(), &ckpt.config, "config.json", "tokenizer.json");
    let hf = texts(&load(ModelSource::Dir(dir.path().into())));
    let ct2 = texts(&load(ModelSource::Dir(tiny_ct2())));
    assert_eq!(hf, ct2);
}

#[test]
fn gguf_q8_0_checkpoint_transcribes() {
    let ckpt = mlbench_stt::ct2::load(&tiny_ct2(), DType::F32, &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model-tiny-en-q80.gguf");
    let quantized: HashMap<String, QTensor> = ckpt
        .tensors
        .iter()
        .map(|(name, t): (&String, &Tensor)| {
            let is_matmul = name.ends_with("proj.weight")
                || name.ends_with("fc1.weight")
                || name.ends_with("fc2.weight");
            let dtype = if is_matmul {
                GgmlDType::Q8_0
            } else {
                GgmlDType::F32
            };
            (name.clone(), QTensor::quantize(t, dtype).unwrap())
        })
        .collect();
    let refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut file, &[], &refs).unwrap();
    // candle's hub files name their companions config-<size>.json / tokenizer-<size>.json.
    write_companions(
        dir.path(),
        &ckpt.config,
        "config-tiny-en.json",
        "tokenizer-tiny-en.json",
    );
    let gguf = texts(&load(ModelSource::File(path)));
    let ct2 = texts(&load(ModelSource::Dir(tiny_ct2())));
    let same = gguf.iter().zip(&ct2).filter(|(a, b)| a == b).count();
    eprintln!("gguf q8_0: {gguf:?}\nct2: {ct2:?}");
    assert!(
        same >= 4,
        "q8_0 transcripts should match f32 on most clips: {gguf:?} vs {ct2:?}"
    );
}

#[test]
fn a_file_that_is_not_gguf_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.gguf");
    std::fs::write(&path, b"definitely not gguf").unwrap();
    let config = mlbench_stt::ct2::load(&tiny_ct2(), DType::F32, &Device::Cpu)
        .unwrap()
        .config;
    write_companions(dir.path(), &config, "config.json", "tokenizer.json");
    let err = mlbench_stt::load::load(
        &ModelFiles::new(ModelSource::File(path), Progress::none()),
        DType::F32,
        &Device::Cpu,
    )
    .err()
    .expect("must fail")
    .to_string();
    assert!(err.contains("broken.gguf") && err.contains("GGUF"), "{err}");
}
