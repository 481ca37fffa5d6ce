//! The Whisper encoder-decoder, with a self-attention KV cache and cached cross-attention.

use serde::{Deserialize, Serialize};

/// Whisper hyper-parameters: a serde copy of the transformers checkpoint's `config.json`
/// (`WhisperConfig`), with the token ids the decoder needs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Config {
    /// Vocabulary size (51864 for English-only models, 51865+ for multilingual).
    pub vocab_size: usize,
    /// Mel bins of the input spectrogram: 80, or 128 for large-v3 / large-v3-turbo.
    pub num_mel_bins: usize,
    /// Width of the model.
    pub d_model: usize,
    /// Number of encoder layers.
    pub encoder_layers: usize,
    /// Attention heads per encoder layer.
    pub encoder_attention_heads: usize,
    /// Hidden size of the encoder MLP.
    pub encoder_ffn_dim: usize,
    /// Number of decoder layers.
    pub decoder_layers: usize,
    /// Attention heads per decoder layer.
    pub decoder_attention_heads: usize,
    /// Hidden size of the decoder MLP.
    pub decoder_ffn_dim: usize,
    /// Encoder positions (1500 = 30 s).
    #[serde(default = "default_source_positions")]
    pub max_source_positions: usize,
    /// Decoder positions (448).
    #[serde(default = "default_target_positions")]
    pub max_target_positions: usize,
    /// Tokens never sampled (newer checkpoints keep them in `generation_config.json`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub suppress_tokens: Vec<u32>,
    /// Tokens not sampled at the first position.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub begin_suppress_tokens: Vec<u32>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    Ok(Option::<Vec<u32>>::deserialize(d)?.unwrap_or_default())
}

fn default_source_positions() -> usize {
    1500
}

fn default_target_positions() -> usize {
    448
}

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{LayerNorm, VarBuilder};
use mlbench_core::kernels::attention::attention_merged;
use mlbench_core::kernels::conv::{Conv1d, Conv1dParams};
use mlbench_core::kernels::few_rows::{exact_f16_copy, few_rows_matmul_t, is_cpu_f32, FEW_ROWS};

use crate::{Result, SttError};

/// Where the weights of a Whisper model come from, with transformers key names.
pub enum Weights {
    /// Float tensors (safetensors, or converted CTranslate2) in the compute dtype.
    Float(VarBuilder<'static>),
    /// Quantized GGUF tensors; matmul weights stay quantized, the rest is dequantized.
    Gguf {
        /// Tensors by name.
        tensors: HashMap<String, Arc<QTensor>>,
        /// Device to run on.
        device: Device,
    },
}

impl Weights {
    /// Float weights from a map of tensors (e.g. a converted CTranslate2 model).
    pub fn from_tensors(tensors: HashMap<String, Tensor>, dtype: DType, device: &Device) -> Self {
        Self::Float(VarBuilder::from_tensors(tensors, dtype, device))
    }

    /// Float weights from safetensors files, memory-mapped.
    pub fn from_safetensors(
        files: &[std::path::PathBuf],
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        for f in files {
            check_safetensors_header(f)?;
        }
        // SAFETY: the files are mapped read-only and we do not modify them; like every mmap-based
        // loader (candle, safetensors) we assume no other process truncates them while mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, device) }
            .map_err(|e| SttError::model(&files[0], format!("cannot read safetensors: {e}")))?;
        Ok(Self::Float(vb))
    }

    /// Quantized weights from a candle GGUF Whisper file.
    pub fn from_gguf(path: &Path, device: &Device) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| {
            SttError::model(path, format!("not a readable GGUF file: {e}"))
        };
        let mut file = std::fs::File::open(path).map_err(|source| SttError::Io {
            path: path.into(),
            source,
        })?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| bad(&e))?;
        let mut tensors = HashMap::new();
        for name in content.tensor_infos.keys() {
            let t = content
                .tensor(&mut file, name, device)
                .map_err(|e| bad(&e))?;
            tensors.insert(name.clone(), Arc::new(t));
        }
        Ok(Self::Gguf {
            tensors,
            device: device.clone(),
        })
    }

    fn device(&self) -> &Device {
        match self {
            Self::Float(vb) => vb.device(),
            Self::Gguf { device, .. } => device,
        }
    }

    /// The compute dtype (GGUF models compute in f32).
    pub fn dtype(&self) -> DType {
        match self {
            Self::Float(vb) => vb.dtype(),
            Self::Gguf { .. } => DType::F32,
        }
    }

    /// Whether a tensor exists.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::Float(vb) => vb.contains_tensor(name),
            Self::Gguf { tensors, .. } => tensors.contains_key(name),
        }
    }

    /// A tensor in the compute dtype, shape-checked.
    fn tensor(&self, name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
        match self {
            Self::Float(vb) => vb.get(shape, name),
            Self::Gguf { tensors, device } => {
                let q = tensors
                    .get(name)
                    .ok_or_else(|| candle_core::Error::Msg(format!("cannot find tensor {name}")))?;
                let t = q.dequantize(device)?;
                if t.dims() != shape {
                    candle_core::bail!(
                        "shape mismatch for {name}: expected {shape:?}, got {:?}",
                        t.dims()
                    );
                }
                Ok(t)
            }
        }
    }

    fn linear(
        &self,
        prefix: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> candle_core::Result<Linear> {
        let bias = if bias {
            Some(self.tensor(&format!("{prefix}.bias"), &[out_dim])?)
        } else {
            None
        };
        let name = format!("{prefix}.weight");
        let weight = match self {
            Self::Float(_) => LinearWeight::Float(self.tensor(&name, &[out_dim, in_dim])?),
            Self::Gguf { tensors, .. } => {
                let q = tensors
                    .get(&name)
                    .ok_or_else(|| candle_core::Error::Msg(format!("cannot find tensor {name}")))?;
                if q.shape().dims() != [out_dim, in_dim] {
                    candle_core::bail!(
                        "shape mismatch for {name}: expected {:?}, got {:?}",
                        [out_dim, in_dim],
                        q.shape()
                    );
                }
                LinearWeight::Quantized(QMatMul::from_arc(q.clone())?)
            }
        };
        Ok(Linear::new(weight, bias))
    }

    fn layer_norm(&self, prefix: &str, dim: usize) -> candle_core::Result<LayerNorm> {
        let w = self.tensor(&format!("{prefix}.weight"), &[dim])?;
        let b = self.tensor(&format!("{prefix}.bias"), &[dim])?;
        Ok(LayerNorm::new(w, b, 1e-5))
    }
}

fn check_safetensors_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut header = [0u8; 8];
    let mut file = std::fs::File::open(path).map_err(|source| SttError::Io {
        path: path.into(),
        source,
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file.read_exact(&mut header).is_err() || u64::from_le_bytes(header).saturating_add(8) > len {
        return Err(SttError::model(
            path,
            "not a safetensors file (bad or truncated header)",
        ));
    }
    Ok(())
}

enum LinearWeight {
    Float(Tensor),
    Quantized(QMatMul),
}

/// A linear layer whose weight is a float tensor or a quantized one.
struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
    /// Exact f16 copy of a float weight for few-row products, built on first use (only
    /// decoder layers ever need it).
    half_rows: std::sync::OnceLock<Option<Vec<half::f16>>>,
}

impl Linear {
    fn new(weight: LinearWeight, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            half_rows: std::sync::OnceLock::new(),
        }
    }

    /// Fuses several float projections of the same input into one matmul.
    fn fuse(parts: Vec<Linear>) -> candle_core::Result<Linear> {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for p in &parts {
            let LinearWeight::Float(w) = &p.weight else {
                candle_core::bail!("cannot fuse quantized weights")
            };
            biases.push(match &p.bias {
                Some(b) => b.clone(),
                None => Tensor::zeros(w.dim(0)?, w.dtype(), w.device())?,
            });
            weights.push(w.clone());
        }
        Ok(Linear::new(
            LinearWeight::Float(Tensor::cat(&weights, 0)?),
            Some(Tensor::cat(&biases, 0)?),
        ))
    }

    fn is_float(&self) -> bool {
        matches!(self.weight, LinearWeight::Float(_))
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = match &self.weight {
            LinearWeight::Float(w) => {
                let (rows, in_dim) = (x.elem_count() / x.dim(D::Minus1)?, x.dim(D::Minus1)?);
                let mut out_shape = x.dims().to_vec();
                *out_shape.last_mut().unwrap() = w.dim(0)?;
                let x2 = x.reshape((rows, in_dim))?;
                let y = if rows <= FEW_ROWS && is_cpu_f32(&x2) && is_cpu_f32(w) {
                    let half = self.half_rows.get_or_init(|| exact_f16_copy(w));
                    few_rows_matmul_t(&x2, w, half.as_deref())?
                } else {
                    x2.matmul(&w.t()?)?
                };
                y.reshape(out_shape)?
            }
            LinearWeight::Quantized(q) => q.forward(x)?,
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// How the q/k/v projections are stored. Float weights are fused at load time into one matmul
/// per input; quantized ones stay separate.
enum Projections {
    /// Self-attention: q, k and v of the same input in one matmul.
    SelfFused(Linear),
    /// Cross-attention: q of the text stream; k and v of the audio in one matmul.
    CrossFused { q: Linear, kv: Linear },
    /// Separate projections (quantized weights).
    Separate { q: Linear, k: Linear, v: Linear },
}

/// Multi-head attention: projections, then the fused attention kernel, then the output.
struct Attention {
    proj: Projections,
    out: Linear,
    n_head: usize,
}

impl Attention {
    fn load(
        w: &Weights,
        prefix: &str,
        d: usize,
        n_head: usize,
        cross: bool,
    ) -> candle_core::Result<Self> {
        let q = w.linear(&format!("{prefix}.q_proj"), d, d, true)?;
        let k = w.linear(&format!("{prefix}.k_proj"), d, d, false)?;
        let v = w.linear(&format!("{prefix}.v_proj"), d, d, true)?;
        let out = w.linear(&format!("{prefix}.out_proj"), d, d, true)?;
        let proj = match (q.is_float(), cross) {
            (false, _) => Projections::Separate { q, k, v },
            (true, false) => Projections::SelfFused(Linear::fuse(vec![q, k, v])?),
            (true, true) => Projections::CrossFused {
                q,
                kv: Linear::fuse(vec![k, v])?,
            },
        };
        Ok(Self { proj, out, n_head })
    }

    /// q, k, v of `x` (self-attention).
    fn project_qkv(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        match &self.proj {
            Projections::SelfFused(qkv) => {
                let y = qkv.forward(x)?;
                let d = y.dim(D::Minus1)? / 3;
                Ok((
                    y.narrow(D::Minus1, 0, d)?,
                    y.narrow(D::Minus1, d, d)?,
                    y.narrow(D::Minus1, 2 * d, d)?,
                ))
            }
            Projections::Separate { q, k, v } => Ok((q.forward(x)?, k.forward(x)?, v.forward(x)?)),
            Projections::CrossFused { .. } => {
                candle_core::bail!("cross-attention has no self q/k/v")
            }
        }
    }

    /// Queries of `x` (cross-attention).
    fn project_q(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.proj {
            Projections::CrossFused { q, .. } | Projections::Separate { q, .. } => q.forward(x),
            Projections::SelfFused(_) => {
                candle_core::bail!("self-attention queries come with project_qkv")
            }
        }
    }

    /// Keys and values of `x`, split into heads: (b, h, t, hd) (cross-attention).
    fn project_kv(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let (k, v) = match &self.proj {
            Projections::CrossFused { kv, .. } => {
                let y = kv.forward(x)?;
                let d = y.dim(D::Minus1)? / 2;
                (y.narrow(D::Minus1, 0, d)?, y.narrow(D::Minus1, d, d)?)
            }
            Projections::Separate { k, v, .. } => (k.forward(x)?, v.forward(x)?),
            Projections::SelfFused(_) => {
                candle_core::bail!("self-attention keys come with project_qkv")
            }
        };
        Ok((self.heads(&k)?, self.heads(&v)?))
    }

    /// (b, t, d) → contiguous (b, h, t, hd), for tensors that are kept (caches).
    fn heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.split_heads(x)?.contiguous()
    }

    /// (b, t, d) → a (b, h, t, hd) view without copying; the attention kernel reads it in place.
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        x.reshape((b, t, self.n_head, d / self.n_head))?
            .transpose(1, 2)
    }

    /// Scaled dot-product attention over heads, then the output projection; q, k, v are
    /// (b, h, t, hd). `causal_offset: Some(off)`: query row i sees keys j <= off + i.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        causal_offset: Option<usize>,
    ) -> candle_core::Result<Tensor> {
        let (b, h, n, hd) = q.dims4()?;
        let scale = (hd as f32).powf(-0.5);
        if b > 1 && n == 1 && k.dim(0)? == 1 {
            // Beams share one audio: the beams become query rows of a single batch entry, so
            // the cross-attention keys and values are read once per head, not once per beam.
            let y = attention_merged(&q.transpose(0, 2)?, k, v, scale, causal_offset)?;
            return self.out.forward(&y.reshape((b, 1, h * hd))?);
        }
        self.out
            .forward(&attention_merged(q, k, v, scale, causal_offset)?)
    }
}

struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

impl Mlp {
    fn load(w: &Weights, prefix: &str, d: usize, ffn: usize) -> candle_core::Result<Self> {
        Ok(Self {
            fc1: w.linear(&format!("{prefix}.fc1"), d, ffn, true)?,
            fc2: w.linear(&format!("{prefix}.fc2"), ffn, d, true)?,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&gelu(&self.fc1.forward(x)?)?)
    }
}

struct EncoderLayer {
    attn_ln: LayerNorm,
    attn: Attention,
    mlp_ln: LayerNorm,
    mlp: Mlp,
}

struct DecoderLayer {
    attn_ln: LayerNorm,
    attn: Attention,
    cross_ln: LayerNorm,
    cross: Attention,
    mlp_ln: LayerNorm,
    mlp: Mlp,
}

/// Per-request decoder state: self-attention KV cache and cross-attention keys/values
/// (computed once per audio window), kept apart from the immutable weights.
pub struct DecoderState {
    cross: Vec<(Tensor, Tensor)>,
    cache: Vec<Option<(Tensor, Tensor)>>,
    offset: usize,
}

impl DecoderState {
    /// Number of tokens already in the self-attention cache.
    pub fn len(&self) -> usize {
        self.offset
    }

    /// Whether no token has been decoded yet.
    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    /// Forgets decoded tokens, keeping the cross-attention keys/values.
    pub fn reset(&mut self) {
        self.cache.iter_mut().for_each(|c| *c = None);
        self.offset = 0;
    }

    /// Keeps batch rows `indices` (in that order) of the self-attention cache (beam search).
    pub fn reorder(&mut self, indices: &[u32]) -> Result<()> {
        let Some(Some((k0, _))) = self.cache.first() else {
            return Ok(());
        };
        let idx = Tensor::new(indices, k0.device())?;
        for (k, v) in self.cache.iter_mut().flatten() {
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        Ok(())
    }
}

/// The Whisper model: immutable weights, shared by every decode.
pub struct Whisper {
    /// Hyper-parameters.
    pub config: Config,
    conv1: Conv1d,
    conv2: Conv1d,
    enc_pos: Tensor,
    enc_layers: Vec<EncoderLayer>,
    enc_ln: LayerNorm,
    embed_tokens: Tensor,
    vocab: VocabProjection,
    dec_pos: Tensor,
    dec_layers: Vec<DecoderLayer>,
    dec_ln: LayerNorm,
    device: Device,
    dtype: DType,
}

impl Whisper {
    /// Builds the model from weights with transformers key names
    /// (`model.encoder.*`, `model.decoder.*`; the `model.` prefix is optional).
    pub fn load(w: &Weights, config: Config) -> candle_core::Result<Self> {
        let root = if w.contains("model.encoder.conv1.weight") {
            "model."
        } else {
            ""
        };
        let c = &config;
        let d = c.d_model;
        let enc = format!("{root}encoder");
        let dec = format!("{root}decoder");
        // The stem: two kernel-3 convolutions with padding 1, the second with stride 2.
        let conv = |name: &str, in_ch: usize, stride: usize| -> candle_core::Result<Conv1d> {
            let params = Conv1dParams {
                padding: 1,
                stride,
                ..Conv1dParams::default()
            };
            Conv1d::new(
                w.tensor(&format!("{enc}.{name}.weight"), &[d, in_ch, 3])?,
                Some(w.tensor(&format!("{enc}.{name}.bias"), &[d])?),
                params,
            )
        };
        let conv1 = conv("conv1", c.num_mel_bins, 1)?;
        let conv2 = conv("conv2", d, 2)?;
        let enc_pos_name = format!("{enc}.embed_positions.weight");
        let enc_pos = if w.contains(&enc_pos_name) {
            w.tensor(&enc_pos_name, &[c.max_source_positions, d])?
        } else {
            sinusoids(c.max_source_positions, d, w.device())?.to_dtype(w.dtype())?
        };
        let enc_layers = (0..c.encoder_layers)
            .map(|i| {
                let p = format!("{enc}.layers.{i}");
                Ok(EncoderLayer {
                    attn_ln: w.layer_norm(&format!("{p}.self_attn_layer_norm"), d)?,
                    attn: Attention::load(
                        w,
                        &format!("{p}.self_attn"),
                        d,
                        c.encoder_attention_heads,
                        false,
                    )?,
                    mlp_ln: w.layer_norm(&format!("{p}.final_layer_norm"), d)?,
                    mlp: Mlp::load(w, &p, d, c.encoder_ffn_dim)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let embed_tokens = w.tensor(&format!("{dec}.embed_tokens.weight"), &[c.vocab_size, d])?;
        let dec_layers = (0..c.decoder_layers)
            .map(|i| {
                let p = format!("{dec}.layers.{i}");
                Ok(DecoderLayer {
                    attn_ln: w.layer_norm(&format!("{p}.self_attn_layer_norm"), d)?,
                    attn: Attention::load(
                        w,
                        &format!("{p}.self_attn"),
                        d,
                        c.decoder_attention_heads,
                        false,
                    )?,
                    cross_ln: w.layer_norm(&format!("{p}.encoder_attn_layer_norm"), d)?,
                    cross: Attention::load(
                        w,
                        &format!("{p}.encoder_attn"),
                        d,
                        c.decoder_attention_heads,
                        true,
                    )?,
                    mlp_ln: w.layer_norm(&format!("{p}.final_layer_norm"), d)?,
                    mlp: Mlp::load(w, &p, d, c.decoder_ffn_dim)?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            conv1,
            conv2,
            enc_pos,
            enc_layers,
            enc_ln: w.layer_norm(&format!("{enc}.layer_norm"), d)?,
            embed_tokens: embed_tokens.clone(),
            vocab: VocabProjection::new(embed_tokens)?,
            dec_pos: w.tensor(
                &format!("{dec}.embed_positions.weight"),
                &[c.max_target_positions, d],
            )?,
            dec_layers,
            dec_ln: w.layer_norm(&format!("{dec}.layer_norm"), d)?,
            device: w.device().clone(),
            dtype: w.dtype(),
            config,
        })
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Encodes a log-mel spectrogram (b, n_mels, frames) into audio features (b, frames/2, d).
    pub fn encode(&self, mel: &Tensor) -> candle_core::Result<Tensor> {
        let x = mel.to_dtype(self.dtype)?;
        let x = gelu(&self.conv1.forward(&x)?)?;
        // (b, d, t) to the time-major (b, t, d) of the transformer layers.
        let x = gelu(&self.conv2.forward(&x)?)?.transpose(1, 2)?;
        let t = x.dim(1)?;
        let mut x = x.broadcast_add(&self.enc_pos.narrow(0, 0, t)?)?;
        for layer in &self.enc_layers {
            let h = layer.attn_ln.forward(&x)?;
            let (q, k, v) = layer.attn.project_qkv(&h)?;
            let a = &layer.attn;
            x = (x + a.attend(
                &a.split_heads(&q)?,
                &a.split_heads(&k)?,
                &a.split_heads(&v)?,
                None,
            )?)?;
            x = (&x + layer.mlp.forward(&layer.mlp_ln.forward(&x)?)?)?;
        }
        layer_norm(&self.enc_ln, &x)
    }

    /// A fresh decoder state for `batch` sequences attending to `audio_features` (1 or batch rows).
    pub fn decoder_state(
        &self,
        audio_features: &Tensor,
        batch: usize,
    ) -> candle_core::Result<DecoderState> {
        let cross = self
            .dec_layers
            .iter()
            .map(|l| {
                let (k, v) = l.cross.project_kv(audio_features)?;
                if k.dim(0)? == batch {
                    Ok((k, v))
                } else {
                    Ok((repeat_rows(&k, batch)?, repeat_rows(&v, batch)?))
                }
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(DecoderState {
            cross,
            cache: vec![None; self.dec_layers.len()],
            offset: 0,
        })
    }

    /// Runs the decoder on `tokens` (b, n) after what `state` holds, updates the cache and
    /// returns the logits of the last position (b, vocab) in f32.
    pub fn decode(&self, tokens: &Tensor, state: &mut DecoderState) -> candle_core::Result<Tensor> {
        let n = tokens.dim(1)?;
        self.decode_at(tokens, state, &[n - 1])?.squeeze(1)
    }

    /// Like [`Whisper::decode`], but returns the logits (b, positions, vocab) at the given
    /// positions of `tokens` (no-speech detection reads the logits at `<|startoftranscript|>`).
    pub fn decode_at(
        &self,
        tokens: &Tensor,
        state: &mut DecoderState,
        positions: &[usize],
    ) -> candle_core::Result<Tensor> {
        let (_, n) = tokens.dims2()?;
        let offset = state.offset;
        if offset + n > self.config.max_target_positions {
            candle_core::bail!(
                "decoder context of {} tokens exceeded",
                self.config.max_target_positions
            );
        }
        let emb = self
            .embed_tokens
            .embedding(&tokens.flatten_all()?)?
            .reshape((tokens.dim(0)?, n, ()))?;
        let mut x = emb.broadcast_add(&self.dec_pos.narrow(0, offset, n)?)?;
        let causal = (n > 1).then_some(offset);
        for (i, layer) in self.dec_layers.iter().enumerate() {
            let h = layer.attn_ln.forward(&x)?;
            let (q, k, v) = layer.attn.project_qkv(&h)?;
            let a = &layer.attn;
            let (k, v) = (a.heads(&k)?, a.heads(&v)?);
            let (k, v) = match &state.cache[i] {
                Some((pk, pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
                None => (k, v),
            };
            x = (&x + a.attend(&a.split_heads(&q)?, &k, &v, causal)?)?;
            state.cache[i] = Some((k, v));
            let h = layer.cross_ln.forward(&x)?;
            let (ck, cv) = &state.cross[i];
            let c = &layer.cross;
            x = (&x + c.attend(&c.split_heads(&c.project_q(&h)?)?, ck, cv, None)?)?;
            x = (&x + layer.mlp.forward(&layer.mlp_ln.forward(&x)?)?)?;
        }
        state.offset += n;
        let idx: Vec<u32> = positions.iter().map(|&p| p as u32).collect();
        let picked = x.index_select(&Tensor::new(idx.as_slice(), &self.device)?, 1)?;
        let picked = layer_norm(&self.dec_ln, &picked)?;
        let (b, p, d) = picked.dims3()?;
        let logits = self.vocab.forward(&picked.reshape((b * p, d))?)?;
        logits.reshape((b, p, ()))?.to_dtype(DType::F32)
    }
}

/// The output projection, tied to the token embeddings: logits = x · embeddingsᵀ.
///
/// With a handful of rows (one per beam) this is bound by reading the embedding matrix: 80 MB
/// in f32 for Whisper's 51 864 tokens × 384. Candle's gemm packs that matrix on every call,
/// tripling the memory traffic; on the CPU we stream it once instead, split across threads by
/// vocabulary rows. Whisper's weights were trained and released in f16, so the embeddings
/// usually survive a round trip through f16 exactly: then we stream an f16 copy (half the
/// bytes, identical results), else the f32 rows.
struct VocabProjection {
    embeddings: Tensor,
    half_rows: Option<Vec<half::f16>>,
}

impl VocabProjection {
    fn new(embeddings: Tensor) -> candle_core::Result<Self> {
        let half_rows = if is_cpu_f32(&embeddings) {
            exact_f16_copy(&embeddings)
        } else {
            None
        };
        Ok(Self {
            embeddings,
            half_rows,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if !(is_cpu_f32(x) && is_cpu_f32(&self.embeddings)) {
            return x.matmul(&self.embeddings.t()?);
        }
        few_rows_matmul_t(x, &self.embeddings, self.half_rows.as_deref())
    }
}

/// Exact (erf) GELU, as Whisper uses. Candle's CPU `gelu_erf` runs on one thread at ~10 ns per
/// element; on the CPU in f32 we apply it in parallel with an erf accurate to 1.5e-7.
fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return x.gelu_erf();
    }
    use rayon::prelude::*;
    let mut data: Vec<f32> = x.flatten_all()?.to_vec1()?;
    data.par_chunks_mut(16 * 1024).for_each(|chunk| {
        for v in chunk {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    });
    Tensor::from_vec(data, x.shape(), x.device())
}

/// erf by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_72 + t * (1.421_413_8 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * (-a * a).exp();
    y.copysign(x)
}

fn layer_norm(ln: &LayerNorm, x: &Tensor) -> candle_core::Result<Tensor> {
    ln.forward(x)
}

fn repeat_rows(x: &Tensor, n: usize) -> candle_core::Result<Tensor> {
    let mut dims = x.dims().to_vec();
    dims[0] = n;
    x.broadcast_as(dims)?.contiguous()
}

/// Whisper's sinusoidal encoder position embedding (for checkpoints that do not store it).
fn sinusoids(length: usize, channels: usize, device: &Device) -> candle_core::Result<Tensor> {
    let half = channels / 2;
    let log_inc = 10000f32.ln() / (half - 1) as f32;
    let mut data = vec![0f32; length * channels];
    for t in 0..length {
        for i in 0..half {
            let v = t as f32 * (-(i as f32) * log_inc).exp();
            data[t * channels + i] = v.sin();
            data[t * channels + half + i] = v.cos();
        }
    }
    Tensor::from_vec(data, (length, channels), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        assert_eq!(a.dims(), b.dims());
        let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar().unwrap()
    }

    #[test]
    fn fast_gelu_matches_candle() {
        let x = Tensor::arange(-6000i64, 6000, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let x = (x / 1000.0).unwrap();
        let max = max_abs_diff(&gelu(&x).unwrap(), &x.gelu_erf().unwrap());
        assert!(max < 1e-6, "{max}");
    }

    #[test]
    fn few_row_products_match_matmul() {
        for (m, k) in [
            (1, 40),
            (2, 384),
            (3, 17),
            (5, 384),
            (8, 64),
            (9, 40),
            (16, 33),
        ] {
            let x = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu).unwrap();
            let w = Tensor::randn(0f32, 1.0, (700, k), &Device::Cpu).unwrap();
            let w16 = w
                .to_dtype(DType::F16)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            assert!(exact_f16_copy(&w).is_none());
            let half = exact_f16_copy(&w16).expect("f16 values are exact");
            for (a, w) in [
                (few_rows_matmul_t(&x, &w, None), &w),
                (few_rows_matmul_t(&x, &w16, Some(&half)), &w16),
            ] {
                let b = x.matmul(&w.t().unwrap()).unwrap();
                let max = max_abs_diff(&a.unwrap(), &b);
                assert!(max < 1e-4, "m {m} k {k}: {max}");
            }
        }
    }

    #[test]
    fn streamed_vocab_projection_matches_matmul() {
        let x = Tensor::randn(0f32, 1.0, (5, 40), &Device::Cpu).unwrap();
        let e = Tensor::randn(0f32, 1.0, (1031, 40), &Device::Cpu).unwrap();
        let exact_in_f16 = e
            .to_dtype(DType::F16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        for (emb, half) in [(e, false), (exact_in_f16, true)] {
            let p = VocabProjection::new(emb.clone()).unwrap();
            assert_eq!(p.half_rows.is_some(), half);
            let a = p.forward(&x).unwrap();
            let b = x.matmul(&emb.t().unwrap()).unwrap();
            let max = max_abs_diff(&a, &b);
            assert!(max < 1e-4, "{max}");
        }
    }
}

#[cfg(test)]
mod config_tests {
    use super::Config;

    #[test]
    fn reads_transformers_configs_with_null_suppress_tokens() {
        let json = r#"{"vocab_size": 51866, "num_mel_bins": 128, "d_model": 1280,
            "encoder_layers": 32, "encoder_attention_heads": 20, "encoder_ffn_dim": 5120,
            "decoder_layers": 4, "decoder_attention_heads": 20, "decoder_ffn_dim": 5120,
            "suppress_tokens": null, "begin_suppress_tokens": [220, 50257], "model_type": "whisper"}"#;
        let c: Config = serde_json::from_str(json).unwrap();
        assert!(c.suppress_tokens.is_empty());
        assert_eq!(c.begin_suppress_tokens, vec![220, 50257]);
        assert_eq!(
            (c.max_source_positions, c.max_target_positions),
            (1500, 448)
        );
    }
}
