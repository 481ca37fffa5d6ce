//! Named parameters on the compute device, and the layer constructors the model files share.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use mlbench_core::kernels::conv::{Conv1d, Conv1dParams, ConvTranspose1d, ConvTranspose1dParams};

use crate::error::{Result, TtsError};

/// VITS parameters by name (`dec.ups.0.weight`), converted to one device and dtype on use.
#[derive(Debug, Clone)]
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    device: Device,
    dtype: DType,
}

impl Weights {
    /// Wraps parameters (any device/dtype) for a model on `device` in `dtype`.
    pub fn new(tensors: HashMap<String, Tensor>, device: &Device, dtype: DType) -> Self {
        Self {
            tensors,
            device: device.clone(),
            dtype,
        }
    }

    /// The compute device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether a parameter exists.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The raw parameter (as stored), for shape inspection.
    pub fn raw(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| TtsError::Weights(format!("missing parameter {name}")))
    }

    /// A parameter on the compute device in the compute dtype.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        Ok(self
            .raw(name)?
            .to_device(&self.device)?
            .to_dtype(self.dtype)?)
    }

    /// A parameter on the compute device in f32 (norms, embeddings of the flows' statistics).
    pub fn get_f32(&self, name: &str) -> Result<Tensor> {
        Ok(self
            .raw(name)?
            .to_device(&self.device)?
            .to_dtype(DType::F32)?)
    }

    /// A parameter's dims.
    pub fn dims(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.raw(name)?.dims().to_vec())
    }

    /// How many consecutive indices `prefix.0.`, `prefix.1.` … have parameters.
    pub fn count(&self, prefix: &str) -> usize {
        (0..)
            .take_while(|i| {
                let p = format!("{prefix}.{i}.");
                self.tensors.keys().any(|k| k.starts_with(&p))
            })
            .count()
    }

    /// `module.weight` (+ `module.bias` when present) as a conv1d.
    pub fn conv1d(&self, module: &str, params: Conv1dParams) -> Result<Conv1d> {
        let w = self.get(&format!("{module}.weight"))?;
        let bias = format!("{module}.bias");
        let b = if self.has(&bias) {
            Some(self.get(&bias)?)
        } else {
            None
        };
        Ok(Conv1d::new(w, b, params)?)
    }

    /// A conv1d with "same" padding for its kernel and `dilation`.
    pub fn conv1d_same(&self, module: &str, dilation: usize, groups: usize) -> Result<Conv1d> {
        let k = *self.dims(&format!("{module}.weight"))?.last().unwrap_or(&1);
        self.conv1d(
            module,
            Conv1dParams {
                padding: (k * dilation - dilation) / 2,
                dilation,
                groups,
                ..Default::default()
            },
        )
    }

    /// `module.weight` (+ bias) as a transposed conv1d.
    pub fn conv_transpose1d(
        &self,
        module: &str,
        params: ConvTranspose1dParams,
    ) -> Result<ConvTranspose1d> {
        let w = self.get(&format!("{module}.weight"))?;
        let bias = format!("{module}.bias");
        let b = if self.has(&bias) {
            Some(self.get(&bias)?)
        } else {
            None
        };
        Ok(ConvTranspose1d::new(w, b, params)?)
    }

    /// A channel layer norm (VITS `modules.LayerNorm`: `gamma`, `beta`).
    pub fn layer_norm(&self, module: &str) -> Result<ChannelNorm> {
        ChannelNorm::new(
            self.get_f32(&format!("{module}.gamma"))?,
            self.get_f32(&format!("{module}.beta"))?,
        )
    }
}

/// Layer norm over the channel axis of (b, c, t), eps 1e-5, computed in f32: one pass on
/// contiguous f32 CPU tensors (the encoder's and duration predictor's tensors are small, and
/// Candle would take nine dispatched ops), Candle's ops elsewhere.
#[derive(Debug, Clone)]
pub struct ChannelNorm {
    gamma: Tensor,
    beta: Tensor,
    cpu: Option<(Vec<f32>, Vec<f32>)>,
}

impl ChannelNorm {
    fn new(gamma: Tensor, beta: Tensor) -> Result<Self> {
        let cpu = if gamma.device().is_cpu() {
            Some((gamma.to_vec1::<f32>()?, beta.to_vec1::<f32>()?))
        } else {
            None
        };
        Ok(Self { gamma, beta, cpu })
    }

    /// Normalises `x` (b, c, t) over c.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if let (Some((g, b)), true, DType::F32) = (&self.cpu, x.device().is_cpu(), x.dtype()) {
            return x
                .contiguous()?
                .apply_op1_no_bwd(&NormOp { gamma: g, beta: b });
        }
        self.forward_reference(x)
    }

    /// The same with Candle's ops.
    pub fn forward_reference(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let mean = x.mean_keepdim(1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(1)?;
        let y = xc.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
        let c = self.gamma.dim(0)?;
        y.broadcast_mul(&self.gamma.reshape((1, c, 1))?)?
            .broadcast_add(&self.beta.reshape((1, c, 1))?)?
            .to_dtype(dtype)
    }
}

struct NormOp<'a> {
    gamma: &'a [f32],
    beta: &'a [f32],
}

impl candle_core::CustomOp1 for NormOp<'_> {
    fn name(&self) -> &'static str {
        "channel-layer-norm"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("channel-layer-norm: f32 only")
        };
        let (Some((start, end)), [b, c, t]) = (layout.contiguous_offsets(), layout.dims()) else {
            candle_core::bail!("channel-layer-norm: contiguous (b, c, t) input only")
        };
        let (b, c, t) = (*b, *c, *t);
        if self.gamma.len() != c || self.beta.len() != c {
            candle_core::bail!(
                "channel-layer-norm: {c} channels, {} gammas",
                self.gamma.len()
            )
        }
        let src = &data[start..end];
        let mut out = vec![0f32; src.len()];
        let (mut mean, mut inv) = (vec![0f32; t], vec![0f32; t]);
        for n in 0..b {
            let x = &src[n * c * t..(n + 1) * c * t];
            let y = &mut out[n * c * t..(n + 1) * c * t];
            mean.iter_mut().for_each(|m| *m = 0.0);
            inv.iter_mut().for_each(|v| *v = 0.0);
            for row in x.chunks_exact(t) {
                mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            }
            mean.iter_mut().for_each(|m| *m /= c as f32);
            for row in x.chunks_exact(t) {
                inv.iter_mut()
                    .zip(row.iter().zip(&mean))
                    .for_each(|(s, (v, m))| *s += (v - m) * (v - m));
            }
            inv.iter_mut()
                .for_each(|s| *s = 1.0 / (*s / c as f32 + 1e-5).sqrt());
            for (ch, (yr, xr)) in y.chunks_exact_mut(t).zip(x.chunks_exact(t)).enumerate() {
                let (g, bb) = (self.gamma[ch], self.beta[ch]);
                for (((o, v), m), s) in yr.iter_mut().zip(xr).zip(&mean).zip(&inv) {
                    *o = (v - m) * s * g + bb;
                }
            }
        }
        Ok((candle_core::CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// Reverses the channel axis of (b, c, t) (`torch.flip(x, [1])`).
pub fn flip_channels(x: &Tensor) -> candle_core::Result<Tensor> {
    let c = x.dim(1)?;
    let idx: Vec<u32> = (0..c as u32).rev().collect();
    let idx = Tensor::new(idx.as_slice(), x.device())?;
    x.index_select(&idx, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_channel_norm_matches_candle() {
        let dev = Device::Cpu;
        let gamma = Tensor::randn(1f32, 0.5, 7, &dev).unwrap();
        let beta = Tensor::randn(0f32, 0.5, 7, &dev).unwrap();
        let norm = ChannelNorm::new(gamma, beta).unwrap();
        let x = Tensor::randn(0.3f32, 2.0, (2, 7, 33), &dev).unwrap();
        let d = (norm.forward(&x).unwrap() - norm.forward_reference(&x).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "{d}");
    }
}
