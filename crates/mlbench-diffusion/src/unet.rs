//! diffusers' `UNet2DConditionModel`, configured from the checkpoint's own `unet/config.json`.
//!
//! Our own blocks (ResnetBlock2D, Transformer2DModel with BasicTransformerBlock, down/up
//! samplers), with mlbench-core's CPU kernels for convolutions and attention. Options we do not
//! implement are rejected by [`UNet::load`]. Reference: diffusers 0.42.1
//! `src/diffusers/models/unets/unet_2d_condition.py`, `unet_2d_blocks.py`, `resnet.py`,
//! `transformers/transformer_2d.py`, `attention.py`.

use candle_core::{Module, Tensor, D};
use candle_nn::{layer_norm, linear, linear_no_bias, LayerNorm, Linear, VarBuilder};
use mlbench_core::kernels::attention::attention_merged;
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams, Padding2d};
use serde_json::{json, Value};

use crate::config::{check_defaults, PerBlock, UNetConfig};
use crate::norm::{group_norm, GroupNorm};
use crate::{Error, Result};

type CResult<T> = candle_core::Result<T>;

const FILE: &str = "unet/config.json";

/// One resolution level, as the config describes it.
#[derive(Debug, Clone, Copy)]
struct Level {
    channels: usize,
    /// Transformer depth when the level has cross-attention.
    transformer_layers: Option<usize>,
    heads: usize,
}

/// The checked shape of the network.
#[derive(Debug, Clone)]
struct Plan {
    levels: Vec<Level>,
    layers_per_block: usize,
    cross_attention_dim: usize,
    mid_transformer_layers: usize,
    /// SDXL `text_time`: (addition_time_embed_dim, projection_class_embeddings_input_dim).
    added: Option<(usize, usize)>,
}

/// The denoising UNet.
#[derive(Debug)]
pub struct UNet {
    conv_in: Conv2d,
    time_linear_1: Linear,
    time_linear_2: Linear,
    /// SDXL `text_time`: (linear_1, linear_2, width of each time id embedding).
    add_embedding: Option<(Linear, Linear, usize)>,
    down_blocks: Vec<DownBlock>,
    mid_block: MidBlock,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    config: UNetConfig,
}

impl UNet {
    /// Builds the UNet of `config` from `vb` (keys as in `diffusion_pytorch_model.safetensors`).
    pub fn load(config: UNetConfig, vb: VarBuilder) -> Result<Self> {
        let plan = plan(&config)?;
        Self::build(config, &plan, vb).map_err(|e| Error::Model(format!("unet: {e}")))
    }

    fn build(config: UNetConfig, plan: &Plan, vb: VarBuilder) -> CResult<Self> {
        let c = &config;
        let levels = &plan.levels;
        let n = levels.len();
        let ch0 = levels[0].channels;
        let temb = ch0 * 4;
        let g = (c.norm_num_groups, c.norm_eps);
        let ctx = plan.cross_attention_dim;
        let mut down_blocks = Vec::with_capacity(n);
        let mut prev = ch0;
        for (i, level) in levels.iter().enumerate() {
            let vb = vb.pp(format!("down_blocks.{i}"));
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..plan.layers_per_block {
                let c_in = if j == 0 { prev } else { level.channels };
                resnets.push(Resnet::new(
                    vb.pp(format!("resnets.{j}")),
                    c_in,
                    level.channels,
                    temb,
                    g,
                )?);
                if let Some(depth) = level.transformer_layers {
                    attentions.push(Transformer::new(
                        vb.pp(format!("attentions.{j}")),
                        level.channels,
                        level.heads,
                        depth,
                        ctx,
                        c,
                    )?);
                }
            }
            let downsampler = (i + 1 < n)
                .then(|| {
                    let p = Conv2dParams {
                        padding: Padding2d::uniform(c.downsample_padding),
                        stride: (2, 2),
                        ..Default::default()
                    };
                    conv(
                        vb.pp("downsamplers.0.conv"),
                        level.channels,
                        level.channels,
                        3,
                        p,
                    )
                })
                .transpose()?;
            down_blocks.push(DownBlock {
                resnets,
                attentions,
                downsampler,
            });
            prev = level.channels;
        }
        let last = levels[n - 1];
        let mid = vb.pp("mid_block");
        let mid_block = MidBlock {
            resnet_0: Resnet::new(mid.pp("resnets.0"), last.channels, last.channels, temb, g)?,
            attention: Transformer::new(
                mid.pp("attentions.0"),
                last.channels,
                last.heads,
                plan.mid_transformer_layers,
                ctx,
                c,
            )?,
            resnet_1: Resnet::new(mid.pp("resnets.1"), last.channels, last.channels, temb, g)?,
            scale: c.mid_block_scale_factor,
        };
        let mut up_blocks = Vec::with_capacity(n);
        let mut prev_out = last.channels;
        for i in 0..n {
            let level = levels[n - 1 - i];
            let skip_in = levels[(n - 1 - i).saturating_sub(1).min(n - 1)].channels;
            let skip_in = if i + 1 == n {
                levels[0].channels
            } else {
                skip_in
            };
            let vb = vb.pp(format!("up_blocks.{i}"));
            let layers = plan.layers_per_block + 1;
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..layers {
                let res_skip = if j + 1 == layers {
                    skip_in
                } else {
                    level.channels
                };
                let res_in = if j == 0 { prev_out } else { level.channels };
                resnets.push(Resnet::new(
                    vb.pp(format!("resnets.{j}")),
                    res_in + res_skip,
                    level.channels,
                    temb,
                    g,
                )?);
                if let Some(depth) = level.transformer_layers {
                    attentions.push(Transformer::new(
                        vb.pp(format!("attentions.{j}")),
                        level.channels,
                        level.heads,
                        depth,
                        ctx,
                        c,
                    )?);
                }
            }
            let upsampler = (i + 1 < n)
                .then(|| {
                    let p = Conv2dParams {
                        padding: Padding2d::uniform(1),
                        ..Default::default()
                    };
                    conv(
                        vb.pp("upsamplers.0.conv"),
                        level.channels,
                        level.channels,
                        3,
                        p,
                    )
                })
                .transpose()?;
            up_blocks.push(UpBlock {
                resnets,
                attentions,
                upsampler,
            });
            prev_out = level.channels;
        }
        let pad1 = Conv2dParams {
            padding: Padding2d::uniform(1),
            ..Default::default()
        };
        Ok(Self {
            conv_in: conv(vb.pp("conv_in"), c.in_channels, ch0, 3, pad1)?,
            time_linear_1: linear(ch0, temb, vb.pp("time_embedding.linear_1"))?,
            time_linear_2: linear(temb, temb, vb.pp("time_embedding.linear_2"))?,
            add_embedding: match plan.added {
                Some((time_dim, input_dim)) => Some((
                    linear(input_dim, temb, vb.pp("add_embedding.linear_1"))?,
                    linear(temb, temb, vb.pp("add_embedding.linear_2"))?,
                    time_dim,
                )),
                None => None,
            },
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: group_norm(c.norm_num_groups, ch0, c.norm_eps, vb.pp("conv_norm_out"))?,
            conv_out: conv(vb.pp("conv_out"), ch0, c.out_channels, 3, pad1)?,
            config,
        })
    }

    /// The checkpoint's configuration.
    pub fn config(&self) -> &UNetConfig {
        &self.config
    }

    /// Predicts the noise (or v) of `latents` (B, C, H, W) at `timestep`, conditioned on the text
    /// embeddings (B, tokens, cross_attention_dim).
    pub fn forward(&self, latents: &Tensor, timestep: f64, text: &Tensor) -> Result<Tensor> {
        if self.add_embedding.is_some() {
            return Err(Error::Invalid(
                "this UNet (SDXL-style) needs pooled text embeddings and time ids".into(),
            ));
        }
        Ok(self.forward_inner(latents, timestep, text, None)?)
    }

    /// Whether the UNet takes SDXL's added conditioning ([`UNet::forward_added`]).
    pub fn needs_added_conditioning(&self) -> bool {
        self.add_embedding.is_some()
    }

    /// [`UNet::forward`] with SDXL's added conditioning: `text_embeds` (B, pooled width) from the
    /// second text encoder and `time_ids` (B, 6): original size, crop top-left, target size.
    pub fn forward_added(
        &self,
        latents: &Tensor,
        timestep: f64,
        text: &Tensor,
        text_embeds: &Tensor,
        time_ids: &Tensor,
    ) -> Result<Tensor> {
        if self.add_embedding.is_none() {
            return Err(Error::Invalid(
                "this UNet takes no pooled text embeddings or time ids".into(),
            ));
        }
        Ok(self.forward_inner(latents, timestep, text, Some((text_embeds, time_ids)))?)
    }

    fn forward_inner(
        &self,
        xs: &Tensor,
        timestep: f64,
        text: &Tensor,
        added: Option<(&Tensor, &Tensor)>,
    ) -> CResult<Tensor> {
        let b = xs.dim(0)?;
        // 0. center
        let xs = if self.config.center_input_sample {
            xs.affine(2.0, -1.0)?
        } else {
            xs.clone()
        };
        // 1. time
        let mut emb = self.time_embedding(timestep, b, xs.dtype(), xs.device())?;
        if let (Some((l1, l2, dim)), Some((text_embeds, time_ids))) = (&self.add_embedding, added) {
            let ids = time_ids
                .to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let proj: Vec<Tensor> = ids
                .iter()
                .map(|t| self.sinusoidal(*t as f64, *dim, xs.device()))
                .collect::<CResult<_>>()?;
            let proj = Tensor::cat(&proj, 0)?
                .reshape((b, ()))?
                .to_dtype(xs.dtype())?;
            let input = Tensor::cat(&[text_embeds.to_dtype(xs.dtype())?, proj], 1)?;
            let aug = l2.forward(&candle_nn::ops::silu(&l1.forward(&input)?)?)?;
            emb = (emb + aug)?;
        }
        // 2. pre-process
        let mut xs = self.conv_in.forward(&xs)?;
        // 3. down
        let mut skips = vec![xs.clone()];
        for block in &self.down_blocks {
            for (j, resnet) in block.resnets.iter().enumerate() {
                xs = resnet.forward(&xs, &emb)?;
                if let Some(attn) = block.attentions.get(j) {
                    xs = attn.forward(&xs, text)?;
                }
                skips.push(xs.clone());
            }
            if let Some(down) = &block.downsampler {
                xs = down.forward(&xs)?;
                skips.push(xs.clone());
            }
        }
        // 4. mid
        xs = self.mid_block.forward(&xs, &emb, text)?;
        // 5. up
        for block in &self.up_blocks {
            for (j, resnet) in block.resnets.iter().enumerate() {
                let skip = skips.pop().expect("one skip per up resnet");
                xs = resnet.forward(&Tensor::cat(&[&xs, &skip], 1)?, &emb)?;
                if let Some(attn) = block.attentions.get(j) {
                    xs = attn.forward(&xs, text)?;
                }
            }
            if let Some(up) = &block.upsampler {
                // Nearest 2x, or to the next skip's size when the input was odd-sized.
                let (h, w) = match skips.last() {
                    Some(s) => (s.dim(2)?, s.dim(3)?),
                    None => (xs.dim(2)? * 2, xs.dim(3)? * 2),
                };
                xs = up.forward(&xs.upsample_nearest2d(h, w)?)?;
            }
        }
        // 6. post-process
        let xs = self.conv_norm_out.forward_act(&xs, true)?;
        self.conv_out.forward(&xs)
    }

    /// Sinusoidal timestep embedding through the two-layer MLP (B, 4·ch0).
    fn time_embedding(
        &self,
        t: f64,
        b: usize,
        dtype: candle_core::DType,
        device: &candle_core::Device,
    ) -> CResult<Tensor> {
        let dim = self.config.block_out_channels[0];
        let emb = self
            .sinusoidal(t, dim, device)?
            .to_dtype(dtype)?
            .repeat((b, 1))?;
        let emb = candle_nn::ops::silu(&self.time_linear_1.forward(&emb)?)?;
        self.time_linear_2.forward(&emb)
    }
}

impl UNet {
    /// diffusers `Timesteps`: (1, dim) f32 sinusoidal embedding of `t`.
    fn sinusoidal(&self, t: f64, dim: usize, device: &candle_core::Device) -> CResult<Tensor> {
        let half = dim / 2;
        let shift = self.config.freq_shift;
        let args: Vec<f64> = (0..half)
            .map(|i| t * (-(10000f64.ln()) * i as f64 / (half as f64 - shift)).exp())
            .collect();
        let (sin, cos): (Vec<f32>, Vec<f32>) = args
            .iter()
            .map(|a| (a.sin() as f32, a.cos() as f32))
            .unzip();
        let mut emb = Vec::with_capacity(dim);
        if self.config.flip_sin_to_cos {
            emb.extend(cos);
            emb.extend(sin);
        } else {
            emb.extend(sin);
            emb.extend(cos);
        }
        emb.resize(dim, 0.0);
        Tensor::from_vec(emb, (1, dim), device)
    }
}

fn conv(vb: VarBuilder, c_in: usize, c_out: usize, k: usize, p: Conv2dParams) -> CResult<Conv2d> {
    let weight = vb.get((c_out, c_in / p.groups, k, k), "weight")?;
    let bias = vb.get(c_out, "bias")?;
    Conv2d::new(weight, Some(bias), p)
}

#[derive(Debug)]
struct DownBlock {
    resnets: Vec<Resnet>,
    attentions: Vec<Transformer>,
    downsampler: Option<Conv2d>,
}

#[derive(Debug)]
struct UpBlock {
    resnets: Vec<Resnet>,
    attentions: Vec<Transformer>,
    upsampler: Option<Conv2d>,
}

#[derive(Debug)]
struct MidBlock {
    resnet_0: Resnet,
    attention: Transformer,
    resnet_1: Resnet,
    scale: f64,
}

impl MidBlock {
    fn forward(&self, xs: &Tensor, emb: &Tensor, text: &Tensor) -> CResult<Tensor> {
        let xs = self.resnet_0.forward(xs, emb)?;
        let xs = self.attention.forward(&xs, text)?;
        let xs = self.resnet_1.forward(&xs, emb)?;
        if self.scale == 1.0 {
            Ok(xs)
        } else {
            xs / self.scale
        }
    }
}

/// diffusers `ResnetBlock2D` (time embedding added, `default` scale-shift, output scale 1).
#[derive(Debug)]
struct Resnet {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Linear,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
}

impl Resnet {
    fn new(
        vb: VarBuilder,
        c_in: usize,
        c_out: usize,
        temb: usize,
        (groups, eps): (usize, f64),
    ) -> CResult<Self> {
        let pad1 = Conv2dParams {
            padding: Padding2d::uniform(1),
            ..Default::default()
        };
        Ok(Self {
            norm1: group_norm(groups, c_in, eps, vb.pp("norm1"))?,
            conv1: conv(vb.pp("conv1"), c_in, c_out, 3, pad1)?,
            time_emb_proj: linear(temb, c_out, vb.pp("time_emb_proj"))?,
            norm2: group_norm(groups, c_out, eps, vb.pp("norm2"))?,
            conv2: conv(vb.pp("conv2"), c_out, c_out, 3, pad1)?,
            conv_shortcut: (c_in != c_out)
                .then(|| {
                    conv(
                        vb.pp("conv_shortcut"),
                        c_in,
                        c_out,
                        1,
                        Conv2dParams::default(),
                    )
                })
                .transpose()?,
        })
    }

    fn forward(&self, xs: &Tensor, emb: &Tensor) -> CResult<Tensor> {
        let h = self.norm1.forward_act(xs, true)?;
        let h = self.conv1.forward(&h)?;
        let t = self
            .time_emb_proj
            .forward(&candle_nn::ops::silu(emb)?)?
            .unsqueeze(D::Minus1)?
            .unsqueeze(D::Minus1)?;
        let h = h.broadcast_add(&t)?;
        let h = self.norm2.forward_act(&h, true)?;
        let h = self.conv2.forward(&h)?;
        match &self.conv_shortcut {
            Some(s) => s.forward(xs)? + h,
            None => xs + h,
        }
    }
}

/// Projection in or out of a transformer: 1×1 conv (SD 1.x) or linear (SD 2.x, SDXL).
#[derive(Debug)]
enum Proj {
    Conv(Conv2d),
    Linear(Linear),
}

/// diffusers `Transformer2DModel` (continuous input) of `BasicTransformerBlock`s.
#[derive(Debug)]
struct Transformer {
    norm: GroupNorm,
    proj_in: Proj,
    blocks: Vec<Block>,
    proj_out: Proj,
}

impl Transformer {
    fn new(
        vb: VarBuilder,
        ch: usize,
        heads: usize,
        depth: usize,
        ctx: usize,
        c: &UNetConfig,
    ) -> CResult<Self> {
        let proj = |name: &str| -> CResult<Proj> {
            if c.use_linear_projection {
                Ok(Proj::Linear(linear(ch, ch, vb.pp(name))?))
            } else {
                Ok(Proj::Conv(conv(
                    vb.pp(name),
                    ch,
                    ch,
                    1,
                    Conv2dParams::default(),
                )?))
            }
        };
        Ok(Self {
            norm: group_norm(c.norm_num_groups, ch, 1e-6, vb.pp("norm"))?,
            proj_in: proj("proj_in")?,
            blocks: (0..depth)
                .map(|k| Block::new(vb.pp(format!("transformer_blocks.{k}")), ch, heads, ctx))
                .collect::<CResult<_>>()?,
            proj_out: proj("proj_out")?,
        })
    }

    fn forward(&self, xs: &Tensor, text: &Tensor) -> CResult<Tensor> {
        let (b, c, h, w) = xs.dims4()?;
        let tokens = |t: Tensor| -> CResult<Tensor> {
            t.reshape((b, c, h * w))?.transpose(1, 2)?.contiguous()
        };
        let normed = self.norm.forward(xs)?;
        let mut x = match &self.proj_in {
            Proj::Conv(p) => tokens(p.forward(&normed)?)?,
            Proj::Linear(p) => p.forward(&tokens(normed)?)?,
        };
        for block in &self.blocks {
            x = block.forward(&x, text)?;
        }
        let image = |t: Tensor| -> CResult<Tensor> {
            t.transpose(1, 2)?.contiguous()?.reshape((b, c, h, w))
        };
        let out = match &self.proj_out {
            Proj::Conv(p) => p.forward(&image(x)?)?,
            Proj::Linear(p) => image(p.forward(&x)?)?,
        };
        out + xs
    }
}

/// diffusers `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward.
#[derive(Debug)]
struct Block {
    norm1: LayerNorm,
    attn1: Attention,
    norm2: LayerNorm,
    attn2: Attention,
    norm3: LayerNorm,
    ff_in: Linear,
    ff_out: Linear,
}

impl Block {
    fn new(vb: VarBuilder, dim: usize, heads: usize, ctx: usize) -> CResult<Self> {
        let inner = dim * 4;
        Ok(Self {
            norm1: layer_norm(dim, 1e-5, vb.pp("norm1"))?,
            attn1: Attention::new(vb.pp("attn1"), dim, dim, heads)?,
            norm2: layer_norm(dim, 1e-5, vb.pp("norm2"))?,
            attn2: Attention::new(vb.pp("attn2"), dim, ctx, heads)?,
            norm3: layer_norm(dim, 1e-5, vb.pp("norm3"))?,
            ff_in: linear(dim, inner * 2, vb.pp("ff.net.0.proj"))?,
            ff_out: linear(inner, dim, vb.pp("ff.net.2"))?,
        })
    }

    fn forward(&self, xs: &Tensor, text: &Tensor) -> CResult<Tensor> {
        let n = self.norm1.forward(xs)?;
        let xs = (self.attn1.forward(&n, &n)? + xs)?;
        let n = self.norm2.forward(&xs)?;
        let xs = (self.attn2.forward(&n, text)? + xs)?;
        let n = self.norm3.forward(&xs)?;
        let proj = self.ff_in.forward(&n)?;
        let half = proj.dim(D::Minus1)? / 2;
        let gated =
            (proj.narrow(D::Minus1, 0, half)? * proj.narrow(D::Minus1, half, half)?.gelu_erf()?)?;
        self.ff_out.forward(&gated)? + xs
    }
}

/// diffusers `Attention` (no bias on q, k, v; bias on the output).
#[derive(Debug)]
struct Attention {
    to_q: Linear,
    to_k: Linear,
    to_v: Linear,
    to_out: Linear,
    heads: usize,
}

impl Attention {
    fn new(vb: VarBuilder, dim: usize, ctx: usize, heads: usize) -> CResult<Self> {
        Ok(Self {
            to_q: linear_no_bias(dim, dim, vb.pp("to_q"))?,
            to_k: linear_no_bias(ctx, dim, vb.pp("to_k"))?,
            to_v: linear_no_bias(ctx, dim, vb.pp("to_v"))?,
            to_out: linear(dim, dim, vb.pp("to_out.0"))?,
            heads,
        })
    }

    fn forward(&self, xs: &Tensor, ctx: &Tensor) -> CResult<Tensor> {
        let (b, t, dim) = xs.dims3()?;
        let d = dim / self.heads;
        let split = |x: Tensor| -> CResult<Tensor> {
            let tk = x.dim(1)?;
            x.reshape((b, tk, self.heads, d))?.transpose(1, 2)
        };
        let q = split(self.to_q.forward(xs)?)?;
        let k = split(self.to_k.forward(ctx)?)?;
        let v = split(self.to_v.forward(ctx)?)?;
        let out = attention_merged(&q, &k, &v, (d as f32).powf(-0.5), None)?;
        debug_assert_eq!(out.dims(), [b, t, dim]);
        self.to_out.forward(&out)
    }
}

/// Checks the config against what the blocks implement and lays out the levels.
fn plan(c: &UNetConfig) -> Result<Plan> {
    check_defaults(FILE, &c.other, &unsupported_at_default())?;
    let added = match c.addition_embed_type.as_deref() {
        None => None,
        Some("text_time") => match (
            c.addition_time_embed_dim,
            c.projection_class_embeddings_input_dim,
        ) {
            (Some(t), Some(i)) => Some((t, i)),
            _ => {
                return Err(Error::Model(format!(
                    "{FILE}: addition_embed_type text_time needs addition_time_embed_dim and \
                     projection_class_embeddings_input_dim"
                )))
            }
        },
        Some(kind) => {
            return Err(Error::Model(format!(
                "{FILE}: addition_embed_type {kind:?} is not supported (only text_time)"
            )))
        }
    };
    if c.mid_block_type
        .as_deref()
        .is_some_and(|t| t != "UNetMidBlock2DCrossAttn")
    {
        return Err(Error::Model(format!(
            "{FILE}: mid_block_type {:?} is not supported (only UNetMidBlock2DCrossAttn)",
            c.mid_block_type
        )));
    }
    let n = c.block_out_channels.len();
    if n == 0 || c.down_block_types.len() != n || c.up_block_types.len() != n {
        return Err(Error::Model(format!(
            "{FILE}: {n} block_out_channels but {} down and {} up block types",
            c.down_block_types.len(),
            c.up_block_types.len()
        )));
    }
    if c.block_out_channels
        .iter()
        .any(|ch| !ch.is_multiple_of(c.norm_num_groups))
    {
        return Err(Error::Model(format!(
            "{FILE}: block_out_channels {:?} do not split into {} groups",
            c.block_out_channels, c.norm_num_groups
        )));
    }
    let layers_per_block = match &c.layers_per_block {
        PerBlock::One(v) => *v,
        PerBlock::Each(v) if !v.is_empty() && v.iter().all(|x| *x == v[0]) => v[0],
        PerBlock::Each(v) => {
            return Err(Error::Model(format!(
                "{FILE}: layers_per_block {v:?} differing per block is not supported"
            )))
        }
    };
    let cross_attention_dim = match &c.cross_attention_dim {
        PerBlock::One(v) => *v,
        PerBlock::Each(v) => {
            return Err(Error::Model(format!(
                "{FILE}: cross_attention_dim per block {v:?} is not supported"
            )))
        }
    };
    let heads = c
        .num_attention_heads
        .as_ref()
        .unwrap_or(&c.attention_head_dim);
    let mut levels = Vec::with_capacity(n);
    for (i, kind) in c.down_block_types.iter().enumerate() {
        let cross = match kind.as_str() {
            "CrossAttnDownBlock2D" => true,
            "DownBlock2D" => false,
            other => {
                return Err(Error::Model(format!(
                    "{FILE}: down block type {other:?} is not supported"
                )))
            }
        };
        let up = &c.up_block_types[n - 1 - i];
        let up_cross = match up.as_str() {
            "CrossAttnUpBlock2D" => true,
            "UpBlock2D" => false,
            other => {
                return Err(Error::Model(format!(
                    "{FILE}: up block type {other:?} is not supported"
                )))
            }
        };
        if up_cross != cross {
            return Err(Error::Model(format!(
                "{FILE}: up block {} ({up}) does not mirror down block {i} ({kind})",
                n - 1 - i
            )));
        }
        let channels = c.block_out_channels[i];
        let n_heads = heads.get(i, n, "attention heads")?;
        if n_heads == 0 || !channels.is_multiple_of(n_heads) {
            return Err(Error::Model(format!(
                "{FILE}: {channels} channels do not split into {n_heads} heads"
            )));
        }
        let layers = c
            .transformer_layers_per_block
            .get(i, n, "transformer_layers_per_block")?;
        levels.push(Level {
            channels,
            transformer_layers: cross.then_some(layers),
            heads: n_heads,
        });
    }
    let mid_transformer_layers =
        c.transformer_layers_per_block
            .get(n - 1, n, "transformer_layers_per_block")?;
    Ok(Plan {
        levels,
        layers_per_block,
        cross_attention_dim,
        mid_transformer_layers,
        added,
    })
}

/// diffusers options that the blocks implement only at these values.
fn unsupported_at_default() -> Vec<(&'static str, Value)> {
    vec![
        ("act_fn", json!("silu")),
        ("only_cross_attention", json!(false)),
        ("dual_cross_attention", json!(false)),
        ("class_embed_type", Value::Null),
        ("num_class_embeds", Value::Null),
        ("resnet_time_scale_shift", json!("default")),
        ("resnet_skip_time_act", json!(false)),
        ("resnet_out_scale_factor", json!(1.0)),
        ("time_embedding_type", json!("positional")),
        ("time_embedding_dim", Value::Null),
        ("time_embedding_act_fn", Value::Null),
        ("timestep_post_act", Value::Null),
        ("time_cond_proj_dim", Value::Null),
        ("conv_in_kernel", json!(3)),
        ("conv_out_kernel", json!(3)),
        ("attention_type", json!("default")),
        ("class_embeddings_concat", json!(false)),
        ("mid_block_only_cross_attention", Value::Null),
        ("cross_attention_norm", Value::Null),
        ("addition_embed_type_num_heads", json!(64)),
        ("encoder_hid_dim", Value::Null),
        ("encoder_hid_dim_type", Value::Null),
        ("reverse_transformer_layers_per_block", Value::Null),
    ]
}
