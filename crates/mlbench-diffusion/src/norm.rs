//! Group normalisation, optionally fused with SiLU: one pass for the statistics and one for the
//! output on the CPU (f32), instead of the eight tensor ops of `candle_nn::GroupNorm`. Other
//! devices and dtypes use `candle_nn::GroupNorm`.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// `torch.nn.GroupNorm` with affine weight and bias.
#[derive(Debug, Clone)]
pub(crate) struct GroupNorm {
    inner: candle_nn::GroupNorm,
    weight: Vec<f32>,
    bias: Vec<f32>,
    groups: usize,
    eps: f64,
}

pub(crate) fn group_norm(
    groups: usize,
    channels: usize,
    eps: f64,
    vb: VarBuilder,
) -> candle_core::Result<GroupNorm> {
    let inner = candle_nn::group_norm(groups, channels, eps, vb.clone())?;
    let weight = vb
        .get(channels, "weight")?
        .to_dtype(DType::F32)?
        .to_vec1()?;
    let bias = vb.get(channels, "bias")?.to_dtype(DType::F32)?.to_vec1()?;
    Ok(GroupNorm {
        inner,
        weight,
        bias,
        groups,
        eps,
    })
}

impl GroupNorm {
    /// Normalises (B, C, …) and applies SiLU when `silu`.
    pub(crate) fn forward_act(&self, xs: &Tensor, silu: bool) -> candle_core::Result<Tensor> {
        if !matches!(xs.device(), Device::Cpu) || xs.dtype() != DType::F32 {
            let y = self.inner.forward(xs)?;
            return if silu {
                candle_nn::ops::silu(&y)
            } else {
                Ok(y)
            };
        }
        let dims = xs.dims().to_vec();
        let (b, c) = (dims[0], dims[1]);
        let spatial: usize = dims[2..].iter().product();
        let per_group = c / self.groups;
        let x = xs.flatten_all()?.to_vec1::<f32>()?;
        let mut out = vec![0f32; x.len()];
        let chunk = per_group * spatial;
        out.par_chunks_mut(chunk)
            .zip(x.par_chunks(chunk))
            .enumerate()
            .for_each(|(i, (o, xi))| {
                let g = i % self.groups;
                let n = xi.len() as f64;
                let mean = xi.iter().map(|v| *v as f64).sum::<f64>() / n;
                let var = xi.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
                let inv = 1.0 / (var + self.eps).sqrt();
                for k in 0..per_group {
                    let ch = g * per_group + k;
                    let scale = (inv * self.weight[ch] as f64) as f32;
                    let shift = (self.bias[ch] as f64 - mean * inv * self.weight[ch] as f64) as f32;
                    let range = k * spatial..(k + 1) * spatial;
                    for (y, v) in o[range.clone()].iter_mut().zip(&xi[range]) {
                        let t = v * scale + shift;
                        *y = if silu { t / (1.0 + (-t).exp()) } else { t };
                    }
                }
            });
        let _ = b;
        Tensor::from_vec(out, dims, xs.device())
    }
}

impl Module for GroupNorm {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_act(xs, false)
    }
}
