//! transformers checkpoints: `config.json` (architecture, `id2label`) and
//! `preprocessor_config.json` (the image processor's resize, crop and normalisation).

use std::collections::HashMap;

use serde::Deserialize;

use crate::image::{Filter, Preprocess, Resize};
use crate::{Error, Result};

/// The architecture-independent part of a `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct CommonConfig {
    /// `resnet`, `vit`, `convnext`, …
    #[serde(default)]
    pub model_type: Option<String>,
    /// timm checkpoints name their model here instead (`mobilenetv4_conv_small`, …).
    #[serde(default)]
    pub architecture: Option<String>,
    /// Class names by index (keys are decimal strings).
    #[serde(default)]
    pub id2label: HashMap<String, String>,
}

impl CommonConfig {
    /// Labels in index order; gaps become `LABEL_i`.
    pub fn labels(&self, classes: usize) -> Result<Vec<String>> {
        let mut labels: Vec<String> = (0..classes).map(|i| format!("LABEL_{i}")).collect();
        for (k, v) in &self.id2label {
            let i: usize = k.parse().map_err(|_| {
                Error::Model(format!("config.json: id2label key {k:?} is not a number"))
            })?;
            if i < classes {
                labels[i] = v.clone();
            }
        }
        Ok(labels)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Size {
    height: Option<u32>,
    width: Option<u32>,
    shortest_edge: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
struct ProcessorConfig {
    #[serde(default)]
    image_processor_type: Option<String>,
    #[serde(default = "yes")]
    do_resize: bool,
    #[serde(default)]
    size: Option<Size>,
    #[serde(default)]
    resample: Option<u32>,
    #[serde(default)]
    do_center_crop: Option<bool>,
    #[serde(default)]
    crop_size: Option<Size>,
    #[serde(default)]
    crop_pct: Option<f64>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "rescale_factor")]
    rescale_factor: f32,
    #[serde(default = "yes")]
    do_normalize: bool,
    #[serde(default)]
    image_mean: Option<[f32; 3]>,
    #[serde(default)]
    image_std: Option<[f32; 3]>,
    /// EfficientNetImageProcessor: `x · rescale_factor − 1` instead of `x · rescale_factor`.
    #[serde(default)]
    rescale_offset: bool,
    /// EfficientNetImageProcessor: divide by `image_std` a second time (default true there).
    #[serde(default)]
    include_top: Option<bool>,
}

fn yes() -> bool {
    true
}
fn rescale_factor() -> f32 {
    1.0 / 255.0
}

/// ImageNet mean and standard deviation (transformers' `IMAGENET_DEFAULT_MEAN/STD`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// See [`IMAGENET_MEAN`].
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The preprocessing a `preprocessor_config.json` describes, as transformers' PIL image
/// processors apply it (`ConvNextImageProcessor` with `crop_pct`, `ViTImageProcessor`, and the
/// generic resize / centre-crop / rescale / normalise sequence).
pub fn preprocess_from_json(json: &str) -> Result<Preprocess> {
    let c: ProcessorConfig = serde_json::from_str(json)
        .map_err(|e| Error::Model(format!("preprocessor_config.json: {e}")))?;
    let filter = match c.resample.unwrap_or(2) {
        0 => Filter::Nearest,
        1 => Filter::Lanczos,
        2 => Filter::Bilinear,
        3 => Filter::Bicubic,
        other => {
            return Err(Error::Model(format!(
                "preprocessor_config.json: resample filter {other} is not supported"
            )))
        }
    };
    let size = c.size.clone().unwrap_or_default();
    let convnext = c
        .image_processor_type
        .as_deref()
        .is_some_and(|t| t.starts_with("ConvNextImageProcessor"));
    let (resize, crop) = if convnext {
        // transformers' ConvNextImageProcessor.resize: below 384, resize the short side to
        // shortest_edge / crop_pct and centre-crop shortest_edge; from 384, warp to a square.
        let edge = size.shortest_edge.unwrap_or(384);
        let crop_pct = c.crop_pct.unwrap_or(224.0 / 256.0);
        if edge < 384 {
            (
                Resize::ShortSideFloor((edge as f64 / crop_pct) as u32),
                Some((edge, edge)),
            )
        } else {
            (Resize::Exact(edge, edge), None)
        }
    } else {
        let resize = match (size.height, size.width, size.shortest_edge) {
            (Some(h), Some(w), _) => Resize::Exact(w, h),
            (_, _, Some(e)) => Resize::ShortSideFloor(e),
            _ => Resize::Exact(224, 224),
        };
        let crop = match (c.do_center_crop.unwrap_or(false), &c.crop_size) {
            (
                true,
                Some(Size {
                    height: Some(h),
                    width: Some(w),
                    ..
                }),
            ) => Some((*w, *h)),
            (true, _) => Some((224, 224)),
            _ => None,
        };
        (resize, crop)
    };
    if !c.do_resize {
        return Err(Error::Model(
            "preprocessor_config.json: do_resize false is not supported (the model needs a fixed size)".into(),
        ));
    }
    let image_std = c.image_std.unwrap_or(IMAGENET_STD);
    let (mut mean, mut std) = if c.do_normalize {
        (c.image_mean.unwrap_or(IMAGENET_MEAN), image_std)
    } else {
        ([0.0; 3], [1.0; 3])
    };
    if c.do_rescale && c.rescale_offset {
        mean.iter_mut().for_each(|m| *m += 1.0);
    }
    let efficientnet = c
        .image_processor_type
        .as_deref()
        .is_some_and(|t| t.starts_with("EfficientNetImageProcessor"));
    if c.include_top.unwrap_or(efficientnet) {
        // transformers' EfficientNetImageProcessor normalises with mean 0 and image_std once more.
        for (s, d) in std.iter_mut().zip(image_std) {
            *s *= d;
        }
    }
    Ok(Preprocess {
        resize,
        filter,
        crop,
        round_crop: false,
        rescale: if c.do_rescale { c.rescale_factor } else { 1.0 },
        mean,
        std,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convnext_processor_with_crop_pct() {
        let p = preprocess_from_json(
            r#"{"image_processor_type":"ConvNextImageProcessor","size":{"shortest_edge":224},
                "crop_pct":0.875,"resample":3,"image_mean":[0.485,0.456,0.406],
                "image_std":[0.229,0.224,0.225]}"#,
        )
        .unwrap();
        assert_eq!(p.resize, Resize::ShortSideFloor(256));
        assert_eq!(p.crop, Some((224, 224)));
        assert_eq!(p.filter, Filter::Bicubic);
    }

    #[test]
    fn efficientnet_processor_divides_by_std_twice() {
        let p = preprocess_from_json(
            r#"{"image_processor_type":"EfficientNetImageProcessor","size":{"height":224,"width":224},
                "image_mean":[0.485,0.456,0.406],"image_std":[0.229,0.224,0.225],"resample":0,
                "include_top":true,"rescale_offset":false,"do_center_crop":false}"#,
        )
        .unwrap();
        assert_eq!(p.resize, Resize::Exact(224, 224));
        assert_eq!(p.filter, Filter::Nearest);
        assert!((p.std[0] - 0.229 * 0.229).abs() < 1e-7);
        assert_eq!(p.mean, IMAGENET_MEAN);
    }

    #[test]
    fn vit_processor_resizes_to_a_square() {
        let p = preprocess_from_json(
            r#"{"image_processor_type":"ViTImageProcessor","size":{"height":384,"width":384},
                "image_mean":[0.5,0.5,0.5],"image_std":[0.5,0.5,0.5],"resample":2}"#,
        )
        .unwrap();
        assert_eq!(p.resize, Resize::Exact(384, 384));
        assert_eq!(p.crop, None);
        assert_eq!(p.mean, [0.5; 3]);
        assert!(preprocess_from_json("{not json").is_err());
    }
}
