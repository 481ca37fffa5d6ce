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

/// Architectures with their own golden file tests/golden/vision-tiny-ARCH.safetensors (made by
/// `vision_goldens.py tiny-arch ARCH`). `dinov2` is configured for 40×40 and fed 32×32, so its
/// position embeddings go through the bicubic resampling. `mobilenetv4` is a timm checkpoint
/// (timm's config.json, float16 weights, 64×64 input).
const OWN_GOLDEN: [&str; 4] = ["dinov2", "dinov2-swiglu", "clip", "mobilenetv4"];

fn own_golden(name: &str) -> std::collections::HashMap<String, Tensor> {
    load_safetensors(&root().join(format!("tests/golden/vision-tiny-{name}.safetensors"))).unwrap()
}

#[test]
fn new_architectures_match_transformers_within_1e_4() {
    for name in OWN_GOLDEN {
        let g = own_golden(name);
        let model = load(name);
        assert_eq!(model.model().name(), name.split('-').next().unwrap());
        assert_eq!(model.labels(), ["cat", "dog", "bird"], "{name}: id2label");
        let logits = model.logits(&g["input"]).unwrap();
        let diff = max_abs_diff(&logits, &g["logits"]);
        eprintln!("{name}: max |logit diff| = {diff:.2e}");
        assert!(diff < 1e-4, "{name}: max abs logit diff {diff}");
    }
}

#[test]
fn new_architectures_preprocess_and_rank_like_transformers() {
    let photo = load_image(&root().join("tests/data/chelsea.png")).unwrap();
    for name in OWN_GOLDEN {
        let g = own_golden(name);
        let model = load(name);
        let ours = model.preprocess().apply(&photo, &Device::Cpu).unwrap();
        let theirs = &g["chelsea.pixel_values"];
        assert_eq!(ours.dims(), theirs.dims(), "{name}: input size");
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
        // The logits of transformers' own pixels: exact parity on a real photo.
        let logits = model.logits(&theirs.unsqueeze(0).unwrap()).unwrap();
        let diff = max_abs_diff(&logits.squeeze(0).unwrap(), &g["chelsea.logits"]);
        assert!(diff < 1e-4, "{name}: chelsea logit diff {diff}");
    }
}

#[test]
fn dinov2_and_clip_reject_inputs_they_cannot_take() {
    let tiny = Tensor::zeros((1, 3, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let err = load("dinov2").logits(&tiny).unwrap_err().to_string();
    assert!(err.contains("smaller than one 8×8 patch"), "{err}");
    let other = Tensor::zeros((1, 3, 40, 40), DType::F32, &Device::Cpu).unwrap();
    let err = load("clip").logits(&other).unwrap_err().to_string();
    assert!(err.contains("expects 32×32"), "{err}");
    // DINOv2 takes other sizes by resampling its position embeddings (non-square too).
    let wide = Tensor::zeros((1, 3, 32, 48), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(load("dinov2").logits(&wide).unwrap().dims(), [1, 3]);
}
