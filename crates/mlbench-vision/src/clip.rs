//! CLIP's vision tower with a classification head, as in transformers'
//! `CLIPForImageClassification`: keys `vision_model.embeddings.{class_embedding,
//! patch_embedding,position_embedding}`, `vision_model.pre_layrnorm`,
//! `vision_model.encoder.layers.N.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,
//! mlp.{fc1,fc2}}`, `classifier`. The head reads the mean of the patch tokens of the last
//! layer's output, without `post_layernorm` (that one only normalises the pooled class token,
//! which the classifier does not use). Reference: transformers `models/clip/modeling_clip.py`
//! (v5.24).

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear};
use mlbench_core::kernels::conv::Conv2d;
use serde::Deserialize;

use crate::vit::{check_heads, embed_patches, patch_conv, SelfAttention};
use crate::weights::Weights;
use crate::{Error, Result};

/// The `config.json` of a CLIP checkpoint: only its `vision_config` matters here.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// The vision tower's settings.
    pub vision_config: VisionConfig,
}

/// The fields of CLIP's `vision_config` that shape the network.
#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    /// Width of the token embeddings.
    #[serde(default = "hidden_size")]
    pub hidden_size: usize,
    /// Transformer layers.
    #[serde(default = "layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "heads")]
    pub num_attention_heads: usize,
    /// MLP activation (`quick_gelu`, or exact `gelu`).
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    /// Layer-norm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Square input size (the only size the model takes).
    #[serde(default = "image_size")]
    pub image_size: usize,
    /// Square patch size.
    #[serde(default = "patch_size")]
    pub patch_size: usize,
}

fn hidden_size() -> usize {
    768
}
fn layers() -> usize {
    12
}
fn heads() -> usize {
    12
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn eps() -> f64 {
    1e-5
}
fn image_size() -> usize {
    224
}
fn patch_size() -> usize {
    32
}

#[derive(Debug, Clone)]
struct Block {
    ln1: LayerNorm,
    attn: SelfAttention,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// CLIP's vision transformer with a linear head on the mean patch token.
#[derive(Debug, Clone)]
pub struct Clip {
    config: VisionConfig,
    patch: Conv2d,
    cls: Tensor,
    pos: Tensor,
    pre_ln: LayerNorm,
    blocks: Vec<Block>,
    classifier: Linear,
}

impl Clip {
    /// Builds the model from a transformers state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let c = &config.vision_config;
        if c.hidden_act != "quick_gelu" && c.hidden_act != "gelu" {
            return Err(Error::Model(format!(
                "CLIP with hidden_act {} is not supported (quick_gelu or gelu)",
                c.hidden_act
            )));
        }
        check_heads("CLIP vision", c.hidden_size, c.num_attention_heads)?;
        let w = Weights::new(tensors, device, dtype);
        let eps = c.layer_norm_eps;
        let blocks = (0..c.num_hidden_layers)
            .map(|i| {
                let l = format!("vision_model.encoder.layers.{i}");
                let a = |p: &str| format!("{l}.self_attn.{p}");
                Ok(Block {
                    ln1: w.layer_norm(&format!("{l}.layer_norm1"), eps)?,
                    attn: SelfAttention::load(
                        &w,
                        [&a("q_proj"), &a("k_proj"), &a("v_proj"), &a("out_proj")],
                        c.num_attention_heads,
                    )?,
                    ln2: w.layer_norm(&format!("{l}.layer_norm2"), eps)?,
                    fc1: w.linear(&format!("{l}.mlp.fc1"))?,
                    fc2: w.linear(&format!("{l}.mlp.fc2"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: c.clone(),
            patch: patch_conv(&w, "vision_model.embeddings.patch_embedding", c.patch_size)?,
            cls: w.get("vision_model.embeddings.class_embedding")?,
            pos: w
                .get("vision_model.embeddings.position_embedding.weight")?
                .unsqueeze(0)?,
            pre_ln: w.layer_norm("vision_model.pre_layrnorm", eps)?,
            blocks,
            classifier: w.linear("classifier")?,
        })
    }

    fn activation(&self, x: &Tensor) -> Result<Tensor> {
        Ok(if self.config.hidden_act == "gelu" {
            x.gelu_erf()?
        } else {
            // quick_gelu: x · σ(1.702 x)
            (x * candle_nn::ops::sigmoid(&(x * 1.702)?)?)?
        })
    }

    /// Logits (b, labels) of a normalised batch (b, 3, image_size, image_size).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.cls.dtype())?;
        let (_, _, h, w) = x.dims4()?;
        let size = self.config.image_size;
        if (h, w) != (size, size) {
            return Err(Error::Invalid(format!(
                "CLIP input is {h}×{w}, the model expects {size}×{size}"
            )));
        }
        // 1. class embedding + patches + position embeddings, pre-norm
        let x = embed_patches(&self.patch, &self.cls, &x)?.broadcast_add(&self.pos)?;
        let mut x = self.pre_ln.forward(&x)?;
        // 2. pre-norm transformer layers
        for b in &self.blocks {
            x = (&x + b.attn.forward(&b.ln1.forward(&x)?)?)?;
            let m = b
                .fc2
                .forward(&self.activation(&b.fc1.forward(&b.ln2.forward(&x)?)?)?)?;
            x = (x + m)?;
        }
        // 3. head on the mean of the patch tokens (no post_layernorm)
        let t = x.dim(1)?;
        let mean = x.narrow(1, 1, t - 1)?.mean(1)?;
        Ok(self.classifier.forward(&mean)?)
    }
}
