//! Seeded Gaussian noise, generated on the CPU so that the same seed gives the same image on any
//! device (SplitMix64 + Box–Muller; not PyTorch's generator, so seeds do not carry over from
//! diffusers: use `--latents` for that).

use candle_core::{Device, Tensor};

use crate::Result;

/// A seeded standard-normal generator.
#[derive(Debug, Clone)]
pub(crate) struct Noise {
    state: u64,
}

impl Noise {
    /// A generator for `seed` (used for the sampler's per-step noise).
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: seed ^ 0x005E_ED0F_D1FF_u64,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normals(&mut self, n: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let (u, v) = (self.uniform(), self.uniform());
            let r = (-2.0 * u.ln()).sqrt();
            let a = std::f64::consts::TAU * v;
            out.push((r * a.cos()) as f32);
            out.push((r * a.sin()) as f32);
        }
        out.truncate(n);
        out
    }

    /// Noise of `shape` from this generator.
    pub(crate) fn tensor(&mut self, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        Ok(Tensor::from_vec(self.normals(n), shape, &Device::Cpu)?)
    }

    /// Initial noise: image k of the batch from its own generator seeded `seed + k`, so that
    /// image k of a batch equals a single image made with seed + k.
    pub(crate) fn images(&self, seed: u64, shape: (usize, usize, usize, usize)) -> Result<Tensor> {
        let one = (1, shape.1, shape.2, shape.3);
        let images = (0..shape.0 as u64)
            .map(|k| {
                Noise::new(seed.wrapping_add(k).wrapping_mul(0x2545_F491_4F6C_DD1D)).tensor(one)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&images, 0)?)
    }
}
