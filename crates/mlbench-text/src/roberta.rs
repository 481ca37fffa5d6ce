//! RoBERTa and XLM-RoBERTa: the BERT encoder with positions counted from `pad_token_id + 1`,
//! and `RobertaClassificationHead` (`classifier.dense` → tanh → `classifier.out_proj` on the
//! first token, no pooler).
//!
//! Reference: transformers 5.24 `models/roberta/modeling_roberta.py`
//! (`create_position_ids_from_input_ids`, `RobertaClassificationHead`); XLM-R is the same code.

use candle_core::Tensor;
use candle_nn::VarBuilder;

use crate::bert::{BertModel, Config};
use crate::nn::{linear, Linear};
use crate::Result;

/// The position of the first token: positions start after the padding index.
pub fn position_offset(cfg: &Config) -> usize {
    cfg.pad_token_id.unwrap_or(1) + 1
}

/// Loads the encoder (`vb` at `roberta`, or the root for sentence-transformers checkpoints).
pub fn load_encoder(vb: VarBuilder, cfg: &Config) -> Result<BertModel> {
    BertModel::load(vb, cfg, position_offset(cfg))
}

/// `RobertaClassificationHead`.
#[derive(Debug, Clone)]
pub struct RobertaClassificationHead {
    dense: Linear,
    out_proj: Linear,
}

impl RobertaClassificationHead {
    /// Loads `classifier.dense` and `classifier.out_proj` (`vb` at the root).
    pub fn load(vb: &VarBuilder, cfg: &Config, labels: usize) -> Result<Self> {
        let h = cfg.hidden_size;
        let c = vb.pp("classifier");
        Ok(Self {
            dense: linear(&c, "dense", h, h)?,
            out_proj: linear(&c, "out_proj", h, labels)?,
        })
    }

    /// Logits (b, labels) of the last hidden states.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let x = self.dense.forward(&cls)?.tanh()?;
        self.out_proj.forward(&x)
    }
}
