//! `mlbench bench classify-image`: one batched forward pass per run, for every model × device ×
//! dtype × `--batch-size`; items per second and latency per batch.
//!
//! Without `--model` both ResNet-50 and ViT-B/16 run: the architectures of microsoft/resnet-50
//! and google/vit-base-patch16-224, built from their config.json (written out below) with random
//! weights, so nothing is downloaded. `random:resnet-50` or `random:vit-b-16` picks one; any other
//! `--model` is a checkpoint as `mlbench classify-image` reads it (EfficientNet-Lite, or a
//! transformers ResNet / ViT / ConvNeXt / EfficientNet folder), at its own input size.
//!
//! The input is a fixed normalised batch (b, 3, size, size) already on the device: image decoding
//! and preprocessing are not timed, only the model (as in the peer, `torch_classify_image.py`,
//! which gets the same config or checkpoint, input size, batch sizes and thread count).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use mlbench_bench::measure::{measure, timed};
use mlbench_bench::memory;
use mlbench_bench::record::{Figures, Record, RowKey, ThroughputFigures};
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::progress::Progress;
use mlbench_core::source::{ModelFiles, ModelSource};
use mlbench_vision::image::Resize;
use mlbench_vision::{resnet, vit, ImageClassifier};
use serde::Deserialize;
use serde_json::{json, Value};

use super::random::{Init, RandomTensors};
use super::{open_device, parse_list, peers, Plan};
use crate::cli::BenchArgs;

pub fn bench(args: &BenchArgs, plan: &Plan, progress: &Progress) -> Result<Vec<Record>> {
    let batches: Vec<usize> = parse_list(&args.batch_size, "--batch-size")?;
    if batches.contains(&0) {
        bail!("--batch-size values must be at least 1");
    }
    let models = match args.model.as_deref() {
        None => vec![Choice::Random(Arch::ResNet50), Choice::Random(Arch::VitB16)],
        Some(spec) => vec![Choice::resolve(spec, progress)?],
    };
    let mut records = Vec::new();
    for model in &models {
        let first = records.len();
        for &spec in &plan.devices {
            for dtype in plan.dtypes_for(spec) {
                let case = Case {
                    model,
                    spec,
                    dtype,
                    batches: &batches,
                    plan,
                    progress,
                };
                records.extend(case.run());
            }
        }
        if args.peers {
            let peer_rows = torch_peer(args, model, &batches, &records[first..], progress);
            records.extend(peer_rows);
        }
    }
    Ok(records)
}

/// The architectures `random:NAME` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    ResNet50,
    VitB16,
}

impl Arch {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "resnet-50" | "resnet50" => Ok(Self::ResNet50),
            "vit-b-16" | "vit-base" => Ok(Self::VitB16),
            other => bail!(
                "unknown random model '{other}' (expected random:resnet-50 or random:vit-b-16)"
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::ResNet50 => "resnet-50",
            Self::VitB16 => "vit-b-16",
        }
    }

    /// transformers' `model_type` (the peer builds the model from it and [`Self::config`]).
    fn model_type(self) -> &'static str {
        match self {
            Self::ResNet50 => "resnet",
            Self::VitB16 => "vit",
        }
    }

    /// The shape fields of microsoft/resnet-50's and google/vit-base-patch16-224's config.json.
    fn config(self) -> Value {
        match self {
            Self::ResNet50 => json!({
                "model_type": "resnet",
                "num_channels": 3,
                "embedding_size": 64,
                "hidden_sizes": [256, 512, 1024, 2048],
                "depths": [3, 4, 6, 3],
                "layer_type": "bottleneck",
                "hidden_act": "relu",
                "downsample_in_first_stage": false,
                "downsample_in_bottleneck": false,
                "num_labels": 1000
            }),
            Self::VitB16 => json!({
                "model_type": "vit",
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "hidden_act": "gelu",
                "layer_norm_eps": 1e-12,
                "image_size": 224,
                "patch_size": 16,
                "num_channels": 3,
                "qkv_bias": true,
                "num_labels": 1000
            }),
        }
    }
}

/// `--model`: a random architecture, or a real checkpoint (with its input size, read once).
enum Choice {
    Random(Arch),
    Real {
        spec: String,
        files: ModelFiles,
        size: usize,
    },
}

impl Choice {
    fn resolve(spec: &str, progress: &Progress) -> Result<Self> {
        if let Some(name) = spec.strip_prefix("random:") {
            return Ok(Self::Random(Arch::parse(name)?));
        }
        let catalog = Catalog::builtin()?;
        let files = ModelFiles::from_spec(spec, &catalog, progress.clone())?;
        // The input size is the model's own preprocessing; reading it means one CPU load.
        let probe = ImageClassifier::load(&files, &Device::Cpu, DType::F32)
            .with_context(|| format!("--model {spec}"))?;
        let size = input_size(&probe)?;
        Ok(Self::Real {
            spec: spec.to_string(),
            files,
            size,
        })
    }

    fn label(&self) -> String {
        match self {
            Self::Random(arch) => format!("{} (random weights)", arch.name()),
            Self::Real { spec, .. } => super::model_label(spec),
        }
    }

    fn size(&self) -> usize {
        match self {
            Self::Random(_) => 224,
            Self::Real { size, .. } => *size,
        }
    }

    fn key(&self, device: &str, dtype: &str, batch: usize) -> RowKey {
        let s = self.size();
        RowKey {
            task: "classify-image".into(),
            model: self.label(),
            device: device.into(),
            dtype: dtype.into(),
            config: format!("batch {batch}, 3×{s}×{s}"),
        }
    }

    fn load(&self, device: &Device, dtype: DType) -> Result<Forward> {
        match self {
            Self::Random(arch) => {
                let tensors = random_tensors(*arch)?;
                let config = arch.config();
                Ok(match arch {
                    Arch::ResNet50 => {
                        let c: resnet::Config = serde_json::from_value(config)?;
                        Forward::ResNet(resnet::ResNet::load(&tensors, &c, device, dtype)?)
                    }
                    Arch::VitB16 => {
                        let c: vit::Config = serde_json::from_value(config)?;
                        Forward::Vit(Box::new(vit::Vit::load(&tensors, &c, device, dtype)?))
                    }
                })
            }
            Self::Real { files, .. } => Ok(Forward::Classifier(Box::new(ImageClassifier::load(
                files, device, dtype,
            )?))),
        }
    }
}

/// The square input side of a checkpoint's preprocessing.
fn input_size(classifier: &ImageClassifier) -> Result<usize> {
    let p = classifier.preprocess();
    match (p.crop, p.resize) {
        (Some((w, h)), _) | (None, Resize::Exact(w, h)) if w == h => Ok(w as usize),
        _ => bail!("the model's preprocessing gives no fixed square input size"),
    }
}

/// A loaded model: logits of a normalised batch.
enum Forward {
    ResNet(resnet::ResNet),
    Vit(Box<vit::Vit>),
    Classifier(Box<ImageClassifier>),
}

impl Forward {
    /// The logits, waited for (GPU work is asynchronous).
    fn run(&self, x: &Tensor) -> mlbench_vision::Result<()> {
        let logits = match self {
            Self::ResNet(m) => m.forward(x)?,
            Self::Vit(m) => m.forward(x)?,
            Self::Classifier(c) => c.logits(x)?,
        };
        logits.device().synchronize()?;
        Ok(())
    }
}

/// One model × device × dtype: one load, one row per batch size.
struct Case<'a> {
    model: &'a Choice,
    spec: DeviceSpec,
    dtype: DTypeSpec,
    batches: &'a [usize],
    plan: &'a Plan,
    progress: &'a Progress,
}

impl Case<'_> {
    fn run(&self) -> Vec<Record> {
        let dtype = self.dtype.to_string();
        let (device, name) = match open_device(self.spec) {
            Ok(d) => d,
            Err(reason) => {
                let device = self.spec.to_string();
                return self
                    .batches
                    .iter()
                    .map(|&b| Record::skipped(self.model.key(&device, &dtype, b), reason.clone()))
                    .collect();
            }
        };
        let (model, load_s) = match timed(|| self.model.load(&device, self.dtype.dtype())) {
            Ok(loaded) => loaded,
            Err(e) => {
                let key = self.model.key(&name, &dtype, self.batches[0]);
                return vec![Record::failed(key, format!("loading the model: {e:#}"))];
            }
        };
        self.batches
            .iter()
            .map(|&b| {
                let mut record = self.batch_row(&model, &device, &name, b);
                record.load_s = Some(load_s);
                record
            })
            .collect()
    }

    fn batch_row(&self, model: &Forward, device: &Device, name: &str, batch: usize) -> Record {
        let key = self.model.key(name, &self.dtype.to_string(), batch);
        let size = self.model.size();
        let x = match input(batch, size, device) {
            Ok(x) => x,
            Err(e) => return Record::failed(key, format!("making the input: {e}")),
        };
        // The high-water mark of this batch size alone (the weights stay resident).
        memory::reset_peak();
        let label = format!(
            "classify-image {} {name} {} batch {batch}",
            self.model.label(),
            self.dtype
        );
        let result = measure(&self.plan.measure, self.progress, &label, |probe| {
            probe.stage("forward", || model.run(&x))
        });
        let mut record = match result {
            Ok(m) => Record::measured(key, &m),
            Err(e) => return Record::failed(key, e.to_string()),
        };
        if let Some(run_s) = record.median_s() {
            record.figures = Figures::Throughput(ThroughputFigures::batch(batch, "images", run_s));
        }
        record.peak_rss_bytes = memory::peak_rss_bytes();
        if matches!(self.model, Choice::Random(_)) {
            record.notes.push("random weights".into());
        }
        record
    }
}

/// A deterministic normalised batch (b, 3, size, size) in f32 (the models cast it).
fn input(batch: usize, size: usize, device: &Device) -> candle_core::Result<Tensor> {
    let n = batch * 3 * size * size;
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    Tensor::from_vec(values, (batch, 3, size, size), device)
}

/// One batch size of what `torch_classify_image.py` prints.
#[derive(Debug, Deserialize)]
struct TorchBatch {
    batch_size: usize,
    times_s: Vec<f64>,
}

impl peers::BatchTimes for TorchBatch {
    fn batch_size(&self) -> usize {
        self.batch_size
    }

    fn times_s(&self) -> &[f64] {
        &self.times_s
    }
}

/// PyTorch (transformers, or efficientnet-lite-pytorch for EfficientNet-Lite weights) on the
/// same architecture or checkpoint, one row per batch size.
fn torch_peer(
    args: &BenchArgs,
    model: &Choice,
    batches: &[usize],
    mlbench_rows: &[Record],
    progress: &Progress,
) -> Vec<Record> {
    let peer = peers::TORCH_VISION;
    peer.batch_rows(
        run_torch(args, model, batches, progress),
        batches,
        |b| peer.key(&model.key("cpu", "f32", b)),
        mlbench_rows,
        |record, b, _| {
            if let Some(run_s) = record.median_s() {
                record.figures = Figures::Throughput(ThroughputFigures::batch(b, "images", run_s));
            }
            if matches!(model, Choice::Random(_)) {
                record.notes.push("random weights".into());
            }
        },
    )
}

fn run_torch(
    args: &BenchArgs,
    model: &Choice,
    batches: &[usize],
    progress: &Progress,
) -> Result<peers::BatchOutput<TorchBatch>, String> {
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let mut peer_args: Vec<OsString> = match model {
        Choice::Random(arch) => vec![
            "--config".into(),
            arch.config().to_string().into(),
            "--model-type".into(),
            arch.model_type().into(),
        ],
        Choice::Real { files, .. } => vec!["--model".into(), checkpoint_path(files)?.into()],
    };
    for (flag, value) in [
        ("--image-size", model.size().to_string()),
        ("--batch-sizes", list(batches)),
        ("--threads", peers::threads().to_string()),
        ("--runs", args.runs.to_string()),
        ("--warmup", args.warmup.max(2).to_string()),
    ] {
        peer_args.push(flag.into());
        peer_args.push(value.into());
    }
    peers::TORCH_VISION.run(progress, &peer_args)
}

/// The local folder (or `.safetensors` file) of a checkpoint, for the peer.
fn checkpoint_path(files: &ModelFiles) -> Result<PathBuf, String> {
    match files.source() {
        ModelSource::File(path) => Ok(path.clone()),
        _ => files
            .get("model.safetensors")
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
            .ok_or_else(|| "the checkpoint has no local model.safetensors".to_string()),
    }
}

/// Every tensor the model reads, with transformers' names, in f32 on the CPU: convolutions and
/// linears normal with std 1/sqrt(fan-in), zero biases, identity batch and layer norms.
fn random_tensors(arch: Arch) -> candle_core::Result<std::collections::HashMap<String, Tensor>> {
    let mut t = RandomTensors::new(Init::FanIn);
    match arch {
        Arch::ResNet50 => random_resnet50(&mut t)?,
        Arch::VitB16 => random_vit_b16(&mut t)?,
    }
    Ok(t.into_map())
}

fn random_resnet50(t: &mut RandomTensors) -> candle_core::Result<()> {
    let p = "resnet.embedder.embedder";
    t.conv_bn(
        &format!("{p}.convolution"),
        &format!("{p}.normalization"),
        &[64, 3, 7, 7],
    )?;
    let mut in_ch = 64;
    for (s, (&out, depth)) in [256usize, 512, 1024, 2048]
        .iter()
        .zip([3usize, 4, 6, 3])
        .enumerate()
    {
        let mid = out / 4;
        for l in 0..depth {
            let p = format!("resnet.encoder.stages.{s}.layers.{l}");
            let stride = if s > 0 && l == 0 { 2 } else { 1 };
            if in_ch != out || stride != 1 {
                t.conv_bn(
                    &format!("{p}.shortcut.convolution"),
                    &format!("{p}.shortcut.normalization"),
                    &[out, in_ch, 1, 1],
                )?;
            }
            for (n, shape) in [[mid, in_ch, 1, 1], [mid, mid, 3, 3], [out, mid, 1, 1]]
                .iter()
                .enumerate()
            {
                t.conv_bn(
                    &format!("{p}.layer.{n}.convolution"),
                    &format!("{p}.layer.{n}.normalization"),
                    shape,
                )?;
            }
            in_ch = out;
        }
    }
    t.linear("classifier.1", 2048, 1000)
}

fn random_vit_b16(t: &mut RandomTensors) -> candle_core::Result<()> {
    let (d, ffn, patches) = (768, 3072, (224 / 16) * (224 / 16));
    let p = "vit.embeddings";
    t.normal(
        &format!("{p}.patch_embeddings.projection.weight"),
        &[d, 3, 16, 16],
    )?;
    t.zeros(&format!("{p}.patch_embeddings.projection.bias"), d)?;
    t.normal(&format!("{p}.cls_token"), &[1, 1, d])?;
    t.normal(&format!("{p}.position_embeddings"), &[1, patches + 1, d])?;
    for i in 0..12 {
        let l = format!("vit.encoder.layer.{i}");
        t.layer_norm(&format!("{l}.layernorm_before"), d)?;
        for proj in ["query", "key", "value"] {
            t.linear(&format!("{l}.attention.attention.{proj}"), d, d)?;
        }
        t.linear(&format!("{l}.attention.output.dense"), d, d)?;
        t.layer_norm(&format!("{l}.layernorm_after"), d)?;
        t.linear(&format!("{l}.intermediate.dense"), d, ffn)?;
        t.linear(&format!("{l}.output.dense"), ffn, d)?;
    }
    t.layer_norm("vit.layernorm", d)?;
    t.linear("classifier", d, 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(arch: Arch) -> usize {
        random_tensors(arch)
            .unwrap()
            .iter()
            .filter(|(name, _)| !name.contains("running_"))
            .map(|(_, t)| t.elem_count())
            .sum()
    }

    #[test]
    fn random_models_have_the_released_parameter_counts() {
        // microsoft/resnet-50: 25.56 M parameters; google/vit-base-patch16-224: 86.57 M.
        let resnet = params(Arch::ResNet50);
        assert!((25_500_000..25_600_000).contains(&resnet), "{resnet}");
        let vit = params(Arch::VitB16);
        assert!((86_500_000..86_600_000).contains(&vit), "{vit}");
    }

    #[test]
    fn configs_parse_as_the_checkpoints_do() {
        let r: resnet::Config = serde_json::from_value(Arch::ResNet50.config()).unwrap();
        assert_eq!(r.depths, [3, 4, 6, 3]);
        let v: vit::Config = serde_json::from_value(Arch::VitB16.config()).unwrap();
        assert_eq!((v.hidden_size, v.image_size, v.patch_size), (768, 224, 16));
        assert_eq!(Arch::parse("vit-b-16").unwrap(), Arch::VitB16);
        assert!(Arch::parse("resnet-18").is_err());
    }

    #[test]
    fn input_is_deterministic_and_normalised() {
        let a = input(2, 8, &Device::Cpu).unwrap();
        assert_eq!(a.dims(), [2, 3, 8, 8]);
        let v = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(
            v,
            input(2, 8, &Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
    }
}
