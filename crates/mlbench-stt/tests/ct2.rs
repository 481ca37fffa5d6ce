//! CTranslate2 Whisper reader: the two real models from `scripts/fetch-test-weights.sh`, small
//! synthetic `model.bin` files (quantized variables, aliases) and broken directories.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use mlbench_stt::ct2::{self, Ct2Checkpoint};
use mlbench_stt::SttError;

mod support;

use support::{max_abs_diff, real_model};

// ---------------------------------------------------------------------------------------------
// Real weights
// ---------------------------------------------------------------------------------------------

/// The transformers `WhisperForConditionalGeneration` keys of a model with these layer counts.
fn expected_keys(encoder_layers: usize, decoder_layers: usize) -> HashSet<String> {
    let mut keys = HashSet::new();
    let mut add = |k: String| assert!(keys.insert(k));
    for conv in ["conv1", "conv2"] {
        add(format!("model.encoder.{conv}.weight"));
        add(format!("model.encoder.{conv}.bias"));
    }
    add("model.encoder.embed_positions.weight".into());
    add("model.decoder.embed_tokens.weight".into());
    add("model.decoder.embed_positions.weight".into());
    let layer = |add: &mut dyn FnMut(String), prefix: &str, cross: bool| {
        let mut attention = |name: &str| {
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                add(format!("{prefix}.{name}.{proj}.weight"));
                if proj != "k_proj" {
                    add(format!("{prefix}.{name}.{proj}.bias"));
                }
            }
            add(format!("{prefix}.{name}_layer_norm.weight"));
            add(format!("{prefix}.{name}_layer_norm.bias"));
        };
        attention("self_attn");
        if cross {
            attention("encoder_attn");
        }
        for m in ["fc1", "fc2", "final_layer_norm"] {
            add(format!("{prefix}.{m}.weight"));
            add(format!("{prefix}.{m}.bias"));
        }
    };
    for i in 0..encoder_layers {
        layer(&mut add, &format!("model.encoder.layers.{i}"), false);
    }
    for i in 0..decoder_layers {
        layer(&mut add, &format!("model.decoder.layers.{i}"), true);
    }
    for stack in ["encoder", "decoder"] {
        add(format!("model.{stack}.layer_norm.weight"));
        add(format!("model.{stack}.layer_norm.bias"));
    }
    keys
}

fn dims(ckpt: &Ct2Checkpoint, key: &str) -> Vec<usize> {
    ckpt.tensors
        .get(key)
        .unwrap_or_else(|| panic!("no tensor {key}"))
        .dims()
        .to_vec()
}

/// Shapes every Whisper checkpoint must have, from its config.
fn check_shapes(ckpt: &Ct2Checkpoint) {
    let c = &ckpt.config;
    let d = c.d_model;
    let keys: HashSet<String> = ckpt.tensors.keys().cloned().collect();
    assert_eq!(keys, expected_keys(c.encoder_layers, c.decoder_layers));
    assert_eq!(
        dims(ckpt, "model.encoder.conv1.weight"),
        [d, c.num_mel_bins, 3]
    );
    assert_eq!(dims(ckpt, "model.encoder.conv2.weight"), [d, d, 3]);
    assert_eq!(
        dims(ckpt, "model.encoder.embed_positions.weight"),
        [c.max_source_positions, d]
    );
    assert_eq!(
        dims(ckpt, "model.decoder.embed_positions.weight"),
        [c.max_target_positions, d]
    );
    assert_eq!(
        dims(ckpt, "model.decoder.embed_tokens.weight"),
        [c.vocab_size, d]
    );
    for (stack, n, ffn) in [
        ("encoder", c.encoder_layers, c.encoder_ffn_dim),
        ("decoder", c.decoder_layers, c.decoder_ffn_dim),
    ] {
        for i in 0..n {
            let p = format!("model.{stack}.layers.{i}");
            for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                assert_eq!(dims(ckpt, &format!("{p}.self_attn.{proj}.weight")), [d, d]);
            }
            assert_eq!(dims(ckpt, &format!("{p}.self_attn.q_proj.bias")), [d]);
            assert_eq!(dims(ckpt, &format!("{p}.fc1.weight")), [ffn, d]);
            assert_eq!(dims(ckpt, &format!("{p}.fc2.weight")), [d, ffn]);
            assert_eq!(dims(ckpt, &format!("{p}.final_layer_norm.weight")), [d]);
        }
    }
}

#[derive(serde::Deserialize)]
struct Ct2Json {
    alignment_heads: Vec<(usize, usize)>,
    lang_ids: Vec<u32>,
    suppress_ids: Vec<u32>,
    suppress_ids_begin: Vec<u32>,
}

fn ct2_json(dir: &Path) -> Ct2Json {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

#[test]
fn real_tiny_en_loads_with_transformers_names() {
    let dir = real_model("whisper-tiny.en-ct2");
    assert!(ct2::looks_like_ct2(&dir));
    let ckpt = ct2::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let c = &ckpt.config;
    assert_eq!((c.encoder_layers, c.decoder_layers), (4, 4));
    assert_eq!(c.d_model, 384);
    assert_eq!(
        (c.encoder_attention_heads, c.decoder_attention_heads),
        (6, 6)
    );
    assert_eq!((c.encoder_ffn_dim, c.decoder_ffn_dim), (1536, 1536));
    assert_eq!(c.vocab_size, 51864);
    assert_eq!(c.num_mel_bins, 80);
    assert_eq!(
        (c.max_source_positions, c.max_target_positions),
        (1500, 448)
    );
    check_shapes(&ckpt);
    assert!(
        !ckpt.tensors.contains_key("proj_out.weight"),
        "proj_out is tied to embed_tokens"
    );
    assert!(ckpt.tensors.values().all(|t| t.dtype() == DType::F32));

    let json = ct2_json(&dir);
    assert_eq!(c.suppress_tokens, json.suppress_ids);
    assert_eq!(c.begin_suppress_tokens, json.suppress_ids_begin);
    assert_eq!(c.begin_suppress_tokens, [220, 50256]);
    assert_eq!(ckpt.alignment_heads, json.alignment_heads);
    assert_eq!(ckpt.lang_ids, json.lang_ids);

    // The weights are real: layer norm gains near 1, finite everywhere.
    let gamma: Vec<f32> = ckpt.tensors["model.encoder.layer_norm.weight"]
        .to_vec1()
        .unwrap();
    let mean = gamma.iter().sum::<f32>() / gamma.len() as f32;
    assert!(
        mean > 0.2 && mean < 5.0,
        "encoder layer norm mean gain {mean}"
    );
    for (name, t) in &ckpt.tensors {
        let s = t
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(s.is_finite() && s > 0.0, "{name}: sum |x| = {s}");
    }
}

#[test]
fn real_tiny_en_f16_matches_f32() {
    let dir = real_model("whisper-tiny.en-ct2");
    let f32_ckpt = ct2::load(&dir, DType::F32, &Device::Cpu).unwrap();
    let f16_ckpt = ct2::load(&dir, DType::F16, &Device::Cpu).unwrap();
    assert_eq!(f32_ckpt.config, f16_ckpt.config);
    // The file is f16: loading as f16 keeps the values exactly.
    for (name, a) in &f32_ckpt.tensors {
        let b = &f16_ckpt.tensors[name];
        assert_eq!(b.dtype(), DType::F16);
        assert_eq!(max_abs_diff(a, b), 0.0, "{name}");
    }
}

#[test]
fn real_base_multilingual_loads() {
    let dir = real_model("whisper-base-ct2");
    let ckpt = ct2::load(&dir, DType::F16, &Device::Cpu).unwrap();
    let c = &ckpt.config;
    assert_eq!((c.encoder_layers, c.decoder_layers), (6, 6));
    assert_eq!(c.d_model, 512);
    assert_eq!(
        (c.encoder_attention_heads, c.decoder_attention_heads),
        (8, 8)
    );
    assert_eq!((c.encoder_ffn_dim, c.decoder_ffn_dim), (2048, 2048));
    assert_eq!(c.vocab_size, 51865);
    assert_eq!(c.num_mel_bins, 80);
    check_shapes(&ckpt);
    let json = ct2_json(&dir);
    assert_eq!(ckpt.alignment_heads, json.alignment_heads);
    assert_eq!(ckpt.lang_ids.len(), 99);
    assert_eq!(ckpt.lang_ids, json.lang_ids);
    assert_eq!(c.begin_suppress_tokens, [220, 50257]);
    assert!(ckpt.tensors.values().all(|t| t.dtype() == DType::F16));
}

/// A copy of the real tiny.en directory whose model.bin is `edit(original bytes)`.
fn tiny_copy_with(edit: impl FnOnce(&[u8]) -> Vec<u8>) -> tempfile::TempDir {
    let src = real_model("whisper-tiny.en-ct2");
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "vocabulary.txt"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    let bytes = std::fs::read(src.join("model.bin")).unwrap();
    std::fs::write(tmp.path().join("model.bin"), edit(&bytes)).unwrap();
    tmp
}

fn model_error(dir: &Path) -> String {
    match ct2::load(dir, DType::F32, &Device::Cpu) {
        Err(e @ SttError::Model { .. }) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "multi-line message: {message}");
            message
        }
        Err(e) => panic!("expected SttError::Model, got {e:?}"),
        Ok(_) => panic!("{} loaded", dir.display()),
    }
}

#[test]
fn real_tiny_en_truncated_is_an_error() {
    for keep in [0usize, 3, 10, 17, 100, 5_000, 40_000_000] {
        let tmp = tiny_copy_with(|b| b[..keep].to_vec());
        let message = model_error(tmp.path());
        assert!(message.contains("truncated"), "{keep} bytes: {message}");
        assert!(message.contains("model.bin"), "{message}");
    }
    // Cut inside the alias table at the very end.
    let tmp = tiny_copy_with(|b| b[..b.len() - 5].to_vec());
    let message = model_error(tmp.path());
    assert!(
        message.contains("truncated") && message.contains("alias"),
        "{message}"
    );
}

#[test]
fn real_tiny_en_with_extra_bytes_is_an_error() {
    // E.g. a split model joined with one part twice.
    let tmp = tiny_copy_with(|b| [b, &b[..1000]].concat());
    let message = model_error(tmp.path());
    assert!(message.contains("1000 unexpected bytes"), "{message}");
}

#[test]
fn real_tiny_en_corrupted_header_is_an_error() {
    let tmp = tiny_copy_with(|b| {
        let mut b = b.to_vec();
        b[0] = 0xff; // binary version
        b
    });
    let message = model_error(tmp.path());
    assert!(message.contains("binary version"), "{message}");

    let tmp = tiny_copy_with(|b| {
        let mut b = b.to_vec();
        b[6] = b'X'; // "WhisperSpec" -> "XhisperSpec"
        b
    });
    let message = model_error(tmp.path());
    assert!(message.contains("XhisperSpec"), "{message}");
}

// ---------------------------------------------------------------------------------------------
// Missing files and garbage
// ---------------------------------------------------------------------------------------------

fn write_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    tmp
}

/// A complete model directory: `model.bin`, a tokenizer and this `config.json`.
fn model_dir(model: &[u8], config: &[u8]) -> tempfile::TempDir {
    write_dir(&[
        ("model.bin", model),
        ("tokenizer.json", TOKENIZER),
        ("config.json", config),
    ])
}

const CONFIG: &[u8] = br#"{"suppress_ids": [1, 2], "suppress_ids_begin": [3], "lang_ids": [7, 8]}"#;
const TOKENIZER: &[u8] = b"{}";

#[test]
fn missing_files_are_errors() {
    let empty = tempfile::tempdir().unwrap();
    assert!(!ct2::looks_like_ct2(empty.path()));
    let message = model_error(empty.path());
    assert!(message.contains("no model.bin"), "{message}");

    let model = SyntheticModel::new().to_bytes();
    let no_tokenizer = write_dir(&[("model.bin", &model), ("config.json", CONFIG)]);
    assert!(ct2::looks_like_ct2(no_tokenizer.path()));
    let message = model_error(no_tokenizer.path());
    assert!(message.contains("no tokenizer.json"), "{message}");

    let no_config = write_dir(&[("model.bin", &model), ("tokenizer.json", TOKENIZER)]);
    let message = model_error(no_config.path());
    assert!(message.contains("no config.json"), "{message}");

    let bad_config = model_dir(&model, b"{");
    let message = model_error(bad_config.path());
    assert!(message.contains("config.json"), "{message}");

    let missing = empty.path().join("nope");
    let message = model_error(&missing);
    assert!(message.contains("not a directory"), "{message}");
}

#[test]
fn garbage_model_bin_is_an_error() {
    // Deterministic pseudo-random bytes, and a few headers that look almost right.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = vec![0u8; 4096];
    for b in &mut noise {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    let mut huge_count = SyntheticModel::new().header();
    huge_count.extend_from_slice(&u32::MAX.to_le_bytes()); // 4 billion variables, no data
    let mut huge_var = SyntheticModel::new().header();
    huge_var.extend_from_slice(&1u32.to_le_bytes());
    push_string(&mut huge_var, "x");
    huge_var.push(2);
    huge_var.extend_from_slice(&u32::MAX.to_le_bytes());
    huge_var.extend_from_slice(&u32::MAX.to_le_bytes());
    huge_var.push(0);
    huge_var.extend_from_slice(&u32::MAX.to_le_bytes());
    for bytes in [
        noise,
        b"PK\x03\x04 not a CTranslate2 file".to_vec(),
        huge_count,
        huge_var,
    ] {
        let dir = model_dir(&bytes, CONFIG);
        let message = model_error(dir.path());
        assert!(message.contains("model.bin"), "{message}");
    }
}

#[test]
fn non_float_dtype_is_rejected() {
    let dir = SyntheticModel::new().write();
    match ct2::load(dir.path(), DType::U8, &Device::Cpu) {
        Err(SttError::InvalidOption(message)) => assert!(message.contains("float"), "{message}"),
        other => panic!("expected InvalidOption, got {:?}", other.map(|_| ())),
    }
}

// ---------------------------------------------------------------------------------------------
// Synthetic model.bin files
// ---------------------------------------------------------------------------------------------

const D: usize = 8;
const HEADS: i16 = 2;
const MELS: usize = 4;
const VOCAB: usize = 10;
const FFN: usize = 16;
const SRC_POS: usize = 6;
const TGT_POS: usize = 5;
const ENC_LAYERS: usize = 1;
const DEC_LAYERS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Store {
    F32,
    F16,
    Bf16,
    /// int8 with one scale per output row.
    I8,
    /// int16 with one scale for the whole tensor.
    I16,
}

#[derive(Clone)]
struct Var {
    name: String,
    shape: Vec<usize>,
    dtype: u8,
    data: Vec<u8>,
}

fn push_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16 + 1).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A small Whisper model in CTranslate2's format, and the real values of its weights.
#[derive(Clone)]
struct SyntheticModel {
    vars: Vec<Var>,
    aliases: Vec<(String, String)>,
    /// Real (dequantized / rounded) values by CTranslate2 name.
    values: HashMap<String, (Vec<usize>, Vec<f32>)>,
    seed: u32,
    spec: String,
}

impl SyntheticModel {
    fn new() -> Self {
        let mut m = Self {
            vars: Vec::new(),
            aliases: Vec::new(),
            values: HashMap::new(),
            seed: 1,
            spec: "WhisperSpec".into(),
        };
        m.scalar_i16("encoder/num_heads", HEADS);
        m.scalar_i16("decoder/num_heads", HEADS);
        m.scalar_i8("decoder/activation", 3);
        m.weight("encoder/conv1/weight", &[D, MELS, 3], Store::I8);
        m.weight("encoder/conv1/bias", &[D], Store::F32);
        m.weight("encoder/conv2/weight", &[D, D, 3], Store::F16);
        m.weight("encoder/conv2/bias", &[D], Store::F16);
        m.weight(
            "encoder/position_encodings/encodings",
            &[SRC_POS, D],
            Store::F32,
        );
        for i in 0..ENC_LAYERS {
            m.common_layer(&format!("encoder/layer_{i}"), Store::I16);
        }
        m.layer_norm("encoder/layer_norm");
        m.weight("decoder/embeddings/weight", &[VOCAB, D], Store::I8);
        m.weight(
            "decoder/position_encodings/encodings",
            &[TGT_POS, D],
            Store::Bf16,
        );
        for i in 0..DEC_LAYERS {
            let p = format!("decoder/layer_{i}");
            m.common_layer(&p, Store::I8);
            m.linear(&format!("{p}/attention/linear_0"), D, D, Store::F16);
            m.linear(&format!("{p}/attention/linear_1"), 2 * D, D, Store::I8);
            m.linear(&format!("{p}/attention/linear_2"), D, D, Store::F32);
            m.layer_norm(&format!("{p}/attention/layer_norm"));
        }
        m.layer_norm("decoder/layer_norm");
        // As CTranslate2 writes it: the projection is an alias of the embeddings (and so,
        // implicitly, its scale of theirs).
        m.aliases.push((
            "decoder/projection/weight".into(),
            "decoder/embeddings/weight".into(),
        ));
        m
    }

    fn common_layer(&mut self, p: &str, store: Store) {
        self.linear(&format!("{p}/self_attention/linear_0"), 3 * D, D, store);
        self.linear(&format!("{p}/self_attention/linear_1"), D, D, Store::F16);
        self.layer_norm(&format!("{p}/self_attention/layer_norm"));
        self.linear(&format!("{p}/ffn/linear_0"), FFN, D, store);
        self.linear(&format!("{p}/ffn/linear_1"), D, FFN, Store::F32);
        self.layer_norm(&format!("{p}/ffn/layer_norm"));
    }

    fn linear(&mut self, p: &str, rows: usize, cols: usize, store: Store) {
        self.weight(&format!("{p}/weight"), &[rows, cols], store);
        self.weight(&format!("{p}/bias"), &[rows], Store::F32);
    }

    fn layer_norm(&mut self, p: &str) {
        self.weight(&format!("{p}/gamma"), &[D], Store::Bf16);
        self.weight(&format!("{p}/beta"), &[D], Store::F32);
    }

    fn next(&mut self) -> f32 {
        // A small LCG: values in [-1, 1).
        self.seed = self
            .seed
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        (self.seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }

    fn push(&mut self, name: &str, shape: &[usize], dtype: u8, data: Vec<u8>) {
        self.vars.push(Var {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
            data,
        });
    }

    fn scalar_i16(&mut self, name: &str, v: i16) {
        self.push(name, &[], 2, v.to_le_bytes().to_vec());
    }

    fn scalar_i8(&mut self, name: &str, v: i8) {
        self.push(name, &[], 1, v.to_le_bytes().to_vec());
    }

    fn weight(&mut self, name: &str, shape: &[usize], store: Store) {
        let n: usize = shape.iter().product();
        let raw: Vec<f32> = (0..n).map(|_| self.next()).collect();
        let rows = shape[0];
        let per_row = n / rows;
        let real: Vec<f32> = match store {
            Store::F32 => {
                self.push(
                    name,
                    shape,
                    0,
                    raw.iter().flat_map(|v| v.to_le_bytes()).collect(),
                );
                raw
            }
            Store::F16 => {
                let h: Vec<half::f16> = raw.iter().map(|&v| half::f16::from_f32(v)).collect();
                self.push(
                    name,
                    shape,
                    4,
                    h.iter().flat_map(|v| v.to_le_bytes()).collect(),
                );
                h.iter().map(|v| v.to_f32()).collect()
            }
            Store::Bf16 => {
                let h: Vec<half::bf16> = raw.iter().map(|&v| half::bf16::from_f32(v)).collect();
                self.push(
                    name,
                    shape,
                    5,
                    h.iter().flat_map(|v| v.to_le_bytes()).collect(),
                );
                h.iter().map(|v| v.to_f32()).collect()
            }
            Store::I8 => {
                // CTranslate2: scale = 127 / max |row|, q = round(w * scale).
                let scales: Vec<f32> = raw
                    .chunks(per_row)
                    .map(|row| 127.0 / row.iter().fold(0f32, |m, v| m.max(v.abs())))
                    .collect();
                let q: Vec<i8> = raw
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (v * scales[i / per_row]).round() as i8)
                    .collect();
                self.push(name, shape, 1, q.iter().map(|&v| v as u8).collect());
                self.push(
                    &format!("{name}_scale"),
                    &[rows],
                    0,
                    scales.iter().flat_map(|v| v.to_le_bytes()).collect(),
                );
                q.iter()
                    .enumerate()
                    .map(|(i, &v)| f32::from(v) / scales[i / per_row])
                    .collect()
            }
            Store::I16 => {
                let scale = 1024.0 / raw.iter().fold(0f32, |m, v| m.max(v.abs()));
                let q: Vec<i16> = raw.iter().map(|&v| (v * scale).round() as i16).collect();
                self.push(
                    name,
                    shape,
                    2,
                    q.iter().flat_map(|v| v.to_le_bytes()).collect(),
                );
                self.push(
                    &format!("{name}_scale"),
                    &[],
                    0,
                    scale.to_le_bytes().to_vec(),
                );
                q.iter().map(|&v| f32::from(v) / scale).collect()
            }
        };
        self.values.insert(name.into(), (shape.to_vec(), real));
    }

    fn header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&6u32.to_le_bytes());
        push_string(&mut out, &self.spec);
        out.extend_from_slice(&3u32.to_le_bytes());
        out
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header();
        let mut vars = self.vars.clone();
        vars.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
        for v in &vars {
            push_string(&mut out, &v.name);
            out.push(v.shape.len() as u8);
            for &d in &v.shape {
                out.extend_from_slice(&(d as u32).to_le_bytes());
            }
            out.push(v.dtype);
            out.extend_from_slice(&(v.data.len() as u32).to_le_bytes());
            out.extend_from_slice(&v.data);
        }
        out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
        for (alias, target) in &self.aliases {
            push_string(&mut out, alias);
            push_string(&mut out, target);
        }
        out
    }

    fn write(&self) -> tempfile::TempDir {
        write_dir(&[
            ("model.bin", &self.to_bytes()),
            ("tokenizer.json", TOKENIZER),
            ("config.json", CONFIG),
        ])
    }

    /// The real values of CTranslate2 variable `name`, rows `start..start + len`.
    fn rows(&self, name: &str, start: usize, len: usize) -> Vec<f32> {
        let (shape, values) = &self.values[name];
        let per_row: usize = shape[1..].iter().product();
        values[start * per_row..(start + len) * per_row].to_vec()
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn assert_close(actual: &[f32], expected: &[f32], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= 1e-6 * e.abs().max(1.0),
            "{what}[{i}]: {a} != {e}"
        );
    }
}

#[test]
fn synthetic_model_dequantizes_splits_and_renames() {
    let m = SyntheticModel::new();
    let dir = m.write();
    let ckpt = ct2::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let c = &ckpt.config;
    assert_eq!((c.vocab_size, c.d_model, c.num_mel_bins), (VOCAB, D, MELS));
    assert_eq!(
        (c.encoder_layers, c.decoder_layers),
        (ENC_LAYERS, DEC_LAYERS)
    );
    assert_eq!(
        (c.encoder_attention_heads, c.decoder_attention_heads),
        (2, 2)
    );
    assert_eq!((c.encoder_ffn_dim, c.decoder_ffn_dim), (FFN, FFN));
    assert_eq!(
        (c.max_source_positions, c.max_target_positions),
        (SRC_POS, TGT_POS)
    );
    assert_eq!(
        (
            c.suppress_tokens.as_slice(),
            c.begin_suppress_tokens.as_slice()
        ),
        (&[1, 2][..], &[3][..])
    );
    assert_eq!(ckpt.lang_ids, [7, 8]);
    // No alignment_heads in config.json: CTranslate2's default, the second half of the layers.
    assert_eq!(ckpt.alignment_heads, [(1, 0), (1, 1)]);
    check_shapes(&ckpt);
    assert!(!ckpt.tensors.contains_key("proj_out.weight"));

    let t = |k: &str| flat(&ckpt.tensors[k]);
    let whole = |name: &str| m.values[name].1.clone();
    // int8 (per-row scale), f16, f32, bf16 values.
    assert_close(
        &t("model.encoder.conv1.weight"),
        &whole("encoder/conv1/weight"),
        "conv1",
    );
    assert_close(
        &t("model.encoder.conv2.weight"),
        &whole("encoder/conv2/weight"),
        "conv2",
    );
    assert_close(
        &t("model.encoder.conv1.bias"),
        &whole("encoder/conv1/bias"),
        "conv1 bias",
    );
    assert_close(
        &t("model.decoder.embed_positions.weight"),
        &whole("decoder/position_encodings/encodings"),
        "decoder positions",
    );
    assert_close(
        &t("model.decoder.embed_tokens.weight"),
        &whole("decoder/embeddings/weight"),
        "embeddings",
    );
    assert_close(
        &t("model.encoder.layer_norm.weight"),
        &whole("encoder/layer_norm/gamma"),
        "ln gamma",
    );
    assert_close(
        &t("model.encoder.layer_norm.bias"),
        &whole("encoder/layer_norm/beta"),
        "ln beta",
    );
    // Fused self-attention (int16, one scale) split into q, k, v; k has no bias.
    let qkv = "encoder/layer_0/self_attention/linear_0";
    for (i, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
        let key = format!("model.encoder.layers.0.self_attn.{proj}");
        assert_close(
            &t(&format!("{key}.weight")),
            &m.rows(&format!("{qkv}/weight"), i * D, D),
            &key,
        );
        if *proj == "k_proj" {
            assert!(!ckpt.tensors.contains_key(&format!("{key}.bias")));
        } else {
            assert_close(
                &t(&format!("{key}.bias")),
                &m.rows(&format!("{qkv}/bias"), i * D, D),
                &key,
            );
        }
    }
    // Fused cross-attention key/value (int8, per-row scales) of the last decoder layer.
    let kv = "decoder/layer_1/attention/linear_1";
    let key = "model.decoder.layers.1.encoder_attn";
    assert_close(
        &t(&format!("{key}.k_proj.weight")),
        &m.rows(&format!("{kv}/weight"), 0, D),
        "cross k",
    );
    assert_close(
        &t(&format!("{key}.v_proj.weight")),
        &m.rows(&format!("{kv}/weight"), D, D),
        "cross v",
    );
    assert_close(
        &t(&format!("{key}.v_proj.bias")),
        &m.rows(&format!("{kv}/bias"), D, D),
        "cross v bias",
    );
    assert!(!ckpt.tensors.contains_key(&format!("{key}.k_proj.bias")));
    assert_close(
        &t(&format!("{key}.q_proj.weight")),
        &whole("decoder/layer_1/attention/linear_0/weight"),
        "cross q",
    );
    assert_close(
        &t(&format!("{key}.out_proj.weight")),
        &whole("decoder/layer_1/attention/linear_2/weight"),
        "cross out",
    );
    assert_close(
        &t("model.decoder.layers.1.encoder_attn_layer_norm.weight"),
        &whole("decoder/layer_1/attention/layer_norm/gamma"),
        "cross ln",
    );
    assert_close(
        &t("model.decoder.layers.0.fc1.weight"),
        &whole("decoder/layer_0/ffn/linear_0/weight"),
        "fc1",
    );
    assert_close(
        &t("model.decoder.layers.0.fc2.weight"),
        &whole("decoder/layer_0/ffn/linear_1/weight"),
        "fc2",
    );
    assert_close(
        &t("model.decoder.layers.0.final_layer_norm.bias"),
        &whole("decoder/layer_0/ffn/layer_norm/beta"),
        "final ln",
    );

    // Loading as bf16 converts every tensor.
    let bf16 = ct2::load(dir.path(), DType::BF16, &Device::Cpu).unwrap();
    assert!(bf16.tensors.values().all(|t| t.dtype() == DType::BF16));
}

#[test]
fn synthetic_config_json_alignment_heads_are_used_and_checked() {
    let m = SyntheticModel::new();
    let model = m.to_bytes();
    let config =
        br#"{"alignment_heads": [[0, 1], [1, 0]], "suppress_ids": [], "suppress_ids_begin": []}"#;
    let dir = model_dir(&model, config);
    let ckpt = ct2::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(ckpt.alignment_heads, [(0, 1), (1, 0)]);
    assert!(ckpt.lang_ids.is_empty());

    let config = br#"{"alignment_heads": [[2, 0]]}"#;
    let dir = model_dir(&model, config);
    let message = model_error(dir.path());
    assert!(message.contains("alignment head (2, 0)"), "{message}");
}

#[test]
fn synthetic_separate_projection_becomes_proj_out() {
    let mut m = SyntheticModel::new();
    m.aliases.clear();
    m.weight("decoder/projection/weight", &[VOCAB, D], Store::F32);
    let dir = m.write();
    let ckpt = ct2::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_close(
        &flat(&ckpt.tensors["proj_out.weight"]),
        &m.values["decoder/projection/weight"].1,
        "proj_out",
    );

    // A separate copy equal to the embeddings is tied after all.
    let mut m = SyntheticModel::new();
    m.aliases.clear();
    let embeddings = m
        .vars
        .iter()
        .find(|v| v.name == "decoder/embeddings/weight")
        .unwrap()
        .clone();
    let scale = m
        .vars
        .iter()
        .find(|v| v.name == "decoder/embeddings/weight_scale")
        .unwrap()
        .clone();
    m.vars.push(Var {
        name: "decoder/projection/weight".into(),
        ..embeddings
    });
    m.vars.push(Var {
        name: "decoder/projection/weight_scale".into(),
        ..scale
    });
    let dir = m.write();
    let ckpt = ct2::load(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert!(!ckpt.tensors.contains_key("proj_out.weight"));
}

#[test]
fn synthetic_without_num_heads_uses_width_over_64() {
    // d_model 8 has no 64-wide heads: the fallback is refused with a clear message...
    let mut m = SyntheticModel::new();
    m.vars.retain(|v| !v.name.ends_with("num_heads"));
    let message = model_error(m.write().path());
    assert!(message.contains("attention heads"), "{message}");
}

#[test]
fn synthetic_every_truncation_is_an_error() {
    let m = SyntheticModel::new();
    let bytes = m.to_bytes();
    let dir = m.write();
    let model_bin = dir.path().join("model.bin");
    for keep in 0..bytes.len() {
        std::fs::write(&model_bin, &bytes[..keep]).unwrap();
        let message = model_error(dir.path());
        assert!(
            message.contains("truncated"),
            "{keep} of {} bytes: {message}",
            bytes.len()
        );
    }
}

#[test]
fn synthetic_broken_variables_are_errors() {
    let check = |edit: &dyn Fn(&mut SyntheticModel), expected: &str| {
        let mut m = SyntheticModel::new();
        edit(&mut m);
        let message = model_error(m.write().path());
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message}"
        );
    };
    check(&|m| m.spec = "TransformerSpec".into(), "TransformerSpec");
    check(
        &|m| m.vars.retain(|v| v.name != "decoder/layer_norm/gamma"),
        "'decoder/layer_norm/gamma'",
    );
    check(
        &|m| m.vars.retain(|v| v.name != "encoder/conv1/weight_scale"),
        "no 'encoder/conv1/weight_scale'",
    );
    check(
        &|m| {
            let v = m
                .vars
                .iter_mut()
                .find(|v| v.name == "encoder/conv2/bias")
                .unwrap();
            v.shape = vec![D + 1];
            v.data.extend_from_slice(&[0, 0]);
        },
        "'encoder/conv2/bias' has shape [9], expected [8]",
    );
    check(
        &|m| {
            // One byte short of the 8 f32 its shape promises.
            m.vars
                .iter_mut()
                .find(|v| v.name == "encoder/conv1/bias")
                .unwrap()
                .data
                .pop();
        },
        "declares",
    );
    check(
        &|m| {
            m.vars
                .iter_mut()
                .find(|v| v.name == "encoder/conv1/bias")
                .unwrap()
                .dtype = 9
        },
        "unknown dtype",
    );
    check(
        &|m| {
            let mut v = m
                .vars
                .iter()
                .find(|v| v.name == "encoder/conv1/bias")
                .unwrap()
                .clone();
            v.name = "encoder/conv1/bias".into();
            m.vars.push(v);
        },
        "appears twice",
    );
    check(
        &|m| {
            m.aliases.clear();
            m.aliases
                .push(("decoder/projection/weight".into(), "decoder/a".into()));
            m.aliases
                .push(("decoder/a".into(), "decoder/projection/weight".into()));
        },
        "cycle",
    );
    check(
        &|m| {
            m.vars.push(Var {
                name: "encoder/conv1/weight_zero".into(),
                shape: vec![],
                dtype: 0,
                data: vec![0; 4],
            })
        },
        "AWQ",
    );
}
