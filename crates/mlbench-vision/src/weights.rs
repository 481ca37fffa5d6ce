//! Named tensors of a checkpoint turned into layers: lookups that name a missing tensor,
//! batch norm folded into the preceding convolution, linear and layer-norm layers.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use candle_nn::{LayerNorm, Linear};
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams};

use crate::{Error, Result};

/// A checkpoint's tensors (on the CPU, as stored) and where the layers built from them go.
pub(crate) struct Weights<'a> {
    tensors: &'a HashMap<String, Tensor>,
    device: Device,
    dtype: DType,
}

impl<'a> Weights<'a> {
    pub(crate) fn new(tensors: &'a HashMap<String, Tensor>, device: &Device, dtype: DType) -> Self {
        Self {
            tensors,
            device: device.clone(),
            dtype,
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor as stored, converted to f32 on the CPU (for folding).
    pub(crate) fn raw(&self, name: &str) -> Result<Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::Model(format!("the checkpoint has no tensor {name}")))?;
        Ok(t.to_dtype(DType::F32)?)
    }

    /// The tensor on the model's device, in its dtype.
    pub(crate) fn get(&self, name: &str) -> Result<Tensor> {
        self.place(self.raw(name)?)
    }

    fn place(&self, t: Tensor) -> Result<Tensor> {
        Ok(t.to_device(&self.device)?.to_dtype(self.dtype)?)
    }

    /// `PREFIX.weight` and, if present, `PREFIX.bias` as a convolution.
    pub(crate) fn conv(&self, prefix: &str, params: Conv2dParams) -> Result<Conv2d> {
        let weight = self.get(&format!("{prefix}.weight"))?;
        let bias = format!("{prefix}.bias");
        let bias = self.contains(&bias).then(|| self.get(&bias)).transpose()?;
        Ok(Conv2d::new(weight, bias, params)?)
    }

    /// A convolution (no bias) followed by batch norm `bn`, folded into one convolution:
    /// `w · γ/√(var+ε)` and bias `β − mean · γ/√(var+ε)`.
    pub(crate) fn conv_bn(
        &self,
        conv: &str,
        bn: &str,
        eps: f64,
        params: Conv2dParams,
    ) -> Result<Conv2d> {
        let weight = self.raw(&format!("{conv}.weight"))?;
        let cout = weight.dim(0)?;
        let bn_get = |p: &str| -> Result<Tensor> {
            let t = self.raw(&format!("{bn}.{p}"))?;
            if t.dims() != [cout] {
                return Err(Error::Model(format!(
                    "{bn}.{p} has shape {:?}, expected [{cout}]",
                    t.dims()
                )));
            }
            Ok(t)
        };
        let (gamma, beta) = (bn_get("weight")?, bn_get("bias")?);
        let (mean, var) = (bn_get("running_mean")?, bn_get("running_var")?);
        let scale = gamma.div(&(var + eps)?.sqrt()?)?;
        let weight = weight.broadcast_mul(&scale.reshape((cout, 1, 1, 1))?)?;
        let bias = (beta - mean.mul(&scale)?)?;
        Ok(Conv2d::new(
            self.place(weight)?,
            Some(self.place(bias)?),
            params,
        )?)
    }

    /// `PREFIX.weight` (out, in) and `PREFIX.bias` as a linear layer.
    pub(crate) fn linear(&self, prefix: &str) -> Result<Linear> {
        let weight = self.get(&format!("{prefix}.weight"))?;
        let bias = format!("{prefix}.bias");
        let bias = self.contains(&bias).then(|| self.get(&bias)).transpose()?;
        Ok(Linear::new(weight, bias))
    }

    /// `PREFIX.weight` and `PREFIX.bias` as a layer norm over the last dimension.
    pub(crate) fn layer_norm(&self, prefix: &str, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm::new(
            self.get(&format!("{prefix}.weight"))?,
            self.get(&format!("{prefix}.bias"))?,
            eps,
        ))
    }
}
