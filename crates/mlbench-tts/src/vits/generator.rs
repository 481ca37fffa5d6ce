//! The HiFi-GAN generator (`dec`): latent frames → waveform, with ResBlock1 (MMS, Piper
//! "high") or ResBlock2 (Piper "medium"/"low"). Reference: jaywalnut310/vits `models.py`
//! Generator, `modules.py` ResBlock1 / ResBlock2 (commit 2e561ba).

use candle_core::{Module, Tensor};
use mlbench_core::kernels::conv::{Conv1d, ConvTranspose1d, ConvTranspose1dParams};

use super::ops::{add_into, leaky_relu, scaled_leaky_relu};
use super::weights::Weights;
use super::VitsConfig;
use crate::error::{Result, TtsError};

const LRELU_SLOPE: f64 = 0.1;

#[derive(Debug, Clone)]
enum ResBlock {
    /// Pairs of (dilated conv, conv with dilation 1).
    One(Vec<(Conv1d, Conv1d)>),
    /// Dilated convs.
    Two(Vec<Conv1d>),
}

impl ResBlock {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        match self {
            Self::One(pairs) => {
                for (c1, c2) in pairs {
                    let xt = c1.forward(&leaky_relu(&x, LRELU_SLOPE)?)?;
                    let xt = c2.forward(&leaky_relu(&xt, LRELU_SLOPE)?)?;
                    x = add_into(xt, &x)?;
                }
            }
            Self::Two(convs) => {
                for c in convs {
                    x = add_into(c.forward(&leaky_relu(&x, LRELU_SLOPE)?)?, &x)?;
                }
            }
        }
        Ok(x)
    }
}

/// The generator.
#[derive(Debug, Clone)]
pub struct Generator {
    conv_pre: Conv1d,
    cond: Option<Conv1d>,
    ups: Vec<ConvTranspose1d>,
    /// `num_kernels` blocks per upsampling stage.
    resblocks: Vec<Vec<ResBlock>>,
    conv_post: Conv1d,
}

impl Generator {
    /// Loads `dec.*` with the strides and dilations of `cfg`.
    pub fn load(w: &Weights, cfg: &VitsConfig) -> Result<Self> {
        let mut ups = Vec::new();
        for (i, &u) in cfg.upsample_rates.iter().enumerate() {
            let p = format!("dec.ups.{i}");
            let k = w.dims(&format!("{p}.weight"))?[2];
            ups.push(w.conv_transpose1d(
                &p,
                ConvTranspose1dParams {
                    padding: (k - u) / 2,
                    stride: u,
                    ..Default::default()
                },
            )?);
        }
        let nk = cfg.resblock_dilation_sizes.len();
        let mut resblocks = Vec::new();
        for i in 0..ups.len() {
            let mut stage = Vec::with_capacity(nk);
            for (j, dils) in cfg.resblock_dilation_sizes.iter().enumerate() {
                if dils.is_empty() {
                    return Err(TtsError::Weights(format!(
                        "residual block {j} has no convolutions"
                    )));
                }
                let p = format!("dec.resblocks.{}", i * nk + j);
                let block = if cfg.resblock == 1 {
                    let mut pairs = Vec::new();
                    for (n, &d) in dils.iter().enumerate() {
                        pairs.push((
                            w.conv1d_same(&format!("{p}.convs1.{n}"), d, 1)?,
                            w.conv1d_same(&format!("{p}.convs2.{n}"), 1, 1)?,
                        ));
                    }
                    ResBlock::One(pairs)
                } else {
                    let mut convs = Vec::new();
                    for (n, &d) in dils.iter().enumerate() {
                        convs.push(w.conv1d_same(&format!("{p}.convs.{n}"), d, 1)?);
                    }
                    ResBlock::Two(convs)
                };
                stage.push(block);
            }
            resblocks.push(stage);
        }
        if ups.is_empty() {
            return Err(TtsError::Weights("no dec.ups.0.weight".into()));
        }
        let cond = if w.has("dec.cond.weight") {
            Some(w.conv1d_same("dec.cond", 1, 1)?)
        } else {
            None
        };
        Ok(Self {
            conv_pre: w.conv1d_same("dec.conv_pre", 1, 1)?,
            cond,
            ups,
            resblocks,
            conv_post: w.conv1d_same("dec.conv_post", 1, 1)?,
        })
    }

    /// z (1, c, frames) → audio (1, 1, frames · hop).
    pub fn forward(&self, z: &Tensor, g: Option<&Tensor>) -> candle_core::Result<Tensor> {
        let mut x = self.conv_pre.forward(z)?;
        if let (Some(cond), Some(g)) = (&self.cond, g) {
            x = x.broadcast_add(&cond.forward(g)?)?;
        }
        // The average over a stage's blocks is folded into the next activation
        // (leaky ReLU is positively homogeneous).
        let mut scale = 1.0;
        for (up, blocks) in self.ups.iter().zip(&self.resblocks) {
            x = up.forward(&scaled_leaky_relu(&x, scale, LRELU_SLOPE)?)?;
            let mut sum: Option<Tensor> = None;
            for b in blocks {
                let y = b.forward(&x)?;
                sum = Some(match sum {
                    Some(s) => add_into(s, &y)?,
                    None => y,
                });
            }
            if let Some(s) = sum {
                x = s;
                scale = 1.0 / blocks.len() as f64;
            }
        }
        // F.leaky_relu's default slope.
        let x = self
            .conv_post
            .forward(&scaled_leaky_relu(&x, scale, 0.01)?)?;
        x.tanh()
    }
}
