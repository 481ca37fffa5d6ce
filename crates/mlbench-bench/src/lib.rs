//! The mlbench benchmarking harness: one way to measure, summarise and report every task.
//!
//! Each category (speech-to-text, text-to-speech and image classification today; diffusion and
//! text classification later) brings its own workload, but they all need the same things, and
//! numbers are only comparable when they are produced the same way:
//!
//! - [`measure`]: warm-up runs, then N timed runs or a time budget, on a monotonic clock, with
//!   optional named stages inside a run (encoder / decoder) and load time kept apart;
//! - [`stats`]: median, p10, p90, min, max, mean and standard deviation of the samples;
//! - [`memory`]: the process's peak resident memory;
//! - [`env`]: the machine and build a result came from (CPU, SIMD, threads, rustc, Candle, git);
//! - [`record`]: typed result rows with task-specific figures (real-time factor, items/s,
//!   GFLOP/s) and a free-form metrics map for what a later category needs;
//! - [`report`]: a versioned JSON report and its Markdown table;
//! - [`compare`]: old vs new reports matched row by row, as ratios.
//!
//! Like every mlbench library this crate never prints: it returns [`Error`]s and reports progress
//! through [`mlbench_core::progress::Progress`]; the `mlbench bench` command draws and prints.
//!
//! ```
//! use mlbench_bench::measure::{measure, MeasureConfig, Runs};
//! use mlbench_core::progress::Progress;
//!
//! let config = MeasureConfig { warmup: 1, runs: Runs::Count(3) };
//! let m = measure(&config, &Progress::none(), "sum", |probe| {
//!     probe.stage("work", || (0..1000u64).sum::<u64>());
//!     Ok::<(), std::io::Error>(())
//! })?;
//! assert_eq!(m.total.n, 3);
//! assert!(m.stages["work"].median <= m.total.max);
//! # Ok::<(), mlbench_bench::Error>(())
//! ```
#![deny(missing_docs)]

pub mod compare;
pub mod env;
pub mod error;
pub mod measure;
pub mod memory;
pub mod record;
pub mod report;
pub mod stats;

pub use error::{Error, Result};
