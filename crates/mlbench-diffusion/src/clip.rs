//! The CLIP text encoder (transformers' `CLIPTextModel` / `CLIPTextModelWithProjection`),
//! configured from the checkpoint's own `text_encoder/config.json`.
//!
//! Reference: transformers 5.24.0 `src/transformers/models/clip/modeling_clip.py`.

use candle_core::{DType, Device, IndexOp, Module, Tensor};
use candle_nn::VarBuilder;
use candle_nn::{embedding, layer_norm, linear, linear_no_bias, Embedding, LayerNorm, Linear};
use serde::Deserialize;

use crate::{Error, Result};

/// `text_encoder/config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ClipTextConfig {
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Positions (77).
    #[serde(default = "positions")]
    pub max_position_embeddings: usize,
    /// `quick_gelu` (CLIP ViT-L) or `gelu` (OpenCLIP).
    #[serde(default = "quick_gelu")]
    pub hidden_act: String,
    /// Layer norm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    /// Width of `text_projection` (with-projection models).
    #[serde(default)]
    pub projection_dim: Option<usize>,
    /// End-of-text token; 2 means "the highest id" (old configs).
    #[serde(default = "two")]
    pub eos_token_id: u32,
    /// `CLIPTextModel` or `CLIPTextModelWithProjection`.
    #[serde(default)]
    pub architectures: Vec<String>,
}

fn positions() -> usize {
    77
}
fn quick_gelu() -> String {
    "quick_gelu".into()
}
fn eps() -> f64 {
    1e-5
}
fn two() -> u32 {
    2
}

/// What the encoder returns for a batch of token ids.
#[derive(Debug, Clone)]
pub struct ClipOutput {
    /// After the final layer norm (B, T, width): SD 1.x/2.x text embeddings.
    pub last_hidden_state: Tensor,
    /// Output of the second-to-last layer, no final norm (B, T, width): SDXL text embeddings.
    pub penultimate: Tensor,
    /// The final-normed state at the end-of-text token, projected when the model has a
    /// `text_projection` (B, width or projection_dim).
    pub pooled: Tensor,
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    QuickGelu,
    Gelu,
}

impl Activation {
    fn forward(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
            Activation::Gelu => xs.gelu_erf(),
        }
    }
}

#[derive(Debug)]
struct Layer {
    layer_norm1: LayerNorm,
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// The text encoder.
#[derive(Debug)]
pub struct ClipTextModel {
    token_embedding: Embedding,
    position_embedding: Embedding,
    layers: Vec<Layer>,
    final_layer_norm: LayerNorm,
    text_projection: Option<Linear>,
    activation: Activation,
    config: ClipTextConfig,
}

impl ClipTextModel {
    /// Builds the encoder from `vb` (keys as in `model.safetensors`: `text_model.…`,
    /// `text_projection.weight`).
    pub fn load(config: ClipTextConfig, vb: VarBuilder) -> Result<Self> {
        let activation = match config.hidden_act.as_str() {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            other => {
                return Err(Error::Model(format!(
                    "text_encoder/config.json: hidden_act {other:?} is not supported"
                )))
            }
        };
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(Error::Model(format!(
                "text_encoder/config.json: hidden_size {} does not split into {} heads",
                config.hidden_size, config.num_attention_heads
            )));
        }
        let with_projection = config
            .architectures
            .iter()
            .any(|a| a == "CLIPTextModelWithProjection");
        Self::build(config, activation, with_projection, vb)
            .map_err(|e| Error::Model(format!("text encoder: {e}")))
    }

    fn build(
        config: ClipTextConfig,
        activation: Activation,
        with_projection: bool,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let c = &config;
        let (w, eps) = (c.hidden_size, c.layer_norm_eps);
        // transformers ≥ 5 saves `CLIPTextModel` without the `text_model.` prefix.
        let tm = if vb.contains_tensor("text_model.embeddings.token_embedding.weight") {
            vb.pp("text_model")
        } else {
            vb.clone()
        };
        let emb = tm.pp("embeddings");
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let vb = tm.pp(format!("encoder.layers.{i}"));
                let attn = vb.pp("self_attn");
                Ok(Layer {
                    layer_norm1: layer_norm(w, eps, vb.pp("layer_norm1"))?,
                    q_proj: linear(w, w, attn.pp("q_proj"))?,
                    k_proj: linear(w, w, attn.pp("k_proj"))?,
                    v_proj: linear(w, w, attn.pp("v_proj"))?,
                    out_proj: linear(w, w, attn.pp("out_proj"))?,
                    layer_norm2: layer_norm(w, eps, vb.pp("layer_norm2"))?,
                    fc1: linear(w, c.intermediate_size, vb.pp("mlp.fc1"))?,
                    fc2: linear(c.intermediate_size, w, vb.pp("mlp.fc2"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        let text_projection = if with_projection {
            let dim = c.projection_dim.unwrap_or(w);
            Some(linear_no_bias(w, dim, vb.pp("text_projection"))?)
        } else {
            None
        };
        Ok(Self {
            token_embedding: embedding(c.vocab_size, w, emb.pp("token_embedding"))?,
            position_embedding: embedding(
                c.max_position_embeddings,
                w,
                emb.pp("position_embedding"),
            )?,
            layers,
            final_layer_norm: layer_norm(w, eps, tm.pp("final_layer_norm"))?,
            text_projection,
            activation,
            config,
        })
    }

    /// The checkpoint's configuration.
    pub fn config(&self) -> &ClipTextConfig {
        &self.config
    }

    /// Encodes token ids (B, T) with T ≤ max_position_embeddings.
    pub fn forward(&self, ids: &Tensor) -> Result<ClipOutput> {
        let (b, t) = ids.dims2()?;
        if t > self.config.max_position_embeddings || t < 2 {
            return Err(Error::Invalid(format!(
                "{t} tokens for a text encoder of {} positions",
                self.config.max_position_embeddings
            )));
        }
        let device = ids.device();
        let positions = Tensor::arange(0u32, t as u32, device)?;
        let mut xs = self
            .token_embedding
            .forward(ids)?
            .broadcast_add(&self.position_embedding.forward(&positions)?)?;
        let mask = causal_mask(t, xs.dtype(), device)?;
        let mut penultimate = xs.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            if i + 1 == self.layers.len() {
                penultimate = xs.clone();
            }
            xs = self.layer(layer, &xs, &mask)?;
        }
        let last_hidden_state = self.final_layer_norm.forward(&xs)?;
        let eos = self.eos_positions(ids)?;
        let pooled = (0..b)
            .map(|i| last_hidden_state.i((i, eos[i]))?.unsqueeze(0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut pooled = Tensor::cat(&pooled, 0)?;
        if let Some(proj) = &self.text_projection {
            pooled = proj.forward(&pooled)?;
        }
        Ok(ClipOutput {
            last_hidden_state,
            penultimate,
            pooled,
        })
    }

    fn eos_positions(&self, ids: &Tensor) -> Result<Vec<usize>> {
        let rows = ids.to_dtype(DType::U32)?.to_vec2::<u32>()?;
        Ok(rows
            .iter()
            .map(|row| {
                let eos = self.config.eos_token_id;
                let found = if eos == 2 {
                    let max = row.iter().copied().max().unwrap_or(0);
                    row.iter().position(|&x| x == max)
                } else {
                    row.iter().position(|&x| x == eos)
                };
                found.unwrap_or(row.len() - 1)
            })
            .collect())
    }

    fn layer(&self, l: &Layer, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let h = l.layer_norm1.forward(xs)?;
        let h = self.attention(l, &h, mask)?;
        let xs = (xs + h)?;
        let h = l.layer_norm2.forward(&xs)?;
        let h = l
            .fc2
            .forward(&self.activation.forward(&l.fc1.forward(&h)?)?)?;
        xs + h
    }

    fn attention(&self, l: &Layer, xs: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, w) = xs.dims3()?;
        let heads = self.config.num_attention_heads;
        let d = w / heads;
        let split = |x: Tensor| x.reshape((b, t, heads, d))?.transpose(1, 2)?.contiguous();
        let q = split((l.q_proj.forward(xs)? * (d as f64).powf(-0.5))?)?;
        let k = split(l.k_proj.forward(xs)?)?;
        let v = split(l.v_proj.forward(xs)?)?;
        let scores = q.matmul(&k.t()?)?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, w))?;
        l.out_proj.forward(&out)
    }
}

fn causal_mask(t: usize, dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
    let mask: Vec<f32> = (0..t)
        .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0. }))
        .collect();
    Tensor::from_slice(&mask, (1, 1, t, t), device)?.to_dtype(dtype)
}
