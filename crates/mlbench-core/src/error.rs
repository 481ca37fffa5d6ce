//! The error type shared by mlbench crates.

use std::path::PathBuf;

/// Errors from device selection, model sources and the catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The `--device` or `--dtype` string could not be parsed.
    #[error("{0}")]
    InvalidSpec(String),
    /// A device was asked for that this build does not include.
    #[error("device '{device}' is not available: mlbench was built without the '{feature}' feature (rebuild with `--features {feature}`)")]
    NotCompiled {
        /// The device asked for.
        device: String,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// The device is compiled in but could not be opened.
    #[error("device '{device}' could not be opened: {message}")]
    DeviceUnavailable {
        /// The device asked for.
        device: String,
        /// Why, in one line.
        message: String,
    },
    /// `--model` names nothing we can find.
    #[error("{0}")]
    UnknownModel(String),
    /// A local model path lacks a file.
    #[error("{path}: missing {file}")]
    MissingFile {
        /// The model directory or file.
        path: PathBuf,
        /// The file that was expected.
        file: String,
    },
    /// The Hugging Face hub could not be reached.
    #[error("cannot reach the Hugging Face hub to fetch {repo} ({detail}); download the model elsewhere and pass its local folder or file with --model PATH, or set HF_HUB_OFFLINE=1 to use only the cache")]
    HubUnreachable {
        /// The repository.
        repo: String,
        /// The transport error, in one line.
        detail: String,
    },
    /// The hub answered, but the repository or file is not there (or needs a token).
    #[error("{repo}: {file} not found on the Hugging Face hub (HTTP {status}); check the repo id and revision, or set HF_TOKEN for gated models")]
    HubNotFound {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// The HTTP status.
        status: u16,
    },
    /// Offline mode is on and the file is not in the cache.
    #[error("{repo}: {file} is not in the Hugging Face cache ({cache}) and HF_HUB_OFFLINE is set; run once with network access, or pass a local path with --model PATH")]
    NotCached {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// The cache directory searched.
        cache: PathBuf,
    },
    /// Any other hub error.
    #[error("{repo}: {message}")]
    Hub {
        /// The repository.
        repo: String,
        /// What went wrong, in one line.
        message: String,
    },
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tensor operation failed.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
