//! Stable Diffusion text-to-image and image-to-image with LoRA loading, on Candle.
//!
//! - [`config`]: the `config.json` files of a diffusers pipeline folder, checked against what we
//!   implement (an option we do not implement is an error, never ignored).
//! - [`clip`], [`tokenizer`]: the CLIP text encoder and its BPE tokenizer.
//! - [`unet`], [`vae`]: `UNet2DConditionModel` and `AutoencoderKL`.
//! - [`lora`], [`single_file`]: LoRA files merged while loading; single-file checkpoints.
//! - [`schedulers`]: DDIM, Euler (Karras), Euler ancestral, DPM++ 2M (Karras) and LCM, from the
//!   model's own `scheduler_config.json`.
//! - [`pipeline`]: [`StableDiffusion`] loads a diffusers folder (with LoRAs) and runs
//!   [`Txt2ImgParams`] as `encode_prompt` → `denoise_step` × steps → `decode_latents`
//!   (txt2img, img2img); [`output`] writes PNGs with the web UIs' `parameters` chunk.
//!
//! Library code never prints: progress goes through `mlbench_core::progress::Progress`.
//!
//! ```
//! use mlbench_diffusion::schedulers::{Scheduler, SchedulerConfig};
//! use mlbench_diffusion::{SchedulerKind, Txt2ImgParams};
//!
//! let kind: SchedulerKind = "DPM++ 2M Karras".parse().unwrap();
//! let scheduler = Scheduler::new(kind, &SchedulerConfig::default(), 20).unwrap();
//! assert_eq!(scheduler.timesteps().len(), 20);
//! let params = Txt2ImgParams { prompt: "a lighthouse".into(), seed: 42, ..Default::default() };
//! assert_eq!((params.steps, params.guidance), (30, 7.5));
//! ```
//!
//! Loading and running a model (`no_run`: needs a diffusers folder):
//!
//! ```no_run
//! use mlbench_core::progress::Progress;
//! use mlbench_core::source::{ModelFiles, ModelSource};
//! use mlbench_diffusion::{LoadOptions, StableDiffusion, Txt2ImgParams};
//!
//! let files = ModelFiles::new(ModelSource::Dir("models/sd15".into()), Progress::none());
//! let sd = StableDiffusion::load(&files, &LoadOptions::default(), None)?;
//! let params = Txt2ImgParams { prompt: "a lighthouse at dusk".into(), ..Default::default() };
//! let images = sd.generate(&params, &Progress::none())?.images()?;
//! # Ok::<(), mlbench_diffusion::Error>(())
//! ```
#![deny(missing_docs)]

pub mod clip;
pub mod config;
mod error;
pub mod lora;
mod noise;
mod norm;
pub mod output;
pub mod pipeline;
pub mod schedulers;
pub mod single_file;
pub mod tokenizer;
pub mod unet;
pub mod vae;

pub use error::{Error, Result};
pub use pipeline::{Generation, LoadOptions, PromptEmbeds, StableDiffusion, Txt2ImgParams};
pub use schedulers::SchedulerKind;
