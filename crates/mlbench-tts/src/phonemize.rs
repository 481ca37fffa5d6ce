//! The text front end: text → sentences of IPA phonemes → the voice's phoneme ids.
//!
//! [`Phonemizer`] is the seam. [`EspeakNg`] runs the `espeak-ng` program (GPL-3.0, used as a
//! separate program, so nothing GPL is linked into mlbench) one clause at a time and puts the
//! clause punctuation back, as Piper does with the espeak-ng library: `həlˈoʊ, wˈɜːld!`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::{Result, TtsError};

/// Turns text into sentences of phonemes (one string of phoneme characters per sentence).
pub trait Phonemizer: Send + Sync {
    /// Phonemizes `text`, split into sentences.
    fn phonemize(&self, text: &str) -> Result<Vec<String>>;
}

/// The `espeak-ng` program as a phonemizer.
#[derive(Debug, Clone)]
pub struct EspeakNg {
    /// The program (`espeak-ng`, found on PATH by default).
    pub program: String,
    /// espeak-ng voice, e.g. `en-us` (from the Piper config's `espeak.voice`).
    pub voice: String,
}

impl EspeakNg {
    /// The program from PATH, with `voice`.
    pub fn new(voice: impl Into<String>) -> Self {
        Self {
            program: "espeak-ng".into(),
            voice: voice.into(),
        }
    }

    fn run(&self, clause: &str) -> Result<String> {
        let mut child = Command::new(&self.program)
            .args(["-q", "--ipa", "-b", "1", "-v", &self.voice])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                TtsError::Phonemizer(format!(
                    "cannot run {} ({e}); install espeak-ng (Debian/Ubuntu: apt-get install espeak-ng, macOS: brew install espeak-ng)",
                    self.program
                ))
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(clause.as_bytes())
                .map_err(|e| TtsError::Phonemizer(format!("{}: {e}", self.program)))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| TtsError::Phonemizer(format!("{}: {e}", self.program)))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(TtsError::Phonemizer(format!(
                "{} -v {} failed: {}",
                self.program,
                self.voice,
                err.lines().next().unwrap_or("no message")
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        // espeak-ng prints one line per (sub)clause; a language switch shows as `(fr)`.
        let words: Vec<String> = text
            .split_whitespace()
            .map(strip_language_flags)
            .filter(|w| !w.is_empty())
            .collect();
        Ok(words.join(" "))
    }
}

fn strip_language_flags(word: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in word.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

impl Phonemizer for EspeakNg {
    fn phonemize(&self, text: &str) -> Result<Vec<String>> {
        let mut sentences = Vec::new();
        let mut current = String::new();
        for clause in split_clauses(text) {
            let phonemes = self.run(&clause.text)?;
            if phonemes.is_empty() && clause.punct.is_none() {
                continue;
            }
            if !current.is_empty() && !current.ends_with(' ') {
                current.push(' ');
            }
            current.push_str(&phonemes);
            if let Some(p) = clause.punct {
                current.push(p);
            }
            if clause.ends_sentence {
                if current.chars().any(|c| c.is_alphabetic()) {
                    sentences.push(current.trim().to_string());
                }
                current.clear();
            }
        }
        if current.chars().any(|c| c.is_alphabetic()) {
            sentences.push(current.trim().to_string());
        }
        Ok(sentences)
    }
}

/// A clause of the input text and the punctuation that ended it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// The clause text, with its punctuation.
    pub text: String,
    /// `,` `.` `?` `!` `:` `;` — put back after the clause's phonemes.
    pub punct: Option<char>,
    /// Whether a sentence ends here (`.` `?` `!`, or the end of a line).
    pub ends_sentence: bool,
}

const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "prof", "jr", "sr", "vs", "etc", "e.g", "i.e", "a.m", "p.m",
    "no", "mt", "ft", "approx",
];

/// Splits text at clause punctuation followed by a space or the end (so `3:45`, `3.5` and
/// `p.m.` inside a clause stay whole), and at line ends. A period after a known abbreviation
/// or before a lower-case word does not end the sentence.
pub fn split_clauses(text: &str) -> Vec<Clause> {
    let mut clauses = Vec::new();
    for line in text.lines() {
        let chars: Vec<char> = line.chars().collect();
        let mut start = 0;
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            if ",.?!:;".contains(c) && next.is_none_or(char::is_whitespace) {
                // Absorb runs like "?!" or "...".
                let mut end = i + 1;
                while end < chars.len() && ",.?!:;".contains(chars[end]) {
                    end += 1;
                }
                let word: String = chars[start..i]
                    .iter()
                    .rev()
                    .take_while(|c| !c.is_whitespace())
                    .collect::<String>()
                    .chars()
                    .rev()
                    .collect::<String>()
                    .to_lowercase();
                let rest = chars[end..].iter().find(|c| !c.is_whitespace());
                let abbreviation = c == '.'
                    && (ABBREVIATIONS.contains(&word.trim_start_matches(['(', '"', '\'']))
                        || rest.is_some_and(|r| r.is_lowercase()));
                if abbreviation {
                    i = end;
                    continue;
                }
                let text: String = chars[start..end].iter().collect();
                // The clause's own ending: the last sentence-type mark wins ("?!" → "!").
                let marks: Vec<char> = chars[i..end].to_vec();
                let punct = if marks.iter().all(|&m| m == '.') {
                    '.'
                } else {
                    *marks.iter().rev().find(|&&m| m != '.').unwrap_or(&c)
                };
                clauses.push(Clause {
                    text: text.trim().to_string(),
                    punct: Some(punct),
                    ends_sentence: matches!(punct, '.' | '?' | '!'),
                });
                start = end;
                i = end;
                continue;
            }
            i += 1;
        }
        let tail: String = chars[start..].iter().collect();
        if !tail.trim().is_empty() {
            clauses.push(Clause {
                text: tail.trim().to_string(),
                punct: None,
                ends_sentence: true,
            });
        } else if let Some(last) = clauses.last_mut() {
            last.ends_sentence = true;
        }
    }
    clauses
}

/// The phoneme → id table of a voice, with Piper's framing: `^`, each phoneme followed by the
/// pad `_`, then `$`.
#[derive(Debug, Clone)]
pub struct PhonemeIds {
    map: HashMap<char, Vec<i64>>,
}

impl PhonemeIds {
    /// From a Piper `phoneme_id_map` (keys of one character each; longer keys are ignored).
    pub fn new(map: &HashMap<String, Vec<i64>>) -> Self {
        let map = map
            .iter()
            .filter_map(|(k, v)| {
                let mut cs = k.chars();
                match (cs.next(), cs.next()) {
                    (Some(c), None) => Some((c, v.clone())),
                    _ => None,
                }
            })
            .collect();
        Self { map }
    }

    /// The ids of a phoneme string, and the characters that the voice lacks (skipped).
    pub fn ids(&self, phonemes: &str) -> (Vec<i64>, Vec<char>) {
        let get = |c: char| self.map.get(&c).cloned().unwrap_or_default();
        let pad = get('_');
        let mut ids = get('^');
        ids.extend(&pad);
        let mut missing = Vec::new();
        for c in phonemes.chars() {
            match self.map.get(&c) {
                Some(v) => {
                    ids.extend(v);
                    ids.extend(&pad);
                }
                None => {
                    if !missing.contains(&c) {
                        missing.push(c);
                    }
                }
            }
        }
        ids.extend(get('$'));
        (ids, missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_keep_numbers_and_abbreviations() {
        let c = split_clauses("Hello, world! It is 3:45 p.m. today. Dr. Smith paid $3.50? Yes");
        let texts: Vec<&str> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Hello,",
                "world!",
                "It is 3:45 p.m. today.",
                "Dr. Smith paid $3.50?",
                "Yes"
            ]
        );
        let ends: Vec<bool> = c.iter().map(|c| c.ends_sentence).collect();
        assert_eq!(ends, [false, true, true, true, true]);
        assert_eq!(c[0].punct, Some(','));
        assert_eq!(c[4].punct, None);
    }

    #[test]
    fn ids_are_framed_and_padded() {
        let map: HashMap<String, Vec<i64>> = [("_", 0), ("^", 1), ("$", 2), ("a", 14), (" ", 3)]
            .iter()
            .map(|(k, v)| (k.to_string(), vec![*v]))
            .collect();
        let (ids, missing) = PhonemeIds::new(&map).ids("a aq");
        assert_eq!(ids, [1, 0, 14, 0, 3, 0, 14, 0, 2]);
        assert_eq!(missing, ['q']);
    }
}
