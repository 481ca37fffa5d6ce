//! `mlbench diffuse`: check the arguments, load the pipeline (with LoRAs), generate, write PNGs
//! atomically with their `parameters` chunk.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::source::ModelFiles;
use mlbench_diffusion::lora::{LoraSet, LoraSpec};
use mlbench_diffusion::output::{encode_png, ImageParameters};
use mlbench_diffusion::pipeline::{read_init_image, read_latents};
use mlbench_diffusion::{LoadOptions, SchedulerKind, StableDiffusion, Txt2ImgParams};
use serde::Serialize;

use crate::cli::DiffuseArgs;

#[derive(Serialize)]
struct Summary<'a> {
    images: Vec<ImageSummary>,
    model: &'a str,
    scheduler: &'static str,
    steps: usize,
    guidance: f64,
    width: usize,
    height: usize,
    prompt_tokens_truncated: usize,
    lora: Option<mlbench_diffusion::lora::LoraReport>,
}

#[derive(Serialize)]
struct ImageSummary {
    path: PathBuf,
    seed: u64,
}

pub fn run(args: DiffuseArgs) -> Result<()> {
    // 1. everything that can be checked before loading anything
    let scheduler = args
        .scheduler
        .as_deref()
        .map(str::parse::<SchedulerKind>)
        .transpose()?;
    let init_image = args
        .init_image
        .as_deref()
        .map(read_init_image)
        .transpose()?;
    let latents = args.latents.as_deref().map(read_latents).transpose()?;
    let specs = args
        .lora
        .iter()
        .map(|s| LoraSpec::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let params = Txt2ImgParams {
        prompt: args.prompt.clone(),
        negative_prompt: args.negative_prompt.clone(),
        steps: args.steps,
        guidance: args.guidance,
        width: args.width,
        height: args.height,
        seed: args.seed,
        num_images: args.num_images,
        scheduler,
        latents,
        init_image,
        strength: args.strength,
    };
    check_params(&params)?;
    let device = args.device.device.parse::<DeviceSpec>()?.select()?;
    let dtype = match &args.device.dtype {
        Some(d) => d.parse::<DTypeSpec>()?,
        None => DTypeSpec::default_for(&device),
    };

    // 2. load
    let catalog = Catalog::builtin()?;
    let spec = match &args.model {
        Some(m) => m.clone(),
        None => catalog
            .default_for("diffuse")
            .context("no default diffuse model: pass --model DIR (a diffusers folder)")?
            .id
            .clone(),
    };
    let progress = crate::progress::bars(args.json);
    let files = ModelFiles::from_spec(&spec, &catalog, progress.clone())?;
    let loras = LoraSet::load(&specs)?;
    let options = LoadOptions {
        device,
        dtype: dtype.dtype(),
    };
    let sd = StableDiffusion::load(&files, &options, Some(&loras))?;
    let report = (!specs.is_empty()).then(|| loras.report());
    if let Some(r) = report.as_ref().filter(|_| args.lora_report) {
        eprint!("{r}");
    }

    // 3. generate
    let out = sd.generate(&params, &progress)?;
    if out.truncated.0 > 0 || out.truncated.1 > 0 {
        progress.message(format!(
            "warning: prompt longer than the 77-token window: {} prompt and {} negative-prompt \
             tokens were truncated",
            out.truncated.0, out.truncated.1
        ));
    }

    // 4. write
    let model_name = model_name(&spec);
    let lora_names: Vec<(String, f32)> = specs
        .iter()
        .map(|s| {
            let stem = s.path.file_stem().unwrap_or_default().to_string_lossy();
            (stem.into_owned(), s.scale)
        })
        .collect();
    let images = out.images()?;
    let paths = output_paths(&args.output, images.len());
    let mut summaries = Vec::new();
    for (k, (img, path)) in images.iter().zip(&paths).enumerate() {
        let seed = args.seed.wrapping_add(k as u64);
        let text = ImageParameters {
            prompt: &args.prompt,
            negative_prompt: &args.negative_prompt,
            steps: args.steps,
            sampler: out.scheduler,
            guidance: args.guidance,
            seed,
            width: out.width,
            height: out.height,
            model: &model_name,
            loras: &lora_names,
            denoising_strength: params.init_image.as_ref().map(|_| args.strength),
        }
        .to_text();
        crate::write::atomic(path, &encode_png(img, &text)?)?;
        summaries.push(ImageSummary {
            path: path.clone(),
            seed,
        });
    }
    if args.json {
        let summary = Summary {
            images: summaries,
            model: &spec,
            scheduler: out.scheduler.name(),
            steps: args.steps,
            guidance: args.guidance,
            width: out.width,
            height: out.height,
            prompt_tokens_truncated: out.truncated.0,
            lora: report,
        };
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    Ok(())
}

/// The checks that need no model (the rest come from the pipeline).
fn check_params(p: &Txt2ImgParams) -> Result<()> {
    for (name, v) in [("width", p.width), ("height", p.height)] {
        if let Some(v) = v.filter(|v| *v == 0 || v % 8 != 0) {
            bail!("--{name} {v} is not a positive multiple of 8");
        }
    }
    if p.steps == 0 {
        bail!("--steps must be at least 1");
    }
    if p.num_images == 0 {
        bail!("--num-images must be at least 1");
    }
    if !(0.0..=1.0).contains(&p.strength) {
        bail!("--strength {} is not between 0 and 1", p.strength);
    }
    Ok(())
}

/// `out.png` for one image; `out-1.png`, `out-2.png`, … for several.
fn output_paths(path: &Path, n: usize) -> Vec<PathBuf> {
    if n == 1 {
        return vec![path.to_path_buf()];
    }
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let ext = path
        .extension()
        .map_or("png".into(), |e| e.to_string_lossy());
    (1..=n)
        .map(|k| path.with_file_name(format!("{stem}-{k}.{ext}")))
        .collect()
}

fn model_name(spec: &str) -> String {
    let trimmed = spec.trim_end_matches('/');
    Path::new(trimmed)
        .file_name()
        .map_or(trimmed.to_string(), |n| n.to_string_lossy().into_owned())
}
