//! MobileNetV4 (convolutional variants) in timm's layout (timm/mobilenetv4_conv_{small,medium,
//! large}.*): keys `conv_stem`, `bn1`, `blocks.S.B.*` with three block kinds recognised by their
//! tensors — `conv`+`bn1` (conv-BN-ReLU), `conv_exp`+`bn1`+`conv_pwl`+`bn2` (fused inverted
//! bottleneck) and `dw_start`/`pw_exp`/`dw_mid`/`pw_proj`/`dw_end` (universal inverted bottleneck,
//! each `.conv` + `.bn`, optional `layer_scale.gamma`) — then `conv_head`, `norm_head`,
//! `classifier` after global average pooling. Kernel sizes, widths and groups come from the
//! tensors; strides from the MobileNetV4 layout (stem and the first block of stages 0–3 halve the
//! resolution). The checkpoint's `config.json` is timm's (`architecture`, `label_names`,
//! `pretrained_cfg` with the preprocessing). Batch norms are folded into the convolutions.
//! Reference: timm 1.0.31 `models/mobilenetv3.py` (`_gen_mobilenet_v4`),
//! `models/_efficientnet_blocks.py`.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::Linear;
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams, Padding2d};
use serde::Deserialize;

use crate::image::{Filter, Preprocess, Resize};
use crate::weights::Weights;
use crate::{Error, Result};

/// timm's batch-norm epsilon (PyTorch's default).
const BN_EPS: f64 = 1e-5;

/// The fields of a timm `config.json` used here.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// timm model name, e.g. `mobilenetv4_conv_small`.
    pub architecture: String,
    /// Class names by index (absent in ImageNet checkpoints).
    #[serde(default)]
    pub label_names: Vec<String>,
    /// The preprocessing the weights were trained with.
    pub pretrained_cfg: PretrainedCfg,
}

/// timm's `pretrained_cfg`: input size and eval transform.
#[derive(Debug, Clone, Deserialize)]
pub struct PretrainedCfg {
    /// (channels, height, width).
    pub input_size: [u32; 3],
    /// Resize filter (`bicubic`, `bilinear`, `nearest`).
    #[serde(default = "bicubic")]
    pub interpolation: String,
    /// Crop fraction: the short side is resized to `floor(size / crop_pct)`, then centre-cropped.
    #[serde(default = "crop_pct")]
    pub crop_pct: f64,
    /// Crop mode (only `center`).
    #[serde(default = "center")]
    pub crop_mode: String,
    /// Per-channel mean (of 0..1 pixels).
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
}

fn bicubic() -> String {
    "bicubic".into()
}
fn crop_pct() -> f64 {
    0.875
}
fn center() -> String {
    "center".into()
}

impl Config {
    /// timm's eval transform for this checkpoint: resize the short side to
    /// `floor(size / crop_pct)`, centre-crop, `/255`, normalise.
    pub fn preprocess(&self) -> Result<Preprocess> {
        let c = &self.pretrained_cfg;
        let [_, h, w] = c.input_size;
        if c.crop_mode != "center" || h != w || c.crop_pct.is_nan() || c.crop_pct <= 0.0 {
            return Err(Error::Model(format!(
                "config.json: timm pretrained_cfg with crop_mode {:?}, input {h}×{w}, crop_pct {} is not supported (center, square)",
                c.crop_mode, c.crop_pct
            )));
        }
        let filter = match c.interpolation.as_str() {
            "bicubic" => Filter::Bicubic,
            "bilinear" => Filter::Bilinear,
            "nearest" => Filter::Nearest,
            other => {
                return Err(Error::Model(format!(
                    "config.json: timm interpolation {other:?} is not supported"
                )))
            }
        };
        Ok(Preprocess {
            resize: Resize::ShortSideFloor((h as f64 / c.crop_pct).floor() as u32),
            filter,
            crop: Some((w, h)),
            round_crop: true,
            rescale: 1.0 / 255.0,
            mean: c.mean,
            std: c.std,
        })
    }
}

/// A convolution with its batch norm folded in, and whether ReLU follows.
#[derive(Debug, Clone)]
struct ConvBn {
    conv: Conv2d,
    relu: bool,
}

impl ConvBn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.conv.forward(x)?;
        Ok(if self.relu { y.relu()? } else { y })
    }
}

#[derive(Debug, Clone)]
enum Block {
    /// conv-BN-ReLU (`cn`).
    Conv(ConvBn),
    /// Fused inverted bottleneck (`er`): k×k expansion, 1×1 projection.
    Fused {
        exp: ConvBn,
        pwl: ConvBn,
        skip: bool,
    },
    /// Universal inverted bottleneck (`uir`): optional depthwise convs around the expansion.
    Universal {
        convs: Vec<ConvBn>,
        scale: Option<Tensor>,
        skip: bool,
    },
}

impl Block {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Conv(c) => c.forward(x),
            Self::Fused { exp, pwl, skip } => {
                let y = pwl.forward(&exp.forward(x)?)?;
                Ok(if *skip { (y + x)? } else { y })
            }
            Self::Universal { convs, scale, skip } => {
                let mut y = x.clone();
                for c in convs {
                    y = c.forward(&y)?;
                }
                if let Some(g) = scale {
                    y = y.broadcast_mul(g)?;
                }
                Ok(if *skip { (y + x)? } else { y })
            }
        }
    }
}

/// MobileNetV4 with its classifier.
#[derive(Debug, Clone)]
pub struct MobileNetV4 {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    classifier: Linear,
}

/// Loads `PREFIX.weight` (a convolution of input width `cin`) with batch norm `bn` folded in;
/// padding as timm's default (`((stride − 1) + (k − 1)) / 2`), groups from the weight's shape.
fn conv_bn(
    w: &Weights,
    conv: &str,
    bn: &str,
    cin: usize,
    stride: usize,
    relu: bool,
) -> Result<(ConvBn, usize)> {
    let shape = w.raw(&format!("{conv}.weight"))?.dims().to_vec();
    let [cout, per_group, k, _] = shape[..] else {
        return Err(Error::Model(format!(
            "{conv}.weight has shape {shape:?}, expected 4 dimensions"
        )));
    };
    if per_group == 0 || !cin.is_multiple_of(per_group) {
        return Err(Error::Model(format!(
            "{conv}.weight has shape {shape:?}, which does not fit {cin} input channels"
        )));
    }
    let params = Conv2dParams {
        padding: Padding2d::uniform(((stride - 1) + (k - 1)) / 2),
        stride: (stride, stride),
        groups: cin / per_group,
        ..Default::default()
    };
    let conv = w.conv_bn(conv, bn, BN_EPS, params)?;
    Ok((ConvBn { conv, relu }, cout))
}

impl MobileNetV4 {
    /// Builds the model from a timm state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let arch = &config.architecture;
        if !arch.starts_with("mobilenetv4_conv_") || arch.contains("_aa") || arch.contains("blur") {
            return Err(Error::Model(format!(
                "timm architecture {arch} is not supported (mobilenetv4_conv_small/medium/large)"
            )));
        }
        let w = Weights::new(tensors, device, dtype);
        let (stem, mut c) = conv_bn(&w, "conv_stem", "bn1", 3, 2, true)?;
        let mut blocks = Vec::new();
        let stages = (0..)
            .take_while(|s| {
                tensors
                    .keys()
                    .any(|k| k.starts_with(&format!("blocks.{s}.0.")))
            })
            .count();
        if stages != 5 {
            return Err(Error::Model(format!(
                "{arch}: {stages} stages in blocks.*, MobileNetV4 has 5"
            )));
        }
        for s in 0..stages {
            let count = (0..)
                .take_while(|b| {
                    let p = format!("blocks.{s}.{b}.");
                    tensors.keys().any(|k| k.starts_with(&p))
                })
                .count();
            for b in 0..count {
                let stride = if b == 0 && s < 4 { 2 } else { 1 };
                let (block, out) = Self::load_block(&w, &format!("blocks.{s}.{b}"), c, stride)?;
                blocks.push(block);
                c = out;
            }
        }
        let (head, _) = conv_bn(&w, "conv_head", "norm_head", c, 1, true)?;
        Ok(Self {
            stem,
            blocks,
            head,
            classifier: w.linear("classifier")?,
        })
    }

    fn load_block(w: &Weights, p: &str, cin: usize, stride: usize) -> Result<(Block, usize)> {
        let has = |name: &str| w.contains(&format!("{p}.{name}.weight"));
        if has("conv_exp") {
            let (exp, mid) = conv_bn(
                w,
                &format!("{p}.conv_exp"),
                &format!("{p}.bn1"),
                cin,
                stride,
                true,
            )?;
            let (pwl, out) = conv_bn(
                w,
                &format!("{p}.conv_pwl"),
                &format!("{p}.bn2"),
                mid,
                1,
                false,
            )?;
            let skip = cin == out && stride == 1;
            return Ok((Block::Fused { exp, pwl, skip }, out));
        }
        if has("conv") {
            let (c, out) = conv_bn(
                w,
                &format!("{p}.conv"),
                &format!("{p}.bn1"),
                cin,
                stride,
                true,
            )?;
            return Ok((Block::Conv(c), out));
        }
        if !has("pw_exp.conv") {
            return Err(Error::Model(format!(
                "{p}: not a MobileNetV4 convolutional block (attention blocks of the hybrid variants are not supported)"
            )));
        }
        let (start, mid, end) = (has("dw_start.conv"), has("dw_mid.conv"), has("dw_end.conv"));
        let mut convs = Vec::new();
        let mut c = cin;
        // (name, present, stride, relu): the stride sits on the first depthwise conv that has it
        // in timm (mid, else start, else end).
        let layers = [
            ("dw_start", start, if mid { 1 } else { stride }, false),
            ("pw_exp", true, 1, true),
            ("dw_mid", mid, stride, true),
            ("pw_proj", true, 1, false),
            ("dw_end", end, if start || mid { 1 } else { stride }, false),
        ];
        for (name, present, s, relu) in layers {
            if present {
                let (conv, out) = conv_bn(
                    w,
                    &format!("{p}.{name}.conv"),
                    &format!("{p}.{name}.bn"),
                    c,
                    s,
                    relu,
                )?;
                convs.push(conv);
                c = out;
            }
        }
        let scale = format!("{p}.layer_scale.gamma");
        let scale = w
            .contains(&scale)
            .then(|| -> Result<Tensor> { Ok(w.get(&scale)?.reshape((1, c, 1, 1))?) })
            .transpose()?;
        let skip = cin == c && stride == 1;
        Ok((Block::Universal { convs, scale, skip }, c))
    }

    /// Logits (b, classes) of a normalised batch (b, 3, h, w).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.classifier.weight().dtype())?;
        let mut x = self.stem.forward(&x)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        let pooled = x.mean_keepdim(3)?.mean_keepdim(2)?;
        let y = self.head.forward(&pooled)?.flatten_from(1)?;
        Ok(self.classifier.forward(&y)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(architecture: &str) -> Config {
        serde_json::from_str(&format!(
            r#"{{"architecture":"{architecture}","pretrained_cfg":{{"input_size":[3,224,224],
                "crop_pct":0.875,"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn hybrid_variants_are_refused_by_name() {
        let err = MobileNetV4::load(
            &HashMap::new(),
            &config("mobilenetv4_hybrid_medium"),
            &Device::Cpu,
            DType::F32,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn timm_eval_transform_resizes_to_size_over_crop_pct() {
        let p = config("mobilenetv4_conv_small").preprocess().unwrap();
        assert_eq!(p.resize, Resize::ShortSideFloor(256));
        assert_eq!(p.crop, Some((224, 224)));
        assert!(p.round_crop);
        assert_eq!(p.filter, Filter::Bicubic);
    }
}
