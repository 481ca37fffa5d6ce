//! `mlbench bench stt`: Whisper's encoder and decoder on one 30 s window, and optionally a real
//! transcription, for every device × dtype.
//!
//! Without `--model` (or with `random:tiny|base|small`) the model is the real Whisper
//! architecture filled with random weights: every matmul, convolution and attention has the shape
//! and cost of the released model, so timings are representative, and nothing is downloaded. The
//! weights are drawn in f16 like the released checkpoints, so the CPU takes the same exact-f16
//! weight-streaming path in the decoder as with real weights. Their text is noise, so with random
//! weights there is no transcription row; `--model` loads real weights for that.
//!
//! The window benchmark times, per run: the log-mel of 30 s of audio (noise, or the first 30 s of
//! `--audio`), the encoder, and a fixed number of greedy decoder steps with the KV cache after a
//! 4-token prompt (the decoder stage includes the cross-attention keys/values). A fixed step count
//! keeps runs comparable: real decoding stops wherever the text ends. Token ids only change the
//! text, not the cost.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use mlbench_bench::measure::{measure, timed, Measurement};
use mlbench_bench::memory;
use mlbench_bench::record::{Figures, Record, RowKey, SttFigures};
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::progress::Progress;
use mlbench_core::source::ModelFiles;
use mlbench_stt::mel::{LogMel, N_FRAMES, N_SAMPLES};
use mlbench_stt::model::{Config, Weights, Whisper};
use mlbench_stt::transcribe::{TranscribeParams, Transcriber};

use super::{open_device, peers, Plan};
use crate::cli::BenchArgs;

const SAMPLE_RATE: f64 = 16_000.0;
const WINDOW_S: f64 = (N_SAMPLES as f64) / SAMPLE_RATE;
const PROMPT_LEN: usize = 4;
/// Without `--model`: Whisper tiny's architecture with random weights.
const DEFAULT_MODEL: &str = "random:tiny";

pub fn bench(args: &BenchArgs, plan: &Plan, progress: &Progress) -> Result<Vec<Record>> {
    let model = ModelChoice::resolve(args.model.as_deref().unwrap_or(DEFAULT_MODEL), progress)?;
    let max_steps = 448 - PROMPT_LEN;
    if args.tokens == 0 || args.tokens > max_steps {
        bail!("--tokens must be between 1 and {max_steps}");
    }
    let audio = match &args.audio {
        Some(path) => Some(
            mlbench_stt::audio::load_audio(path)
                .with_context(|| format!("--audio {}", path.display()))?,
        ),
        None => None,
    };
    let input = Input::new(audio, args);
    let mut records = Vec::new();
    for &spec in &plan.devices {
        for dtype in plan.dtypes_for(spec) {
            let case = Case {
                model: &model,
                spec,
                dtype,
                input: &input,
                plan,
                progress,
            };
            records.extend(case.run());
        }
    }
    if args.peers {
        records.push(faster_whisper(args, &model, &input, &records, progress));
    }
    Ok(records)
}

/// faster-whisper (CTranslate2, float32, greedy) transcribing `--audio` with `--model`'s
/// CTranslate2 weights, compared with mlbench's CPU f32 transcription row.
fn faster_whisper(
    args: &BenchArgs,
    model: &ModelChoice,
    input: &Input,
    mlbench_rows: &[Record],
    progress: &Progress,
) -> Record {
    let peer = peers::FASTER_WHISPER;
    let key = peer.key(&RowKey {
        task: "stt".into(),
        model: model.label(),
        device: "cpu".into(),
        dtype: "f32".into(),
        config: input.transcribe_label(),
    });
    match run_faster_whisper(args, model, input, progress) {
        Ok(out) => {
            let implementation = format!(
                "faster-whisper {} (ctranslate2 {}, float32)",
                out.version, out.ctranslate2_version
            );
            let mut record = peer.timed(key, implementation, 1, &out.times_s, mlbench_rows);
            if let (Some(audio_s), Some(run_s)) = (input.audio_s(), record.median_s()) {
                record.figures = Figures::Stt(SttFigures::new(audio_s, run_s));
            }
            record
        }
        Err(reason) => peer.skipped(key, reason),
    }
}

/// What `faster_whisper_stt.py` prints.
#[derive(Debug, serde::Deserialize)]
struct FasterWhisperOutput {
    version: String,
    ctranslate2_version: String,
    times_s: Vec<f64>,
}

fn run_faster_whisper(
    args: &BenchArgs,
    model: &ModelChoice,
    input: &Input,
    progress: &Progress,
) -> Result<FasterWhisperOutput, String> {
    let audio = args
        .audio
        .as_deref()
        .ok_or("needs --audio FILE: the peer transcribes real speech")?;
    let ct2 = model
        .ct2_dir()
        .ok_or("needs --model with CTranslate2 weights (a faster-whisper folder with model.bin)")?;
    let mut peer_args: Vec<std::ffi::OsString> = vec!["--model".into(), ct2.into()];
    for (flag, value) in [
        ("--compute-type", "float32".to_string()),
        ("--beam-size", "1".to_string()),
        ("--threads", peers::threads().to_string()),
        ("--runs", args.runs.to_string()),
        ("--language", input.language.clone()),
    ] {
        peer_args.push(flag.into());
        peer_args.push(value.into());
    }
    peer_args.push(audio.into());
    peers::FASTER_WHISPER.run(progress, &peer_args)
}

/// The sizes `random:NAME` builds, with the released models' hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Tiny,
    Base,
    Small,
}

impl Size {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::Tiny),
            "base" => Ok(Self::Base),
            "small" => Ok(Self::Small),
            other => bail!("unknown random model size '{other}' (expected random:tiny, random:base or random:small)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Tiny => "tiny",
            Self::Base => "base",
            Self::Small => "small",
        }
    }

    /// openai/whisper-{tiny,base,small}'s config.json (multilingual vocabulary).
    fn config(self) -> Config {
        let (d_model, layers, heads) = match self {
            Self::Tiny => (384, 4, 6),
            Self::Base => (512, 6, 8),
            Self::Small => (768, 12, 12),
        };
        Config {
            vocab_size: 51865,
            num_mel_bins: 80,
            d_model,
            encoder_layers: layers,
            encoder_attention_heads: heads,
            encoder_ffn_dim: 4 * d_model,
            decoder_layers: layers,
            decoder_attention_heads: heads,
            decoder_ffn_dim: 4 * d_model,
            max_source_positions: 1500,
            max_target_positions: 448,
            suppress_tokens: Vec::new(),
            begin_suppress_tokens: Vec::new(),
        }
    }
}

/// `--model`: random weights of a size, or real weights from a catalog id, hub repo or path.
pub enum ModelChoice {
    Random(Size),
    Real { spec: String, files: ModelFiles },
}

impl ModelChoice {
    fn resolve(spec: &str, progress: &Progress) -> Result<Self> {
        if let Some(size) = spec.strip_prefix("random:") {
            return Ok(Self::Random(Size::parse(size)?));
        }
        let catalog = Catalog::builtin()?;
        let files = ModelFiles::from_spec(spec, &catalog, progress.clone())?;
        Ok(Self::Real {
            spec: spec.to_string(),
            files,
        })
    }

    /// The model column: says "random weights" where they are; a local path is shortened to
    /// its last component, so that reports from machines with other home folders line up.
    pub fn label(&self) -> String {
        match self {
            Self::Random(size) => format!("whisper {} (random weights)", size.name()),
            Self::Real { spec, .. } => super::model_label(spec),
        }
    }

    /// The folder of CTranslate2 weights, if that is what `--model` holds (for faster-whisper).
    pub fn ct2_dir(&self) -> Option<std::path::PathBuf> {
        let Self::Real { files, .. } = self else {
            return None;
        };
        let listing = files.list().ok()?;
        if !listing.iter().any(|f| f == mlbench_stt::ct2::MODEL_FILE) {
            return None;
        }
        let model_bin = files.get(mlbench_stt::ct2::MODEL_FILE).ok()?;
        model_bin.parent().map(Path::to_path_buf)
    }

    fn load(&self, device: &Device, dtype: DType) -> Result<Loaded> {
        match self {
            Self::Random(size) => Ok(Loaded::Random(Box::new(random_whisper(
                *size, dtype, device,
            )?))),
            Self::Real { files, .. } => Ok(Loaded::Real(Box::new(mlbench_stt::load::load(
                files, dtype, device,
            )?))),
        }
    }
}

enum Loaded {
    Random(Box<Whisper>),
    Real(Box<Transcriber>),
}

impl Loaded {
    fn whisper(&self) -> &Whisper {
        match self {
            Self::Random(w) => w,
            Self::Real(t) => t.model(),
        }
    }
}

/// The audio every configuration sees: one 30 s window, and the whole file for transcription.
pub struct Input {
    window: Vec<f32>,
    /// The `--audio` file's samples, if given.
    pub audio: Option<Vec<f32>>,
    window_label: String,
    /// `--tokens`.
    tokens: usize,
    /// `--language`.
    pub language: String,
}

impl Input {
    fn new(audio: Option<Vec<f32>>, args: &BenchArgs) -> Self {
        let (window, source) = match &audio {
            Some(samples) => (samples.iter().copied().take(N_SAMPLES).collect(), "audio"),
            None => (noise(N_SAMPLES), "noise"),
        };
        let mut window: Vec<f32> = window;
        window.resize(N_SAMPLES, 0.0);
        Self {
            window,
            audio,
            window_label: format!("30 s window ({source}), {} greedy tokens", args.tokens),
            tokens: args.tokens,
            language: args.language.clone(),
        }
    }

    /// Seconds of `--audio`.
    pub fn audio_s(&self) -> Option<f64> {
        self.audio.as_ref().map(|a| a.len() as f64 / SAMPLE_RATE)
    }

    /// The config column of the transcription rows (mlbench's and the peers').
    pub fn transcribe_label(&self) -> String {
        format!(
            "transcribe {:.1} s of --audio, greedy, language {}",
            self.audio_s().unwrap_or(0.0),
            self.language
        )
    }
}

/// Deterministic noise at speech-like level (xorshift; no dependency, same input every run).
fn noise(n: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// One device × dtype.
struct Case<'a> {
    model: &'a ModelChoice,
    spec: DeviceSpec,
    dtype: DTypeSpec,
    input: &'a Input,
    plan: &'a Plan,
    progress: &'a Progress,
}

impl Case<'_> {
    fn key(&self, device: &str, config: &str) -> RowKey {
        RowKey {
            task: "stt".into(),
            model: self.model.label(),
            device: device.into(),
            dtype: self.dtype.to_string(),
            config: config.into(),
        }
    }

    /// The rows of this case; every failure becomes a row.
    fn run(&self) -> Vec<Record> {
        let wants_transcription = self.input.audio.is_some();
        let (device, name) = match open_device(self.spec) {
            Ok(d) => d,
            Err(reason) => {
                let name = self.spec.to_string();
                let mut rows = vec![Record::skipped(
                    self.key(&name, &self.input.window_label),
                    reason.clone(),
                )];
                if wants_transcription {
                    let key = self.key(&name, &self.input.transcribe_label());
                    rows.push(Record::skipped(key, reason));
                }
                return rows;
            }
        };
        memory::reset_peak();
        let loaded = match timed(|| self.model.load(&device, self.dtype.dtype())) {
            Ok(loaded) => loaded,
            Err(e) => {
                let key = self.key(&name, &self.input.window_label);
                return vec![Record::failed(key, format!("loading the model: {e:#}"))];
            }
        };
        let mut rows = vec![self.window_row(&name, &loaded)];
        if wants_transcription {
            rows.push(self.transcribe_row(&name, &loaded.0));
        }
        rows
    }

    fn label(&self, device: &str, what: &str) -> String {
        format!("stt {device} {} {what}", self.dtype)
    }

    fn window_row(&self, device: &str, (model, load_s): &(Loaded, f64)) -> Record {
        let key = self.key(device, &self.input.window_label);
        let whisper = model.whisper();
        let mel = LogMel::new(whisper.config.num_mel_bins);
        let tokens = self.input.tokens;
        let label = self.label(device, "window");
        let result = measure(&self.plan.measure, self.progress, &label, |probe| {
            let mel = probe.stage("mel", || mel_window(&mel, &self.input.window))?;
            let features = probe.stage("encoder", || encode(whisper, &mel))?;
            probe.stage("decoder", || greedy(whisper, &features, tokens))
        });
        let mut record = match result {
            Ok(m) => window_record(key, &m, tokens),
            Err(e) => return Record::failed(key, e.to_string()),
        };
        record.load_s = Some(*load_s);
        record.peak_rss_bytes = memory::peak_rss_bytes();
        if matches!(model, Loaded::Random(_)) {
            record.notes.push("random weights".into());
        }
        record
    }

    fn transcribe_row(&self, device: &str, model: &Loaded) -> Record {
        let key = self.key(device, &self.input.transcribe_label());
        let (Loaded::Real(transcriber), Some(audio)) = (model, &self.input.audio) else {
            return Record::skipped(key, "random weights cannot transcribe: pass --model");
        };
        let params = TranscribeParams {
            beam_size: 1,
            language: Some(self.input.language.clone()),
            ..TranscribeParams::default()
        };
        memory::reset_peak();
        let label = self.label(device, "transcribe");
        let mut text = String::new();
        let result = measure(&self.plan.measure, self.progress, &label, |probe| {
            let t = transcriber.transcribe(audio, &params, &Progress::none())?;
            for s in t.timings.stages() {
                probe.record(&s.stage, Duration::from_secs_f64(s.total_s));
            }
            text = t.text();
            Ok::<(), mlbench_stt::SttError>(())
        });
        let mut record = match result {
            Ok(m) => transcribe_record(key, &m, audio.len() as f64 / SAMPLE_RATE),
            Err(e) => return Record::failed(key, e.to_string()),
        };
        record.peak_rss_bytes = memory::peak_rss_bytes();
        record
            .metrics
            .insert("words".into(), text.split_whitespace().count() as f64);
        record
    }
}

fn window_record(key: RowKey, m: &Measurement, tokens: usize) -> Record {
    let mut record = Record::measured(key, m);
    let median = |stage: &str| m.stages.get(stage).map_or(0.0, |s| s.median);
    record.figures = Figures::Stt(SttFigures::new(WINDOW_S, m.total.median).with_split(
        median("encoder"),
        median("decoder"),
        Some(tokens),
    ));
    record.metrics.insert("mel_s".into(), median("mel"));
    record
}

fn transcribe_record(key: RowKey, m: &Measurement, audio_s: f64) -> Record {
    let mut record = Record::measured(key, m);
    let mut figures = SttFigures::new(audio_s, m.total.median);
    if let (Some(e), Some(d)) = (m.stages.get("encode"), m.stages.get("decode")) {
        figures = figures.with_split(e.median, d.median, None);
    }
    record.figures = Figures::Stt(figures);
    record
}

/// Log-mel of exactly one window, (1, n_mels, 3000) on the CPU.
fn mel_window(mel: &LogMel, window: &[f32]) -> candle_core::Result<Tensor> {
    let (data, frames) = mel.compute(window, 0);
    debug_assert_eq!(frames, N_FRAMES);
    Tensor::from_vec(data, (1, mel.n_mels(), frames), &Device::Cpu)
}

/// The encoder, waited for: GPU work is asynchronous and would otherwise be billed to the decoder.
fn encode(whisper: &Whisper, mel: &Tensor) -> candle_core::Result<Tensor> {
    let features = whisper.encode(&mel.to_device(whisper.device())?)?;
    whisper.device().synchronize()?;
    Ok(features)
}

/// `<|startoftranscript|>`, a language, `<|transcribe|>`, `<|notimestamps|>` (ids of the
/// vocabulary's layout; only the text depends on them), then `steps` greedy single-token steps.
fn greedy(whisper: &Whisper, features: &Tensor, steps: usize) -> candle_core::Result<()> {
    let device = whisper.device();
    let sot: u32 = if whisper.config.vocab_size == 51864 {
        50257
    } else {
        50258
    };
    let mut state = whisper.decoder_state(features, 1)?;
    let prompt = Tensor::new(&[[sot, sot + 1, sot + 101, sot + 105]], device)?;
    let mut logits = whisper.decode(&prompt, &mut state)?;
    for _ in 0..steps {
        let next = logits.argmax(D::Minus1)?.to_vec1::<u32>()?[0];
        logits = whisper.decode(&Tensor::new(&[[next]], device)?, &mut state)?;
    }
    Ok(())
}

/// Whisper of `size` with random weights, built through the same loader as real checkpoints.
fn random_whisper(size: Size, dtype: DType, device: &Device) -> Result<Whisper> {
    let config = size.config();
    let tensors = random_tensors(&config)?;
    let weights = Weights::from_tensors(tensors, dtype, device);
    Whisper::load(&weights, config).context("building Whisper from random weights")
}

/// Every tensor `Whisper::load` reads, with transformers names, drawn in f16 on the CPU.
fn random_tensors(c: &Config) -> candle_core::Result<HashMap<String, Tensor>> {
    let d = c.d_model;
    let mut t = RandomTensors::default();
    t.normal("encoder.conv1.weight", &[d, c.num_mel_bins, 3])?;
    t.zeros("encoder.conv1.bias", &[d])?;
    t.normal("encoder.conv2.weight", &[d, d, 3])?;
    t.zeros("encoder.conv2.bias", &[d])?;
    for i in 0..c.encoder_layers {
        let p = format!("encoder.layers.{i}");
        t.layer_norm(&format!("{p}.self_attn_layer_norm"), d)?;
        t.attention(&format!("{p}.self_attn"), d)?;
        t.layer_norm(&format!("{p}.final_layer_norm"), d)?;
        t.mlp(&p, d, c.encoder_ffn_dim)?;
    }
    t.layer_norm("encoder.layer_norm", d)?;
    t.normal("decoder.embed_tokens.weight", &[c.vocab_size, d])?;
    t.normal(
        "decoder.embed_positions.weight",
        &[c.max_target_positions, d],
    )?;
    for i in 0..c.decoder_layers {
        let p = format!("decoder.layers.{i}");
        t.layer_norm(&format!("{p}.self_attn_layer_norm"), d)?;
        t.attention(&format!("{p}.self_attn"), d)?;
        t.layer_norm(&format!("{p}.encoder_attn_layer_norm"), d)?;
        t.attention(&format!("{p}.encoder_attn"), d)?;
        t.layer_norm(&format!("{p}.final_layer_norm"), d)?;
        t.mlp(&p, d, c.decoder_ffn_dim)?;
    }
    t.layer_norm("decoder.layer_norm", d)?;
    Ok(t.0)
}

#[derive(Default)]
struct RandomTensors(HashMap<String, Tensor>);

impl RandomTensors {
    fn put(&mut self, name: &str, t: Tensor) -> candle_core::Result<()> {
        self.0.insert(name.to_string(), t.to_dtype(DType::F16)?);
        Ok(())
    }

    fn normal(&mut self, name: &str, shape: &[usize]) -> candle_core::Result<()> {
        self.put(name, Tensor::randn(0f32, 0.02, shape, &Device::Cpu)?)
    }

    fn zeros(&mut self, name: &str, shape: &[usize]) -> candle_core::Result<()> {
        self.put(name, Tensor::zeros(shape, DType::F32, &Device::Cpu)?)
    }

    fn layer_norm(&mut self, prefix: &str, d: usize) -> candle_core::Result<()> {
        self.put(
            &format!("{prefix}.weight"),
            Tensor::ones(d, DType::F32, &Device::Cpu)?,
        )?;
        self.zeros(&format!("{prefix}.bias"), &[d])
    }

    fn linear(
        &mut self,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> candle_core::Result<()> {
        self.normal(&format!("{prefix}.weight"), &[out_dim, in_dim])?;
        if bias {
            self.zeros(&format!("{prefix}.bias"), &[out_dim])?;
        }
        Ok(())
    }

    /// q, v and out have biases, k has none (as in Whisper).
    fn attention(&mut self, prefix: &str, d: usize) -> candle_core::Result<()> {
        for (proj, bias) in [
            ("q_proj", true),
            ("k_proj", false),
            ("v_proj", true),
            ("out_proj", true),
        ] {
            self.linear(&format!("{prefix}.{proj}"), d, d, bias)?;
        }
        Ok(())
    }

    fn mlp(&mut self, prefix: &str, d: usize, ffn: usize) -> candle_core::Result<()> {
        self.linear(&format!("{prefix}.fc1"), d, ffn, true)?;
        self.linear(&format!("{prefix}.fc2"), ffn, d, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tiny_has_whisper_tiny_parameter_count() {
        let tensors = random_tensors(&Size::Tiny.config()).unwrap();
        let params: usize = tensors.values().map(|t| t.elem_count()).sum();
        // openai/whisper-tiny: 37.8 M parameters without the sinusoidal encoder positions.
        assert!((37_000_000..38_500_000).contains(&params), "{params}");
    }

    #[test]
    fn noise_is_deterministic_and_bounded() {
        let a = noise(1000);
        assert_eq!(a, noise(1000));
        assert!(a.iter().all(|x| x.abs() <= 0.1));
    }
}
