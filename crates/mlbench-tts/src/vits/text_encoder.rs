//! The VITS text encoder (`enc_p`): phoneme embedding, a transformer with windowed
//! relative-position attention, and the projection to the prior's mean and log-scale.
//! Reference: jaywalnut310/vits `models.py` TextEncoder and `attentions.py`
//! (commit 2e561ba58618d021b5b8323d3765880f7e0ecfdb).

use candle_core::{Module, Tensor, D};
use mlbench_core::kernels::conv::Conv1d;

use super::weights::{ChannelNorm, Weights};
use super::VitsConfig;
use crate::error::Result;

/// Multi-head self-attention with relative position embeddings shared across heads.
#[derive(Debug, Clone)]
struct RelAttention {
    conv_q: Conv1d,
    conv_k: Conv1d,
    conv_v: Conv1d,
    conv_o: Conv1d,
    /// (2w+1, d_k)
    emb_rel_k: Tensor,
    emb_rel_v: Tensor,
    n_heads: usize,
    window: usize,
}

impl RelAttention {
    fn load(w: &Weights, p: &str, cfg: &VitsConfig) -> Result<Self> {
        let rel = |n: &str| -> Result<Tensor> {
            let t = w.get(&format!("{p}.{n}"))?;
            let (_, l, d) = t.dims3()?;
            Ok(t.reshape((l, d))?)
        };
        Ok(Self {
            conv_q: w.conv1d_same(&format!("{p}.conv_q"), 1, 1)?,
            conv_k: w.conv1d_same(&format!("{p}.conv_k"), 1, 1)?,
            conv_v: w.conv1d_same(&format!("{p}.conv_v"), 1, 1)?,
            conv_o: w.conv1d_same(&format!("{p}.conv_o"), 1, 1)?,
            emb_rel_k: rel("emb_rel_k")?,
            emb_rel_v: rel("emb_rel_v")?,
            n_heads: cfg.n_heads,
            window: cfg.window_size,
        })
    }

    /// The embeddings of relative positions -(t-1)..=(t-1): (2t-1, d), zero beyond the window.
    fn relative_embeddings(&self, emb: &Tensor, t: usize) -> candle_core::Result<Tensor> {
        let w = self.window;
        let pad = t.saturating_sub(w + 1);
        let start = (w + 1).saturating_sub(t);
        let emb = if pad > 0 {
            emb.pad_with_zeros(0, pad, pad)?
        } else {
            emb.clone()
        };
        emb.narrow(0, start, 2 * t - 1)
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, c, t) = x.dims3()?;
        let (h, d) = (self.n_heads, c / self.n_heads);
        let heads = |y: Tensor| -> candle_core::Result<Tensor> {
            y.reshape((b, h, d, t))?.transpose(2, 3)?.contiguous()
        };
        let q = (heads(self.conv_q.forward(x)?)? * (1.0 / (d as f64).sqrt()))?;
        let k = heads(self.conv_k.forward(x)?)?;
        let v = heads(self.conv_v.forward(x)?)?;
        // 1. content scores + relative-key scores.
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let rel_k = self.relative_embeddings(&self.emb_rel_k, t)?;
        let rel_logits = q
            .reshape((b * h * t, d))?
            .matmul(&rel_k.t()?.contiguous()?)?
            .reshape((b, h, t, 2 * t - 1))?;
        let scores = (scores + relative_to_absolute(&rel_logits)?)?;
        let p = candle_nn::ops::softmax_last_dim(&scores)?;
        // 2. values + relative-value terms.
        let out = p.matmul(&v)?;
        let rel_w = absolute_to_relative(&p)?;
        let rel_v = self.relative_embeddings(&self.emb_rel_v, t)?;
        let out = (out
            + rel_w
                .reshape((b * h * t, 2 * t - 1))?
                .matmul(&rel_v.contiguous()?)?
                .reshape((b, h, t, d))?)?;
        let out = out.transpose(2, 3)?.reshape((b, c, t))?;
        self.conv_o.forward(&out)
    }
}

/// (b, h, l, 2l-1) relative logits → (b, h, l, l) absolute (`_relative_position_to_absolute_position`).
fn relative_to_absolute(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, l, _) = x.dims4()?;
    let x = x
        .pad_with_zeros(D::Minus1, 0, 1)?
        .reshape((b, h, 2 * l * l))?;
    let x = x.pad_with_zeros(D::Minus1, 0, l - 1)?;
    x.reshape((b, h, l + 1, 2 * l - 1))?
        .narrow(2, 0, l)?
        .narrow(3, l - 1, l)?
        .contiguous()
}

/// (b, h, l, l) absolute weights → (b, h, l, 2l-1) relative (`_absolute_position_to_relative_position`).
fn absolute_to_relative(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, l, _) = x.dims4()?;
    let x = x.pad_with_zeros(D::Minus1, 0, l - 1)?;
    let x = x.reshape((b, h, l * (2 * l - 1)))?;
    let x = x.pad_with_zeros(D::Minus1, l, 0)?;
    x.reshape((b, h, l, 2 * l))?
        .narrow(3, 1, 2 * l - 1)?
        .contiguous()
}

#[derive(Debug, Clone)]
struct Ffn {
    conv_1: Conv1d,
    conv_2: Conv1d,
}

impl Ffn {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.conv_2.forward(&self.conv_1.forward(x)?.relu()?)
    }
}

/// The text encoder: ids → (hidden states, prior mean, prior log-scale), each (1, c, t).
#[derive(Debug, Clone)]
pub struct TextEncoder {
    emb: Tensor,
    hidden: usize,
    layers: Vec<(RelAttention, ChannelNorm, Ffn, ChannelNorm)>,
    proj: Conv1d,
    inter: usize,
}

impl TextEncoder {
    /// Loads `enc_p.*`.
    pub fn load(w: &Weights, cfg: &VitsConfig) -> Result<Self> {
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let p = "enc_p.encoder";
            layers.push((
                RelAttention::load(w, &format!("{p}.attn_layers.{i}"), cfg)?,
                w.layer_norm(&format!("{p}.norm_layers_1.{i}"))?,
                Ffn {
                    conv_1: w.conv1d_same(&format!("{p}.ffn_layers.{i}.conv_1"), 1, 1)?,
                    conv_2: w.conv1d_same(&format!("{p}.ffn_layers.{i}.conv_2"), 1, 1)?,
                },
                w.layer_norm(&format!("{p}.norm_layers_2.{i}"))?,
            ));
        }
        Ok(Self {
            emb: w.get("enc_p.emb.weight")?,
            hidden: cfg.hidden_channels,
            layers,
            proj: w.conv1d_same("enc_p.proj", 1, 1)?,
            inter: cfg.inter_channels,
        })
    }

    /// Runs the encoder on one utterance of phoneme ids.
    pub fn forward(&self, ids: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let x = self.emb.embedding(ids)?; // (t, c)
        let mut x = (x * (self.hidden as f64).sqrt())?
            .t()?
            .unsqueeze(0)?
            .contiguous()?;
        for (attn, norm1, ffn, norm2) in &self.layers {
            let y = attn.forward(&x)?;
            x = norm1.forward(&(x + y)?)?;
            let y = ffn.forward(&x)?;
            x = norm2.forward(&(x + y)?)?;
        }
        let stats = self.proj.forward(&x)?;
        let m = stats.narrow(1, 0, self.inter)?;
        let logs = stats.narrow(1, self.inter, self.inter)?;
        Ok((x, m, logs))
    }
}

impl TextEncoder {
    /// The compute dtype.
    pub fn dtype(&self) -> candle_core::DType {
        self.emb.dtype()
    }
}
