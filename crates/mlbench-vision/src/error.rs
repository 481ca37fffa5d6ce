//! The error type of mlbench-vision.

use std::path::PathBuf;

/// Errors from loading images and models and from classifying.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or decoded as an image.
    #[error("{path}: {message}")]
    Image {
        /// The file.
        path: PathBuf,
        /// What went wrong, in one line.
        message: String,
    },
    /// The model files are not a checkpoint this crate can run.
    #[error("{0}")]
    Model(String),
    /// Invalid arguments (top-k of 0, an empty batch).
    #[error("{0}")]
    Invalid(String),
    /// Device, model source or hub errors.
    #[error(transparent)]
    Core(#[from] mlbench_core::Error),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
