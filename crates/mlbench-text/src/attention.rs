//! Bidirectional self-attention over a right-padded batch.
//!
//! transformers masks padded *keys* only (`(b, 1, 1, t)` additive mask), so every row, padded
//! query rows included, attends to the first `len` keys of its sequence. Running the fused
//! kernel per sequence on keys `0..len` is the same computation without a mask, and skips the
//! padded keys instead of computing and discarding them.

use candle_core::{Result, Tensor, D};
use mlbench_core::kernels::attention::attention_merged;

/// `q`, `k`, `v` as (b, h, t, d) views; returns (b, t, h·d). `lengths[i]` is the number of
/// real tokens of sequence `i` (the rest is padding).
pub(crate) fn padded_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    lengths: &[usize],
    scale: f32,
) -> Result<Tensor> {
    let t = k.dim(2)?;
    if lengths.iter().all(|&l| l == t) {
        return attention_merged(q, k, v, scale, None);
    }
    let outs = lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let len = len.clamp(1, t);
            attention_merged(
                &q.narrow(0, i, 1)?,
                &k.narrow(0, i, 1)?.narrow(2, 0, len)?,
                &v.narrow(0, i, 1)?.narrow(2, 0, len)?,
                scale,
                None,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&outs, 0)
}

/// Self-attention over packed sequences: `qkv` (n, 3·h·d) holds the fused projections of the
/// real tokens of each sequence back to back (`lengths` of them); returns (n, h·d).
///
/// The linear layers run on the real tokens only, no padding; attention runs per sequence.
pub(crate) fn packed_attention(
    qkv: &Tensor,
    heads: usize,
    lengths: &[usize],
    scale: f32,
) -> Result<Tensor> {
    let mut outs = Vec::with_capacity(lengths.len());
    let mut offset = 0;
    for &len in lengths {
        let (q, k, v) = split_qkv(&qkv.narrow(0, offset, len)?.unsqueeze(0)?, heads)?;
        outs.push(attention_merged(&q, &k, &v, scale, None)?.squeeze(0)?);
        offset += len;
    }
    Tensor::cat(&outs, 0)
}

/// Packed rows (n, h) back into a right-padded batch (b, t, h), zeros in the padding.
pub(crate) fn unpack(x: &Tensor, lengths: &[usize], t: usize) -> Result<Tensor> {
    let h = x.dim(1)?;
    let mut parts = Vec::with_capacity(2 * lengths.len());
    let mut offset = 0;
    for &len in lengths {
        parts.push(x.narrow(0, offset, len)?);
        if len < t {
            parts.push(Tensor::zeros((t - len, h), x.dtype(), x.device())?);
        }
        offset += len;
    }
    Tensor::cat(&parts, 0)?.reshape((lengths.len(), t, h))
}

/// Attention with an additive mask `(b, 1, t, t)` (0 or −∞), for patterns the fused kernel does
/// not cover (sliding windows). Returns (b, t, h·d).
pub(crate) fn masked_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let scores = (q.contiguous()?.matmul(&k.contiguous()?.t()?)? * f64::from(scale))?;
    let scores = scores.broadcast_add(mask)?;
    let probs = mlbench_core::kernels::softmax::softmax_last_dim(&scores)?;
    probs
        .matmul(&v.contiguous()?)?
        .transpose(1, 2)?
        .reshape((b, t, h * d))
}

/// Splits a fused projection (b, t, 3·h·d) into q, k, v views (b, h, t, d) without copying.
pub(crate) fn split_qkv(qkv: &Tensor, heads: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, t, n) = qkv.dims3()?;
    let d = n / 3 / heads;
    let qkv = qkv.reshape((b, t, 3, heads, d))?;
    let part = |i: usize| qkv.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2);
    Ok((part(0)?, part(1)?, part(2)?))
}

/// Mean of `hidden` (b, t, h) over the positions where `mask` (b, t) is 1.
pub(crate) fn masked_mean(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
    let sum = hidden.broadcast_mul(&mask)?.sum(1)?;
    let count = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    sum.broadcast_div(&count)
}
