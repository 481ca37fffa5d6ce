//! Numeric parity with PyTorch/transformers on the real tiny.en weights: log-mel, encoder output
//! and the first decoder logits must match the goldens that `scripts/reference/whisper_goldens.py`
//! produced from the same CTranslate2 model (see tests/golden/README.md).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_stt::mel::N_SAMPLES;

mod support;

use support::{librivox_clip, max_abs_diff, real_model};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn mel_encoder_and_logits_match_transformers() {
    let golden = candle_core::safetensors::load(
        workspace().join("tests/golden/whisper-tiny.en.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let clip = &librivox_clip("sense_and_sensibility_01_austen_64kb-0880");
    let samples = mlbench_stt::audio::load_audio(clip).unwrap();
    assert!(samples.len() < N_SAMPLES);

    let files = ModelFiles::new(
        ModelSource::Dir(real_model("whisper-tiny.en-ct2")),
        Progress::none(),
    );
    let t = mlbench_stt::load::load(&files, DType::F32, &Device::Cpu).unwrap();

    // The golden pads the audio to 30 s before the STFT (transformers' feature extractor).
    let (mel, frames) =
        mlbench_stt::mel::LogMel::new(80).compute(&samples, N_SAMPLES - samples.len());
    let mel = Tensor::from_vec(mel, (80, frames), &Device::Cpu)
        .unwrap()
        .narrow(1, 0, 3000)
        .unwrap();
    let d_mel = max_abs_diff(&mel, &golden["mel"]);
    eprintln!("mel max abs diff {d_mel:.2e}");
    assert!(d_mel <= 1e-3, "mel differs by {d_mel}");

    let enc = t
        .encode(&golden["mel"].unsqueeze(0).unwrap())
        .unwrap()
        .squeeze(0)
        .unwrap();
    let d_enc = max_abs_diff(&enc, &golden["encoder_out"]);
    eprintln!("encoder max abs diff {d_enc:.2e}");
    assert!(d_enc <= 1e-3, "encoder output differs by {d_enc}");

    let prompt: Vec<u32> = golden["tokens_prompt"]
        .to_vec1::<i64>()
        .unwrap()
        .iter()
        .map(|&x| x as u32)
        .collect();
    let model = t.model();
    let mut state = model
        .decoder_state(&golden["encoder_out"].unsqueeze(0).unwrap(), 1)
        .unwrap();
    let tokens = Tensor::new(prompt.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model
        .decode_at(&tokens, &mut state, &[0, 1])
        .unwrap()
        .squeeze(0)
        .unwrap();
    let d_logits = max_abs_diff(&logits, &golden["decoder_logits"]);
    eprintln!("decoder logits max abs diff {d_logits:.2e}");
    assert!(d_logits <= 1e-3, "decoder logits differ by {d_logits}");

    // Incremental decoding with the KV cache gives the same last logits as the full pass.
    let mut state = model
        .decoder_state(&golden["encoder_out"].unsqueeze(0).unwrap(), 1)
        .unwrap();
    let first = Tensor::new(&prompt[..1], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    model.decode(&first, &mut state).unwrap();
    let second = Tensor::new(&prompt[1..], &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let cached = model
        .decode(&second, &mut state)
        .unwrap()
        .squeeze(0)
        .unwrap();
    let full = golden["decoder_logits"].get(1).unwrap();
    let d_cached = max_abs_diff(&cached, &full);
    assert!(d_cached <= 1e-3, "cached decoding differs by {d_cached}");
}
