//! Whisper speech-to-text on Candle.
//!
//! The pipeline follows whisper.cpp's stages, each a public function or type:
//! audio file → 16 kHz mono PCM ([`audio`]) → log-mel spectrogram ([`mel`]) → encoder →
//! decoder with KV cache ([`model`]) → segments with timestamps ([`transcribe`]).
//! Weights load from Hugging Face transformers checkpoints, candle GGUF files, or
//! CTranslate2 (faster-whisper) directories ([`ct2`]); [`load`] picks the format from what
//! the model source holds.
//!
//! ```no_run
//! use mlbench_core::{progress::Progress, source::{ModelFiles, ModelSource}};
//! use mlbench_stt::transcribe::TranscribeParams;
//!
//! let source = ModelSource::Dir("whisper-tiny.en-ct2".into()); // or a hub repo, or a .gguf
//! let files = ModelFiles::new(source, Progress::none());
//! let whisper = mlbench_stt::load::load(&files, candle_core::DType::F32, &candle_core::Device::Cpu)?;
//! let samples = mlbench_stt::audio::load_audio("speech.flac".as_ref())?;
//! let transcript = whisper.transcribe(&samples, &TranscribeParams::default(), &Progress::none())?;
//! for s in &transcript.segments {
//!     println!("[{:.2} -> {:.2}] {}", s.start, s.end, s.text);
//! }
//! # Ok::<(), mlbench_stt::SttError>(())
//! ```

#![deny(missing_docs)]

pub mod audio;
pub mod ct2;
pub mod error;
pub mod load;
pub mod mel;
pub mod model;
pub mod output;
pub mod tokenizer;
pub mod transcribe;

pub use error::{Result, SttError};
