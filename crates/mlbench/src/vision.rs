//! `mlbench classify-image`: expand directories, load the model, classify in batches, print.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::source::ModelFiles;
use mlbench_vision::image::load_images;
use mlbench_vision::{ClassifyParams, ImageClassifier, Prediction};
use serde::Serialize;

use crate::cli::ClassifyImageArgs;

/// Extensions picked from a directory (explicitly named files are read whatever their name).
const IMAGE_EXTENSIONS: [&str; 9] = [
    "png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "jfif",
];

#[derive(Serialize)]
struct ImageResult<'a> {
    image: &'a Path,
    predictions: Vec<Prediction>,
}

pub fn run(args: ClassifyImageArgs) -> Result<()> {
    let params = ClassifyParams {
        top_k: args.top_k,
        batch_size: args.batch_size,
    };
    if params.top_k == 0 || params.batch_size == 0 {
        bail!("--top-k and --batch-size must be at least 1");
    }
    let paths = expand(&args.images)?;
    let device = args.device.device.parse::<DeviceSpec>()?.select()?;
    let dtype = match &args.device.dtype {
        Some(d) => d.parse::<DTypeSpec>()?,
        None => DTypeSpec::default_for(&device),
    };
    let catalog = Catalog::builtin()?;
    let spec = match &args.model {
        Some(m) => m.clone(),
        None => catalog
            .default_for("classify-image")
            .context(
                "no default image classifier yet: pass --model DIR (a folder with \
                 model.safetensors, e.g. the efficientnet-lite0 one that \
                 scripts/fetch-test-weights.sh makes) or a .safetensors file",
            )?
            .id
            .clone(),
    };
    let progress = crate::progress::bars(false);
    let files = ModelFiles::from_spec(&spec, &catalog, progress)?;
    let classifier = ImageClassifier::load(&files, &device, dtype.dtype())?;
    let mut results = Vec::with_capacity(paths.len());
    for chunk in paths.chunks(params.batch_size) {
        let images = load_images(chunk)?;
        let preds = classifier.classify(&images, &params)?;
        for (path, predictions) in chunk.iter().zip(preds) {
            if args.json {
                results.push(ImageResult {
                    image: path,
                    predictions,
                });
            } else {
                let mut text = format!("{}\n", path.display());
                for p in &predictions {
                    text.push_str(&format!("  {:.4}  {}\n", p.score, p.label));
                }
                crate::write::output(None, &text)?;
            }
        }
    }
    if args.json {
        crate::write::output(None, &(serde_json::to_string_pretty(&results)? + "\n"))?;
    }
    Ok(())
}

/// Files as given; directories replaced by their image files, sorted by name.
fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("{}: cannot list the directory", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension().is_some_and(|e| {
                            IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
                        })
                })
                .collect();
            if found.is_empty() {
                bail!("{}: the directory holds no images", input.display());
            }
            found.sort();
            out.extend(found);
        } else if input.is_file() {
            out.push(input.clone());
        } else {
            bail!("{}: no such file or directory", input.display());
        }
    }
    Ok(out)
}
