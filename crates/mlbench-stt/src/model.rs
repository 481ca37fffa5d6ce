//! The Whisper encoder-decoder, with a self-attention KV cache and cached cross-attention.

use serde::Deserialize;

/// Whisper hyper-parameters: a serde copy of the transformers checkpoint's `config.json`
/// (`WhisperConfig`), with the token ids the decoder needs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
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
    /// Tokens never sampled.
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    /// Tokens not sampled at the first position.
    #[serde(default)]
    pub begin_suppress_tokens: Vec<u32>,
}

fn default_source_positions() -> usize {
    1500
}

fn default_target_positions() -> usize {
    448
}
