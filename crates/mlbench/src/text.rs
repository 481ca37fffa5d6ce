//! `mlbench classify-text` and `mlbench embed`: read texts (arguments, a file or stdin, one per
//! line), load the model, run the library's pipeline, print; truncation warnings go to stderr.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::source::ModelFiles;
use mlbench_text::tokenize::Truncation;
use mlbench_text::{
    zero_shot, ClassifyParams, EmbedParams, ScoreFunction, SentenceEmbedder, TextClassifier,
    ZeroShotParams,
};

use crate::cli::{ClassifyTextArgs, DeviceArgs, EmbedArgs};

pub fn classify(args: ClassifyTextArgs) -> Result<()> {
    let texts = read_texts(&args.texts, args.file.as_deref())?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let catalog = Catalog::builtin()?;
    let (device, dtype) = device(&args.device)?;
    if let Some(labels) = &args.labels {
        let labels: Vec<String> = labels.split(',').map(|l| l.trim().to_string()).collect();
        if args.function.is_some() {
            bail!("--function applies to classifier checkpoints, not to zero-shot --labels");
        }
        let files = files(args.model.as_deref(), "embed", &catalog)?;
        let embedder = SentenceEmbedder::load(&files, &device, dtype)?;
        let params = ZeroShotParams {
            hypothesis_template: args.hypothesis_template.clone(),
            batch_size: args.batch_size,
            ..ZeroShotParams::default()
        };
        let (results, truncated) = zero_shot::classify(&embedder, &texts, &labels, &params)?;
        warn(&truncated);
        let k = match args.top_k {
            0 => labels.len(),
            k => k,
        };
        if args.json {
            return crate::write::output(None, &(serde_json::to_string_pretty(&results)? + "\n"));
        }
        let mut out = String::new();
        for r in &results {
            out.push_str(&format!("{}\n", shorten(&r.sequence)));
            for ((l, s), c) in r.labels.iter().zip(&r.scores).zip(&r.similarities).take(k) {
                out.push_str(&format!("  {s:.4}  {l}  (cosine {c:.4})\n"));
            }
        }
        return crate::write::output(None, &out);
    }
    let files = files(args.model.as_deref(), "classify-text", &catalog)?;
    let classifier = TextClassifier::load(&files, &device, dtype)?;
    let params = ClassifyParams {
        top_k: args.top_k,
        batch_size: args.batch_size,
        function: args
            .function
            .as_deref()
            .map(str::parse::<ScoreFunction>)
            .transpose()?,
    };
    let result = classifier.classify(&texts, &params)?;
    warn(&result.truncated);
    if args.json {
        let json = serde_json::to_string_pretty(&result.predictions)?;
        return crate::write::output(None, &(json + "\n"));
    }
    let mut out = String::new();
    for (text, preds) in texts.iter().zip(&result.predictions) {
        out.push_str(&format!("{}\n", shorten(text)));
        for p in preds {
            out.push_str(&format!("  {:.4}  {}\n", p.score, p.label));
        }
    }
    crate::write::output(None, &out)
}

pub fn embed(args: EmbedArgs) -> Result<()> {
    let texts = read_texts(&args.texts, args.file.as_deref())?;
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let npy = args
        .output
        .as_deref()
        .is_some_and(|p| p != Path::new("-") && !args.json);
    if let Some(p) = args.output.as_deref().filter(|_| npy) {
        if p.extension().is_none_or(|e| e != "npy") {
            bail!(
                "{}: -o writes a NumPy .npy file (name it FILE.npy), or JSON with --json",
                p.display()
            );
        }
    }
    let catalog = Catalog::builtin()?;
    let (device, dtype) = device(&args.device)?;
    let files = files(args.model.as_deref(), "embed", &catalog)?;
    let embedder = SentenceEmbedder::load(&files, &device, dtype)?;
    let params = EmbedParams {
        batch_size: args.batch_size,
        normalize: args.no_normalize.then_some(false),
    };
    let out = embedder.embed(&texts, &params)?;
    warn(&out.truncated);
    if npy {
        let path = args.output.as_deref().unwrap_or(Path::new("-"));
        return crate::write::bytes(Some(path), &mlbench_text::embed::to_npy(&out.vectors)?);
    }
    let text = if args.json {
        let rows: Vec<serde_json::Value> = texts
            .iter()
            .zip(&out.vectors)
            .map(|(t, v)| serde_json::json!({ "text": t, "embedding": v }))
            .collect();
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        out.vectors
            .iter()
            .map(|v| {
                let nums: Vec<String> = v.iter().map(|x| format!("{x:.7}")).collect();
                nums.join(" ") + "\n"
            })
            .collect()
    };
    crate::write::output(args.output.as_deref(), &text)
}

fn device(args: &DeviceArgs) -> Result<(Device, candle_core::DType)> {
    let device = args.device.parse::<DeviceSpec>()?.select()?;
    let dtype = match &args.dtype {
        Some(d) => d.parse::<DTypeSpec>()?,
        None => DTypeSpec::default_for(&device),
    };
    Ok((device, dtype.dtype()))
}

fn files(model: Option<&str>, task: &str, catalog: &Catalog) -> Result<ModelFiles> {
    let spec = match model {
        Some(m) => m.to_string(),
        None => catalog
            .default_for(task)
            .with_context(|| format!("no default model for {task}: pass --model DIR"))?
            .id
            .clone(),
    };
    Ok(ModelFiles::from_spec(
        &spec,
        catalog,
        crate::progress::bars(false),
    )?)
}

/// A text as a one-line heading: its first 100 characters.
fn shorten(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

fn warn(truncated: &[Truncation]) {
    for t in truncated {
        eprintln!("warning: {t}");
    }
}

/// The texts of the arguments, or the lines of `file` (`-`: stdin); blank lines are skipped.
fn read_texts(args: &[String], file: Option<&Path>) -> Result<Vec<String>> {
    let texts = match (args.is_empty(), file) {
        (false, Some(_)) => bail!("give the texts as arguments or with --file, not both"),
        (true, None) => bail!("no text: give texts as arguments, or --file FILE (- for stdin)"),
        (false, None) => args.to_vec(),
        (true, Some(f)) => {
            let (bytes, name) = if f == Path::new("-") {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .context("reading texts from stdin")?;
                (b, "stdin".to_string())
            } else {
                let b = std::fs::read(f)
                    .with_context(|| format!("{}: cannot read texts", f.display()))?;
                (b, f.display().to_string())
            };
            let text = String::from_utf8(bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{name}: not UTF-8 text (invalid byte sequence at byte {})",
                    e.utf8_error().valid_up_to()
                )
            })?;
            let lines: Vec<String> = text
                .lines()
                .map(|l| l.trim_end_matches('\r'))
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect();
            if lines.is_empty() {
                bail!("{name}: no text (only blank lines)");
            }
            lines
        }
    };
    Ok(texts)
}
