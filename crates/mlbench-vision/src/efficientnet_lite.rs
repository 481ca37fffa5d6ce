//! EfficientNet-Lite in the layout of the PyTorch port that its published weights use
//! (lukemelas/EfficientNet-PyTorch keys, `efficientnet-lite-pytorch` 0.1.0 on PyPI:
//! `_conv_stem`, `_bn0`, `_blocks.N._{expand_conv,bn0,depthwise_conv,bn1,project_conv,bn2}`,
//! `_conv_head`, `_bn1`, `_fc`).
//!
//! Lite differs from EfficientNet B0–B7 in ReLU6 instead of Swish, no squeeze-and-excitation,
//! and stem and head that are not scaled. Convolutions use TensorFlow's "same" padding computed
//! statically from the image size (`Conv2dStaticSamePadding`); batch norm (eps 1e-3) is folded
//! into the convolution weights at load.
//! Reference: tensorflow/tpu `models/official/efficientnet/lite/efficientnet_lite_builder.py`.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor, D};
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams, Padding2d};

use crate::weights::Weights;
use crate::{Error, Result};

/// One stage of MBConv blocks, as in the builder's block strings (`r2_k3_s22_e6_i16_o24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Number of blocks.
    pub repeats: usize,
    /// Depthwise kernel size.
    pub kernel: usize,
    /// Stride of the first block.
    pub stride: usize,
    /// Expansion ratio.
    pub expand: usize,
}

/// The architecture: input size, stages and batch-norm epsilon.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Name, for messages and reports.
    pub name: String,
    /// Square input size the static padding is computed for.
    pub image_size: usize,
    /// The MBConv stages.
    pub stages: Vec<Stage>,
    /// Batch-norm epsilon.
    pub bn_eps: f64,
}

impl Config {
    /// EfficientNet-lite0: 224×224, 16 blocks.
    pub fn lite0() -> Self {
        let s = |repeats, kernel, stride, expand| Stage {
            repeats,
            kernel,
            stride,
            expand,
        };
        Self {
            name: "efficientnet-lite0".into(),
            image_size: 224,
            stages: vec![
                s(1, 3, 1, 1),
                s(2, 3, 2, 6),
                s(2, 5, 2, 6),
                s(3, 3, 2, 6),
                s(3, 5, 1, 6),
                s(4, 5, 2, 6),
                s(1, 3, 1, 6),
            ],
            bn_eps: 1e-3,
        }
    }

    /// The number of MBConv blocks.
    pub fn blocks(&self) -> usize {
        self.stages.iter().map(|s| s.repeats).sum()
    }
}

/// Static TF-same padding of a `kernel`×`kernel` convolution with `stride` on a `size`² input.
fn same(size: usize, kernel: usize, stride: usize, groups: usize) -> Conv2dParams {
    Conv2dParams {
        padding: Padding2d::same((size, size), (kernel, kernel), (stride, stride), (1, 1)),
        stride: (stride, stride),
        groups,
        ..Default::default()
    }
}

/// min(max(x, 0), 6). On the CPU in f32 it runs in place on the (fresh, unshared) output of
/// the convolution before it: Candle's `clamp` is two broadcast passes with two allocations,
/// which cost as much as the depthwise convolutions themselves.
fn relu6(x: Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && x.is_contiguous() {
        x.inplace_op1(&Relu6)?;
        Ok(x)
    } else {
        Ok(x.clamp(0f32, 6f32)?)
    }
}

struct Relu6;

impl candle_core::InplaceOp1 for Relu6 {
    fn name(&self) -> &'static str {
        "relu6"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("relu6: expected f32 storage")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("relu6: expected a contiguous tensor")
        };
        for v in &mut data[start..end] {
            *v = v.clamp(0.0, 6.0);
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct MbConv {
    expand: Option<Conv2d>,
    depthwise: Conv2d,
    project: Conv2d,
    residual: bool,
}

impl MbConv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        if let Some(expand) = &self.expand {
            h = relu6(expand.forward(&h)?)?;
        }
        h = relu6(self.depthwise.forward(&h)?)?;
        h = self.project.forward(&h)?;
        if self.residual {
            h = (h + x)?;
        }
        Ok(h)
    }
}

/// EfficientNet-Lite with its classifier head.
#[derive(Debug, Clone)]
pub struct EfficientNetLite {
    config: Config,
    stem: Conv2d,
    blocks: Vec<MbConv>,
    head: Conv2d,
    fc_weight: Tensor,
    fc_bias: Tensor,
}

impl EfficientNetLite {
    /// Builds the model from a lukemelas-layout state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let w = Weights::new(tensors, device, dtype);
        let eps = config.bn_eps;
        let mut size = config.image_size;
        let stem = w.conv_bn("_conv_stem", "_bn0", eps, same(size, 3, 2, 1))?;
        size = size.div_ceil(2);
        let mut blocks = Vec::with_capacity(config.blocks());
        let mut cin = stem.weight().dim(0)?;
        for stage in &config.stages {
            for r in 0..stage.repeats {
                let p = format!("_blocks.{}", blocks.len());
                let stride = if r == 0 { stage.stride } else { 1 };
                let expand = if stage.expand != 1 {
                    let conv = w.conv_bn(
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        eps,
                        same(size, 1, 1, 1),
                    )?;
                    Some(conv)
                } else {
                    None
                };
                let mid = match &expand {
                    Some(e) => e.weight().dim(0)?,
                    None => cin,
                };
                let depthwise = w.conv_bn(
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    eps,
                    same(size, stage.kernel, stride, mid),
                )?;
                size = size.div_ceil(stride);
                let project = w.conv_bn(
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    eps,
                    same(size, 1, 1, 1),
                )?;
                let cout = project.weight().dim(0)?;
                blocks.push(MbConv {
                    expand,
                    depthwise,
                    project,
                    residual: stride == 1 && cin == cout,
                });
                cin = cout;
            }
        }
        if w.contains(&format!("_blocks.{}._project_conv.weight", blocks.len())) {
            return Err(Error::Model(format!(
                "the checkpoint has more MBConv blocks than {} ({}): only lite0 is supported",
                config.name,
                config.blocks()
            )));
        }
        let head = w.conv_bn("_conv_head", "_bn1", eps, same(size, 1, 1, 1))?;
        let fc_weight = w.get("_fc.weight")?;
        let fc_bias = w.get("_fc.bias")?;
        Ok(Self {
            config,
            stem,
            blocks,
            head,
            fc_weight,
            fc_bias,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The number of classes of the head.
    pub fn num_classes(&self) -> usize {
        self.fc_bias.dims1().unwrap_or(0)
    }

    /// Logits (b, classes) of a normalised batch (b, 3, h, w).
    ///
    /// On the CPU the images go through one at a time: the kernels already use every core
    /// within one image, and a batch's activations (38 MB after the first expansion for 8
    /// images) fall out of the caches between layers: batch 8 cost 1.4× more per image.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let b = x.dim(0)?;
        if x.device().is_cpu() && b > 1 {
            let logits = (0..b)
                .map(|i| self.forward_batch(&x.narrow(0, i, 1)?))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Tensor::cat(&logits, 0)?);
        }
        self.forward_batch(x)
    }

    fn forward_batch(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = relu6(self.stem.forward(&x.to_dtype(self.fc_weight.dtype())?)?)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        let x = relu6(self.head.forward(&x)?)?;
        let pooled = x.flatten_from(2)?.mean(D::Minus1)?;
        Ok(pooled
            .matmul(&self.fc_weight.t()?)?
            .broadcast_add(&self.fc_bias)?)
    }
}
