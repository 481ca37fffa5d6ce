//! Shared test helpers: where test data lives, WAV I/O and word error rate.

use std::path::{Path, PathBuf};

// Test-data locations are shared with mlbench-stt's own integration tests.
#[path = "../../crates/mlbench-stt/tests/support/mod.rs"]
mod support;

pub use support::{real_model, LIBRIVOX};

/// The LibriVox clips of Debian's pocketsphinx-testdata with their reference transcripts.
pub fn librivox() -> Vec<(PathBuf, String)> {
    let dir = Path::new(LIBRIVOX);
    let text = std::fs::read_to_string(dir.join("transcription"))
        .unwrap_or_else(|_| panic!("{LIBRIVOX} missing: install Debian's pocketsphinx-testdata"));
    text.lines()
        .filter_map(|line| {
            let (words, id) = line.rsplit_once(" (")?;
            let id = id.trim_end_matches(')');
            let words = words.replace("<s>", "").replace("</s>", "");
            Some((dir.join(format!("{id}.wav")), words.trim().to_string()))
        })
        .collect()
}

/// Samples in [-1, 1] (first channel) and the sample rate of a 16-bit WAV.
pub fn load_wav(path: &Path) -> (Vec<f32>, u32) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let ch = spec.channels as usize;
    let s: Vec<f32> = r
        .samples::<i16>()
        .step_by(ch)
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect();
    (s, spec.sample_rate)
}

/// Writes interleaved samples as an integer PCM WAV.
pub fn write_wav(path: &Path, interleaved: &[f32], rate: u32, channels: u16, bits: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let scale = (1i64 << (bits - 1)) as f32 - 1.0;
    for &s in interleaved {
        w.write_sample((s.clamp(-1.0, 1.0) * scale) as i32).unwrap();
    }
    w.finalize().unwrap();
}

/// Lower-case words without punctuation; hyphens split words; common abbreviations spelled
/// out as in Whisper's English normaliser.
pub fn normalize(text: &str) -> Vec<String> {
    let cleaned: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c.is_whitespace() {
                c
            } else {
                ' '
            }
        })
        .collect();
    cleaned
        .split_whitespace()
        .map(|w| match w {
            "mr" => "mister".to_string(),
            "mrs" => "missus".to_string(),
            "dr" => "doctor".to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// Corpus word error rate: total word edits over total reference words.
pub fn wer(references: &[String], hypotheses: &[String]) -> f64 {
    let (mut edits, mut words) = (0usize, 0usize);
    for (r, h) in references.iter().zip(hypotheses) {
        let (r, h) = (normalize(r), normalize(h));
        edits += edit_distance(&r, &h);
        words += r.len();
    }
    edits as f64 / words.max(1) as f64
}

fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[test]
fn wer_counts_edits() {
    let r = vec!["he was not an ill disposed young man".to_string()];
    assert_eq!(
        wer(&r, &["He was not an ill-disposed young man.".to_string()]),
        0.0
    );
    assert!((wer(&r, &["he was an old-sposed young man".to_string()]) - 3.0 / 8.0).abs() < 1e-9);
    assert_eq!(wer(&["mister john".into()], &["Mr. John".into()]), 0.0);
}
