//! Sentence embeddings as sentence-transformers computes them: the encoder's last hidden states,
//! pooled as `1_Pooling/config.json` says (CLS, mean, max, mean·√len), L2-normalised when
//! `modules.json` lists a `Normalize` module.

use candle_core::{DType, Device, Tensor, D};
use mlbench_core::source::ModelFiles;
use serde::Deserialize;

use crate::attention::masked_mean;
use crate::classify::run_sorted;
use crate::model::{read_json, Checkpoint, Encoder};
use crate::tokenize::{Batch, TextTokenizer, Truncation};
use crate::{Error, Result};

/// How token states become one vector; several modes are concatenated in this order, as
/// sentence-transformers' `Pooling` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Pooling {
    /// The first token's state.
    #[serde(default, rename = "pooling_mode_cls_token")]
    pub cls: bool,
    /// The element-wise maximum over the real tokens.
    #[serde(default, rename = "pooling_mode_max_tokens")]
    pub max: bool,
    /// The mean over the real tokens.
    #[serde(default, rename = "pooling_mode_mean_tokens")]
    pub mean: bool,
    /// The sum over the real tokens divided by √(their number).
    #[serde(default, rename = "pooling_mode_mean_sqrt_len_tokens")]
    pub mean_sqrt_len: bool,
    #[serde(default, rename = "pooling_mode_weightedmean_tokens")]
    weighted_mean: bool,
    #[serde(default, rename = "pooling_mode_lasttoken")]
    last_token: bool,
}

impl Pooling {
    /// Mean pooling only (sentence-transformers' default for a plain transformers model).
    pub fn mean() -> Self {
        Self {
            mean: true,
            ..Self::default()
        }
    }

    /// Pools (b, t, h) hidden states into (b, h · modes).
    pub fn apply(&self, hidden: &Tensor, batch: &Batch) -> Result<Tensor> {
        let mask = batch.attention_mask.to_dtype(hidden.dtype())?;
        let mut parts = Vec::new();
        if self.cls {
            parts.push(hidden.narrow(1, 0, 1)?.squeeze(1)?);
        }
        if self.max {
            // Padded positions get a large negative value first (sentence-transformers: -1e9).
            let fill = ((mask.unsqueeze(D::Minus1)? - 1.0)? * 1e9)?;
            parts.push(hidden.broadcast_add(&fill)?.max(1)?);
        }
        if self.mean {
            parts.push(masked_mean(hidden, &batch.attention_mask)?);
        }
        if self.mean_sqrt_len {
            let sum = hidden.broadcast_mul(&mask.unsqueeze(D::Minus1)?)?.sum(1)?;
            let n = mask.sum_keepdim(1)?.clamp(1e-9, f64::INFINITY)?.sqrt()?;
            parts.push(sum.broadcast_div(&n)?);
        }
        if parts.is_empty() {
            return Err(Error::Model(
                "the pooling config enables no supported pooling mode (cls, max, mean, mean_sqrt_len)"
                    .into(),
            ));
        }
        Ok(Tensor::cat(&parts, 1)?)
    }
}

#[derive(Debug, Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    #[serde(default)]
    max_seq_length: Option<usize>,
}

/// Settings of [`SentenceEmbedder::embed`].
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedParams {
    /// Texts per forward pass.
    pub batch_size: usize,
    /// L2-normalise the vectors; `None` follows the model (its `Normalize` module).
    pub normalize: Option<bool>,
}

impl Default for EmbedParams {
    fn default() -> Self {
        Self {
            batch_size: 32,
            normalize: None,
        }
    }
}

/// The result of [`SentenceEmbedder::embed`].
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Texts cut at the model's maximum length.
    pub truncated: Vec<Truncation>,
}

/// A loaded sentence-embedding model.
#[derive(Debug)]
pub struct SentenceEmbedder {
    encoder: Encoder,
    tokenizer: TextTokenizer,
    pooling: Pooling,
    normalize: bool,
    device: Device,
}

impl SentenceEmbedder {
    /// Loads a sentence-transformers model directory (`modules.json`, `1_Pooling/config.json`,
    /// `sentence_bert_config.json`, the transformer's files at its root), or a plain
    /// transformers encoder (mean pooling, no normalisation, as sentence-transformers treats one).
    pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        let ck = Checkpoint::read(files, device, dtype)?;
        let (encoder, limit) = ck.encoder()?;
        let (mut pooling, mut normalize) = (Pooling::mean(), false);
        if let Some(path) = files.get_optional("modules.json")? {
            let modules: Vec<Module> = read_json(&path)?;
            for m in &modules {
                match m.kind.rsplit('.').next().unwrap_or_default() {
                    "Transformer" if m.path.is_empty() => {}
                    "Pooling" => {
                        let cfg = files.get(&format!("{}/config.json", m.path))?;
                        pooling = read_json(&cfg)?;
                        if pooling.weighted_mean || pooling.last_token {
                            return Err(Error::Model(format!(
                                "{}: weighted-mean and last-token pooling are not supported",
                                cfg.display()
                            )));
                        }
                    }
                    "Normalize" => normalize = true,
                    _ => {
                        return Err(Error::Model(format!(
                            "{}: module {} ({}) is not supported (Transformer at the root, Pooling, Normalize)",
                            path.display(),
                            m.path,
                            m.kind
                        )))
                    }
                }
            }
        }
        let st_limit = match files.get_optional("sentence_bert_config.json")? {
            Some(p) => read_json::<SentenceBertConfig>(&p)?.max_seq_length,
            None => None,
        };
        let tokenizer = crate::model::text_tokenizer(files, &ck, limit, st_limit)?;
        Ok(Self {
            encoder,
            tokenizer,
            pooling,
            normalize,
            device: device.clone(),
        })
    }

    /// The pooling modes.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Whether the model normalises its vectors.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// The tokenizer (padding, truncation, maximum length).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Embeddings (b, dim), f32, of a tokenized batch.
    pub fn forward(&self, batch: &Batch, normalize: bool) -> Result<Tensor> {
        let hidden = self.encoder.forward(batch)?;
        let v = self.pooling.apply(&hidden, batch)?.to_dtype(DType::F32)?;
        if !normalize {
            return Ok(v);
        }
        // torch.nn.functional.normalize: v / max(‖v‖, 1e-12).
        let norm = v
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::INFINITY)?;
        Ok(v.broadcast_div(&norm)?)
    }

    /// One vector per text, in input order (batched by length).
    pub fn embed<S: AsRef<str>>(&self, texts: &[S], params: &EmbedParams) -> Result<Embeddings> {
        if params.batch_size == 0 {
            return Err(Error::Invalid("batch size must be at least 1".into()));
        }
        let normalize = params.normalize.unwrap_or(self.normalize);
        let (vectors, truncated) = run_sorted(texts, params.batch_size, |batch_texts, first| {
            let (batch, truncated) = self.tokenizer.encode(batch_texts, first, &self.device)?;
            Ok((
                self.forward(&batch, normalize)?.to_vec2::<f32>()?,
                truncated,
            ))
        })?;
        Ok(Embeddings { vectors, truncated })
    }
}

/// The bytes of a NumPy `.npy` file (format 1.0) holding `rows` as a little-endian f32 array
/// of shape (rows, dim).
pub fn to_npy(rows: &[Vec<f32>]) -> Result<Vec<u8>> {
    let dim = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != dim) {
        return Err(Error::Invalid("rows of different lengths".into()));
    }
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        dim
    );
    // Magic (6) + version (2) + header length (2) + header, padded with spaces to a multiple
    // of 64 and ended by a newline.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + rows.len() * dim * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in rows.iter().flatten() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_describes_the_array() {
        let bytes = to_npy(&[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.contains("'shape': (2, 3)") && header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + hlen + 24);
        assert_eq!(&bytes[10 + hlen..10 + hlen + 4], &1f32.to_le_bytes());
        assert!(to_npy(&[vec![1.0], vec![]]).is_err());
    }
}
