//! The harness's error type.

/// Errors of measurement, statistics and reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Statistics were asked of no samples.
    #[error("no samples to summarise")]
    NoSamples,
    /// A sample was NaN or infinite.
    #[error("sample {index} is not a finite number ({value})")]
    NonFinite {
        /// Position of the sample.
        index: usize,
        /// The value.
        value: f64,
    },
    /// The measurement configuration cannot produce a sample.
    #[error("invalid measurement settings: {0}")]
    InvalidConfig(String),
    /// The measured workload failed.
    #[error("{0}")]
    Run(Box<dyn std::error::Error + Send + Sync>),
    /// A report is not valid JSON or not a report.
    #[error("not an mlbench bench report: {0}")]
    Json(#[from] serde_json::Error),
    /// A report has no or an unreadable `schema_version`.
    #[error("not an mlbench bench report: no schema_version field")]
    MissingSchemaVersion,
    /// A report was written by a newer, incompatible harness.
    #[error("report schema version {found} is newer than this mlbench understands ({supported}); update mlbench")]
    UnsupportedSchema {
        /// The report's version.
        found: u64,
        /// The newest version this build reads.
        supported: u64,
    },
}

/// `Result` with the harness's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
