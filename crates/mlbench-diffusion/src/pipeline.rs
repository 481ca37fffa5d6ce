//! The Stable Diffusion pipeline (diffusers' `StableDiffusionPipeline` and
//! `StableDiffusionImg2ImgPipeline`): load a diffusers folder, then `encode_prompt` →
//! `denoise_step` × steps → `decode_latents`.

use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use mlbench_core::progress::{Progress, Unit};
use mlbench_core::source::ModelFiles;

use crate::clip::{ClipTextConfig, ClipTextModel};
use crate::config::{read_json, ModelIndex, UNetConfig, VaeConfig};
use crate::lora::{Component, LoraSet};
use crate::noise::Noise;
use crate::schedulers::{Scheduler, SchedulerConfig, SchedulerKind};
use crate::tokenizer::ClipTokenizer;
use crate::unet::UNet;
use crate::vae::Vae;
use crate::{Error, Result};

/// Everything one generation needs besides the model. [`Default`] holds the CLI's defaults.
#[derive(Debug, Clone)]
pub struct Txt2ImgParams {
    /// What to draw.
    pub prompt: String,
    /// What to steer away from (the unconditional branch of classifier-free guidance).
    pub negative_prompt: String,
    /// Denoising steps.
    pub steps: usize,
    /// Classifier-free guidance scale; ≤ 1 turns guidance off.
    pub guidance: f64,
    /// Image width in pixels (a multiple of 8); `None`: the model's own size.
    pub width: Option<usize>,
    /// Image height in pixels (a multiple of 8); `None`: the model's own size.
    pub height: Option<usize>,
    /// Seed of the initial noise (image k uses seed + k) and of the samplers' noise.
    pub seed: u64,
    /// Images to make.
    pub num_images: usize,
    /// Sampler; `None`: the model's own scheduler class if we implement it, else DPM++ 2M.
    pub scheduler: Option<SchedulerKind>,
    /// Initial noise (1 or `num_images`, C, H/f, W/f) instead of seeded noise, as diffusers'
    /// `latents=` (multiplied by the scheduler's initial sigma).
    pub latents: Option<Tensor>,
    /// img2img: the starting image (resized to the output size).
    pub init_image: Option<image::DynamicImage>,
    /// img2img: how much of the schedule to run (0 keeps the image, 1 ignores it).
    pub strength: f64,
}

impl Default for Txt2ImgParams {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: String::new(),
            steps: 30,
            guidance: 7.5,
            width: None,
            height: None,
            seed: 0,
            num_images: 1,
            scheduler: None,
            latents: None,
            init_image: None,
            strength: 0.75,
        }
    }
}

/// The result of [`StableDiffusion::generate`].
#[derive(Debug, Clone)]
pub struct Generation {
    /// The images, RGB in [0, 1] (num_images, 3, H, W), before 8-bit rounding.
    pub pixels: Tensor,
    /// The sampler used.
    pub scheduler: SchedulerKind,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Prompt tokens dropped to fit the 77-token window (prompt, negative prompt).
    pub truncated: (usize, usize),
}

impl Generation {
    /// The images as 8-bit RGB, rounded as diffusers' `numpy_to_pil`.
    pub fn images(&self) -> Result<Vec<image::RgbImage>> {
        let (n, _, h, w) = self.pixels.dims4()?;
        let data = (self.pixels.permute((0, 2, 3, 1))? * 255.0)?
            .round()?
            .clamp(0f32, 255f32)?
            .to_dtype(DType::U8)?
            .flatten_all()?
            .to_vec1::<u8>()?;
        Ok(data
            .chunks(h * w * 3)
            .take(n)
            .map(|c| image::RgbImage::from_raw(w as u32, h as u32, c.to_vec()).expect("size"))
            .collect())
    }
}

/// How to load a pipeline.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where to run.
    pub device: Device,
    /// Weight and activation type.
    pub dtype: DType,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
        }
    }
}

/// Text conditioning from [`StableDiffusion::encode_prompt`].
#[derive(Debug, Clone)]
pub struct PromptEmbeds {
    /// Per-token embeddings, negative first under guidance ((2 or 1), 77, width).
    pub text: Tensor,
    /// SDXL: the second encoder's pooled, projected embeddings, same order ((2 or 1), width).
    pub pooled: Option<Tensor>,
    /// Tokens truncated from (prompt, negative prompt).
    pub truncated: (usize, usize),
}

/// SDXL's second text encoder and its tokenizer.
#[derive(Debug)]
struct SecondEncoder {
    tokenizer: ClipTokenizer,
    model: ClipTextModel,
    force_zeros_for_empty_prompt: bool,
}

/// A loaded pipeline: SD-1.x/2.x shape (one text encoder) or SDXL shape (two text encoders,
/// pooled text embeddings and time ids added to the UNet's time embedding).
#[derive(Debug)]
pub struct StableDiffusion {
    tokenizer: ClipTokenizer,
    text_encoder: ClipTextModel,
    second: Option<SecondEncoder>,
    unet: UNet,
    vae: Vae,
    scheduler_config: SchedulerConfig,
    device: Device,
    dtype: DType,
}

/// Weight file names diffusers writes, in order of preference.
const UNET_FILES: &[&str] = &[
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
];
const TEXT_FILES: &[&str] = &["model.safetensors", "model.fp16.safetensors"];

impl StableDiffusion {
    /// Loads the pipeline folder of `files` (model_index.json; unet/, vae/, text_encoder/,
    /// tokenizer/, scheduler/), merging `loras` (if any) into the UNet and text encoder.
    pub fn load(
        files: &ModelFiles,
        options: &LoadOptions,
        loras: Option<&LoraSet>,
    ) -> Result<Self> {
        let index: ModelIndex = read_json(&files.get("model_index.json")?)?;
        let two_encoders = index
            .text_encoder_2
            .as_ref()
            .is_some_and(|(lib, _)| lib.is_some());
        let (device, dtype) = (&options.device, options.dtype);
        let vb = |folder: &str, names: &[&str], component: Option<Component>| {
            let path = weights(files, folder, names)?;
            match (loras, component) {
                (Some(set), Some(c)) if !set.is_empty() => {
                    set.var_builder(c, &[path], dtype, device)
                }
                _ => Ok(unsafe {
                    VarBuilder::from_mmaped_safetensors(&[&path], dtype, device)
                        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?
                }),
            }
        };
        let tokenizer = load_tokenizer(files, "tokenizer")?;
        let text_config: ClipTextConfig = read_json(&files.get("text_encoder/config.json")?)?;
        let text_encoder = ClipTextModel::load(
            text_config,
            vb("text_encoder", TEXT_FILES, Some(Component::TextEncoder))?,
        )?;
        let second = if two_encoders {
            let config: ClipTextConfig = read_json(&files.get("text_encoder_2/config.json")?)?;
            let vb2 = vb("text_encoder_2", TEXT_FILES, Some(Component::TextEncoder2))?;
            Some(SecondEncoder {
                tokenizer: load_tokenizer(files, "tokenizer_2")?,
                model: ClipTextModel::load(config, vb2)?,
                force_zeros_for_empty_prompt: index.force_zeros_for_empty_prompt.unwrap_or(true),
            })
        } else {
            None
        };
        let unet_config: UNetConfig = read_json(&files.get("unet/config.json")?)?;
        let unet = UNet::load(unet_config, vb("unet", UNET_FILES, Some(Component::Unet))?)?;
        let vae_config: VaeConfig = read_json(&files.get("vae/config.json")?)?;
        let vae = Vae::load(vae_config, vb("vae", UNET_FILES, None)?)?;
        let scheduler_config = read_json(&files.get("scheduler/scheduler_config.json")?)?;
        if unet.needs_added_conditioning() != two_encoders {
            return Err(Error::Model(format!(
                "{}: the UNet {} added text/time conditioning but the pipeline has {} text encoder(s)",
                files.source().describe(),
                if two_encoders { "lacks" } else { "expects" },
                if two_encoders { 2 } else { 1 }
            )));
        }
        Ok(Self {
            tokenizer,
            text_encoder,
            second,
            unet,
            vae,
            scheduler_config,
            device: device.clone(),
            dtype,
        })
    }

    /// The UNet.
    pub fn unet(&self) -> &UNet {
        &self.unet
    }

    /// The autoencoder.
    pub fn vae(&self) -> &Vae {
        &self.vae
    }

    /// The scheduler configuration of the model.
    pub fn scheduler_config(&self) -> &SchedulerConfig {
        &self.scheduler_config
    }

    /// Replaces the model's scheduler configuration (e.g. to run a v-prediction fine-tune whose
    /// folder carries an epsilon config).
    pub fn set_scheduler_config(&mut self, config: SchedulerConfig) {
        self.scheduler_config = config;
    }

    /// The sampler used when none is asked for: the model's own, if implemented, else DPM++ 2M.
    pub fn default_scheduler(&self) -> SchedulerKind {
        self.scheduler_config
            .class_name
            .as_deref()
            .and_then(|c| SchedulerKind::from_class(c, &self.scheduler_config))
            .unwrap_or(SchedulerKind::DpmPp2m)
    }

    /// Image pixels per latent pixel.
    pub fn scale_factor(&self) -> usize {
        self.vae.config().scale_factor()
    }

    /// The model's native size in pixels.
    pub fn default_size(&self) -> usize {
        self.unet.config().sample_size.unwrap_or(64) * self.scale_factor()
    }

    /// Text conditioning for `prompt`, with that of `negative` first when `guidance` > 1, as
    /// diffusers' `encode_prompt` (SDXL: both encoders' penultimate states side by side, pooled
    /// embeddings from the second; an empty negative prompt gives zeros).
    pub fn encode_prompt(
        &self,
        prompt: &str,
        negative: &str,
        guidance: f64,
    ) -> Result<PromptEmbeds> {
        let (positive, pooled, cut) = self.encode_one(prompt)?;
        if guidance <= 1.0 {
            return Ok(PromptEmbeds {
                text: positive,
                pooled,
                truncated: (cut, 0),
            });
        }
        let zeros = self
            .second
            .as_ref()
            .is_some_and(|s| s.force_zeros_for_empty_prompt)
            && negative.is_empty();
        let (neg, neg_pooled, neg_cut) = if zeros {
            (
                positive.zeros_like()?,
                pooled.as_ref().map(Tensor::zeros_like).transpose()?,
                0,
            )
        } else {
            self.encode_one(negative)?
        };
        let pooled = match (neg_pooled, pooled) {
            (Some(n), Some(p)) => Some(Tensor::cat(&[n, p], 0)?),
            _ => None,
        };
        Ok(PromptEmbeds {
            text: Tensor::cat(&[neg, positive], 0)?,
            pooled,
            truncated: (cut, neg_cut),
        })
    }

    /// (embeddings, pooled, truncated tokens) of one text.
    fn encode_one(&self, text: &str) -> Result<(Tensor, Option<Tensor>, usize)> {
        let run = |tok: &ClipTokenizer, model: &ClipTextModel| -> Result<_> {
            let tokens = tok.encode(text)?;
            let ids = Tensor::new(tokens.ids.as_slice(), &self.device)?.unsqueeze(0)?;
            Ok((model.forward(&ids)?, tokens.truncated))
        };
        let (first, cut) = run(&self.tokenizer, &self.text_encoder)?;
        match &self.second {
            None => Ok((first.last_hidden_state, None, cut)),
            Some(s) => {
                let (second, cut2) = run(&s.tokenizer, &s.model)?;
                let text = Tensor::cat(&[first.penultimate, second.penultimate], 2)?;
                Ok((text, Some(second.pooled), cut.max(cut2)))
            }
        }
    }

    /// One denoising step at schedule index `i`: the UNet (twice the batch under guidance),
    /// guidance, then the scheduler. `cond` is [`StableDiffusion::encode_prompt`]'s output
    /// repeated per image ([`Conditioning::repeat`]).
    pub fn denoise_step(
        &self,
        scheduler: &mut Scheduler,
        latents: &Tensor,
        i: usize,
        cond: &Conditioning,
        guidance: f64,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        let guided = guidance > 1.0;
        let input = if guided {
            Tensor::cat(&[latents, latents], 0)?
        } else {
            latents.clone()
        };
        let input = scheduler.scale_model_input(&input, i)?;
        let t = scheduler.timesteps()[i];
        let out = match (&cond.pooled, &cond.time_ids) {
            (Some(pooled), Some(ids)) => self
                .unet
                .forward_added(&input, t, &cond.text, pooled, ids)?,
            _ => self.unet.forward(&input, t, &cond.text)?,
        };
        let out = if guided {
            let b = latents.dim(0)?;
            let (uncond, cond) = (out.narrow(0, 0, b)?, out.narrow(0, b, b)?);
            (&uncond + ((cond - &uncond)? * guidance)?)?
        } else {
            out
        };
        scheduler.step(&out, i, latents, noise)
    }

    /// Decodes latents to RGB in [0, 1] (B, 3, H, W), unrounded.
    pub fn decode_latents(&self, latents: &Tensor) -> Result<Tensor> {
        let image = self.vae.decode(latents)?;
        Ok(((image / 2.0)? + 0.5)?
            .clamp(0f32, 1f32)?
            .to_dtype(DType::F32)?)
    }

    /// Checks `params` (sizes, steps, strength) and returns the output size.
    pub fn output_size(&self, params: &Txt2ImgParams) -> Result<(usize, usize)> {
        let f = self.scale_factor();
        let from_latents = params
            .latents
            .as_ref()
            .map(|l| l.dims4().map(|(_, _, h, w)| (w * f, h * f)))
            .transpose()?;
        let from_image = params.init_image.as_ref().map(|img| {
            let round = |x: u32| (x as usize / 8 * 8).max(8);
            (round(img.width()), round(img.height()))
        });
        let native = self.default_size();
        let (dw, dh) = from_latents.or(from_image).unwrap_or((native, native));
        let (w, h) = (params.width.unwrap_or(dw), params.height.unwrap_or(dh));
        for (name, v) in [("width", w), ("height", h)] {
            if v == 0 || !v.is_multiple_of(8) || !v.is_multiple_of(f) {
                return Err(Error::Invalid(format!(
                    "--{name} {v} is not a positive multiple of {}",
                    f.max(8)
                )));
            }
        }
        if params.steps == 0 {
            return Err(Error::Invalid("--steps must be at least 1".into()));
        }
        if params.num_images == 0 {
            return Err(Error::Invalid("--num-images must be at least 1".into()));
        }
        if !(0.0..=1.0).contains(&params.strength) {
            return Err(Error::Invalid(format!(
                "--strength {} is not between 0 and 1",
                params.strength
            )));
        }
        Ok((w, h))
    }

    /// Runs the whole pipeline: txt2img, or img2img when `params.init_image` is set.
    pub fn generate(&self, params: &Txt2ImgParams, progress: &Progress) -> Result<Generation> {
        let (width, height) = self.output_size(params)?;
        let kind = params.scheduler.unwrap_or_else(|| self.default_scheduler());
        let mut scheduler = Scheduler::new(kind, &self.scheduler_config, params.steps)?;
        let n = params.num_images;
        let f = self.scale_factor();
        let shape = (n, self.unet.config().in_channels, height / f, width / f);
        let mut rng = Noise::new(params.seed);

        // 1. prompt
        let embeds =
            self.encode_prompt(&params.prompt, &params.negative_prompt, params.guidance)?;
        let truncated = embeds.truncated;
        let text = Conditioning::repeat(&embeds, n, (height, width), self.dtype)?;
        // 2. initial latents
        let noise = match &params.latents {
            Some(l) => given_latents(l, shape)?,
            None => rng.images(params.seed, shape)?,
        }
        .to_device(&self.device)?
        .to_dtype(self.dtype)?;
        let (mut latents, start) = match &params.init_image {
            None => ((noise * scheduler.init_noise_sigma())?, 0),
            Some(img) => self.img2img_start(img, &scheduler, params, &noise, &mut rng)?,
        };
        // 3. denoise
        let total = scheduler.timesteps().len();
        progress.begin("denoising", Some((total - start) as u64), Unit::Items);
        for i in start..total {
            let step_noise = if scheduler.needs_noise() {
                Some(
                    rng.tensor(latents.dims4()?)?
                        .to_device(&self.device)?
                        .to_dtype(self.dtype)?,
                )
            } else {
                None
            };
            latents = self.denoise_step(
                &mut scheduler,
                &latents,
                i,
                &text,
                params.guidance,
                step_noise.as_ref(),
            )?;
            progress.update((i + 1 - start) as u64);
        }
        progress.end();
        // 4. decode
        let pixels = self.decode_latents(&latents)?;
        Ok(Generation {
            pixels,
            scheduler: kind,
            width,
            height,
            truncated,
        })
    }

    /// img2img: the encoded image noised to the first step that `strength` keeps.
    fn img2img_start(
        &self,
        img: &image::DynamicImage,
        scheduler: &Scheduler,
        params: &Txt2ImgParams,
        noise: &Tensor,
        rng: &mut Noise,
    ) -> Result<(Tensor, usize)> {
        let (_, _, h, w) = noise.dims4()?;
        let f = self.scale_factor();
        let steps = scheduler.timesteps().len();
        let init_steps = ((steps as f64 * params.strength) as usize).min(steps);
        let start = steps - init_steps;
        if start >= steps {
            return Err(Error::Invalid(format!(
                "--strength {} leaves no denoising step out of {steps}",
                params.strength
            )));
        }
        let rgb = img
            .resize_exact(
                (w * f) as u32,
                (h * f) as u32,
                image::imageops::FilterType::Lanczos3,
            )
            .to_rgb8();
        let pixels = Tensor::from_vec(rgb.into_raw(), (h * f, w * f, 3), &Device::Cpu)?
            .permute((2, 0, 1))?
            .to_dtype(DType::F32)?
            .affine(2.0 / 255.0, -1.0)?
            .unsqueeze(0)?
            .to_device(&self.device)?
            .to_dtype(self.dtype)?;
        let dist = self.vae.encode(&pixels)?;
        let n = noise.dim(0)?;
        let sample = rng
            .tensor(dist.mean.dims4()?)?
            .to_device(&self.device)?
            .to_dtype(self.dtype)?;
        let latents = ((&dist.mean + (&dist.std * sample)?)? * self.vae.config().scaling_factor)?
            .repeat((n, 1, 1, 1))?;
        Ok((scheduler.add_noise(&latents, noise, start)?, start))
    }
}

/// Per-image conditioning of a batch: [`PromptEmbeds`] repeated, with SDXL's time ids.
#[derive(Debug, Clone)]
pub struct Conditioning {
    /// (B or 2B, 77, width), negatives first.
    pub text: Tensor,
    /// SDXL pooled embeddings, same order.
    pub pooled: Option<Tensor>,
    /// SDXL time ids (original size, crop top-left (0, 0), target size), same order.
    pub time_ids: Option<Tensor>,
}

impl Conditioning {
    /// `embeds` for `n` images of (height, width) pixels, in `dtype`.
    pub fn repeat(
        embeds: &PromptEmbeds,
        n: usize,
        (height, width): (usize, usize),
        dtype: DType,
    ) -> Result<Self> {
        let groups = embeds.text.dim(0)?;
        let rep = |t: &Tensor| -> Result<Tensor> {
            let parts = (0..groups)
                .map(|g| {
                    let row = t.narrow(0, g, 1)?;
                    let mut dims = vec![1; row.rank()];
                    dims[0] = n;
                    row.repeat(dims.as_slice())
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Ok(Tensor::cat(&parts, 0)?.to_dtype(dtype)?)
        };
        let time_ids = match &embeds.pooled {
            Some(p) => {
                let (h, w) = (height as f32, width as f32);
                let one = Tensor::new(&[[h, w, 0., 0., h, w]], p.device())?;
                Some(one.repeat((groups * n, 1))?.to_dtype(dtype)?)
            }
            None => None,
        };
        Ok(Self {
            text: rep(&embeds.text)?,
            pooled: embeds.pooled.as_ref().map(rep).transpose()?,
            time_ids,
        })
    }
}

/// The CLIP tokenizer in `folder` (`tokenizer` or `tokenizer_2`).
fn load_tokenizer(files: &ModelFiles, folder: &str) -> Result<ClipTokenizer> {
    let anchor = files
        .get(&format!("{folder}/vocab.json"))
        .or_else(|_| files.get(&format!("{folder}/tokenizer.json")))?;
    let _ = files.get_optional(&format!("{folder}/merges.txt"))?;
    let _ = files.get_optional(&format!("{folder}/tokenizer_config.json"))?;
    ClipTokenizer::from_dir(anchor.parent().expect("file in folder"))
}

/// Checks user-given initial latents against the expected shape (batch 1 is repeated).
fn given_latents(l: &Tensor, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
    let (b, c, h, w) = l.dims4().map_err(|_| {
        Error::Invalid(format!(
            "--latents: expected 4 dimensions, got {:?}",
            l.dims()
        ))
    })?;
    if (c, h, w) != (shape.1, shape.2, shape.3) || (b != 1 && b != shape.0) {
        return Err(Error::Invalid(format!(
            "--latents has shape {:?}; this model and size need ({}, {}, {}, {})",
            l.dims(),
            shape.0,
            shape.1,
            shape.2,
            shape.3
        )));
    }
    Ok(l.to_dtype(DType::F32)?.repeat((shape.0 / b, 1, 1, 1))?)
}

/// Reads `--init-image`: any PNG, JPEG, WebP, … the `image` crate opens.
pub fn read_init_image(path: &std::path::Path) -> Result<image::DynamicImage> {
    image::open(path).map_err(|e| Error::Invalid(format!("--init-image {}: {e}", path.display())))
}

/// Reads `--latents FILE.safetensors`: the tensor named `latents`, or the file's only tensor.
pub fn read_latents(path: &std::path::Path) -> Result<Tensor> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    if let Some(t) = tensors.get("latents") {
        return Ok(t.clone());
    }
    let mut it = tensors.into_values();
    match (it.next(), it.next()) {
        (Some(t), None) => Ok(t),
        _ => Err(Error::Invalid(format!(
            "{}: no tensor named \"latents\" and not exactly one tensor",
            path.display()
        ))),
    }
}

/// The weights file of `folder`, the first of `names` present.
fn weights(files: &ModelFiles, folder: &str, names: &[&str]) -> Result<PathBuf> {
    // A listed variant (e.g. a catalog entry naming only the fp16 files) wins: never download
    // the f32 weights to find out that the fp16 ones were meant.
    if let Ok(listed) = files.list() {
        for name in names {
            let file = format!("{folder}/{name}");
            if listed.contains(&file) {
                return Ok(files.get(&file)?);
            }
        }
    }
    for name in names {
        if let Some(p) = files.get_optional(&format!("{folder}/{name}"))? {
            return Ok(p);
        }
    }
    Err(Error::Model(format!(
        "{}: no {folder}/{} (sharded weights are not supported yet)",
        files.source().describe(),
        names[0]
    )))
}
