//! The whole tiny SD-1.5-shaped pipeline against diffusers' images from the same latents
//! (scripts/reference/diffusion_goldens.py tiny), and the pipeline's input checks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_diffusion::{LoadOptions, SchedulerKind, StableDiffusion, Txt2ImgParams};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn golden() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        root().join("tests/golden/diffusion-tiny-sd.safetensors"),
        &Device::Cpu,
    )
    .unwrap()
}

fn pipeline() -> StableDiffusion {
    let dir = root().join("tests/data/diffusion-tiny-sd");
    let files = ModelFiles::new(ModelSource::Dir(dir), Progress::none());
    StableDiffusion::load(&files, &LoadOptions::default(), None).unwrap()
}

fn params(g: &HashMap<String, Tensor>, kind: SchedulerKind) -> Txt2ImgParams {
    Txt2ImgParams {
        prompt: "a photo of a cat, painting".into(),
        negative_prompt: "blurry".into(),
        steps: 4,
        guidance: 7.5,
        scheduler: Some(kind),
        latents: Some(g["image.latents"].clone()),
        ..Default::default()
    }
}

fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let mse: f32 = (a - b)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    10.0 * (1.0 / mse.max(1e-20) as f64).log10()
}

#[test]
fn prompt_embeddings_match_diffusers() {
    let g = golden();
    let sd = pipeline();
    let embeds = sd
        .encode_prompt("a photo of a cat, painting", "blurry", 7.5)
        .unwrap();
    assert!(embeds.pooled.is_none());
    let (emb, truncated) = (embeds.text, embeds.truncated);
    let want = Tensor::cat(&[&g["text.negative_embeds"], &g["text.prompt_embeds"]], 0).unwrap();
    let d: f32 = (emb - want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!(d < 1e-4, "embeddings differ by {d}");
    assert_eq!(truncated, (0, 0));
}

#[test]
fn whole_images_match_diffusers() {
    let g = golden();
    let sd = pipeline();
    for (name, kind) in [
        ("ddim", SchedulerKind::Ddim),
        ("dpmpp_2m", SchedulerKind::DpmPp2m),
    ] {
        let out = sd.generate(&params(&g, kind), &Progress::none()).unwrap();
        assert_eq!((out.width, out.height), (16, 16));
        // golden: (H, W, 3) floats in [0, 1]
        let want = g[&format!("image.{name}")]
            .permute((2, 0, 1))
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let p = psnr(&out.pixels, &want);
        eprintln!("{name}: PSNR {p:.1} dB");
        assert!(p >= 40.0, "{name}: PSNR {p:.1} dB");
        let images = out.images().unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].dimensions(), (16, 16));
    }
}

#[test]
fn v_prediction_image_matches_diffusers() {
    let g = golden();
    let mut sd = pipeline();
    let config = mlbench_diffusion::config::read_json(
        &root().join("tests/data/diffusion-schedulers/ddim_v_trailing.json"),
    )
    .unwrap();
    sd.set_scheduler_config(config);
    let out = sd
        .generate(&params(&g, SchedulerKind::Ddim), &Progress::none())
        .unwrap();
    let want = g["image.ddim_v_trailing"]
        .permute((2, 0, 1))
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let p = psnr(&out.pixels, &want);
    assert!(p >= 40.0, "v-prediction: PSNR {p:.1} dB");
    // The epsilon image differs: the config was really used.
    let eps = g["image.ddim"]
        .permute((2, 0, 1))
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    assert!(psnr(&out.pixels, &eps) < 40.0);
}

#[test]
fn same_seed_same_bytes_and_batch_equals_single() {
    let sd = pipeline();
    let p = Txt2ImgParams {
        prompt: "a cat".into(),
        steps: 2,
        seed: 7,
        num_images: 2,
        scheduler: Some(SchedulerKind::EulerAncestral),
        ..Default::default()
    };
    let a = sd
        .generate(&p, &Progress::none())
        .unwrap()
        .images()
        .unwrap();
    let b = sd
        .generate(&p, &Progress::none())
        .unwrap()
        .images()
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a[0], a[1], "two images of a batch are the same");
    let other = sd
        .generate(
            &Txt2ImgParams {
                seed: 8,
                ..p.clone()
            },
            &Progress::none(),
        )
        .unwrap();
    assert_ne!(other.images().unwrap()[0], a[0], "seed changes nothing");
}

#[test]
fn img2img_runs_the_tail_of_the_schedule() {
    let sd = pipeline();
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        20,
        17,
        image::Rgb([200, 30, 30]),
    ));
    let p = Txt2ImgParams {
        prompt: "a cat".into(),
        steps: 5,
        strength: 0.6,
        init_image: Some(img),
        scheduler: Some(SchedulerKind::Ddim),
        ..Default::default()
    };
    let steps = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = steps.clone();
    let progress = Progress::new(move |e| s2.lock().unwrap().push(format!("{e:?}")));
    let out = sd.generate(&p, &progress).unwrap();
    assert_eq!(
        (out.width, out.height),
        (16, 16),
        "size rounds down to a multiple of 8"
    );
    let events = steps.lock().unwrap();
    assert!(events[0].contains("total: Some(3)"), "{events:?}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let sd = pipeline();
    let base = Txt2ImgParams {
        prompt: "a cat".into(),
        steps: 1,
        ..Default::default()
    };
    let err = |p: Txt2ImgParams| sd.generate(&p, &Progress::none()).unwrap_err().to_string();
    let e = err(Txt2ImgParams {
        width: Some(500),
        ..base.clone()
    });
    assert!(e.contains("--width 500"), "{e}");
    let e = err(Txt2ImgParams {
        steps: 0,
        ..base.clone()
    });
    assert!(e.contains("--steps"), "{e}");
    let e = err(Txt2ImgParams {
        latents: Some(Tensor::zeros((1, 4, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap()),
        width: Some(16),
        height: Some(16),
        ..base.clone()
    });
    assert!(e.contains("--latents has shape"), "{e}");
}
