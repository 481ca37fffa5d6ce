//! The stochastic duration predictor (`dp`), run in reverse: noise → log-durations.
//! Reference: jaywalnut310/vits `models.py` StochasticDurationPredictor, `modules.py`
//! DDSConv / ConvFlow / ElementwiseAffine, `transforms.py` (commit 2e561ba).

use candle_core::{DType, Device, Module, Tensor};
use mlbench_core::kernels::conv::Conv1d;

use super::weights::{flip_channels, ChannelNorm, Weights};
use crate::error::Result;

/// Dilated depth-separable convolutions with layer norm and GELU.
#[derive(Debug, Clone)]
struct DdsConv {
    layers: Vec<(Conv1d, ChannelNorm, Conv1d, ChannelNorm)>,
}

impl DdsConv {
    fn load(w: &Weights, p: &str) -> Result<Self> {
        let n = w.count(&format!("{p}.convs_sep"));
        let mut layers = Vec::with_capacity(n);
        for i in 0..n {
            let sep = format!("{p}.convs_sep.{i}");
            let dims = w.dims(&format!("{sep}.weight"))?;
            let (channels, k) = (dims[0], dims[2]);
            layers.push((
                w.conv1d_same(&sep, k.pow(i as u32), channels)?,
                w.layer_norm(&format!("{p}.norms_1.{i}"))?,
                w.conv1d_same(&format!("{p}.convs_1x1.{i}"), 1, 1)?,
                w.layer_norm(&format!("{p}.norms_2.{i}"))?,
            ));
        }
        Ok(Self { layers })
    }

    fn forward(&self, x: &Tensor, g: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut x = match g {
            Some(g) => x.broadcast_add(g)?,
            None => x.clone(),
        };
        for (sep, n1, c1x1, n2) in &self.layers {
            let y = n1.forward(&sep.forward(&x)?)?.gelu_erf()?;
            let y = n2.forward(&c1x1.forward(&y)?)?.gelu_erf()?;
            x = (x + y)?;
        }
        Ok(x)
    }
}

/// A rational-quadratic spline coupling flow.
#[derive(Debug, Clone)]
struct ConvFlow {
    pre: Conv1d,
    convs: DdsConv,
    proj: Conv1d,
    filter_channels: usize,
    num_bins: usize,
}

const TAIL_BOUND: f32 = 5.0;

impl ConvFlow {
    fn load(w: &Weights, p: &str) -> Result<Self> {
        let filter_channels = w.dims(&format!("{p}.pre.weight"))?[0];
        let proj_out = w.dims(&format!("{p}.proj.weight"))?[0];
        Ok(Self {
            pre: w.conv1d_same(&format!("{p}.pre"), 1, 1)?,
            convs: DdsConv::load(w, &format!("{p}.convs"))?,
            proj: w.conv1d_same(&format!("{p}.proj"), 1, 1)?,
            filter_channels,
            // half_channels (1) · (3 · bins - 1)
            num_bins: proj_out.div_ceil(3),
        })
    }

    fn reverse(&self, x: &Tensor, g: &Tensor) -> candle_core::Result<Tensor> {
        let x0 = x.narrow(1, 0, 1)?;
        let x1 = x.narrow(1, 1, 1)?;
        let h = self.pre.forward(&x0)?;
        let h = self.convs.forward(&h, Some(g))?;
        let h = self.proj.forward(&h)?; // (1, 3·bins - 1, t)
        let t = h.dim(2)?;
        let params = h.to_dtype(DType::F32)?.squeeze(0)?.t()?.to_vec2::<f32>()?; // t × (3·bins-1)
        let inputs = x1.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let nb = self.num_bins;
        let scale = 1.0 / (self.filter_channels as f32).sqrt();
        let out: Vec<f32> = (0..t)
            .map(|i| {
                let p = &params[i];
                let uw: Vec<f32> = p[..nb].iter().map(|v| v * scale).collect();
                let uh: Vec<f32> = p[nb..2 * nb].iter().map(|v| v * scale).collect();
                spline_inverse(inputs[i], &uw, &uh, &p[2 * nb..])
            })
            .collect();
        let x1 = Tensor::from_vec(out, (1, 1, t), &Device::Cpu)?
            .to_device(x.device())?
            .to_dtype(x.dtype())?;
        Tensor::cat(&[&x0, &x1], 1)
    }
}

/// The inverse of `unconstrained_rational_quadratic_spline` with linear tails, for one value.
fn spline_inverse(y: f32, uw: &[f32], uh: &[f32], ud: &[f32]) -> f32 {
    const MIN_W: f32 = 1e-3;
    const MIN_H: f32 = 1e-3;
    const MIN_D: f32 = 1e-3;
    let b = TAIL_BOUND;
    if !(-b..=b).contains(&y) {
        return y;
    }
    let nb = uw.len();
    let cum = |u: &[f32], min: f32| -> Vec<f32> {
        let m = u.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = u.iter().map(|v| (v - m).exp()).collect();
        let s: f32 = e.iter().sum();
        let mut c = vec![0f32; nb + 1];
        let mut acc = 0f32;
        for (i, v) in e.iter().enumerate() {
            acc += min + (1.0 - min * nb as f32) * (v / s);
            c[i + 1] = 2.0 * b * acc - b;
        }
        c[0] = -b;
        c[nb] = b;
        c
    };
    let cw = cum(uw, MIN_W);
    let ch = cum(uh, MIN_H);
    // Derivatives at the knots; the boundary ones are 1 (linear tails).
    let constant = ((1.0f32 - MIN_D).exp() - 1.0).ln();
    let softplus = |v: f32| if v > 20.0 { v } else { v.exp().ln_1p() };
    let d = |k: usize| -> f32 {
        let u = if k == 0 || k == nb {
            constant
        } else {
            ud[k - 1]
        };
        MIN_D + softplus(u)
    };
    // searchsorted with the last knot nudged up by 1e-6.
    let mut k = 0usize;
    for (i, &c) in ch.iter().enumerate() {
        let c = if i == nb { c + 1e-6 } else { c };
        if y >= c {
            k = i;
        }
    }
    let k = k.min(nb - 1);
    let (w, h) = (cw[k + 1] - cw[k], ch[k + 1] - ch[k]);
    let delta = h / w;
    let (d0, d1) = (d(k), d(k + 1));
    let dy = y - ch[k];
    let a = dy * (d0 + d1 - 2.0 * delta) + h * (delta - d0);
    let bb = h * d0 - dy * (d0 + d1 - 2.0 * delta);
    let c = -delta * dy;
    let disc = bb * bb - 4.0 * a * c;
    let root = (2.0 * c) / (-bb - disc.max(0.0).sqrt());
    root * w + cw[k]
}

/// The stochastic duration predictor.
#[derive(Debug, Clone)]
pub struct DurationPredictor {
    pre: Conv1d,
    convs: DdsConv,
    proj: Conv1d,
    cond: Option<Conv1d>,
    /// ElementwiseAffine `m`, `logs`: (2, 1).
    ea_m: Tensor,
    ea_logs: Tensor,
    /// The ConvFlows in the order the reverse pass runs them.
    flows: Vec<ConvFlow>,
}

impl DurationPredictor {
    /// Loads `dp.*` (stochastic predictor; flow 1 is unused in reverse and may be absent).
    pub fn load(w: &Weights) -> Result<Self> {
        let n = (1..32)
            .filter(|i| w.has(&format!("dp.flows.{i}.pre.weight")))
            .collect::<Vec<_>>();
        let mut flows = Vec::new();
        // flows = [EA, CF1, Flip, CF3, Flip, …]: reversed and without CF1.
        for &i in n.iter().rev() {
            if i == 1 {
                continue;
            }
            flows.push(ConvFlow::load(w, &format!("dp.flows.{i}"))?);
        }
        let cond = if w.has("dp.cond.weight") {
            Some(w.conv1d_same("dp.cond", 1, 1)?)
        } else {
            None
        };
        Ok(Self {
            pre: w.conv1d_same("dp.pre", 1, 1)?,
            convs: DdsConv::load(w, "dp.convs")?,
            proj: w.conv1d_same("dp.proj", 1, 1)?,
            cond,
            ea_m: w.get("dp.flows.0.m")?,
            ea_logs: w.get("dp.flows.0.logs")?,
            flows,
        })
    }

    /// Log-durations (1, 1, t) for encoder states `x` (1, c, t); `noise` is (1, 2, t)
    /// standard-normal noise already scaled by `noise_w`.
    pub fn reverse(
        &self,
        x: &Tensor,
        g: Option<&Tensor>,
        noise: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let mut x = self.pre.forward(x)?;
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            x = x.broadcast_add(&cond.forward(g)?)?;
        }
        let x = self.proj.forward(&self.convs.forward(&x, None)?)?;
        // Reverse order: Flip, CF, Flip, CF, …, Flip, EA.
        let mut z = noise.clone();
        for flow in &self.flows {
            z = flip_channels(&z)?;
            z = flow.reverse(&z, &x)?;
        }
        z = flip_channels(&z)?;
        let z = z
            .broadcast_sub(&self.ea_m.unsqueeze(0)?)?
            .broadcast_mul(&self.ea_logs.neg()?.exp()?.unsqueeze(0)?)?;
        z.narrow(1, 0, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spline_identity_with_uniform_bins() {
        // Equal widths and heights with derivative 1 everywhere: the identity.
        let u = vec![0.0; 10];
        let inv_softplus_one = ((1.0f32 - 1e-3).exp() - 1.0).ln();
        let d = vec![inv_softplus_one; 9];
        for y in [-4.9f32, -1.0, 0.0, 0.3, 4.99] {
            assert!((spline_inverse(y, &u, &u, &d) - y).abs() < 1e-4, "{y}");
        }
        assert_eq!(spline_inverse(7.0, &u, &u, &d), 7.0);
    }
}
