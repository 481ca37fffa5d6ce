//! Parity with transformers' `VitsModel` on tiny random MMS-TTS checkpoints: token ids,
//! durations and waveform with noise scales 0 (checkpoints and goldens from
//! scripts/reference/mms_goldens.py; see tests/golden/README.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_tts::voice::{SynthesisParams, Voice};
use mlbench_tts::{MmsVoice, TtsError};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn checkpoint(name: &str) -> PathBuf {
    root().join("tests/data/tts-tiny-mms").join(name)
}

struct Golden {
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

impl Golden {
    fn load(name: &str) -> Self {
        let path = root().join(format!("tests/golden/tts-mms-{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = header.metadata().clone().unwrap_or_default();
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        Self { tensors, meta }
    }

    fn i64s(&self, k: &str) -> Vec<i64> {
        self.tensors[k].to_vec1::<i64>().unwrap()
    }

    fn f32s(&self, k: &str) -> Vec<f32> {
        self.tensors[k].to_vec1::<f32>().unwrap()
    }
}

fn quiet(speaker: Option<&str>, length_scale: Option<f32>) -> SynthesisParams {
    SynthesisParams {
        speaker: speaker.map(str::to_string),
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        length_scale,
        ..Default::default()
    }
}

/// Runs `ids` and compares durations and audio with the golden's `suffix` tensors.
fn check_audio(voice: &MmsVoice, g: &Golden, suffix: &str, params: &SynthesisParams) -> f32 {
    let ids = g.i64s(&format!("ids{suffix}"));
    let out = voice.synthesize_ids(&ids, params).unwrap();
    let want: Vec<usize> = g
        .f32s(&format!("durations{suffix}"))
        .iter()
        .map(|&d| d as usize)
        .collect();
    assert_eq!(out.durations, want, "durations{suffix} differ");
    let audio = g.f32s(&format!("audio{suffix}"));
    assert_eq!(out.samples.len(), audio.len());
    let max = out
        .samples
        .iter()
        .zip(&audio)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("audio{suffix}: max abs diff vs transformers {max:e}");
    max
}

#[test]
fn single_speaker_weight_g_v_matches_transformers() {
    let g = Golden::load("single");
    let voice = MmsVoice::load_dir(&checkpoint("single"), &Device::Cpu, DType::F32).unwrap();
    assert_eq!(voice.sample_rate(), 16_000);

    let text = &g.meta["text"];
    let enc = voice.encode(text).unwrap();
    assert_eq!(enc.len(), 1, "one sentence");
    assert_eq!(enc[0].ids, g.i64s("ids"), "token ids differ for {text:?}");

    let max = check_audio(&voice, &g, "", &quiet(None, None));
    assert!(max <= 1e-4, "max abs diff {max}");
    // speaking_rate 1.5 in transformers is length_scale 1/1.5 here.
    let max = check_audio(&voice, &g, "_fast", &quiet(None, Some(1.0 / 1.5)));
    assert!(max <= 1e-4, "max abs diff {max}");
}

#[test]
fn tokenizer_matches_vits_tokenizer() {
    let g = Golden::load("single");
    let voice = MmsVoice::load_dir(&checkpoint("single"), &Device::Cpu, DType::F32).unwrap();
    let cases: Vec<String> = serde_json::from_str(&g.meta["tokenizer_cases"]).unwrap();
    assert!(cases.len() >= 4);
    for (i, case) in cases.iter().enumerate() {
        let want = g.i64s(&format!("tok_{i}"));
        let got = voice.tokenizer().encode(case).unwrap();
        assert_eq!(got.ids, want, "{case:?}");
    }
}

#[test]
fn multi_speaker_parametrizations_form_matches_transformers() {
    let g = Golden::load("multi");
    let voice = MmsVoice::load_dir(&checkpoint("multi"), &Device::Cpu, DType::F32).unwrap();
    let speaker = g.meta["speaker"].clone();
    assert_eq!(voice.encode(&g.meta["text"]).unwrap()[0].ids, g.i64s("ids"));
    let max = check_audio(&voice, &g, "", &quiet(Some(&speaker), None));
    assert!(max <= 1e-4, "max abs diff {max}");
    // Another speaker gives other audio (the embedding is used).
    let other = voice
        .synthesize_ids(&g.i64s("ids"), &quiet(Some("0"), None))
        .unwrap();
    let audio = g.f32s("audio");
    let differs = other.samples.len() != audio.len()
        || other
            .samples
            .iter()
            .zip(&audio)
            .any(|(a, b)| (a - b).abs() > 1e-2);
    assert!(differs, "speaker 0 sounds like speaker {speaker}");
    let e = voice.speaker_id(Some("3")).unwrap_err().to_string();
    assert!(e.contains("below 3"), "{e}");
}

#[test]
fn text_to_speech_through_the_voice_enum() {
    let dir = checkpoint("single");
    let files = ModelFiles::new(ModelSource::Dir(dir.clone()), Progress::none());
    let voice = Voice::load(&files, &Device::Cpu, DType::F32).unwrap();
    assert!(matches!(voice, Voice::Mms(_)));
    let speech = voice
        .synthesize(
            "Hello there. A caf\u{e9} at 9!",
            &SynthesisParams::default(),
        )
        .unwrap();
    assert_eq!(speech.sentences, vec!["hello there", "A caf at"]);
    assert_eq!(speech.warnings.len(), 1, "{:?}", speech.warnings);
    assert!(speech.warnings[0].contains('é') && speech.warnings[0].contains('9'));
    assert!(!speech.warnings[0].contains('!'));
    let silence = (0.2 * 16_000.0f32).round() as usize;
    assert!(speech.samples.len() > 2 * silence);
    // A single speaker voice has no speaker 1.
    let e = voice.speaker_id(Some("1")).unwrap_err();
    assert!(matches!(e, TtsError::UnknownSpeaker(_)), "{e}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let voice = MmsVoice::load_dir(&checkpoint("single"), &Device::Cpu, DType::F32).unwrap();
    for text in ["", "   ", "?!...", "\u{4f60}\u{597d}"] {
        let e = voice
            .synthesize(text, &SynthesisParams::default())
            .unwrap_err();
        assert!(matches!(e, TtsError::EmptyText(_)), "{text:?}: {e}");
    }
    // A folder that is no voice.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("notes.txt"), "hi").unwrap();
    let files = ModelFiles::new(ModelSource::Dir(empty.path().into()), Progress::none());
    let e = Voice::load(&files, &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("neither a Piper voice"), "{e}");
    // A checkpoint missing its weights names the file.
    let partial = tempfile::tempdir().unwrap();
    for f in ["config.json", "vocab.json", "tokenizer_config.json"] {
        std::fs::copy(checkpoint("single").join(f), partial.path().join(f)).unwrap();
    }
    let e = MmsVoice::load_dir(partial.path(), &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // A config of another architecture.
    std::fs::write(
        partial.path().join("config.json"),
        r#"{"model_type": "bert"}"#,
    )
    .unwrap();
    let e = MmsVoice::load_dir(partial.path(), &Device::Cpu, DType::F32)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model_type 'bert'"), "{e}");
}

#[test]
fn pytorch_bin_checkpoint_matches_transformers() {
    // The `single` weights as a zip-format pytorch_model.bin (no model.safetensors beside it).
    let dir = checkpoint("bin");
    assert!(!dir.join("model.safetensors").exists());
    let g = Golden::load("single");
    let voice = MmsVoice::load_dir(&dir, &Device::Cpu, DType::F32).unwrap();
    let max = check_audio(&voice, &g, "", &quiet(None, None));
    assert!(max <= 1e-4, "max abs diff {max}");
}
