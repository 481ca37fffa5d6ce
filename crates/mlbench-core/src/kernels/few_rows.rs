//! `x · wᵀ` for a few rows `x` (m, k) and a row-major weight `w` (n, k), on the CPU in f32.
//!
//! With a handful of rows (a decoder step: one row per beam; a short sentence: one row per
//! token) a linear layer is bound by reading its weight. Candle's gemm packs all of `w` on
//! every call, which costs more than the product itself; here `w`'s rows are streamed once,
//! split across threads by weight rows, and each is dotted with every row of `x`. Weights that
//! were trained and released in f16 (Whisper) usually survive a round trip through f16
//! exactly: then an f16 copy ([`exact_f16_copy`]) can be streamed instead (half the bytes,
//! identical results).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use mlbench_core::kernels::few_rows::few_rows_matmul_t;
//!
//! let x = Tensor::randn(0f32, 1.0, (3, 40), &Device::Cpu)?;
//! let w = Tensor::randn(0f32, 1.0, (7, 40), &Device::Cpu)?;
//! let y = few_rows_matmul_t(&x, &w, None)?;
//! assert_eq!(y.dims(), &[3, 7]);
//! # Ok::<(), candle_core::Error>(())
//! ```

use candle_core::{DType, Tensor};

/// Up to this many rows, `x · wᵀ` is faster as [`few_rows_matmul_t`] than as Candle's gemm,
/// which packs all of `w` on every call.
pub const FEW_ROWS: usize = 16;

/// Whether `t` is an f32 tensor on the CPU, the only case [`few_rows_matmul_t`] handles.
pub fn is_cpu_f32(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// `w` (f32, CPU) in f16 if every value survives the round trip exactly, else `None`.
/// Whisper was trained and released in f16, so its f32 checkpoints are usually exact.
pub fn exact_f16_copy(w: &Tensor) -> Option<Vec<half::f16>> {
    let values: Vec<f32> = w.flatten_all().ok()?.to_vec1().ok()?;
    let half: Vec<half::f16> = values.iter().map(|&v| half::f16::from_f32(v)).collect();
    half.iter()
        .zip(&values)
        .all(|(h, &v)| h.to_f32() == v)
        .then_some(half)
}

/// `x · wᵀ` for a few rows `x` (m, k) and a row-major `w` (n, k), both f32 on the CPU,
/// streaming `w`'s rows once: from `w_f16` (an exact f16 copy of `w` from [`exact_f16_copy`],
/// half the bytes) when given. Returns (m, n). Meant for m ≤ [`FEW_ROWS`]; correct for any m.
pub fn few_rows_matmul_t(
    x: &Tensor,
    w: &Tensor,
    w_f16: Option<&[half::f16]>,
) -> candle_core::Result<Tensor> {
    let (m, k) = x.dims2()?;
    let (n, wk) = w.dims2()?;
    if wk != k || !is_cpu_f32(x) || !is_cpu_f32(w) {
        candle_core::bail!(
            "few_rows_matmul_t needs CPU f32 tensors (m, k) and (n, k), got {:?} {:?} and {:?} {:?}",
            x.dims(),
            x.dtype(),
            w.dims(),
            w.dtype()
        )
    }
    if w_f16.is_some_and(|h| h.len() != n * k) {
        candle_core::bail!("few_rows_matmul_t: the f16 copy does not match the weight's shape")
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let out_t = match w_f16 {
        Some(h) => stream_rows(n, k, &xs, |r, buf| {
            half::slice::HalfFloatSliceExt::convert_to_f32_slice(&h[r * k..(r + 1) * k], buf)
        }),
        None => {
            let w = w.contiguous()?;
            let (storage, layout) = w.storage_and_layout();
            let candle_core::Storage::Cpu(cpu) = &*storage else {
                candle_core::bail!("few_rows_matmul_t needs a CPU tensor")
            };
            let all = &cpu.as_slice::<f32>()?[layout.start_offset()..];
            stream_rows(n, k, &xs, |r, buf| {
                buf.copy_from_slice(&all[r * k..(r + 1) * k])
            })
        }
    };
    let mut out = vec![0f32; m * n];
    for (r, o) in out_t.chunks_exact(m.max(1)).enumerate() {
        for (j, &v) in o.iter().enumerate() {
            out[j * n + r] = v;
        }
    }
    Tensor::from_vec(out, (m, n), x.device())
}

/// Dot products of every weight row (fetched into a buffer by `row`) with each of the rows
/// of `xs` (m × d); returns them weight-row-major (rows × m).
fn stream_rows(
    rows: usize,
    d: usize,
    xs: &[f32],
    row: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use rayon::prelude::*;
    const ROWS: usize = 512;
    let m = xs.len() / d.max(1);
    let mut out_t = vec![0f32; rows * m];
    if m == 0 {
        return out_t;
    }
    out_t
        .par_chunks_mut(ROWS * m)
        .enumerate()
        .for_each(|(chunk, out)| {
            let mut buf = vec![0f32; d];
            for (i, o) in out.chunks_exact_mut(m).enumerate() {
                row(chunk * ROWS + i, &mut buf);
                dots_with_rows(&buf, xs, o);
            }
        });
    out_t
}

/// `out[j] = row · xs[j]` for every row `j` of `xs` (a few rows of `row.len()` floats).
///
/// Each 16-float chunk of `row` is loaded once and multiplied into one 16-lane accumulator per
/// row of `xs` (two ymm registers each with AVX2), so the rows' FMA chains interleave; the
/// number of rows is a const generic so the accumulators stay in registers.
fn dots_with_rows(row: &[f32], xs: &[f32], out: &mut [f32]) {
    fn kernel<const M: usize>(row: &[f32], xs: &[f32], out: &mut [f32]) {
        let d = row.len();
        let mut acc = [[0f32; 16]; M];
        let full = d - d % 16;
        for c in (0..full).step_by(16) {
            let e = &row[c..c + 16];
            for (j, a) in acc.iter_mut().enumerate() {
                let x = &xs[j * d + c..j * d + c + 16];
                for l in 0..16 {
                    a[l] = e[l].mul_add(x[l], a[l]);
                }
            }
        }
        for (j, a) in acc.iter().enumerate() {
            let tail: f32 = (full..d).map(|c| row[c] * xs[j * d + c]).sum();
            let h: [f32; 8] = std::array::from_fn(|l| a[l] + a[l + 8]);
            let q = [h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]];
            out[j] = (q[0] + q[2]) + (q[1] + q[3]) + tail;
        }
    }
    match out.len() {
        1 => out[0] = dot(row, xs),
        2 => kernel::<2>(row, xs, out),
        3 => kernel::<3>(row, xs, out),
        4 => kernel::<4>(row, xs, out),
        5 => kernel::<5>(row, xs, out),
        6 => kernel::<6>(row, xs, out),
        7 => kernel::<7>(row, xs, out),
        8 => kernel::<8>(row, xs, out),
        _ => {
            // More rows than accumulators fit in registers: groups of eight.
            let d = row.len();
            for (xs, out) in xs.chunks(8 * d).zip(out.chunks_mut(8)) {
                dots_with_rows(row, xs, out);
            }
        }
    }
}

/// A dot product written so that LLVM keeps four independent 8-lane accumulators: with AVX2
/// FMA that is four ymm registers, enough to hide the FMA latency.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    let (ca, cb) = (a.chunks_exact(32), b.chunks_exact(32));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..32 {
            acc[k] = x[k].mul_add(y[k], acc[k]);
        }
    }
    let h: [f32; 16] = std::array::from_fn(|l| acc[l] + acc[l + 16]);
    let h: [f32; 8] = std::array::from_fn(|l| h[l] + h[l + 8]);
    (h[0] + h[4]) + (h[1] + h[5]) + ((h[2] + h[6]) + (h[3] + h[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn check(x: &Tensor, w: &Tensor, half: Option<&[half::f16]>) {
        let a = few_rows_matmul_t(x, w, half).unwrap();
        let b = x.matmul(&w.t().unwrap()).unwrap();
        assert_eq!(a.dims(), b.dims());
        let diff: f32 = (&a - &b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        let scale: f32 = b
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        let (m, k) = x.dims2().unwrap();
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "m {m} k {k} n {}: {diff} (scale {scale})",
            w.dim(0).unwrap()
        );
    }

    #[test]
    fn matches_matmul_for_every_small_row_count() {
        for m in 1..=FEW_ROWS {
            for (k, n) in [(40, 701), (17, 3), (391, 129)] {
                let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
                let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu).unwrap();
                check(&x, &w, None);
                let w16 = w
                    .to_dtype(DType::F16)
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap();
                let half = exact_f16_copy(&w16).expect("f16 values are exact");
                check(&x, &w16, Some(&half));
            }
        }
    }

    #[test]
    fn f16_copy_only_when_exact() {
        let w = Tensor::new(&[[0.1f32, 0.5], [1.0, -2.0]], &Device::Cpu).unwrap();
        assert!(exact_f16_copy(&w).is_none());
        let w = Tensor::new(&[[0.25f32, 0.5], [1.0, -2.0]], &Device::Cpu).unwrap();
        assert_eq!(exact_f16_copy(&w).map(|h| h.len()), Some(4));
    }

    #[test]
    fn rejects_mismatched_inputs() {
        let x = Tensor::zeros((2, 5), DType::F32, &Device::Cpu).unwrap();
        let w = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(few_rows_matmul_t(&x, &w, None).is_err());
        let w = Tensor::zeros((3, 5), DType::F16, &Device::Cpu).unwrap();
        assert!(few_rows_matmul_t(&x, &w, None).is_err());
    }
}
