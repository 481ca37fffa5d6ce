//! Text-to-speech on Candle: VITS voices, starting with Piper voices read straight from
//! their `.onnx` files (no onnxruntime).
//!
//! The pipeline: text → sentences of IPA phonemes ([`phonemize`], the `espeak-ng` program) →
//! the voice's phoneme ids → VITS ([`vits`]: text encoder, stochastic duration predictor,
//! coupling flow, HiFi-GAN) → 16-bit WAV ([`voice::write_wav`]). Weights come from the ONNX
//! initializers ([`onnx`]), named back to the VITS parameters they were exported from.
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

#![deny(missing_docs)]

pub mod error;
pub mod onnx;
pub mod phonemize;
pub mod vits;
pub mod voice;

pub use error::{Result, TtsError};
pub use voice::{PiperVoice, Speech, SynthesisParams};
