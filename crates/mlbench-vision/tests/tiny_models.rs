//! Tiny random transformers checkpoints (tests/data/vision-tiny-*, made by
//! scripts/reference/vision_goldens.py tiny) against transformers' logits.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_vision::classify::load_safetensors;
use mlbench_vision::image::load_image;
use mlbench_vision::{ClassifyParams, ImageClassifier};

const MODELS: [&str; 5] = ["resnet", "resnet-basic", "vit", "efficientnet", "convnext"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn load(name: &str) -> ImageClassifier {
    let dir = root().join(format!("tests/data/vision-tiny-{name}"));
    let files = ModelFiles::new(ModelSource::Dir(dir), Progress::none());
    ImageClassifier::load(&files, &Device::Cpu, DType::F32).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn logits_match_transformers_within_1e_4() {
    let g = load_safetensors(&root().join("tests/golden/vision-tiny.safetensors")).unwrap();
    for name in MODELS {
        let model = load(name);
        assert_eq!(model.labels(), ["cat", "dog", "bird"], "{name}: id2label");
        let logits = model.logits(&g[&format!("{name}.input")]).unwrap();
        let diff = max_abs_diff(&logits, &g[&format!("{name}.logits")]);
        eprintln!("{name}: max |logit diff| = {diff:.2e}");
        assert!(diff < 1e-4, "{name}: max abs logit diff {diff}");
    }
}

#[test]
fn preprocessing_matches_the_transformers_image_processor() {
    let g = load_safetensors(&root().join("tests/golden/vision-tiny.safetensors")).unwrap();
    let photo = load_image(&root().join("tests/data/chelsea.png")).unwrap();
    for name in MODELS {
        let model = load(name);
        let ours = model.preprocess().apply(&photo, &Device::Cpu).unwrap();
        let theirs = &g[&format!("{name}.chelsea.pixel_values")];
        assert_eq!(ours.dims(), theirs.dims(), "{name}: input size");
        // Resampling differs from PIL's by rounding: a few 1/255 steps at most, after
        // normalisation by std ≈ 0.23 about 0.02 per step.
        let mean = (&ours - theirs)
            .unwrap()
            .abs()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        eprintln!("{name}: mean |pixel diff| vs transformers = {mean:.4}");
        assert!(mean < 0.02, "{name}: mean pixel difference {mean}");
        let preds = model
            .classify(
                std::slice::from_ref(&photo),
                &ClassifyParams {
                    top_k: 3,
                    batch_size: 1,
                },
            )
            .unwrap();
        let want = g[&format!("{name}.chelsea.logits")]
            .to_vec1::<f32>()
            .unwrap();
        let best = (0..3).max_by(|&a, &b| want[a].total_cmp(&want[b])).unwrap();
        assert_eq!(preds[0][0].label, model.labels()[best], "{name}: top-1");
        let total: f32 = preds[0].iter().map(|p| p.score).sum();
        assert!((total - 1.0).abs() < 1e-5, "{name}: scores sum to {total}");
    }
}
