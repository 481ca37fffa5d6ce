//! Softmax over the last dimension with a vectorised CPU path for f32.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::math;

/// Softmax over the last dimension: `y[.., j] = e^(x[.., j] - max) / sum_j e^(x[.., j] - max)`.
///
/// On CPU with f32 this runs a vectorised row kernel (polynomial `exp`, relative error
/// below 3e-7) in parallel over rows; non-contiguous inputs are made contiguous first. Every
/// other device and dtype goes to [`candle_nn::ops::softmax_last_dim`].
///
/// A row whose elements are all `-inf` gives NaNs, as in Candle.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.rank() == 0 {
        return candle_nn::ops::softmax_last_dim(x);
    }
    x.contiguous()?.apply_op1_no_bwd(&SoftmaxLastDim)
}

/// Rows per rayon task: enough work to amortise the task, few enough rows to balance.
const MIN_ELEMS_PER_TASK: usize = 16 * 1024;

struct SoftmaxLastDim;

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "mlbench-softmax-last-dim"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{}: expected f32 storage", self.name())
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{}: input has to be contiguous", self.name())
        };
        let src = &data[start..end];
        let n = *layout.dims().last().unwrap_or(&1);
        // Zeroed allocation: the pages are faulted in by the parallel tasks that write them.
        let mut dst = vec![0f32; src.len()];
        let rows = |dst: &mut [f32], src: &[f32]| {
            for (d, s) in dst.chunks_exact_mut(n).zip(src.chunks_exact(n)) {
                let m = math::max(s);
                let sum = math::exp_sub_sum_into(s, d, m);
                math::scale(d, 1.0 / sum);
            }
        };
        match MIN_ELEMS_PER_TASK.checked_div(n) {
            // Small inputs on the calling thread: handing them to the pool costs more.
            Some(_) if src.len() <= MIN_ELEMS_PER_TASK => rows(&mut dst, src),
            Some(per_task) => {
                let chunk = per_task.max(1) * n;
                dst.par_chunks_mut(chunk)
                    .zip(src.par_chunks(chunk))
                    .for_each(|(dst, src)| rows(dst, src));
            }
            None => {}
        }
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}
