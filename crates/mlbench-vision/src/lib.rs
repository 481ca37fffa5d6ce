//! Image classification on Candle, with each model's own preprocessing and labels.
//!
//! - [`image`]: read any PNG/JPEG/GIF/BMP/WebP/TIFF (EXIF orientation applied) and preprocess
//!   it (resize, centre crop, normalisation) as the model expects.
//! - [`efficientnet_lite`]: EfficientNet-Lite in the layout of its published PyTorch weights.
//! - [`resnet`], [`vit`], [`convnext`], [`efficientnet`], [`dinov2`], [`clip`]: transformers'
//!   `*ForImageClassification` checkpoints,
//!   with [`hf`] reading their `config.json` (`id2label`) and `preprocessor_config.json`.
//! - [`mobilenetv4`]: timm's MobileNetV4 (convolutional variants), with timm's `config.json`.
//! - [`classify`]: [`ImageClassifier`] loads a checkpoint, batches images and returns the top-k
//!   labels with softmax scores, like Hugging Face's `image-classification` pipeline.
//!
//! Convolutions run on mlbench-core's CPU kernels (`kernels::conv`). Library code never prints.
//!
//! ```
//! use mlbench_vision::image::Preprocess;
//! let p = Preprocess::efficientnet_lite(224);
//! let photo = image::DynamicImage::new_rgb8(640, 480);
//! let x = p.apply(&photo, &candle_core::Device::Cpu).unwrap();
//! assert_eq!(x.dims(), [3, 224, 224]);
//! assert_eq!(mlbench_vision::classify::imagenet_labels()[285], "Egyptian cat");
//! ```
#![deny(missing_docs)]

pub mod classify;
pub mod clip;
pub mod convnext;
pub mod dinov2;
pub mod efficientnet;
pub mod efficientnet_lite;
mod error;
pub mod hf;
pub mod image;
pub mod mobilenetv4;
pub mod resnet;
pub mod vit;
mod weights;

pub use classify::{ClassifyParams, ImageClassifier, Prediction};
pub use error::{Error, Result};
