//! The `config.json` files of a diffusers pipeline folder, read as they are, and checked against
//! what this crate implements: an option we do not implement is an error, never ignored.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::{Error, Result};

/// Reads and parses one JSON file, naming it in errors.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .or_else(|e| {
            // Python's json writes ±Infinity and NaN (e.g. DPM's `lambda_min_clipped`).
            let lenient = text
                .replace("-Infinity", "null")
                .replace("Infinity", "null")
                .replace("NaN", "null");
            serde_json::from_str(&lenient).map_err(|_| e)
        })
        .map_err(|e| Error::Model(format!("{}: {e}", path.display())))
}

/// An int or a per-block list of ints (`layers_per_block`, `attention_head_dim`, …).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PerBlock {
    /// The same value for every block.
    One(usize),
    /// One value per down block.
    Each(Vec<usize>),
}

impl PerBlock {
    /// The value for block `i` of `n`.
    pub fn get(&self, i: usize, n: usize, name: &str) -> Result<usize> {
        match self {
            PerBlock::One(v) => Ok(*v),
            PerBlock::Each(v) if v.len() == n => Ok(v[i]),
            PerBlock::Each(v) => Err(Error::Model(format!(
                "unet/config.json: {name} has {} values for {n} blocks",
                v.len()
            ))),
        }
    }
}

/// `model_index.json`: which class each part of the pipeline is.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelIndex {
    /// `StableDiffusionPipeline`, `StableDiffusionXLPipeline`, …
    #[serde(rename = "_class_name")]
    pub class_name: String,
    /// The scheduler's `[library, class]`.
    #[serde(default)]
    pub scheduler: Option<(Option<String>, Option<String>)>,
    /// Present (non-null) in two-text-encoder (SDXL) pipelines.
    #[serde(default)]
    pub text_encoder_2: Option<(Option<String>, Option<String>)>,
    /// SDXL: an empty negative prompt gives zero embeddings rather than those of "".
    #[serde(default)]
    pub force_zeros_for_empty_prompt: Option<bool>,
}

/// `unet/config.json` of a `UNet2DConditionModel`.
#[derive(Debug, Clone, Deserialize)]
pub struct UNetConfig {
    /// Latent channels in.
    #[serde(default = "four")]
    pub in_channels: usize,
    /// Latent channels out.
    #[serde(default = "four")]
    pub out_channels: usize,
    /// Scale the input to [-1, 1] first.
    #[serde(default)]
    pub center_input_sample: bool,
    /// Sinusoidal timestep embedding order.
    #[serde(default = "yes")]
    pub flip_sin_to_cos: bool,
    /// Sinusoidal timestep embedding shift.
    #[serde(default)]
    pub freq_shift: f64,
    /// `CrossAttnDownBlock2D` / `DownBlock2D` per level.
    pub down_block_types: Vec<String>,
    /// `CrossAttnUpBlock2D` / `UpBlock2D` per level.
    pub up_block_types: Vec<String>,
    /// Only `UNetMidBlock2DCrossAttn`.
    #[serde(default)]
    pub mid_block_type: Option<String>,
    /// Channels per level.
    pub block_out_channels: Vec<usize>,
    /// Resnets per down block.
    #[serde(default = "two")]
    pub layers_per_block: PerBlock,
    /// Padding of the downsampling convolutions.
    #[serde(default = "one")]
    pub downsample_padding: usize,
    /// Output scale of the mid block.
    #[serde(default = "one_f")]
    pub mid_block_scale_factor: f64,
    /// Group norm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Group norm epsilon.
    #[serde(default = "norm_eps")]
    pub norm_eps: f64,
    /// Width of the text embeddings.
    pub cross_attention_dim: PerBlock,
    /// Transformer blocks per attention level.
    #[serde(default = "one_per_block")]
    pub transformer_layers_per_block: PerBlock,
    /// Historical name for the number of heads when `num_attention_heads` is null.
    #[serde(default = "eight")]
    pub attention_head_dim: PerBlock,
    /// Heads per level.
    #[serde(default)]
    pub num_attention_heads: Option<PerBlock>,
    /// Linear (not 1×1 conv) projections in and out of the transformers (SD 2.x, SDXL).
    #[serde(default)]
    pub use_linear_projection: bool,
    /// Pipeline default resolution in latent pixels.
    #[serde(default)]
    pub sample_size: Option<usize>,
    /// `text_time` in SDXL (added time ids and pooled text embeddings).
    #[serde(default)]
    pub addition_embed_type: Option<String>,
    /// Width of each added time id embedding (SDXL: 256).
    #[serde(default)]
    pub addition_time_embed_dim: Option<usize>,
    /// Input width of the added embedding (SDXL: 2816).
    #[serde(default)]
    pub projection_class_embeddings_input_dim: Option<usize>,
    /// Only fp16 accuracy; no effect in f32.
    #[serde(default)]
    pub upcast_attention: bool,
    /// Options we do not implement: must be absent or at their default.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `vae/config.json` of an `AutoencoderKL`.
#[derive(Debug, Clone, Deserialize)]
pub struct VaeConfig {
    /// Image channels.
    #[serde(default = "three")]
    pub in_channels: usize,
    /// Image channels out.
    #[serde(default = "three")]
    pub out_channels: usize,
    /// Channels per level.
    pub block_out_channels: Vec<usize>,
    /// Resnets per block.
    #[serde(default = "one")]
    pub layers_per_block: usize,
    /// Latent channels.
    #[serde(default = "four")]
    pub latent_channels: usize,
    /// Group norm groups.
    #[serde(default = "thirty_two")]
    pub norm_num_groups: usize,
    /// Latents are divided by this before decoding.
    #[serde(default = "scaling_factor")]
    pub scaling_factor: f64,
    /// `quant_conv` present.
    #[serde(default = "yes")]
    pub use_quant_conv: bool,
    /// `post_quant_conv` present.
    #[serde(default = "yes")]
    pub use_post_quant_conv: bool,
    /// Down block types (`DownEncoderBlock2D` only).
    #[serde(default)]
    pub down_block_types: Vec<String>,
    /// Up block types (`UpDecoderBlock2D` only).
    #[serde(default)]
    pub up_block_types: Vec<String>,
    /// Options we do not implement: must be absent or at their default.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

impl VaeConfig {
    /// Image pixels per latent pixel.
    pub fn scale_factor(&self) -> usize {
        1 << self.block_out_channels.len().saturating_sub(1)
    }
}

/// Fails on an option of `other` that is set to a value other than its default (`allowed`).
pub fn check_defaults(
    file: &str,
    other: &serde_json::Map<String, Value>,
    allowed: &[(&str, Value)],
) -> Result<()> {
    for (key, value) in other {
        if key.starts_with('_') || IGNORED.contains(&key.as_str()) {
            continue;
        }
        match allowed.iter().find(|(k, _)| k == key) {
            Some((_, default)) if same(value, default) => {}
            Some((_, default)) => {
                return Err(Error::Model(format!(
                    "{file}: {key} = {value} is not supported (only {default})"
                )))
            }
            None => {
                return Err(Error::Model(format!(
                    "{file}: unknown option {key} = {value}; refusing to load what we may not run correctly"
                )))
            }
        }
    }
    Ok(())
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Keys that change nothing at inference in f32.
const IGNORED: &[&str] = &["dropout", "force_upcast", "sample_size", "upcast_attention"];

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}
fn two() -> PerBlock {
    PerBlock::One(2)
}
fn one_per_block() -> PerBlock {
    PerBlock::One(1)
}
fn eight() -> PerBlock {
    PerBlock::One(8)
}
fn three() -> usize {
    3
}
fn four() -> usize {
    4
}
fn thirty_two() -> usize {
    32
}
fn norm_eps() -> f64 {
    1e-5
}
fn scaling_factor() -> f64 {
    0.18215
}
