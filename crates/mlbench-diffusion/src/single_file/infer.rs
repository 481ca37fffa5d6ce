//! diffusers config values read off a single-file checkpoint's tensor shapes.
//!
//! What the shapes determine is read; what they do not is assumed from the checkpoint family
//! (each such field says so): attention heads (SD 1.x: 8 per block; SD 2.x / SDXL: channels / 64),
//! `addition_time_embed_dim` 256 (SDXL), `sample_size` (SD 1.x 64, SD 2.x 96 (the 768 px
//! models), SDXL 128), VAE `norm_num_groups` 32 and `scaling_factor` (0.18215, SDXL 0.13025),
//! CLIP heads = hidden / 64 and activation (`quick_gelu` for OpenAI CLIP, `gelu` for OpenCLIP).
//! The prediction type (epsilon or v) is not in the file at all: SD 2.x 768 px models use
//! `v_prediction`, the caller must choose.

use std::collections::BTreeMap;

use super::{Kind, Part, SingleFile};
use crate::{Error, Result};

/// `unet/config.json` values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UnetShape {
    /// Latent channels in (`conv_in`).
    pub in_channels: usize,
    /// Latent channels out (`conv_out`).
    pub out_channels: usize,
    /// Channels of each down block.
    pub block_out_channels: Vec<usize>,
    /// ResNets per down block.
    pub layers_per_block: usize,
    /// `CrossAttnDownBlock2D` where the block has attentions, else `DownBlock2D`.
    pub down_block_types: Vec<String>,
    /// `CrossAttnUpBlock2D` / `UpBlock2D`.
    pub up_block_types: Vec<String>,
    /// Width of the text embeddings (`attn2.to_k` input).
    pub cross_attention_dim: usize,
    /// Transformer blocks per attention of each down block (1 where there is none).
    pub transformer_layers_per_block: Vec<usize>,
    /// Linear (SD 2.x, SDXL) rather than 1×1 convolution `proj_in` / `proj_out`.
    pub use_linear_projection: bool,
    /// Assumed: heads per block (diffusers' `attention_head_dim` naming).
    pub attention_head_dim: Vec<usize>,
    /// `text_time` when the UNet has SDXL's `add_embedding`.
    pub addition_embed_type: Option<String>,
    /// Assumed 256 when `addition_embed_type` is `text_time`.
    pub addition_time_embed_dim: Option<usize>,
    /// Input width of `add_embedding.linear_1`.
    pub projection_class_embeddings_input_dim: Option<usize>,
    /// Assumed from the family.
    pub sample_size: usize,
}

/// `vae/config.json` values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VaeShape {
    /// Image channels in.
    pub in_channels: usize,
    /// Image channels out.
    pub out_channels: usize,
    /// Latent channels.
    pub latent_channels: usize,
    /// Channels of each encoder block.
    pub block_out_channels: Vec<usize>,
    /// ResNets per encoder block.
    pub layers_per_block: usize,
    /// Assumed 32.
    pub norm_num_groups: usize,
    /// Assumed from the family.
    pub scaling_factor: f64,
}

/// `text_encoder*/config.json` values.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClipShape {
    /// Token embeddings.
    pub vocab_size: usize,
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers diffusers keeps: all, except SD 2.x where its text encoder has one fewer than the
    /// file (it uses the penultimate layer).
    pub num_hidden_layers: usize,
    /// Layers in the file.
    pub layers_in_file: usize,
    /// Positions.
    pub max_position_embeddings: usize,
    /// Assumed hidden / 64.
    pub num_attention_heads: usize,
    /// Assumed: `quick_gelu` (OpenAI CLIP) or `gelu` (OpenCLIP).
    pub hidden_act: String,
    /// Width of `text_projection` (SDXL's second encoder).
    pub projection_dim: Option<usize>,
}

/// Everything [`infer_configs`] reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InferredConfigs {
    /// The family.
    pub kind: Kind,
    /// UNet.
    pub unet: UnetShape,
    /// VAE, if the file has one.
    pub vae: Option<VaeShape>,
    /// First text encoder, if present.
    pub text_encoder: Option<ClipShape>,
    /// Second text encoder (SDXL).
    pub text_encoder_2: Option<ClipShape>,
}

struct Shapes(BTreeMap<String, Vec<usize>>);

impl Shapes {
    fn dim(&self, key: &str, d: usize) -> Result<usize> {
        self.0
            .get(key)
            .and_then(|s| s.get(d).copied())
            .ok_or_else(|| Error::Checkpoint(format!("cannot infer the config: no tensor {key}")))
    }

    fn count(&self, prefix: &str) -> usize {
        self.0
            .keys()
            .filter_map(|k| {
                k.strip_prefix(prefix)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }

    fn any(&self, prefix: &str) -> bool {
        self.0.keys().any(|k| k.starts_with(prefix))
    }

    fn find(&self, suffix: &str) -> Option<&Vec<usize>> {
        self.0
            .iter()
            .find(|(k, _)| k.ends_with(suffix))
            .map(|(_, s)| s)
    }
}

/// Config values for each part of `file` (see the module docs for what is assumed).
pub fn infer_configs(file: &SingleFile) -> Result<InferredConfigs> {
    let shapes = |p| Shapes(file.keys(p).into_iter().collect());
    let kind = file.kind();
    let clip = |p| file.has(p).then(|| clip(&shapes(p), kind, p)).transpose();
    Ok(InferredConfigs {
        kind,
        unet: unet(&shapes(Part::Unet), kind)?,
        vae: file
            .has(Part::Vae)
            .then(|| vae(&shapes(Part::Vae), kind))
            .transpose()?,
        text_encoder: clip(Part::TextEncoder)?,
        text_encoder_2: clip(Part::TextEncoder2)?,
    })
}

fn unet(s: &Shapes, kind: Kind) -> Result<UnetShape> {
    let n = s.count("down_blocks.");
    let channels = (0..n)
        .map(|i| s.dim(&format!("down_blocks.{i}.resnets.0.conv1.weight"), 0))
        .collect::<Result<Vec<_>>>()?;
    let types = |side: &str, attn: &str, plain: &str| -> Vec<String> {
        (0..n)
            .map(|i| {
                let cross = s.any(&format!("{side}_blocks.{i}.attentions."));
                (if cross { attn } else { plain }).to_string()
            })
            .collect()
    };
    let cross_attention_dim = s
        .find("attn2.to_k.weight")
        .and_then(|v| v.get(1).copied())
        .ok_or_else(|| Error::Checkpoint("cannot infer the config: no attn2.to_k".into()))?;
    let transformer_layers_per_block = (0..n)
        .map(|i| {
            let t = s.count(&format!("down_blocks.{i}.attentions.0.transformer_blocks."));
            t.max(1)
        })
        .collect();
    let heads = |c: usize| match kind {
        Kind::Sd1 => 8,
        Kind::Sd2 | Kind::Sdxl => (c / 64).max(1),
    };
    let add = s.0.get("add_embedding.linear_1.weight").map(|v| v[1]);
    Ok(UnetShape {
        in_channels: s.dim("conv_in.weight", 1)?,
        out_channels: s.dim("conv_out.weight", 0)?,
        layers_per_block: s.count("down_blocks.0.resnets."),
        down_block_types: types("down", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types: types("up", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim,
        transformer_layers_per_block,
        use_linear_projection: s.find("proj_in.weight").is_some_and(|v| v.len() == 2),
        attention_head_dim: channels.iter().map(|&c| heads(c)).collect(),
        addition_embed_type: add.map(|_| "text_time".to_string()),
        addition_time_embed_dim: add.map(|_| 256),
        projection_class_embeddings_input_dim: add,
        sample_size: match kind {
            Kind::Sd1 => 64,
            Kind::Sd2 => 96,
            Kind::Sdxl => 128,
        },
        block_out_channels: channels,
    })
}

fn vae(s: &Shapes, kind: Kind) -> Result<VaeShape> {
    let n = s.count("encoder.down_blocks.");
    Ok(VaeShape {
        in_channels: s.dim("encoder.conv_in.weight", 1)?,
        out_channels: s.dim("decoder.conv_out.weight", 0)?,
        latent_channels: s.dim("post_quant_conv.weight", 0)?,
        block_out_channels: (0..n)
            .map(|i| {
                s.dim(
                    &format!("encoder.down_blocks.{i}.resnets.0.conv1.weight"),
                    0,
                )
            })
            .collect::<Result<_>>()?,
        layers_per_block: s.count("encoder.down_blocks.0.resnets."),
        norm_num_groups: 32,
        scaling_factor: if kind == Kind::Sdxl { 0.13025 } else { 0.18215 },
    })
}

fn clip(s: &Shapes, kind: Kind, part: Part) -> Result<ClipShape> {
    let open_clip = matches!(
        (kind, part),
        (Kind::Sd2, _) | (Kind::Sdxl, Part::TextEncoder2)
    );
    let layers = s.count("text_model.encoder.layers.");
    let hidden = s.dim("text_model.embeddings.token_embedding.weight", 1)?;
    Ok(ClipShape {
        vocab_size: s.dim("text_model.embeddings.token_embedding.weight", 0)?,
        hidden_size: hidden,
        intermediate_size: s.dim("text_model.encoder.layers.0.mlp.fc1.weight", 0)?,
        num_hidden_layers: if kind == Kind::Sd2 {
            layers.saturating_sub(1)
        } else {
            layers
        },
        layers_in_file: layers,
        max_position_embeddings: s.dim("text_model.embeddings.position_embedding.weight", 0)?,
        num_attention_heads: (hidden / 64).max(1),
        hidden_act: if open_clip { "gelu" } else { "quick_gelu" }.to_string(),
        projection_dim: s.0.get("text_projection.weight").map(|v| v[0]),
    })
}
