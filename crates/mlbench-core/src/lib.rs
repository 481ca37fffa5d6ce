//! Shared foundation of mlbench: what every category crate needs and none should re-write.
//!
//! - [`device`]: `--device auto|cpu|cuda[:N]|metal` and `--dtype f32|f16|bf16` turned into
//!   Candle devices and dtypes, with a clear error when a backend was not compiled in.
//! - [`source`]: `--model` as a Hugging Face repo id (`owner/name[@revision]`, fetched with
//!   hf-hub into the standard cache), a catalog id, a local directory or a local file.
//! - [`catalog`]: the model catalog in `models/catalog.json` (defaults and alternatives per task).
//! - [`progress`]: the callback type through which libraries report progress; the CLI draws bars.
//! - [`timing`]: per-stage timings that pipelines fill and the bench harness reads.
//! - [`kernels`]: fused CPU kernels (attention, softmax) with Candle fallbacks.
//!
//! Library crates never print: they return [`Error`]s and report through [`progress::Progress`].
//!
//! ```
//! use mlbench_core::device::{DeviceSpec, DTypeSpec};
//! let spec: DeviceSpec = "cpu".parse().unwrap();
//! let device = spec.select().unwrap();
//! assert!(device.is_cpu());
//! assert_eq!("bf16".parse::<DTypeSpec>().unwrap().dtype(), candle_core::DType::BF16);
//! ```
#![deny(missing_docs)]

pub mod catalog;
pub mod device;
pub mod error;
pub mod kernels;
pub mod progress;
pub mod source;
pub mod timing;

pub use error::{Error, Result};
