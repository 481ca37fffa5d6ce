//! ViT as in transformers' `ViTForImageClassification` (google/vit-*): keys
//! `vit.embeddings.{cls_token,position_embeddings,patch_embeddings.projection}`,
//! `vit.encoder.layer.N.{attention.attention.{query,key,value},attention.output.dense,
//! intermediate.dense,output.dense,layernorm_before,layernorm_after}`, `vit.layernorm`,
//! `classifier`. Reference: transformers `models/vit/modeling_vit.py` (v5.24).
//!
//! The pieces shared with [`crate::dinov2`] and [`crate::clip`] live here too:
//! multi-head self-attention, patch + class-token embedding, and the bicubic resampling of
//! position embeddings to another patch grid.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, Linear};
use mlbench_core::kernels::conv::{Conv2d, Conv2dParams};
use serde::Deserialize;

use crate::weights::Weights;
use crate::{Error, Result};

/// The fields of a ViT `config.json` that shape the network.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Width of the token embeddings.
    pub hidden_size: usize,
    /// Transformer layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the MLP.
    pub intermediate_size: usize,
    /// MLP activation (`gelu`, exact).
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Layer-norm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Square input size the position embeddings were trained for.
    #[serde(default = "image_size")]
    pub image_size: usize,
    /// Square patch size.
    #[serde(default = "patch_size")]
    pub patch_size: usize,
}

fn gelu() -> String {
    "gelu".into()
}
fn eps() -> f64 {
    1e-12
}
fn image_size() -> usize {
    224
}
fn patch_size() -> usize {
    16
}

/// Multi-head self-attention with separate query/key/value/output projections.
#[derive(Debug, Clone)]
pub(crate) struct SelfAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
}

impl SelfAttention {
    /// The projections `PREFIX.{q,k,v,out}` (each `.weight` and optional `.bias`).
    pub(crate) fn load(w: &Weights, names: [&str; 4], heads: usize) -> Result<Self> {
        let [q, k, v, out] = names;
        Ok(Self {
            q: w.linear(q)?,
            k: w.linear(k)?,
            v: w.linear(v)?,
            out: w.linear(out)?,
            heads,
        })
    }

    /// Attention of tokens (b, t, c) to each other, projected back to (b, t, c).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, t, c) = x.dims3()?;
        let d = c / self.heads;
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((n, t, self.heads, d))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split((self.q.forward(x)? * (1.0 / (d as f64).sqrt()))?)?;
        let k = split(self.k.forward(x)?)?;
        let v = split(self.v.forward(x)?)?;
        let scores = q.matmul(&k.t()?)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(&v)?.transpose(1, 2)?.reshape((n, t, c))?;
        Ok(self.out.forward(&y)?)
    }
}

/// An error unless `hidden` splits evenly into `heads` attention heads.
pub(crate) fn check_heads(model: &str, hidden: usize, heads: usize) -> Result<()> {
    if heads == 0 || !hidden.is_multiple_of(heads) {
        return Err(Error::Model(format!(
            "{model} config: hidden_size {hidden} is not a multiple of num_attention_heads {heads}"
        )));
    }
    Ok(())
}

/// The patch convolution `PREFIX` (kernel = stride = `patch`).
pub(crate) fn patch_conv(w: &Weights, prefix: &str, patch: usize) -> Result<Conv2d> {
    w.conv(
        prefix,
        Conv2dParams {
            stride: (patch, patch),
            ..Default::default()
        },
    )
}

/// Tokens (b, 1 + patches, c): the class token `cls` (any shape of c elements) followed by the
/// patch embeddings of images (b, 3, h, w).
pub(crate) fn embed_patches(patch: &Conv2d, cls: &Tensor, x: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    let patches = patch.forward(x)?.flatten_from(2)?.transpose(1, 2)?;
    let c = patches.dim(2)?;
    let cls = cls.reshape((1, 1, c))?.broadcast_as((n, 1, c))?;
    Ok(Tensor::cat(&[&cls, &patches], 1)?)
}

/// Position embeddings (1, 1 + s², c) of an s×s grid resampled to a `rows`×`cols` grid as
/// transformers' `interpolate_pos_encoding` does: the class position kept, the patch positions
/// through `torch.nn.functional.interpolate(mode="bicubic", align_corners=False)`, in f32.
pub(crate) fn interpolate_positions(pos: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
    let (_, t, c) = pos.dims3()?;
    let s = (t - 1).isqrt();
    if s * s != t - 1 {
        return Err(Error::Model(format!(
            "{} patch position embeddings are not a square grid",
            t - 1
        )));
    }
    let grid = pos
        .narrow(1, 1, t - 1)?
        .to_device(&candle_core::Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let (ys, xs) = (cubic_taps(s, rows), cubic_taps(s, cols));
    let mut out = vec![0f32; rows * cols * c];
    for (i, (yi, yw)) in ys.iter().enumerate() {
        for (j, (xi, xw)) in xs.iter().enumerate() {
            let dst = &mut out[(i * cols + j) * c..][..c];
            for (&y, &wy) in yi.iter().zip(yw) {
                for (&x, &wx) in xi.iter().zip(xw) {
                    let src = &grid[(y * s + x) * c..][..c];
                    let wgt = wy * wx;
                    dst.iter_mut().zip(src).for_each(|(d, v)| *d += wgt * v);
                }
            }
        }
    }
    let patches = Tensor::from_vec(out, (1, rows * cols, c), &candle_core::Device::Cpu)?
        .to_device(pos.device())?
        .to_dtype(pos.dtype())?;
    Ok(Tensor::cat(&[&pos.narrow(1, 0, 1)?, &patches], 1)?)
}

/// For each of `out` output positions: the 4 input indices (clamped to `0..len`) and weights
/// of PyTorch's bicubic kernel (a = −0.75, half-pixel centres).
fn cubic_taps(len: usize, out: usize) -> Vec<([usize; 4], [f32; 4])> {
    const A: f32 = -0.75;
    let near = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = len as f32 / out as f32;
    (0..out)
        .map(|o| {
            let real = scale * (o as f32 + 0.5) - 0.5;
            let base = (real.floor() as i64).min(len as i64 - 1);
            let t = (real - base as f32).clamp(0.0, 1.0);
            let idx =
                std::array::from_fn(|k| (base - 1 + k as i64).clamp(0, len as i64 - 1) as usize);
            (idx, [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)])
        })
        .collect()
}

#[derive(Debug, Clone)]
struct Block {
    ln1: LayerNorm,
    attn: SelfAttention,
    ln2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// ViT with its classification head (on the class token).
#[derive(Debug, Clone)]
pub struct Vit {
    config: Config,
    patch: Conv2d,
    cls: Tensor,
    pos: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
    classifier: Linear,
}

impl Vit {
    /// Builds the model from a transformers state dict.
    pub fn load(
        tensors: &HashMap<String, Tensor>,
        config: &Config,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        if config.hidden_act != "gelu" {
            return Err(Error::Model(format!(
                "ViT with hidden_act {} is not supported (only gelu)",
                config.hidden_act
            )));
        }
        check_heads("ViT", config.hidden_size, config.num_attention_heads)?;
        let w = Weights::new(tensors, device, dtype);
        let eps = config.layer_norm_eps;
        let patch = patch_conv(
            &w,
            "vit.embeddings.patch_embeddings.projection",
            config.patch_size,
        )?;
        let blocks = (0..config.num_hidden_layers)
            .map(|i| {
                let l = format!("vit.encoder.layer.{i}");
                Ok(Block {
                    ln1: w.layer_norm(&format!("{l}.layernorm_before"), eps)?,
                    attn: SelfAttention::load(
                        &w,
                        [
                            &format!("{l}.attention.attention.query"),
                            &format!("{l}.attention.attention.key"),
                            &format!("{l}.attention.attention.value"),
                            &format!("{l}.attention.output.dense"),
                        ],
                        config.num_attention_heads,
                    )?,
                    ln2: w.layer_norm(&format!("{l}.layernorm_after"), eps)?,
                    fc1: w.linear(&format!("{l}.intermediate.dense"))?,
                    fc2: w.linear(&format!("{l}.output.dense"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            patch,
            cls: w.get("vit.embeddings.cls_token")?,
            pos: w.get("vit.embeddings.position_embeddings")?,
            blocks,
            ln: w.layer_norm("vit.layernorm", eps)?,
            classifier: w.linear("classifier")?,
        })
    }

    /// Logits (b, labels) of a normalised batch (b, 3, image_size, image_size).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = x.to_dtype(self.cls.dtype())?;
        let (_, _, h, w) = x.dims4()?;
        let size = self.config.image_size;
        if (h, w) != (size, size) {
            return Err(Error::Invalid(format!(
                "ViT input is {h}×{w}, the model expects {size}×{size}"
            )));
        }
        // 1. patches + class token + position embeddings
        let mut x = embed_patches(&self.patch, &self.cls, &x)?.broadcast_add(&self.pos)?;
        // 2. pre-norm transformer layers
        for b in &self.blocks {
            x = (&x + b.attn.forward(&b.ln1.forward(&x)?)?)?;
            let m = b
                .fc2
                .forward(&b.fc1.forward(&b.ln2.forward(&x)?)?.gelu_erf()?)?;
            x = (x + m)?;
        }
        // 3. final norm, head on the class token
        let x = self.ln.forward(&x)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(self.classifier.forward(&cls)?)
    }
}
