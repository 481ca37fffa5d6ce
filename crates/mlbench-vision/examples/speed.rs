//! Images per second of an image classifier on the same preprocessed input at several batch
//! sizes (model load and preprocessing excluded): the Rust side of the comparison with
//! `scripts/reference/vision_goldens.py bench`.
//!
//! `cargo run --release -p mlbench-vision --example speed -- MODEL_DIR IMAGE [RUNS]`
//! (threads: `RAYON_NUM_THREADS`, as for Candle).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_vision::image::load_image;
use mlbench_vision::ImageClassifier;

// As in the `mlbench` binary: glibc's malloc returns every large activation to the kernel, so
// each layer would pay page faults again.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: speed MODEL_DIR IMAGE [RUNS]".into());
    }
    let runs: usize = args.get(3).map(|r| r.parse()).transpose()?.unwrap_or(30);
    let files = ModelFiles::new(ModelSource::Dir(PathBuf::from(&args[1])), Progress::none());
    let model = ImageClassifier::load(&files, &Device::Cpu, DType::F32)?;
    let image = load_image(&PathBuf::from(&args[2]))?;
    let x = model.preprocess().apply(&image, &Device::Cpu)?;
    for batch in [1usize, 8] {
        let xb = Tensor::stack(&vec![x.clone(); batch], 0)?;
        for _ in 0..3 {
            model.logits(&xb)?;
        }
        let mut times = Vec::new();
        for _ in 0..(runs / batch).max(3) {
            let t = Instant::now();
            model.logits(&xb)?;
            times.push(t.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let med = times[times.len() / 2];
        println!(
            "mlbench {} batch {batch}: median {:.2} ms, {:.2} ms/image, {:.1} images/s",
            model.model().name(),
            med * 1e3,
            med * 1e3 / batch as f64,
            batch as f64 / med
        );
    }
    Ok(())
}
