//! `mlbench bench tts`: a Piper (VITS) voice synthesizing `--text`, for every device × dtype.
//!
//! Without `--model` (or with `random:medium`) the voice is the real architecture of Piper's
//! en_US medium voices (en_US-joe-medium: 6-layer text encoder of width 192, stochastic duration
//! predictor, 4 coupling flows, HiFi-GAN with upsampling 8·8·4 and ResBlock2, 22 050 Hz) with
//! random weights, so nothing is downloaded. Random weights give random durations, and the frame
//! count decides most of the cost (flow and HiFi-GAN), so the random voice's duration predictor is
//! pinned to [`RANDOM_FRAMES_PER_ID`] frames per phoneme id (the real voice gives 2.2 on
//! `tests/golden/piper-joe-medium`); its phoneme ids come from the text's characters (no
//! espeak-ng needed), about as many as a real phonemization gives. With `--model VOICE.onnx` the
//! real voice runs on ids from espeak-ng, exactly as `mlbench tts` would.
//!
//! The text is phonemized once, untimed. One timed run synthesizes every sentence (one model call
//! each, batch 1, the voice's default scales, a fixed seed per sentence) — the `synthesize` stage
//! of `mlbench tts`, and what `benches/peers/piper_tts.py` times in onnxruntime on the same ids.
//! The stages inside the model (`encode`, `durations`, `flow`, `decode`) are timed on the same
//! runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use mlbench_bench::measure::{measure, timed, Measurement};
use mlbench_bench::memory;
use mlbench_bench::record::{Figures, Record, RowKey, TtsFigures};
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::progress::Progress;
use mlbench_core::source::ModelFiles;
use mlbench_tts::phonemize::{EspeakNg, PhonemeIds, Phonemizer};
use mlbench_tts::vits::{Scales, Utterance, Vits, VitsConfig};
use mlbench_tts::voice::{find_onnx, read_config, InferenceConfig, PiperVoice, SynthesisParams};
use serde::{Deserialize, Serialize};

use super::{open_device, peers, Plan};
use crate::cli::BenchArgs;

/// `--text` by default: two sentences, about 5 s of speech.
pub const DEFAULT_TEXT: &str =
    "The quick brown fox jumps over the lazy dog. Please call me back before Friday, if you can.";
/// Without `--model`: the en_US medium voice shape with random weights.
const DEFAULT_MODEL: &str = "random:medium";
/// Frames per phoneme id of the random voice (ceil of exp(log-duration)).
const RANDOM_FRAMES_PER_ID: f32 = 2.0;
/// Output rate of the medium voices.
const RANDOM_SAMPLE_RATE: u32 = 22_050;
/// Piper's id map: pad, begin, end, and the first id for phonemes.
const PAD: i64 = 0;
const BOS: i64 = 1;
const EOS: i64 = 2;
const FIRST_PHONEME: i64 = 3;

pub fn bench(args: &BenchArgs, plan: &Plan, progress: &Progress) -> Result<Vec<Record>> {
    let voice = VoiceChoice::resolve(args.model.as_deref().unwrap_or(DEFAULT_MODEL), progress)?;
    let input = voice.input(&args.text)?;
    let mut records = Vec::new();
    for &spec in &plan.devices {
        for dtype in plan.dtypes_for(spec) {
            let case = Case {
                voice: &voice,
                input: &input,
                spec,
                dtype,
                plan,
                progress,
            };
            records.push(case.run());
        }
    }
    if args.peers {
        let key = input.key(&voice, "cpu", "f32");
        records.push(piper(args, &voice, &input, key, &records, progress));
    }
    Ok(records)
}

/// `--model`: the random medium voice, or a real Piper voice.
enum VoiceChoice {
    Random,
    Real { spec: String, onnx: PathBuf },
}

impl VoiceChoice {
    fn resolve(spec: &str, progress: &Progress) -> Result<Self> {
        if let Some(name) = spec.strip_prefix("random:") {
            if name != "medium" {
                bail!("unknown random voice '{name}' (expected random:medium)");
            }
            return Ok(Self::Random);
        }
        let catalog = Catalog::builtin()?;
        let files = ModelFiles::from_spec(spec, &catalog, progress.clone())?;
        let onnx = find_onnx(&files).with_context(|| format!("--model {spec}"))?;
        Ok(Self::Real {
            spec: spec.to_string(),
            onnx,
        })
    }

    fn label(&self) -> String {
        match self {
            Self::Random => "piper en_US medium (random weights)".into(),
            Self::Real { spec, .. } => super::model_label(spec),
        }
    }

    /// The phoneme ids of each sentence of `text`.
    fn input(&self, text: &str) -> Result<Input> {
        let sentences = match self {
            Self::Random => text_ids(text),
            Self::Real { onnx, .. } => espeak_ids(onnx, text)?,
        };
        if sentences.is_empty() {
            bail!("--text has nothing to say");
        }
        Ok(Input { sentences })
    }

    fn load(&self, device: &Device, dtype: DType) -> Result<Loaded> {
        match self {
            Self::Random => {
                let (config, tensors) = random_vits()?;
                let vits = Vits::load(config, tensors, device, dtype)
                    .context("building the random VITS voice")?;
                Ok(Loaded::Random(Box::new(vits)))
            }
            Self::Real { onnx, .. } => Ok(Loaded::Real(Box::new(PiperVoice::load_onnx(
                onnx, device, dtype,
            )?))),
        }
    }
}

enum Loaded {
    Random(Box<Vits>),
    Real(Box<PiperVoice>),
}

impl Loaded {
    fn sample_rate(&self) -> u32 {
        match self {
            Self::Random(_) => RANDOM_SAMPLE_RATE,
            Self::Real(v) => v.sample_rate(),
        }
    }

    /// One sentence, with the voice's default scales and the seed of sentence `i`.
    fn infer(&self, ids: &[i64], i: usize) -> mlbench_tts::Result<Utterance> {
        match self {
            Self::Random(vits) => {
                let d = InferenceConfig::default();
                let scales = Scales {
                    noise_scale: d.noise_scale,
                    length_scale: d.length_scale,
                    noise_w: d.noise_w,
                };
                vits.infer(ids, None, scales, i as u64)
            }
            Self::Real(voice) => {
                let params = SynthesisParams {
                    seed: i as u64,
                    ..SynthesisParams::default()
                };
                voice.synthesize_ids(ids, &params)
            }
        }
    }
}

/// The sentences every configuration and the peer synthesize, as `piper_tts.py --ids` reads
/// them (what `mlbench tts --phonemes --json` prints).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sentence {
    phonemes: String,
    ids: Vec<i64>,
}

struct Input {
    sentences: Vec<Sentence>,
}

impl Input {
    fn ids(&self) -> usize {
        self.sentences.iter().map(|s| s.ids.len()).sum()
    }

    fn label(&self) -> String {
        let n = self.sentences.len();
        format!(
            "{n} sentence{}, {} phoneme ids, batch 1",
            if n == 1 { "" } else { "s" },
            self.ids()
        )
    }

    fn key(&self, voice: &VoiceChoice, device: &str, dtype: &str) -> RowKey {
        RowKey {
            task: "tts".into(),
            model: voice.label(),
            device: device.into(),
            dtype: dtype.into(),
            config: self.label(),
        }
    }
}

/// Piper-style ids from the characters of each sentence: `^ _ c _ c _ … $`, one id per
/// character (letters, spaces, punctuation) in the voice's 256 symbols.
fn text_ids(text: &str) -> Vec<Sentence> {
    split_sentences(text)
        .into_iter()
        .map(|s| {
            let mut ids = vec![BOS, PAD];
            for c in s.chars() {
                ids.push(FIRST_PHONEME + i64::from(u32::from(c) % 150));
                ids.push(PAD);
            }
            ids.push(EOS);
            Sentence { phonemes: s, ids }
        })
        .collect()
}

/// Sentences end at `.`, `!` or `?` (kept); blank ones are dropped.
fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') {
            out.push(std::mem::take(&mut current));
        }
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| s.chars().any(char::is_alphanumeric))
        .collect()
}

/// The voice's own front end: espeak-ng phonemes, the voice's phoneme map and id map.
fn espeak_ids(onnx: &Path, text: &str) -> Result<Vec<Sentence>> {
    let config = read_config(onnx)?;
    let ids = PhonemeIds::new(&config.phoneme_id_map);
    let sentences = EspeakNg::new(config.espeak.voice.clone())
        .phonemize(text)
        .context("phonemizing --text")?;
    Ok(sentences
        .into_iter()
        .map(|s| {
            let phonemes: String = s
                .chars()
                .map(|c| match config.phoneme_map.get(&c.to_string()) {
                    Some(to) => to.concat(),
                    None => c.to_string(),
                })
                .collect();
            let (ids, _missing) = ids.ids(&phonemes);
            Sentence { phonemes, ids }
        })
        .collect())
}

/// One device × dtype.
struct Case<'a> {
    voice: &'a VoiceChoice,
    input: &'a Input,
    spec: DeviceSpec,
    dtype: DTypeSpec,
    plan: &'a Plan,
    progress: &'a Progress,
}

impl Case<'_> {
    fn run(&self) -> Record {
        let dtype = self.dtype.to_string();
        let (device, name) = match open_device(self.spec) {
            Ok(d) => d,
            Err(reason) => {
                let key = self.input.key(self.voice, &self.spec.to_string(), &dtype);
                return Record::skipped(key, reason);
            }
        };
        let key = self.input.key(self.voice, &name, &dtype);
        memory::reset_peak();
        let (voice, load_s) = match timed(|| self.voice.load(&device, self.dtype.dtype())) {
            Ok(loaded) => loaded,
            Err(e) => return Record::failed(key, format!("loading the voice: {e:#}")),
        };
        let label = format!("tts {name} {dtype}");
        let mut samples = 0usize;
        let result = measure(&self.plan.measure, self.progress, &label, |probe| {
            samples = 0;
            for (i, s) in self.input.sentences.iter().enumerate() {
                let utterance = voice.infer(&s.ids, i)?;
                samples += utterance.samples.len();
                for t in utterance.timings.stages() {
                    probe.record(&t.stage, Duration::from_secs_f64(t.total_s));
                }
            }
            Ok::<(), mlbench_tts::TtsError>(())
        });
        let audio_s = samples as f64 / f64::from(voice.sample_rate());
        let mut record = match result {
            Ok(m) => tts_record(key, &m, audio_s, self.input),
            Err(e) => return Record::failed(key, e.to_string()),
        };
        record.load_s = Some(load_s);
        record.peak_rss_bytes = memory::peak_rss_bytes();
        if matches!(voice, Loaded::Random(_)) {
            record.notes.push(format!(
                "random weights, durations pinned to {RANDOM_FRAMES_PER_ID} frames per id"
            ));
        }
        record
    }
}

fn tts_record(key: RowKey, m: &Measurement, audio_s: f64, input: &Input) -> Record {
    let mut record = Record::measured(key, m);
    let mut figures = TtsFigures::new(audio_s, m.total.median, input.sentences.len(), input.ids());
    figures.stages_s = m
        .stages
        .iter()
        .map(|(name, s)| (name.clone(), s.median))
        .collect();
    record.figures = Figures::Tts(figures);
    record
}

/// What `piper_tts.py` prints.
#[derive(Debug, Deserialize)]
struct PiperOutput {
    onnxruntime: String,
    times_s: Vec<f64>,
    audio_s: f64,
}

/// Piper's voice on onnxruntime, on the same ids and scales, with mlbench's thread count.
fn piper(
    args: &BenchArgs,
    voice: &VoiceChoice,
    input: &Input,
    key: RowKey,
    mlbench_rows: &[Record],
    progress: &Progress,
) -> Record {
    let peer = peers::PIPER;
    let key = peer.key(&key);
    let VoiceChoice::Real { onnx, .. } = voice else {
        return peer.skipped(
            key,
            "needs --model VOICE.onnx: Piper runs the voice's ONNX file, random weights have none",
        );
    };
    match run_piper(args, onnx, input, progress) {
        Ok(out) => {
            let implementation = format!("piper onnxruntime {}", out.onnxruntime);
            let mut record = peer.timed(key, implementation, 1, &out.times_s, mlbench_rows);
            if let Some(run_s) = record.median_s() {
                record.figures = Figures::Tts(TtsFigures::new(
                    out.audio_s,
                    run_s,
                    input.sentences.len(),
                    input.ids(),
                ));
            }
            record
        }
        Err(reason) => peer.skipped(key, reason),
    }
}

fn run_piper(
    args: &BenchArgs,
    onnx: &Path,
    input: &Input,
    progress: &Progress,
) -> Result<PiperOutput, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary folder: {e}"))?;
    let ids = dir.path().join("ids.json");
    let json = serde_json::to_vec(&input.sentences).map_err(|e| e.to_string())?;
    std::fs::write(&ids, json).map_err(|e| format!("cannot write {}: {e}", ids.display()))?;
    let peer_args = [
        "--model".into(),
        onnx.as_os_str().to_owned(),
        "--ids".into(),
        ids.into_os_string(),
        "--threads".into(),
        peers::threads().to_string().into(),
        "--runs".into(),
        args.runs.to_string().into(),
    ];
    peers::PIPER.run(progress, &peer_args)
}

/// The en_US medium voice (en_US-joe-medium's shapes) with random weights, named as
/// `mlbench_tts::onnx` names a Piper export's parameters.
fn random_vits() -> candle_core::Result<(VitsConfig, HashMap<String, Tensor>)> {
    let config = VitsConfig {
        hidden_channels: 192,
        inter_channels: 192,
        n_heads: 2,
        n_layers: 6,
        window_size: 4,
        upsample_rates: vec![8, 8, 4],
        resblock: 2,
        resblock_dilation_sizes: vec![vec![1, 2], vec![2, 6], vec![3, 12]],
        flow_dilation_rate: 1,
        n_speakers: 1,
    };
    let mut t = RandomTensors::default();
    text_encoder(&mut t, &config)?;
    duration_predictor(&mut t)?;
    flow(&mut t)?;
    generator(&mut t)?;
    Ok((config, t.0))
}

fn text_encoder(t: &mut RandomTensors, c: &VitsConfig) -> candle_core::Result<()> {
    let h = c.hidden_channels;
    // Embeddings are scaled by sqrt(h) in the model: std h^-0.5 gives unit-sized inputs.
    t.normal("enc_p.emb.weight", &[256, h])?;
    let k = h / c.n_heads;
    for i in 0..c.n_layers {
        let p = format!("enc_p.encoder.attn_layers.{i}");
        for rel in ["emb_rel_k", "emb_rel_v"] {
            t.normal(&format!("{p}.{rel}"), &[1, 2 * c.window_size + 1, k])?;
        }
        for conv in ["conv_q", "conv_k", "conv_v", "conv_o"] {
            t.conv(&format!("{p}.{conv}"), &[h, h, 1])?;
        }
        let f = format!("enc_p.encoder.ffn_layers.{i}");
        t.conv(&format!("{f}.conv_1"), &[4 * h, h, 3])?;
        t.conv(&format!("{f}.conv_2"), &[h, 4 * h, 3])?;
        t.norm(&format!("enc_p.encoder.norm_layers_1.{i}"), h)?;
        t.norm(&format!("enc_p.encoder.norm_layers_2.{i}"), h)?;
    }
    t.conv("enc_p.proj", &[2 * c.inter_channels, h, 1])
}

/// Dilated depth-separable convolutions of width 192, 3 layers, kernel 3.
fn dds_conv(t: &mut RandomTensors, p: &str) -> candle_core::Result<()> {
    for i in 0..3 {
        t.conv(&format!("{p}.convs_sep.{i}"), &[192, 1, 3])?;
        t.conv(&format!("{p}.convs_1x1.{i}"), &[192, 192, 1])?;
        t.norm(&format!("{p}.norms_1.{i}"), 192)?;
        t.norm(&format!("{p}.norms_2.{i}"), 192)?;
    }
    Ok(())
}

/// The stochastic duration predictor, with its last (elementwise affine) step set so that every
/// log-duration is ln(RANDOM_FRAMES_PER_ID − 0.05) whatever the noise: logw = (z − m)·exp(−logs)
/// with logs = 10 and m = −ln(d)·e^10 leaves z·e^−10 ≈ 0. (e^10 and m fit f16 and bf16.)
fn duration_predictor(t: &mut RandomTensors) -> candle_core::Result<()> {
    t.conv("dp.pre", &[192, 192, 1])?;
    t.conv("dp.proj", &[192, 192, 1])?;
    dds_conv(t, "dp.convs")?;
    // flows = [ElementwiseAffine, ConvFlow, Flip, ConvFlow, …]: flow 1 is unused in reverse.
    for i in [3, 5, 7] {
        let p = format!("dp.flows.{i}");
        t.conv(&format!("{p}.pre"), &[192, 1, 1])?;
        dds_conv(t, &format!("{p}.convs"))?;
        // 10 spline bins: 3·10 − 1 parameters per position.
        t.conv(&format!("{p}.proj"), &[29, 192, 1])?;
    }
    const LOGS: f32 = 10.0;
    let log_d = (RANDOM_FRAMES_PER_ID - 0.05).ln();
    let m = [-log_d * LOGS.exp(), 0.0];
    t.put(
        "dp.flows.0.m",
        Tensor::from_slice(&m, (2, 1), &Device::Cpu)?,
    );
    t.put(
        "dp.flows.0.logs",
        Tensor::from_slice(&[LOGS, 0.0], (2, 1), &Device::Cpu)?,
    );
    Ok(())
}

/// Four mean-only coupling layers, WaveNet of 4 layers, kernel 5.
fn flow(t: &mut RandomTensors) -> candle_core::Result<()> {
    for i in [0, 2, 4, 6] {
        let p = format!("flow.flows.{i}");
        t.conv(&format!("{p}.pre"), &[192, 96, 1])?;
        for l in 0..4 {
            t.conv(&format!("{p}.enc.in_layers.{l}"), &[384, 192, 5])?;
            let out = if l == 3 { 192 } else { 384 };
            t.conv(&format!("{p}.enc.res_skip_layers.{l}"), &[out, 192, 1])?;
        }
        t.conv(&format!("{p}.post"), &[96, 192, 1])?;
    }
    Ok(())
}

/// HiFi-GAN: 256 channels in, upsampling 8·8·4 (kernels 16, 16, 8), ResBlock2 kernels 3, 5, 7.
fn generator(t: &mut RandomTensors) -> candle_core::Result<()> {
    t.conv("dec.conv_pre", &[256, 192, 7])?;
    let mut ch = 256;
    for (i, k) in [16, 16, 8].into_iter().enumerate() {
        // ConvTranspose1d weights are (in, out, kernel).
        t.conv(&format!("dec.ups.{i}"), &[ch, ch / 2, k])?;
        ch /= 2;
        for (j, kernel) in [3, 5, 7].into_iter().enumerate() {
            for n in 0..2 {
                let name = format!("dec.resblocks.{}.convs.{n}", 3 * i + j);
                t.conv(&name, &[ch, ch, kernel])?;
            }
        }
    }
    // The export has no bias on the last convolution.
    t.normal("dec.conv_post.weight", &[1, ch, 7])
}

/// Random parameters in f32 on the CPU; `Vits::load` moves them to the device and dtype.
#[derive(Default)]
struct RandomTensors(HashMap<String, Tensor>);

impl RandomTensors {
    fn put(&mut self, name: &str, t: Tensor) {
        self.0.insert(name.to_string(), t);
    }

    /// Normal with std 1/sqrt(fan-in) (all dimensions but the first), which keeps activations
    /// at unit scale through the stack (no overflow, no subnormals).
    fn normal(&mut self, name: &str, shape: &[usize]) -> candle_core::Result<()> {
        let fan_in: usize = shape[1..].iter().product();
        let std = 1.0 / (fan_in.max(1) as f32).sqrt();
        self.put(name, Tensor::randn(0f32, std, shape, &Device::Cpu)?);
        Ok(())
    }

    /// `name.weight` of `shape` and a zero `name.bias`.
    fn conv(&mut self, name: &str, shape: &[usize]) -> candle_core::Result<()> {
        self.normal(&format!("{name}.weight"), shape)?;
        // ConvTranspose1d's bias has its output channels (dim 1); others dim 0.
        let out = if name.contains(".ups.") {
            shape[1]
        } else {
            shape[0]
        };
        self.put(
            &format!("{name}.bias"),
            Tensor::zeros(out, DType::F32, &Device::Cpu)?,
        );
        Ok(())
    }

    fn norm(&mut self, name: &str, channels: usize) -> candle_core::Result<()> {
        self.put(
            &format!("{name}.gamma"),
            Tensor::ones(channels, DType::F32, &Device::Cpu)?,
        );
        self.put(
            &format!("{name}.beta"),
            Tensor::zeros(channels, DType::F32, &Device::Cpu)?,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_voice_has_the_medium_voice_parameter_count() {
        let (_, tensors) = random_vits().unwrap();
        let params: usize = tensors.values().map(|t| t.elem_count()).sum();
        // en_US-joe-medium: 15.65 M parameters (its unused duration flow 1 and the folded
        // exp(-logs) constant aside).
        assert!((15_000_000..16_000_000).contains(&params), "{params}");
    }

    #[test]
    fn random_voice_synthesizes_finite_audio_of_the_pinned_length() {
        let (config, tensors) = random_vits().unwrap();
        let hop = config.hop_length();
        let vits = Vits::load(config, tensors, &Device::Cpu, DType::F32).unwrap();
        let ids = &text_ids("Hi there.")[0].ids;
        let scales = Scales {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        };
        let u = vits.infer(ids, None, scales, 0).unwrap();
        assert_eq!(u.durations, vec![RANDOM_FRAMES_PER_ID as usize; ids.len()]);
        assert_eq!(u.samples.len(), ids.len() * 2 * hop);
        assert!(u.samples.iter().all(|v| v.is_finite()));
        let rms = (u.samples.iter().map(|v| v * v).sum::<f32>() / u.samples.len() as f32).sqrt();
        assert!(rms > 1e-4, "silent or subnormal output: rms {rms}");
        for stage in ["encode", "durations", "flow", "decode"] {
            assert!(u.timings.get(stage).is_some(), "{stage}");
        }
    }

    #[test]
    fn pinned_durations_survive_half_precision() {
        let ids = &text_ids("Hi.")[0].ids;
        let scales = Scales {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        };
        for dtype in [DType::F16, DType::BF16] {
            let (config, tensors) = random_vits().unwrap();
            let vits = Vits::load(config, tensors, &Device::Cpu, dtype).unwrap();
            let u = vits.infer(ids, None, scales, 3).unwrap();
            let want = vec![RANDOM_FRAMES_PER_ID as usize; ids.len()];
            assert_eq!(u.durations, want, "{dtype:?}");
            assert!(u.samples.iter().all(|v| v.is_finite()), "{dtype:?}");
        }
    }

    #[test]
    fn text_ids_interleave_pads_like_piper() {
        let s = text_ids("Hi. Who?  ...");
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].phonemes, "Hi.");
        assert_eq!(s[0].ids.len(), 2 + 2 * 3 + 1);
        assert_eq!(&s[0].ids[..2], &[BOS, PAD]);
        assert_eq!(s[0].ids.last(), Some(&EOS));
        assert!(s
            .iter()
            .flat_map(|s| &s.ids)
            .all(|&i| (0..256).contains(&i)));
        assert_eq!(s[1].phonemes, "Who?");
        assert!(text_ids(" ... ").is_empty());
    }
}
