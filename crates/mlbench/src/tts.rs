//! `mlbench tts`: text (argument, file or stdin) → phonemes or characters → speech → 16-bit WAV,
//! with a Piper voice or an MMS-TTS (transformers `VitsModel`) checkpoint.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use mlbench_core::catalog::Catalog;
use mlbench_core::device::{DTypeSpec, DeviceSpec};
use mlbench_core::source::ModelFiles;
use mlbench_tts::voice::{write_wav, SynthesisParams, Voice};

use crate::cli::TtsArgs;

pub fn run(args: TtsArgs) -> Result<()> {
    let text = read_text(&args)?;
    let params = params(&args);
    let output = args.output.as_deref();
    if output.is_none() && !args.phonemes {
        bail!("say where the audio goes: -o FILE.wav (or -o - for WAV on stdout)");
    }
    if args.json && output == Some(Path::new("-")) {
        bail!("--json prints to stdout: write the audio to a file with -o FILE.wav");
    }
    let device = args.device.device.parse::<DeviceSpec>()?.select()?;
    let dtype = match &args.device.dtype {
        Some(d) => d.parse::<DTypeSpec>()?,
        None => DTypeSpec::default_for(&device),
    };
    let catalog = Catalog::builtin()?;
    // Like `piper`, a voice is needed; without --model the catalog's default voice is fetched.
    let spec = match args.model.as_deref() {
        Some(m) => m,
        None => catalog
            .default_for("tts")
            .context(
                "no voice given: pass --model with a Piper VOICE.onnx (its .onnx.json beside it), an MMS-TTS checkpoint (hub repo id such as facebook/mms-tts-eng, or a folder), or a catalog id (`mlbench models list`)",
            )?
            .id
            .as_str(),
    };
    let files = ModelFiles::from_spec(spec, &catalog, crate::progress::bars(false))?;
    let load_start = Instant::now();
    let voice = Voice::load(&files, &device, dtype.dtype())?;
    let load_s = load_start.elapsed().as_secs_f64();
    // Checked before any work, so a bad speaker fails fast.
    voice.speaker_id(params.speaker.as_deref())?;

    if args.phonemes {
        let sentences = voice.front_end(&text)?;
        if args.json {
            let lines: Vec<serde_json::Value> = sentences
                .iter()
                .map(|s| serde_json::json!({ "phonemes": s.text, "ids": s.ids, "skipped": s.skipped }))
                .collect();
            println!("{}", serde_json::to_string_pretty(&lines)?);
        } else {
            for s in &sentences {
                println!("{}", s.text);
            }
        }
        return Ok(());
    }

    let start = Instant::now();
    let speech = voice.synthesize(&text, &params)?;
    let elapsed = start.elapsed().as_secs_f64();
    for w in &speech.warnings {
        eprintln!("warning: {w}");
    }
    let mut wav = std::io::Cursor::new(Vec::new());
    write_wav(&mut wav, &speech.samples, speech.sample_rate).context("encoding the WAV")?;
    let path = output.unwrap_or(Path::new("-"));
    crate::write::bytes(Some(path), wav.get_ref())?;
    let rtf = elapsed / speech.duration().max(1e-6);
    if args.json {
        let summary = serde_json::json!({
            "output": path.display().to_string(),
            "sample_rate": speech.sample_rate,
            "samples": speech.samples.len(),
            "duration_s": speech.duration(),
            "synthesis_s": elapsed,
            "real_time_factor": rtf,
            "stages": speech
                .timings
                .stages()
                .iter()
                .map(|s| serde_json::json!({ "stage": s.stage, "total_s": s.total_s, "calls": s.calls }))
                .collect::<Vec<_>>(),
            "load_s": load_s,
            "sentences": speech.sentences,
            "warnings": speech.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    if args.timings {
        eprintln!(
            "{:.2} s of audio in {:.2} s (real-time factor {:.3}); model load {:.2} s",
            speech.duration(),
            elapsed,
            rtf,
            load_s
        );
        for s in speech.timings.stages() {
            eprintln!(
                "  {:<16} {:>8.3} s  {:>5} calls",
                s.stage, s.total_s, s.calls
            );
        }
    }
    Ok(())
}

fn params(args: &TtsArgs) -> SynthesisParams {
    let d = SynthesisParams::default();
    SynthesisParams {
        speaker: args.speaker.clone(),
        length_scale: args.length_scale,
        noise_scale: args.noise_scale,
        noise_w: args.noise_w,
        sentence_silence: args.sentence_silence.unwrap_or(d.sentence_silence),
        seed: args.seed,
        ..d
    }
}

fn read_text(args: &TtsArgs) -> Result<String> {
    let text = match (&args.text, &args.file) {
        (Some(_), Some(_)) => bail!("give the text as an argument or with --file, not both"),
        (None, None) => bail!("no text: give it as an argument, or with --file FILE (- for stdin)"),
        (Some(t), None) => t.clone(),
        (None, Some(f)) if f == Path::new("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading text from stdin")?;
            s
        }
        (None, Some(f)) => std::fs::read_to_string(f)
            .with_context(|| format!("{}: cannot read text", f.display()))?,
    };
    if text.trim().is_empty() {
        bail!("the text is empty");
    }
    Ok(text)
}
