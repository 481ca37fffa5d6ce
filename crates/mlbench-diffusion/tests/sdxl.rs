//! The tiny SDXL-shaped pipeline (two text encoders, pooled text embeddings and time ids added
//! to the UNet's time embedding) against diffusers (scripts/reference/diffusion_goldens.py tiny).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_diffusion::config::read_json;
use mlbench_diffusion::tokenizer::ClipTokenizer;
use mlbench_diffusion::unet::UNet;
use mlbench_diffusion::{LoadOptions, SchedulerKind, StableDiffusion, Txt2ImgParams};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn dir() -> PathBuf {
    root().join("tests/data/diffusion-tiny-sdxl")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        root().join("tests/golden/diffusion-tiny-sdxl.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}

fn pipeline() -> StableDiffusion {
    let files = ModelFiles::new(ModelSource::Dir(dir()), Progress::none());
    StableDiffusion::load(&files, &LoadOptions::default(), None).unwrap()
}

#[test]
fn second_tokenizer_pads_with_its_own_token() {
    let g = golden();
    let tok = ClipTokenizer::from_dir(&dir().join("tokenizer_2")).unwrap();
    let want: Vec<u32> = g["tokens2.prompt"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(tok.encode("a photo of a cat, painting").unwrap().ids, want);
}

#[test]
fn prompt_embeddings_match_diffusers() {
    let g = golden();
    let sd = pipeline();
    let e = sd
        .encode_prompt("a photo of a cat, painting", "blurry", 5.0)
        .unwrap();
    let want = Tensor::cat(&[&g["text.negative_embeds"], &g["text.prompt_embeds"]], 0).unwrap();
    let d = max_diff(&e.text, &want);
    assert!(d < 1e-4, "embeddings differ by {d}");
    let want = Tensor::cat(&[&g["text.negative_pooled"], &g["text.pooled"]], 0).unwrap();
    let d = max_diff(e.pooled.as_ref().unwrap(), &want);
    assert!(d < 1e-4, "pooled differs by {d}");
    // force_zeros_for_empty_prompt: an empty negative prompt is zeros, not the embedding of "".
    let e = sd
        .encode_prompt("a photo of a cat, painting", "", 5.0)
        .unwrap();
    let neg: f32 = e
        .text
        .narrow(0, 0, 1)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(neg, 0.0);
}

#[test]
fn unet_with_added_conditioning_matches_diffusers() {
    let g = golden();
    let unet_dir = dir().join("unet");
    let config = read_json(&unet_dir.join("config.json")).unwrap();
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[unet_dir.join("diffusion_pytorch_model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
        .unwrap()
    };
    let unet = UNet::load(config, vb).unwrap();
    assert!(unet.needs_added_conditioning());
    let out = unet
        .forward_added(
            &g["unet.latents"],
            501.0,
            &g["unet.embeds"],
            &g["unet.text_embeds"],
            &g["unet.time_ids"],
        )
        .unwrap();
    let d = max_diff(&out, &g["unet.out"]);
    assert!(d < 1e-4, "unet output differs by {d}");
    let err = unet
        .forward(&g["unet.latents"], 501.0, &g["unet.embeds"])
        .unwrap_err();
    assert!(err.to_string().contains("time ids"), "{err}");
}

#[test]
fn whole_image_matches_diffusers() {
    let g = golden();
    let sd = pipeline();
    let params = Txt2ImgParams {
        prompt: "a photo of a cat, painting".into(),
        negative_prompt: "blurry".into(),
        steps: 4,
        guidance: 5.0,
        scheduler: Some(SchedulerKind::Euler),
        latents: Some(g["image.latents"].clone()),
        ..Default::default()
    };
    assert_eq!(sd.default_scheduler(), SchedulerKind::Euler);
    let out = sd.generate(&params, &Progress::none()).unwrap();
    let want = g["image.euler"]
        .permute((2, 0, 1))
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mse: f32 = (&out.pixels - want)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    let psnr = 10.0 * (1.0 / mse.max(1e-20) as f64).log10();
    assert!(psnr >= 40.0, "PSNR {psnr:.1} dB");
}
