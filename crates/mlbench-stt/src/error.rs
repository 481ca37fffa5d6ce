//! Errors of the speech-to-text crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading audio or a Whisper model, or transcribing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SttError {
    /// The audio file could not be read or decoded.
    #[error("{path}: {message}")]
    Audio {
        /// The audio file.
        path: PathBuf,
        /// What is wrong with it, in one line.
        message: String,
    },
    /// The model files are missing or malformed.
    #[error("{path}: {message}")]
    Model {
        /// The model file or directory.
        path: PathBuf,
        /// What is wrong with it, in one line.
        message: String,
    },
    /// A transcription option is invalid (unknown language, task not supported by the model...).
    #[error("{0}")]
    InvalidOption(String),
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A shared mlbench-core error (device, model source).
    #[error(transparent)]
    Core(#[from] mlbench_core::Error),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = SttError> = std::result::Result<T, E>;

impl SttError {
    /// An [`SttError::Audio`] for `path`.
    pub fn audio(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Audio {
            path: path.into(),
            message: message.into(),
        }
    }

    /// An [`SttError::Model`] for `path`.
    pub fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Model {
            path: path.into(),
            message: message.into(),
        }
    }
}
