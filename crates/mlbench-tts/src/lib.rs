//! Text-to-speech on Candle: VITS voices — Piper voices read straight from their `.onnx`
//! files (no onnxruntime) and MMS-TTS / transformers `VitsModel` checkpoints.
//!
//! The pipeline: text → sentences of IPA phonemes ([`phonemize`], the `espeak-ng` program) or,
//! for MMS voices, of characters ([`tokenizer`]) → the voice's ids → VITS ([`vits`]: text
//! encoder, stochastic duration predictor, coupling flow, HiFi-GAN with ResBlock1 or 2) →
//! 16-bit WAV ([`voice::write_wav`]). Piper weights come from the ONNX initializers
//! ([`onnx`]), MMS weights from `model.safetensors` ([`hf`], weight-norm folded), both named as
//! the VITS parameters the model files use. [`Voice::load`] picks the kind from the files.
//!
//! ```no_run
//! use mlbench_tts::voice::{PiperVoice, SynthesisParams};
//!
//! let voice = PiperVoice::load_onnx(
//!     "en_US-joe-medium.onnx".as_ref(),
//!     &candle_core::Device::Cpu,
//!     candle_core::DType::F32,
//! )?;
//! let speech = voice.synthesize("Hello there. How are you?", &SynthesisParams::default())?;
//! let file = std::fs::File::create("hello.wav").unwrap();
//! mlbench_tts::voice::write_wav(file, &speech.samples, speech.sample_rate).unwrap();
//! # Ok::<(), mlbench_tts::TtsError>(())
//! ```
//!
//! An MMS-TTS checkpoint folder (`config.json`, `model.safetensors`, `vocab.json`,
//! `tokenizer_config.json`, e.g. a download of `facebook/mms-tts-eng`; here the tiny random
//! test checkpoint):
//!
//! ```
//! use mlbench_tts::{MmsVoice, SynthesisParams};
//!
//! # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/tts-tiny-mms/single");
//! let voice = MmsVoice::load_dir(
//!     dir.as_ref(), // e.g. "mms-tts-eng"
//!     &candle_core::Device::Cpu,
//!     candle_core::DType::F32,
//! )?;
//! let speech = voice.synthesize("Hello there.", &SynthesisParams::default())?;
//! assert_eq!(speech.sample_rate, 16_000);
//! # Ok::<(), mlbench_tts::TtsError>(())
//! ```

#![deny(missing_docs)]

pub mod error;
pub mod hf;
pub mod mms;
pub mod onnx;
pub mod phonemize;
pub mod tokenizer;
pub mod vits;
pub mod voice;

pub use error::{Result, TtsError};
pub use mms::MmsVoice;
pub use voice::{PiperVoice, Speech, SynthesisParams, Voice};
