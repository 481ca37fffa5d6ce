//! Transcript writers: plain text, SubRip (srt), WebVTT and JSON, as openai/whisper writes them.

use std::str::FromStr;

use serde::Serialize;

use crate::transcribe::Transcript;
use crate::SttError;

/// Output formats of `mlbench stt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The text, one segment per line.
    #[default]
    Txt,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
    /// JSON with segments and decoding statistics.
    Json,
}

impl FromStr for OutputFormat {
    type Err = SttError;

    fn from_str(s: &str) -> Result<Self, SttError> {
        match s.to_ascii_lowercase().as_str() {
            "txt" | "text" => Ok(Self::Txt),
            "srt" => Ok(Self::Srt),
            "vtt" | "webvtt" => Ok(Self::Vtt),
            "json" => Ok(Self::Json),
            _ => Err(SttError::InvalidOption(format!(
                "unknown output format '{s}' (expected txt, srt, vtt or json)"
            ))),
        }
    }
}

/// Renders a transcript in `format`.
pub fn render(t: &Transcript, format: OutputFormat) -> String {
    match format {
        OutputFormat::Txt => to_txt(t),
        OutputFormat::Srt => to_srt(t),
        OutputFormat::Vtt => to_vtt(t),
        OutputFormat::Json => to_json(t),
    }
}

/// One line per segment.
pub fn to_txt(t: &Transcript) -> String {
    t.segments
        .iter()
        .map(|s| format!("{}\n", s.text.trim()))
        .collect()
}

/// SubRip: numbered cues with `HH:MM:SS,mmm` times.
pub fn to_srt(t: &Transcript) -> String {
    let mut out = String::new();
    for (i, s) in t.segments.iter().enumerate() {
        out += &format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(s.start, ','),
            timestamp(s.end, ','),
            s.text.trim()
        );
    }
    out
}

/// WebVTT: a header, then cues with `HH:MM:SS.mmm` times.
pub fn to_vtt(t: &Transcript) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for s in &t.segments {
        out += &format!(
            "{} --> {}\n{}\n\n",
            timestamp(s.start, '.'),
            timestamp(s.end, '.'),
            s.text.trim()
        );
    }
    out
}

#[derive(Serialize)]
struct JsonTranscript<'a> {
    text: String,
    language: &'a str,
    language_probability: Option<f32>,
    duration: f32,
    segments: &'a [crate::transcribe::Segment],
}

/// JSON: text, language, duration and every segment with its statistics.
pub fn to_json(t: &Transcript) -> String {
    let doc = JsonTranscript {
        text: t.text(),
        language: &t.language,
        language_probability: t.language_probability,
        duration: t.duration,
        segments: &t.segments,
    };
    serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n"
}

fn timestamp(seconds: f32, decimal: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    format!("{h:02}:{m:02}:{s:02}{decimal}{ms:03}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        assert_eq!(timestamp(0.0, ','), "00:00:00,000");
        assert_eq!(timestamp(3723.456, '.'), "01:02:03.456");
    }
}
