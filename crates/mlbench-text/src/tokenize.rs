//! Tokenization: a checkpoint's `tokenizer.json` (or, without one, its `vocab.txt` or
//! `vocab.json` + `merges.txt`), padded batches with attention masks, truncation at the model's
//! maximum length.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::models::bpe::BPE;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::{
    Model, PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationDirection,
    TruncationParams, TruncationStrategy,
};

use crate::{Error, Result};

/// A tokenized, right-padded batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Token ids (b, t), u32.
    pub input_ids: Tensor,
    /// 1 for real tokens, 0 for padding (b, t), u32.
    pub attention_mask: Tensor,
    /// Real tokens per sequence (the padding follows them).
    pub lengths: Vec<usize>,
}

impl Batch {
    /// A batch from padded ids and their attention mask (rows of equal length, padding on the
    /// right).
    pub fn from_ids(ids: &[Vec<u32>], mask: &[Vec<u32>], device: &Device) -> Result<Self> {
        let b = ids.len();
        let t = ids.first().map_or(0, Vec::len);
        if b == 0 || t == 0 || mask.len() != b || ids.iter().chain(mask).any(|r| r.len() != t) {
            return Err(Error::Invalid(
                "a batch needs at least one text and rows of equal length".into(),
            ));
        }
        let lengths: Vec<usize> = mask
            .iter()
            .map(|m| m.iter().take_while(|&&x| x != 0).count())
            .collect();
        if lengths.contains(&0)
            || mask
                .iter()
                .zip(&lengths)
                .any(|(m, &l)| m[l..].iter().any(|&x| x != 0))
        {
            return Err(Error::Invalid(
                "every row needs at least one token, and padding only on the right".into(),
            ));
        }
        let flat = |rows: &[Vec<u32>]| rows.concat();
        Ok(Self {
            input_ids: Tensor::from_vec(flat(ids), (b, t), device)?,
            attention_mask: Tensor::from_vec(flat(mask), (b, t), device)?,
            lengths,
        })
    }

    /// The real tokens of all sequences back to back (n), and their positions counted from
    /// `first_position` (n), for models that run on packed sequences.
    pub(crate) fn packed(&self, first_position: usize) -> Result<(Tensor, Tensor)> {
        let ids = self.input_ids.to_vec2::<u32>()?;
        let mut packed = Vec::new();
        let mut positions = Vec::new();
        for (row, &len) in ids.iter().zip(&self.lengths) {
            packed.extend_from_slice(&row[..len]);
            positions.extend((first_position..first_position + len).map(|p| p as u32));
        }
        let dev = self.input_ids.device();
        let n = packed.len();
        Ok((
            Tensor::from_vec(packed, n, dev)?,
            Tensor::from_vec(positions, n, dev)?,
        ))
    }

    /// Sequences in the batch.
    pub fn len(&self) -> usize {
        self.lengths.len()
    }

    /// Whether the batch is empty (never, for a batch made by this crate).
    pub fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

/// A text the tokenizer cut at the maximum length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Index of the text in the input.
    pub index: usize,
    /// Tokens the text has (special tokens included).
    pub tokens: usize,
    /// Tokens kept.
    pub kept: usize,
}

impl std::fmt::Display for Truncation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "text {} has {} tokens, more than the model's {}: truncated to its first {} tokens",
            self.index + 1,
            self.tokens,
            self.kept,
            self.kept
        )
    }
}

/// A tokenizer set up for batches: right padding to the longest text, truncation at
/// `max_length`.
#[derive(Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    max_length: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("max_length", &self.max_length)
            .finish_non_exhaustive()
    }
}

impl TextTokenizer {
    /// Wraps a tokenizer; `pad_id` pads, texts are cut at `max_length` tokens.
    pub fn new(mut tokenizer: Tokenizer, pad_id: u32, max_length: usize) -> Result<Self> {
        if max_length < 2 {
            return Err(Error::Model(format!(
                "maximum length {max_length} is too short"
            )));
        }
        let pad_token = tokenizer
            .id_to_token(pad_id)
            .unwrap_or_else(|| "[PAD]".into());
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id: 0,
            pad_token,
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| Error::Model(format!("tokenizer: {e}")))?;
        Ok(Self {
            tokenizer,
            max_length,
        })
    }

    /// The maximum tokens per text.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The wrapped tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Tokenizes `texts` into one padded batch; `first_index` numbers the texts in the
    /// truncation reports.
    pub fn encode(
        &self,
        texts: &[&str],
        first_index: usize,
        device: &Device,
    ) -> Result<(Batch, Vec<Truncation>)> {
        if texts.is_empty() {
            return Err(Error::Invalid("no texts to tokenize".into()));
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Invalid(format!("cannot tokenize: {e}")))?;
        let mut truncated = Vec::new();
        let mut ids = Vec::with_capacity(texts.len());
        let mut mask = Vec::with_capacity(texts.len());
        for (i, e) in encodings.iter().enumerate() {
            if !e.get_overflowing().is_empty() {
                let kept = e.get_attention_mask().iter().filter(|&&m| m != 0).count();
                let extra: usize = e.get_overflowing().iter().map(|o| o.len()).sum();
                truncated.push(Truncation {
                    index: first_index + i,
                    tokens: kept + extra,
                    kept,
                });
            }
            ids.push(e.get_ids().to_vec());
            mask.push(e.get_attention_mask().to_vec());
        }
        Ok((Batch::from_ids(&ids, &mask, device)?, truncated))
    }
}

/// The tokenizer of a checkpoint directory's files: `tokenizer.json`, else a BERT WordPiece
/// tokenizer from `vocab.txt` (`lowercase` from `tokenizer_config.json`'s `do_lower_case`),
/// else a RoBERTa byte-level BPE from `vocab.json` + `merges.txt`.
pub fn load_tokenizer(
    tokenizer_json: Option<&Path>,
    vocab_txt: Option<&Path>,
    bpe: Option<(&Path, &Path)>,
    lowercase: bool,
) -> Result<Tokenizer> {
    if let Some(path) = tokenizer_json {
        return Tokenizer::from_file(path).map_err(|e| {
            Error::Model(format!("{}: not a usable tokenizer ({e})", path.display()))
        });
    }
    if let Some(vocab) = vocab_txt {
        let bad = |e: tokenizers::Error| Error::Model(format!("{}: {e}", vocab.display()));
        let model = WordPiece::from_file(&vocab.to_string_lossy())
            .unk_token("[UNK]".into())
            .build()
            .map_err(bad)?;
        let id = |t: &str| {
            model
                .get_vocab()
                .get(t)
                .copied()
                .ok_or_else(|| Error::Model(format!("{}: no {t} token", vocab.display())))
        };
        let processor = BertProcessing::new(
            ("[SEP]".into(), id("[SEP]")?),
            ("[CLS]".into(), id("[CLS]")?),
        );
        let mut tok = Tokenizer::new(model);
        tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)));
        tok.with_pre_tokenizer(Some(BertPreTokenizer));
        tok.with_post_processor(Some(processor));
        return Ok(tok);
    }
    if let Some((vocab, merges)) = bpe {
        let bad = |e: tokenizers::Error| Error::Model(format!("{}: {e}", vocab.display()));
        let model = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
            .build()
            .map_err(bad)?;
        let id = |t: &str| {
            model
                .get_vocab()
                .get(t)
                .copied()
                .ok_or_else(|| Error::Model(format!("{}: no {t} token", vocab.display())))
        };
        let processor =
            RobertaProcessing::new(("</s>".into(), id("</s>")?), ("<s>".into(), id("<s>")?));
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
        tok.with_post_processor(Some(processor));
        tok.with_decoder(Some(ByteLevel::default()));
        return Ok(tok);
    }
    Err(Error::Model(
        "no tokenizer: the model has no tokenizer.json, vocab.txt or vocab.json + merges.txt"
            .into(),
    ))
}
