//! diffusers' `AutoencoderKL`, configured from the checkpoint's own `vae/config.json`.
//!
//! Our own blocks on mlbench-core's convolution and attention kernels; options they do not
//! implement are rejected by [`Vae::load`]. Reference: diffusers 0.42.1
//! `src/diffusers/models/autoencoders/autoencoder_kl.py`.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use mlbench_core::kernels::attention::attention_merged;
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams, Padding2d};
use serde_json::{json, Value};

use crate::config::{check_defaults, VaeConfig};
use crate::norm::{group_norm, GroupNorm};
use crate::{Error, Result};

type CResult<T> = candle_core::Result<T>;

const FILE: &str = "vae/config.json";
const EPS: f64 = 1e-6;

/// The latent ↔ image autoencoder.
#[derive(Debug)]
pub struct Vae {
    encoder: Encoder,
    decoder: Decoder,
    quant_conv: Option<Conv2d>,
    post_quant_conv: Option<Conv2d>,
    config: VaeConfig,
}

/// The latent distribution of an encoded image (unscaled, as diffusers' `latent_dist`).
#[derive(Debug, Clone)]
pub struct LatentDist {
    /// Mean (B, latent_channels, H/f, W/f).
    pub mean: Tensor,
    /// Standard deviation, same shape.
    pub std: Tensor,
}

impl Vae {
    /// Builds the autoencoder of `config` from `vb` (keys as in `diffusion_pytorch_model.safetensors`).
    pub fn load(config: VaeConfig, vb: VarBuilder) -> Result<Self> {
        check(&config)?;
        let build = || -> candle_core::Result<Self> {
            let lc = config.latent_channels;
            Ok(Self {
                encoder: Encoder::new(vb.pp("encoder"), &config)?,
                decoder: Decoder::new(vb.pp("decoder"), &config)?,
                quant_conv: config
                    .use_quant_conv
                    .then(|| one_by_one(vb.pp("quant_conv"), 2 * lc, 2 * lc))
                    .transpose()?,
                post_quant_conv: config
                    .use_post_quant_conv
                    .then(|| one_by_one(vb.pp("post_quant_conv"), lc, lc))
                    .transpose()?,
                config: config.clone(),
            })
        };
        build().map_err(|e| Error::Model(format!("vae: {e}")))
    }

    /// The checkpoint's configuration.
    pub fn config(&self) -> &VaeConfig {
        &self.config
    }

    /// Decodes scaled latents (as the UNet sees them) to images in about [-1, 1] (B, 3, H, W).
    pub fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        let z = (latents / self.config.scaling_factor)?;
        let z = match &self.post_quant_conv {
            Some(conv) => conv.forward(&z)?,
            None => z,
        };
        Ok(self.decoder.forward(&z)?)
    }

    /// Encodes images in [-1, 1] (B, 3, H, W) to their latent distribution (unscaled).
    pub fn encode(&self, images: &Tensor) -> Result<LatentDist> {
        let h = self.encoder.forward(images)?;
        let h = match &self.quant_conv {
            Some(conv) => conv.forward(&h)?,
            None => h,
        };
        let lc = self.config.latent_channels;
        let mean = h.narrow(1, 0, lc)?;
        let logvar = h.narrow(1, lc, lc)?.clamp(-30f32, 20f32)?;
        let std = (logvar * 0.5)?.exp()?;
        Ok(LatentDist { mean, std })
    }
}

fn conv(vb: VarBuilder, c_in: usize, c_out: usize, k: usize, p: Conv2dParams) -> CResult<Conv2d> {
    let weight = vb.get((c_out, c_in, k, k), "weight")?;
    let bias = vb.get(c_out, "bias")?;
    Conv2d::new(weight, Some(bias), p)
}

fn padded(vb: VarBuilder, c_in: usize, c_out: usize) -> CResult<Conv2d> {
    let p = Conv2dParams {
        padding: Padding2d::uniform(1),
        ..Default::default()
    };
    conv(vb, c_in, c_out, 3, p)
}

fn one_by_one(vb: VarBuilder, c_in: usize, c_out: usize) -> CResult<Conv2d> {
    conv(vb, c_in, c_out, 1, Conv2dParams::default())
}

/// diffusers `ResnetBlock2D` without time embedding.
#[derive(Debug)]
struct Resnet {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
}

impl Resnet {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize, groups: usize) -> CResult<Self> {
        Ok(Self {
            norm1: group_norm(groups, c_in, EPS, vb.pp("norm1"))?,
            conv1: padded(vb.pp("conv1"), c_in, c_out)?,
            norm2: group_norm(groups, c_out, EPS, vb.pp("norm2"))?,
            conv2: padded(vb.pp("conv2"), c_out, c_out)?,
            conv_shortcut: (c_in != c_out)
                .then(|| one_by_one(vb.pp("conv_shortcut"), c_in, c_out))
                .transpose()?,
        })
    }

    fn forward(&self, xs: &Tensor) -> CResult<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_act(xs, true)?)?;
        let h = self.conv2.forward(&self.norm2.forward_act(&h, true)?)?;
        match &self.conv_shortcut {
            Some(s) => s.forward(xs)? + h,
            None => xs + h,
        }
    }
}

/// The mid block's single-head self-attention (`to_q` … or the older `query` … names).
#[derive(Debug)]
struct Attention {
    group_norm: GroupNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
}

impl Attention {
    fn new(vb: VarBuilder, ch: usize, groups: usize) -> CResult<Self> {
        let names = if vb.contains_tensor("to_q.weight") {
            ["to_q", "to_k", "to_v", "to_out.0"]
        } else {
            ["query", "key", "value", "proj_attn"]
        };
        let lin = |name: &str| -> CResult<Linear> {
            let vb = vb.pp(name);
            // Old checkpoints store these as 1×1 convolutions.
            let weight = match vb.get((ch, ch), "weight") {
                Ok(w) => w,
                Err(_) => vb.get((ch, ch, 1, 1), "weight")?.reshape((ch, ch))?,
            };
            Ok(Linear::new(weight, Some(vb.get(ch, "bias")?)))
        };
        Ok(Self {
            group_norm: group_norm(groups, ch, EPS, vb.pp("group_norm"))?,
            q: lin(names[0])?,
            k: lin(names[1])?,
            v: lin(names[2])?,
            out: lin(names[3])?,
        })
    }

    fn forward(&self, xs: &Tensor) -> CResult<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let x = self
            .group_norm
            .forward(xs)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let head = |l: &Linear| -> CResult<Tensor> { l.forward(&x)?.unsqueeze(1) };
        let (q, k, v) = (head(&self.q)?, head(&self.k)?, head(&self.v)?);
        let attn = attention_merged(&q, &k, &v, (c as f32).powf(-0.5), None)?;
        let out = self
            .out
            .forward(&attn)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, c, h, w))?;
        out + xs
    }
}

/// `UNetMidBlock2D`: resnet, attention, resnet.
#[derive(Debug)]
struct MidBlock {
    resnet_0: Resnet,
    attention: Attention,
    resnet_1: Resnet,
}

fn mid_block(vb: VarBuilder, ch: usize, groups: usize) -> CResult<MidBlock> {
    Ok(MidBlock {
        resnet_0: Resnet::new(vb.pp("resnets.0"), ch, ch, groups)?,
        attention: Attention::new(vb.pp("attentions.0"), ch, groups)?,
        resnet_1: Resnet::new(vb.pp("resnets.1"), ch, ch, groups)?,
    })
}

impl MidBlock {
    fn forward(&self, xs: &Tensor) -> CResult<Tensor> {
        let xs = self.resnet_0.forward(xs)?;
        let xs = self.attention.forward(&xs)?;
        self.resnet_1.forward(&xs)
    }
}

/// `DownEncoderBlock2D` / `UpDecoderBlock2D`: resnets, then a resampling convolution.
#[derive(Debug)]
struct Level {
    resnets: Vec<Resnet>,
    resample: Option<Conv2d>,
}

/// diffusers `Encoder` (`autoencoders/vae.py`), with `double_z`.
#[derive(Debug)]
struct Encoder {
    conv_in: Conv2d,
    down_blocks: Vec<Level>,
    mid_block: MidBlock,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Encoder {
    fn new(vb: VarBuilder, c: &VaeConfig) -> CResult<Self> {
        let ch = &c.block_out_channels;
        let g = c.norm_num_groups;
        let last = ch[ch.len() - 1];
        // The downsampler pads one row and column at the bottom/right only.
        let down = Conv2dParams {
            padding: Padding2d {
                top: 0,
                bottom: 1,
                left: 0,
                right: 1,
            },
            stride: (2, 2),
            ..Default::default()
        };
        let down_blocks = (0..ch.len())
            .map(|i| {
                let vb = vb.pp(format!("down_blocks.{i}"));
                let c_in = ch[i.saturating_sub(1)];
                Ok(Level {
                    resnets: (0..c.layers_per_block)
                        .map(|j| {
                            let r_in = if j == 0 { c_in } else { ch[i] };
                            Resnet::new(vb.pp(format!("resnets.{j}")), r_in, ch[i], g)
                        })
                        .collect::<CResult<_>>()?,
                    resample: (i + 1 < ch.len())
                        .then(|| conv(vb.pp("downsamplers.0.conv"), ch[i], ch[i], 3, down))
                        .transpose()?,
                })
            })
            .collect::<CResult<_>>()?;
        Ok(Self {
            conv_in: padded(vb.pp("conv_in"), c.in_channels, ch[0])?,
            down_blocks,
            mid_block: mid_block(vb.pp("mid_block"), last, g)?,
            conv_norm_out: group_norm(g, last, EPS, vb.pp("conv_norm_out"))?,
            conv_out: padded(vb.pp("conv_out"), last, 2 * c.latent_channels)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> CResult<Tensor> {
        let mut xs = self.conv_in.forward(xs)?;
        for block in &self.down_blocks {
            for r in &block.resnets {
                xs = r.forward(&xs)?;
            }
            if let Some(d) = &block.resample {
                xs = d.forward(&xs)?;
            }
        }
        let xs = self.mid_block.forward(&xs)?;
        let xs = self.conv_norm_out.forward_act(&xs, true)?;
        self.conv_out.forward(&xs)
    }
}

/// diffusers `Decoder` (`autoencoders/vae.py`).
#[derive(Debug)]
struct Decoder {
    conv_in: Conv2d,
    mid_block: MidBlock,
    up_blocks: Vec<Level>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl Decoder {
    fn new(vb: VarBuilder, c: &VaeConfig) -> CResult<Self> {
        let rev: Vec<usize> = c.block_out_channels.iter().rev().copied().collect();
        let g = c.norm_num_groups;
        let up_blocks = (0..rev.len())
            .map(|i| {
                let vb = vb.pp(format!("up_blocks.{i}"));
                let c_in = rev[i.saturating_sub(1)];
                Ok(Level {
                    resnets: (0..c.layers_per_block + 1)
                        .map(|j| {
                            let r_in = if j == 0 { c_in } else { rev[i] };
                            Resnet::new(vb.pp(format!("resnets.{j}")), r_in, rev[i], g)
                        })
                        .collect::<CResult<_>>()?,
                    resample: (i + 1 < rev.len())
                        .then(|| padded(vb.pp("upsamplers.0.conv"), rev[i], rev[i]))
                        .transpose()?,
                })
            })
            .collect::<CResult<_>>()?;
        let first = c.block_out_channels[0];
        Ok(Self {
            conv_in: padded(vb.pp("conv_in"), c.latent_channels, rev[0])?,
            mid_block: mid_block(vb.pp("mid_block"), rev[0], g)?,
            up_blocks,
            conv_norm_out: group_norm(g, first, EPS, vb.pp("conv_norm_out"))?,
            conv_out: padded(vb.pp("conv_out"), first, c.out_channels)?,
        })
    }

    fn forward(&self, xs: &Tensor) -> CResult<Tensor> {
        let mut xs = self.mid_block.forward(&self.conv_in.forward(xs)?)?;
        for block in &self.up_blocks {
            for r in &block.resnets {
                xs = r.forward(&xs)?;
            }
            if let Some(up) = &block.resample {
                let (h, w) = (xs.dim(2)? * 2, xs.dim(3)? * 2);
                xs = up.forward(&xs.upsample_nearest2d(h, w)?)?;
            }
        }
        let xs = self.conv_norm_out.forward_act(&xs, true)?;
        self.conv_out.forward(&xs)
    }
}

fn check(c: &VaeConfig) -> Result<()> {
    check_defaults(FILE, &c.other, &unsupported_at_default())?;
    let n = c.block_out_channels.len();
    let bad = |types: &[String], want: &str| {
        (!types.is_empty() && (types.len() != n || types.iter().any(|t| t != want))).then(|| {
            Error::Model(format!(
                "{FILE}: block types {types:?} are not supported (only {want})"
            ))
        })
    };
    if let Some(e) = bad(&c.down_block_types, "DownEncoderBlock2D") {
        return Err(e);
    }
    if let Some(e) = bad(&c.up_block_types, "UpDecoderBlock2D") {
        return Err(e);
    }
    if n == 0
        || c.block_out_channels
            .iter()
            .any(|ch| !ch.is_multiple_of(c.norm_num_groups))
    {
        return Err(Error::Model(format!(
            "{FILE}: block_out_channels {:?} do not split into {} groups",
            c.block_out_channels, c.norm_num_groups
        )));
    }
    Ok(())
}

fn unsupported_at_default() -> Vec<(&'static str, Value)> {
    vec![
        ("act_fn", json!("silu")),
        ("mid_block_add_attention", json!(true)),
        ("shift_factor", Value::Null),
        ("latents_mean", Value::Null),
        ("latents_std", Value::Null),
    ]
}
