//! Transcribe a file with the mlbench-stt library, without the CLI:
//!
//! ```bash
//! cargo run --release -p mlbench-stt --example transcribe -- MODEL AUDIO
//! ```
//! MODEL is a local model folder or file, a catalog id or a hub repo id.

use mlbench_core::catalog::Catalog;
use mlbench_core::progress::Progress;
use mlbench_core::source::ModelFiles;
use mlbench_stt::transcribe::TranscribeParams;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(model), Some(audio)) = (args.next(), args.next()) else {
        return Err("usage: transcribe MODEL AUDIO".into());
    };
    let files = ModelFiles::from_spec(&model, &Catalog::builtin()?, Progress::none())?;
    let whisper =
        mlbench_stt::load::load(&files, candle_core::DType::F32, &candle_core::Device::Cpu)?;
    let samples = mlbench_stt::audio::load_audio(audio.as_ref())?;
    let transcript =
        whisper.transcribe(&samples, &TranscribeParams::default(), &Progress::none())?;
    for s in &transcript.segments {
        println!("[{:6.2} -> {:6.2}] {}", s.start, s.end, s.text.trim());
    }
    Ok(())
}
