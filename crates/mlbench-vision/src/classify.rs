//! The image-classification pipeline: load a checkpoint, preprocess images, batch them, and
//! return the top-k labels with their softmax scores, as Hugging Face's
//! `image-classification` pipeline does.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, D};
use image::DynamicImage;
use mlbench_core::source::{ModelFiles, ModelSource};
use serde::Serialize;

use crate::clip::{self, Clip};
use crate::convnext::{self, ConvNext};
use crate::dinov2::{self, Dinov2};
use crate::efficientnet::{self, EfficientNet};
use crate::efficientnet_lite::{Config as LiteConfig, EfficientNetLite};
use crate::hf::{preprocess_from_json, CommonConfig};
use crate::image::Preprocess;
use crate::mobilenetv4::{self, MobileNetV4};
use crate::resnet::{self, ResNet};
use crate::vit::{self, Vit};
use crate::{Error, Result};

const IMAGENET_LABELS: &str = include_str!("imagenet_labels.txt");

/// The 1000 ImageNet-1k class names, in class-index order (as in torchvision and HF's
/// `id2label` of ImageNet checkpoints, e.g. 281 = "tabby, tabby cat").
pub fn imagenet_labels() -> Vec<String> {
    IMAGENET_LABELS.lines().map(str::to_string).collect()
}

/// One label and its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// The class name.
    pub label: String,
    /// Softmax probability.
    pub score: f32,
}

/// Settings of [`ImageClassifier::classify`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyParams {
    /// How many labels to return per image (at most the number of classes).
    pub top_k: usize,
    /// How many images go through the model at once.
    pub batch_size: usize,
}

impl Default for ClassifyParams {
    fn default() -> Self {
        Self {
            top_k: 5,
            batch_size: 8,
        }
    }
}

/// The architectures this crate runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Model {
    /// EfficientNet-Lite (lukemelas PyTorch layout).
    EfficientNetLite(EfficientNetLite),
    /// transformers' ResNet.
    ResNet(ResNet),
    /// transformers' ViT.
    Vit(Vit),
    /// transformers' ConvNeXt.
    ConvNext(ConvNext),
    /// transformers' EfficientNet (B0–B7).
    EfficientNet(EfficientNet),
    /// transformers' DINOv2 with a linear head.
    Dinov2(Dinov2),
    /// transformers' CLIP vision tower with a linear head.
    Clip(Clip),
    /// timm's MobileNetV4 (convolutional variants).
    MobileNetV4(MobileNetV4),
}

impl Model {
    /// Logits (b, classes) of a normalised batch (b, 3, h, w).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::EfficientNetLite(m) => m.forward(x),
            Self::ResNet(m) => m.forward(x),
            Self::Vit(m) => m.forward(x),
            Self::ConvNext(m) => m.forward(x),
            Self::EfficientNet(m) => m.forward(x),
            Self::Dinov2(m) => m.forward(x),
            Self::Clip(m) => m.forward(x),
            Self::MobileNetV4(m) => m.forward(x),
        }
    }

    /// A short architecture name.
    pub fn name(&self) -> &str {
        match self {
            Self::EfficientNetLite(m) => &m.config().name,
            Self::ResNet(_) => "resnet",
            Self::Vit(_) => "vit",
            Self::ConvNext(_) => "convnext",
            Self::EfficientNet(_) => "efficientnet",
            Self::Dinov2(_) => "dinov2",
            Self::Clip(_) => "clip",
            Self::MobileNetV4(_) => "mobilenetv4",
        }
    }
}

/// A loaded classifier: model, preprocessing and labels.
#[derive(Debug, Clone)]
pub struct ImageClassifier {
    model: Model,
    preprocess: Preprocess,
    labels: Vec<String>,
    device: Device,
}

impl ImageClassifier {
    /// Loads the checkpoint that `files` names: a directory (or hub repo) with
    /// `model.safetensors`, or a `.safetensors` file. The architecture is recognised from the
    /// tensor names and `config.json` when there is one.
    pub fn load(files: &ModelFiles, device: &Device, dtype: DType) -> Result<Self> {
        let weights = match files.source() {
            ModelSource::File(path) => {
                if path.extension().is_none_or(|e| e != "safetensors") {
                    return Err(Error::Model(format!(
                        "{}: not a .safetensors file (pass a model directory or a .safetensors checkpoint)",
                        path.display()
                    )));
                }
                path.clone()
            }
            _ => files.get("model.safetensors")?,
        };
        let tensors = load_safetensors(&weights)?;
        if tensors.contains_key("_conv_stem.weight") {
            if tensors.keys().any(|k| k.contains("._se_")) {
                return Err(Error::Model(format!(
                    "{}: an EfficientNet with squeeze-and-excitation (B0–B7); only EfficientNet-Lite is supported in this layout",
                    weights.display()
                )));
            }
            let model = EfficientNetLite::load(&tensors, LiteConfig::lite0(), device, dtype)?;
            let labels = default_labels(model.num_classes());
            let preprocess = Preprocess::efficientnet_lite(model.config().image_size as u32);
            return Ok(Self {
                model: Model::EfficientNetLite(model),
                preprocess,
                labels,
                device: device.clone(),
            });
        }
        let config_path = files.get_optional("config.json")?.ok_or_else(|| {
            Error::Model(format!(
                "{}: not an EfficientNet-Lite checkpoint, and no config.json beside it names the architecture",
                weights.display()
            ))
        })?;
        let config_json = std::fs::read_to_string(&config_path)
            .map_err(|e| Error::Model(format!("{}: cannot read ({e})", config_path.display())))?;
        let bad_config =
            |e: serde_json::Error| Error::Model(format!("{}: {e}", config_path.display()));
        let common: CommonConfig = serde_json::from_str(&config_json).map_err(bad_config)?;
        if common.model_type.is_none() && common.architecture.is_some() {
            return Self::load_timm(&tensors, &config_json, &config_path, device, dtype);
        }
        let model_type = common.model_type.clone().unwrap_or_default();
        let model = match model_type.as_str() {
            "resnet" => {
                let c: resnet::Config = serde_json::from_str(&config_json).map_err(bad_config)?;
                Model::ResNet(ResNet::load(&tensors, &c, device, dtype)?)
            }
            "vit" => {
                let c: vit::Config = serde_json::from_str(&config_json).map_err(bad_config)?;
                Model::Vit(Vit::load(&tensors, &c, device, dtype)?)
            }
            "convnext" => {
                let c: convnext::Config =
                    serde_json::from_str(&config_json).map_err(bad_config)?;
                Model::ConvNext(ConvNext::load(&tensors, &c, device, dtype)?)
            }
            "efficientnet" => {
                let c: efficientnet::Config =
                    serde_json::from_str(&config_json).map_err(bad_config)?;
                Model::EfficientNet(EfficientNet::load(&tensors, &c, device, dtype)?)
            }
            "dinov2" => {
                let c: dinov2::Config = serde_json::from_str(&config_json).map_err(bad_config)?;
                Model::Dinov2(Dinov2::load(&tensors, &c, device, dtype)?)
            }
            "clip" => {
                let c: clip::Config = serde_json::from_str(&config_json).map_err(bad_config)?;
                Model::Clip(Clip::load(&tensors, &c, device, dtype)?)
            }
            other => {
                return Err(Error::Model(format!(
                    "{}: model_type {other:?} is not supported (resnet, vit, convnext, efficientnet, dinov2, clip, or EfficientNet-Lite weights)",
                    config_path.display()
                )))
            }
        };
        let classes = tensors
            .get("classifier.1.bias")
            .or_else(|| tensors.get("classifier.bias"))
            .map(|b| b.elem_count())
            .ok_or_else(|| Error::Model("the checkpoint has no classifier head".into()))?;
        let labels = if common.id2label.is_empty() {
            default_labels(classes)
        } else {
            common.labels(classes)?
        };
        let preprocess = match files.get_optional("preprocessor_config.json")? {
            Some(path) => {
                let json = std::fs::read_to_string(&path)
                    .map_err(|e| Error::Model(format!("{}: cannot read ({e})", path.display())))?;
                preprocess_from_json(&json)?
            }
            None => {
                return Err(Error::Model(format!(
                    "{}: missing preprocessor_config.json (the model's image processor settings)",
                    config_path.parent().unwrap_or(&config_path).display()
                )))
            }
        };
        Ok(Self {
            model,
            preprocess,
            labels,
            device: device.clone(),
        })
    }

    /// A timm checkpoint: its `config.json` names the `architecture` and holds the labels and
    /// preprocessing.
    fn load_timm(
        tensors: &HashMap<String, Tensor>,
        config_json: &str,
        config_path: &Path,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let c: mobilenetv4::Config = serde_json::from_str(config_json)
            .map_err(|e| Error::Model(format!("{}: {e}", config_path.display())))?;
        if !c.architecture.starts_with("mobilenetv4") {
            return Err(Error::Model(format!(
                "{}: timm architecture {} is not supported (mobilenetv4_conv_*)",
                config_path.display(),
                c.architecture
            )));
        }
        let model = MobileNetV4::load(tensors, &c, device, dtype)?;
        let classes = tensors
            .get("classifier.bias")
            .map(|b| b.elem_count())
            .ok_or_else(|| Error::Model("the checkpoint has no classifier head".into()))?;
        let labels = if c.label_names.len() == classes {
            c.label_names.clone()
        } else {
            default_labels(classes)
        };
        Ok(Self {
            model: Model::MobileNetV4(model),
            preprocess: c.preprocess()?,
            labels,
            device: device.clone(),
        })
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The preprocessing the model expects.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Class names by index.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Preprocessed images stacked into one batch (b, 3, h, w).
    pub fn batch(&self, images: &[DynamicImage]) -> Result<Tensor> {
        if images.is_empty() {
            return Err(Error::Invalid("no images to classify".into()));
        }
        use rayon::prelude::*;
        let xs = images
            .par_iter()
            .map(|img| self.preprocess.apply(img, &self.device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&xs, 0)?)
    }

    /// Logits (b, classes) of a preprocessed batch.
    pub fn logits(&self, batch: &Tensor) -> Result<Tensor> {
        self.model.forward(batch)
    }

    /// The top-k predictions of each image, in batches of `params.batch_size`.
    pub fn classify(
        &self,
        images: &[DynamicImage],
        params: &ClassifyParams,
    ) -> Result<Vec<Vec<Prediction>>> {
        if params.top_k == 0 || params.batch_size == 0 {
            return Err(Error::Invalid(
                "top-k and batch size must be at least 1".into(),
            ));
        }
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(params.batch_size) {
            let logits = self.logits(&self.batch(chunk)?)?;
            out.extend(self.top_k(&logits, params.top_k)?);
        }
        Ok(out)
    }

    /// Softmax over the classes of logits (b, classes), then the `k` best per row.
    pub fn top_k(&self, logits: &Tensor, k: usize) -> Result<Vec<Vec<Prediction>>> {
        let probs = candle_nn::ops::softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
        let rows = probs.to_vec2::<f32>()?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let mut idx: Vec<usize> = (0..row.len()).collect();
                idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
                idx.into_iter()
                    .take(k)
                    .map(|i| Prediction {
                        label: self
                            .labels
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| format!("LABEL_{i}")),
                        score: row[i],
                    })
                    .collect()
            })
            .collect())
    }
}

fn default_labels(classes: usize) -> Vec<String> {
    if classes == 1000 {
        imagenet_labels()
    } else {
        (0..classes).map(|i| format!("LABEL_{i}")).collect()
    }
}

/// All tensors of a safetensors file, on the CPU.
pub fn load_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
        Error::Model(format!(
            "{}: not a readable safetensors checkpoint ({e})",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_labels_are_the_1000_classes() {
        let l = imagenet_labels();
        assert_eq!(l.len(), 1000);
        assert_eq!(l[0], "tench, Tinca tinca");
        assert_eq!(l[281], "tabby, tabby cat");
        assert_eq!(l[999], "toilet tissue, toilet paper, bathroom tissue");
    }
}
