//! ModernBERT, as transformers' `ModernBertModel` and `ModernBertForSequenceClassification`.
//!
//! Reference: transformers 5.24 `models/modernbert/modeling_modernbert.py`. Pre-norm layers
//! (the first one without `attn_norm`), fused `Wqkv`, rotary positions with one θ for global
//! and one for sliding-window layers, a GLU feed-forward (`Wi` → act(input) · gate → `Wo`),
//! `final_norm`; the head pools (`cls` or `mean`), then `head.dense` → act → `head.norm` →
//! `classifier`.
//!
//! Written here rather than taken from candle-transformers 0.11.1, whose `modernbert` returns
//! softmax probabilities from its classifier, hard-codes GELU and bias-free norms, and reads
//! neither the `layer_types` / `rope_parameters` of transformers 5 configs nor the `_bias`
//! flags.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Module, VarBuilder};
use serde::Deserialize;

use crate::activation::{self, Activation};
use crate::attention::{masked_attention, masked_mean, padded_attention, split_qkv};
use crate::nn::{layer_norm_b, linear_b, Linear};
use crate::tokenize::Batch;
use crate::{Error, Result};

/// Pooling of the classification head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassifierPooling {
    /// The first token.
    #[default]
    Cls,
    /// The mean over the real tokens.
    Mean,
}

#[derive(Debug, Clone, Deserialize)]
struct RopeParameters {
    rope_theta: f64,
    #[serde(default)]
    rope_type: Option<String>,
}

/// The fields of a ModernBERT `config.json` this crate reads (both the transformers 4 form,
/// `global_attn_every_n_layers` / `global_rope_theta` / `local_rope_theta`, and the
/// transformers 5 form, `layer_types` / `rope_parameters`).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the GLU's input and gate.
    pub intermediate_size: usize,
    /// GLU activation.
    #[serde(default = "activation::gelu")]
    pub hidden_activation: Activation,
    /// Maximum sequence length.
    pub max_position_embeddings: usize,
    /// Layer-norm epsilon.
    #[serde(default = "norm_eps")]
    pub norm_eps: f64,
    /// Layer norms have a bias.
    #[serde(default)]
    pub norm_bias: bool,
    /// `Wqkv` and `Wo` have biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// `Wi` and `Wo` of the GLU have biases.
    #[serde(default)]
    pub mlp_bias: bool,
    /// `head.dense` has a bias.
    #[serde(default)]
    pub classifier_bias: bool,
    /// Activation of the head.
    #[serde(default = "activation::gelu")]
    pub classifier_activation: Activation,
    /// Pooling of the head.
    #[serde(default)]
    pub classifier_pooling: ClassifierPooling,
    /// Width of the sliding window (tokens see ± half of it).
    #[serde(default = "local_attention")]
    pub local_attention: usize,
    #[serde(default)]
    layer_types: Option<Vec<String>>,
    #[serde(default)]
    global_attn_every_n_layers: Option<usize>,
    #[serde(default)]
    rope_parameters: Option<HashMap<String, RopeParameters>>,
    #[serde(default)]
    global_rope_theta: Option<f64>,
    #[serde(default)]
    local_rope_theta: Option<f64>,
}

fn norm_eps() -> f64 {
    1e-5
}
fn local_attention() -> usize {
    128
}

impl Config {
    /// Whether layer `i` uses the sliding window.
    fn is_sliding(&self, i: usize) -> bool {
        match &self.layer_types {
            Some(types) => types.get(i).is_some_and(|t| t == "sliding_attention"),
            None => !i.is_multiple_of(self.global_attn_every_n_layers.unwrap_or(3).max(1)),
        }
    }

    /// RoPE θ of global (`sliding == false`) or sliding-window layers.
    fn rope_theta(&self, sliding: bool) -> Result<f64> {
        let key = if sliding {
            "sliding_attention"
        } else {
            "full_attention"
        };
        if let Some(p) = self.rope_parameters.as_ref().and_then(|r| r.get(key)) {
            if p.rope_type.as_deref().is_some_and(|t| t != "default") {
                return Err(Error::Model(format!(
                    "config.json: rope_type {:?} is not supported",
                    p.rope_type
                )));
            }
            return Ok(p.rope_theta);
        }
        Ok(if sliding {
            self.local_rope_theta.unwrap_or(10_000.0)
        } else {
            self.global_rope_theta.unwrap_or(160_000.0)
        })
    }
}

/// cos and sin tables (max_positions, head_dim / 2) for one θ.
#[derive(Debug, Clone)]
struct Rotary {
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    fn new(
        theta: f64,
        head_dim: usize,
        positions: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        let inv: Vec<f32> = (0..head_dim)
            .step_by(2)
            .map(|i| (1.0 / theta.powf(i as f64 / head_dim as f64)) as f32)
            .collect();
        let n = inv.len();
        let inv = Tensor::from_vec(inv, (1, n), dev)?;
        let t = Tensor::arange(0u32, positions as u32, dev)?
            .to_dtype(DType::F32)?
            .reshape((positions, 1))?;
        let freqs = t.matmul(&inv)?;
        Ok(Self {
            cos: freqs.cos()?.to_dtype(dtype)?,
            sin: freqs.sin()?.to_dtype(dtype)?,
        })
    }

    /// Rotates (b, h, t, d) by positions `0..t` (`rotate_half` layout).
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let t = x.dim(2)?;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, &cos, &sin)?)
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Option<LayerNorm>,
    wqkv: Linear,
    wo: Linear,
    mlp_norm: LayerNorm,
    wi: Linear,
    mlp_wo: Linear,
    sliding: bool,
}

/// The ModernBERT encoder.
#[derive(Debug, Clone)]
pub struct ModernBertModel {
    embeddings: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    global_rope: Rotary,
    local_rope: Rotary,
    act: Activation,
    heads: usize,
    intermediate: usize,
    half_window: usize,
    max_positions: usize,
}

impl ModernBertModel {
    /// Loads `embeddings.*`, `layers.N.*` and `final_norm` (`vb` at `model`).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        let h = cfg.hidden_size;
        if cfg.num_attention_heads == 0 || !h.is_multiple_of(cfg.num_attention_heads) {
            return Err(Error::Model(format!(
                "config.json: hidden_size {h} is not a multiple of num_attention_heads {}",
                cfg.num_attention_heads
            )));
        }
        let head_dim = h / cfg.num_attention_heads;
        let (eps, nb) = (cfg.norm_eps, cfg.norm_bias);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("layers.{i}"));
                let a = l.pp("attn");
                let m = l.pp("mlp");
                Ok(Layer {
                    attn_norm: (i > 0)
                        .then(|| layer_norm_b(&l, "attn_norm", h, eps, nb))
                        .transpose()?,
                    wqkv: linear_b(&a, "Wqkv", h, 3 * h, cfg.attention_bias)?,
                    wo: linear_b(&a, "Wo", h, h, cfg.attention_bias)?,
                    mlp_norm: layer_norm_b(&l, "mlp_norm", h, eps, nb)?,
                    wi: linear_b(&m, "Wi", h, 2 * cfg.intermediate_size, cfg.mlp_bias)?,
                    mlp_wo: linear_b(&m, "Wo", cfg.intermediate_size, h, cfg.mlp_bias)?,
                    sliding: cfg.is_sliding(i),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (dtype, dev) = (vb.dtype(), vb.device().clone());
        let rope = |sliding| {
            Rotary::new(
                cfg.rope_theta(sliding)?,
                head_dim,
                cfg.max_position_embeddings,
                dtype,
                &dev,
            )
        };
        Ok(Self {
            embeddings: candle_nn::embedding(
                cfg.vocab_size,
                h,
                vb.pp("embeddings.tok_embeddings"),
            )?,
            embed_norm: layer_norm_b(&vb, "embeddings.norm", h, eps, nb)?,
            layers,
            final_norm: layer_norm_b(&vb, "final_norm", h, eps, nb)?,
            global_rope: rope(false)?,
            local_rope: rope(true)?,
            act: cfg.hidden_activation,
            heads: cfg.num_attention_heads,
            intermediate: cfg.intermediate_size,
            half_window: cfg.local_attention / 2,
            max_positions: cfg.max_position_embeddings,
        })
    }

    /// Additive mask (b, 1, t, t), 0 or `f32::MIN`: key `j` visible to query `i` when `|i − j| ≤ half window`
    /// and `j` is a real token.
    fn sliding_mask(
        &self,
        lengths: &[usize],
        t: usize,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let w = self.half_window;
        let mut m = Vec::with_capacity(lengths.len() * t * t);
        for &len in lengths {
            for i in 0..t {
                m.extend((0..t).map(|j| {
                    if j < len && i.abs_diff(j) <= w {
                        0f32
                    } else {
                        // Finite: a padded query row far from every real token sees no key,
                        // and must not turn into NaNs that the mean pooling would carry.
                        f32::MIN
                    }
                }));
            }
        }
        Ok(Tensor::from_vec(m, (lengths.len(), 1, t, t), dev)?.to_dtype(dtype)?)
    }

    /// The last hidden states (b, t, hidden) of a batch.
    pub fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let (_, t) = batch.input_ids.dims2()?;
        if t > self.max_positions {
            return Err(Error::Invalid(format!(
                "{t} tokens, more than the model's {} positions",
                self.max_positions
            )));
        }
        let mut x = self
            .embed_norm
            .forward(&self.embeddings.forward(&batch.input_ids)?)?;
        let dev = x.device().clone();
        let sliding_mask = self
            .layers
            .iter()
            .any(|l| l.sliding)
            .then(|| self.sliding_mask(&batch.lengths, t, x.dtype(), &dev))
            .transpose()?;
        for layer in &self.layers {
            let h = match &layer.attn_norm {
                Some(n) => n.forward(&x)?,
                None => x.clone(),
            };
            let (q, k, v) = split_qkv(&layer.wqkv.forward(&h)?, self.heads)?;
            let rope = if layer.sliding {
                &self.local_rope
            } else {
                &self.global_rope
            };
            let (q, k) = (rope.apply(&q)?, rope.apply(&k)?);
            let scale = 1.0 / (q.dim(D::Minus1)? as f32).sqrt();
            let a = match (&sliding_mask, layer.sliding) {
                (Some(mask), true) => masked_attention(&q, &k, &v, mask, scale)?,
                _ => padded_attention(&q, &k, &v, &batch.lengths, scale)?,
            };
            x = (x + layer.wo.forward(&a)?)?;
            let gi = layer.wi.forward(&layer.mlp_norm.forward(&x)?)?;
            let input = gi.narrow(D::Minus1, 0, self.intermediate)?;
            let gate = gi.narrow(D::Minus1, self.intermediate, self.intermediate)?;
            let m = (self.act.forward(&input)? * gate)?;
            x = (x + layer.mlp_wo.forward(&m)?)?;
        }
        Ok(self.final_norm.forward(&x)?)
    }
}

/// `ModernBertForSequenceClassification`'s pooling, `head` and `classifier`.
#[derive(Debug, Clone)]
pub struct ModernBertClassificationHead {
    pooling: ClassifierPooling,
    dense: Linear,
    act: Activation,
    norm: LayerNorm,
    classifier: Linear,
}

impl ModernBertClassificationHead {
    /// Loads `head.dense`, `head.norm` and `classifier` (`vb` at the root).
    pub fn load(vb: &VarBuilder, cfg: &Config, labels: usize) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            pooling: cfg.classifier_pooling,
            dense: linear_b(vb, "head.dense", h, h, cfg.classifier_bias)?,
            act: cfg.classifier_activation,
            norm: layer_norm_b(vb, "head.norm", h, cfg.norm_eps, cfg.norm_bias)?,
            classifier: linear_b(vb, "classifier", h, labels, true)?,
        })
    }

    /// Logits (b, labels) of the last hidden states.
    pub fn forward(&self, hidden: &Tensor, batch: &Batch) -> Result<Tensor> {
        let pooled = match self.pooling {
            ClassifierPooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            ClassifierPooling::Mean => masked_mean(hidden, &batch.attention_mask)?,
        };
        let x = self.act.forward(&self.dense.forward(&pooled)?)?;
        self.classifier.forward(&self.norm.forward(&x)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#""vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 4,
        "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 16"#;

    #[test]
    fn transformers_4_config_names_global_layers_and_thetas() {
        // answerdotai/ModernBERT-base's form.
        let c: Config = serde_json::from_str(&format!(
            r#"{{{BASE}, "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0,
                "local_rope_theta": 10000.0, "classifier_pooling": "mean"}}"#
        ))
        .unwrap();
        let sliding: Vec<bool> = (0..4).map(|i| c.is_sliding(i)).collect();
        assert_eq!(sliding, [false, true, true, false]);
        assert_eq!(c.rope_theta(false).unwrap(), 160_000.0);
        assert_eq!(c.rope_theta(true).unwrap(), 10_000.0);
        assert_eq!(c.classifier_pooling, ClassifierPooling::Mean);
    }

    #[test]
    fn transformers_5_config_uses_layer_types_and_rope_parameters() {
        let c: Config = serde_json::from_str(&format!(
            r#"{{{BASE}, "layer_types": ["full_attention", "sliding_attention",
                "full_attention", "sliding_attention"],
                "rope_parameters": {{"full_attention": {{"rope_theta": 5.0, "rope_type": "default"}},
                "sliding_attention": {{"rope_theta": 7.0, "rope_type": "default"}}}}}}"#
        ))
        .unwrap();
        let sliding: Vec<bool> = (0..4).map(|i| c.is_sliding(i)).collect();
        assert_eq!(sliding, [false, true, false, true]);
        assert_eq!(c.rope_theta(false).unwrap(), 5.0);
        assert_eq!(c.rope_theta(true).unwrap(), 7.0);
        assert_eq!(c.classifier_pooling, ClassifierPooling::Cls);
    }
}
