//! DeBERTa-v2 / v3: candle-transformers' encoder (disentangled attention, log-bucketed relative
//! positions) and `DebertaV2ForSequenceClassification`'s head: `ContextPooler` (`pooler.dense`
//! and `pooler_hidden_act` on the first token) and `classifier`.
//!
//! Reference: transformers 5.24 `models/deberta_v2/modeling_deberta_v2.py`. The tiny-model
//! parity test (tests/tiny_models.rs) checks candle-transformers' encoder against it. It runs
//! in f32 whatever the requested dtype: that encoder builds its masks and position biases in f32.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::debertav2;

pub use debertav2::Config;

use crate::activation::Activation;
use crate::nn::{linear, Linear};
use crate::tokenize::Batch;
use crate::Result;

/// The DeBERTa-v2 encoder.
pub struct DebertaV2Model {
    inner: debertav2::DebertaV2Model,
}

impl std::fmt::Debug for DebertaV2Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DebertaV2Model").finish_non_exhaustive()
    }
}

impl DebertaV2Model {
    /// Loads `embeddings.*` and `encoder.*` (`vb` at `deberta`).
    pub fn load(vb: VarBuilder, cfg: &Config) -> Result<Self> {
        Ok(Self {
            inner: debertav2::DebertaV2Model::load(vb, cfg)?,
        })
    }

    /// The last hidden states (b, t, hidden) of a batch.
    pub fn forward(&self, batch: &Batch) -> Result<Tensor> {
        let mask = batch.attention_mask.to_dtype(DType::I64)?;
        Ok(self.inner.forward(&batch.input_ids, None, Some(mask))?)
    }
}

/// `ContextPooler` + `classifier`.
#[derive(Debug, Clone)]
pub struct DebertaV2ClassificationHead {
    pooler: Linear,
    act: Activation,
    classifier: Linear,
}

impl DebertaV2ClassificationHead {
    /// Loads `pooler.dense` and `classifier` (`vb` at the root).
    pub fn load(vb: &VarBuilder, cfg: &Config, labels: usize, act: Activation) -> Result<Self> {
        let p = cfg.pooler_hidden_size.unwrap_or(cfg.hidden_size);
        Ok(Self {
            pooler: linear(vb, "pooler.dense", cfg.hidden_size, p)?,
            act,
            classifier: linear(vb, "classifier", p, labels)?,
        })
    }

    /// Logits (b, labels) of the last hidden states.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let x = self.act.forward(&self.pooler.forward(&cls)?)?;
        self.classifier.forward(&x)
    }
}
