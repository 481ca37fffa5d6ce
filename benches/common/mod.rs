//! Helpers shared by the criterion benches of `benches/` (included with `#[path]`): the CPU's
//! measured f32 peak, criterion's medians read back for the closing summary tables, and the
//! binary's allocator.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::Criterion;
use serde_json::Value;

// As in the `mlbench` binary: mimalloc keeps freed pages, where glibc returns large buffers to
// the kernel and every call pays the page faults again (milliseconds per call on a VM).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where criterion writes its reports: `target/criterion` of the workspace.
pub fn criterion_dir() -> PathBuf {
    workspace().join("target/criterion")
}

/// The project's criterion settings: 10 samples in about 2 s after 0.5 s of warm-up (the
/// kernels here run for micro- to milliseconds; a 2-core machine cannot afford criterion's
/// defaults over dozens of shapes), overridable from the command line.
pub fn criterion() -> Criterion {
    Criterion::default()
        .output_directory(&criterion_dir())
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// The filter given as `cargo bench -- FILTER` (the first free argument, as criterion reads it).
pub fn filter() -> String {
    std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default()
}

/// f32 FMA peak of this CPU on `threads` threads, in GFLOP/s: independent 256-bit FMA chains,
/// as the gemm micro-kernels issue them (scalar `mul_add` chains where AVX2/FMA are missing).
pub fn measured_peak(threads: usize) -> f64 {
    let (flops_per_iter, run): (usize, fn() -> f32) = fma_chains();
    let best = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| std::hint::black_box(run()));
                }
            });
            t.elapsed()
        })
        .min()
        .unwrap();
    (threads * flops_per_iter * CHAIN_ITERS) as f64 / best.as_secs_f64() / 1e9
}

/// Loop iterations of one FMA-chain run (about 0.1 s).
const CHAIN_ITERS: usize = 20_000_000;

#[cfg(target_arch = "x86_64")]
fn fma_chains() -> (usize, fn() -> f32) {
    use std::arch::x86_64::*;
    #[target_feature(enable = "avx2,fma")]
    fn chains() -> f32 {
        // 10 independent chains of 8 lanes hide the FMA latency (4 cycles, 2 ports).
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(1.0); 10];
        for _ in 0..CHAIN_ITERS {
            for c in acc.iter_mut() {
                *c = _mm256_fmadd_ps(*c, a, b);
            }
        }
        let mut out = [0f32; 8];
        let sum = acc
            .iter()
            .fold(_mm256_setzero_ps(), |s, c| _mm256_add_ps(s, *c));
        // SAFETY: `out` holds 8 f32, what one unaligned 256-bit store writes.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
        out.iter().sum()
    }
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features `chains` is compiled for (checked just above).
        (10 * 8 * 2, || unsafe { chains() })
    } else {
        (10 * 2, scalar_chains)
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn fma_chains() -> (usize, fn() -> f32) {
    (10 * 2, scalar_chains)
}

fn scalar_chains() -> f32 {
    let mut acc = [1.0f32; 10];
    for _ in 0..CHAIN_ITERS {
        for c in acc.iter_mut() {
            *c = c.mul_add(0.999_999, 1e-7);
        }
    }
    acc.iter().sum()
}

/// criterion's median for one benchmark, from its JSON estimates.
pub fn criterion_median(dir: &Path, group: &str, id: &str) -> Option<f64> {
    // criterion's `make_filename_safe` (names here are shorter than its 64-byte limit).
    let clean = |s: &str| {
        s.replace(
            &['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'][..],
            "_",
        )
    };
    let path = dir
        .join(clean(group))
        .join(clean(id))
        .join("new/estimates.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64().map(|ns| ns * 1e-9)
}
