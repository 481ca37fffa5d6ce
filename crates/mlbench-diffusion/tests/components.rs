//! Each component of the tiny SD-1.5-shaped pipeline against diffusers' goldens
//! (scripts/reference/diffusion_goldens.py tiny).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use mlbench_diffusion::clip::ClipTextModel;
use mlbench_diffusion::config::read_json;
use mlbench_diffusion::tokenizer::ClipTokenizer;
use mlbench_diffusion::unet::UNet;
use mlbench_diffusion::vae::Vae;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model_dir() -> PathBuf {
    root().join("tests/data/diffusion-tiny-sd")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        root().join("tests/golden/diffusion-tiny-sd.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn vb(file: &Path) -> VarBuilder<'static> {
    unsafe { VarBuilder::from_mmaped_safetensors(&[file], DType::F32, &Device::Cpu).unwrap() }
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn tokenizer_matches_transformers() {
    let tok = ClipTokenizer::from_dir(&model_dir().join("tokenizer")).unwrap();
    let g = golden();
    for (key, text) in [
        ("prompt", "a photo of a cat, painting"),
        ("negative", "blurry"),
        ("empty", ""),
        ("unknown", "Hello   WORLD  dog's! 42"),
    ] {
        let want: Vec<u32> = g[&format!("tokens.{key}")]
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let got = tok.encode(text).unwrap();
        assert_eq!(got.ids, want, "{key}");
        assert_eq!(got.truncated, 0);
    }
    let long = "cat ".repeat(100);
    let got = tok.encode(&long).unwrap();
    assert_eq!(got.ids.len(), 77);
    assert_eq!(got.truncated, 25);
}

#[test]
fn text_encoder_matches_transformers() {
    let dir = model_dir().join("text_encoder");
    let config = read_json(&dir.join("config.json")).unwrap();
    let model = ClipTextModel::load(config, vb(&dir.join("model.safetensors"))).unwrap();
    let g = golden();
    let ids = g["tokens.prompt"]
        .to_dtype(DType::U32)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let out = model.forward(&ids).unwrap();
    let d = max_diff(&out.last_hidden_state, &g["text.prompt_embeds"]);
    assert!(d < 1e-4, "embeddings differ by {d}");
    let d = max_diff(&out.pooled, &g["text.pooled"]);
    assert!(d < 1e-4, "pooled differs by {d}");
}

#[test]
fn unet_matches_diffusers() {
    let dir = model_dir().join("unet");
    let config = read_json(&dir.join("config.json")).unwrap();
    let unet = UNet::load(config, vb(&dir.join("diffusion_pytorch_model.safetensors"))).unwrap();
    let g = golden();
    let t: Vec<f32> = g["unet.timestep"].to_vec1().unwrap();
    let out = unet
        .forward(&g["unet.latents"], t[0] as f64, &g["unet.embeds"])
        .unwrap();
    let d = max_diff(&out, &g["unet.out"]);
    assert!(d < 1e-4, "unet output differs by {d}");
}

#[test]
fn vae_matches_diffusers() {
    let dir = model_dir().join("vae");
    let config = read_json(&dir.join("config.json")).unwrap();
    let vae = Vae::load(config, vb(&dir.join("diffusion_pytorch_model.safetensors"))).unwrap();
    let g = golden();
    let d = max_diff(&vae.decode(&g["vae.latents"]).unwrap(), &g["vae.decoded"]);
    assert!(d < 1e-4, "decode differs by {d}");
    let dist = vae.encode(&g["vae.image"]).unwrap();
    let d = max_diff(&dist.mean, &g["vae.encoded_mean"]);
    assert!(d < 1e-4, "encoded mean differs by {d}");
    let d = max_diff(&dist.std, &g["vae.encoded_std"]);
    assert!(d < 1e-4, "encoded std differs by {d}");
}

#[test]
fn unsupported_unet_option_is_an_error() {
    let dir = model_dir().join("unet");
    let mut config: serde_json::Value = read_json(&dir.join("config.json")).unwrap();
    config["resnet_time_scale_shift"] = "scale_shift".into();
    let config = serde_json::from_value(config).unwrap();
    let err = UNet::load(config, vb(&dir.join("diffusion_pytorch_model.safetensors"))).unwrap_err();
    assert!(err.to_string().contains("resnet_time_scale_shift"), "{err}");
}
