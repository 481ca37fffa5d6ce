//! Parity with Piper on onnxruntime: the real en_US-joe-medium voice, fixed phoneme ids, noise
//! scales 0 (golden from scripts/reference/piper_goldens.py, tests/golden/README.md).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use mlbench_tts::voice::{PiperVoice, SynthesisParams};

#[path = "../../mlbench-stt/tests/support/mod.rs"]
mod support;

/// The fetched voice; fails (never skips) when scripts/fetch-test-weights.sh has not run.
fn joe() -> PathBuf {
    let dir = support::weights_dir().join("piper-joe-medium");
    let onnx = dir.join("en_US-joe-medium.onnx");
    assert!(
        dir.join(".complete").is_file() && onnx.is_file(),
        "{} is missing: run scripts/fetch-test-weights.sh (or set MLBENCH_TEST_WEIGHTS)",
        dir.display()
    );
    onnx
}

#[test]
fn joe_medium_matches_onnxruntime() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden/piper-joe-medium.safetensors");
    let g = candle_core::safetensors::load(golden, &Device::Cpu).unwrap();
    let ids = g["ids"].to_vec1::<i64>().unwrap();
    let durations = g["durations"].to_vec1::<f32>().unwrap();
    let audio = g["audio"].to_vec1::<f32>().unwrap();

    let voice = PiperVoice::load_onnx(&joe(), &Device::Cpu, DType::F32).unwrap();
    let params = SynthesisParams {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        length_scale: Some(1.0),
        ..Default::default()
    };
    let out = voice.synthesize_ids(&ids, &params).unwrap();
    let expected: Vec<usize> = durations.iter().map(|&d| d as usize).collect();
    assert_eq!(out.durations, expected, "durations differ");
    assert_eq!(out.samples.len(), audio.len());
    let max = out
        .samples
        .iter()
        .zip(&audio)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("max abs diff vs onnxruntime: {max:e}");
    assert!(max <= 1e-3, "max abs diff {max}");
}

/// A phonemizer that returns fixed phonemes, one of them unknown to the voice.
struct Fixed(&'static str);

impl mlbench_tts::phonemize::Phonemizer for Fixed {
    fn phonemize(&self, _: &str) -> mlbench_tts::Result<Vec<String>> {
        Ok(vec![self.0.to_string()])
    }
}

#[test]
fn unknown_phonemes_are_skipped_with_a_warning() {
    let voice = PiperVoice::load_onnx(&joe(), &Device::Cpu, DType::F32)
        .unwrap()
        .with_phonemizer(Box::new(Fixed("həlˈoʊ ☃ wˈɜːld.")));
    let speech = voice
        .synthesize("anything", &SynthesisParams::default())
        .unwrap();
    assert!(speech.duration() > 0.5);
    assert_eq!(speech.warnings.len(), 1, "{:?}", speech.warnings);
    assert!(speech.warnings[0].contains('☃'));
    // Unknown speakers and bad scales are errors, not panics.
    let e = voice.speaker_id(Some("nobody")).unwrap_err().to_string();
    assert!(e.contains("single speaker"), "{e}");
    let bad = SynthesisParams {
        length_scale: Some(-1.0),
        ..Default::default()
    };
    assert!(voice.synthesize("x", &bad).is_err());
}
