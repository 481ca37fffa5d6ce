//! Stable Diffusion text-to-image and image-to-image with LoRA loading, on Candle.
#![deny(missing_docs)]

mod error;

pub use error::{Error, Result};
