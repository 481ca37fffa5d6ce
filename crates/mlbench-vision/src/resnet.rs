//! ResNet as in transformers' `ResNetForImageClassification` (microsoft/resnet-*): keys
//! `resnet.embedder.embedder.{convolution,normalization}`, `resnet.encoder.stages.S.layers.L.
//! {shortcut,layer.N}.{convolution,normalization}`, `classifier.1`.
//! Reference: transformers `models/resnet/modeling_resnet.py` (v5.24). Batch norm (eps 1e-5) is
//! folded into the convolutions at load.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::Linear;
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams, Padding2d};
use serde::Deserialize;

use crate::weights::Weights;
use crate::{Error, Result};

const BN_EPS: f64 = 1e-5;

/// The fields of a ResNet `config.json` that shape the network.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Stem output channels.
    pub embedding_size: usize,
    /// Output channels per stage.
    pub hidden_sizes: Vec<usize>,
    /// Layers per stage.
    pub depths: Vec<usize>,
    /// `basic` (ResNet-18/34) or `bottleneck` (ResNet-50 and up).
    #[serde(default = "bottleneck")]
    pub layer_type: String,
    /// Activation; only `relu` exists in transformers' ResNet checkpoints.
    #[serde(default = "relu")]
    pub hidden_act: String,
    /// Whether the first stage downsamples (stride 2).
    #[serde(default)]
    pub downsample_in_first_stage: bool,
    /// Whether a bottleneck downsamples in its first 1×1 convolution instead of the 3×3.
    #[serde(default)]
    pub downsample_in_bottleneck: bool,
}

fn bottleneck() -> String {
    "bottleneck".into()
}

fn relu() -> String {
    "relu".into()
}

fn conv_params(kernel: usize, stride: usize) -> Conv2dParams {
    Conv2dParams {
        padding: Padding2d::uniform(kernel / 2),
        stride: (stride, stride),
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
struct Layer {
    /// ReLU after each but the last.
    convs: Vec<Conv2d>,
    shortcut: Option<Conv2d>,
}

impl Layer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward(&h)?;
            if i + 1 < self.convs.len() {
                h = h.relu()?;
            }
        }
        let residual = match &self.shortcut {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        Ok((h + residual)?.relu()?)
    }
}

/// ResNet with its classification head.
#[derive(Debug, Clone)]
pub struct ResNet {
    stem: Conv2d,
    stages: Vec<Vec<Layer>>,
    classifier: Linear,
}

impl ResNet {
    /// Builds the model from a transformers state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if config.hidden_act != "relu" {
            return Err(Error::Model(format!(
                "ResNet with hidden_act {} is not supported (only relu)",
                config.hidden_act
            )));
        }
        let bottleneck = match config.layer_type.as_str() {
            "bottleneck" => true,
            "basic" => false,
            other => return Err(Error::Model(format!("unknown ResNet layer_type {other}"))),
        };
        if config.depths.len() != config.hidden_sizes.len() {
            return Err(Error::Model(
                "ResNet config: depths and hidden_sizes differ in length".into(),
            ));
        }
        let w = Weights::new(tensors, device, dtype);
        let p = "resnet.embedder.embedder";
        let stem = w.conv_bn(
            &format!("{p}.convolution"),
            &format!("{p}.normalization"),
            BN_EPS,
            conv_params(7, 2),
        )?;
        let mut stages = Vec::new();
        for (s, &depth) in config.depths.iter().enumerate() {
            let mut layers = Vec::new();
            for l in 0..depth {
                let p = format!("resnet.encoder.stages.{s}.layers.{l}");
                let stride = match (s, l) {
                    (0, 0) if config.downsample_in_first_stage => 2,
                    (0, _) | (_, 1..) => 1,
                    _ => 2,
                };
                let conv = |n: usize, kernel: usize, stride: usize| {
                    w.conv_bn(
                        &format!("{p}.layer.{n}.convolution"),
                        &format!("{p}.layer.{n}.normalization"),
                        BN_EPS,
                        conv_params(kernel, stride),
                    )
                };
                let convs = if bottleneck {
                    let (s1, s3) = if config.downsample_in_bottleneck {
                        (stride, 1)
                    } else {
                        (1, stride)
                    };
                    vec![conv(0, 1, s1)?, conv(1, 3, s3)?, conv(2, 1, 1)?]
                } else {
                    vec![conv(0, 3, stride)?, conv(1, 3, 1)?]
                };
                let shortcut = if w.contains(&format!("{p}.shortcut.convolution.weight")) {
                    Some(w.conv_bn(
                        &format!("{p}.shortcut.convolution"),
                        &format!("{p}.shortcut.normalization"),
                        BN_EPS,
                        conv_params(1, stride),
                    )?)
                } else {
                    None
                };
                layers.push(Layer { convs, shortcut });
            }
            stages.push(layers);
        }
        Ok(Self {
            stem,
            stages,
            classifier: w.linear("classifier.1")?,
        })
    }

    /// Logits (b, labels) of a normalised batch (b, 3, h, w).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.classifier.weight().dtype())?;
        // 1. stem: 7×7/2 convolution, ReLU, 3×3/2 max pool with padding 1. The input is
        // non-negative after the ReLU, so zero padding gives the max pool's -inf padding result.
        let x = self.stem.forward(&x)?.relu()?;
        let mut x = x
            .pad_with_zeros(2, 1, 1)?
            .pad_with_zeros(3, 1, 1)?
            .max_pool2d_with_stride((3, 3), (2, 2))?;
        // 2. stages
        for stage in &self.stages {
            for layer in stage {
                x = layer.forward(&x)?;
            }
        }
        // 3. global average pool, linear head
        let pooled = x.flatten_from(2)?.mean(D::Minus1)?;
        Ok(self.classifier.forward(&pooled)?)
    }
}
