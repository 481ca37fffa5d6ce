//! The CLIP tokenizer, from the model's own `tokenizer/` files: `vocab.json` + `merges.txt` (as
//! Stable Diffusion repos ship it) or a `tokenizer.json`.
//!
//! Like transformers' `CLIPTokenizer`: whitespace collapsed and lowercased, split by CLIP's
//! pattern, byte-level BPE with `</w>` word ends; `<|startoftext|>` … `<|endoftext|>`, padded to
//! 77 with the `pad_token` of `tokenizer_config.json`. Prompts longer than the window are
//! truncated, as diffusers does; [`Tokens::truncated`] says how many tokens were dropped.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;
use serde_json::Value;

use crate::config::read_json;
use crate::{Error, Result};

const BOS: &str = "<|startoftext|>";
const EOS: &str = "<|endoftext|>";
const PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";

/// Token ids of one prompt, padded to the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// `max_length` ids: BOS, text, EOS, padding.
    pub ids: Vec<u32>,
    /// Text tokens dropped to fit the window.
    pub truncated: usize,
}

struct Bpe {
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: Regex,
}

enum Backend {
    Bpe(Box<Bpe>),
    Json(Box<tokenizers::Tokenizer>),
}

/// A CLIP tokenizer.
pub struct ClipTokenizer {
    backend: Backend,
    bos: u32,
    eos: u32,
    pad: u32,
    max_length: usize,
}

impl std::fmt::Debug for ClipTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClipTokenizer")
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("pad", &self.pad)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl ClipTokenizer {
    /// Loads the tokenizer in `dir` (a pipeline's `tokenizer/` folder).
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        let config = dir.join("tokenizer_config.json");
        let config: Value = if config.is_file() {
            read_json(&config)?
        } else {
            Value::Null
        };
        if vocab.is_file() && merges.is_file() {
            Self::from_files(&vocab, &merges, &config)
        } else if json.is_file() {
            let tok = tokenizers::Tokenizer::from_file(&json)
                .map_err(|e| Error::Model(format!("{}: {e}", json.display())))?;
            let id = |t: &str| {
                tok.token_to_id(t)
                    .ok_or_else(|| Error::Model(format!("{}: no token {t:?}", json.display())))
            };
            let (bos, eos) = (id(BOS)?, id(EOS)?);
            let pad = pad_id(&config, |t| tok.token_to_id(t)).unwrap_or(eos);
            Ok(Self {
                backend: Backend::Json(Box::new(tok)),
                bos,
                eos,
                pad,
                max_length: max_length(&config),
            })
        } else {
            Err(Error::Model(format!(
                "{}: neither vocab.json + merges.txt nor tokenizer.json",
                dir.display()
            )))
        }
    }

    fn from_files(vocab: &Path, merges: &Path, config: &Value) -> Result<Self> {
        let encoder: HashMap<String, u32> = read_json(vocab)?;
        let text = std::fs::read_to_string(merges)
            .map_err(|e| Error::Model(format!("{}: {e}", merges.display())))?;
        let mut ranks = HashMap::new();
        for (rank, line) in text
            .lines()
            .filter(|l| !l.starts_with("#version"))
            .enumerate()
        {
            let Some((a, b)) = line.split_once(' ') else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(Error::Model(format!(
                    "{}: line {:?} is not a merge",
                    merges.display(),
                    line
                )));
            };
            ranks.insert((a.to_string(), b.to_string()), rank);
        }
        let id = |t: &str| {
            encoder
                .get(t)
                .copied()
                .ok_or_else(|| Error::Model(format!("{}: no token {t:?}", vocab.display())))
        };
        let (bos, eos) = (id(BOS)?, id(EOS)?);
        let pad = pad_id(config, |t| encoder.get(t).copied()).unwrap_or(eos);
        Ok(Self {
            backend: Backend::Bpe(Box::new(Bpe {
                encoder,
                ranks,
                byte_chars: byte_chars(),
                pattern: Regex::new(PATTERN).expect("valid pattern"),
            })),
            bos,
            eos,
            pad,
            max_length: max_length(config),
        })
    }

    /// Window length (77).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Tokenizes `text` into exactly [`ClipTokenizer::max_length`] ids.
    pub fn encode(&self, text: &str) -> Result<Tokens> {
        let mut body = match &self.backend {
            Backend::Bpe(bpe) => self.bpe_ids(bpe, text),
            Backend::Json(tok) => {
                let enc = tok
                    .encode(text, false)
                    .map_err(|e| Error::Invalid(format!("tokenizer: {e}")))?;
                enc.get_ids().to_vec()
            }
        };
        let room = self.max_length.saturating_sub(2);
        let truncated = body.len().saturating_sub(room);
        body.truncate(room);
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos);
        ids.extend(body);
        ids.push(self.eos);
        ids.resize(self.max_length, self.pad);
        Ok(Tokens { ids, truncated })
    }

    fn bpe_ids(&self, model: &Bpe, text: &str) -> Vec<u32> {
        let Bpe {
            encoder,
            ranks,
            byte_chars,
            pattern,
        } = model;
        let clean = text
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let mut ids = Vec::new();
        for m in pattern.find_iter(&clean) {
            let word: String = m.as_str().bytes().map(|b| byte_chars[b as usize]).collect();
            for piece in bpe(&word, ranks) {
                ids.push(encoder.get(&piece).copied().unwrap_or(self.eos));
            }
        }
        ids
    }
}

/// Byte-pair merges of one pre-token, lowest rank first, CLIP's `</w>` on the last symbol.
fn bpe(word: &str, ranks: &HashMap<(String, String), usize>) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let Some((last, rest)) = chars.split_last() else {
        return Vec::new();
    };
    let mut parts: Vec<String> = rest.iter().map(|c| c.to_string()).collect();
    parts.push(format!("{last}</w>"));
    loop {
        let best = parts
            .windows(2)
            .filter_map(|w| ranks.get(&(w[0].clone(), w[1].clone())).map(|r| (*r, w)))
            .min_by_key(|(r, _)| *r)
            .map(|(_, w)| (w[0].clone(), w[1].clone()));
        let Some((a, b)) = best else {
            return parts;
        };
        let mut merged = Vec::with_capacity(parts.len());
        let mut i = 0;
        while i < parts.len() {
            if i + 1 < parts.len() && parts[i] == a && parts[i + 1] == b {
                merged.push(format!("{a}{b}"));
                i += 2;
            } else {
                merged.push(parts[i].clone());
                i += 1;
            }
        }
        parts = merged;
    }
}

/// GPT-2's reversible byte → printable character map.
fn byte_chars() -> [char; 256] {
    let mut map = ['\0'; 256];
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    for b in 0..256u32 {
        map[b as usize] = if printable(b) {
            char::from_u32(b).expect("latin-1")
        } else {
            extra += 1;
            char::from_u32(255 + extra).expect("valid")
        };
    }
    map
}

fn token_text(v: &Value) -> Option<&str> {
    v.as_str()
        .or_else(|| v.get("content").and_then(Value::as_str))
}

fn pad_id(config: &Value, lookup: impl Fn(&str) -> Option<u32>) -> Option<u32> {
    config
        .get("pad_token")
        .and_then(token_text)
        .and_then(lookup)
}

fn max_length(config: &Value) -> usize {
    config
        .get("model_max_length")
        .and_then(Value::as_u64)
        .filter(|n| (3..=4096).contains(n))
        .map_or(77, |n| n as usize)
}
