//! EfficientNet-lite0 on its real ImageNet weights (scripts/fetch-test-weights.sh) against
//! PyTorch (tests/golden/vision-efficientnet-lite0.safetensors, made by
//! scripts/reference/vision_goldens.py lite0 from the same weights and photos).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_vision::classify::load_safetensors;
use mlbench_vision::image::load_image;
use mlbench_vision::{ClassifyParams, ImageClassifier};

const PHOTOS: [&str; 3] = ["chelsea.png", "coffee.png", "rocket.jpg"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fetched model; fails the test (never skips) when it is missing.
fn lite0() -> ImageClassifier {
    let dir = match std::env::var_os("MLBENCH_TEST_WEIGHTS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mlbench/test-weights"),
    }
    .join("efficientnet-lite0");
    assert!(
        dir.join(".complete").is_file(),
        "{} is missing: run scripts/fetch-test-weights.sh",
        dir.display()
    );
    let files = ModelFiles::new(ModelSource::Dir(dir), Progress::none());
    ImageClassifier::load(&files, &Device::Cpu, DType::F32).unwrap()
}

fn golden() -> std::collections::HashMap<String, Tensor> {
    load_safetensors(&root().join("tests/golden/vision-efficientnet-lite0.safetensors")).unwrap()
}

fn top_k(v: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[b].total_cmp(&v[a]));
    idx.truncate(k);
    idx
}

#[test]
fn logits_match_pytorch_on_the_same_pixels() {
    let model = lite0();
    let g = golden();
    let mut inputs = Vec::new();
    for photo in PHOTOS {
        let stem = photo.split('.').next().unwrap();
        let pixels = g[&format!("{stem}.pixels")].to_dtype(DType::F32).unwrap();
        inputs.push(((pixels - 127.0).unwrap() / 128.0).unwrap());
    }
    // One batch of three: batching must not change any image's result.
    let logits = model.logits(&Tensor::stack(&inputs, 0).unwrap()).unwrap();
    for (i, photo) in PHOTOS.iter().enumerate() {
        let stem = photo.split('.').next().unwrap();
        let want = g[&format!("{stem}.logits")].to_vec1::<f32>().unwrap();
        let got = logits.get(i).unwrap().to_vec1::<f32>().unwrap();
        let diff = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!("{stem}: max |logit diff| = {diff:.2e}");
        assert!(diff < 1e-3, "{stem}: max abs logit diff {diff}");
        assert_eq!(top_k(&got, 5), top_k(&want, 5), "{stem}: top-5 differs");
    }
}

#[test]
fn our_preprocessing_gives_pytorchs_predictions() {
    let model = lite0();
    let g = golden();
    let images: Vec<_> = PHOTOS
        .iter()
        .map(|p| load_image(&root().join("tests/data").join(p)).unwrap())
        .collect();
    for (img, photo) in images.iter().zip(PHOTOS) {
        let stem = photo.split('.').next().unwrap();
        // Our bicubic resize + crop against PIL's: the same pixels up to rounding.
        let ours = model.preprocess().pixels(img).into_raw();
        let pil = g[&format!("{stem}.pixels")]
            .permute((1, 2, 0))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<u8>()
            .unwrap();
        let mean = ours
            .iter()
            .zip(&pil)
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .sum::<f64>()
            / pil.len() as f64;
        eprintln!("{stem}: mean |pixel diff| vs PIL = {mean:.3}");
        assert!(mean < 1.0, "{stem}: mean pixel difference {mean}");
    }
    let params = ClassifyParams {
        top_k: 5,
        batch_size: 2,
    };
    let preds = model.classify(&images, &params).unwrap();
    let labels = model.labels();
    for (p, photo) in preds.iter().zip(PHOTOS) {
        let stem = photo.split('.').next().unwrap();
        let want = top_k(&g[&format!("{stem}.logits")].to_vec1::<f32>().unwrap(), 5);
        let got: Vec<&str> = p.iter().map(|p| p.label.as_str()).collect();
        eprintln!("{stem}: {p:?}");
        assert_eq!(
            got[0], labels[want[0]],
            "{stem}: top-1 differs from PyTorch"
        );
        let shared = want.iter().filter(|&&i| got.contains(&labels[i].as_str()));
        assert!(
            shared.count() >= 4,
            "{stem}: top-5 {got:?} vs PyTorch's {want:?}"
        );
    }
    // The check: a cat photo has "tiger cat / tabby / Egyptian cat" in its top 3.
    let cat: Vec<&str> = preds[0][..3].iter().map(|p| p.label.as_str()).collect();
    for want in ["tiger cat", "tabby, tabby cat", "Egyptian cat"] {
        assert!(cat.contains(&want), "chelsea top-3 {cat:?} lacks {want}");
    }
    assert_eq!(preds[1][0].label, "espresso");
}

#[test]
fn other_efficientnets_in_this_layout_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = match std::env::var_os("MLBENCH_TEST_WEIGHTS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/mlbench/test-weights"),
    }
    .join("efficientnet-lite0/model.safetensors");
    let mut tensors = load_safetensors(&src).unwrap();
    let load = |tensors: &std::collections::HashMap<String, Tensor>| {
        let path = dir.path().join("model.safetensors");
        candle_core::safetensors::save(tensors, &path).unwrap();
        let files = ModelFiles::new(ModelSource::File(path), Progress::none());
        ImageClassifier::load(&files, &Device::Cpu, DType::F32)
            .unwrap_err()
            .to_string()
    };
    // B0–B7 have squeeze-and-excitation; lite1–4 have more blocks.
    let mut se = tensors.clone();
    se.insert(
        "_blocks.0._se_reduce.weight".into(),
        Tensor::zeros((8, 32, 1, 1), DType::F32, &Device::Cpu).unwrap(),
    );
    assert!(load(&se).contains("squeeze-and-excitation"));
    let extra = tensors["_blocks.15._project_conv.weight"].clone();
    tensors.insert("_blocks.16._project_conv.weight".into(), extra);
    assert!(load(&tensors).contains("only lite0"));
}
