//! Criterion benchmarks of Whisper's audio front end: resampling to 16 kHz (rubato sinc, as
//! `mlbench stt` does for every non-16 kHz file) and the log-mel spectrogram of a 30 s window.
//!
//! ```text
//! cargo bench -p mlbench-stt --bench audio
//! ```
//!
//! Throughput is counted in input samples (GB/s of f32 input in the closing table).

use criterion::{BenchmarkId, Throughput};
use mlbench_stt::audio::resample;
use mlbench_stt::mel::LogMel;

#[path = "common/mod.rs"]
mod common;
use common::{criterion_dir, criterion_median};

/// A deterministic test signal: a chirp plus a tone.
fn signal(rate: u32, seconds: f32) -> Vec<f32> {
    let n = (rate as f32 * seconds) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / rate as f32;
            0.3 * (2.0 * std::f32::consts::PI * (100.0 + 200.0 * t) * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
        })
        .collect()
}

fn main() {
    let filter = common::filter();
    let mut c = common::criterion();
    let mut rows = Vec::new();
    for (name, rate, seconds) in [
        ("resample 44.1 kHz -> 16 kHz, 30 s", 44_100u32, 30.0f32),
        ("resample 48 kHz -> 16 kHz, 30 s", 48_000, 30.0),
    ] {
        if !name.contains(&filter) {
            continue;
        }
        let x = signal(rate, seconds);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(4 * x.len() as u64));
        group.bench_function(BenchmarkId::from_parameter("rubato"), |b| {
            b.iter(|| resample(&x, rate, 16_000).unwrap())
        });
        group.finish();
        rows.push((name, "rubato", 4 * x.len()));
    }
    for n_mels in [80, 128] {
        let name = format!("log-mel {n_mels} bins, 30 s window");
        if !name.contains(&filter) {
            continue;
        }
        let x = signal(16_000, 30.0);
        let mel = LogMel::new(n_mels);
        let mut group = c.benchmark_group(&name);
        group.throughput(Throughput::Bytes(4 * x.len() as u64));
        group.bench_function(BenchmarkId::from_parameter("mlbench"), |b| {
            b.iter(|| mel.compute(&x, 0))
        });
        group.finish();
        rows.push((Box::leak(name.into_boxed_str()), "mlbench", 4 * x.len()));
    }
    println!("\n| stage | implementation | ms | input GB/s |");
    println!("|---|---|---|---|");
    for (name, id, bytes) in rows {
        if let Some(t) = criterion_median(&criterion_dir(), name, id) {
            println!(
                "| {name} | {id} | {:.3} | {:.2} |",
                t * 1e3,
                bytes as f64 / t / 1e9
            );
        }
    }
}
