//! Reading a checkpoint: `config.json`, the weights (`model.safetensors`, else
//! `pytorch_model.bin`), the tokenizer, and the encoder and classification head its
//! `model_type` names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use mlbench_core::source::{ModelFiles, ModelSource};
use serde::Deserialize;

use crate::activation::{self, Activation};
use crate::bert::{self, BertClassificationHead, BertModel};
use crate::deberta_v2::{self, DebertaV2ClassificationHead, DebertaV2Model};
use crate::distilbert::{self, DistilBertClassificationHead, DistilBertModel};
use crate::modernbert::{self, ModernBertClassificationHead, ModernBertModel};
use crate::roberta::{self, RobertaClassificationHead};
use crate::tokenize::{load_tokenizer, Batch, TextTokenizer};
use crate::{Error, Result};

/// The architectures this crate runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Architecture {
    /// BERT (`model_type` `bert`).
    Bert,
    /// RoBERTa, XLM-RoBERTa, CamemBERT.
    Roberta,
    /// DistilBERT.
    DistilBert,
    /// DeBERTa-v2 and v3.
    DebertaV2,
    /// ModernBERT.
    ModernBert,
}

impl Architecture {
    /// The architecture of a `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Some(match model_type {
            "bert" => Self::Bert,
            "roberta" | "xlm-roberta" | "camembert" => Self::Roberta,
            "distilbert" => Self::DistilBert,
            "deberta-v2" => Self::DebertaV2,
            "modernbert" => Self::ModernBert,
            _ => return None,
        })
    }

    /// The key prefix of the encoder in `*ForSequenceClassification` checkpoints.
    fn prefix(self) -> &'static str {
        match self {
            Self::Bert => "bert",
            Self::Roberta => "roberta",
            Self::DistilBert => "distilbert",
            Self::DebertaV2 => "deberta",
            Self::ModernBert => "model",
        }
    }

    /// The name of the tensor whose first dimension is the number of labels.
    fn classifier_weight(self) -> &'static str {
        match self {
            Self::Roberta => "classifier.out_proj.weight",
            _ => "classifier.weight",
        }
    }
}

/// The architecture-independent fields of `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct CommonConfig {
    /// `bert`, `roberta`, `distilbert`, `deberta-v2`, `modernbert`, …
    #[serde(default)]
    pub model_type: Option<String>,
    /// Label names by index (keys are decimal strings).
    #[serde(default)]
    pub id2label: Option<HashMap<String, String>>,
    /// `single_label_classification`, `multi_label_classification` or `regression`.
    #[serde(default)]
    pub problem_type: Option<String>,
    /// Learned or maximum positions.
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// DeBERTa's `ContextPooler` activation.
    #[serde(default = "activation::gelu")]
    pub pooler_hidden_act: Activation,
}

/// The encoder of any supported architecture.
#[derive(Debug)]
#[non_exhaustive]
pub enum Encoder {
    /// BERT, RoBERTa, XLM-R.
    Bert(Box<BertModel>),
    /// DistilBERT.
    DistilBert(Box<DistilBertModel>),
    /// DeBERTa-v2/v3.
    DebertaV2(Box<DebertaV2Model>),
    /// ModernBERT.
    ModernBert(Box<ModernBertModel>),
}

impl Encoder {
    /// The last hidden states (b, t, hidden) of a batch.
    pub fn forward(&self, batch: &Batch) -> Result<Tensor> {
        match self {
            Self::Bert(m) => m.forward(batch),
            Self::DistilBert(m) => m.forward(batch),
            Self::DebertaV2(m) => m.forward(batch),
            Self::ModernBert(m) => m.forward(batch),
        }
    }
}

/// A sequence-classification head of any supported architecture.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Head {
    /// Pooler + classifier.
    Bert(BertClassificationHead),
    /// dense → tanh → out_proj.
    Roberta(RobertaClassificationHead),
    /// pre_classifier → ReLU → classifier.
    DistilBert(DistilBertClassificationHead),
    /// ContextPooler + classifier.
    DebertaV2(DebertaV2ClassificationHead),
    /// Pooling → head → classifier.
    ModernBert(ModernBertClassificationHead),
}

impl Head {
    /// Logits (b, labels).
    pub fn forward(&self, hidden: &Tensor, batch: &Batch) -> Result<Tensor> {
        match self {
            Self::Bert(h) => h.forward(hidden),
            Self::Roberta(h) => h.forward(hidden),
            Self::DistilBert(h) => h.forward(hidden),
            Self::DebertaV2(h) => h.forward(hidden),
            Self::ModernBert(h) => h.forward(hidden, batch),
        }
    }
}

/// A checkpoint read from disk: its config and its tensors, ready to build layers from.
pub(crate) struct Checkpoint {
    pub(crate) dir: PathBuf,
    pub(crate) arch: Architecture,
    pub(crate) common: CommonConfig,
    config_json: String,
    config_path: PathBuf,
    shapes: HashMap<String, Vec<usize>>,
    pub(crate) vb: VarBuilder<'static>,
}

impl Checkpoint {
    /// Reads `config.json` and the weights of `files`.
    pub(crate) fn read(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        if let ModelSource::File(p) = files.source() {
            return Err(Error::Model(format!(
                "{}: pass the model's directory (config.json, weights and tokenizer), not one file",
                p.display()
            )));
        }
        let config_path = files.get("config.json")?;
        let config_json = std::fs::read_to_string(&config_path)
            .map_err(|e| Error::Model(format!("{}: cannot read ({e})", config_path.display())))?;
        let common: CommonConfig = serde_json::from_str(&config_json)
            .map_err(|e| Error::Model(format!("{}: {e}", config_path.display())))?;
        let model_type = common.model_type.clone().unwrap_or_default();
        let arch = Architecture::from_model_type(&model_type).ok_or_else(|| {
            Error::Model(format!(
                "{}: model_type {model_type:?} is not supported (bert, roberta, xlm-roberta, distilbert, deberta-v2, modernbert)",
                config_path.display()
            ))
        })?;
        let tensors = match files.get_optional("model.safetensors")? {
            Some(p) => candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| {
                Error::Model(format!(
                    "{}: not a readable safetensors file ({e})",
                    p.display()
                ))
            })?,
            None => match files.get_optional("pytorch_model.bin")? {
                Some(p) => candle_core::pickle::read_all(&p)
                    .map_err(|e| {
                        Error::Model(format!(
                            "{}: not a readable PyTorch checkpoint ({e})",
                            p.display()
                        ))
                    })?
                    .into_iter()
                    .collect(),
                None => {
                    return Err(Error::Model(format!(
                        "{}: no model.safetensors or pytorch_model.bin beside it",
                        config_path.display()
                    )))
                }
            },
        };
        let shapes = tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        let dir = config_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Ok(Self {
            dir,
            arch,
            common,
            config_json,
            config_path,
            shapes,
            vb: VarBuilder::from_tensors(tensors, dtype, device),
        })
    }

    fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.config_json)
            .map_err(|e| Error::Model(format!("{}: {e}", self.config_path.display())))
    }

    /// The encoder's VarBuilder: under the architecture's prefix when the checkpoint has one
    /// (`*ForSequenceClassification`), else at the root (sentence-transformers, `*Model`).
    fn encoder_vb(&self) -> VarBuilder<'static> {
        let prefix = self.arch.prefix();
        if self
            .shapes
            .keys()
            .any(|k| k.starts_with(&format!("{prefix}.")))
        {
            self.vb.pp(prefix)
        } else {
            self.vb.clone()
        }
    }

    /// The encoder, and the most tokens it takes.
    pub(crate) fn encoder(&self) -> Result<(Encoder, usize)> {
        let named = |e: Error| match e {
            Error::Candle(c) => Error::Model(format!("{}: {c}", self.dir.display())),
            e => e,
        };
        let vb = self.encoder_vb();
        let out = match self.arch {
            Architecture::Bert => {
                let c: bert::Config = self.config()?;
                (
                    Encoder::Bert(Box::new(BertModel::load(vb, &c, 0).map_err(named)?)),
                    c.max_position_embeddings,
                )
            }
            Architecture::Roberta => {
                let c: bert::Config = self.config()?;
                let offset = roberta::position_offset(&c);
                let max = c.max_position_embeddings.saturating_sub(offset);
                (
                    Encoder::Bert(Box::new(roberta::load_encoder(vb, &c).map_err(named)?)),
                    max,
                )
            }
            Architecture::DistilBert => {
                let c: distilbert::Config = self.config()?;
                (
                    Encoder::DistilBert(Box::new(DistilBertModel::load(vb, &c).map_err(named)?)),
                    c.max_position_embeddings,
                )
            }
            Architecture::DebertaV2 => {
                let c: deberta_v2::Config = self.config()?;
                // candle-transformers' DeBERTa builds its masks and position biases in f32.
                let vb = vb.to_dtype(DType::F32);
                (
                    Encoder::DebertaV2(Box::new(DebertaV2Model::load(vb, &c).map_err(named)?)),
                    c.max_position_embeddings,
                )
            }
            Architecture::ModernBert => {
                let c: modernbert::Config = self.config()?;
                (
                    Encoder::ModernBert(Box::new(ModernBertModel::load(vb, &c).map_err(named)?)),
                    c.max_position_embeddings,
                )
            }
        };
        Ok(out)
    }

    /// The number of labels of the classification head, from its weight's shape.
    pub(crate) fn num_labels(&self) -> Result<usize> {
        let name = self.arch.classifier_weight();
        self.shapes
            .get(name)
            .and_then(|s| s.first().copied())
            .ok_or_else(|| {
                Error::Model(format!(
                    "{}: no classification head ({name} is missing): a sequence-classification checkpoint is needed",
                    self.dir.display()
                ))
            })
    }

    /// The sequence-classification head.
    pub(crate) fn head(&self, labels: usize) -> Result<Head> {
        let vb = &self.vb;
        Ok(match self.arch {
            Architecture::Bert => {
                let c: bert::Config = self.config()?;
                Head::Bert(BertClassificationHead::load(
                    &self.encoder_vb(),
                    vb,
                    &c,
                    labels,
                )?)
            }
            Architecture::Roberta => {
                let c: bert::Config = self.config()?;
                Head::Roberta(RobertaClassificationHead::load(vb, &c, labels)?)
            }
            Architecture::DistilBert => {
                let c: distilbert::Config = self.config()?;
                Head::DistilBert(DistilBertClassificationHead::load(vb, &c, labels)?)
            }
            Architecture::DebertaV2 => {
                let c: deberta_v2::Config = self.config()?;
                let act = self.common.pooler_hidden_act;
                let vb = vb.to_dtype(DType::F32);
                Head::DebertaV2(DebertaV2ClassificationHead::load(&vb, &c, labels, act)?)
            }
            Architecture::ModernBert => {
                let c: modernbert::Config = self.config()?;
                Head::ModernBert(ModernBertClassificationHead::load(vb, &c, labels)?)
            }
        })
    }

    /// Label names in index order; missing ones are `LABEL_i`.
    pub(crate) fn labels(&self, n: usize) -> Result<Vec<String>> {
        let mut labels: Vec<String> = (0..n).map(|i| format!("LABEL_{i}")).collect();
        for (k, v) in self.common.id2label.iter().flatten() {
            let i: usize = k.parse().map_err(|_| {
                Error::Model(format!(
                    "{}: id2label key {k:?} is not a number",
                    self.config_path.display()
                ))
            })?;
            if let Some(l) = labels.get_mut(i) {
                *l = v.clone();
            }
        }
        Ok(labels)
    }
}

#[derive(Debug, Default, Deserialize)]
struct TokenizerConfig {
    #[serde(default)]
    model_max_length: Option<f64>,
    #[serde(default)]
    do_lower_case: Option<bool>,
}

/// The checkpoint's tokenizer, padding with its `pad_token_id`, cutting texts at the smallest of
/// `limit` (what the model takes), `model_max_length` of `tokenizer_config.json` and
/// `max_seq_length` (sentence-transformers' `sentence_bert_config.json`, when `st_limit`).
pub(crate) fn text_tokenizer(
    files: &ModelFiles,
    checkpoint: &Checkpoint,
    limit: usize,
    st_limit: Option<usize>,
) -> Result<TextTokenizer> {
    let tc: TokenizerConfig = match files.get_optional("tokenizer_config.json")? {
        Some(p) => read_json(&p)?,
        None => TokenizerConfig::default(),
    };
    let json = files.get_optional("tokenizer.json")?;
    let vocab_txt = match json {
        Some(_) => None,
        None => files.get_optional("vocab.txt")?,
    };
    let bpe = match (&json, &vocab_txt) {
        (None, None) => files
            .get_optional("vocab.json")?
            .zip(files.get_optional("merges.txt")?),
        _ => None,
    };
    let tokenizer = load_tokenizer(
        json.as_deref(),
        vocab_txt.as_deref(),
        bpe.as_ref().map(|(v, m)| (v.as_path(), m.as_path())),
        tc.do_lower_case.unwrap_or(true),
    )
    .map_err(|e| match e {
        Error::Model(m) if json.is_none() && vocab_txt.is_none() && bpe.is_none() => {
            Error::Model(format!("{}: {m}", checkpoint.dir.display()))
        }
        e => e,
    })?;
    let mut max = limit;
    if let Some(m) = tc.model_max_length.filter(|m| (2.0..1e9).contains(m)) {
        max = max.min(m as usize);
    }
    if let Some(m) = st_limit {
        max = max.min(m);
    }
    let pad = checkpoint.common.pad_token_id.unwrap_or(0);
    TextTokenizer::new(tokenizer, pad, max)
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Model(format!("{}: cannot read ({e})", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::Model(format!("{}: {e}", path.display())))
}
