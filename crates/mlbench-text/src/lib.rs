//! Text classification, zero-shot classification and sentence embeddings on Candle.
//!
//! - [`classify`]: [`TextClassifier`] loads a transformers `*ForSequenceClassification`
//!   checkpoint ([`bert`], [`roberta`] / XLM-R, [`distilbert`], [`deberta_v2`], [`modernbert`]),
//!   tokenizes with its `tokenizer.json` into padded batches, and returns the top-k labels with
//!   softmax, sigmoid or raw scores, like Hugging Face's `text-classification` pipeline.
//! - [`embed`]: [`SentenceEmbedder`] runs a sentence-transformers model (pooling and
//!   normalisation from its `modules.json` and `1_Pooling/config.json`); [`embed::to_npy`]
//!   writes the vectors as a NumPy array.
//! - [`zero_shot`]: ranks candidate labels by the cosine between the text's embedding and a
//!   hypothesis built from each label.
//! - [`tokenize`]: batches, attention masks and truncation at the model's maximum length,
//!   reported as [`tokenize::Truncation`]s for the caller to show.
//!
//! Library code never prints.
//!
//! ```
//! use mlbench_text::classify::{ClassifyParams, ScoreFunction};
//! let p = ClassifyParams::default();
//! assert_eq!(p.top_k, 1);
//! // Multi-label checkpoints get a sigmoid per label, single-label ones a softmax.
//! let f = ScoreFunction::for_problem(Some("multi_label_classification"), 3);
//! assert_eq!(f, ScoreFunction::Sigmoid);
//! let scores = ScoreFunction::Softmax.apply(&[0.0, 0.0]);
//! assert_eq!(scores, vec![0.5, 0.5]);
//! let npy = mlbench_text::embed::to_npy(&[vec![0.5, -0.5]]).unwrap();
//! assert!(npy.starts_with(b"\x93NUMPY"));
//! ```
#![deny(missing_docs)]

pub mod activation;
mod attention;
pub mod bert;
pub mod classify;
pub mod deberta_v2;
pub mod distilbert;
pub mod embed;
mod error;
pub mod model;
pub mod modernbert;
mod nn;
mod ops;
pub mod roberta;
pub mod tokenize;
pub mod zero_shot;

pub use classify::{ClassifyParams, Prediction, ScoreFunction, TextClassifier};
pub use embed::{EmbedParams, SentenceEmbedder};
pub use error::{Error, Result};
pub use zero_shot::ZeroShotParams;
