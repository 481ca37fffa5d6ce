//! The error type of this crate.

/// Errors from loading models and running them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The model files are not a checkpoint this crate can run.
    #[error("{0}")]
    Model(String),
    /// Invalid arguments or inputs.
    #[error("{0}")]
    Invalid(String),
    /// Device, model source or hub errors.
    #[error(transparent)]
    Core(#[from] mlbench_core::Error),
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// A LoRA file could not be read, or does not fit the model it is applied to.
    #[error("{0}")]
    Lora(String),
    /// A single-file checkpoint (or a safetensors file) could not be read or mapped.
    #[error("{0}")]
    Checkpoint(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
