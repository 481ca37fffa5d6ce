//! Typed result rows.
//!
//! One [`Record`] is one benchmark configuration: a task, a model, a device, a dtype and a free
//! `config` text (input size, decoder steps, beam width) — the [`RowKey`] by which two reports are
//! compared. Everything every task has (status, load time, run-time statistics, stages, peak
//! memory) is a typed field; what only one kind of task has lives in [`Figures`], an enum tagged
//! by `kind`, so that each category (STT, TTS, classification, later diffusion) adds a variant
//! without touching the others; and [`Record::metrics`] takes any extra number without a schema
//! change.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::measure::Measurement;
use crate::stats::Stats;

/// What identifies a row across reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RowKey {
    /// Task: `stt`, `tts`, `diffuse`, `classify-image`, `classify-text`, `kernel`.
    pub task: String,
    /// Model, saying whether its weights are random (`whisper tiny (random weights)`).
    pub model: String,
    /// Device: `cpu`, `cuda:0`, `metal`.
    pub device: String,
    /// Compute dtype: `f32`, `f16`, `bf16`.
    pub dtype: String,
    /// Everything else that changes the work: input, steps, batch size, beam width.
    pub config: String,
}

/// Whether the row was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    /// Measured.
    Ok,
    /// Not run, for an expected reason (device not built in, peer not installed).
    Skipped {
        /// Why, in one line.
        reason: String,
    },
    /// Run, but it failed.
    Failed {
        /// The error, in one line.
        error: String,
    },
}

/// Speech-to-text figures, from the median run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SttFigures {
    /// Seconds of audio per run.
    pub audio_s: f64,
    /// Run time ÷ audio time (below 1 is faster than real time).
    pub real_time_factor: f64,
    /// Audio seconds processed per second of run time.
    pub audio_s_per_s: f64,
    /// Median encoder time per run, in seconds.
    pub encoder_s: Option<f64>,
    /// Median decoder time per run, in seconds.
    pub decoder_s: Option<f64>,
    /// Decoder steps per run (tokens generated), when fixed.
    pub decoder_tokens: Option<usize>,
    /// Median decoder milliseconds per generated token.
    pub decoder_ms_per_token: Option<f64>,
}

impl SttFigures {
    /// Figures for `audio_s` seconds of audio processed in `run_s` seconds.
    pub fn new(audio_s: f64, run_s: f64) -> Self {
        Self {
            audio_s,
            real_time_factor: run_s / audio_s,
            audio_s_per_s: audio_s / run_s,
            encoder_s: None,
            decoder_s: None,
            decoder_tokens: None,
            decoder_ms_per_token: None,
        }
    }

    /// Adds the encoder/decoder split; `tokens` decoder steps per run give ms per token.
    pub fn with_split(mut self, encoder_s: f64, decoder_s: f64, tokens: Option<usize>) -> Self {
        self.encoder_s = Some(encoder_s);
        self.decoder_s = Some(decoder_s);
        self.decoder_tokens = tokens;
        self.decoder_ms_per_token = tokens
            .filter(|&t| t > 0)
            .map(|t| decoder_s * 1000.0 / t as f64);
        self
    }
}

/// Text-to-speech figures, from the median run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TtsFigures {
    /// Seconds of audio synthesized per run.
    pub audio_s: f64,
    /// Run time ÷ audio time (below 1 is faster than real time).
    pub real_time_factor: f64,
    /// Audio seconds synthesized per second of run time.
    pub audio_s_per_s: f64,
    /// Sentences per run (one model call each).
    pub sentences: usize,
    /// Phoneme ids per run, over all sentences.
    pub phoneme_ids: usize,
    /// Median seconds per run of each model stage (`encode`, `durations`, `flow`, `decode`),
    /// where the implementation times them.
    #[serde(default)]
    pub stages_s: BTreeMap<String, f64>,
}

impl TtsFigures {
    /// Figures for `audio_s` seconds of audio from `phoneme_ids` ids in `sentences` sentences,
    /// synthesized in `run_s` seconds.
    pub fn new(audio_s: f64, run_s: f64, sentences: usize, phoneme_ids: usize) -> Self {
        Self {
            audio_s,
            real_time_factor: run_s / audio_s,
            audio_s_per_s: audio_s / run_s,
            sentences,
            phoneme_ids,
            stages_s: BTreeMap::new(),
        }
    }
}

/// Generic throughput: items (images, sentences, clips) per second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThroughputFigures {
    /// Items per run.
    pub items_per_run: f64,
    /// What an item is (`images`, `sentences`).
    pub unit: String,
    /// Items per second at the median run time.
    pub items_per_s: f64,
    /// Batch size, where the run is batched.
    pub batch_size: Option<usize>,
    /// Median seconds per batch (one batched forward pass), where the run is batched.
    #[serde(default)]
    pub batch_latency_s: Option<f64>,
}

impl ThroughputFigures {
    /// `items` of `unit` per run of `run_s` seconds.
    pub fn new(items: f64, unit: impl Into<String>, run_s: f64) -> Self {
        Self {
            items_per_run: items,
            unit: unit.into(),
            items_per_s: items / run_s,
            batch_size: None,
            batch_latency_s: None,
        }
    }

    /// One run is one batch of `batch_size` items taking `run_s` seconds.
    pub fn batch(batch_size: usize, unit: impl Into<String>, run_s: f64) -> Self {
        Self {
            batch_size: Some(batch_size),
            batch_latency_s: Some(run_s),
            ..Self::new(batch_size as f64, unit, run_s)
        }
    }
}

/// Kernel figures: achieved floating-point rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelFigures {
    /// Floating-point operations per run.
    pub flop_per_run: f64,
    /// Achieved GFLOP/s at the median run time.
    pub gflops: f64,
}

impl KernelFigures {
    /// `flop` operations per run of `run_s` seconds.
    pub fn new(flop: f64, run_s: f64) -> Self {
        Self {
            flop_per_run: flop,
            gflops: flop / run_s / 1e9,
        }
    }
}

/// Task-specific figures. New categories add a variant; a reader that does not know a variant
/// reads it as [`Figures::Unknown`] instead of rejecting the report.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Figures {
    /// Nothing beyond the run time.
    #[default]
    None,
    /// Speech-to-text.
    Stt(SttFigures),
    /// Text-to-speech.
    Tts(TtsFigures),
    /// Items per second.
    Throughput(ThroughputFigures),
    /// GFLOP/s of a kernel.
    Kernel(KernelFigures),
    /// A kind written by a newer mlbench.
    #[serde(other)]
    Unknown,
}

impl Figures {
    /// A short human summary for a table cell.
    pub fn summary(&self) -> String {
        match self {
            Self::None | Self::Unknown => String::new(),
            Self::Stt(s) => stt_summary(s),
            Self::Tts(t) => tts_summary(t),
            Self::Throughput(t) => throughput_summary(t),
            Self::Kernel(k) => format!("{:.1} GFLOP/s", k.gflops),
        }
    }
}

fn stt_summary(s: &SttFigures) -> String {
    let mut parts = vec![
        format!("RTF {:.4}", s.real_time_factor),
        format!("{:.1} audio-s/s", s.audio_s_per_s),
    ];
    if let Some(e) = s.encoder_s {
        parts.push(format!("enc {e:.3} s"));
    }
    match (s.decoder_ms_per_token, s.decoder_s) {
        (Some(ms), _) => parts.push(format!("dec {ms:.2} ms/token")),
        (None, Some(d)) => parts.push(format!("dec {d:.3} s")),
        (None, None) => {}
    }
    parts.join(", ")
}

fn tts_summary(t: &TtsFigures) -> String {
    let mut parts = vec![
        format!("RTF {:.4}", t.real_time_factor),
        format!("{:.1} audio-s/s", t.audio_s_per_s),
    ];
    let split: Vec<String> = ["encode", "durations", "flow", "decode"]
        .iter()
        .filter_map(|s| t.stages_s.get(*s).map(|v| format!("{s} {v:.3}")))
        .collect();
    if !split.is_empty() {
        parts.push(format!("{} s", split.join(" / ")));
    }
    parts.join(", ")
}

fn throughput_summary(t: &ThroughputFigures) -> String {
    let rate = format!("{:.2} {}/s", t.items_per_s, t.unit);
    match (t.batch_size, t.batch_latency_s) {
        (Some(b), Some(s)) => format!("{rate}, {:.1} ms per batch of {b}", s * 1000.0),
        _ => rate,
    }
}

/// One result row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Task, model, device, dtype, config.
    #[serde(flatten)]
    pub key: RowKey,
    /// Who computed it: `mlbench`, or a peer such as `faster-whisper 1.2.1`.
    pub implementation: String,
    /// Measured, skipped or failed.
    pub status: Status,
    /// Model load time in seconds, measured once, apart from the runs.
    pub load_s: Option<f64>,
    /// Untimed warm-up runs.
    pub warmup: usize,
    /// Seconds per timed run.
    pub run_s: Option<Stats>,
    /// Seconds per run of each named stage.
    pub stages: BTreeMap<String, Stats>,
    /// Task-specific figures.
    pub figures: Figures,
    /// Peak resident memory in bytes while this row ran (see [`crate::memory`]).
    pub peak_rss_bytes: Option<u64>,
    /// Any further numbers, by name.
    pub metrics: BTreeMap<String, f64>,
    /// Free remarks ("random weights").
    pub notes: Vec<String>,
}

impl Record {
    fn empty(key: RowKey, status: Status) -> Self {
        Self {
            key,
            implementation: "mlbench".into(),
            status,
            load_s: None,
            warmup: 0,
            run_s: None,
            stages: BTreeMap::new(),
            figures: Figures::None,
            peak_rss_bytes: None,
            metrics: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// A measured row.
    pub fn measured(key: RowKey, m: &Measurement) -> Self {
        Self {
            stages: m.stages.clone(),
            ..Self::timed(key, m.warmup, m.total)
        }
    }

    /// A row timed elsewhere (a peer's own timings): `warmup` untimed runs, then `run_s`.
    pub fn timed(key: RowKey, warmup: usize, run_s: Stats) -> Self {
        Self {
            warmup,
            run_s: Some(run_s),
            ..Self::empty(key, Status::Ok)
        }
    }

    /// A row not run, with the reason.
    pub fn skipped(key: RowKey, reason: impl Into<String>) -> Self {
        Self::empty(
            key,
            Status::Skipped {
                reason: one_line(&reason.into()),
            },
        )
    }

    /// A row whose run failed.
    pub fn failed(key: RowKey, error: impl Into<String>) -> Self {
        Self::empty(
            key,
            Status::Failed {
                error: one_line(&error.into()),
            },
        )
    }

    /// Median seconds per run, for measured rows.
    pub fn median_s(&self) -> Option<f64> {
        self.run_s.map(|s| s.median)
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stt_figures_follow_the_median() {
        let f = SttFigures::new(30.0, 0.6).with_split(0.3, 0.16, Some(32));
        assert!((f.real_time_factor - 0.02).abs() < 1e-12);
        assert!((f.audio_s_per_s - 50.0).abs() < 1e-9);
        assert!((f.decoder_ms_per_token.unwrap() - 5.0).abs() < 1e-9);
        let s = Figures::Stt(f).summary();
        assert!(
            s.contains("RTF 0.0200") && s.contains("5.00 ms/token"),
            "{s}"
        );
    }

    #[test]
    fn tts_figures_follow_the_median() {
        let mut f = TtsFigures::new(4.0, 0.2, 2, 120);
        assert!((f.real_time_factor - 0.05).abs() < 1e-12);
        assert!((f.audio_s_per_s - 20.0).abs() < 1e-9);
        f.stages_s.insert("decode".into(), 0.125);
        f.stages_s.insert("encode".into(), 0.01);
        let s = Figures::Tts(f).summary();
        assert_eq!(
            s,
            "RTF 0.0500, 20.0 audio-s/s, encode 0.010 / decode 0.125 s"
        );
    }

    #[test]
    fn batch_throughput_reports_latency() {
        let f = ThroughputFigures::batch(8, "images", 0.25);
        assert!((f.items_per_s - 32.0).abs() < 1e-12);
        assert_eq!(f.batch_latency_s, Some(0.25));
        assert_eq!(
            Figures::Throughput(f).summary(),
            "32.00 images/s, 250.0 ms per batch of 8"
        );
        // Reports written before batch_latency_s existed still read.
        let old: ThroughputFigures = serde_json::from_str(
            r#"{"items_per_run":1.0,"unit":"images","items_per_s":2.0,"batch_size":null}"#,
        )
        .unwrap();
        assert_eq!(old.batch_latency_s, None);
    }

    #[test]
    fn throughput_and_kernel_rates() {
        assert!((ThroughputFigures::new(8.0, "images", 0.5).items_per_s - 16.0).abs() < 1e-12);
        assert!((KernelFigures::new(2e9, 0.1).gflops - 20.0).abs() < 1e-9);
    }

    #[test]
    fn unknown_figures_kinds_are_tolerated() {
        let f: Figures = serde_json::from_str(r#"{"kind":"diffusion","unet_step_s":0.5}"#).unwrap();
        assert_eq!(f, Figures::Unknown);
    }

    #[test]
    fn skipped_reasons_are_one_line() {
        let key = RowKey {
            task: "stt".into(),
            model: "m".into(),
            device: "cuda".into(),
            dtype: "f16".into(),
            config: String::new(),
        };
        let r = Record::skipped(key, "no GPU\n  (driver missing)\n");
        assert_eq!(
            r.status,
            Status::Skipped {
                reason: "no GPU (driver missing)".into()
            }
        );
        assert_eq!(r.median_s(), None);
    }
}
