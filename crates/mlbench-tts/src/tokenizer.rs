//! The character tokenizer of MMS-TTS / transformers `VitsTokenizer`: `vocab.json` maps
//! characters to ids, `tokenizer_config.json` says how text is prepared. Mirrors
//! transformers 5.24 `models/vits/tokenization_vits.py` (`normalize_text`,
//! `prepare_for_tokenization`, `_tokenize`), except that characters outside the vocabulary
//! are reported to the caller and text a uroman model cannot read is an error.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::{Result, TtsError};

/// `tokenizer_config.json` of a `VitsTokenizer` (defaults are transformers').
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TokenizerConfig {
    /// Put id 0 between characters and at both ends.
    #[serde(default = "yes")]
    pub add_blank: bool,
    /// Lower-case characters outside the vocabulary and drop the ones still outside it.
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Run espeak phonemization first (kakao-enterprise VITS; not supported here).
    #[serde(default = "yes")]
    pub phonemize: bool,
    /// The model was trained on uroman-romanized text.
    #[serde(default)]
    pub is_uroman: bool,
    /// ISO 639-3 language (`ron` has a character fix-up).
    #[serde(default)]
    pub language: Option<String>,
    /// Token of unknown characters (used when `normalize` is off).
    #[serde(default)]
    pub unk_token: Option<String>,
}

fn yes() -> bool {
    true
}

/// Token ids of one text, and what was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// The ids fed to the model.
    pub ids: Vec<i64>,
    /// The text the ids spell (after normalisation).
    pub text: String,
    /// Characters outside the vocabulary that were skipped, each once, in order of appearance.
    pub skipped: Vec<char>,
}

/// An MMS character tokenizer.
#[derive(Debug, Clone)]
pub struct CharTokenizer {
    /// Vocabulary entries in file order (normalisation matches them in this order).
    entries: Vec<(String, i64)>,
    by_char: HashMap<char, i64>,
    config: TokenizerConfig,
}

impl CharTokenizer {
    /// Reads `vocab.json` and `tokenizer_config.json` (optional: transformers' defaults,
    /// except `phonemize`, which MMS checkpoints turn off).
    pub fn from_files(vocab: &Path, config: Option<&Path>) -> Result<Self> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| TtsError::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        let bad = |path: &Path, detail: String| TtsError::VoiceConfig {
            path: path.to_path_buf(),
            detail,
        };
        let text = read(vocab)?;
        let entries = parse_vocab(&text)
            .map_err(|e| bad(vocab, format!("not a character vocabulary: {e}")))?;
        let config = match config {
            Some(path) => {
                let config: TokenizerConfig = serde_json::from_str(&read(path)?)
                    .map_err(|e| bad(path, format!("not a VitsTokenizer config: {e}")))?;
                if config.phonemize {
                    return Err(bad(
                        path,
                        "this tokenizer phonemizes with espeak first (phonemize: true), which is not supported for VitsModel checkpoints yet (MMS-TTS voices do not need it)".into(),
                    ));
                }
                config
            }
            None => TokenizerConfig {
                phonemize: false,
                ..serde_json::from_str("{}").expect("defaults")
            },
        };
        Self::new(entries, config)
    }

    /// A tokenizer from vocabulary entries (in file order) and its settings.
    pub fn new(entries: Vec<(String, i64)>, config: TokenizerConfig) -> Result<Self> {
        if entries.is_empty() {
            return Err(TtsError::Weights("empty tokenizer vocabulary".into()));
        }
        let mut by_char = HashMap::new();
        for (token, id) in &entries {
            let mut chars = token.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                by_char.entry(c).or_insert(*id);
            }
        }
        Ok(Self {
            entries,
            by_char,
            config,
        })
    }

    /// The settings.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// The largest id (the model's embedding must cover it).
    pub fn max_id(&self) -> i64 {
        self.entries.iter().map(|(_, id)| *id).max().unwrap_or(0)
    }

    /// Text → ids, as `VitsTokenizer(text).input_ids` (empty when no character is known).
    pub fn encode(&self, text: &str) -> Result<Encoding> {
        let mut text = if self.config.normalize {
            self.normalize_text(text)
        } else {
            text.to_string()
        };
        if self.config.language.as_deref() == Some("ron") {
            text = text.replace('ț', "ţ");
        }
        if self.config.is_uroman && !text.is_ascii() {
            return Err(TtsError::EmptyText(format!(
                "this voice reads romanized text only (is_uroman): romanize it first with uroman (https://github.com/isi-nlp/uroman, `pip install uroman`; `uroman` reads stdin); non-Latin characters: {}",
                text.chars().filter(|c| !c.is_ascii()).take(8).collect::<String>()
            )));
        }
        let mut skipped = Vec::new();
        let mut kept = String::with_capacity(text.len());
        let mut ids = Vec::with_capacity(text.len());
        let unk = self.unk_id();
        for c in text.chars() {
            match self.by_char.get(&c) {
                Some(&id) => {
                    kept.push(c);
                    ids.push(id);
                }
                None => {
                    if !skipped.contains(&c) {
                        skipped.push(c);
                    }
                    if let (false, Some(unk)) = (self.config.normalize, unk) {
                        kept.push(c);
                        ids.push(unk);
                    }
                }
            }
        }
        if self.config.normalize {
            // `"".join(filter(in vocab)).strip()`
            let lead = kept.chars().take_while(|c| c.is_whitespace()).count();
            let trail = kept.chars().rev().take_while(|c| c.is_whitespace()).count();
            let n = kept.chars().count();
            if lead == n {
                ids.clear();
                kept.clear();
            } else {
                ids = ids[lead..n - trail].to_vec();
                kept = kept.chars().skip(lead).take(n - lead - trail).collect();
            }
        }
        if self.config.add_blank && !ids.is_empty() {
            let blank = 0;
            let mut spaced = Vec::with_capacity(2 * ids.len() + 1);
            spaced.push(blank);
            for id in ids {
                spaced.push(id);
                spaced.push(blank);
            }
            ids = spaced;
        }
        Ok(Encoding {
            ids,
            text: kept,
            skipped,
        })
    }

    /// `normalize_text`: at each position the first vocabulary entry (in file order) that
    /// matches is kept as is; otherwise the character is lower-cased.
    fn normalize_text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if let Some((token, _)) = self
                .entries
                .iter()
                .find(|(t, _)| !t.is_empty() && rest.starts_with(t.as_str()))
            {
                out.push_str(token);
                rest = &rest[token.len()..];
            } else {
                out.extend(c.to_lowercase());
                rest = &rest[c.len_utf8()..];
            }
        }
        out
    }

    fn unk_id(&self) -> Option<i64> {
        let unk = self.config.unk_token.as_deref()?;
        self.entries
            .iter()
            .find(|(t, _)| t == unk)
            .map(|(_, id)| *id)
    }
}

/// `{"a": 1, …}` → entries in file order.
fn parse_vocab(text: &str) -> serde_json::Result<Vec<(String, i64)>> {
    struct Ordered;
    impl<'de> Visitor<'de> for Ordered {
        type Value = Vec<(String, i64)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of token → id")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = map.next_entry::<String, i64>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let entries = (&mut de).deserialize_map(Ordered)?;
    de.end()?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(config: &str) -> CharTokenizer {
        let entries = parse_vocab(r#"{"k": 0, "a": 1, "b": 2, " ": 3, "A": 4}"#).unwrap();
        CharTokenizer::new(entries, serde_json::from_str(config).unwrap()).unwrap()
    }

    #[test]
    fn normalises_strips_and_intersperses() {
        let t = tok(r#"{"phonemize": false}"#);
        let e = t.encode("  Bak, A b!  ").unwrap();
        assert_eq!(e.text, "bak A b");
        assert_eq!(e.ids, vec![0, 2, 0, 1, 0, 0, 0, 3, 0, 4, 0, 3, 0, 2, 0]);
        assert_eq!(e.skipped, vec![',', '!']);
        assert!(t.encode("?!").unwrap().ids.is_empty());
    }

    #[test]
    fn uroman_voices_refuse_other_scripts() {
        let t = tok(r#"{"phonemize": false, "is_uroman": true}"#);
        let e = t.encode("абв").unwrap_err().to_string();
        assert!(e.contains("uroman"), "{e}");
        assert_eq!(t.encode("ab").unwrap().ids.len(), 5);
    }

    #[test]
    fn without_normalisation_unknowns_are_skipped_or_unk() {
        let t = tok(r#"{"phonemize": false, "normalize": false, "add_blank": false}"#);
        let e = t.encode("aB").unwrap();
        assert_eq!((e.ids, e.skipped), (vec![1], vec!['B']));
    }
}
