//! The activation functions `config.json` names (transformers' `ACT2FN` keys).

use candle_core::{Result, Tensor};
use serde::Deserialize;

/// An activation as transformers names it in `hidden_act`, `activation`, `hidden_activation`, ….
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Activation {
    /// GELU with the exact erf (`gelu`).
    Gelu,
    /// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    #[serde(alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluNew,
    /// `relu`.
    Relu,
    /// `silu` (= `swish`).
    #[serde(alias = "swish")]
    Silu,
    /// `tanh`.
    Tanh,
    /// `quick_gelu`: `x · σ(1.702 x)`.
    QuickGelu,
}

impl Activation {
    /// Applies the activation.
    pub fn forward(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Gelu => x.gelu_erf(),
            Self::GeluNew => x.gelu(),
            Self::Relu => x.relu(),
            Self::Silu => x.silu(),
            Self::Tanh => x.tanh(),
            Self::QuickGelu => x * candle_nn::ops::sigmoid(&(x * 1.702)?)?,
        }
    }
}

pub(crate) fn gelu() -> Activation {
    Activation::Gelu
}
