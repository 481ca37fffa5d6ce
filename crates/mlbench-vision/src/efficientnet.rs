//! EfficientNet B0–B7 as in transformers' `EfficientNetForImageClassification`
//! (google/efficientnet-b*): keys `efficientnet.embeddings.{convolution,batchnorm}`,
//! `efficientnet.encoder.blocks.N.{expansion.expand_{conv,bn},depthwise_conv.depthwise_{conv,norm},
//! squeeze_excite.{reduce,expand},projection.project_{conv,bn}}`, `efficientnet.encoder.top_{conv,bn}`,
//! `classifier`. Reference: transformers `models/efficientnet/modeling_efficientnet.py` (v5.24):
//! Swish, squeeze-and-excitation, Keras-style padding (stride-2 layers pad right/bottom by
//! `correct_pad`), batch norm folded into the convolutions at load.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::Linear;
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams, Padding2d};
use serde::Deserialize;

use crate::weights::Weights;
use crate::{Error, Result};

/// The fields of an EfficientNet `config.json` that shape the network (channel counts and
/// kernel sizes are read from the weights).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Stride of the first block of each stage.
    pub strides: Vec<usize>,
    /// Blocks per stage before depth scaling.
    pub num_block_repeats: Vec<usize>,
    /// Depth scaling: a stage has ceil(depth_coefficient · repeats) blocks.
    #[serde(default = "one")]
    pub depth_coefficient: f64,
    /// Blocks whose stride-2 padding is symmetric (the others pad right/bottom one more).
    #[serde(default)]
    pub depthwise_padding: Vec<usize>,
    /// Batch-norm epsilon.
    #[serde(default = "bn_eps")]
    pub batch_norm_eps: f64,
    /// Activation (`swish` / `silu`).
    #[serde(default = "swish")]
    pub hidden_act: String,
    /// `mean` (or `max`) pooling before the head.
    #[serde(default = "mean")]
    pub pooling_type: String,
}

fn one() -> f64 {
    1.0
}
fn bn_eps() -> f64 {
    1e-3
}
fn swish() -> String {
    "swish".into()
}
fn mean() -> String {
    "mean".into()
}

#[derive(Debug, Clone)]
struct Block {
    expand: Option<Conv2d>,
    depthwise: Conv2d,
    se_reduce: Linear,
    se_expand: Linear,
    project: Conv2d,
    residual: bool,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        if let Some(expand) = &self.expand {
            h = expand.forward(&h)?.silu()?;
        }
        h = self.depthwise.forward(&h)?.silu()?;
        // Squeeze and excitation: per-channel gates from the global average.
        let s = h.flatten_from(2)?.mean(D::Minus1)?;
        let s = self
            .se_expand
            .forward(&self.se_reduce.forward(&s)?.silu()?)?;
        let gate = candle_nn::ops::sigmoid(&s)?.unsqueeze(2)?.unsqueeze(3)?;
        h = h.broadcast_mul(&gate)?;
        h = self.project.forward(&h)?;
        if self.residual {
            h = (h + x)?;
        }
        Ok(h)
    }
}

/// EfficientNet with its classification head.
#[derive(Debug, Clone)]
pub struct EfficientNet {
    stem: Conv2d,
    blocks: Vec<Block>,
    top: Conv2d,
    max_pool: bool,
    classifier: Linear,
}

/// A 1×1 convolution's weight (out, in, 1, 1) and bias as a linear layer on (b, in).
fn pointwise_linear(w: &Weights, prefix: &str) -> Result<Linear> {
    let weight = w.get(&format!("{prefix}.weight"))?.flatten_from(1)?;
    Ok(Linear::new(weight, Some(w.get(&format!("{prefix}.bias"))?)))
}

impl EfficientNet {
    /// Builds the model from a transformers state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if !matches!(config.hidden_act.as_str(), "swish" | "silu") {
            return Err(Error::Model(format!(
                "EfficientNet with hidden_act {} is not supported (only swish)",
                config.hidden_act
            )));
        }
        if config.strides.len() != config.num_block_repeats.len() {
            return Err(Error::Model(
                "EfficientNet config: strides and num_block_repeats differ in length".into(),
            ));
        }
        let w = Weights::new(tensors, device, dtype);
        let eps = config.batch_norm_eps;
        let stem = w.conv_bn(
            "efficientnet.embeddings.convolution",
            "efficientnet.embeddings.batchnorm",
            eps,
            Conv2dParams {
                padding: Padding2d {
                    top: 0,
                    bottom: 1,
                    left: 0,
                    right: 1,
                },
                stride: (2, 2),
                ..Default::default()
            },
        )?;
        let mut blocks = Vec::new();
        for (&stride, &repeats) in config.strides.iter().zip(&config.num_block_repeats) {
            let repeats = (config.depth_coefficient * repeats as f64).ceil() as usize;
            for j in 0..repeats {
                let n = blocks.len();
                let p = format!("efficientnet.encoder.blocks.{n}");
                let stride = if j == 0 { stride } else { 1 };
                let expand = if w.contains(&format!("{p}.expansion.expand_conv.weight")) {
                    Some(w.conv_bn(
                        &format!("{p}.expansion.expand_conv"),
                        &format!("{p}.expansion.expand_bn"),
                        eps,
                        Conv2dParams::default(),
                    )?)
                } else {
                    None
                };
                let dw = format!("{p}.depthwise_conv.depthwise_conv.weight");
                let (channels, _, k, _) = w.raw(&dw)?.dims4()?;
                let padding = match (stride, config.depthwise_padding.contains(&n)) {
                    (1, _) | (_, true) => Padding2d::uniform(k / 2),
                    // transformers' correct_pad(adjust=True): one less on the left/top.
                    (_, false) => Padding2d {
                        top: k / 2 - 1,
                        bottom: k / 2,
                        left: k / 2 - 1,
                        right: k / 2,
                    },
                };
                let depthwise = w.conv_bn(
                    &format!("{p}.depthwise_conv.depthwise_conv"),
                    &format!("{p}.depthwise_conv.depthwise_norm"),
                    eps,
                    Conv2dParams {
                        padding,
                        stride: (stride, stride),
                        groups: channels,
                        ..Default::default()
                    },
                )?;
                blocks.push(Block {
                    expand,
                    depthwise,
                    se_reduce: pointwise_linear(&w, &format!("{p}.squeeze_excite.reduce"))?,
                    se_expand: pointwise_linear(&w, &format!("{p}.squeeze_excite.expand"))?,
                    project: w.conv_bn(
                        &format!("{p}.projection.project_conv"),
                        &format!("{p}.projection.project_bn"),
                        eps,
                        Conv2dParams::default(),
                    )?,
                    // transformers adds the input back in every block but the first of a stage.
                    residual: j > 0,
                });
            }
        }
        if w.contains(&format!(
            "efficientnet.encoder.blocks.{}.projection.project_conv.weight",
            blocks.len()
        )) {
            return Err(Error::Model(
                "EfficientNet: the checkpoint has more blocks than its config.json describes"
                    .into(),
            ));
        }
        let top = w.conv_bn(
            "efficientnet.encoder.top_conv",
            "efficientnet.encoder.top_bn",
            eps,
            Conv2dParams::default(),
        )?;
        Ok(Self {
            stem,
            blocks,
            top,
            max_pool: config.pooling_type == "max",
            classifier: w.linear("classifier")?,
        })
    }

    /// Logits (b, labels) of a normalised batch (b, 3, h, w).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.classifier.weight().dtype())?;
        let mut x = self.stem.forward(&x)?.silu()?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let x = self.top.forward(&x)?.silu()?.flatten_from(2)?;
        let pooled = if self.max_pool {
            x.max(D::Minus1)?
        } else {
            x.mean(D::Minus1)?
        };
        Ok(self.classifier.forward(&pooled)?)
    }
}
