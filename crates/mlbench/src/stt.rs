//! `mlbench stt`: load audio and model, transcribe, write the chosen format.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::source::ModelFiles;
use mlbench_stt::output::{render, OutputFormat};
use mlbench_stt::transcribe::{Task, TranscribeParams};

use crate::cli::SttArgs;

pub fn run(args: SttArgs) -> Result<()> {
    let params = params(&args)?;
    let format: OutputFormat = if args.json {
        OutputFormat::Json
    } else {
        args.output_format.parse()?
    };
    if args.audio.len() > 1 && args.output.is_some() {
        bail!("-o/--output takes one input file; got {}", args.audio.len());
    }
    let device = args.device.device.parse::<DeviceSpec>()?.select()?;
    let dtype = match &args.device.dtype {
        Some(d) => d.parse::<DTypeSpec>()?,
        None => DTypeSpec::default_for(&device),
    };
    let catalog = Catalog::builtin()?;
    let spec = match &args.model {
        Some(m) => m.clone(),
        None => catalog
            .default_for("stt")
            .context("the catalog has no default STT model")?
            .id
            .clone(),
    };
    // Read the audio first: a bad input file should fail before a model download.
    let mut inputs = Vec::new();
    for path in &args.audio {
        inputs.push((path, mlbench_stt::audio::load_audio(path)?));
    }
    let progress = crate::progress::bars(false);
    let load_start = Instant::now();
    let files = ModelFiles::from_spec(&spec, &catalog, progress.clone())?;
    let transcriber = mlbench_stt::load::load(&files, dtype.dtype(), &device)?;
    let load_s = load_start.elapsed().as_secs_f64();
    for (path, samples) in inputs {
        let start = Instant::now();
        let transcript = transcriber.transcribe(&samples, &params, &progress)?;
        let elapsed = start.elapsed().as_secs_f64();
        crate::write::output(args.output.as_deref(), &render(&transcript, format))?;
        if args.timings {
            eprintln!(
                "{}: {:.2} s of audio in {:.2} s (real-time factor {:.3}); model load {:.2} s",
                path.display(),
                transcript.duration,
                elapsed,
                elapsed / f64::from(transcript.duration.max(1e-3)),
                load_s
            );
            for s in transcript.timings.stages() {
                eprintln!(
                    "  {:<16} {:>8.3} s  {:>5} calls",
                    s.stage, s.total_s, s.calls
                );
            }
        }
    }
    Ok(())
}

fn params(args: &SttArgs) -> Result<TranscribeParams> {
    let mut temperatures = vec![args.temperature];
    if args.temperature_increment_on_fallback > 0.0 {
        let mut t = args.temperature + args.temperature_increment_on_fallback;
        while t <= 1.0 + 1e-6 {
            temperatures.push(t);
            t += args.temperature_increment_on_fallback;
        }
    }
    if args.beam_size == 0 || args.best_of == 0 {
        bail!("--beam-size and --best-of must be at least 1");
    }
    Ok(TranscribeParams {
        task: args.task.parse::<Task>()?,
        language: args.language.clone(),
        temperatures,
        beam_size: args.beam_size,
        best_of: args.best_of,
        patience: args.patience,
        compression_ratio_threshold: Some(args.compression_ratio_threshold),
        logprob_threshold: Some(args.logprob_threshold),
        no_speech_threshold: Some(args.no_speech_threshold),
        condition_on_previous_text: !args.no_condition_on_previous_text,
        initial_prompt: args.initial_prompt.clone(),
        without_timestamps: args.without_timestamps,
        seed: args.seed,
        silence_threshold_db: Some(args.silence_threshold_db),
        ..TranscribeParams::default()
    })
}
