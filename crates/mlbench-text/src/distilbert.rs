//! DistilBERT, as transformers' `DistilBertModel` and `DistilBertForSequenceClassification`
//! (`pre_classifier` → ReLU → `classifier` on the first token).
//!
//! Reference: transformers 5.24 `models/distilbert/modeling_distilbert.py`. Same post-norm
//! layer as BERT under other names (`q_lin`, `sa_layer_norm`, `ffn.lin1`, …), no token types.

use candle_core::Tensor;
use candle_nn::{Embedding, LayerNorm, Module, VarBuilder};
use serde::Deserialize;

use crate::activation::{self, Activation};
use crate::attention::unpack;
use crate::bert::PostNormLayer;
use crate::nn::{fused_linear, layer_norm, linear, Linear};
use crate::tokenize::Batch;
use crate::{Error, Result};

/// The fields of a DistilBERT `config.json` this crate reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub dim: usize,
    /// Transformer layers.
    pub n_layers: usize,
    /// Attention heads per layer.
    pub n_heads: usize,
    /// Width of the feed-forward layer.
    pub hidden_dim: usize,
    /// Feed-forward activation.
    #[serde(default = "activation::gelu")]
    pub activation: Activation,
    /// Learned positions.
    pub max_position_embeddings: usize,
    /// Sinusoidal positions (stored in the checkpoint all the same).
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
}

/// Layer-norm epsilon of DistilBERT (fixed in transformers' code).
const EPS: f64 = 1e-12;

/// The DistilBERT encoder.
#[derive(Debug, Clone)]
pub struct DistilBertModel {
    word: Embedding,
    position: Embedding,
    norm: LayerNorm,
    layers: Vec<PostNormLayer>,
}

impl DistilBertModel {
    /// Loads `embeddings.*` and `transformer.layer.N.*` (`vb` at `distilbert`).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        if cfg.n_heads == 0 || !cfg.dim.is_multiple_of(cfg.n_heads) {
            return Err(Error::Model(format!(
                "config.json: dim {} is not a multiple of n_heads {}",
                cfg.dim, cfg.n_heads
            )));
        }
        let h = cfg.dim;
        let e = vb.pp("embeddings");
        let layers = (0..cfg.n_layers)
            .map(|i| {
                let l = vb.pp(format!("transformer.layer.{i}"));
                Ok(PostNormLayer {
                    qkv: fused_linear(
                        &l,
                        ["attention.q_lin", "attention.k_lin", "attention.v_lin"],
                        h,
                    )?,
                    out: linear(&l, "attention.out_lin", h, h)?,
                    attn_norm: layer_norm(&l, "sa_layer_norm", h, EPS)?,
                    ffn_in: linear(&l, "ffn.lin1", h, cfg.hidden_dim)?,
                    ffn_out: linear(&l, "ffn.lin2", cfg.hidden_dim, h)?,
                    ffn_norm: layer_norm(&l, "output_layer_norm", h, EPS)?,
                    act: cfg.activation,
                    heads: cfg.n_heads,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word: candle_nn::embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?,
            position: candle_nn::embedding(
                cfg.max_position_embeddings,
                h,
                e.pp("position_embeddings"),
            )?,
            norm: layer_norm(&e, "LayerNorm", h, EPS)?,
            layers,
        })
    }

    /// The last hidden states (b, t, dim) of a batch.
    /// The layers run on the real tokens only; padded positions come back as zeros (transformers
    /// computes them, but no real token sees them).
    pub fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let (_, t) = batch.input_ids.dims2()?;
        let max = self.position.embeddings().dim(0)?;
        if t > max {
            return Err(Error::Invalid(format!(
                "{t} tokens, more than the model's {max} positions"
            )));
        }
        let (ids, positions) = batch.packed(0)?;
        let x = (self.word.forward(&ids)? + self.position.forward(&positions)?)?;
        let mut x = self.norm.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward(&x, &batch.lengths)?;
        }
        Ok(unpack(&x, &batch.lengths, t)?)
    }
}

/// `DistilBertForSequenceClassification`'s head.
#[derive(Debug, Clone)]
pub struct DistilBertClassificationHead {
    pre_classifier: Linear,
    classifier: Linear,
}

impl DistilBertClassificationHead {
    /// Loads `pre_classifier` and `classifier` (`vb` at the root).
    pub fn load(vb: &VarBuilder, cfg: &Config, labels: usize) -> Result<Self> {
        Ok(Self {
            pre_classifier: linear(vb, "pre_classifier", cfg.dim, cfg.dim)?,
            classifier: linear(vb, "classifier", cfg.dim, labels)?,
        })
    }

    /// Logits (b, labels) of the last hidden states.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let x = self.pre_classifier.forward(&cls)?.relu()?;
        self.classifier.forward(&x)
    }
}
