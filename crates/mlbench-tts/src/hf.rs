//! transformers `VitsModel` checkpoints (Hugging Face MMS-TTS, `facebook/mms-tts-*`): the
//! `config.json`, and the conversion of its `model.safetensors` keys to the VITS parameter
//! names the model files use (those of jaywalnut310/vits, which Piper keeps), with weight-norm
//! folded. Reference: transformers 5.24 `models/vits/modeling_vits.py`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use crate::error::{Result, TtsError};
use crate::vits::VitsConfig;

/// The `config.json` of a transformers `VitsModel` (fields inference reads; training-only
/// fields such as `layerdrop` and the dropouts are ignored). Defaults are transformers'.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Config {
    /// `vits`.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Characters of the tokenizer's vocabulary.
    #[serde(default = "d::vocab_size")]
    pub vocab_size: usize,
    /// Text encoder width.
    #[serde(default = "d::hidden_size")]
    pub hidden_size: usize,
    /// Transformer layers.
    #[serde(default = "d::num_hidden_layers")]
    pub num_hidden_layers: usize,
    /// Attention heads.
    #[serde(default = "d::num_attention_heads")]
    pub num_attention_heads: usize,
    /// Relative-attention window (`null`: no relative positions, unsupported).
    #[serde(default = "d::window_size")]
    pub window_size: Option<usize>,
    /// Feed-forward activation (`relu`).
    #[serde(default = "d::hidden_act")]
    pub hidden_act: String,
    /// Feed-forward kernel size.
    #[serde(default = "d::ffn_kernel_size")]
    pub ffn_kernel_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "d::layer_norm_eps")]
    pub layer_norm_eps: f64,
    /// Latent (flow) width.
    #[serde(default = "d::flow_size")]
    pub flow_size: usize,
    /// Stochastic (true) or deterministic duration predictor.
    #[serde(default = "d::yes")]
    pub use_stochastic_duration_prediction: bool,
    /// Speakers (1: single speaker).
    #[serde(default = "d::one")]
    pub num_speakers: usize,
    /// Speaker embedding width (0 for single-speaker models).
    #[serde(default)]
    pub speaker_embedding_size: usize,
    /// HiFi-GAN input channels.
    #[serde(default = "d::upsample_initial_channel")]
    pub upsample_initial_channel: usize,
    /// HiFi-GAN upsampling strides.
    #[serde(default = "d::upsample_rates")]
    pub upsample_rates: Vec<usize>,
    /// HiFi-GAN upsampling kernel sizes.
    #[serde(default = "d::upsample_kernel_sizes")]
    pub upsample_kernel_sizes: Vec<usize>,
    /// Kernel size of each residual block of a stage.
    #[serde(default = "d::resblock_kernel_sizes")]
    pub resblock_kernel_sizes: Vec<usize>,
    /// Dilations of each residual block of a stage.
    #[serde(default = "d::resblock_dilation_sizes")]
    pub resblock_dilation_sizes: Vec<Vec<usize>>,
    /// HiFi-GAN leaky-ReLU slope.
    #[serde(default = "d::leaky_relu_slope")]
    pub leaky_relu_slope: f64,
    /// Channels of the duration flows (2).
    #[serde(default = "d::depth_separable_channels")]
    pub depth_separable_channels: usize,
    /// Spline bins of the duration flows.
    #[serde(default = "d::duration_predictor_flow_bins")]
    pub duration_predictor_flow_bins: usize,
    /// Spline tail bound of the duration flows.
    #[serde(default = "d::duration_predictor_tail_bound")]
    pub duration_predictor_tail_bound: f64,
    /// Convolution flows of the duration predictor.
    #[serde(default = "d::duration_predictor_num_flows")]
    pub duration_predictor_num_flows: usize,
    /// Coupling layers of the prior flow.
    #[serde(default = "d::prior_encoder_num_flows")]
    pub prior_encoder_num_flows: usize,
    /// WaveNet dilation rate of the prior flow.
    #[serde(default = "d::one")]
    pub wavenet_dilation_rate: usize,
    /// Speed: > 1 is faster (inverse of Piper's length scale).
    #[serde(default = "d::speaking_rate")]
    pub speaking_rate: f32,
    /// Default prior noise.
    #[serde(default = "d::noise_scale")]
    pub noise_scale: f32,
    /// Default duration noise.
    #[serde(default = "d::noise_scale_duration")]
    pub noise_scale_duration: f32,
    /// Output sample rate.
    #[serde(default = "d::sampling_rate")]
    pub sampling_rate: u32,
}

/// transformers' `VitsConfig` defaults.
mod d {
    pub fn vocab_size() -> usize {
        38
    }
    pub fn hidden_size() -> usize {
        192
    }
    pub fn num_hidden_layers() -> usize {
        6
    }
    pub fn num_attention_heads() -> usize {
        2
    }
    pub fn window_size() -> Option<usize> {
        Some(4)
    }
    pub fn hidden_act() -> String {
        "relu".into()
    }
    pub fn ffn_kernel_size() -> usize {
        3
    }
    pub fn layer_norm_eps() -> f64 {
        1e-5
    }
    pub fn flow_size() -> usize {
        192
    }
    pub fn yes() -> bool {
        true
    }
    pub fn one() -> usize {
        1
    }
    pub fn upsample_initial_channel() -> usize {
        512
    }
    pub fn upsample_rates() -> Vec<usize> {
        vec![8, 8, 2, 2]
    }
    pub fn upsample_kernel_sizes() -> Vec<usize> {
        vec![16, 16, 4, 4]
    }
    pub fn resblock_kernel_sizes() -> Vec<usize> {
        vec![3, 7, 11]
    }
    pub fn resblock_dilation_sizes() -> Vec<Vec<usize>> {
        vec![vec![1, 3, 5]; 3]
    }
    pub fn leaky_relu_slope() -> f64 {
        0.1
    }
    pub fn depth_separable_channels() -> usize {
        2
    }
    pub fn duration_predictor_flow_bins() -> usize {
        10
    }
    pub fn duration_predictor_tail_bound() -> f64 {
        5.0
    }
    pub fn duration_predictor_num_flows() -> usize {
        4
    }
    pub fn prior_encoder_num_flows() -> usize {
        4
    }
    pub fn speaking_rate() -> f32 {
        1.0
    }
    pub fn noise_scale() -> f32 {
        0.667
    }
    pub fn noise_scale_duration() -> f32 {
        0.8
    }
    pub fn sampling_rate() -> u32 {
        16_000
    }
}

impl Config {
    /// Reads and checks a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bad = |detail: String| TtsError::VoiceConfig {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|source| TtsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self = serde_json::from_str(&text)
            .map_err(|e| bad(format!("not a transformers VitsModel config: {e}")))?;
        config.check().map_err(bad)?;
        Ok(config)
    }

    /// What this crate's VITS does not implement, as one line.
    fn check(&self) -> std::result::Result<(), String> {
        let unsupported = |what: String| Err(format!("unsupported VitsModel: {what}"));
        match self.model_type.as_deref() {
            Some("vits") | None => {}
            Some(other) => return unsupported(format!("model_type '{other}' (expected 'vits')")),
        }
        if !self.use_stochastic_duration_prediction {
            return unsupported("the deterministic duration predictor".into());
        }
        if self.window_size.is_none_or(|w| w == 0) {
            return unsupported("attention without relative positions (window_size)".into());
        }
        if self.hidden_act != "relu" {
            return unsupported(format!("hidden_act '{}'", self.hidden_act));
        }
        if self.ffn_kernel_size.is_multiple_of(2) {
            return unsupported(format!("even ffn_kernel_size {}", self.ffn_kernel_size));
        }
        // The shared VITS modules use the values of jaywalnut310/vits.
        let fixed = [
            ("layer_norm_eps", self.layer_norm_eps, 1e-5),
            ("leaky_relu_slope", self.leaky_relu_slope, 0.1),
            (
                "duration_predictor_tail_bound",
                self.duration_predictor_tail_bound,
                5.0,
            ),
        ];
        for (name, value, want) in fixed {
            if (value - want).abs() > 1e-12 {
                return unsupported(format!("{name} {value} (only {want})"));
            }
        }
        if self.depth_separable_channels != 2 {
            return unsupported(format!(
                "depth_separable_channels {}",
                self.depth_separable_channels
            ));
        }
        if !self
            .hidden_size
            .is_multiple_of(self.num_attention_heads.max(1))
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.upsample_rates.is_empty()
            || self.upsample_rates.len() != self.upsample_kernel_sizes.len()
            || self.resblock_kernel_sizes.len() != self.resblock_dilation_sizes.len()
        {
            return Err(
                "upsample_rates / upsample_kernel_sizes or resblock_kernel_sizes / resblock_dilation_sizes differ in length"
                    .into(),
            );
        }
        if self.speaking_rate.is_nan() || self.speaking_rate <= 0.0 {
            return Err(format!(
                "speaking_rate must be positive, got {}",
                self.speaking_rate
            ));
        }
        Ok(())
    }

    /// The hyper-parameters of the shared VITS modules. HiFi-GAN in transformers uses
    /// ResBlock1 only.
    pub fn vits_config(&self) -> VitsConfig {
        VitsConfig {
            hidden_channels: self.hidden_size,
            inter_channels: self.flow_size,
            n_heads: self.num_attention_heads,
            n_layers: self.num_hidden_layers,
            window_size: self.window_size.unwrap_or(0),
            upsample_rates: self.upsample_rates.clone(),
            resblock: 1,
            resblock_dilation_sizes: self.resblock_dilation_sizes.clone(),
            flow_dilation_rate: self.wavenet_dilation_rate,
            n_speakers: self.num_speakers,
        }
    }
}

/// Reads `model.safetensors` (or a PyTorch `pytorch_model.bin`, the zip format) on the CPU
/// and converts it with [`convert_state_dict`].
pub fn read_weights(path: &Path) -> Result<HashMap<String, Tensor>> {
    let pickle = path.extension().is_some_and(|e| e == "bin" || e == "pt");
    let tensors = if pickle {
        candle_core::pickle::read_all(path).map(|v| v.into_iter().collect())
    } else {
        candle_core::safetensors::load(path, &Device::Cpu)
    };
    let tensors = tensors.map_err(|e| {
        TtsError::Weights(format!(
            "{}: not a readable {} checkpoint ({e})",
            path.display(),
            if pickle { "PyTorch" } else { "safetensors" }
        ))
    })?;
    convert_state_dict(tensors)
}

/// transformers `VitsModel` keys → VITS parameter names, weight-norm folded; the training-only
/// parts (posterior encoder, the duration predictor's posterior flows) are dropped.
pub fn convert_state_dict(tensors: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    let tensors = fold_weight_norm(tensors)?;
    let mut out = HashMap::with_capacity(tensors.len());
    for (key, t) in tensors {
        if let Some((name, t)) = rename(&key, t)? {
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// One key's VITS name (and the tensor, reshaped where the layouts differ), `None` to drop it.
fn rename(key: &str, t: Tensor) -> Result<Option<(String, Tensor)>> {
    if key.starts_with("posterior_encoder.") || key.starts_with("duration_predictor.post_") {
        return Ok(None);
    }
    let name = if let Some(rest) = key.strip_prefix("text_encoder.") {
        let Some(name) = text_encoder_key(rest) else {
            return Ok(None);
        };
        // Linear (out, in) → conv1d (out, in, 1).
        if name.contains(".attn_layers.") && name.ends_with(".weight") && t.rank() == 2 {
            return Ok(Some((name, t.unsqueeze(2)?)));
        }
        name
    } else if let Some(rest) = key.strip_prefix("duration_predictor.") {
        format!("dp.{}", duration_key(rest))
    } else if let Some(rest) = key.strip_prefix("flow.flows.") {
        // Coupling layers only: Piper's (exported) flows interleave parameter-free flips.
        let (i, rest) = split_index(rest)
            .ok_or_else(|| TtsError::Weights(format!("unexpected parameter {key}")))?;
        let rest = rest
            .replacen("conv_pre.", "pre.", 1)
            .replacen("conv_post.", "post.", 1)
            .replacen("wavenet.", "enc.", 1);
        format!("flow.flows.{}.{rest}", 2 * i)
    } else if let Some(rest) = key.strip_prefix("decoder.") {
        format!("dec.{}", rest.replacen("upsampler.", "ups.", 1))
    } else if key == "embed_speaker.weight" {
        "emb_g.weight".into()
    } else {
        return Err(TtsError::Weights(format!(
            "unexpected parameter {key} for a VitsModel"
        )));
    };
    Ok(Some((name, t)))
}

fn text_encoder_key(rest: &str) -> Option<String> {
    if rest == "embed_tokens.weight" {
        return Some("enc_p.emb.weight".into());
    }
    if let Some(p) = rest.strip_prefix("project.") {
        return Some(format!("enc_p.proj.{p}"));
    }
    let (i, rest) = split_index(rest.strip_prefix("encoder.layers.")?)?;
    let e = "enc_p.encoder";
    let norm = |p: &str| match p {
        "weight" => "gamma",
        _ => "beta",
    };
    Some(if let Some(p) = rest.strip_prefix("attention.") {
        let p = p
            .replacen("q_proj.", "conv_q.", 1)
            .replacen("k_proj.", "conv_k.", 1)
            .replacen("v_proj.", "conv_v.", 1)
            .replacen("out_proj.", "conv_o.", 1);
        format!("{e}.attn_layers.{i}.{p}")
    } else if let Some(p) = rest.strip_prefix("layer_norm.") {
        format!("{e}.norm_layers_1.{i}.{}", norm(p))
    } else if let Some(p) = rest.strip_prefix("final_layer_norm.") {
        format!("{e}.norm_layers_2.{i}.{}", norm(p))
    } else if let Some(p) = rest.strip_prefix("feed_forward.") {
        format!("{e}.ffn_layers.{i}.{p}")
    } else {
        return None;
    })
}

/// `conv_pre` → `pre`, `conv_dds.convs_dilated` → `convs.convs_sep`, …, `flows.0.translate` →
/// `flows.0.m` (the stochastic duration predictor and its flows).
fn duration_key(rest: &str) -> String {
    let parts: Vec<&str> = rest.split('.').collect();
    let renamed: Vec<&str> = parts
        .iter()
        .enumerate()
        .map(|(n, &part)| {
            let norm = n >= 2 && parts[n - 2].starts_with("norms_");
            match part {
                "conv_pre" => "pre",
                "conv_proj" => "proj",
                "conv_dds" => "convs",
                "convs_dilated" => "convs_sep",
                "convs_pointwise" => "convs_1x1",
                "translate" => "m",
                "log_scale" => "logs",
                "weight" if norm => "gamma",
                "bias" if norm => "beta",
                other => other,
            }
        })
        .collect();
    renamed.join(".")
}

/// `"3.rest"` → (3, `"rest"`).
fn split_index(s: &str) -> Option<(usize, &str)> {
    let (i, rest) = s.split_once('.')?;
    Some((i.parse().ok()?, rest))
}

/// Replaces each weight-normed parameter (`X.weight_g` + `X.weight_v`, or transformers 5's
/// `X.parametrizations.weight.original0` + `original1`) by `X.weight = g · v / ‖v‖`.
pub fn fold_weight_norm(mut tensors: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    const FORMS: [(&str, &str); 2] = [
        (".weight_g", ".weight_v"),
        (
            ".parametrizations.weight.original0",
            ".parametrizations.weight.original1",
        ),
    ];
    for (g_suffix, v_suffix) in FORMS {
        let modules: Vec<String> = tensors
            .keys()
            .filter_map(|k| k.strip_suffix(g_suffix).map(str::to_string))
            .collect();
        for m in modules {
            let g = tensors.remove(&format!("{m}{g_suffix}"));
            let v = tensors.remove(&format!("{m}{v_suffix}"));
            let (Some(g), Some(v)) = (g, v) else {
                return Err(TtsError::Weights(format!(
                    "{m}: weight-norm magnitude without its direction ({m}{v_suffix})"
                )));
            };
            tensors.insert(
                format!("{m}.weight"),
                weight_norm(&g, &v).map_err(|e| {
                    TtsError::Weights(format!("{m}: cannot fold weight-norm ({e})"))
                })?,
            );
        }
    }
    Ok(tensors)
}

/// `g · v / ‖v‖`, the norm taken over every dim where `g` has size 1 (PyTorch's
/// `_weight_norm`: `dim=0` for convolutions, `g` of shape (out, 1, 1); a transposed conv
/// normed on dim 1 has `g` of shape (1, out, 1)).
pub fn weight_norm(g: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
    let dtype = v.dtype();
    let (g, v) = (g.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?);
    let mut sq = v.sqr()?;
    let keep: Vec<bool> = if g.rank() == v.rank() {
        g.dims().iter().map(|&d| d != 1).collect()
    } else if g.elem_count() == 1 {
        vec![false; v.rank()]
    } else {
        candle_core::bail!("magnitude {:?} for direction {:?}", g.dims(), v.dims())
    };
    for (d, &k) in keep.iter().enumerate() {
        if !k {
            sq = sq.sum_keepdim(d)?;
        }
    }
    let g = if g.rank() == v.rank() {
        g
    } else {
        g.reshape(vec![1; v.rank()])?
    };
    v.broadcast_mul(&g.broadcast_div(&sq.sqrt()?)?)?
        .to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_vits_names() {
        let t = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
        let name = |k: &str| rename(k, t.clone()).unwrap().map(|(n, _)| n);
        let cases = [
            (
                "text_encoder.encoder.layers.1.attention.q_proj.weight",
                "enc_p.encoder.attn_layers.1.conv_q.weight",
            ),
            (
                "text_encoder.encoder.layers.0.final_layer_norm.bias",
                "enc_p.encoder.norm_layers_2.0.beta",
            ),
            (
                "duration_predictor.flows.3.conv_dds.norms_1.2.weight",
                "dp.flows.3.convs.norms_1.2.gamma",
            ),
            (
                "duration_predictor.conv_dds.convs_dilated.0.weight",
                "dp.convs.convs_sep.0.weight",
            ),
            ("duration_predictor.flows.0.translate", "dp.flows.0.m"),
            (
                "flow.flows.1.wavenet.res_skip_layers.0.weight",
                "flow.flows.2.enc.res_skip_layers.0.weight",
            ),
            ("decoder.upsampler.1.bias", "dec.ups.1.bias"),
            ("embed_speaker.weight", "emb_g.weight"),
        ];
        for (from, to) in cases {
            assert_eq!(name(from).as_deref(), Some(to), "{from}");
        }
        assert_eq!(name("posterior_encoder.conv_pre.weight"), None);
        assert_eq!(name("duration_predictor.post_flows.0.translate"), None);
        assert!(rename("lm_head.weight", t).is_err());
    }

    #[test]
    fn weight_norm_folds_over_the_other_dims() {
        let v = Tensor::new(&[[[3f32, 4.0]], [[0.0, 2.0]]], &Device::Cpu).unwrap(); // (2, 1, 2)
        let g = Tensor::new(&[[[10f32]], [[1.0]]], &Device::Cpu).unwrap(); // (2, 1, 1)
        let w = weight_norm(&g, &v).unwrap();
        let want = [6f32, 8.0, 0.0, 1.0];
        assert_eq!(w.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
        // dim = 1 (g of shape (1, c, 1)).
        let v = v.reshape((1, 2, 2)).unwrap();
        let g = Tensor::new(&[10f32, 1.0], &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 1))
            .unwrap();
        let w = weight_norm(&g, &v).unwrap();
        assert_eq!(w.flatten_all().unwrap().to_vec1::<f32>().unwrap(), want);
        // dim = None (one magnitude): the norm over everything.
        let g = Tensor::new(&[2f32], &Device::Cpu).unwrap();
        let w = weight_norm(&g, &v).unwrap();
        let n = (9f32 + 16.0 + 4.0).sqrt();
        let got = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for (a, b) in got.iter().zip([3.0, 4.0, 0.0, 2.0]) {
            assert!((a - 2.0 * b / n).abs() < 1e-6, "{a}");
        }
    }
}
