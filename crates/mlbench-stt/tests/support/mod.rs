//! What the integration tests share: where the real test data lives, and tensor comparison.
//! (Each test binary uses a part of it.)
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::Tensor;

/// The directory `scripts/fetch-test-weights.sh` fills: `MLBENCH_TEST_WEIGHTS`, else
/// `~/.cache/mlbench/test-weights`.
pub fn weights_dir() -> PathBuf {
    match std::env::var_os("MLBENCH_TEST_WEIGHTS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/mlbench/test-weights")
        }
    }
}

/// A real model directory; fails the test (never skips) when it has not been fetched.
pub fn real_model(name: &str) -> PathBuf {
    let dir = weights_dir().join(name);
    assert!(
        dir.join(".complete").is_file() && dir.join("model.bin").is_file(),
        "{} is missing: run scripts/fetch-test-weights.sh (or set MLBENCH_TEST_WEIGHTS to the \
         directory it filled)",
        dir.display()
    );
    dir
}

/// Debian pocketsphinx-testdata's LibriVox clips (16 kHz mono) and their `transcription`.
pub const LIBRIVOX: &str = "/usr/share/pocketsphinx/test/data/librivox";

/// The LibriVox clips, sorted by name; fails when the Debian package is missing.
pub fn librivox_clips() -> Vec<PathBuf> {
    let mut clips: Vec<PathBuf> = std::fs::read_dir(LIBRIVOX)
        .unwrap_or_else(|_| panic!("{LIBRIVOX} missing: install Debian's pocketsphinx-testdata"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    clips.sort();
    clips
}

/// One LibriVox clip by its id (`sense_and_sensibility_01_austen_64kb-0880`).
pub fn librivox_clip(id: &str) -> PathBuf {
    Path::new(LIBRIVOX).join(format!("{id}.wav"))
}

/// Largest absolute difference between two tensors of the same shape, in f32.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.to_dtype(candle_core::DType::F32).unwrap();
    let b = b.to_dtype(candle_core::DType::F32).unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
