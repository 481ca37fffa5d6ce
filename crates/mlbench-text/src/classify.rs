//! The text-classification pipeline: tokenize, batch, run the encoder and its head, turn logits
//! into scores, as Hugging Face's `text-classification` pipeline does.

use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use mlbench_core::source::ModelFiles;
use serde::Serialize;

use crate::model::{Checkpoint, Encoder, Head};
use crate::tokenize::{Batch, TextTokenizer, Truncation};
use crate::{Error, Result};

/// How logits become scores (transformers' `function_to_apply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreFunction {
    /// Softmax over the labels: one label per text (single-label classification).
    Softmax,
    /// Sigmoid per label: independent labels (multi-label classification).
    Sigmoid,
    /// The raw logits.
    None,
}

impl FromStr for ScoreFunction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "softmax" => Ok(Self::Softmax),
            "sigmoid" => Ok(Self::Sigmoid),
            "none" => Ok(Self::None),
            other => Err(Error::Invalid(format!(
                "unknown function {other:?} (softmax, sigmoid or none)"
            ))),
        }
    }
}

impl ScoreFunction {
    /// What transformers' pipeline applies for a `problem_type` and label count.
    pub fn for_problem(problem_type: Option<&str>, labels: usize) -> Self {
        match problem_type {
            Some("regression") => Self::None,
            Some("multi_label_classification") => Self::Sigmoid,
            _ if labels == 1 => Self::Sigmoid,
            _ => Self::Softmax,
        }
    }

    /// Scores of one row of logits.
    pub fn apply(self, logits: &[f32]) -> Vec<f32> {
        match self {
            Self::Softmax => softmax(logits),
            Self::Sigmoid => logits.iter().map(|&x| 1.0 / (1.0 + (-x).exp())).collect(),
            Self::None => logits.to_vec(),
        }
    }
}

pub(crate) fn softmax(x: &[f32]) -> Vec<f32> {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|&v| (v - max).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// Settings of [`TextClassifier::classify`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyParams {
    /// Labels per text, best first; 0 returns all labels.
    pub top_k: usize,
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Softmax, sigmoid or raw logits; `None` follows the checkpoint's `problem_type` (as
    /// transformers' pipeline: sigmoid for multi-label or one-label models, else softmax).
    pub function: Option<ScoreFunction>,
}

impl Default for ClassifyParams {
    fn default() -> Self {
        Self {
            top_k: 1,
            batch_size: 32,
            function: None,
        }
    }
}

/// One label and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The label's name (`id2label`).
    pub label: String,
    /// Its score.
    pub score: f32,
}

/// The result of [`TextClassifier::classify`].
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// The top-k labels of each text, in input order.
    pub predictions: Vec<Vec<Prediction>>,
    /// Texts cut at the model's maximum length.
    pub truncated: Vec<Truncation>,
}

/// A loaded sequence classifier: tokenizer, encoder, head and labels.
#[derive(Debug)]
pub struct TextClassifier {
    encoder: Encoder,
    head: Head,
    tokenizer: TextTokenizer,
    labels: Vec<String>,
    function: ScoreFunction,
    device: Device,
}

impl TextClassifier {
    /// Loads a `*ForSequenceClassification` checkpoint (BERT, RoBERTa, XLM-R, DistilBERT,
    /// DeBERTa-v2/v3, ModernBERT): `config.json`, `model.safetensors` (or
    /// `pytorch_model.bin`) and its tokenizer.
    pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        let ck = Checkpoint::read(files, device, dtype)?;
        let n = ck.num_labels()?;
        let (encoder, limit) = ck.encoder()?;
        let head = ck.head(n)?;
        let labels = ck.labels(n)?;
        let function = ScoreFunction::for_problem(ck.common.problem_type.as_deref(), n);
        let tokenizer = crate::model::text_tokenizer(files, &ck, limit, None)?;
        Ok(Self {
            encoder,
            head,
            tokenizer,
            labels,
            function,
            device: device.clone(),
        })
    }

    /// Label names by index.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The score function the checkpoint's `problem_type` implies.
    pub fn default_function(&self) -> ScoreFunction {
        self.function
    }

    /// The tokenizer (padding, truncation, maximum length).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Logits (b, labels), f32, of a tokenized batch.
    pub fn logits(&self, batch: &Batch) -> Result<Tensor> {
        let hidden = self.encoder.forward(batch)?;
        Ok(self.head.forward(&hidden, batch)?.to_dtype(DType::F32)?)
    }

    /// The top-k labels of each text. Texts are batched by length (less padding) and returned
    /// in input order; each text is cut at the model's maximum length (reported in
    /// [`Classification::truncated`]).
    pub fn classify<S: AsRef<str>>(
        &self,
        texts: &[S],
        params: &ClassifyParams,
    ) -> Result<Classification> {
        if params.batch_size == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        let function = params.function.unwrap_or(self.function);
        let k = match params.top_k {
            0 => self.labels.len(),
            k => k.min(self.labels.len()),
        };
        let (rows, truncated) = run_sorted(texts, params.batch_size, |batch_texts, first| {
            let (batch, truncated) = self.tokenizer.encode(batch_texts, first, &self.device)?;
            Ok((self.logits(&batch)?.to_vec2::<f32>()?, truncated))
        })?;
        let predictions = rows
            .iter()
            .map(|logits| {
                let scores = function.apply(logits);
                let mut idx: Vec<usize> = (0..scores.len()).collect();
                idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
                idx.into_iter()
                    .take(k)
                    .map(|i| Prediction {
                        label: self.labels[i].clone(),
                        score: scores[i],
                    })
                    .collect()
            })
            .collect();
        Ok(Classification {
            predictions,
            truncated,
        })
    }
}

/// Runs `f` over batches of `texts` sorted by length (longest first, as sentence-transformers
/// does, so each batch pads little) and returns its rows in input order, with the truncation
/// reports numbered by input position.
pub(crate) fn run_sorted<S: AsRef<str>>(
    texts: &[S],
    batch_size: usize,
    mut f: impl FnMut(&[&str], usize) -> Result<(Vec<Vec<f32>>, Vec<Truncation>)>,
) -> Result<(Vec<Vec<f32>>, Vec<Truncation>)> {
    if texts.is_empty() {
        return Err(Error::Invalid("no texts given".into()));
    }
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(texts[i].as_ref().len()));
    let mut rows = vec![Vec::new(); texts.len()];
    let mut truncated = Vec::new();
    for chunk in order.chunks(batch_size) {
        let batch: Vec<&str> = chunk.iter().map(|&i| texts[i].as_ref()).collect();
        let (out, trunc) = f(&batch, 0)?;
        for (&i, row) in chunk.iter().zip(out) {
            rows[i] = row;
        }
        truncated.extend(trunc.into_iter().map(|mut t| {
            t.index = chunk[t.index];
            t
        }));
    }
    truncated.sort_by_key(|t| t.index);
    Ok((rows, truncated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_follows_problem_type_as_transformers() {
        use ScoreFunction as F;
        assert_eq!(F::for_problem(None, 2), F::Softmax);
        assert_eq!(F::for_problem(None, 1), F::Sigmoid);
        assert_eq!(
            F::for_problem(Some("multi_label_classification"), 5),
            F::Sigmoid
        );
        assert_eq!(F::for_problem(Some("regression"), 1), F::None);
        assert!("tanh".parse::<ScoreFunction>().is_err());
        let s = F::Softmax.apply(&[1.0, 2.0, 3.0]);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6 && s[2] > s[1]);
        assert!((F::Sigmoid.apply(&[0.0])[0] - 0.5).abs() < 1e-7);
    }

    #[test]
    fn run_sorted_restores_input_order() {
        let texts = ["a", "ccc", "bb", "dddd"];
        let (rows, _) = run_sorted(&texts, 3, |batch, _| {
            Ok((batch.iter().map(|t| vec![t.len() as f32]).collect(), vec![]))
        })
        .unwrap();
        assert_eq!(rows, vec![vec![1.0], vec![3.0], vec![2.0], vec![4.0]]);
        assert!(run_sorted::<&str>(&[], 3, |_, _| unreachable!()).is_err());
    }
}
