//! ViT as in transformers' `ViTForImageClassification` (google/vit-*): keys
//! `vit.embeddings.{cls_token,position_embeddings,patch_embeddings.projection}`,
//! `vit.encoder.layer.N.{attention.attention.{query,key,value},attention.output.dense,
//! intermediate.dense,output.dense,layernorm_before,layernorm_after}`, `vit.layernorm`,
//! `classifier`. Reference: transformers `models/vit/modeling_vit.py` (v5.24).

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear};
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams};
use serde::Deserialize;

use crate::weights::Weights;
use crate::{Error, Result};

/// The fields of a ViT `config.json` that shape the network.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Width of the token embeddings.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// MLP activation (`gelu`, exact).
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
}

fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-12
}
fn image_size() -> usize {
    224
}
fn patch_size() -> usize {
    16
}

#[derive(Debug, Clone)]
struct Block {
    ln1: LayerNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// ViT with its classification head (on the class token).
#[derive(Debug, Clone)]
pub struct Vit {
    config: Config,
    patch: Conv2d,
    cls: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    classifier: Linear,
}

impl Vit {
    /// Builds the model from a transformers state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if config.hidden_act != "gelu" {
            return Err(Error::Model(format!(
                "ViT with hidden_act {} is not supported (only gelu)",
                config.hidden_act
            )));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(Error::Model(
                "ViT config: hidden_size is not a multiple of num_attention_heads".into(),
            ));
        }
        let w = Weights::new(tensors, device, dtype);
        let eps = config.layer_norm_eps;
        let p = config.patch_size;
        let patch = w.conv(
            "vit.embeddings.patch_embeddings.projection",
            Conv2dParams {
                stride: (p, p),
                ..Default::default()
            },
        )?;
        let blocks = (0..config.num_hidden_layers)
            .map(|i| {
                let l = format!("vit.encoder.layer.{i}");
                Ok(Block {
                    ln1: w.layer_norm(&format!("{l}.layernorm_before"), eps)?,
                    q: w.linear(&format!("{l}.attention.attention.query"))?,
                    k: w.linear(&format!("{l}.attention.attention.key"))?,
                    v: w.linear(&format!("{l}.attention.attention.value"))?,
                    out: w.linear(&format!("{l}.attention.output.dense"))?,
                    ln2: w.layer_norm(&format!("{l}.layernorm_after"), eps)?,
                    fc1: w.linear(&format!("{l}.intermediate.dense"))?,
                    fc2: w.linear(&format!("{l}.output.dense"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            patch,
            cls: w.get("vit.embeddings.cls_token")?,
            pos: w.get("vit.embeddings.position_embeddings")?,
            blocks,
            ln: w.layer_norm("vit.layernorm", eps)?,
            classifier: w.linear("classifier")?,
        })
    }

    fn attention(&self, b: &Block, x: &Tensor) -> Result<Tensor> {
        let (n, t, c) = x.dims3()?;
        let heads = self.config.num_attention_heads;
        let d = c / heads;
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((n, t, heads, d))?.transpose(1, 2)?.contiguous()?)
        };
        let q = split((b.q.forward(x)? * (1.0 / (d as f64).sqrt()))?)?;
        let k = split(b.k.forward(x)?)?;
        let v = split(b.v.forward(x)?)?;
        let scores = q.matmul(&k.t()?)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(&v)?.transpose(1, 2)?.reshape((n, t, c))?;
        Ok(b.out.forward(&y)?)
    }

    /// Logits (b, labels) of a normalised batch (b, 3, image_size, image_size).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.cls.dtype())?;
        let (n, _, h, w) = x.dims4()?;
        let size = self.config.image_size;
        if (h, w) != (size, size) {
            return Err(Error::Invalid(format!(
                "ViT input is {h}×{w}, the model expects {size}×{size}"
            )));
        }
        // 1. patches + class token + position embeddings
        let patches = self.patch.forward(&x)?.flatten_from(2)?.transpose(1, 2)?;
        let cls = self.cls.broadcast_as((n, 1, self.cls.dim(2)?))?;
        let mut x = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.pos)?;
        // 2. pre-norm transformer layers
        for b in &self.blocks {
            x = (&x + self.attention(b, &b.ln1.forward(&x)?)?)?;
            let m = b
                .fc2
                .forward(&b.fc1.forward(&b.ln2.forward(&x)?)?.gelu_erf()?)?;
            x = (x + m)?;
        }
        // 3. final norm, head on the class token
        let x = self.ln.forward(&x)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(self.classifier.forward(&cls)?)
    }
}
