//! Times Whisper's stages on a model folder: encoder per 30 s window and decoder per step at
//! batch 1 and 5 (developer tool; `cargo run --release -p mlbench-stt --example profile -- DIR`).
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: profile MODEL_DIR")?;
    let files = ModelFiles::new(ModelSource::Dir(dir.into()), Progress::none());
    let t = mlbench_stt::load::load(&files, DType::F32, &Device::Cpu)?;
    let model = t.model();
    let n_mels = model.config.num_mel_bins;
    let mel = Tensor::randn(0f32, 1.0, (1, n_mels, 3000), &Device::Cpu)?;
    t.encode(&mel)?;
    let start = Instant::now();
    let runs: usize = std::env::var("ENC_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut features = None;
    for _ in 0..runs {
        features = Some(t.encode(&mel)?);
    }
    println!(
        "encode: {:.1} ms per window",
        start.elapsed().as_secs_f64() * 1e3 / runs as f64
    );
    let features = match features {
        Some(f) => f,
        None => t.encode(&mel)?,
    };
    for batch in [1usize, 5] {
        let mut state = model.decoder_state(&features, 1)?;
        let sot = t.tokenizer().sot;
        model.decode(&Tensor::new(&[[sot]], &Device::Cpu)?, &mut state)?;
        state.reorder(&vec![0; batch])?;
        let steps = 40;
        let start = Instant::now();
        for i in 0..steps {
            let toks: Vec<u32> = (0..batch as u32).map(|b| 400 + i + b).collect();
            let logits = model.decode(
                &Tensor::new(toks.as_slice(), &Device::Cpu)?.unsqueeze(1)?,
                &mut state,
            )?;
            let _: Vec<Vec<f32>> = logits.to_vec2()?;
        }
        println!(
            "decode batch {batch}: {:.2} ms per step",
            start.elapsed().as_secs_f64() * 1e3 / steps as f64
        );
    }
    Ok(())
}
