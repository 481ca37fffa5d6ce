//! `--peers`: the implementations people use today, on the same weights and inputs, in the same
//! run and with the same thread count, so that mlbench's time can be read as a ratio of theirs.
//!
//! Peers are Python programs in `benches/peers/` that time their own runs and print one JSON
//! object with `times_s`. Each [`Peer`] runs in a venv made by a setup script from pinned
//! requirements ([`Venv`]). A peer that cannot run here — no venv, no script, weights it cannot
//! read, a crash — is a skipped row with the reason: the peers are context for mlbench's
//! numbers, never a reason for the bench itself to fail.
//!
//! A peer row's key is the mlbench row's key with the peer's name added to the model column;
//! it carries `mlbench_over_peer` (mlbench's CPU f32 median on the same task and config ÷ the
//! peer's median) and `mlbench_over_peer_best` (the same with each side's fastest run, steadier
//! on a loaded machine) as metrics and as a note in the table.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use mlbench_bench::env::Environment;
use mlbench_bench::record::{Record, RowKey, Status};
use mlbench_bench::stats::Stats;
use mlbench_core::progress::{Progress, Unit};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Where a peer's Python comes from.
#[derive(Debug, Clone, Copy)]
pub enum Venv {
    /// faster-whisper and Piper's onnxruntime: `$MLBENCH_PEER_VENV`, else
    /// `~/.cache/mlbench/peer-venv` (`benches/peers/setup-peers.sh`).
    Peer,
    /// PyTorch with transformers: `$MLBENCH_TORCH_VENV`, else `~/.cache/mlbench/torch-venv`
    /// (`benches/peers/setup-transformers.sh`).
    Torch,
}

impl Venv {
    fn settings(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Peer => ("MLBENCH_PEER_VENV", "peer-venv", "setup-peers.sh"),
            Self::Torch => ("MLBENCH_TORCH_VENV", "torch-venv", "setup-transformers.sh"),
        }
    }

    /// The venv's python, or how to make it.
    fn python(self) -> Result<PathBuf, String> {
        self.python_in(std::env::var_os(self.settings().0))
    }

    /// As [`Self::python`], with `venv` the value of the venv variable.
    fn python_in(self, venv: Option<OsString>) -> Result<PathBuf, String> {
        let (var, default, setup) = self.settings();
        let venv = match venv {
            Some(v) => PathBuf::from(v),
            None => {
                let home = std::env::var_os("HOME").ok_or("no peer venv: HOME is not set")?;
                Path::new(&home).join(".cache/mlbench").join(default)
            }
        };
        let python = venv.join("bin/python");
        if python.exists() {
            Ok(python)
        } else {
            Err(format!(
                "no peer venv at {}: run benches/peers/{setup} once to create it, or set {var}",
                venv.display()
            ))
        }
    }
}

/// A peer runner script.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Short name, added to the model column of its rows.
    pub name: &'static str,
    /// File name in `benches/peers/`.
    pub script: &'static str,
    /// The venv it runs in.
    pub venv: Venv,
}

/// faster-whisper (CTranslate2) for `stt`.
pub const FASTER_WHISPER: Peer = Peer {
    name: "faster-whisper",
    script: "faster_whisper_stt.py",
    venv: Venv::Peer,
};

/// Piper's ONNX voice on onnxruntime for `tts`.
pub const PIPER: Peer = Peer {
    name: "piper-onnxruntime",
    script: "piper_tts.py",
    venv: Venv::Peer,
};

/// PyTorch for `classify-image`: transformers' models (random architectures and transformers
/// checkpoints), efficientnet-lite-pytorch for EfficientNet-Lite weights.
pub const TORCH_VISION: Peer = Peer {
    name: "pytorch",
    script: "torch_classify_image.py",
    venv: Venv::Torch,
};

/// diffusers (PyTorch) for `diffuse`: `UNet2DConditionModel` and `AutoencoderKL`.
pub const DIFFUSERS: Peer = Peer {
    name: "diffusers",
    script: "diffusers_unet.py",
    venv: Venv::Torch,
};

impl Peer {
    /// Runs the script with `args` (a spinner named after the peer meanwhile) and reads the
    /// JSON it prints, or says in one line why not.
    pub fn run<T: DeserializeOwned>(
        &self,
        progress: &Progress,
        args: &[OsString],
    ) -> Result<T, String> {
        let python = self.venv.python()?;
        let script = peer_script(self.script)?;
        progress.begin(format!("peer {}", self.name), None, Unit::Items);
        let out = Command::new(&python).arg(&script).args(args).output();
        progress.end();
        let out = out.map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
            return Err(format!(
                "{} failed: {}",
                self.name,
                last.unwrap_or("no output")
            ));
        }
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{} output unreadable: {e}", self.name))
    }

    /// The key of this peer's row that sits beside mlbench's row `key`.
    pub fn key(&self, key: &RowKey) -> RowKey {
        RowKey {
            model: format!("{} ({})", key.model, self.name),
            device: "cpu".into(),
            dtype: "f32".into(),
            ..key.clone()
        }
    }

    /// A row this peer could not run.
    pub fn skipped(&self, key: RowKey, reason: impl Into<String>) -> Record {
        let mut r = Record::skipped(key, reason);
        r.implementation = self.name.into();
        r
    }

    /// The row of a peer run: its `times_s` (after `warmup` untimed runs), named
    /// `implementation`, compared with mlbench's CPU f32 row of the same task and config.
    pub fn timed(
        &self,
        key: RowKey,
        implementation: String,
        warmup: usize,
        times_s: &[f64],
        mlbench_rows: &[Record],
    ) -> Record {
        let stats = match Stats::from_samples(times_s) {
            Ok(s) => s,
            Err(e) => return self.skipped(key, format!("{} gave no times: {e}", self.name)),
        };
        let mut record = Record::timed(key, warmup, stats);
        record.implementation = implementation;
        match mlbench_cpu_f32(mlbench_rows, &record.key) {
            Some(ours) => {
                let ratio = ours.median / stats.median;
                let best = ours.min / stats.min;
                record.metrics.insert("mlbench_over_peer".into(), ratio);
                record.metrics.insert("mlbench_over_peer_best".into(), best);
                record.notes.push(format!(
                    "mlbench cpu f32 time ÷ this = {ratio:.2} (medians), {best:.2} (best runs)"
                ));
            }
            None => record
                .notes
                .push("no mlbench cpu f32 row of this config to compare with".into()),
        }
        record
    }
}

/// What a batch-size peer script prints (`torch_classify_image.py`, `torch_classify_text.py`):
/// its implementation, its untimed warm-up runs and one entry per batch size.
#[derive(Debug, Deserialize)]
pub struct BatchOutput<T> {
    pub implementation: String,
    pub warmup: usize,
    pub results: Vec<T>,
}

/// One batch size's times in a [`BatchOutput`].
pub trait BatchTimes {
    fn batch_size(&self) -> usize;
    fn times_s(&self) -> &[f64];
}

impl Peer {
    /// One row per batch size from a peer's [`BatchOutput`] (or the reason it did not run),
    /// each compared with mlbench's row of that batch size; `finish` adds the task's figures
    /// and notes to each timed row.
    pub fn batch_rows<T: BatchTimes>(
        &self,
        output: Result<BatchOutput<T>, String>,
        batches: &[usize],
        key: impl Fn(usize) -> RowKey,
        mlbench_rows: &[Record],
        finish: impl Fn(&mut Record, usize, &T),
    ) -> Vec<Record> {
        let out = match output {
            Ok(out) => out,
            Err(reason) => {
                return batches
                    .iter()
                    .map(|&b| self.skipped(key(b), reason.clone()))
                    .collect()
            }
        };
        batches
            .iter()
            .map(|&b| {
                let Some(result) = out.results.iter().find(|r| r.batch_size() == b) else {
                    return self.skipped(key(b), "the peer gave no time for this batch size");
                };
                let mut record = self.timed(
                    key(b),
                    out.implementation.clone(),
                    out.warmup,
                    result.times_s(),
                    mlbench_rows,
                );
                finish(&mut record, b, result);
                record
            })
            .collect()
    }
}

/// The threads the peers get: as many as mlbench's own pool (`RAYON_NUM_THREADS`).
pub fn threads() -> usize {
    Environment::capture().threads
}

/// `benches/peers/NAME`: under `$MLBENCH_PEERS_DIR`, the current directory, or the source tree
/// this binary was built from.
fn peer_script(name: &str) -> Result<PathBuf, String> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches/peers");
    let candidates = [
        std::env::var_os("MLBENCH_PEERS_DIR").map(PathBuf::from),
        Some(PathBuf::from("benches/peers")),
        Some(built_from),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
        .ok_or_else(|| {
            format!(
                "benches/peers/{name} not found: run from the repository or set MLBENCH_PEERS_DIR"
            )
        })
}

/// The run times of mlbench's own CPU f32 row of the peer row `key`'s task and config.
fn mlbench_cpu_f32(rows: &[Record], key: &RowKey) -> Option<Stats> {
    rows.iter()
        .find(|r| {
            r.implementation == "mlbench"
                && r.status == Status::Ok
                && r.key.task == key.task
                && r.key.device == "cpu"
                && r.key.dtype == "f32"
                && r.key.config == key.config
        })
        .and_then(|r| r.run_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(model: &str, device: &str, config: &str) -> RowKey {
        RowKey {
            task: "tts".into(),
            model: model.into(),
            device: device.into(),
            dtype: "f32".into(),
            config: config.into(),
        }
    }

    fn stats(median: f64) -> Stats {
        Stats::from_samples(&[median]).unwrap()
    }

    #[test]
    fn peer_rows_carry_the_ratio_to_mlbench_cpu_f32_of_the_same_config() {
        let ours = key("voice", "cpu", "2 sentences");
        let rows = vec![
            Record::timed(key("voice", "cuda:0", "2 sentences"), 0, stats(0.1)),
            Record::timed(key("voice", "cpu", "1 sentence"), 0, stats(9.0)),
            Record::timed(ours.clone(), 0, stats(0.6)),
        ];
        let peer = PIPER.timed(PIPER.key(&ours), "ort".into(), 1, &[0.2, 0.3, 0.4], &rows);
        assert_eq!(peer.key.model, "voice (piper-onnxruntime)");
        assert_eq!(peer.implementation, "ort");
        assert!((peer.metrics["mlbench_over_peer"] - 2.0).abs() < 1e-12);
        assert!((peer.metrics["mlbench_over_peer_best"] - 3.0).abs() < 1e-12);
        assert_eq!(
            peer.notes,
            ["mlbench cpu f32 time ÷ this = 2.00 (medians), 3.00 (best runs)"]
        );

        let alone = PIPER.timed(
            PIPER.key(&key("v", "cpu", "other")),
            "ort".into(),
            0,
            &[1.0],
            &rows,
        );
        assert!(alone.metrics.is_empty());
        let none = PIPER.timed(PIPER.key(&ours), "ort".into(), 0, &[], &rows);
        assert!(matches!(none.status, Status::Skipped { .. }));
    }

    #[test]
    fn a_missing_venv_is_a_reason_not_an_error() {
        let err = Venv::Torch
            .python_in(Some("/nonexistent/mlbench-venv".into()))
            .unwrap_err();
        assert!(err.contains("setup-transformers.sh"), "{err}");
        assert!(err.contains("/nonexistent/mlbench-venv"), "{err}");
    }
}
