//! Long-form transcription: openai/whisper's `transcribe()` and `DecodingTask`, stage by stage.
//!
//! Reference: openai/whisper `whisper/transcribe.py` and `whisper/decoding.py` (v20240930).
//! The audio is cut into 30 s windows; each window is encoded once, then decoded with
//! temperature fallback (greedy or beam search at temperature 0, best-of-N sampling above),
//! and the next window starts at the last complete timestamp the model emitted, not at a fixed
//! 30 s step. Unlike the reference, the encoder output is reused across fallback temperatures.

use std::io::Write;
use std::time::Instant;

use candle_core::{Device, Tensor};
use mlbench_core::progress::{Progress, Unit};
use mlbench_core::timing::Timings;
use serde::Serialize;

use crate::mel::{LogMel, HOP_LENGTH, N_FRAMES, N_SAMPLES};
use crate::model::Whisper;
use crate::tokenizer::{language_code, WhisperTokenizer};
use crate::{Result, SttError};

/// Seconds per timestamp token.
const TIME_PRECISION: f32 = 0.02;
/// Mel frames per encoder position.
const INPUT_STRIDE: usize = 2;
const SAMPLE_RATE: f32 = 16_000.0;

/// What to do with the speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Transcribe in the spoken language.
    #[default]
    Transcribe,
    /// Translate into English.
    Translate,
}

impl std::str::FromStr for Task {
    type Err = SttError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "transcribe" => Ok(Self::Transcribe),
            "translate" => Ok(Self::Translate),
            _ => Err(SttError::InvalidOption(format!(
                "unknown task '{s}' (expected transcribe or translate)"
            ))),
        }
    }
}

/// Every decoding knob, with openai/whisper's defaults (beam search as in its CLI and in
/// faster-whisper). The CLI reads its defaults from here.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeParams {
    /// Transcribe or translate to English.
    pub task: Task,
    /// Spoken language (code or English name); `None` detects it on the first window.
    pub language: Option<String>,
    /// Temperatures tried in turn when a result fails the thresholds below.
    pub temperatures: Vec<f32>,
    /// Beam width at temperature 0; 1 is greedy.
    pub beam_size: usize,
    /// Independent samples drawn at temperatures above 0; the best is kept.
    pub best_of: usize,
    /// Beam search patience: finished candidates wanted = round(beam_size * patience).
    pub patience: f32,
    /// `None`: rank by log-probability / length; `Some(a)`: Google NMT length penalty.
    pub length_penalty: Option<f32>,
    /// Fall back when gzip compression ratio of the text exceeds this (repetition).
    pub compression_ratio_threshold: Option<f32>,
    /// Fall back when the average token log-probability is below this.
    pub logprob_threshold: Option<f32>,
    /// A window is silence when `<|nospeech|>` is likelier than this and the average
    /// log-probability is below `logprob_threshold`.
    pub no_speech_threshold: Option<f32>,
    /// Feed the previous window's text as a prompt.
    pub condition_on_previous_text: bool,
    /// Stop conditioning on previous text after a window decoded above this temperature.
    pub prompt_reset_on_temperature: f32,
    /// Text given as the previous context of the first window (names, spelling, style).
    pub initial_prompt: Option<String>,
    /// Suppress a blank or end-of-text first token.
    pub suppress_blank: bool,
    /// Token ids never sampled; `None` uses the model's own list.
    pub suppress_tokens: Option<Vec<u32>>,
    /// Decode without timestamp tokens (segments are then whole windows).
    pub without_timestamps: bool,
    /// Latest allowed first timestamp, in seconds.
    pub max_initial_timestamp: Option<f32>,
    /// Most tokens sampled per window (default: half the decoder context, 224).
    pub sample_len: Option<usize>,
    /// Seed of the sampler used at temperatures above 0.
    pub seed: u64,
    /// Windows whose RMS level is below this (dBFS) are silence and are not decoded at all;
    /// on digital silence Whisper tends to hallucinate short phrases ("You") with a log-probability
    /// that passes `logprob_threshold`.
    pub silence_threshold_db: Option<f32>,
}

impl Default for TranscribeParams {
    fn default() -> Self {
        Self {
            task: Task::Transcribe,
            language: None,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            beam_size: 5,
            best_of: 5,
            patience: 1.0,
            length_penalty: None,
            compression_ratio_threshold: Some(2.4),
            logprob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            initial_prompt: None,
            suppress_blank: true,
            suppress_tokens: None,
            without_timestamps: false,
            max_initial_timestamp: Some(1.0),
            sample_len: None,
            seed: 0,
            silence_threshold_db: Some(-60.0),
        }
    }
}

/// One transcribed segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Index in the transcript.
    pub id: usize,
    /// Mel frame where its window started.
    pub seek: usize,
    /// Start, in seconds.
    pub start: f32,
    /// End, in seconds.
    pub end: f32,
    /// Text, with its leading space as the model produced it.
    pub text: String,
    /// Tokens, timestamps included.
    pub tokens: Vec<u32>,
    /// Temperature of the decode that produced it.
    pub temperature: f32,
    /// Average log-probability of the window's tokens.
    pub avg_logprob: f32,
    /// gzip compression ratio of the window's text.
    pub compression_ratio: f32,
    /// Probability of `<|nospeech|>` for the window.
    pub no_speech_prob: f32,
}

/// The result of [`Transcriber::transcribe`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// Language code, given or detected.
    pub language: String,
    /// Probability of the detected language (absent when given).
    pub language_probability: Option<f32>,
    /// Audio duration in seconds.
    pub duration: f32,
    /// Segments in time order.
    pub segments: Vec<Segment>,
    /// Per-stage timings (mel, encode, decode...).
    pub timings: Timings,
}

impl Transcript {
    /// All segment texts joined, trimmed.
    pub fn text(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_string()
    }
}

/// A Whisper model ready to transcribe: weights, tokenizer and mel front end.
pub struct Transcriber {
    model: Whisper,
    tokenizer: WhisperTokenizer,
    mel: LogMel,
}

/// The result of decoding one window at one temperature.
#[derive(Debug, Clone)]
struct DecodingResult {
    tokens: Vec<u32>,

    avg_logprob: f32,
    no_speech_prob: f32,
    temperature: f32,
    compression_ratio: f32,
}

impl Transcriber {
    /// Bundles a model with its tokenizer.
    pub fn new(model: Whisper, tokenizer: WhisperTokenizer) -> Self {
        let mel = LogMel::new(model.config.num_mel_bins);
        Self {
            model,
            tokenizer,
            mel,
        }
    }

    /// The model.
    pub fn model(&self) -> &Whisper {
        &self.model
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &WhisperTokenizer {
        &self.tokenizer
    }

    /// Whether the model knows languages other than English.
    pub fn is_multilingual(&self) -> bool {
        self.model.config.vocab_size >= 51865
    }

    /// Log-mel of 16 kHz samples with 30 s of zero padding, as a (1, n_mels, frames) tensor.
    pub fn pcm_to_mel(&self, samples: &[f32]) -> Result<Tensor> {
        let (data, frames) = self.mel.compute(samples, N_SAMPLES);
        Ok(Tensor::from_vec(
            data,
            (1, self.mel.n_mels(), frames),
            &Device::Cpu,
        )?)
    }

    /// Encodes one 30 s window of mel frames (1, n_mels, 3000).
    pub fn encode(&self, mel_window: &Tensor) -> Result<Tensor> {
        Ok(self
            .model
            .encode(&mel_window.to_device(self.model.device())?)?)
    }

    /// Language probabilities for encoded audio, most likely first.
    pub fn detect_language(&self, audio_features: &Tensor) -> Result<Vec<(&'static str, f32)>> {
        let tk = &self.tokenizer;
        if tk.languages.is_empty() {
            return Err(SttError::InvalidOption(
                "this model has no language tokens".into(),
            ));
        }
        let mut state = self.model.decoder_state(audio_features, 1)?;
        let tokens = Tensor::new(&[[tk.sot]], self.model.device())?;
        let logits: Vec<f32> = self
            .model
            .decode(&tokens, &mut state)?
            .squeeze(0)?
            .to_vec1()?;
        let lang_logits: Vec<f32> = tk
            .languages
            .iter()
            .map(|(_, id)| logits[*id as usize])
            .collect();
        let probs = softmax(&lang_logits);
        let mut out: Vec<_> = tk
            .languages
            .iter()
            .zip(probs)
            .map(|((code, _), p)| (*code, p))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(out)
    }

    /// Transcribes 16 kHz mono samples of any length.
    pub fn transcribe(
        &self,
        samples: &[f32],
        params: &TranscribeParams,
        progress: &Progress,
    ) -> Result<Transcript> {
        let mut timings = Timings::new();
        let duration = samples.len() as f32 / SAMPLE_RATE;
        let mel = timings.time("mel", || self.pcm_to_mel(samples))?;
        let content_frames = mel.dim(2)? - N_FRAMES;
        let (mut language, mut language_probability) = (self.resolve_language(params)?, None);
        let mut all_tokens: Vec<u32> = match &params.initial_prompt {
            Some(p) if !p.trim().is_empty() => self.tokenizer.encode(&format!(" {}", p.trim()))?,
            _ => Vec::new(),
        };
        let mut prompt_reset_since = 0;
        let mut segments: Vec<Segment> = Vec::new();
        let mut seek = 0;
        progress.begin(
            "transcribing",
            Some((content_frames / 100) as u64),
            Unit::Seconds,
        );
        while seek < content_frames {
            let time_offset = (seek * HOP_LENGTH) as f32 / SAMPLE_RATE;
            let segment_size = N_FRAMES.min(content_frames - seek);
            if let Some(db) = params.silence_threshold_db {
                let from = (seek * HOP_LENGTH).min(samples.len());
                let to = ((seek + segment_size) * HOP_LENGTH).min(samples.len());
                if rms_dbfs(&samples[from..to]) < db {
                    seek += segment_size;
                    progress.update((seek / 100) as u64);
                    continue;
                }
            }
            let window = mel_window(&mel, seek, segment_size)?;
            let features = timings.time("encode", || self.encode(&window))?;
            if language.is_none() {
                let start = Instant::now();
                let probs = self.detect_language(&features)?;
                timings.record("detect_language", start.elapsed());
                language = Some(probs[0].0.to_string());
                language_probability = Some(probs[0].1);
            }
            let prompt = &all_tokens[prompt_reset_since..];
            let sot_sequence = self.sot_sequence(language.as_deref(), params.task);
            let start = Instant::now();
            let result = self.decode_with_fallback(&features, prompt, &sot_sequence, params)?;
            timings.record("decode", start.elapsed());

            let segment_duration = segment_size as f32 * HOP_LENGTH as f32 / SAMPLE_RATE;
            if self.is_silence(&result, params) {
                seek += segment_size;
                progress.update((seek / 100) as u64);
                continue;
            }
            let (new_segments, advance) =
                self.split_segments(&result, time_offset, segment_size, segment_duration);
            let window_seek = seek;
            seek += advance;
            for (start, end, tokens) in new_segments {
                let text = self.tokenizer.decode(&tokens);
                let (tokens, text) = if start == end || text.trim().is_empty() {
                    (vec![], String::new())
                } else {
                    (tokens, text)
                };
                all_tokens.extend(&tokens);
                // Text timed past the end of the audio is the model continuing into padding.
                if text.is_empty() || start >= duration {
                    continue;
                }
                segments.push(Segment {
                    id: segments.len(),
                    seek: window_seek,
                    start,
                    end: end.min(duration).max(start),
                    text,
                    tokens,
                    temperature: result.temperature,
                    avg_logprob: result.avg_logprob,
                    compression_ratio: result.compression_ratio,
                    no_speech_prob: result.no_speech_prob,
                });
            }
            if !params.condition_on_previous_text
                || result.temperature > params.prompt_reset_on_temperature
            {
                prompt_reset_since = all_tokens.len();
            }
            progress.update((seek.min(content_frames) / 100) as u64);
        }
        progress.end();
        Ok(Transcript {
            language: language.unwrap_or_else(|| "en".into()),
            language_probability,
            duration,
            segments,
            timings,
        })
    }

    /// The language to use: the one given, English for English-only models, or `None` to detect.
    fn resolve_language(&self, params: &TranscribeParams) -> Result<Option<String>> {
        if !self.is_multilingual() {
            if params.task == Task::Translate {
                return Err(SttError::InvalidOption(
                    "--task translate needs a multilingual model (this one is English-only)".into(),
                ));
            }
            if let Some(l) = &params.language {
                if language_code(l) != Some("en") {
                    return Err(SttError::InvalidOption(format!(
                        "language '{l}' is not supported by this English-only model"
                    )));
                }
            }
            return Ok(Some("en".into()));
        }
        match &params.language {
            None => Ok(None),
            Some(l) => {
                let code = language_code(l).ok_or_else(|| {
                    SttError::InvalidOption(format!("unknown language '{l}' (use a code such as en, de, fr, or a name such as german)"))
                })?;
                if self.tokenizer.language_token(code).is_none() {
                    return Err(SttError::InvalidOption(format!(
                        "language '{l}' is not supported by this model"
                    )));
                }
                Ok(Some(code.to_string()))
            }
        }
    }

    fn sot_sequence(&self, language: Option<&str>, task: Task) -> Vec<u32> {
        let tk = &self.tokenizer;
        let mut seq = vec![tk.sot];
        if self.is_multilingual() {
            if let Some(id) = language.and_then(|l| tk.language_token(l)) {
                seq.push(id);
            }
            seq.push(match task {
                Task::Transcribe => tk.transcribe,
                Task::Translate => tk.translate,
            });
        }
        seq
    }

    fn is_silence(&self, r: &DecodingResult, p: &TranscribeParams) -> bool {
        let Some(threshold) = p.no_speech_threshold else {
            return false;
        };
        let mut skip = r.no_speech_prob > threshold;
        if let Some(lp) = p.logprob_threshold {
            if r.avg_logprob > lp {
                skip = false;
            }
        }
        skip
    }

    /// Splits a window's tokens at consecutive timestamp pairs; returns the segments
    /// (start, end, tokens) and how many mel frames to advance.
    fn split_segments(
        &self,
        r: &DecodingResult,
        time_offset: f32,
        segment_size: usize,
        segment_duration: f32,
    ) -> (Vec<(f32, f32, Vec<u32>)>, usize) {
        let tb = self.tokenizer.timestamp_begin;
        let tokens = &r.tokens;
        let is_ts: Vec<bool> = tokens.iter().map(|&t| t >= tb).collect();
        let n = tokens.len();
        let single_timestamp_ending = n >= 2 && !is_ts[n - 2] && is_ts[n - 1];
        let mut consecutive: Vec<usize> = (1..n).filter(|&i| is_ts[i - 1] && is_ts[i]).collect();
        let ts_time = |t: u32| (t - tb) as f32 * TIME_PRECISION;
        let mut out = Vec::new();
        if !consecutive.is_empty() {
            if single_timestamp_ending {
                consecutive.push(n);
            }
            let mut last_slice = 0;
            for &current in &consecutive {
                let sliced = &tokens[last_slice..current];
                out.push((
                    time_offset + ts_time(sliced[0]),
                    time_offset + ts_time(*sliced.last().unwrap()),
                    sliced.to_vec(),
                ));
                last_slice = current;
            }
            let advance = if single_timestamp_ending {
                segment_size
            } else {
                (tokens[last_slice - 1] - tb) as usize * INPUT_STRIDE
            };
            (out, advance.max(1))
        } else {
            let mut duration = segment_duration;
            if let Some(&last) = tokens.iter().rev().find(|&&t| t >= tb) {
                if last != tb {
                    duration = ts_time(last);
                }
            }
            out.push((time_offset, time_offset + duration, tokens.clone()));
            (out, segment_size)
        }
    }

    fn decode_with_fallback(
        &self,
        features: &Tensor,
        prompt: &[u32],
        sot_sequence: &[u32],
        p: &TranscribeParams,
    ) -> Result<DecodingResult> {
        let temperatures = if p.temperatures.is_empty() {
            vec![0.0]
        } else {
            p.temperatures.clone()
        };
        let mut result = None;
        for (i, &t) in temperatures.iter().enumerate() {
            let r = self.decode_window(features, prompt, sot_sequence, t, p, i as u64)?;
            let mut needs_fallback = false;
            if p.compression_ratio_threshold
                .is_some_and(|th| r.compression_ratio > th)
            {
                needs_fallback = true;
            }
            if p.logprob_threshold.is_some_and(|th| r.avg_logprob < th) {
                needs_fallback = true;
            }
            if p.no_speech_threshold
                .is_some_and(|th| r.no_speech_prob > th)
            {
                needs_fallback = false;
            }
            result = Some(r);
            if !needs_fallback {
                break;
            }
        }
        Ok(result.expect("at least one temperature"))
    }

    /// `DecodingTask.run` for one window at one temperature.
    fn decode_window(
        &self,
        features: &Tensor,
        prompt: &[u32],
        sot_sequence: &[u32],
        temperature: f32,
        p: &TranscribeParams,
        attempt: u64,
    ) -> Result<DecodingResult> {
        let tk = &self.tokenizer;
        let n_ctx = self.model.config.max_target_positions;
        let sample_len = p.sample_len.unwrap_or(n_ctx / 2);
        let mut initial = Vec::new();
        if !prompt.is_empty() {
            initial.push(tk.sot_prev);
            let keep = (n_ctx / 2 - 1).min(prompt.len());
            initial.extend(&prompt[prompt.len() - keep..]);
        }
        let sot_index = initial.len();
        initial.extend(sot_sequence);
        if p.without_timestamps {
            initial.push(tk.no_timestamps);
        }
        let sample_begin = initial.len();
        let max_len = (sample_begin + sample_len).min(n_ctx);

        let (n_group, beam) = if temperature > 0.0 {
            (p.best_of.max(1), false)
        } else {
            (p.beam_size.max(1), p.beam_size > 1)
        };
        let device = self.model.device();
        let mut state = self.model.decoder_state(features, 1)?;
        let prompt_tensor = Tensor::new(initial.as_slice(), device)?.unsqueeze(0)?;
        let first =
            self.model
                .decode_at(&prompt_tensor, &mut state, &[sot_index, sample_begin - 1])?;
        let first: Vec<Vec<f32>> = first.squeeze(0)?.to_vec2()?;
        let no_speech_prob = tk
            .no_speech
            .map(|ns| softmax(&first[0])[ns as usize])
            .unwrap_or(0.0);
        let mut state_logits = vec![first[1].clone(); n_group];
        if n_group > 1 {
            state.reorder(&vec![0u32; n_group])?;
        }
        let suppress = self.suppress_tokens(p);
        let filter = LogitFilter {
            tk,
            sample_begin,
            suppress_blank: if p.suppress_blank {
                self.tokenizer.encode(" ").unwrap_or_default()
            } else {
                vec![]
            },
            suppress,
            timestamps: !p.without_timestamps,
            max_initial_timestamp_index: p
                .max_initial_timestamp
                .map(|t| (t / TIME_PRECISION).round() as u32),
        };
        let mut seqs: Vec<Vec<u32>> = vec![initial.clone(); n_group];
        let mut sum_logprobs = vec![0f32; n_group];
        let mut finished: Vec<(Vec<u32>, f32)> = Vec::new();
        let max_candidates = ((p.beam_size as f32) * p.patience).round().max(1.0) as usize;
        let mut rng = SplitMix64(p.seed ^ attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        loop {
            {
                use rayon::prelude::*;
                seqs.par_iter()
                    .zip(state_logits.par_iter_mut())
                    .for_each(|(s, logits)| filter.apply(s, logits));
            }
            let (next_tokens, sources, completed) = if beam {
                let (tokens, sources) = beam_step(
                    &seqs,
                    &state_logits,
                    &mut sum_logprobs,
                    p.beam_size,
                    tk.eot,
                    &mut finished,
                    max_candidates,
                );
                let done = finished.len() >= max_candidates;
                (tokens, sources, done)
            } else {
                let mut next = Vec::with_capacity(n_group);
                for (i, logits) in state_logits.iter().enumerate() {
                    let last = *seqs[i].last().unwrap();
                    let token = if last == tk.eot && seqs[i].len() > sample_begin {
                        tk.eot
                    } else if temperature > 0.0 {
                        sample(logits, temperature, &mut rng)
                    } else {
                        argmax(logits)
                    };
                    if !(last == tk.eot && seqs[i].len() > sample_begin) {
                        sum_logprobs[i] += log_softmax_at(logits, token);
                    }
                    next.push(seqs[i].iter().copied().chain([token]).collect::<Vec<_>>());
                }
                let done = next.iter().all(|s| *s.last().unwrap() == tk.eot);
                (next, (0..n_group as u32).collect(), done)
            };
            let sources_changed = sources.iter().enumerate().any(|(i, &s)| s as usize != i);
            if sources_changed {
                state.reorder(&sources)?;
            }
            seqs = next_tokens;
            if completed || seqs[0].len() >= max_len {
                break;
            }
            let last: Vec<u32> = seqs.iter().map(|s| *s.last().unwrap()).collect();
            let step = Tensor::new(last.as_slice(), device)?.unsqueeze(1)?;
            let logits = self.model.decode(&step, &mut state)?;
            state_logits = logits.to_vec2()?;
        }
        // Pick the best candidate (MaximumLikelihoodRanker).
        let candidates: Vec<(Vec<u32>, f32)> = if beam {
            if finished.len() < p.beam_size {
                let mut order: Vec<usize> = (0..seqs.len()).collect();
                order.sort_by(|&a, &b| sum_logprobs[b].total_cmp(&sum_logprobs[a]));
                for j in order {
                    if finished.len() >= p.beam_size {
                        break;
                    }
                    finished.push((seqs[j].clone(), sum_logprobs[j]));
                }
            }
            finished
        } else {
            seqs.into_iter().zip(sum_logprobs).collect()
        };
        let texts: Vec<(Vec<u32>, f32)> = candidates
            .into_iter()
            .map(|(s, lp)| {
                let body: Vec<u32> = s[sample_begin..]
                    .iter()
                    .copied()
                    .take_while(|&t| t != tk.eot)
                    .collect();
                (body, lp)
            })
            .collect();
        let score = |(t, lp): &(Vec<u32>, f32)| {
            let len = t.len() as f32;
            let penalty = match p.length_penalty {
                None => len,
                Some(a) => ((5.0 + len) / 6.0).powf(a),
            };
            lp / penalty.max(1e-6)
        };
        let (tokens, sum_lp) = texts
            .iter()
            .max_by(|a, b| score(a).total_cmp(&score(b)))
            .cloned()
            .unwrap_or_default();
        let text = tk.decode(&tokens);
        Ok(DecodingResult {
            avg_logprob: sum_lp / (tokens.len() as f32 + 1.0),
            compression_ratio: compression_ratio(&text),
            tokens,
            no_speech_prob,
            temperature,
        })
    }

    fn suppress_tokens(&self, p: &TranscribeParams) -> Vec<u32> {
        let tk = &self.tokenizer;
        let mut s = p
            .suppress_tokens
            .clone()
            .unwrap_or_else(|| self.model.config.suppress_tokens.clone());
        s.extend([tk.transcribe, tk.translate, tk.sot, tk.sot_prev, tk.sot_lm]);
        s.extend(tk.no_speech);
        s.sort_unstable();
        s.dedup();
        s
    }
}

/// openai's logit filters: SuppressBlank, SuppressTokens, ApplyTimestampRules.
struct LogitFilter<'a> {
    tk: &'a WhisperTokenizer,
    sample_begin: usize,
    suppress_blank: Vec<u32>,
    suppress: Vec<u32>,
    timestamps: bool,
    max_initial_timestamp_index: Option<u32>,
}

impl LogitFilter<'_> {
    fn apply(&self, seq: &[u32], logits: &mut [f32]) {
        let tk = self.tk;
        let ninf = f32::NEG_INFINITY;
        let mask = |t: u32, logits: &mut [f32]| {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = ninf;
            }
        };
        let at_begin = seq.len() == self.sample_begin;
        if at_begin {
            for &t in self
                .suppress_blank
                .iter()
                .chain([&tk.eot])
                .filter(|_| !self.suppress_blank.is_empty())
            {
                mask(t, logits);
            }
        }
        for &t in &self.suppress {
            mask(t, logits);
        }
        if !self.timestamps {
            return;
        }
        let tb = tk.timestamp_begin as usize;
        let eot = tk.eot as usize;
        mask(tk.no_timestamps, logits);
        let sampled = &seq[self.sample_begin..];
        let last_was_ts = sampled.last().is_some_and(|&t| t >= tk.timestamp_begin);
        let penultimate_was_ts =
            sampled.len() < 2 || sampled[sampled.len() - 2] >= tk.timestamp_begin;
        if last_was_ts {
            if penultimate_was_ts {
                logits[tb..].fill(ninf);
            } else {
                logits[..eot].fill(ninf);
            }
        }
        if let Some(&last_ts) = sampled.iter().rev().find(|&&t| t >= tk.timestamp_begin) {
            let upto = if last_was_ts && !penultimate_was_ts {
                last_ts
            } else {
                last_ts + 1
            };
            let end = (upto as usize).min(logits.len());
            logits[tb..end].fill(ninf);
        }
        if at_begin {
            logits[..tb].fill(ninf);
            if let Some(max_idx) = self.max_initial_timestamp_index {
                let last_allowed = tb + max_idx as usize;
                if last_allowed + 1 < logits.len() {
                    logits[last_allowed + 1..].fill(ninf);
                }
            }
        }
        // If the total probability of timestamps beats every text token, force a timestamp.
        // (Both sides are log-probabilities over the same normaliser, which cancels.)
        let ts_mass = log_sum_exp(&logits[tb..]);
        let max_text = logits[..tb].iter().copied().fold(ninf, f32::max);
        if ts_mass > max_text {
            logits[..tb].fill(ninf);
        }
    }
}

/// One step of openai's `BeamSearchDecoder.update` for a single audio.
fn beam_step(
    seqs: &[Vec<u32>],
    logits: &[Vec<f32>],
    sum_logprobs: &mut [f32],
    beam_size: usize,
    eot: u32,
    finished: &mut Vec<(Vec<u32>, f32)>,
    max_candidates: usize,
) -> (Vec<Vec<u32>>, Vec<u32>) {
    use rayon::prelude::*;
    // The per-beam scans of the whole vocabulary run in parallel; the rest is tiny.
    let candidates: Vec<Vec<(u32, f32)>> = logits
        .par_iter()
        .map(|l| {
            let lse = log_sum_exp(l);
            top_k(l, beam_size + 1)
                .into_iter()
                .map(|t| (t, l[t as usize] - lse))
                .collect()
        })
        .collect();
    let mut scored: Vec<(Vec<u32>, f32, u32)> = Vec::new();
    for (j, (seq, cands)) in seqs.iter().zip(&candidates).enumerate() {
        for &(token, logprob) in cands {
            let lp = sum_logprobs[j] + logprob;
            let mut s = seq.clone();
            s.push(token);
            if let Some(existing) = scored.iter_mut().find(|(x, _, _)| *x == s) {
                existing.1 = lp;
                existing.2 = j as u32;
            } else {
                scored.push((s, lp, j as u32));
            }
        }
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut next = Vec::new();
    let mut sources = Vec::new();
    let mut newly_finished = Vec::new();
    for (s, lp, src) in scored {
        if *s.last().unwrap() == eot {
            newly_finished.push((s, lp));
        } else {
            sum_logprobs[next.len()] = lp;
            next.push(s);
            sources.push(src);
            if next.len() == beam_size {
                break;
            }
        }
    }
    for f in newly_finished {
        if finished.len() >= max_candidates {
            break;
        }
        finished.push(f);
    }
    // Keep the batch full: if fewer live beams than rows, repeat the best one.
    while next.len() < seqs.len() && !next.is_empty() {
        sum_logprobs[next.len()] = sum_logprobs[0];
        next.push(next[0].clone());
        sources.push(sources[0]);
    }
    (next, sources)
}

fn mel_window(mel: &Tensor, seek: usize, segment_size: usize) -> Result<Tensor> {
    let w = mel.narrow(2, seek, segment_size)?;
    if segment_size == N_FRAMES {
        return Ok(w.contiguous()?);
    }
    Ok(w.pad_with_zeros(2, 0, N_FRAMES - segment_size)?)
}

/// RMS level in dB relative to full scale (-inf for empty or all-zero input).
fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return f32::NEG_INFINITY;
    }
    let mean_sq = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    (10.0 * mean_sq.log10()) as f32
}

fn top_k(logits: &[f32], k: usize) -> Vec<u32> {
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
    for (i, &l) in logits.iter().enumerate() {
        if l == f32::NEG_INFINITY || (best.len() == k && l <= best[k - 1].0) {
            continue;
        }
        let pos = best.partition_point(|(b, _)| *b >= l);
        best.insert(pos, (l, i as u32));
        best.truncate(k);
    }
    best.into_iter().map(|(_, i)| i).collect()
}

fn argmax(logits: &[f32]) -> u32 {
    logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as u32)
        .unwrap_or(0)
}

fn log_sum_exp(x: &[f32]) -> f32 {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if m == f32::NEG_INFINITY {
        return m;
    }
    m + x.iter().map(|v| (v - m).exp()).sum::<f32>().ln()
}

fn log_softmax_at(logits: &[f32], i: u32) -> f32 {
    logits[i as usize] - log_sum_exp(logits)
}

fn softmax(x: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(x);
    x.iter().map(|v| (v - lse).exp()).collect()
}

fn sample(logits: &[f32], temperature: f32, rng: &mut SplitMix64) -> u32 {
    let scaled: Vec<f32> = logits.iter().map(|l| l / temperature).collect();
    let probs = softmax(&scaled);
    let mut r = rng.next_f32();
    for (i, p) in probs.iter().enumerate() {
        r -= p;
        if r <= 0.0 {
            return i as u32;
        }
    }
    argmax(logits)
}

/// gzip compression ratio of the text's bytes (repetitive text compresses well).
pub fn compression_ratio(text: &str) -> f32 {
    if text.is_empty() {
        return 0.0;
    }
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(text.as_bytes());
    let compressed = enc.finish().map(|v| v.len()).unwrap_or(text.len());
    text.len() as f32 / compressed.max(1) as f32
}

/// A tiny deterministic generator for temperature sampling.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_compresses_well() {
        let normal = compression_ratio("He was not an ill disposed young man.");
        let repeated = compression_ratio(&"the same words again ".repeat(20));
        assert!(normal < 2.4, "{normal}");
        assert!(repeated > 2.4, "{repeated}");
    }

    #[test]
    fn silence_level() {
        assert_eq!(rms_dbfs(&[0.0; 100]), f32::NEG_INFINITY);
        assert!((rms_dbfs(&[0.5, -0.5]) - (-6.0206)).abs() < 1e-3);
    }

    #[test]
    fn top_k_is_sorted_and_skips_masked() {
        let l = [0.1, 3.0, f32::NEG_INFINITY, 2.0, 5.0];
        assert_eq!(top_k(&l, 3), vec![4, 1, 3]);
        assert_eq!(top_k(&l, 10), vec![4, 1, 3, 0]);
    }

    #[test]
    fn beam_step_dedups_and_finishes() {
        let eot = 3;
        let seqs = vec![vec![9], vec![9]];
        let logits = vec![vec![0.0, 1.0, 2.0, 3.0], vec![0.0, 1.0, 2.0, 3.0]];
        let mut lp = vec![0.0, 0.0];
        let mut finished = Vec::new();
        let (next, sources) = beam_step(&seqs, &logits, &mut lp, 2, eot, &mut finished, 2);
        assert_eq!(next, vec![vec![9, 2], vec![9, 1]]);
        assert_eq!(sources.len(), 2);
        assert_eq!(finished.len(), 1);
        assert_eq!(finished[0].0, vec![9, 3]);
        assert!(lp[0] > lp[1]);
    }
}
