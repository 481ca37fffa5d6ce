//! Fused CPU kernels for the hot spots of transformer inference, with Candle fallbacks.
//!
//! - [`attention`]: scaled-dot-product attention (encoder self-attention, decoder self- and
//!   cross-attention with an optional causal offset) without materialising the score tensor.
//! - [`softmax`]: softmax over the last dimension with a vectorised `exp`.
//! - [`few_rows`]: `x · wᵀ` for a few rows of `x` (short decoder steps, short sentences),
//!   streaming the weight once instead of packing it for gemm.
//! - [`conv`]: conv1d/conv2d/depthwise/transposed convolution layers (im2col + gemm, direct
//!   depthwise, gemm + col2im) with weights prepared once at load.
//!
//! Every entry point takes and returns Candle tensors: on CPU with f32 it runs the fused
//! kernel, on every other device and dtype the plain Candle composition, with the same results
//! up to rounding.

pub mod attention;
pub mod conv;
pub mod few_rows;
mod math;
mod shared;
pub mod softmax;
