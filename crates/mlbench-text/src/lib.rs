//! Text classification, zero-shot classification and sentence embeddings on Candle.
#![deny(missing_docs)]

mod error;

pub use error::{Error, Result};
