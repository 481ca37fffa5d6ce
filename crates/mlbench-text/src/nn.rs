//! Layers built from checkpoint tensors: a linear layer that runs one 2-D matmul for any batch
//! shape, fused projections, layer norms.

use candle_core::Tensor;
use candle_nn::{LayerNorm, VarBuilder};
use mlbench_core::kernels::few_rows::{few_rows_matmul_t, is_cpu_f32, FEW_ROWS};

use crate::activation::Activation;
use crate::ops::bias_act;
use crate::Result;

/// `y = x Wᵀ + b` over the last dimension, as one (rows, in) × (in, out) matmul.
///
/// candle_nn's `Linear` broadcasts the weight over the batch for 3-D inputs and runs one small
/// matmul per sequence; flattening the rows first is one large matmul. With a few rows (one
/// short sentence: the layers run on the real tokens only) on CPU f32 the product streams the
/// weight once instead ([`few_rows_matmul_t`]), as gemm would pack all of it on every call.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_act(x, None)
    }

    /// `act(x Wᵀ + b)`, bias and activation fused on CPU f32 (see [`crate::ops`]).
    pub(crate) fn forward_act(&self, x: &Tensor, act: Option<Activation>) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let din = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / din.max(1);
        let x2 = x.reshape((rows, din))?;
        let y = if rows <= FEW_ROWS && is_cpu_f32(&x2) && is_cpu_f32(&self.weight) {
            few_rows_matmul_t(&x2, &self.weight, None)?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        let y = bias_act(y, self.bias.as_ref(), act)?;
        let mut out = dims;
        if let Some(last) = out.last_mut() {
            *last = self.weight.dim(0)?;
        }
        Ok(y.reshape(out)?)
    }
}

/// `PREFIX.weight` (dout, din) and `PREFIX.bias`.
pub(crate) fn linear(vb: &VarBuilder, prefix: &str, din: usize, dout: usize) -> Result<Linear> {
    let vb = vb.pp(prefix);
    Ok(Linear::new(
        vb.get((dout, din), "weight")?,
        Some(vb.get(dout, "bias")?),
    ))
}

/// `PREFIX.weight` only, or with `PREFIX.bias` when `bias`.
pub(crate) fn linear_b(
    vb: &VarBuilder,
    prefix: &str,
    din: usize,
    dout: usize,
    bias: bool,
) -> Result<Linear> {
    let vb = vb.pp(prefix);
    let b = bias.then(|| vb.get(dout, "bias")).transpose()?;
    Ok(Linear::new(vb.get((dout, din), "weight")?, b))
}

/// Three `dim → dim` projections of the same input concatenated along their outputs.
pub(crate) fn fused_linear(vb: &VarBuilder, prefixes: [&str; 3], dim: usize) -> Result<Linear> {
    let parts = prefixes
        .iter()
        .map(|p| linear(vb, p, dim, dim))
        .collect::<Result<Vec<_>>>()?;
    let w = Tensor::cat(&parts.iter().map(|l| &l.weight).collect::<Vec<_>>(), 0)?;
    let b = parts
        .iter()
        .map(|l| l.bias.clone())
        .collect::<Option<Vec<_>>>()
        .map(|b| Tensor::cat(&b, 0))
        .transpose()?;
    Ok(Linear::new(w, b))
}

/// `PREFIX.weight` and `PREFIX.bias` as a layer norm.
pub(crate) fn layer_norm(vb: &VarBuilder, prefix: &str, dim: usize, eps: f64) -> Result<LayerNorm> {
    Ok(candle_nn::layer_norm(dim, eps, vb.pp(prefix))?)
}

/// A layer norm with or without `PREFIX.bias`.
pub(crate) fn layer_norm_b(
    vb: &VarBuilder,
    prefix: &str,
    dim: usize,
    eps: f64,
    bias: bool,
) -> Result<LayerNorm> {
    let vb = vb.pp(prefix);
    let w = vb.get(dim, "weight")?;
    Ok(if bias {
        LayerNorm::new(w, vb.get(dim, "bias")?, eps)
    } else {
        LayerNorm::new_no_bias(w, eps)
    })
}
