//! Piper voices: an `.onnx` file with its `.onnx.json` config, loaded without onnxruntime,
//! and the synthesis pipeline text → phonemes → ids → audio, one sentence at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_core::timing::Timings;
use serde::Deserialize;

use crate::error::{Result, TtsError};
use crate::mms::MmsVoice;
use crate::onnx;
use crate::phonemize::{EspeakNg, PhonemeIds, Phonemizer};
use crate::vits::{Scales, Utterance, Vits, VitsConfig};

/// A Piper `.onnx.json` (the fields synthesis needs).
#[derive(Debug, Clone, Deserialize)]
pub struct PiperConfig {
    /// Output sample rate.
    pub audio: AudioConfig,
    /// espeak-ng settings.
    #[serde(default)]
    pub espeak: EspeakConfig,
    /// Default scales.
    #[serde(default)]
    pub inference: InferenceConfig,
    /// `espeak` (IPA phonemes) or `text` (characters).
    #[serde(default = "default_phoneme_type")]
    pub phoneme_type: String,
    /// Phoneme → ids.
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    /// Phoneme → replacement phonemes, applied before the id map.
    #[serde(default)]
    pub phoneme_map: HashMap<String, Vec<String>>,
    /// Number of speakers (1 for single-speaker voices).
    #[serde(default = "one")]
    pub num_speakers: usize,
    /// Speaker name → id.
    #[serde(default)]
    pub speaker_id_map: HashMap<String, usize>,
}

fn default_phoneme_type() -> String {
    "espeak".into()
}

fn one() -> usize {
    1
}

/// `audio` of a Piper config.
#[derive(Debug, Clone, Deserialize)]
pub struct AudioConfig {
    /// Hz.
    pub sample_rate: u32,
}

/// `espeak` of a Piper config.
#[derive(Debug, Clone, Deserialize)]
pub struct EspeakConfig {
    /// espeak-ng voice.
    pub voice: String,
}

impl Default for EspeakConfig {
    fn default() -> Self {
        Self {
            voice: "en-us".into(),
        }
    }
}

/// `inference` of a Piper config: the voice's default scales.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct InferenceConfig {
    /// Prior noise.
    #[serde(default = "noise_scale")]
    pub noise_scale: f32,
    /// Speed (> 1 slower).
    #[serde(default = "length_scale")]
    pub length_scale: f32,
    /// Duration noise.
    #[serde(default = "noise_w")]
    pub noise_w: f32,
}

fn noise_scale() -> f32 {
    0.667
}
fn length_scale() -> f32 {
    1.0
}
fn noise_w() -> f32 {
    0.8
}

impl Default for InferenceConfig {
    fn default() -> Self {
        Self {
            noise_scale: noise_scale(),
            length_scale: length_scale(),
            noise_w: noise_w(),
        }
    }
}

/// Settings of one synthesis. `None` scales take the voice's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthesisParams {
    /// Speaker name or numeric id (multi-speaker voices; default: the first).
    pub speaker: Option<String>,
    /// Speed: > 1 is slower (voice default: `inference.length_scale`).
    pub length_scale: Option<f32>,
    /// Voice variation (voice default: `inference.noise_scale`).
    pub noise_scale: Option<f32>,
    /// Rhythm variation (voice default: `inference.noise_w`).
    pub noise_w: Option<f32>,
    /// Seconds of silence after each sentence.
    pub sentence_silence: f32,
    /// Scale each sentence to full volume (Piper's `normalize_audio`).
    pub normalize: bool,
    /// Seed of the noise.
    pub seed: u64,
}

impl Default for SynthesisParams {
    fn default() -> Self {
        Self {
            speaker: None,
            length_scale: None,
            noise_scale: None,
            noise_w: None,
            sentence_silence: 0.2,
            normalize: true,
            seed: 0,
        }
    }
}

/// The result of a synthesis.
#[derive(Debug, Clone)]
pub struct Speech {
    /// Mono samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Hz.
    pub sample_rate: u32,
    /// The phonemes of each sentence.
    pub sentences: Vec<String>,
    /// Non-fatal problems (characters the voice lacks).
    pub warnings: Vec<String>,
    /// Per-stage times (`phonemize`, `synthesize`).
    pub timings: Timings,
}

impl Speech {
    /// Seconds of audio.
    pub fn duration(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// A loaded Piper voice.
pub struct PiperVoice {
    config: PiperConfig,
    model: Vits,
    ids: PhonemeIds,
    phonemizer: Box<dyn Phonemizer>,
    onnx_path: PathBuf,
}

impl std::fmt::Debug for PiperVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperVoice")
            .field("onnx_path", &self.onnx_path)
            .field("model", &self.model.config())
            .finish_non_exhaustive()
    }
}

/// The `.onnx` of a model source (a `.onnx` file, or a folder holding exactly one).
pub fn find_onnx(files: &ModelFiles) -> Result<PathBuf> {
    let names: Vec<String> = files
        .list()?
        .into_iter()
        .filter(|n| n.ends_with(".onnx"))
        .collect();
    match names.as_slice() {
        [one] => {
            // The config too, so that a hub voice has it beside the .onnx.
            files.get_optional(&format!("{one}.json"))?;
            Ok(files.get(one)?)
        }
        [] => Err(TtsError::VoiceConfig {
            path: PathBuf::from(files.source().describe()),
            detail: "no .onnx voice file here (a Piper voice is NAME.onnx + NAME.onnx.json)".into(),
        }),
        many => Err(TtsError::VoiceConfig {
            path: PathBuf::from(files.source().describe()),
            detail: format!(
                "several .onnx files ({}); pass one with --model FILE.onnx",
                many.join(", ")
            ),
        }),
    }
}

impl PiperVoice {
    /// Loads the voice of a model source; its phonemizer is the `espeak-ng` program.
    pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        let onnx = find_onnx(files)?;
        Self::load_onnx(&onnx, device, dtype)
    }

    /// Loads `path` (`.onnx`) and `path.json`.
    pub fn load_onnx(path: &Path, device: &Device, dtype: DType) -> Result<Self> {
        let config = read_config(path)?;
        let weights = onnx::read_weights(path)?;
        let vits_config = VitsConfig::from_onnx(&weights)?;
        let model = Vits::load(vits_config, weights.tensors, device, dtype)?;
        let ids = PhonemeIds::new(&config.phoneme_id_map);
        let phonemizer = Box::new(EspeakNg::new(config.espeak.voice.clone()));
        Ok(Self {
            config,
            model,
            ids,
            phonemizer,
            onnx_path: path.to_path_buf(),
        })
    }

    /// Replaces the phonemizer.
    pub fn with_phonemizer(mut self, phonemizer: Box<dyn Phonemizer>) -> Self {
        self.phonemizer = phonemizer;
        self
    }

    /// The voice's config.
    pub fn config(&self) -> &PiperConfig {
        &self.config
    }

    /// The model.
    pub fn model(&self) -> &Vits {
        &self.model
    }

    /// Output sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.config.audio.sample_rate
    }

    /// Text → phonemes, one string per sentence; errors when nothing speakable is left.
    pub fn phonemize(&self, text: &str) -> Result<Vec<String>> {
        if text.trim().is_empty() {
            return Err(TtsError::EmptyText("the text is empty".into()));
        }
        let sentences: Vec<String> = self
            .phonemizer
            .phonemize(text)?
            .into_iter()
            .map(|s| self.apply_phoneme_map(&s))
            .collect();
        if sentences.is_empty() {
            return Err(TtsError::EmptyText(
                "the text has nothing to say (only punctuation or symbols)".into(),
            ));
        }
        Ok(sentences)
    }

    fn apply_phoneme_map(&self, s: &str) -> String {
        if self.config.phoneme_map.is_empty() {
            return s.to_string();
        }
        s.chars()
            .map(|c| match self.config.phoneme_map.get(&c.to_string()) {
                Some(to) => to.concat(),
                None => c.to_string(),
            })
            .collect()
    }

    /// Phonemes → ids, and the phonemes the voice lacks (skipped).
    pub fn phoneme_ids(&self, phonemes: &str) -> (Vec<i64>, Vec<char>) {
        self.ids.ids(phonemes)
    }

    /// The speaker id for a name or number.
    pub fn speaker_id(&self, speaker: Option<&str>) -> Result<Option<usize>> {
        let n = self.config.num_speakers.max(self.model.config().n_speakers);
        speaker_id(speaker, &self.config.speaker_id_map, n)
    }

    fn scales(&self, p: &SynthesisParams) -> Result<Scales> {
        resolve_scales(self.config.inference, p)
    }

    /// Phoneme ids → raw samples of one utterance (no normalisation, no silence).
    pub fn synthesize_ids(&self, ids: &[i64], params: &SynthesisParams) -> Result<Utterance> {
        let scales = self.scales(params)?;
        let speaker = self.speaker_id(params.speaker.as_deref())?;
        self.model.infer(ids, speaker, scales, params.seed)
    }

    /// Text → speech: sentences synthesized one by one, each followed by the sentence silence.
    pub fn synthesize(&self, text: &str, params: &SynthesisParams) -> Result<Speech> {
        let scales = self.scales(params)?;
        let speaker = self.speaker_id(params.speaker.as_deref())?;
        let mut timings = Timings::new();
        let t0 = Instant::now();
        let sentences = self.phonemize(text)?;
        timings.record("phonemize", t0.elapsed());
        let mut missing_all: Vec<char> = Vec::new();
        let mut ids = Vec::with_capacity(sentences.len());
        for s in &sentences {
            let (sentence_ids, missing) = self.phoneme_ids(s);
            for c in missing {
                if !missing_all.contains(&c) {
                    missing_all.push(c);
                }
            }
            ids.push(sentence_ids);
        }
        let mut warnings = Vec::new();
        if !missing_all.is_empty() {
            let list: String = missing_all.iter().map(|c| format!(" '{c}'")).collect();
            warnings.push(format!("skipped phonemes this voice does not have:{list}"));
        }
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
            sentences,
            warnings,
            timings,
        })
    }
}

/// One synthesis: a model, its speaker and scales, for several sentences.
pub(crate) struct Run<'a> {
    pub model: &'a Vits,
    pub speaker: Option<usize>,
    pub scales: Scales,
    pub params: &'a SynthesisParams,
    pub sample_rate: u32,
}

impl Run<'_> {
    /// Sentences of ids → samples, each sentence (normalised if asked) followed by the
    /// sentence silence; sentence `i` uses seed `seed + i`.
    pub fn sentences(&self, sentences: &[Vec<i64>], timings: &mut Timings) -> Result<Vec<f32>> {
        let silence = (self.params.sentence_silence * self.sample_rate as f32).round() as usize;
        let mut samples = Vec::new();
        for (i, ids) in sentences.iter().enumerate() {
            let t = Instant::now();
            let seed = self.params.seed.wrapping_add(i as u64);
            let utterance = self.model.infer(ids, self.speaker, self.scales, seed)?;
            timings.record("synthesize", t.elapsed());
            timings.merge(&utterance.timings);
            let mut audio = utterance.samples;
            if self.params.normalize {
                let peak = audio.iter().fold(0f32, |m, v| m.max(v.abs()));
                if peak > 1e-8 {
                    audio.iter_mut().for_each(|v| *v /= peak);
                }
            }
            samples.extend(audio);
            samples.extend(std::iter::repeat_n(0.0, silence));
        }
        Ok(samples)
    }
}

/// The speaker id for a name (`names`) or a number below `n`; `None` for the default speaker.
pub fn speaker_id(
    speaker: Option<&str>,
    names: &HashMap<String, usize>,
    n: usize,
) -> Result<Option<usize>> {
    let Some(s) = speaker else {
        return Ok(None);
    };
    if let Some(&id) = names.get(s) {
        return Ok(Some(id));
    }
    match s.parse::<usize>() {
        Ok(id) if id < n && n > 1 => Ok(Some(id)),
        _ if n <= 1 => Err(TtsError::UnknownSpeaker(format!(
            "unknown speaker '{s}': this voice has a single speaker"
        ))),
        _ => {
            let mut list: Vec<&String> = names.keys().collect();
            list.sort();
            let names = if list.is_empty() {
                String::new()
            } else {
                let shown: Vec<&str> = list.iter().take(10).map(|s| s.as_str()).collect();
                format!(" or a name ({})", shown.join(", "))
            };
            Err(TtsError::UnknownSpeaker(format!(
                "unknown speaker '{s}': use an id below {n}{names}"
            )))
        }
    }
}

/// The scales of `p`, the voice's `defaults` where `p` leaves them out, checked.
pub fn resolve_scales(defaults: InferenceConfig, p: &SynthesisParams) -> Result<Scales> {
    let d = defaults;
    let s = Scales {
        noise_scale: p.noise_scale.unwrap_or(d.noise_scale),
        length_scale: p.length_scale.unwrap_or(d.length_scale),
        noise_w: p.noise_w.unwrap_or(d.noise_w),
    };
    if !(s.length_scale > 0.0 && s.length_scale <= 20.0) {
        return Err(TtsError::InvalidParams(format!(
            "length scale must be in (0, 20], got {}",
            s.length_scale
        )));
    }
    if !(s.noise_scale >= 0.0 && s.noise_w >= 0.0) {
        return Err(TtsError::InvalidParams(
            "noise scales must be non-negative".into(),
        ));
    }
    if !(p.sentence_silence >= 0.0 && p.sentence_silence <= 60.0) {
        return Err(TtsError::InvalidParams(format!(
            "sentence silence must be in [0, 60] seconds, got {}",
            p.sentence_silence
        )));
    }
    Ok(s)
}

/// A voice of either kind, chosen from the files present.
#[derive(Debug)]
#[non_exhaustive]
pub enum Voice {
    /// A Piper voice (`.onnx` + `.onnx.json`).
    Piper(PiperVoice),
    /// An MMS-TTS / transformers `VitsModel` checkpoint.
    Mms(MmsVoice),
}

/// The sentences the front end made of a text, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontEnd {
    /// Phonemes (Piper) or normalised characters (MMS).
    pub text: String,
    /// The model's input ids.
    pub ids: Vec<i64>,
    /// Characters skipped because the voice lacks them.
    pub skipped: Vec<char>,
}

impl Voice {
    /// Loads a Piper voice (a `.onnx`, or a folder holding one) or a transformers `VitsModel`
    /// checkpoint (`config.json`, `vocab.json`, `model.safetensors`).
    pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        let names = files.list()?;
        let has = |n: &str| {
            names
                .iter()
                .any(|x| x == n || x.ends_with(&format!("/{n}")))
        };
        let single_safetensors = matches!(files.source(), ModelSource::File(p)
            if p.extension().is_some_and(|e| e == "safetensors"));
        if single_safetensors || has("config.json") && has("vocab.json") {
            return Ok(Self::Mms(MmsVoice::load(files, device, dtype)?));
        }
        if names.iter().any(|n| n.ends_with(".onnx")) {
            return Ok(Self::Piper(PiperVoice::load(files, device, dtype)?));
        }
        Err(TtsError::VoiceConfig {
            path: PathBuf::from(files.source().describe()),
            detail: "not a voice: neither a Piper voice (NAME.onnx + NAME.onnx.json) nor a transformers VitsModel / MMS-TTS checkpoint (config.json, vocab.json, model.safetensors)".into(),
        })
    }

    /// Output sample rate.
    pub fn sample_rate(&self) -> u32 {
        match self {
            Self::Piper(v) => v.sample_rate(),
            Self::Mms(v) => v.sample_rate(),
        }
    }

    /// The speaker id for a name or number.
    pub fn speaker_id(&self, speaker: Option<&str>) -> Result<Option<usize>> {
        match self {
            Self::Piper(v) => v.speaker_id(speaker),
            Self::Mms(v) => v.speaker_id(speaker),
        }
    }

    /// What the front end makes of `text`, one entry per sentence.
    pub fn front_end(&self, text: &str) -> Result<Vec<FrontEnd>> {
        match self {
            Self::Piper(v) => Ok(v
                .phonemize(text)?
                .into_iter()
                .map(|s| {
                    let (ids, skipped) = v.phoneme_ids(&s);
                    FrontEnd {
                        text: s,
                        ids,
                        skipped,
                    }
                })
                .collect()),
            Self::Mms(v) => Ok(v
                .encode(text)?
                .into_iter()
                .map(|e| FrontEnd {
                    text: e.text,
                    ids: e.ids,
                    skipped: e.skipped,
                })
                .collect()),
        }
    }

    /// Text → speech.
    pub fn synthesize(&self, text: &str, params: &SynthesisParams) -> Result<Speech> {
        match self {
            Self::Piper(v) => v.synthesize(text, params),
            Self::Mms(v) => v.synthesize(text, params),
        }
    }

    /// Model input ids → raw samples of one utterance.
    pub fn synthesize_ids(&self, ids: &[i64], params: &SynthesisParams) -> Result<Utterance> {
        match self {
            Self::Piper(v) => v.synthesize_ids(ids, params),
            Self::Mms(v) => v.synthesize_ids(ids, params),
        }
    }
}

/// Reads `X.onnx.json` beside `X.onnx`.
pub fn read_config(onnx: &Path) -> Result<PiperConfig> {
    let mut name = onnx.as_os_str().to_owned();
    name.push(".json");
    let path = PathBuf::from(name);
    let text = std::fs::read_to_string(&path).map_err(|e| TtsError::VoiceConfig {
        path: onnx.to_path_buf(),
        detail: format!(
            "cannot read its config {} ({e}); a Piper voice needs NAME.onnx.json beside NAME.onnx",
            path.display()
        ),
    })?;
    let config: PiperConfig = serde_json::from_str(&text).map_err(|e| TtsError::VoiceConfig {
        path: path.clone(),
        detail: format!("not a Piper voice config: {e}"),
    })?;
    if config.phoneme_type != "espeak" {
        return Err(TtsError::VoiceConfig {
            path,
            detail: format!(
                "phoneme_type '{}' is not supported yet (only espeak voices)",
                config.phoneme_type
            ),
        });
    }
    Ok(config)
}

/// Writes mono samples as a 16-bit PCM WAV.
pub fn write_wav<W: std::io::Write + std::io::Seek>(
    writer: W,
    samples: &[f32],
    sample_rate: u32,
) -> std::result::Result<(), hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::new(writer, spec)?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)?;
    }
    w.finalize()
}
