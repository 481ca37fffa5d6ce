//! DINOv2 as in transformers' `Dinov2ForImageClassification` (facebook/dinov2-*-imagenet1k-*):
//! keys `dinov2.embeddings.{cls_token,position_embeddings,patch_embeddings.projection}`,
//! `dinov2.encoder.layer.N.{norm1,attention.attention.{query,key,value},attention.output.dense,
//! layer_scale1.lambda1,norm2,mlp.{fc1,fc2} | mlp.{weights_in,weights_out},layer_scale2.lambda1}`,
//! `dinov2.layernorm`, `classifier` (on the class token concatenated with the mean of the patch
//! tokens). Position embeddings are resampled (bicubic) when the input's patch grid differs
//! from the pretraining grid, e.g. 518×518 pretraining fed 224×224 crops.
//! Reference: transformers `models/dinov2/modeling_dinov2.py` (v5.24).

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{LayerNorm, Linear};
use mlbench_core::kernels::conv::Conv2d;
use serde::Deserialize;

use crate::vit::{check_heads, embed_patches, interpolate_positions, patch_conv, SelfAttention};
use crate::weights::Weights;
use crate::{Error, Result};

/// The fields of a DINOv2 `config.json` that shape the network.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Width of the token embeddings.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// MLP activation of the plain (non-SwiGLU) MLP (`gelu`, exact).
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Layer-norm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Square input size the position embeddings were trained for.
    #[serde(default = "image_size")]
    pub image_size: usize,
    /// Square patch size.
    #[serde(default = "patch_size")]
    pub patch_size: usize,
    /// SwiGLU MLP (`mlp.weights_in` / `mlp.weights_out`) instead of fc1–GELU–fc2.
    #[serde(default)]
    pub use_swiglu_ffn: bool,
}

fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-6
}
fn image_size() -> usize {
    224
}
fn patch_size() -> usize {
    14
}

#[derive(Debug, Clone)]
enum Mlp {
    Gelu { fc1: Linear, fc2: Linear },
    SwiGlu { w_in: Linear, w_out: Linear },
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gelu { fc1, fc2 } => Ok(fc2.forward(&fc1.forward(x)?.gelu_erf()?)?),
            Self::SwiGlu { w_in, w_out } => {
                // weights_in holds the gate and the up projection, one after the other.
                let both = w_in.forward(x)?;
                let half = both.dim(D::Minus1)? / 2;
                let gate = both.narrow(D::Minus1, 0, half)?;
                let up = both.narrow(D::Minus1, half, half)?;
                Ok(w_out.forward(&(candle_nn::ops::silu(&gate)? * up)?)?)
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Block {
    norm1: LayerNorm,
    attn: SelfAttention,
    scale1: Tensor,
    norm2: LayerNorm,
    mlp: Mlp,
    scale2: Tensor,
}

/// DINOv2 with its linear classification head.
#[derive(Debug, Clone)]
pub struct Dinov2 {
    config: Config,
    patch: Conv2d,
    cls: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    classifier: Linear,
}

impl Dinov2 {
    /// Builds the model from a transformers state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if !config.use_swiglu_ffn && config.hidden_act != "gelu" {
            return Err(Error::Model(format!(
                "DINOv2 with hidden_act {} is not supported (only gelu)",
                config.hidden_act
            )));
        }
        check_heads("DINOv2", config.hidden_size, config.num_attention_heads)?;
        let w = Weights::new(tensors, device, dtype);
        let eps = config.layer_norm_eps;
        let blocks = (0..config.num_hidden_layers)
            .map(|i| Self::load_block(&w, config, &format!("dinov2.encoder.layer.{i}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            patch: patch_conv(
                &w,
                "dinov2.embeddings.patch_embeddings.projection",
                config.patch_size,
            )?,
            cls: w.get("dinov2.embeddings.cls_token")?,
            pos: w.get("dinov2.embeddings.position_embeddings")?,
            blocks,
            ln: w.layer_norm("dinov2.layernorm", eps)?,
            classifier: w.linear("classifier")?,
        })
    }

    fn load_block(w: &Weights, config: &Config, l: &str) -> Result<Block> {
        let eps = config.layer_norm_eps;
        let mlp = if config.use_swiglu_ffn {
            Mlp::SwiGlu {
                w_in: w.linear(&format!("{l}.mlp.weights_in"))?,
                w_out: w.linear(&format!("{l}.mlp.weights_out"))?,
            }
        } else {
            Mlp::Gelu {
                fc1: w.linear(&format!("{l}.mlp.fc1"))?,
                fc2: w.linear(&format!("{l}.mlp.fc2"))?,
            }
        };
        Ok(Block {
            norm1: w.layer_norm(&format!("{l}.norm1"), eps)?,
            attn: SelfAttention::load(
                w,
                [
                    &format!("{l}.attention.attention.query"),
                    &format!("{l}.attention.attention.key"),
                    &format!("{l}.attention.attention.value"),
                    &format!("{l}.attention.output.dense"),
                ],
                config.num_attention_heads,
            )?,
            scale1: w.get(&format!("{l}.layer_scale1.lambda1"))?,
            norm2: w.layer_norm(&format!("{l}.norm2"), eps)?,
            mlp,
            scale2: w.get(&format!("{l}.layer_scale2.lambda1"))?,
        })
    }

    /// The position embeddings for an h×w input: as stored for the pretraining grid, else
    /// resampled to the input's patch grid.
    fn positions(&self, h: usize, w: usize) -> Result<Tensor> {
        let p = self.config.patch_size;
        let (rows, cols) = (h / p, w / p);
        if rows == 0 || cols == 0 {
            return Err(Error::Invalid(format!(
                "DINOv2 input {h}×{w} is smaller than one {p}×{p} patch"
            )));
        }
        if rows * cols + 1 == self.pos.dim(1)? && h == w {
            return Ok(self.pos.clone());
        }
        interpolate_positions(&self.pos, rows, cols)
    }

    /// Logits (b, labels) of a normalised batch (b, 3, h, w); any size of at least one patch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.cls.dtype())?;
        let (_, _, h, w) = x.dims4()?;
        // 1. patches + class token + (resampled) position embeddings
        let pos = self.positions(h, w)?;
        let mut x = embed_patches(&self.patch, &self.cls, &x)?.broadcast_add(&pos)?;
        // 2. pre-norm transformer layers with layer scale
        for b in &self.blocks {
            let a = b.attn.forward(&b.norm1.forward(&x)?)?;
            x = (&x + a.broadcast_mul(&b.scale1)?)?;
            let m = b.mlp.forward(&b.norm2.forward(&x)?)?;
            x = (&x + m.broadcast_mul(&b.scale2)?)?;
        }
        // 3. final norm, head on [class token, mean of the patch tokens]
        let x = self.ln.forward(&x)?;
        let t = x.dim(1)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        let mean = x.narrow(1, 1, t - 1)?.mean(1)?;
        Ok(self.classifier.forward(&Tensor::cat(&[&cls, &mean], 1)?)?)
    }
}
