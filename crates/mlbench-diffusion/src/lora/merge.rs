//! A `VarBuilder` backend that adds LoRA deltas to base tensors as they are read:
//! `W' = W + Σ scale · alpha/rank · up·down`, in f32 on the CPU, reshaped to `W`'s shape
//! (1×1 and k×k convolution LoRA included). Only the patched tensor is materialised, one at a
//! time; the model is never held twice.

use std::collections::HashMap;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

use crate::single_file::expect_shape;

/// One LoRA pair scaled for a base tensor.
#[derive(Debug, Clone)]
pub(crate) struct Delta {
    /// `[out, rank(, 1, 1)]`, f32 on the CPU.
    pub up: Tensor,
    /// `[rank, in(, kh, kw)]`, f32 on the CPU.
    pub down: Tensor,
    /// Tucker core `[rank, rank, kh, kw]`, f32 on the CPU.
    pub mid: Option<Tensor>,
    /// `scale · alpha / rank`.
    pub factor: f64,
}

impl Delta {
    /// `factor · up·down` in the shape of `dims`.
    pub(crate) fn weight(&self, dims: &[usize]) -> candle_core::Result<Tensor> {
        let up = self.up.flatten_from(1)?;
        let down = self.down.flatten_from(1)?;
        let w = match &self.mid {
            None => up.matmul(&down)?,
            Some(mid) => tucker(&up, mid, &down)?,
        };
        (w * self.factor)?.reshape(dims)
    }
}

/// `W[i, j, k, l] = Σ_nm mid[n, m, k, l] · up[i, n] · down[m, j]` (LyCORIS' `rebuild_tucker`),
/// as `[out, in, kh, kw]`.
fn tucker(up: &Tensor, mid: &Tensor, down: &Tensor) -> candle_core::Result<Tensor> {
    let out = up.dim(0)?;
    let (_, m, kh, kw) = mid.dims4()?;
    let input = down.dim(1)?;
    let um = up.matmul(&mid.flatten_from(1)?)?; // [out, m·kh·kw]
    let um = um
        .reshape((out, m, kh, kw))?
        .permute((0, 2, 3, 1))?
        .reshape((out * kh * kw, m))?;
    um.matmul(down)? // [out·kh·kw, in]
        .reshape((out, kh, kw, input))?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

/// `inner` with `deltas` (base tensor name → pairs) added on read.
pub(crate) struct PatchedBackend {
    pub inner: Box<dyn SimpleBackend>,
    pub deltas: HashMap<String, Vec<Delta>>,
}

impl SimpleBackend for PatchedBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        expect_shape(self.get_unchecked(name, dtype, dev)?, s, name)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let Some(deltas) = self.deltas.get(name) else {
            return self.inner.get_unchecked(name, dtype, dev);
        };
        let mut w = self.inner.get_unchecked(name, DType::F32, &Device::Cpu)?;
        let dims = w.dims().to_vec();
        for d in deltas {
            w = (w + d.weight(&dims)?)?;
        }
        w.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}
