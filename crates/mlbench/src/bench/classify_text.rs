//! `mlbench bench classify-text`: sentence embedders and text classifiers, for every model ×
//! device × dtype × `--batch-size`; sentences per second and latency per batch.
//!
//! One run is what a user waits for, as sentence-transformers' `encode` measures it:
//! tokenization, the forward pass, pooling (and normalisation) or the classification head and
//! its scores, and the copy of the result to the host ([`SentenceEmbedder::embed`] or
//! [`TextClassifier::classify`] on the batch). The batch of size b is the first b of
//! [`SENTENCES`] (32 English sentences of 10–25 words, repeated beyond 32).
//!
//! Without `--model` both `random:minilm` (the sentence-transformers/all-MiniLM-L6-v2 shape:
//! BERT, 6 layers, hidden 384, mean pooling + normalisation) and `random:bert-base` (BERT-base
//! with a 2-label sequence-classification head) run, with random weights. Each is written to a
//! temporary folder as a checkpoint (config.json, model.safetensors, tokenizer) and loaded from
//! it as a real one is, and the peer loads the same folder: same weights, same token ids. Their
//! tokenizer is a BERT WordPiece tokenizer (lowercasing, BERT pre-tokenizer, [CLS]/[SEP]) whose
//! vocabulary is every word and punctuation mark of [`SENTENCES`], built here so that nothing is
//! downloaded: each word is one token, as common English words are for BERT's own vocabulary,
//! so a sentence is about as many tokens as with the real tokenizer (the ids are below the
//! model's 30 522 rows; the embedding lookup does not depend on which ids they are).
//!
//! `--model` is a local folder or catalog/hub model as `mlbench classify-text` and
//! `mlbench embed` read them: with a `modules.json` it is a sentence-transformers model
//! ([`SentenceEmbedder`]), otherwise a `*ForSequenceClassification` checkpoint
//! ([`TextClassifier`]). The peer, `benches/peers/torch_classify_text.py`, runs
//! sentence-transformers' `encode` or transformers' tokenizer + model + softmax on the same
//! folder, texts, batch sizes and thread count.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use mlbench_bench::measure::{measure, timed};
use mlbench_bench::memory;
use mlbench_bench::record::{Figures, Record, RowKey, ThroughputFigures};
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::progress::Progress;
use mlbench_core::source::ModelFiles;
use mlbench_text::tokenize::TextTokenizer;
use mlbench_text::{ClassifyParams, EmbedParams, SentenceEmbedder, TextClassifier};
use serde::Deserialize;
use serde_json::{json, Value};

use super::random::{Init, RandomTensors};
use super::{open_device, parse_list, peers, Plan};
use crate::cli::BenchArgs;

/// The benchmark's texts: 32 English sentences of 10–25 words (about 17 BERT tokens on
/// average), plain ASCII so that every tokenizer splits them alike.
pub const SENTENCES: [&str; 32] = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "A man is playing a guitar on the street corner for a small crowd.",
    "The new phone has a faster chip, a brighter screen and a better camera.",
    "Parliament passed the new budget law on Tuesday after a long debate.",
    "She walked her dog in the park every morning before going to work.",
    "The restaurant was crowded, but the service was quick and friendly.",
    "Scientists found water ice in a crater near the south pole of the moon.",
    "The match ended in a draw after extra time and a tense penalty shootout.",
    "I could not finish the book because the story became far too slow.",
    "Heavy rain is expected across the north of the country this weekend.",
    "The children built a sand castle on the beach while their parents watched.",
    "Our flight was delayed by three hours because of a technical problem.",
    "The museum opens a new exhibition of modern art from South America next month.",
    "He fixed the broken bicycle with a few tools and some patience.",
    "This movie was great, the acting was wonderful and the story moving.",
    "The company reported higher profits thanks to strong sales in Asia.",
    "A woman is slicing tomatoes in the kitchen for a fresh summer salad.",
    "The train to the city leaves every twenty minutes from platform four.",
    "Terrible, boring and far too long; I want my money back.",
    "The students asked many questions about the history of the old castle.",
    "Prices of fresh vegetables rose sharply after the dry summer.",
    "Two men pushed carts through the woods on a cold and foggy morning.",
    "The software update fixes several bugs and makes the battery last longer.",
    "My grandmother grows tomatoes, beans and herbs in her small garden.",
    "The orchestra played a beautiful concert to a full hall last night.",
    "Engineers are testing a new bridge design that can survive strong earthquakes.",
    "The cat sat on the warm windowsill and watched the birds outside.",
    "A new study suggests that regular exercise improves sleep and memory.",
    "The hotel room was clean and quiet, with a lovely view of the sea.",
    "Firefighters worked through the night to stop the fire from spreading.",
    "The teacher explained the problem again, slowly and with simple examples.",
    "We watched the sun set behind the mountains from the top of the hill.",
];

/// The first `batch` sentences, repeated from the start beyond 32 (the peer does the same).
fn texts(batch: usize) -> Vec<&'static str> {
    (0..batch).map(|i| SENTENCES[i % SENTENCES.len()]).collect()
}

pub fn bench(args: &BenchArgs, plan: &Plan, progress: &Progress) -> Result<Vec<Record>> {
    let batches: Vec<usize> = parse_list(&args.batch_size, "--batch-size")?;
    if batches.contains(&0) {
        bail!("--batch-size values must be at least 1");
    }
    let specs: Vec<String> = match args.model.as_deref() {
        None => [Arch::MiniLm, Arch::BertBase]
            .iter()
            .map(|a| format!("random:{}", a.name()))
            .collect(),
        Some(spec) => vec![spec.to_string()],
    };
    // A bad --model fails before anything is measured.
    for spec in &specs {
        if let Some(name) = spec.strip_prefix("random:") {
            Arch::parse(name)?;
        }
    }
    let mut records = Vec::new();
    for spec in &specs {
        // One model at a time: a random one's temporary folder goes when its rows are done.
        let model = Model::resolve(spec, &batches, progress)?;
        let first = records.len();
        for &device in &plan.devices {
            for dtype in plan.dtypes_for(device) {
                let case = Case {
                    model: &model,
                    spec: device,
                    dtype,
                    batches: &batches,
                    plan,
                    progress,
                };
                records.extend(case.run());
            }
        }
        if args.peers {
            let peer_rows = torch_peer(args, &model, &batches, &records[first..], progress);
            records.extend(peer_rows);
        }
    }
    Ok(records)
}

/// The architectures `random:NAME` builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arch {
    MiniLm,
    BertBase,
}

impl Arch {
    fn parse(name: &str) -> Result<Self> {
        match name {
            "minilm" | "all-minilm-l6-v2" => Ok(Self::MiniLm),
            "bert-base" => Ok(Self::BertBase),
            other => {
                bail!("unknown random model '{other}' (expected random:minilm or random:bert-base)")
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::MiniLm => "minilm",
            Self::BertBase => "bert-base",
        }
    }

    fn kind(self) -> Kind {
        match self {
            Self::MiniLm => Kind::Embedder,
            Self::BertBase => Kind::Classifier,
        }
    }

    /// (layers, hidden, heads, intermediate).
    fn shape(self) -> (usize, usize, usize, usize) {
        match self {
            Self::MiniLm => (6, 384, 12, 1536),
            Self::BertBase => (12, 768, 12, 3072),
        }
    }

    /// The config.json of sentence-transformers/all-MiniLM-L6-v2 and of bert-base-uncased with
    /// a 2-label head.
    fn config(self) -> Value {
        let (layers, hidden, heads, ffn) = self.shape();
        let mut c = json!({
            "model_type": "bert",
            "architectures": ["BertModel"],
            "vocab_size": VOCAB,
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": ffn,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": 512,
            "type_vocab_size": 2,
            "initializer_range": 0.02,
            "layer_norm_eps": 1e-12,
            "pad_token_id": 0,
            "position_embedding_type": "absolute"
        });
        if self == Self::BertBase {
            c["architectures"] = json!(["BertForSequenceClassification"]);
            c["id2label"] = json!({"0": "NEGATIVE", "1": "POSITIVE"});
            c["label2id"] = json!({"NEGATIVE": 0, "POSITIVE": 1});
        }
        c
    }

    /// Writes the checkpoint folder: config, random weights, tokenizer and, for the embedder,
    /// sentence-transformers' module files.
    fn write(self, dir: &Path) -> Result<()> {
        let put = |name: &str, value: &Value| -> Result<()> {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, serde_json::to_string_pretty(value)?)
                .with_context(|| format!("writing {}", path.display()))
        };
        put("config.json", &self.config())?;
        put("tokenizer.json", &word_tokenizer(&SENTENCES))?;
        put(
            "tokenizer_config.json",
            &json!({
                "tokenizer_class": "BertTokenizer", "do_lower_case": true,
                "model_max_length": 512, "unk_token": "[UNK]", "sep_token": "[SEP]",
                "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"
            }),
        )?;
        if self.kind() == Kind::Embedder {
            let module = |idx: usize, path: &str, kind: &str| {
                json!({"idx": idx, "name": idx.to_string(), "path": path,
                       "type": format!("sentence_transformers.models.{kind}")})
            };
            put(
                "modules.json",
                &json!([
                    module(0, "", "Transformer"),
                    module(1, "1_Pooling", "Pooling"),
                    module(2, "2_Normalize", "Normalize")
                ]),
            )?;
            put(
                "1_Pooling/config.json",
                &json!({"word_embedding_dimension": self.shape().1,
                        "pooling_mode_cls_token": false, "pooling_mode_mean_tokens": true,
                        "pooling_mode_max_tokens": false,
                        "pooling_mode_mean_sqrt_len_tokens": false}),
            )?;
            std::fs::create_dir_all(dir.join("2_Normalize"))?;
            put(
                "sentence_bert_config.json",
                &json!({"max_seq_length": 256, "do_lower_case": false}),
            )?;
        }
        let weights = dir.join("model.safetensors");
        candle_core::safetensors::save(&random_tensors(self)?, &weights)
            .with_context(|| format!("writing {}", weights.display()))
    }
}

/// BERT's vocabulary size (bert-base-uncased, all-MiniLM-L6-v2).
const VOCAB: usize = 30_522;

/// Embedder or classifier: what a run computes and which peer API mirrors it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Embedder,
    Classifier,
}

impl Kind {
    /// The peer's `--kind`.
    fn name(self) -> &'static str {
        match self {
            Self::Embedder => "embed",
            Self::Classifier => "classify",
        }
    }
}

/// A model to benchmark: its files (a temporary folder for random weights), what it is, and
/// the mean tokens per text of each batch size (read once with a CPU load).
struct Model {
    label: String,
    random: bool,
    kind: Kind,
    files: ModelFiles,
    dir: PathBuf,
    tokens: HashMap<usize, f64>,
    _temp: Option<tempfile::TempDir>,
}

impl Model {
    fn resolve(spec: &str, batches: &[usize], progress: &Progress) -> Result<Self> {
        let (label, random, kind, temp) = match spec.strip_prefix("random:") {
            Some(name) => {
                let arch = Arch::parse(name)?;
                let temp = tempfile::Builder::new()
                    .prefix("mlbench-bench-text-")
                    .tempdir()?;
                arch.write(temp.path())
                    .with_context(|| format!("building {spec}"))?;
                let label = format!("{} (random weights)", arch.name());
                (label, true, Some(arch.kind()), Some(temp))
            }
            None => (super::model_label(spec), false, None, None),
        };
        let source = match &temp {
            Some(t) => t.path().to_string_lossy().into_owned(),
            None => spec.to_string(),
        };
        let catalog = Catalog::builtin()?;
        let files = ModelFiles::from_spec(&source, &catalog, progress.clone())
            .with_context(|| format!("--model {spec}"))?;
        let kind = match kind {
            Some(k) => k,
            None if files.get_optional("modules.json")?.is_some() => Kind::Embedder,
            None => Kind::Classifier,
        };
        let config = files.get("config.json")?;
        let dir = config.parent().map(PathBuf::from).unwrap_or_default();
        // The token counts come from the model's own tokenizer; the probe also checks that the
        // model loads before anything is measured.
        let probe = Loaded::load(kind, &files, &Device::Cpu, DType::F32)
            .with_context(|| format!("--model {spec}"))?;
        let mut tokens = HashMap::new();
        for &b in batches {
            tokens.insert(b, mean_tokens(probe.tokenizer(), &texts(b))?);
        }
        Ok(Self {
            label,
            random,
            kind,
            files,
            dir,
            tokens,
            _temp: temp,
        })
    }

    fn key(&self, device: &str, dtype: &str, batch: usize) -> RowKey {
        RowKey {
            task: "classify-text".into(),
            model: self.label.clone(),
            device: device.into(),
            dtype: dtype.into(),
            config: format!("batch {batch}, {:.1} tokens/text", self.tokens[&batch]),
        }
    }
}

/// The mean number of real (unpadded) tokens per text, specials included.
fn mean_tokens(tokenizer: &TextTokenizer, texts: &[&str]) -> Result<f64> {
    let (batch, _) = tokenizer.encode(texts, 0, &Device::Cpu)?;
    let real = batch
        .attention_mask
        .to_dtype(DType::F64)?
        .sum_all()?
        .to_scalar::<f64>()?;
    Ok(real / texts.len() as f64)
}

/// A loaded model.
enum Loaded {
    Embedder(Box<SentenceEmbedder>),
    Classifier(Box<TextClassifier>),
}

impl Loaded {
    fn load(kind: Kind, files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        Ok(match kind {
            Kind::Embedder => {
                Self::Embedder(Box::new(SentenceEmbedder::load(files, device, dtype)?))
            }
            Kind::Classifier => {
                Self::Classifier(Box::new(TextClassifier::load(files, device, dtype)?))
            }
        })
    }

    fn tokenizer(&self) -> &TextTokenizer {
        match self {
            Self::Embedder(m) => m.tokenizer(),
            Self::Classifier(m) => m.tokenizer(),
        }
    }

    /// Embeddings or top labels of `texts` as one batch, on the host (so GPU work is waited
    /// for).
    fn run(&self, texts: &[&str]) -> mlbench_text::Result<()> {
        let batch_size = texts.len();
        match self {
            Self::Embedder(m) => {
                let params = EmbedParams {
                    batch_size,
                    ..EmbedParams::default()
                };
                m.embed(texts, &params)?;
            }
            Self::Classifier(m) => {
                let params = ClassifyParams {
                    batch_size,
                    ..ClassifyParams::default()
                };
                m.classify(texts, &params)?;
            }
        }
        Ok(())
    }
}

/// One model × device × dtype: one load, one row per batch size.
struct Case<'a> {
    model: &'a Model,
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
        let loaded = timed(|| {
            Loaded::load(
                self.model.kind,
                &self.model.files,
                &device,
                self.dtype.dtype(),
            )
        });
        let (model, load_s) = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                let key = self.model.key(&name, &dtype, self.batches[0]);
                return vec![Record::failed(key, format!("loading the model: {e:#}"))];
            }
        };
        self.batches
            .iter()
            .map(|&b| {
                let mut record = self.batch_row(&model, &name, b);
                record.load_s = Some(load_s);
                record
            })
            .collect()
    }

    fn batch_row(&self, model: &Loaded, name: &str, batch: usize) -> Record {
        let key = self.model.key(name, &self.dtype.to_string(), batch);
        let texts = texts(batch);
        // The high-water mark of this batch size alone (the weights stay resident).
        memory::reset_peak();
        let label = format!(
            "classify-text {} {name} {} batch {batch}",
            self.model.label, self.dtype
        );
        let result = measure(&self.plan.measure, self.progress, &label, |probe| {
            probe.stage("encode", || model.run(&texts))
        });
        let mut record = match result {
            Ok(m) => Record::measured(key, &m),
            Err(e) => return Record::failed(key, e.to_string()),
        };
        self.model.finish(&mut record, batch);
        record.peak_rss_bytes = memory::peak_rss_bytes();
        record
    }
}

impl Model {
    /// Throughput figures from the median, and the random-weights note.
    fn finish(&self, record: &mut Record, batch: usize) {
        if let Some(run_s) = record.median_s() {
            record.figures =
                Figures::Throughput(ThroughputFigures::batch(batch, "sentences", run_s));
        }
        record
            .metrics
            .insert("tokens_per_text".into(), self.tokens[&batch]);
        if self.random {
            record.notes.push("random weights".into());
        }
    }
}

/// One batch size of what `torch_classify_text.py` prints.
#[derive(Debug, Deserialize)]
struct TorchBatch {
    batch_size: usize,
    tokens_per_text: f64,
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

/// sentence-transformers or transformers on the same folder, one row per batch size.
fn torch_peer(
    args: &BenchArgs,
    model: &Model,
    batches: &[usize],
    mlbench_rows: &[Record],
    progress: &Progress,
) -> Vec<Record> {
    let peer = peer_of(model.kind);
    peer.batch_rows(
        run_torch(args, model, batches, progress),
        batches,
        |b| peer.key(&model.key("cpu", "f32", b)),
        mlbench_rows,
        |record, b, result| {
            model.finish(record, b);
            if (result.tokens_per_text - model.tokens[&b]).abs() > 0.05 {
                record.notes.push(format!(
                    "the peer's tokenizer gives {:.1} tokens/text",
                    result.tokens_per_text
                ));
            }
        },
    )
}

/// The peer of a model kind (its name is the model column's suffix).
fn peer_of(kind: Kind) -> peers::Peer {
    let name = match kind {
        Kind::Embedder => "sentence-transformers",
        Kind::Classifier => "transformers",
    };
    peers::Peer {
        name,
        script: "torch_classify_text.py",
        venv: peers::Venv::Torch,
    }
}

fn run_torch(
    args: &BenchArgs,
    model: &Model,
    batches: &[usize],
    progress: &Progress,
) -> Result<peers::BatchOutput<TorchBatch>, String> {
    let list = batches
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut peer_args: Vec<OsString> = vec!["--model".into(), model.dir.clone().into()];
    for (flag, value) in [
        ("--kind", model.kind.name().to_string()),
        ("--texts", json!(SENTENCES).to_string()),
        ("--batch-sizes", list),
        ("--threads", peers::threads().to_string()),
        ("--runs", args.runs.to_string()),
        ("--warmup", args.warmup.max(2).to_string()),
    ] {
        peer_args.push(flag.into());
        peer_args.push(value.into());
    }
    peer_of(model.kind).run(progress, &peer_args)
}

/// A BERT WordPiece `tokenizer.json` (bert-base-uncased's normaliser, pre-tokenizer and
/// [CLS] … [SEP] template) whose vocabulary is the special tokens, then every lowercased word
/// and punctuation mark of `texts`, sorted.
fn word_tokenizer(texts: &[&str]) -> Value {
    const SPECIAL: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut words = BTreeSet::new();
    for text in texts {
        for word in text.to_lowercase().split_whitespace() {
            let mut run = String::new();
            for c in word.chars() {
                if c.is_ascii_punctuation() {
                    words.insert(std::mem::take(&mut run));
                    words.insert(c.to_string());
                } else {
                    run.push(c);
                }
            }
            words.insert(run);
        }
    }
    words.remove("");
    let vocab: serde_json::Map<String, Value> = SPECIAL
        .iter()
        .map(|s| s.to_string())
        .chain(words)
        .enumerate()
        .map(|(i, w)| (w, json!(i)))
        .collect();
    let added: Vec<Value> = SPECIAL
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let special = |s: &str| json!({"SpecialToken": {"id": s, "type_id": 0}});
    let seq = |s: &str, t: u32| json!({"Sequence": {"id": s, "type_id": t}});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": true,
                       "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special("[CLS]"), seq("A", 0), special("[SEP]")],
            "pair": [special("[CLS]"), seq("A", 0), special("[SEP]"), seq("B", 1),
                     {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    })
}

/// Every tensor of the architecture with transformers' names (`bert.`-prefixed with the
/// classification head, at the root for the sentence-transformers embedder), f32: matrices
/// and embeddings normal with std 0.02 (BERT's `initializer_range`), zero biases, identity
/// layer norms.
fn random_tensors(arch: Arch) -> candle_core::Result<HashMap<String, Tensor>> {
    let (layers, d, _, ffn) = arch.shape();
    let prefix = match arch.kind() {
        Kind::Embedder => "",
        Kind::Classifier => "bert.",
    };
    let mut t = RandomTensors::new(Init::Std(0.02));
    let e = format!("{prefix}embeddings");
    for (name, rows) in [("word", VOCAB), ("position", 512), ("token_type", 2)] {
        t.normal(&format!("{e}.{name}_embeddings.weight"), &[rows, d])?;
    }
    t.layer_norm(&format!("{e}.LayerNorm"), d)?;
    for i in 0..layers {
        let l = format!("{prefix}encoder.layer.{i}");
        for proj in ["query", "key", "value"] {
            t.linear(&format!("{l}.attention.self.{proj}"), d, d)?;
        }
        t.linear(&format!("{l}.attention.output.dense"), d, d)?;
        t.layer_norm(&format!("{l}.attention.output.LayerNorm"), d)?;
        t.linear(&format!("{l}.intermediate.dense"), d, ffn)?;
        t.linear(&format!("{l}.output.dense"), ffn, d)?;
        t.layer_norm(&format!("{l}.output.LayerNorm"), d)?;
    }
    t.linear(&format!("{prefix}pooler.dense"), d, d)?;
    if arch.kind() == Kind::Classifier {
        t.linear("classifier", d, 2)?;
    }
    Ok(t.into_map())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(arch: Arch) -> usize {
        random_tensors(arch)
            .unwrap()
            .values()
            .map(Tensor::elem_count)
            .sum()
    }

    #[test]
    fn random_models_have_the_released_parameter_counts() {
        // all-MiniLM-L6-v2: 22.71 M parameters; bert-base-uncased + 2-label head: 109.48 M.
        let minilm = params(Arch::MiniLm);
        assert!((22_700_000..22_720_000).contains(&minilm), "{minilm}");
        let bert = params(Arch::BertBase);
        assert!((109_480_000..109_490_000).contains(&bert), "{bert}");
    }

    #[test]
    fn sentences_are_ten_to_twenty_five_words() {
        for s in SENTENCES {
            let n = s.split_whitespace().count();
            assert!((10..=25).contains(&n), "{n} words: {s}");
            assert!(s.is_ascii(), "{s}");
        }
        assert_eq!(texts(34)[32], SENTENCES[0]);
        assert_eq!(Arch::parse("bert-base").unwrap(), Arch::BertBase);
        assert!(Arch::parse("bert-large").is_err());
    }

    #[test]
    fn word_tokenizer_gives_one_token_per_word_and_mark() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let json = word_tokenizer(&["Hello, world!", "hello again"]);
        std::fs::write(&path, json.to_string()).unwrap();
        let tokenizer =
            mlbench_text::tokenize::load_tokenizer(Some(&path), None, None, true).unwrap();
        let ids = tokenizer.encode("Hello, world! Again", true).unwrap();
        // [CLS] hello , world ! again [SEP]; vocab: 5 specials, then ! , again hello world.
        assert_eq!(ids.get_ids(), [2, 8, 6, 9, 5, 7, 3]);
    }
}
