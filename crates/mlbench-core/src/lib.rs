//! Shared foundation of mlbench.
#![deny(missing_docs)]

/// Errors shared by all mlbench crates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Placeholder.
    #[error("{0}")]
    Other(String),
}
