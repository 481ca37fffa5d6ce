//! BERT (and the encoder RoBERTa / XLM-R share with it), as transformers' `BertModel` and
//! `BertForSequenceClassification`.
//!
//! Reference: transformers 5.24 `models/bert/modeling_bert.py`. The checkpoint's key names are
//! used unchanged (`bert.embeddings.word_embeddings`, `bert.encoder.layer.N.attention.self.query`,
//! …; sentence-transformers checkpoints have no `bert.` prefix). The query, key and value
//! projections are concatenated at load time into one matrix: one matmul instead of three. The
//! layers run on the real tokens of the batch packed back to back, attention per sequence, so
//! padding costs nothing.

use candle_core::{DType, Tensor, D};
use candle_nn::{Embedding, LayerNorm, Module, VarBuilder};
use serde::Deserialize;

use crate::activation::{self, Activation};
use crate::attention::{packed_attention, unpack};
use crate::nn::{fused_linear, layer_norm, linear, Linear};
use crate::ops::add_into;
use crate::tokenize::Batch;
use crate::{Error, Result};

/// The fields of a BERT `config.json` this crate reads.
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
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "activation::gelu")]
    pub hidden_act: Activation,
    /// Learned positions.
    pub max_position_embeddings: usize,
    /// Token type (segment) vocabulary; 0 when the model has none.
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Padding token id (RoBERTa: positions start after it).
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// Only `absolute` is supported.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
}

fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}

/// One post-norm transformer layer: `x = LN(x + attn(x)); x = LN(x + ffn(x))` (BERT, DistilBERT).
#[derive(Debug, Clone)]
pub(crate) struct PostNormLayer {
    pub(crate) qkv: Linear,
    pub(crate) out: Linear,
    pub(crate) attn_norm: LayerNorm,
    pub(crate) ffn_in: Linear,
    pub(crate) ffn_out: Linear,
    pub(crate) ffn_norm: LayerNorm,
    pub(crate) act: Activation,
    pub(crate) heads: usize,
}

impl PostNormLayer {
    /// `x` (n, hidden): the real tokens of the sequences back to back (`lengths`).
    pub(crate) fn forward(&self, x: &Tensor, lengths: &[usize]) -> Result<Tensor> {
        let qkv = self.qkv.forward(x)?;
        let head_dim = qkv.dim(D::Minus1)? / 3 / self.heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let a = packed_attention(&qkv, self.heads, lengths, scale)?;
        let x = self
            .attn_norm
            .forward(&add_into(self.out.forward(&a)?, x)?)?;
        let h = self.ffn_in.forward_act(&x, Some(self.act))?;
        Ok(self
            .ffn_norm
            .forward(&add_into(self.ffn_out.forward(&h)?, &x)?)?)
    }
}

/// The BERT encoder: embeddings and layers.
#[derive(Debug, Clone)]
pub struct BertModel {
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
    norm: LayerNorm,
    layers: Vec<PostNormLayer>,
    position_offset: usize,
}

impl BertModel {
    /// Loads `PREFIX.embeddings.*` and `PREFIX.encoder.layer.N.*` (`vb` already at `PREFIX`).
    /// `position_offset` is added to the position ids (RoBERTa: `pad_token_id + 1`).
    pub fn load(vb: VarBuilder, cfg: &Config, position_offset: usize) -> Result<Self> {
        if let Some(t) = cfg.position_embedding_type.as_deref() {
            if t != "absolute" {
                return Err(Error::Model(format!(
                    "config.json: position_embedding_type {t:?} is not supported (only absolute)"
                )));
            }
        }
        if cfg.num_attention_heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads)
        {
            return Err(Error::Model(format!(
                "config.json: hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            )));
        }
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let word = candle_nn::embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?;
        let position =
            candle_nn::embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?;
        let token_type = (cfg.type_vocab_size > 0)
            .then(|| candle_nn::embedding(cfg.type_vocab_size, h, e.pp("token_type_embeddings")))
            .transpose()?;
        let norm = layer_norm(&e, "LayerNorm", h, cfg.layer_norm_eps)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let eps = cfg.layer_norm_eps;
                Ok(PostNormLayer {
                    qkv: fused_linear(
                        &l,
                        [
                            "attention.self.query",
                            "attention.self.key",
                            "attention.self.value",
                        ],
                        h,
                    )?,
                    out: linear(&l, "attention.output.dense", h, h)?,
                    attn_norm: layer_norm(&l, "attention.output.LayerNorm", h, eps)?,
                    ffn_in: linear(&l, "intermediate.dense", h, cfg.intermediate_size)?,
                    ffn_out: linear(&l, "output.dense", cfg.intermediate_size, h)?,
                    ffn_norm: layer_norm(&l, "output.LayerNorm", h, eps)?,
                    act: cfg.hidden_act,
                    heads: cfg.num_attention_heads,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word,
            position,
            token_type,
            norm,
            layers,
            position_offset,
        })
    }

    /// The last hidden states (b, t, hidden) of a batch.
    /// The layers run on the real tokens only; padded positions come back as zeros (transformers
    /// computes them, but no real token sees them).
    pub fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let (_, t) = batch.input_ids.dims2()?;
        let max = self.position.embeddings().dim(0)?;
        if t + self.position_offset > max {
            return Err(Error::Invalid(format!(
                "{t} tokens, more than the model's {} positions",
                max - self.position_offset
            )));
        }
        // The layers run on the real tokens only (packed); padding is added back at the end.
        let (ids, positions) = batch.packed(self.position_offset)?;
        let mut x = (self.word.forward(&ids)? + self.position.forward(&positions)?)?;
        if let Some(tt) = &self.token_type {
            // All segment ids are 0: add the first row.
            x = x.broadcast_add(&tt.embeddings().get(0)?)?;
        }
        let mut x = self.norm.forward(&x)?;
        for layer in &self.layers {
            x = layer.forward(&x, &batch.lengths)?;
        }
        Ok(unpack(&x, &batch.lengths, t)?)
    }

    /// The dtype of the weights.
    pub fn dtype(&self) -> DType {
        self.word.embeddings().dtype()
    }
}

/// `BertForSequenceClassification`'s head: the pooler (`bert.pooler.dense` + tanh on the first
/// token) and `classifier`.
#[derive(Debug, Clone)]
pub struct BertClassificationHead {
    pooler: Linear,
    classifier: Linear,
}

impl BertClassificationHead {
    /// Loads `PREFIX.pooler.dense` (`encoder` at `PREFIX`) and `classifier` (`root`).
    pub fn load(
        encoder: &VarBuilder,
        root: &VarBuilder,
        cfg: &Config,
        labels: usize,
    ) -> Result<Self> {
        let h = cfg.hidden_size;
        Ok(Self {
            pooler: linear(encoder, "pooler.dense", h, h)?,
            classifier: linear(root, "classifier", h, labels)?,
        })
    }

    /// Logits (b, labels) of the last hidden states.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        self.classifier.forward(&pooled)
    }
}
