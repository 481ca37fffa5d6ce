//! The error type of mlbench-tts.

use std::path::PathBuf;

/// Errors from loading a voice, phonemizing text and synthesizing speech.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TtsError {
    /// The voice file is not a readable ONNX model.
    #[error("{path}: not an ONNX model ({detail})")]
    NotOnnx {
        /// The file.
        path: PathBuf,
        /// What the protobuf reader said.
        detail: String,
    },
    /// The voice's config (`.onnx.json`) is missing or malformed.
    #[error("{path}: {detail}")]
    VoiceConfig {
        /// The config file (or the `.onnx` whose config is missing).
        path: PathBuf,
        /// What is wrong, in one line.
        detail: String,
    },
    /// The weights do not have the shape or names of a VITS model.
    #[error("unsupported voice weights: {0}")]
    Weights(String),
    /// The text gave nothing to say.
    #[error("{0}")]
    EmptyText(String),
    /// A speaker name or id the voice does not have.
    #[error("{0}")]
    UnknownSpeaker(String),
    /// Phonemization failed (the espeak-ng program is missing or failed).
    #[error("phonemizer: {0}")]
    Phonemizer(String),
    /// A parameter out of range.
    #[error("{0}")]
    InvalidParams(String),
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A model-source error (device, hub, missing file).
    #[error(transparent)]
    Core(#[from] mlbench_core::Error),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = TtsError> = std::result::Result<T, E>;
