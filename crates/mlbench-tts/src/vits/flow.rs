//! The residual-coupling flow (`flow`) with WaveNet layers, run in reverse: prior sample →
//! latent for the decoder. Reference: jaywalnut310/vits `models.py` ResidualCouplingBlock,
//! `modules.py` ResidualCouplingLayer / WN (commit 2e561ba).

use candle_core::{Module, Tensor};
use mlbench_core::kernels::conv::Conv1d;

use super::weights::{flip_channels, Weights};
use crate::error::Result;

/// WaveNet: gated dilated convolutions with residual and skip outputs.
#[derive(Debug, Clone)]
struct WaveNet {
    in_layers: Vec<Conv1d>,
    res_skip: Vec<Conv1d>,
    cond: Option<Conv1d>,
    hidden: usize,
}

impl WaveNet {
    fn load(w: &Weights, p: &str, dilation_rate: usize) -> Result<Self> {
        let n = w.count(&format!("{p}.in_layers"));
        let hidden = w.dims(&format!("{p}.in_layers.0.weight"))?[1];
        let mut in_layers = Vec::with_capacity(n);
        let mut res_skip = Vec::with_capacity(n);
        for i in 0..n {
            in_layers.push(w.conv1d_same(
                &format!("{p}.in_layers.{i}"),
                dilation_rate.pow(i as u32),
                1,
            )?);
            res_skip.push(w.conv1d_same(&format!("{p}.res_skip_layers.{i}"), 1, 1)?);
        }
        let cond = if w.has(&format!("{p}.cond_layer.weight")) {
            Some(w.conv1d_same(&format!("{p}.cond_layer"), 1, 1)?)
        } else {
            None
        };
        Ok(Self {
            in_layers,
            res_skip,
            cond,
            hidden,
        })
    }

    fn forward(&self, x: &Tensor, g: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let h = self.hidden;
        let n = self.in_layers.len();
        let g = match (&self.cond, g) {
            (Some(c), Some(g)) => Some(c.forward(g)?),
            _ => None,
        };
        let mut x = x.clone();
        let mut output: Option<Tensor> = None;
        for (i, (inl, rs)) in self.in_layers.iter().zip(&self.res_skip).enumerate() {
            let mut x_in = inl.forward(&x)?;
            if let Some(g) = &g {
                x_in = x_in.broadcast_add(&g.narrow(1, i * 2 * h, 2 * h)?)?;
            }
            let acts =
                (x_in.narrow(1, 0, h)?.tanh()? * candle_nn::ops::sigmoid(&x_in.narrow(1, h, h)?)?)?;
            let rs = rs.forward(&acts)?;
            let skip = if i + 1 < n {
                x = (x + rs.narrow(1, 0, h)?)?;
                rs.narrow(1, h, h)?
            } else {
                rs
            };
            output = Some(match output {
                Some(o) => (o + skip)?,
                None => skip,
            });
        }
        match output {
            Some(o) => Ok(o),
            None => x.zeros_like(),
        }
    }
}

/// A mean-only residual coupling layer.
#[derive(Debug, Clone)]
struct CouplingLayer {
    pre: Conv1d,
    enc: WaveNet,
    post: Conv1d,
    half: usize,
    mean_only: bool,
}

impl CouplingLayer {
    fn reverse(&self, x: &Tensor, g: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let x0 = x.narrow(1, 0, self.half)?;
        let x1 = x.narrow(1, self.half, self.half)?;
        let h = self.enc.forward(&self.pre.forward(&x0)?, g)?;
        let stats = self.post.forward(&h)?;
        let x1 = if self.mean_only {
            (x1 - stats)?
        } else {
            let m = stats.narrow(1, 0, self.half)?;
            let logs = stats.narrow(1, self.half, self.half)?;
            ((x1 - m)? * logs.neg()?.exp()?)?
        };
        Tensor::cat(&[&x0, &x1], 1)
    }
}

/// The coupling block: coupling layers with channel flips between them.
#[derive(Debug, Clone)]
pub struct Flow {
    layers: Vec<CouplingLayer>,
}

impl Flow {
    /// Loads `flow.flows.{0,2,4,…}` (the odd indices are parameter-free flips).
    pub fn load(w: &Weights, dilation_rate: usize) -> Result<Self> {
        let mut layers = Vec::new();
        for i in (0..64).step_by(2) {
            let p = format!("flow.flows.{i}");
            if !w.has(&format!("{p}.pre.weight")) {
                break;
            }
            let channels = w.dims(&format!("{p}.pre.weight"))?[1];
            let post_out = w.dims(&format!("{p}.post.weight"))?[0];
            layers.push(CouplingLayer {
                pre: w.conv1d_same(&format!("{p}.pre"), 1, 1)?,
                enc: WaveNet::load(w, &format!("{p}.enc"), dilation_rate)?,
                post: w.conv1d_same(&format!("{p}.post"), 1, 1)?,
                half: channels,
                mean_only: post_out == channels,
            });
        }
        if layers.is_empty() {
            return Err(crate::TtsError::Weights(
                "no flow.flows.0.pre.weight".into(),
            ));
        }
        Ok(Self { layers })
    }

    /// z_p (1, c, t) → z.
    pub fn reverse(&self, x: &Tensor, g: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for layer in self.layers.iter().rev() {
            x = flip_channels(&x)?;
            x = layer.reverse(&x, g)?;
        }
        Ok(x)
    }
}
