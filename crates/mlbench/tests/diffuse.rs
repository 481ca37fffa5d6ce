//! `mlbench diffuse` end to end on the tiny SD-1.5-shaped pipeline (tests/data/diffusion-tiny-sd).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn model() -> PathBuf {
    root().join("tests/data/diffusion-tiny-sd")
}

fn mlbench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlbench"))
        .arg("diffuse")
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap()
}

fn pngs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect()
}

#[test]
fn image_from_latents_matches_diffusers_and_records_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cat.png");
    let latents = root().join("tests/data/diffusion-tiny-sd-latents.safetensors");
    let o = mlbench(&[
        "a photo of a cat, painting",
        "--negative-prompt",
        "blurry",
        "--model",
        model().to_str().unwrap(),
        "--latents",
        latents.to_str().unwrap(),
        "--steps",
        "4",
        "--scheduler",
        "ddim",
        "--seed",
        "5",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["scheduler"], "ddim");
    assert_eq!(summary["width"], 16);
    let bytes = std::fs::read(&out).unwrap();
    let text = mlbench_diffusion::output::read_parameters(&bytes)
        .unwrap()
        .unwrap();
    assert!(text.starts_with("a photo of a cat, painting\nNegative prompt: blurry\nSteps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 5, Size: 16x16, Model: diffusion-tiny-sd"), "{text}");
    // The 8-bit image against diffusers' float image.
    let golden = candle_core::safetensors::load(
        root().join("tests/golden/diffusion-tiny-sd.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let want: Vec<f32> = golden["image.ddim"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let buf = mlbench_diffusion::output::decode_png(&bytes)
        .unwrap()
        .into_raw();
    assert_eq!(buf.len(), want.len());
    let mse: f64 = buf
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as f64 / 255.0 - *b as f64).powi(2))
        .sum::<f64>()
        / want.len() as f64;
    let psnr = 10.0 * (1.0 / mse.max(1e-20)).log10();
    assert!(psnr >= 40.0, "PSNR {psnr:.1} dB");
}

#[test]
fn same_seed_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let out = dir.path().join(name);
        let o = mlbench(&[
            "a cat",
            "--model",
            model().to_str().unwrap(),
            "--steps",
            "2",
            "--seed",
            "3",
            "--scheduler",
            "euler_a",
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read(out).unwrap()
    };
    assert_eq!(run("a.png"), run("b.png"));
}

#[test]
fn bad_inputs_fail_with_one_line_and_no_png() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("model");
    copy_dir(&model(), &truncated);
    let unet = truncated.join("unet/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&unet).unwrap();
    std::fs::write(&unet, &bytes[..bytes.len() / 2]).unwrap();
    // A LoRA for another architecture: kohya keys that name no module of this model.
    let alien = dir.path().join("alien.safetensors");
    let t = |shape: (usize, usize)| {
        candle_core::Tensor::zeros(shape, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap()
    };
    candle_core::safetensors::save(
        &std::collections::HashMap::from([
            (
                "lora_unet_no_such_block_proj.lora_down.weight".to_string(),
                t((4, 8)),
            ),
            (
                "lora_unet_no_such_block_proj.lora_up.weight".to_string(),
                t((8, 4)),
            ),
        ]),
        &alien,
    )
    .unwrap();
    let alien_arg = alien.to_str().unwrap().to_string();
    // A LoRA with the wrong shapes (made for the 8-wide base in tests/data/lora-base).
    let wrong = root().join("tests/data/lora-files/kohya.safetensors");
    let wrong_arg = wrong.to_str().unwrap().to_string();
    let out = dir.path().join("x.png");
    let o = out.to_str().unwrap();
    let m = model();
    let m = m.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["a cat", "--model", m, "--width", "500", "-o", o],
            "--width 500",
        ),
        (&["a cat", "--model", m, "--steps", "0", "-o", o], "--steps"),
        (
            &["a cat", "--model", m, "--scheduler", "heun9", "-o", o],
            "unknown scheduler",
        ),
        (
            &[
                "a cat",
                "--model",
                m,
                "--init-image",
                "/nonexistent/cat.png",
                "-o",
                o,
            ],
            "--init-image",
        ),
        (
            &["a cat", "--model", truncated.to_str().unwrap(), "-o", o],
            "diffusion_pytorch_model.safetensors",
        ),
        (
            &["a cat", "--model", m, "--lora", &alien_arg, "-o", o],
            "alien.safetensors",
        ),
        (
            &["a cat", "--model", m, "--lora", &wrong_arg, "-o", o],
            "does not fit the model",
        ),
    ];
    for (args, needle) in cases {
        let r = mlbench(args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(pngs(dir.path()).is_empty(), "{args:?} left a PNG");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
