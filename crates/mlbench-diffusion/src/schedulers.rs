//! Noise schedulers, configured from the model's own `scheduler/scheduler_config.json` (beta
//! schedule, prediction type, timestep spacing, steps offset), as diffusers'
//! `SchedulerClass.from_config(pipe.scheduler.config)` does.
//!
//! Reference: diffusers 0.42.1 `src/diffusers/schedulers/scheduling_{ddim,euler_discrete,
//! euler_ancestral_discrete,dpmsolver_multistep}.py`. Each scheduler keeps diffusers' own default
//! for a setting the config leaves out (e.g. `timestep_spacing`: DDIM `leading`, the others
//! `linspace`).

use std::str::FromStr;

use candle_core::Tensor;
use serde::Deserialize;

use crate::{Error, Result};

/// A sampler, named as on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulerKind {
    /// DDIM, η = 0 (`ddim`).
    Ddim,
    /// Euler (`euler`).
    Euler,
    /// Euler with Karras sigmas (`euler_karras`).
    EulerKarras,
    /// Euler ancestral (`euler_a`).
    EulerAncestral,
    /// DPM-Solver++ 2M (`dpmpp_2m`).
    DpmPp2m,
    /// DPM-Solver++ 2M with Karras sigmas (`dpmpp_2m_karras`).
    DpmPp2mKarras,
    /// Latent consistency (`lcm`): LCM-distilled UNets or LCM-LoRA, 2–8 steps, guidance ≤ 2.
    Lcm,
}

impl SchedulerKind {
    /// Every sampler, in `--help` order.
    pub const ALL: [SchedulerKind; 7] = [
        SchedulerKind::Ddim,
        SchedulerKind::Euler,
        SchedulerKind::EulerKarras,
        SchedulerKind::EulerAncestral,
        SchedulerKind::DpmPp2m,
        SchedulerKind::DpmPp2mKarras,
        SchedulerKind::Lcm,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "ddim",
            SchedulerKind::Euler => "euler",
            SchedulerKind::EulerKarras => "euler_karras",
            SchedulerKind::EulerAncestral => "euler_a",
            SchedulerKind::DpmPp2m => "dpmpp_2m",
            SchedulerKind::DpmPp2mKarras => "dpmpp_2m_karras",
            SchedulerKind::Lcm => "lcm",
        }
    }

    /// The sampler name the popular web UIs write in a PNG's `parameters`.
    pub fn webui_name(self) -> &'static str {
        match self {
            SchedulerKind::Ddim => "DDIM",
            SchedulerKind::Euler => "Euler",
            SchedulerKind::EulerKarras => "Euler Karras",
            SchedulerKind::EulerAncestral => "Euler a",
            SchedulerKind::DpmPp2m => "DPM++ 2M",
            SchedulerKind::DpmPp2mKarras => "DPM++ 2M Karras",
            SchedulerKind::Lcm => "LCM",
        }
    }

    /// The sampler of a diffusers scheduler class (`_class_name`), if we implement it.
    pub fn from_class(class: &str, config: &SchedulerConfig) -> Option<Self> {
        let karras = config.use_karras_sigmas.unwrap_or(false);
        Some(match class {
            "DDIMScheduler" => SchedulerKind::Ddim,
            "EulerDiscreteScheduler" if karras => SchedulerKind::EulerKarras,
            "EulerDiscreteScheduler" => SchedulerKind::Euler,
            "EulerAncestralDiscreteScheduler" => SchedulerKind::EulerAncestral,
            "DPMSolverMultistepScheduler" if karras => SchedulerKind::DpmPp2mKarras,
            "DPMSolverMultistepScheduler" => SchedulerKind::DpmPp2m,
            "LCMScheduler" => SchedulerKind::Lcm,
            _ => return None,
        })
    }
}

impl FromStr for SchedulerKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let key = s
            .to_ascii_lowercase()
            .replace("++", "pp")
            .replace(['-', ' '], "_");
        let kind = match key.as_str() {
            "ddim" => SchedulerKind::Ddim,
            "euler" => SchedulerKind::Euler,
            "euler_karras" => SchedulerKind::EulerKarras,
            "euler_a" | "euler_ancestral" => SchedulerKind::EulerAncestral,
            "dpmpp_2m" => SchedulerKind::DpmPp2m,
            "dpmpp_2m_karras" => SchedulerKind::DpmPp2mKarras,
            "lcm" => SchedulerKind::Lcm,
            _ => {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                return Err(Error::Invalid(format!(
                    "unknown scheduler {s:?}; known: {}",
                    names.join(", ")
                )));
            }
        };
        Ok(kind)
    }
}

impl std::fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `scheduler/scheduler_config.json`: the settings all our samplers share. Absent fields take
/// the default of the sampler that uses the config.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SchedulerConfig {
    /// diffusers class that wrote the config.
    #[serde(rename = "_class_name", default)]
    pub class_name: Option<String>,
    /// Training timesteps (1000).
    pub num_train_timesteps: Option<usize>,
    /// First beta.
    pub beta_start: Option<f64>,
    /// Last beta.
    pub beta_end: Option<f64>,
    /// `linear`, `scaled_linear` or `squaredcos_cap_v2`.
    pub beta_schedule: Option<String>,
    /// Explicit betas.
    pub trained_betas: Option<Vec<f64>>,
    /// `epsilon`, `v_prediction` or `sample`.
    pub prediction_type: Option<String>,
    /// `leading`, `trailing` or `linspace`.
    pub timestep_spacing: Option<String>,
    /// Added to `leading` timesteps.
    pub steps_offset: Option<usize>,
    /// DDIM: the final step goes to alpha = 1.
    pub set_alpha_to_one: Option<bool>,
    /// DDIM: clip the predicted sample.
    pub clip_sample: Option<bool>,
    /// DDIM: clip range.
    pub clip_sample_range: Option<f64>,
    /// Karras sigmas (Euler, DPM++).
    pub use_karras_sigmas: Option<bool>,
    /// Zero-terminal-SNR betas (not supported).
    pub rescale_betas_zero_snr: Option<bool>,
    /// Dynamic thresholding (not supported).
    pub thresholding: Option<bool>,
    /// `zero` or `sigma_min`.
    pub final_sigmas_type: Option<String>,
    /// `linear` only.
    pub interpolation_type: Option<String>,
    /// DPM: `dpmsolver++` only.
    pub algorithm_type: Option<String>,
    /// DPM: 2 only.
    pub solver_order: Option<usize>,
    /// DPM: `midpoint` only.
    pub solver_type: Option<String>,
    /// DPM: lower order on the last steps.
    pub lower_order_final: Option<bool>,
    /// DPM: Euler on the last step.
    pub euler_at_final: Option<bool>,
    /// Euler: `discrete` only.
    pub timestep_type: Option<String>,
    /// Explicit sigma range (not supported).
    pub sigma_min: Option<f64>,
    /// LCM: the distillation schedule's steps (50).
    pub original_inference_steps: Option<usize>,
    /// LCM: timestep scale of the consistency boundary condition (10).
    pub timestep_scaling: Option<f64>,
    /// Explicit sigma range (not supported).
    pub sigma_max: Option<f64>,
}

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prediction {
    /// The noise.
    Epsilon,
    /// v = α·ε − σ·x₀.
    V,
    /// The clean sample.
    Sample,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

/// A scheduler set to a number of steps.
#[derive(Debug)]
pub struct Scheduler {
    kind: SchedulerKind,
    prediction: Prediction,
    alphas_cumprod: Vec<f64>,
    timesteps: Vec<f64>,
    /// Sigma-space samplers: one more than the timesteps (the last is 0).
    sigmas: Vec<f64>,
    init_noise_sigma: f64,
    // DDIM
    step_ratio: usize,
    final_alpha_cumprod: f64,
    clip_sample: Option<f64>,
    // DPM++ 2M
    previous_x0: Option<Tensor>,
    lower_order_final: bool,
    // LCM
    timestep_scaling: f64,
}

impl Scheduler {
    /// `kind` set to `steps` inference steps with the model's `config`.
    pub fn new(kind: SchedulerKind, config: &SchedulerConfig, steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::Invalid("--steps must be at least 1".into()));
        }
        check_unsupported(kind, config)?;
        let train = config.num_train_timesteps.unwrap_or(1000);
        if steps > train {
            return Err(Error::Invalid(format!(
                "{steps} steps is more than the {train} training timesteps"
            )));
        }
        let alphas_cumprod = alphas_cumprod(config, train)?;
        let prediction = match config.prediction_type.as_deref().unwrap_or("epsilon") {
            "epsilon" => Prediction::Epsilon,
            "v_prediction" => Prediction::V,
            "sample" => Prediction::Sample,
            other => return Err(unsupported("prediction_type", other)),
        };
        let default_spacing = match kind {
            SchedulerKind::Ddim => "leading",
            _ => "linspace",
        };
        let spacing = match config
            .timestep_spacing
            .as_deref()
            .unwrap_or(default_spacing)
        {
            "leading" => Spacing::Leading,
            "trailing" => Spacing::Trailing,
            "linspace" => Spacing::Linspace,
            other => return Err(unsupported("timestep_spacing", other)),
        };
        let offset = config.steps_offset.unwrap_or(0);
        let mut s = Self {
            kind,
            prediction,
            alphas_cumprod,
            timesteps: Vec::new(),
            sigmas: Vec::new(),
            init_noise_sigma: 1.0,
            step_ratio: train / steps,
            final_alpha_cumprod: 1.0,
            clip_sample: None,
            previous_x0: None,
            lower_order_final: config.lower_order_final.unwrap_or(true),
            timestep_scaling: config.timestep_scaling.unwrap_or(10.0),
        };
        match kind {
            SchedulerKind::Ddim => s.set_ddim(config, spacing, offset, steps, train),
            SchedulerKind::Euler | SchedulerKind::EulerKarras | SchedulerKind::EulerAncestral => {
                s.set_euler(spacing, offset, steps, train)
            }
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => {
                s.set_dpm(spacing, offset, steps, train)
            }
            SchedulerKind::Lcm => s.set_lcm(config, steps, train)?,
        }
        Ok(s)
    }

    /// The sampler.
    pub fn kind(&self) -> SchedulerKind {
        self.kind
    }

    /// The timesteps the UNet is called at, in order.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// Standard deviation of the initial noise.
    pub fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    /// Whether [`Scheduler::step`] needs fresh noise.
    pub fn needs_noise(&self) -> bool {
        matches!(
            self.kind,
            SchedulerKind::EulerAncestral | SchedulerKind::Lcm
        )
    }

    /// Scales the latents before the UNet at step `i`.
    pub fn scale_model_input(&self, sample: &Tensor, i: usize) -> Result<Tensor> {
        Ok(match self.kind {
            SchedulerKind::Euler | SchedulerKind::EulerKarras | SchedulerKind::EulerAncestral => {
                let sigma = self.sigmas[i];
                (sample / (sigma * sigma + 1.0).sqrt())?
            }
            _ => sample.clone(),
        })
    }

    /// Noises clean latents to the level of step `i` (img2img).
    pub fn add_noise(&self, original: &Tensor, noise: &Tensor, i: usize) -> Result<Tensor> {
        Ok(match self.kind {
            SchedulerKind::Ddim | SchedulerKind::Lcm => {
                let a = self.alphas_cumprod[self.timesteps[i] as usize];
                ((original * a.sqrt())? + (noise * (1.0 - a).sqrt())?)?
            }
            SchedulerKind::Euler | SchedulerKind::EulerKarras | SchedulerKind::EulerAncestral => {
                (original + (noise * self.sigmas[i])?)?
            }
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => {
                let (alpha, sigma) = alpha_sigma(self.sigmas[i]);
                ((original * alpha)? + (noise * sigma)?)?
            }
        })
    }

    /// One denoising step from step `i`: the latents at step `i + 1`. `noise` (same shape as the
    /// sample) is required when [`Scheduler::needs_noise`].
    pub fn step(
        &mut self,
        model_output: &Tensor,
        i: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        if i >= self.timesteps.len() {
            return Err(Error::Invalid(format!(
                "step {i} of a {}-step schedule",
                self.timesteps.len()
            )));
        }
        match self.kind {
            SchedulerKind::Ddim => self.step_ddim(model_output, i, sample),
            SchedulerKind::Euler | SchedulerKind::EulerKarras => {
                self.step_euler(model_output, i, sample)
            }
            SchedulerKind::EulerAncestral => {
                let noise = noise.ok_or_else(|| {
                    Error::Invalid("the ancestral sampler needs noise for each step".into())
                })?;
                self.step_euler_ancestral(model_output, i, sample, noise)
            }
            SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras => {
                self.step_dpm(model_output, i, sample)
            }
            SchedulerKind::Lcm => self.step_lcm(model_output, i, sample, noise),
        }
    }

    fn set_lcm(&mut self, config: &SchedulerConfig, steps: usize, train: usize) -> Result<()> {
        let original = config.original_inference_steps.unwrap_or(50);
        if original == 0 || original > train || steps > original {
            return Err(Error::Invalid(format!(
                "LCM: {steps} steps with original_inference_steps {original} (at most {original} steps)"
            )));
        }
        let k = train / original;
        let origin: Vec<usize> = (1..=original).rev().map(|i| i * k - 1).collect();
        self.timesteps = (0..steps)
            .map(|j| origin[j * origin.len() / steps] as f64)
            .collect();
        self.final_alpha_cumprod = if config.set_alpha_to_one.unwrap_or(true) {
            1.0
        } else {
            self.alphas_cumprod[0]
        };
        self.clip_sample = config
            .clip_sample
            .unwrap_or(false)
            .then(|| config.clip_sample_range.unwrap_or(1.0));
        Ok(())
    }

    fn step_lcm(
        &self,
        out: &Tensor,
        i: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<Tensor> {
        let t = self.timesteps[i];
        let a = self.alphas_cumprod[t as usize];
        let a_prev = match self.timesteps.get(i + 1) {
            Some(prev) => self.alphas_cumprod[*prev as usize],
            None => a,
        };
        let scaled = t * self.timestep_scaling;
        let c_skip = 0.25 / (scaled * scaled + 0.25);
        let c_out = scaled / (scaled * scaled + 0.25).sqrt();
        let (mut x0, _) = self.predict(out, sample, a)?;
        if let Some(range) = self.clip_sample {
            x0 = x0.clamp(-range, range)?;
        }
        let denoised = ((x0 * c_out)? + (sample * c_skip)?)?;
        if i + 1 == self.timesteps.len() {
            return Ok(denoised);
        }
        let noise = noise.ok_or_else(|| Error::Invalid("LCM needs noise for each step".into()))?;
        Ok(((denoised * a_prev.sqrt())? + (noise * (1.0 - a_prev).sqrt())?)?)
    }

    fn set_ddim(
        &mut self,
        config: &SchedulerConfig,
        spacing: Spacing,
        offset: usize,
        steps: usize,
        train: usize,
    ) {
        self.timesteps = match spacing {
            Spacing::Linspace => linspace(0.0, (train - 1) as f64, steps)
                .into_iter()
                .rev()
                .map(f64::round)
                .collect(),
            Spacing::Leading => (0..steps)
                .rev()
                .map(|i| (i * (train / steps) + offset) as f64)
                .collect(),
            Spacing::Trailing => trailing(train, steps),
        };
        self.final_alpha_cumprod = if config.set_alpha_to_one.unwrap_or(true) {
            1.0
        } else {
            self.alphas_cumprod[0]
        };
        self.clip_sample = config
            .clip_sample
            .unwrap_or(true)
            .then(|| config.clip_sample_range.unwrap_or(1.0));
    }

    fn set_euler(&mut self, spacing: Spacing, offset: usize, steps: usize, train: usize) {
        let timesteps: Vec<f64> = match spacing {
            Spacing::Linspace => linspace(0.0, (train - 1) as f64, steps)
                .into_iter()
                .rev()
                .map(|t| t as f32 as f64)
                .collect(),
            Spacing::Leading => (0..steps)
                .rev()
                .map(|i| (i * (train / steps) + offset) as f64)
                .collect(),
            Spacing::Trailing => trailing(train, steps),
        };
        let all = self.train_sigmas();
        let sigmas: Vec<f64> = timesteps.iter().map(|t| interp(*t, &all)).collect();
        if self.kind == SchedulerKind::EulerKarras {
            // Karras between the first and last step's sigmas (not the training range).
            let log_sigmas: Vec<f64> = all.iter().map(|s| s.ln()).collect();
            let sigmas = karras(sigmas[sigmas.len() - 1], sigmas[0], steps);
            self.timesteps = sigmas
                .iter()
                .map(|s| sigma_to_t(*s, &log_sigmas) as f32 as f64)
                .collect();
            self.sigmas = sigmas;
        } else {
            self.sigmas = sigmas;
            self.timesteps = timesteps;
        }
        self.sigmas = self.sigmas.iter().map(|s| *s as f32 as f64).collect();
        let max_sigma = self.sigmas.iter().copied().fold(0.0, f64::max);
        self.sigmas.push(0.0);
        self.init_noise_sigma = match spacing {
            Spacing::Linspace | Spacing::Trailing => max_sigma,
            Spacing::Leading => (max_sigma * max_sigma + 1.0).sqrt(),
        };
    }

    fn set_dpm(&mut self, spacing: Spacing, offset: usize, steps: usize, train: usize) {
        let timesteps: Vec<f64> = match spacing {
            Spacing::Linspace => {
                let mut t: Vec<f64> = linspace(0.0, (train - 1) as f64, steps + 1)
                    .into_iter()
                    .map(f64::round)
                    .collect();
                t.reverse();
                t.truncate(steps);
                t
            }
            Spacing::Leading => {
                let ratio = train / (steps + 1);
                (1..=steps)
                    .rev()
                    .map(|i| (i * ratio + offset) as f64)
                    .collect()
            }
            Spacing::Trailing => trailing(train, steps),
        };
        let all = self.train_sigmas();
        if self.kind == SchedulerKind::DpmPp2mKarras {
            let log_sigmas: Vec<f64> = all.iter().map(|s| s.ln()).collect();
            let sigmas = karras(all[0], all[all.len() - 1], steps);
            self.timesteps = sigmas
                .iter()
                .map(|s| sigma_to_t(*s, &log_sigmas).round())
                .collect();
            self.sigmas = sigmas;
        } else {
            self.sigmas = timesteps.iter().map(|t| interp(*t, &all)).collect();
            self.timesteps = timesteps;
        }
        self.sigmas = self.sigmas.iter().map(|s| *s as f32 as f64).collect();
        self.sigmas.push(0.0);
    }

    /// σ of every training timestep, increasing with t.
    fn train_sigmas(&self) -> Vec<f64> {
        self.alphas_cumprod
            .iter()
            .map(|a| (((1.0 - a) / a) as f32).sqrt() as f64)
            .collect()
    }

    /// x₀ and ε predicted from the model output at alpha-bar `a`.
    fn predict(&self, out: &Tensor, sample: &Tensor, a: f64) -> Result<(Tensor, Tensor)> {
        let (sa, sb) = (a.sqrt(), (1.0 - a).sqrt());
        Ok(match self.prediction {
            Prediction::Epsilon => (((sample - (out * sb)?)? / sa)?, out.clone()),
            Prediction::V => (
                ((sample * sa)? - (out * sb)?)?,
                ((out * sa)? + (sample * sb)?)?,
            ),
            Prediction::Sample => (out.clone(), ((sample - (out * sa)?)? / sb)?),
        })
    }

    fn step_ddim(&self, out: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        let t = self.timesteps[i] as i64;
        let prev_t = t - self.step_ratio as i64;
        let a = self.alphas_cumprod[t as usize];
        let a_prev = if prev_t >= 0 {
            self.alphas_cumprod[prev_t as usize]
        } else {
            self.final_alpha_cumprod
        };
        let (mut x0, mut eps) = self.predict(out, sample, a)?;
        if let Some(range) = self.clip_sample {
            x0 = x0.clamp(-range, range)?;
            eps = ((sample - (&x0 * a.sqrt())?)? / (1.0 - a).sqrt())?;
        }
        Ok(((x0 * a_prev.sqrt())? + (eps * (1.0 - a_prev).sqrt())?)?)
    }

    /// x₀ from the output at sigma `sigma` (Euler parameterisation).
    fn x0_sigma(&self, out: &Tensor, sample: &Tensor, sigma: f64) -> Result<Tensor> {
        Ok(match self.prediction {
            Prediction::Epsilon => (sample - (out * sigma)?)?,
            Prediction::V => {
                let c = sigma * sigma + 1.0;
                ((out * (-sigma / c.sqrt()))? + (sample / c)?)?
            }
            Prediction::Sample => out.clone(),
        })
    }

    fn step_euler(&self, out: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        let (sigma, next) = (self.sigmas[i], self.sigmas[i + 1]);
        let x0 = self.x0_sigma(out, sample, sigma)?;
        let derivative = ((sample - x0)? / sigma)?;
        Ok((sample + (derivative * (next - sigma))?)?)
    }

    fn step_euler_ancestral(
        &self,
        out: &Tensor,
        i: usize,
        sample: &Tensor,
        noise: &Tensor,
    ) -> Result<Tensor> {
        let (from, to) = (self.sigmas[i], self.sigmas[i + 1]);
        let x0 = self.x0_sigma(out, sample, from)?;
        let up = (to * to * (from * from - to * to) / (from * from)).sqrt();
        let down = (to * to - up * up).sqrt();
        let derivative = ((sample - x0)? / from)?;
        let prev = (sample + (derivative * (down - from))?)?;
        Ok((prev + (noise * up)?)?)
    }

    fn step_dpm(&mut self, out: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        let (alpha_s0, sigma_s0) = alpha_sigma(self.sigmas[i]);
        let x0 = match self.prediction {
            Prediction::Epsilon => ((sample - (out * sigma_s0)?)? / alpha_s0)?,
            Prediction::V => ((sample * alpha_s0)? - (out * sigma_s0)?)?,
            Prediction::Sample => out.clone(),
        };
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[i + 1]);
        let lambda = |a: f64, s: f64| a.ln() - s.ln();
        let h = lambda(alpha_t, sigma_t) - lambda(alpha_s0, sigma_s0);
        let last = i + 1 == self.timesteps.len();
        // diffusers: `final_sigmas_type == "zero"` always takes the first-order step last.
        let first_order = self.previous_x0.is_none() || last;
        let _ = self.lower_order_final;
        let d = match (&self.previous_x0, first_order) {
            (Some(prev), false) => {
                let (alpha_s1, sigma_s1) = alpha_sigma(self.sigmas[i - 1]);
                let h0 = lambda(alpha_s0, sigma_s0) - lambda(alpha_s1, sigma_s1);
                let r0 = h0 / h;
                // D0 + ½·D1 with D1 = (m0 − m1)/r0.
                let d1 = ((&x0 - prev)? * (1.0 / r0))?;
                (&x0 + (d1 * 0.5)?)?
            }
            _ => x0.clone(),
        };
        let prev = ((sample * (sigma_t / sigma_s0))? - (d * (alpha_t * ((-h).exp() - 1.0)))?)?;
        self.previous_x0 = Some(x0);
        Ok(prev)
    }
}

fn alpha_sigma(sigma: f64) -> (f64, f64) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

fn unsupported(key: &str, value: impl std::fmt::Display) -> Error {
    Error::Model(format!(
        "scheduler/scheduler_config.json: {key} = {value} is not supported"
    ))
}

fn check_unsupported(kind: SchedulerKind, c: &SchedulerConfig) -> Result<()> {
    if c.rescale_betas_zero_snr == Some(true) {
        return Err(unsupported("rescale_betas_zero_snr", true));
    }
    if c.thresholding == Some(true) {
        return Err(unsupported("thresholding", true));
    }
    if c.sigma_min.is_some() || c.sigma_max.is_some() {
        return Err(unsupported("sigma_min/sigma_max", "set"));
    }
    if let Some(t) = c.interpolation_type.as_deref().filter(|t| *t != "linear") {
        return Err(unsupported("interpolation_type", t));
    }
    if let Some(t) = c.timestep_type.as_deref().filter(|t| *t != "discrete") {
        return Err(unsupported("timestep_type", t));
    }
    if let Some(t) = c.final_sigmas_type.as_deref().filter(|t| *t != "zero") {
        return Err(unsupported("final_sigmas_type", t));
    }
    // The DPM-specific settings only matter when the config is a DPM config.
    let dpm_config = c.class_name.as_deref() == Some("DPMSolverMultistepScheduler");
    if matches!(kind, SchedulerKind::DpmPp2m | SchedulerKind::DpmPp2mKarras) && dpm_config {
        if let Some(a) = c.algorithm_type.as_deref().filter(|a| *a != "dpmsolver++") {
            return Err(unsupported("algorithm_type", a));
        }
        if let Some(o) = c.solver_order.filter(|o| *o != 2) {
            return Err(unsupported("solver_order", o));
        }
        if let Some(t) = c.solver_type.as_deref().filter(|t| *t != "midpoint") {
            return Err(unsupported("solver_type", t));
        }
        if c.euler_at_final == Some(true) {
            return Err(unsupported("euler_at_final", true));
        }
    }
    Ok(())
}

fn alphas_cumprod(c: &SchedulerConfig, train: usize) -> Result<Vec<f64>> {
    let (start, end) = (c.beta_start.unwrap_or(0.0001), c.beta_end.unwrap_or(0.02));
    let betas: Vec<f64> = if let Some(b) = &c.trained_betas {
        if b.len() != train {
            return Err(Error::Model(format!(
                "scheduler/scheduler_config.json: {} trained_betas for {train} timesteps",
                b.len()
            )));
        }
        b.clone()
    } else {
        match c.beta_schedule.as_deref().unwrap_or("linear") {
            "linear" => linspace(start, end, train),
            "scaled_linear" => linspace(start.sqrt(), end.sqrt(), train)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            "squaredcos_cap_v2" => {
                let f = |t: f64| {
                    ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0)
                        .cos()
                        .powi(2)
                };
                (0..train)
                    .map(|i| {
                        let (t1, t2) = (i as f64 / train as f64, (i + 1) as f64 / train as f64);
                        (1.0 - f(t2) / f(t1)).min(0.999)
                    })
                    .collect()
            }
            other => return Err(unsupported("beta_schedule", other)),
        }
    };
    // diffusers keeps betas and their cumulative product in f32.
    let mut acc = 1.0f32;
    Ok(betas
        .iter()
        .map(|b| {
            acc *= 1.0 - *b as f32;
            acc as f64
        })
        .collect())
}

fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    (0..n).map(|i| start + step * i as f64).collect()
}

fn trailing(train: usize, steps: usize) -> Vec<f64> {
    let ratio = train as f64 / steps as f64;
    (0..steps)
        .map(|i| (train as f64 - ratio * i as f64).round() - 1.0)
        .collect()
}

/// `np.interp(t, arange(len), values)`.
fn interp(t: f64, values: &[f64]) -> f64 {
    let last = values.len() - 1;
    if t <= 0.0 {
        return values[0];
    }
    if t >= last as f64 {
        return values[last];
    }
    let lo = t.floor() as usize;
    let w = t - lo as f64;
    values[lo] * (1.0 - w) + values[lo + 1] * w
}

/// Karras et al. (2022) sigmas from `max` down to `min`, ρ = 7.
fn karras(min: f64, max: f64, steps: usize) -> Vec<f64> {
    let rho = 7.0;
    let (lo, hi) = (min.powf(1.0 / rho), max.powf(1.0 / rho));
    linspace(0.0, 1.0, steps)
        .into_iter()
        .map(|r| (hi + r * (lo - hi)).powf(rho))
        .collect()
}

/// The fractional timestep of `sigma` on the training schedule (`log_sigmas` increasing).
fn sigma_to_t(sigma: f64, log_sigmas: &[f64]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    let n = log_sigmas.len();
    let low = log_sigmas
        .iter()
        .rposition(|l| log_sigma - l >= 0.0)
        .unwrap_or(0)
        .min(n - 2);
    let (l, h) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((l - log_sigma) / (l - h)).clamp(0.0, 1.0);
    (1.0 - w) * low as f64 + w * (low + 1) as f64
}
