//! ConvNeXt as in transformers' `ConvNextForImageClassification` (facebook/convnext-*): keys
//! `convnext.embeddings.{patch_embeddings,layernorm}`, `convnext.encoder.stages.S.
//! {downsampling_layer.{0,1},layers.L.{dwconv,layernorm,pwconv1,pwconv2,layer_scale_parameter}}`,
//! `convnext.layernorm`, `classifier`. Reference: transformers
//! `models/convnext/modeling_convnext.py` (v5.24).

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{LayerNorm, Linear};
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams, Padding2d};
use serde::Deserialize;

use crate::weights::Weights;
use crate::{Error, Result};

/// ConvNeXt's own layer norms (stem, downsampling, blocks) use 1e-6 whatever the config says.
const INNER_EPS: f64 = 1e-6;

/// The fields of a ConvNeXt `config.json` that shape the network.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Channels per stage.
    pub hidden_sizes: Vec<usize>,
    /// Blocks per stage.
    pub depths: Vec<usize>,
    /// Stem patch size.
    #[serde(default = "patch_size")]
    pub patch_size: usize,
    /// Epsilon of the final layer norm.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// MLP activation (`gelu`, exact).
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn patch_size() -> usize {
    4
}
fn eps() -> f64 {
    1e-12
}
fn gelu() -> String {
    "gelu".into()
}

/// Layer norm over the channels of (b, c, h, w).
fn channels_first(ln: &LayerNorm, x: &Tensor) -> Result<Tensor> {
    Ok(ln
        .forward(&x.permute((0, 2, 3, 1))?)?
        .permute((0, 3, 1, 2))?)
}

#[derive(Debug, Clone)]
struct Block {
    dwconv: Conv2d,
    ln: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    scale: Option<Tensor>,
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.dwconv.forward(x)?.permute((0, 2, 3, 1))?;
        let h = self.ln.forward(&h)?;
        let mut h = self.fc2.forward(&self.fc1.forward(&h)?.gelu_erf()?)?;
        if let Some(scale) = &self.scale {
            h = h.broadcast_mul(scale)?;
        }
        Ok((x + h.permute((0, 3, 1, 2))?)?)
    }
}

#[derive(Debug, Clone)]
struct Stage {
    downsample: Option<(LayerNorm, Conv2d)>,
    blocks: Vec<Block>,
}

/// ConvNeXt with its classification head.
#[derive(Debug, Clone)]
pub struct ConvNext {
    patch: Conv2d,
    stem_ln: LayerNorm,
    stages: Vec<Stage>,
    ln: LayerNorm,
    classifier: Linear,
}

impl ConvNext {
    /// Builds the model from a transformers state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if config.hidden_act != "gelu" {
            return Err(Error::Model(format!(
                "ConvNeXt with hidden_act {} is not supported (only gelu)",
                config.hidden_act
            )));
        }
        let w = Weights::new(tensors, device, dtype);
        let p = config.patch_size;
        let patch = w.conv(
            "convnext.embeddings.patch_embeddings",
            Conv2dParams {
                stride: (p, p),
                ..Default::default()
            },
        )?;
        let stem_ln = w.layer_norm("convnext.embeddings.layernorm", INNER_EPS)?;
        let mut stages = Vec::new();
        for (s, (&depth, &dim)) in config.depths.iter().zip(&config.hidden_sizes).enumerate() {
            let sp = format!("convnext.encoder.stages.{s}");
            let downsample = if w.contains(&format!("{sp}.downsampling_layer.1.weight")) {
                let conv = w.conv(
                    &format!("{sp}.downsampling_layer.1"),
                    Conv2dParams {
                        stride: (2, 2),
                        ..Default::default()
                    },
                )?;
                let ln = w.layer_norm(&format!("{sp}.downsampling_layer.0"), INNER_EPS)?;
                Some((ln, conv))
            } else {
                None
            };
            let blocks = (0..depth)
                .map(|l| {
                    let lp = format!("{sp}.layers.{l}");
                    let scale = format!("{lp}.layer_scale_parameter");
                    Ok(Block {
                        dwconv: w.conv(
                            &format!("{lp}.dwconv"),
                            Conv2dParams {
                                padding: Padding2d::uniform(3),
                                groups: dim,
                                ..Default::default()
                            },
                        )?,
                        ln: w.layer_norm(&format!("{lp}.layernorm"), INNER_EPS)?,
                        fc1: w.linear(&format!("{lp}.pwconv1"))?,
                        fc2: w.linear(&format!("{lp}.pwconv2"))?,
                        scale: w.contains(&scale).then(|| w.get(&scale)).transpose()?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            stages.push(Stage { downsample, blocks });
        }
        Ok(Self {
            patch,
            stem_ln,
            stages,
            ln: w.layer_norm("convnext.layernorm", config.layer_norm_eps)?,
            classifier: w.linear("classifier")?,
        })
    }

    /// Logits (b, labels) of a normalised batch (b, 3, h, w).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.classifier.weight().dtype())?;
        // 1. patchify stem
        let mut x = channels_first(&self.stem_ln, &self.patch.forward(&x)?)?;
        // 2. stages (layer norm + 2×2/2 convolution between them)
        for stage in &self.stages {
            if let Some((ln, conv)) = &stage.downsample {
                x = conv.forward(&channels_first(ln, &x)?)?;
            }
            for block in &stage.blocks {
                x = block.forward(&x)?;
            }
        }
        // 3. global average pool, layer norm, linear head
        let pooled = x.flatten_from(2)?.mean(D::Minus1)?;
        Ok(self.classifier.forward(&self.ln.forward(&pooled)?)?)
    }
}
