//! MMS-TTS voices: transformers `VitsModel` checkpoints (`facebook/mms-tts-eng`, …) — a
//! folder with `config.json`, `model.safetensors`, `vocab.json` and `tokenizer_config.json` —
//! run by the same VITS modules as Piper voices, with the character tokenizer as front end.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};
use mlbench_core::source::ModelFiles;
use mlbench_core::timing::Timings;

use crate::error::{Result, TtsError};
use crate::hf;
use crate::phonemize::split_clauses;
use crate::tokenizer::{CharTokenizer, Encoding};
use crate::vits::{Scales, Utterance, Vits};
use crate::voice::{resolve_scales, speaker_id, InferenceConfig, Run, Speech, SynthesisParams};

/// A loaded MMS-TTS (transformers `VitsModel`) voice.
#[derive(Debug)]
pub struct MmsVoice {
    config: hf::Config,
    model: Vits,
    tokenizer: CharTokenizer,
}

impl MmsVoice {
    /// Loads the checkpoint of a model source (a folder, a hub repo, or its
    /// `model.safetensors` with the other files beside it); `pytorch_model.bin` when there is
    /// no `model.safetensors`.
    pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        let config = hf::Config::from_file(&files.get("config.json")?)?;
        let vocab = files.get("vocab.json")?;
        let tokenizer_config = files.get_optional("tokenizer_config.json")?;
        let tokenizer = CharTokenizer::from_files(&vocab, tokenizer_config.as_deref())?;
        // Some hub repos hold only the PyTorch file.
        let weights = match files.source() {
            mlbench_core::source::ModelSource::File(path) => path.clone(),
            _ => match files.get_optional("model.safetensors")? {
                Some(path) => path,
                None => match files.get_optional("pytorch_model.bin")? {
                    Some(path) => path,
                    None => files.get("model.safetensors")?,
                },
            },
        };
        Self::from_parts(config, tokenizer, &weights, device, dtype)
    }

    /// Loads a folder holding the checkpoint's files.
    pub fn load_dir(dir: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let source = mlbench_core::source::ModelSource::Dir(dir.to_path_buf());
        let files = ModelFiles::new(source, mlbench_core::progress::Progress::none());
        Self::load(&files, device, dtype)
    }

    fn from_parts(
        config: hf::Config,
        tokenizer: CharTokenizer,
        weights: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let tensors = hf::read_weights(weights)?;
        let rows = tensors
            .get("enc_p.emb.weight")
            .map(|t| t.dims()[0])
            .ok_or_else(|| {
                TtsError::Weights(format!(
                    "{}: no text_encoder.embed_tokens.weight",
                    weights.display()
                ))
            })?;
        if tokenizer.max_id() as usize >= rows {
            return Err(TtsError::Weights(format!(
                "the vocabulary has ids up to {} but the model embeds {rows} tokens",
                tokenizer.max_id()
            )));
        }
        if config.num_speakers > 1 && !tensors.contains_key("emb_g.weight") {
            return Err(TtsError::Weights(format!(
                "config.json says {} speakers but there is no embed_speaker.weight",
                config.num_speakers
            )));
        }
        let model = Vits::load(config.vits_config(), tensors, device, dtype)?;
        Ok(Self {
            config,
            model,
            tokenizer,
        })
    }

    /// The checkpoint's config.
    pub fn config(&self) -> &hf::Config {
        &self.config
    }

    /// The model.
    pub fn model(&self) -> &Vits {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &CharTokenizer {
        &self.tokenizer
    }

    /// Output sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.config.sampling_rate
    }

    /// The default scales: Piper's `length_scale` is the inverse of `speaking_rate`.
    pub fn defaults(&self) -> InferenceConfig {
        InferenceConfig {
            noise_scale: self.config.noise_scale,
            length_scale: 1.0 / self.config.speaking_rate,
            noise_w: self.config.noise_scale_duration,
        }
    }

    /// The speaker id for a number (MMS checkpoints have no speaker names).
    pub fn speaker_id(&self, speaker: Option<&str>) -> Result<Option<usize>> {
        speaker_id(speaker, &HashMap::new(), self.config.num_speakers)
    }

    /// Text → token ids, one [`Encoding`] per sentence that has characters the voice knows.
    pub fn encode(&self, text: &str) -> Result<Vec<Encoding>> {
        if text.trim().is_empty() {
            return Err(TtsError::EmptyText("the text is empty".into()));
        }
        let mut out = Vec::new();
        let mut skipped: Vec<char> = Vec::new();
        for sentence in sentences(text) {
            let e = self.tokenizer.encode(&sentence)?;
            for &c in &e.skipped {
                if !skipped.contains(&c) {
                    skipped.push(c);
                }
            }
            if !e.ids.is_empty() {
                out.push(e);
            }
        }
        if out.is_empty() {
            let list: String = skipped.iter().take(12).map(|c| format!(" '{c}'")).collect();
            return Err(TtsError::EmptyText(format!(
                "the text has no character this voice knows (skipped:{list})"
            )));
        }
        Ok(out)
    }

    /// Token ids → raw samples of one utterance (no normalisation, no silence).
    pub fn synthesize_ids(&self, ids: &[i64], params: &SynthesisParams) -> Result<Utterance> {
        let scales = self.scales(params)?;
        let speaker = self.speaker_id(params.speaker.as_deref())?;
        self.model.infer(ids, speaker, scales, params.seed)
    }

    fn scales(&self, params: &SynthesisParams) -> Result<Scales> {
        resolve_scales(self.defaults(), params)
    }

    /// Text → speech: sentences synthesized one by one, each followed by the sentence silence.
    /// Characters outside the vocabulary are skipped; letters, digits and symbols among them
    /// are reported in [`Speech::warnings`] (punctuation is dropped silently, as MMS does).
    pub fn synthesize(&self, text: &str, params: &SynthesisParams) -> Result<Speech> {
        let scales = self.scales(params)?;
        let speaker = self.speaker_id(params.speaker.as_deref())?;
        let mut timings = Timings::new();
        let t0 = Instant::now();
        let encodings = self.encode(text)?;
        timings.record("tokenize", t0.elapsed());
        let mut skipped: Vec<char> = Vec::new();
        for e in &encodings {
            for &c in &e.skipped {
                if worth_a_warning(c) && !skipped.contains(&c) {
                    skipped.push(c);
                }
            }
        }
        let warnings = if skipped.is_empty() {
            Vec::new()
        } else {
            let list: String = skipped.iter().map(|c| format!(" '{c}'")).collect();
            vec![format!(
                "skipped characters this voice does not have:{list}"
            )]
        };
        let ids: Vec<Vec<i64>> = encodings.iter().map(|e| e.ids.clone()).collect();
        let run = Run {
            model: &self.model,
            speaker,
            scales,
            params,
            sample_rate: self.sample_rate(),
        };
        let samples = run.sentences(&ids, &mut timings)?;
        Ok(Speech {
            samples,
            sample_rate: self.sample_rate(),
            sentences: encodings.into_iter().map(|e| e.text).collect(),
            warnings,
            timings,
        })
    }
}

/// Letters, digits and symbols: characters whose loss changes what is said.
fn worth_a_warning(c: char) -> bool {
    const SYMBOLS: &str = "$%&@#+=<>*^~|/\\";
    const PUNCTUATION: &str = "«»“”‘’„‚‹›–—…¿¡·。、！？，：；（）「」";
    let punctuation = c.is_ascii_punctuation() && !SYMBOLS.contains(c) || PUNCTUATION.contains(c);
    !(c.is_whitespace() || punctuation)
}

/// Sentences of `text` (clauses up to `.` `?` `!` or a line end).
fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for clause in split_clauses(text) {
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&clause.text);
        if clause.ends_sentence {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_split_at_sentence_ends_and_lines() {
        let s = sentences("Hello there, friend. How are you?\nFine");
        assert_eq!(s, vec!["Hello there, friend.", "How are you?", "Fine"]);
    }

    #[test]
    fn punctuation_is_dropped_quietly() {
        assert!(!worth_a_warning(','));
        assert!(!worth_a_warning('…'));
        assert!(worth_a_warning('9'));
        assert!(worth_a_warning('é'));
        assert!(worth_a_warning('$'));
    }
}
