//! Random weights for the "real architecture, no download" benchmarks: every tensor a model
//! reads, under the checkpoint's own names, in f32 on the CPU. Speed does not depend on the
//! values, only on their shapes (and on staying finite through the model).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

/// How matrices and embeddings are drawn.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// Normal with std 1/sqrt(fan-in) over all dimensions but the first (a matrix row or a
    /// filter); 3-D embeddings (class token, positions) get std 0.02.
    FanIn,
    /// Normal with one std for everything (transformers' `initializer_range`).
    Std(f32),
}

/// A growing set of named random tensors.
pub struct RandomTensors {
    init: Init,
    tensors: HashMap<String, Tensor>,
}

impl RandomTensors {
    pub fn new(init: Init) -> Self {
        Self {
            init,
            tensors: HashMap::new(),
        }
    }

    pub fn into_map(self) -> HashMap<String, Tensor> {
        self.tensors
    }

    fn put(&mut self, name: &str, t: Tensor) {
        self.tensors.insert(name.to_string(), t);
    }

    pub fn normal(&mut self, name: &str, shape: &[usize]) -> candle_core::Result<()> {
        let std = match self.init {
            Init::Std(std) => std,
            Init::FanIn if shape.len() == 3 => 0.02,
            Init::FanIn => {
                let fan_in: usize = shape[1..].iter().product();
                1.0 / (fan_in.max(1) as f32).sqrt()
            }
        };
        self.put(name, Tensor::randn(0f32, std, shape, &Device::Cpu)?);
        Ok(())
    }

    pub fn fill(&mut self, name: &str, n: usize, value: f64) -> candle_core::Result<()> {
        let t = (Tensor::ones(n, DType::F32, &Device::Cpu)? * value)?;
        self.put(name, t);
        Ok(())
    }

    pub fn zeros(&mut self, name: &str, n: usize) -> candle_core::Result<()> {
        self.fill(name, n, 0.0)
    }

    /// A bias-free convolution and its batch norm (identity statistics).
    pub fn conv_bn(&mut self, conv: &str, bn: &str, shape: &[usize]) -> candle_core::Result<()> {
        self.normal(&format!("{conv}.weight"), shape)?;
        let c = shape[0];
        self.fill(&format!("{bn}.weight"), c, 1.0)?;
        self.zeros(&format!("{bn}.bias"), c)?;
        self.zeros(&format!("{bn}.running_mean"), c)?;
        self.fill(&format!("{bn}.running_var"), c, 1.0)
    }

    /// `NAME.weight` (out, in) and a zero `NAME.bias`.
    pub fn linear(&mut self, name: &str, in_dim: usize, out_dim: usize) -> candle_core::Result<()> {
        self.normal(&format!("{name}.weight"), &[out_dim, in_dim])?;
        self.zeros(&format!("{name}.bias"), out_dim)
    }

    /// An identity layer norm.
    pub fn layer_norm(&mut self, name: &str, d: usize) -> candle_core::Result<()> {
        self.fill(&format!("{name}.weight"), d, 1.0)?;
        self.zeros(&format!("{name}.bias"), d)
    }
}
