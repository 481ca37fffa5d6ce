//! Zero-shot classification by sentence embeddings: each candidate label is put into a
//! hypothesis ("This example is {}."), texts and hypotheses are embedded, and labels are ranked
//! by cosine similarity.
//!
//! Scores: `softmax(scale · cosine)` over the labels, with `scale` 20 by default, the similarity
//! scale sentence-transformers trains its models with (`MultipleNegativesRankingLoss`): they sum
//! to 1 like the scores of transformers' NLI-based `zero-shot-classification` pipeline. The raw
//! cosines are returned beside them.

use serde::Serialize;

use crate::classify::softmax;
use crate::embed::{EmbedParams, SentenceEmbedder};
use crate::tokenize::Truncation;
use crate::{Error, Result};

/// Settings of [`classify`].
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroShotParams {
    /// The sentence a label is put into; `{}` marks the label.
    pub hypothesis_template: String,
    /// Cosines are multiplied by this before the softmax.
    pub scale: f32,
    /// Texts per forward pass.
    pub batch_size: usize,
}

impl Default for ZeroShotParams {
    fn default() -> Self {
        Self {
            hypothesis_template: "This example is {}.".into(),
            scale: 20.0,
            batch_size: 32,
        }
    }
}

/// The ranking of the labels for one text, like transformers' zero-shot pipeline output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZeroShotResult {
    /// The text.
    pub sequence: String,
    /// The labels, best first.
    pub labels: Vec<String>,
    /// `softmax(scale · cosine)`, in the order of `labels`.
    pub scores: Vec<f32>,
    /// The cosine similarities, in the order of `labels`.
    pub similarities: Vec<f32>,
}

/// Ranks `labels` for each text. Returns the rankings and the texts cut at the maximum length.
pub fn classify<S: AsRef<str>>(
    embedder: &SentenceEmbedder,
    texts: &[S],
    labels: &[String],
    params: &ZeroShotParams,
) -> Result<(Vec<ZeroShotResult>, Vec<Truncation>)> {
    if labels.is_empty() || labels.iter().any(|l| l.trim().is_empty()) {
        return Err(Error::Invalid(
            "zero-shot classification needs at least one non-empty label".into(),
        ));
    }
    if !params.hypothesis_template.contains("{}") {
        return Err(Error::Invalid(format!(
            "the hypothesis template {:?} has no {{}} to put the label in",
            params.hypothesis_template
        )));
    }
    let embed = EmbedParams {
        batch_size: params.batch_size,
        normalize: Some(true),
    };
    let hypotheses: Vec<String> = labels
        .iter()
        .map(|l| params.hypothesis_template.replace("{}", l.trim()))
        .collect();
    let label_vecs = embedder.embed(&hypotheses, &embed)?.vectors;
    let out = embedder.embed(texts, &embed)?;
    let results = texts
        .iter()
        .zip(&out.vectors)
        .map(|(text, v)| {
            let cos: Vec<f32> = label_vecs
                .iter()
                .map(|l| l.iter().zip(v).map(|(a, b)| a * b).sum())
                .collect();
            let scaled: Vec<f32> = cos.iter().map(|c| c * params.scale).collect();
            let probs = softmax(&scaled);
            let mut idx: Vec<usize> = (0..labels.len()).collect();
            idx.sort_by(|&a, &b| cos[b].total_cmp(&cos[a]).then(a.cmp(&b)));
            ZeroShotResult {
                sequence: text.as_ref().to_string(),
                labels: idx.iter().map(|&i| labels[i].trim().to_string()).collect(),
                scores: idx.iter().map(|&i| probs[i]).collect(),
                similarities: idx.iter().map(|&i| cos[i]).collect(),
            }
        })
        .collect();
    Ok((results, out.truncated))
}
