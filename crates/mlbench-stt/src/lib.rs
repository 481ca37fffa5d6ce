//! Whisper speech-to-text on Candle.
//!
//! The pipeline follows whisper.cpp's stages, each a public function or type:
//! audio file → 16 kHz mono PCM ([`audio`]) → log-mel spectrogram ([`mel`]) → encoder →
//! decoder with KV cache ([`model`]) → segments with timestamps ([`transcribe`]).
//! Weights load from Hugging Face transformers checkpoints, candle GGUF files, or
//! CTranslate2 (faster-whisper) directories ([`ct2`]).

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
