//! `mlbench bench diffuse`: one UNet step with classifier-free guidance (a batch of two latents,
//! unconditional and conditional) and one VAE decode, as two rows per device × dtype; seconds
//! per run.
//!
//! Only random architectures so far, built from their diffusers config (written out below) with
//! random weights, so nothing is downloaded: `random:sd15` (the default: runwayml's Stable
//! Diffusion 1.5 UNet and VAE at 512×512, latents 4×64×64, text 77×768) and `random:tiny` (small
//! channel counts on 8×8 latents, for the smoke test). With `--peers`, diffusers'
//! `UNet2DConditionModel` and `AutoencoderKL` run the same configs and shapes
//! (`benches/peers/diffusers_unet.py`).

use std::ffi::OsString;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use mlbench_bench::measure::{measure, timed};
use mlbench_bench::memory;
use mlbench_bench::record::{Record, RowKey};
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::progress::Progress;
use mlbench_diffusion::unet::UNet;
use mlbench_diffusion::vae::Vae;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{open_device, peers, Plan};
use crate::cli::BenchArgs;

pub fn bench(args: &BenchArgs, plan: &Plan, progress: &Progress) -> Result<Vec<Record>> {
    let arch = match args.model.as_deref() {
        None => Arch::Sd15,
        Some(spec) => match spec.strip_prefix("random:") {
            Some(name) => Arch::parse(name)?,
            None => bail!(
                "bench diffuse reads no checkpoint yet: use --model random:sd15 or random:tiny"
            ),
        },
    };
    let mut records = Vec::new();
    for &spec in &plan.devices {
        for dtype in plan.dtypes_for(spec) {
            for part in [Part::Unet, Part::Vae] {
                records.push(run_case(arch, part, spec, dtype, plan, progress));
            }
        }
    }
    if args.peers {
        let rows = diffusers_peer(args, arch, &records, progress);
        records.extend(rows);
    }
    Ok(records)
}

/// The architectures `random:NAME` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    Sd15,
    Tiny,
}

impl Arch {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "sd15" | "sd-1.5" => Ok(Self::Sd15),
            "tiny" => Ok(Self::Tiny),
            other => bail!("unknown random model '{other}' (expected random:sd15 or random:tiny)"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sd15 => "sd15",
            Self::Tiny => "tiny",
        }
    }

    /// Latent side (the image is 8× larger).
    fn latent(self) -> usize {
        match self {
            Self::Sd15 => 64,
            Self::Tiny => 8,
        }
    }

    /// Text tokens and the width of their embeddings.
    fn text(self) -> (usize, usize) {
        match self {
            Self::Sd15 => (77, 768),
            Self::Tiny => (77, 32),
        }
    }

    /// The shape fields of the UNet's diffusers config.json.
    fn unet_config(self) -> Value {
        match self {
            Self::Sd15 => json!({
                "block_out_channels": [320, 640, 1280, 1280],
                "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                    "CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                    "CrossAttnUpBlock2D"],
                "cross_attention_dim": 768, "attention_head_dim": 8, "layers_per_block": 2,
                "sample_size": 64
            }),
            Self::Tiny => json!({
                "block_out_channels": [32, 64],
                "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
                "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
                "cross_attention_dim": 32, "attention_head_dim": 8, "layers_per_block": 1,
                "sample_size": 8
            }),
        }
    }

    /// The shape fields of the VAE's diffusers config.json.
    fn vae_config(self) -> Value {
        let blocks = match self {
            Self::Sd15 => vec![128, 256, 512, 512],
            Self::Tiny => vec![32, 64],
        };
        let n = blocks.len();
        json!({
            "block_out_channels": blocks,
            "layers_per_block": if self == Self::Sd15 { 2 } else { 1 },
            "latent_channels": 4,
            "down_block_types": vec!["DownEncoderBlock2D"; n],
            "up_block_types": vec!["UpDecoderBlock2D"; n],
        })
    }
}

/// What one row times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Unet,
    Vae,
}

impl Part {
    fn config(self, arch: Arch) -> String {
        let l = arch.latent();
        let image = l * 8;
        match self {
            Self::Unet => format!("UNet step, CFG, {image}×{image} (2×4×{l}×{l})"),
            Self::Vae => format!("VAE decode {image}×{image} (1×4×{l}×{l})"),
        }
    }

    fn key(self, arch: Arch, device: &str, dtype: &str) -> RowKey {
        RowKey {
            task: "diffuse".into(),
            model: format!("{} (random weights)", arch.name()),
            device: device.into(),
            dtype: dtype.into(),
            config: self.config(arch),
        }
    }
}

/// A loaded model with its input, on the device.
enum Loaded {
    Unet {
        unet: Box<UNet>,
        latents: Tensor,
        text: Tensor,
    },
    Vae {
        vae: Box<Vae>,
        latents: Tensor,
    },
}

impl Loaded {
    fn load(arch: Arch, part: Part, device: &Device, dtype: DType) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, dtype, device);
        let l = arch.latent();
        let loaded = match part {
            Part::Unet => {
                let unet = Box::new(UNet::load(serde_json::from_value(arch.unet_config())?, vb)?);
                let (tokens, width) = arch.text();
                let latents = Tensor::randn(0f32, 1., (2, 4, l, l), device)?.to_dtype(dtype)?;
                let text = Tensor::randn(0f32, 1., (2, tokens, width), device)?.to_dtype(dtype)?;
                Self::Unet {
                    unet,
                    latents,
                    text,
                }
            }
            Part::Vae => {
                let vae = Box::new(Vae::load(serde_json::from_value(arch.vae_config())?, vb)?);
                let latents = Tensor::randn(0f32, 1., (1, 4, l, l), device)?.to_dtype(dtype)?;
                Self::Vae { vae, latents }
            }
        };
        // Random (not constant) weights, as PyTorch's default initialisation gives the peer.
        for var in varmap.all_vars() {
            let std = if var.rank() == 1 { 0.01f32 } else { 0.02f32 };
            let t = Tensor::randn(0f32, std, var.shape(), device)?.to_dtype(var.dtype())?;
            var.set(&t)?;
        }
        Ok(loaded)
    }

    /// One run, waited for (GPU work is asynchronous).
    fn run(&self) -> mlbench_diffusion::Result<()> {
        let out = match self {
            Self::Unet {
                unet,
                latents,
                text,
            } => unet.forward(latents, 500.0, text)?,
            Self::Vae { vae, latents } => vae.decode(latents)?,
        };
        out.device().synchronize()?;
        Ok(())
    }
}

fn run_case(
    arch: Arch,
    part: Part,
    spec: DeviceSpec,
    dtype: DTypeSpec,
    plan: &Plan,
    progress: &Progress,
) -> Record {
    let dtype_name = dtype.to_string();
    let (device, name) = match open_device(spec) {
        Ok(d) => d,
        Err(reason) => {
            return Record::skipped(part.key(arch, &spec.to_string(), &dtype_name), reason)
        }
    };
    let key = part.key(arch, &name, &dtype_name);
    memory::reset_peak();
    let (model, load_s) = match timed(|| Loaded::load(arch, part, &device, dtype.dtype())) {
        Ok(loaded) => loaded,
        Err(e) => return Record::failed(key, format!("building the model: {e:#}")),
    };
    let stage = match part {
        Part::Unet => "unet step",
        Part::Vae => "vae decode",
    };
    let label = format!("diffuse {} {name} {dtype} {stage}", arch.name());
    let result = measure(&plan.measure, progress, &label, |probe| {
        probe.stage(stage, || model.run())
    });
    let mut record = match result {
        Ok(m) => Record::measured(key, &m),
        Err(e) => return Record::failed(key, e.to_string()),
    };
    record.load_s = Some(load_s);
    record.peak_rss_bytes = memory::peak_rss_bytes();
    record.notes.push("random weights".into());
    record
}

/// One part of what `diffusers_unet.py` prints.
#[derive(Debug, Deserialize)]
struct PartTimes {
    times_s: Vec<f64>,
}

/// What `diffusers_unet.py` prints.
#[derive(Debug, Deserialize)]
struct DiffusersOutput {
    implementation: String,
    warmup: usize,
    unet: PartTimes,
    vae: PartTimes,
}

/// diffusers on the same configs and input shapes, one row per part.
fn diffusers_peer(
    args: &BenchArgs,
    arch: Arch,
    mlbench_rows: &[Record],
    progress: &Progress,
) -> Vec<Record> {
    let peer = peers::DIFFUSERS;
    let (tokens, width) = arch.text();
    let mut peer_args: Vec<OsString> = Vec::new();
    for (flag, value) in [
        ("--unet-config", arch.unet_config().to_string()),
        ("--vae-config", arch.vae_config().to_string()),
        ("--latent", arch.latent().to_string()),
        ("--tokens", tokens.to_string()),
        ("--text-width", width.to_string()),
        ("--threads", peers::threads().to_string()),
        ("--runs", args.runs.to_string()),
        ("--warmup", args.warmup.max(1).to_string()),
    ] {
        peer_args.push(flag.into());
        peer_args.push(value.into());
    }
    let output: Result<DiffusersOutput, String> = peer.run(progress, &peer_args);
    [Part::Unet, Part::Vae]
        .into_iter()
        .map(|part| {
            let key = peer.key(&part.key(arch, "cpu", "f32"));
            match &output {
                Err(reason) => peer.skipped(key, reason.clone()),
                Ok(out) => {
                    let times = match part {
                        Part::Unet => &out.unet.times_s,
                        Part::Vae => &out.vae.times_s,
                    };
                    let mut record = peer.timed(
                        key,
                        out.implementation.clone(),
                        out.warmup,
                        times,
                        mlbench_rows,
                    );
                    record.notes.push("random weights".into());
                    record
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlbench_diffusion::config::{UNetConfig, VaeConfig};

    #[test]
    fn configs_parse_as_diffusers_configs() {
        for arch in [Arch::Sd15, Arch::Tiny] {
            let u: UNetConfig = serde_json::from_value(arch.unet_config()).unwrap();
            assert_eq!(u.block_out_channels.len(), u.down_block_types.len());
            let v: VaeConfig = serde_json::from_value(arch.vae_config()).unwrap();
            assert_eq!(v.block_out_channels.len(), v.up_block_types.len());
        }
        assert_eq!(Arch::parse("sd15").unwrap(), Arch::Sd15);
        assert!(Arch::parse("sdxl").is_err());
    }

    #[test]
    fn tiny_runs_both_parts() {
        for part in [Part::Unet, Part::Vae] {
            let m = Loaded::load(Arch::Tiny, part, &Device::Cpu, DType::F32).unwrap();
            m.run().unwrap();
        }
    }
}
