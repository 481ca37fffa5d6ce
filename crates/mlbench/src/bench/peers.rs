//! `--peers`: the implementations people use today, on the same weights and audio, in the same
//! run, so that mlbench's time can be read as a ratio of theirs.
//!
//! Peers are Python programs in `benches/peers/`, run with the venv that
//! `benches/stt_side_by_side.sh` creates from `benches/peers/requirements.txt`
//! (`$MLBENCH_PEER_VENV`, default `~/.cache/mlbench/peer-venv`). A peer that cannot run here —
//! no venv, no script, weights it cannot read, a crash — is a skipped row with the reason: the
//! peers are context for mlbench's numbers, never a reason for the bench itself to fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use mlbench_bench::env::Environment;
use mlbench_bench::record::{Figures, Record, RowKey, Status, SttFigures};
use mlbench_bench::stats::Stats;
use serde::Deserialize;

use super::stt::{Input, ModelChoice};
use crate::cli::BenchArgs;

const FASTER_WHISPER: &str = "faster_whisper_stt.py";

/// faster-whisper (CTranslate2, float32, greedy) transcribing `--audio` with `--model`'s
/// CTranslate2 weights, compared with mlbench's CPU f32 transcription row.
pub fn faster_whisper(
    args: &BenchArgs,
    model: &ModelChoice,
    input: &Input,
    mlbench_rows: &[Record],
) -> Record {
    let key = RowKey {
        task: "stt".into(),
        model: format!("{} (faster-whisper)", model.label()),
        device: "cpu".into(),
        dtype: "f32".into(),
        config: input.transcribe_label(),
    };
    match run_faster_whisper(args, model, input) {
        Ok(peer) => peer_record(key, peer, input, mlbench_rows),
        Err(reason) => {
            let mut r = Record::skipped(key, reason);
            r.implementation = "faster-whisper".into();
            r
        }
    }
}

/// What `faster_whisper_stt.py` prints.
#[derive(Debug, Deserialize)]
struct PeerOutput {
    version: String,
    ctranslate2_version: String,
    times_s: Vec<f64>,
}

/// Runs the peer, or says in one line why it cannot run.
fn run_faster_whisper(
    args: &BenchArgs,
    model: &ModelChoice,
    input: &Input,
) -> Result<PeerOutput, String> {
    let audio = args
        .audio
        .as_deref()
        .ok_or("needs --audio FILE: the peer transcribes real speech")?;
    let ct2 = model
        .ct2_dir()
        .ok_or("needs --model with CTranslate2 weights (a faster-whisper folder with model.bin)")?;
    let python = venv_python()?;
    let script = peer_script(FASTER_WHISPER)?;
    let threads = Environment::capture().threads;
    let out = Command::new(&python)
        .arg(&script)
        .arg("--model")
        .arg(&ct2)
        .args(["--compute-type", "float32", "--beam-size", "1"])
        .args(["--threads", &threads.to_string()])
        .args(["--runs", &args.runs.to_string()])
        .args(["--language", &input.language])
        .arg(audio)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        return Err(format!(
            "faster-whisper failed: {}",
            last.unwrap_or("no output")
        ));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("faster-whisper output unreadable: {e}"))
}

/// The peer venv's python (`$MLBENCH_PEER_VENV`, else `~/.cache/mlbench/peer-venv`).
fn venv_python() -> Result<PathBuf, String> {
    let venv = match std::env::var_os("MLBENCH_PEER_VENV") {
        Some(v) => PathBuf::from(v),
        None => {
            let home = std::env::var_os("HOME").ok_or("no peer venv: HOME is not set")?;
            Path::new(&home).join(".cache/mlbench/peer-venv")
        }
    };
    let python = venv.join("bin/python");
    if python.exists() {
        Ok(python)
    } else {
        Err(format!(
            "no peer venv at {}: run benches/stt_side_by_side.sh once to create it, or set MLBENCH_PEER_VENV",
            venv.display()
        ))
    }
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

fn peer_record(key: RowKey, peer: PeerOutput, input: &Input, mlbench_rows: &[Record]) -> Record {
    let stats = match Stats::from_samples(&peer.times_s) {
        Ok(s) => s,
        Err(e) => return Record::skipped(key, format!("faster-whisper gave no times: {e}")),
    };
    let config = key.config.clone();
    let mut record = Record::timed(key, 1, stats);
    record.implementation = format!(
        "faster-whisper {} (ctranslate2 {}, float32)",
        peer.version, peer.ctranslate2_version
    );
    if let Some(audio_s) = input.audio_s() {
        record.figures = Figures::Stt(SttFigures::new(audio_s, stats.median));
    }
    match mlbench_cpu_f32(mlbench_rows, &config) {
        Some(ours) => {
            let ratio = ours / stats.median;
            record.metrics.insert("mlbench_over_peer".into(), ratio);
            record
                .notes
                .push(format!("mlbench cpu f32 time ÷ this = {ratio:.2}"));
        }
        None => record
            .notes
            .push("no mlbench cpu f32 transcription row to compare with".into()),
    }
    record
}

/// The median of mlbench's own CPU f32 transcription of the same audio.
fn mlbench_cpu_f32(rows: &[Record], config: &str) -> Option<f64> {
    rows.iter()
        .find(|r| {
            r.implementation == "mlbench"
                && r.status == Status::Ok
                && r.key.device == "cpu"
                && r.key.dtype == "f32"
                && r.key.config == config
        })
        .and_then(Record::median_s)
}
