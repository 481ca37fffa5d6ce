//! VITS inference (Kim et al. 2021) as Piper and MMS-TTS run it: text encoder → stochastic
//! duration predictor (reverse) → length regulation → prior sample → coupling flow (reverse) →
//! HiFi-GAN. One module per part; [`Vits::infer`] chains them.
//! Reference: jaywalnut310/vits `models.py` SynthesizerTrn.infer (commit 2e561ba), as exported
//! by Piper (`piper_train/export_onnx.py`).

mod duration;
mod flow;
mod generator;
mod ops;
mod text_encoder;
pub mod weights;

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use mlbench_core::timing::Timings;

use crate::error::{Result, TtsError};
use crate::onnx::OnnxWeights;
pub use duration::DurationPredictor;
pub use flow::Flow;
pub use generator::Generator;
pub use text_encoder::TextEncoder;
use weights::Weights;

/// The hyper-parameters of a VITS model that are not visible in its tensor shapes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VitsConfig {
    /// Text encoder width.
    pub hidden_channels: usize,
    /// Latent (flow) width.
    pub inter_channels: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Transformer layers.
    pub n_layers: usize,
    /// Relative-attention window.
    pub window_size: usize,
    /// HiFi-GAN upsampling strides (their product is the hop length).
    pub upsample_rates: Vec<usize>,
    /// 1 (ResBlock1) or 2 (ResBlock2).
    pub resblock: u8,
    /// Dilations per residual block kernel.
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    /// WaveNet dilation rate in the flow.
    pub flow_dilation_rate: usize,
    /// Speaker embeddings (0 or 1 for single-speaker voices).
    pub n_speakers: usize,
}

impl VitsConfig {
    /// Reads the hyper-parameters of a Piper export from its tensor shapes and conv attributes.
    pub fn from_onnx(w: &OnnxWeights) -> Result<Self> {
        let dims = |name: &str| -> Result<Vec<usize>> {
            w.tensors
                .get(name)
                .map(|t| t.dims().to_vec())
                .ok_or_else(|| TtsError::Weights(format!("missing parameter {name}")))
        };
        let count = |prefix: &str| {
            (0..)
                .take_while(|i| {
                    let p = format!("{prefix}.{i}.");
                    w.tensors.keys().any(|k| k.starts_with(&p))
                })
                .count()
        };
        let conv = |module: &str| {
            w.convs
                .get(module)
                .copied()
                .ok_or_else(|| TtsError::Weights(format!("no convolution node for {module}")))
        };
        let hidden_channels = dims("enc_p.emb.weight")?[1];
        let rel = dims("enc_p.encoder.attn_layers.0.emb_rel_k")?;
        let (window, k_channels) = ((rel[1] - 1) / 2, rel[2]);
        let n_ups = count("dec.ups");
        let upsample_rates = (0..n_ups)
            .map(|i| conv(&format!("dec.ups.{i}")).map(|c| c.stride))
            .collect::<Result<Vec<_>>>()?;
        let n_blocks = count("dec.resblocks");
        if n_ups == 0 || n_blocks == 0 || n_blocks % n_ups != 0 {
            return Err(TtsError::Weights(format!(
                "{n_ups} upsampling layers and {n_blocks} residual blocks"
            )));
        }
        let resblock = if w.tensors.contains_key("dec.resblocks.0.convs1.0.weight") {
            1
        } else {
            2
        };
        let convs = if resblock == 1 { "convs1" } else { "convs" };
        let resblock_dilation_sizes = (0..n_blocks / n_ups)
            .map(|j| {
                let p = format!("dec.resblocks.{j}.{convs}");
                (0..count(&p))
                    .map(|n| conv(&format!("{p}.{n}")).map(|c| c.dilation))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let flow_dilation_rate = w
            .convs
            .get("flow.flows.0.enc.in_layers.1")
            .map_or(1, |c| c.dilation);
        let n_speakers = w.tensors.get("emb_g.weight").map_or(1, |t| t.dims()[0]);
        Ok(Self {
            hidden_channels,
            inter_channels: dims("enc_p.proj.weight")?[0] / 2,
            n_heads: hidden_channels / k_channels.max(1),
            n_layers: count("enc_p.encoder.attn_layers"),
            window_size: window,
            upsample_rates,
            resblock,
            resblock_dilation_sizes,
            flow_dilation_rate,
            n_speakers,
        })
    }

    /// Audio samples per latent frame.
    pub fn hop_length(&self) -> usize {
        self.upsample_rates.iter().product()
    }
}

/// Noise and speed controls of one synthesis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scales {
    /// Scale of the prior noise (variation of the voice).
    pub noise_scale: f32,
    /// Phoneme length multiplier (> 1 is slower).
    pub length_scale: f32,
    /// Scale of the duration predictor's noise (variation of the rhythm).
    pub noise_w: f32,
}

/// The output of [`Vits::infer`].
#[derive(Debug, Clone)]
pub struct Utterance {
    /// Samples in [-1, 1].
    pub samples: Vec<f32>,
    /// Frames given to each phoneme id.
    pub durations: Vec<usize>,
    /// Per-stage times: `encode`, `durations`, `flow`, `decode`.
    pub timings: Timings,
}

/// A loaded VITS model.
#[derive(Debug, Clone)]
pub struct Vits {
    config: VitsConfig,
    enc_p: TextEncoder,
    dp: DurationPredictor,
    flow: Flow,
    dec: Generator,
    emb_g: Option<Tensor>,
    device: Device,
}

impl Vits {
    /// Builds the model from named parameters.
    pub fn load(
        config: VitsConfig,
        tensors: std::collections::HashMap<String, Tensor>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let w = Weights::new(tensors, device, dtype);
        let emb_g = if w.has("emb_g.weight") {
            Some(w.get("emb_g.weight")?)
        } else {
            None
        };
        Ok(Self {
            enc_p: TextEncoder::load(&w, &config)?,
            dp: DurationPredictor::load(&w)?,
            flow: Flow::load(&w, config.flow_dilation_rate)?,
            dec: Generator::load(&w, &config)?,
            emb_g,
            config,
            device: device.clone(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &VitsConfig {
        &self.config
    }

    /// Synthesizes one utterance: phoneme ids → samples in [-1, 1]. `seed` drives the noise.
    pub fn infer(
        &self,
        ids: &[i64],
        speaker: Option<usize>,
        scales: Scales,
        seed: u64,
    ) -> Result<Utterance> {
        if ids.is_empty() {
            return Err(TtsError::EmptyText("no phonemes to synthesize".into()));
        }
        let t = ids.len();
        let ids_u32: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        let ids = Tensor::new(ids_u32.as_slice(), &self.device)?;
        let dtype = self.enc_p_dtype();
        let g = match (&self.emb_g, speaker) {
            (Some(emb), s) => {
                let s = s.unwrap_or(0) as u32;
                let idx = Tensor::new(&[s], &self.device)?;
                Some(emb.embedding(&idx)?.unsqueeze(2)?) // (1, gin, 1)
            }
            (None, _) => None,
        };
        let mut rng = Normal::new(seed);
        let mut timings = Timings::new();
        let mut clock = Instant::now();
        let mut lap = |timings: &mut Timings, stage: &str| {
            timings.record(stage, clock.elapsed());
            clock = Instant::now();
        };
        // 1. text encoder.
        let (x, m_p, logs_p) = self.enc_p.forward(&ids)?;
        lap(&mut timings, "encode");
        // 2. durations.
        let noise = rng.tensor(2 * t, scales.noise_w, (1, 2, t), &self.device, dtype)?;
        let logw = self.dp.reverse(&x, g.as_ref(), &noise)?;
        let w = logw.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let durations: Vec<usize> = w
            .iter()
            .map(|l| (l.exp() * scales.length_scale).ceil().max(0.0) as usize)
            .collect();
        lap(&mut timings, "durations");
        // 3. length regulation: phoneme i repeated durations[i] times.
        let idx: Vec<u32> = durations
            .iter()
            .enumerate()
            .flat_map(|(i, &d)| std::iter::repeat_n(i as u32, d))
            .collect();
        if idx.is_empty() {
            return Ok(Utterance {
                samples: vec![0.0; self.config.hop_length()],
                durations,
                timings,
            });
        }
        let frames = idx.len();
        let idx = Tensor::new(idx.as_slice(), &self.device)?;
        let m = m_p.index_select(&idx, 2)?;
        let logs = logs_p.index_select(&idx, 2)?;
        // 4. prior sample and flow.
        let c = m.dim(1)?;
        let z_p = if scales.noise_scale != 0.0 {
            let eps = rng.tensor(
                c * frames,
                scales.noise_scale,
                (1, c, frames),
                &self.device,
                dtype,
            )?;
            (m + (eps * logs.exp()?)?)?
        } else {
            m
        };
        let z = sync(self.flow.reverse(&z_p, g.as_ref())?)?;
        lap(&mut timings, "flow");
        // 5. waveform.
        let audio = self.dec.forward(&z, g.as_ref())?;
        let samples = audio
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        lap(&mut timings, "decode");
        Ok(Utterance {
            samples,
            durations,
            timings,
        })
    }

    fn enc_p_dtype(&self) -> DType {
        // The embedding carries the compute dtype.
        self.enc_p.dtype()
    }
}

/// Waits for the device to finish `t` (GPU stage times), a no-op on the CPU.
fn sync(t: Tensor) -> candle_core::Result<Tensor> {
    t.device().synchronize()?;
    Ok(t)
}

/// Deterministic standard-normal noise (xorshift64* + Box–Muller), the same on every device.
struct Normal(u64);

impl Normal {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (v as f32 + 0.5) / (1u64 << 24) as f32
    }

    fn tensor(
        &mut self,
        n: usize,
        scale: f32,
        shape: (usize, usize, usize),
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Tensor> {
        let mut v = Vec::with_capacity(n);
        if scale == 0.0 {
            v.resize(n, 0.0);
        } else {
            while v.len() < n {
                let (u1, u2) = (self.uniform(), self.uniform());
                let r = (-2.0 * u1.ln()).sqrt();
                let a = 2.0 * std::f32::consts::PI * u2;
                v.push(r * a.cos() * scale);
                v.push(r * a.sin() * scale);
            }
            v.truncate(n);
        }
        Tensor::from_vec(v, shape, &Device::Cpu)?
            .to_device(device)?
            .to_dtype(dtype)
    }
}
