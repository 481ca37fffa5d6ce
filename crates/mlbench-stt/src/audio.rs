//! Audio loading: any supported file → mono `f32` PCM at [`SAMPLE_RATE`] (16 kHz).
//!
//! Whisper consumes 16 kHz mono audio scaled to `[-1, 1]`. [`load_audio`] turns a file into
//! exactly that, in three stages, each also public:
//!
//! 1. **Decode** in pure Rust, without ffmpeg or any system library, so the binary works
//!    anywhere:
//!    - WAV (recognised by its `RIFF`/`WAVE` header) goes through `hound`: 8/16/24/32-bit
//!      integer PCM and 32-bit float, any rate and channel count. It is the most common input,
//!      and hound's strict header validation tells a truncated file from a foreign one. hound
//!      parses and validates the header; the sample data is then read in large blocks and
//!      converted and mixed in one pass, which is several times faster than hound's
//!      per-sample iterator (10 minutes of 48 kHz stereo in well under a second, resampling
//!      included). WAV files hound rejects (64-bit float, A-law/µ-law, 24-bit in a
//!      `WAVEFORMATEX` header, odd-length chunks before the data...) fall back to symphonia.
//!    - Everything else goes through symphonia, with the container chosen by probing the
//!      content (the extension is only a hint): FLAC, MP3 (encoder delay and padding trimmed
//!      from the LAME/Xing header), Ogg Vorbis, and AAC in MP4/M4A or ADTS. These are the
//!      formats whose symphonia features the workspace enables; the list a user sees is
//!      [`SUPPORTED_FORMATS`]. symphonia 0.5 ignores MP4 edit lists, so AAC keeps its
//!      encoder priming (1024 samples, 64 ms at 16 kHz, for ffmpeg-encoded files) at the start.
//! 2. **Mix to mono** by averaging the channels ([`mix_to_mono`]), as ffmpeg's `-ac 1` does
//!    for stereo in openai-whisper's loader.
//! 3. **Resample** to 16 kHz with rubato's band-limited sinc resampler ([`resample`]),
//!    delay-compensated so output sample `k` lies at input time `k · from / to`, and with
//!    exactly `round(len · to / from)` samples.
//!
//! Every failure is a one-line [`SttError::Audio`] naming the file; nothing panics on bad
//! input.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use rayon::prelude::*;
use rubato::{
    calculate_cutoff, Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType,
    WindowFunction,
};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use crate::error::{Result, SttError};

/// The sample rate Whisper models expect, in Hz.
pub const SAMPLE_RATE: u32 = 16_000;

/// The audio formats [`load_audio`] decodes, as listed in error messages.
pub const SUPPORTED_FORMATS: &str = "WAV (8/16/24/32-bit integer PCM, 32/64-bit float, \
                                     A-law/µ-law), FLAC, MP3, Ogg Vorbis, AAC (M4A/MP4, ADTS)";

/// Taps of the windowed-sinc anti-aliasing filter of [`resample`].
const SINC_LEN: usize = 256;
/// Largest reduced output/input rate denominator for which [`resample`] precomputes one sinc per
/// output phase (exact polyphase resampling); above it, cubic interpolation between 256 phases.
const MAX_EXACT_PHASES: usize = 1024;
/// Sub-sample phases of the sinc table when the exact polyphase table would be too large.
const INTERPOLATED_PHASES: usize = 256;
/// Input frames handed to rubato per call.
const RESAMPLE_CHUNK: usize = 8192;
/// Output samples resampled by one parallel task, at least.
const MIN_SEGMENT: usize = 1 << 17;

/// Decode any supported file to mono f32 at 16 kHz.
///
/// The format is recognised by content: WAV through hound (with a symphonia fallback for WAV
/// variants hound does not read), everything else through symphonia (see
/// [`SUPPORTED_FORMATS`]). Channels are averaged ([`mix_to_mono`]) and the result resampled
/// to [`SAMPLE_RATE`] ([`resample`]). Errors are [`SttError::Audio`] with a one-line message:
/// a missing or empty file, an unrecognised format, truncated or corrupt data, or a file
/// without any sample.
pub fn load_audio(path: &Path) -> Result<Vec<f32>> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SttError::audio(path, "no such file"));
        }
        Err(e) => return Err(SttError::audio(path, format!("cannot read file: {e}"))),
    };
    if meta.is_dir() {
        return Err(SttError::audio(path, "is a directory, not an audio file"));
    }
    if meta.len() == 0 {
        return Err(SttError::audio(path, "file is empty"));
    }

    let mut head = [0u8; 12];
    let head_len = read_head(path, &mut head)?;
    let head = &head[..head_len];
    let is_riff_wave = head.len() == 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE";

    let decoded = if is_riff_wave {
        match decode_wav_hound(path)? {
            Ok(decoded) => decoded,
            // hound does not read this WAV variant: let symphonia try it.
            Err(hound_err) => decode_symphonia(path).map_err(|e| match (e, hound_err) {
                (SttError::Audio { .. }, WavFallback::Truncated(msg)) => SttError::audio(path, msg),
                (SttError::Audio { .. }, WavFallback::Unsupported(why)) => SttError::audio(
                    path,
                    format!(
                        "unsupported or corrupt WAV file ({why}); supported: {SUPPORTED_FORMATS}"
                    ),
                ),
                (other, _) => other,
            })?,
        }
    } else {
        decode_symphonia(path)?
    };

    if decoded.samples.is_empty() {
        return Err(SttError::audio(path, "contains no audio samples"));
    }
    if decoded.sample_rate == 0 {
        return Err(SttError::audio(path, "invalid sample rate 0 Hz"));
    }
    resample_impl(&decoded.samples, decoded.sample_rate, SAMPLE_RATE)
        .map_err(|e| SttError::audio(path, e))
}

/// Mix interleaved multi-channel to mono (average).
///
/// `interleaved` holds frames of `channels` samples each; a trailing partial frame is dropped.
/// With `channels` 0 or 1 the input is returned as is.
pub fn mix_to_mono(interleaved: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return interleaved.to_vec();
    }
    let scale = 1.0 / channels as f32;
    if channels == 2 {
        return interleaved
            .chunks_exact(2)
            .map(|f| (f[0] + f[1]) * 0.5)
            .collect();
    }
    interleaved
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() * scale)
        .collect()
}

/// Resample mono audio with a proper band-limited resampler (rubato sinc), exact output length
/// round(len*to/from); identity when rates are equal.
///
/// The anti-aliasing filter is a 256-tap Blackman-Harris² windowed sinc whose cutoff sits just
/// below the lower Nyquist frequency. For common rates (any pair whose reduced ratio has an
/// output denominator ≤ 1024, e.g. 8/11.025/22.05/32/44.1/48/96 kHz → 16 kHz) one filter per
/// output phase is precomputed, so each output sample is an exact polyphase dot product; other
/// pairs interpolate between 256 filter phases. The resampler's group delay is compensated:
/// output sample `k` lies at input time `k · from_rate / to_rate`. Long inputs are split into
/// segments (with filter context on both sides) resampled in parallel; the result does not
/// depend on the split. Samples outside the input count as silence.
///
/// Errors with [`SttError::InvalidOption`] for a zero rate.
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>> {
    resample_impl(samples, from_rate, to_rate).map_err(SttError::InvalidOption)
}

/// Samples decoded from a file, before resampling.
struct Decoded {
    /// Mono samples.
    samples: Vec<f32>,
    /// Their rate in Hz.
    sample_rate: u32,
}

/// Reads up to `buf.len()` leading bytes of `path`; returns how many were read.
fn read_head(path: &Path, buf: &mut [u8]) -> Result<usize> {
    let mut file =
        File::open(path).map_err(|e| SttError::audio(path, format!("cannot open file: {e}")))?;
    read_full(&mut file, buf).map_err(|e| SttError::audio(path, format!("cannot read file: {e}")))
}

/// Decodes a RIFF/WAVE file: hound validates the header and reads the format, then the PCM
/// data is read in large blocks and converted and mixed to mono in one pass (hound's
/// per-sample iterator is several times slower on long files).
///
/// `Ok(Err(why))` when hound cannot read this WAV file (the caller then tries symphonia).
fn decode_wav_hound(path: &Path) -> Result<std::result::Result<Decoded, WavFallback>> {
    let open = || {
        File::open(path)
            .map(|f| BufReader::with_capacity(1 << 16, f))
            .map_err(|e| SttError::audio(path, format!("cannot open file: {e}")))
    };
    let spec = match hound::WavReader::new(open()?) {
        Ok(reader) => reader.spec(),
        Err(hound::Error::IoError(e)) => {
            return Ok(Err(WavFallback::Truncated(format!(
                "truncated or corrupt WAV data: header unreadable ({e})"
            ))));
        }
        Err(e) => return Ok(Err(WavFallback::Unsupported(e.to_string()))),
    };
    let mut reader = open()?;
    let layout = wav_layout(&mut reader).map_err(|e| {
        SttError::audio(
            path,
            format!("truncated or corrupt WAV data: header unreadable ({e})"),
        )
    })?;
    let channels = usize::from(spec.channels);
    let bytes = usize::from(layout.block_align) / channels.max(1);
    let kind = match (spec.sample_format, bytes) {
        _ if channels == 0 || bytes * channels != usize::from(layout.block_align) => {
            let why = "inconsistent channel count and block alignment";
            return Ok(Err(WavFallback::Unsupported(why.to_string())));
        }
        (hound::SampleFormat::Int, 1..=4) => PcmKind::Int(bytes),
        (hound::SampleFormat::Float, 4) => PcmKind::F32,
        (format, _) => {
            let why = format!("{bytes}-byte {format:?} samples");
            return Ok(Err(WavFallback::Unsupported(why)));
        }
    };
    let frame_bytes = channels * bytes;
    let declared = layout.data_len as usize;
    let mut samples = Vec::with_capacity(declared / frame_bytes);
    let mut block = vec![0u8; frame_bytes * 16_384];
    let mut read_total = 0usize;
    while read_total < declared {
        let want = block.len().min(declared - read_total);
        let got = read_full(&mut reader, &mut block[..want])
            .map_err(|e| SttError::audio(path, format!("truncated or corrupt WAV data: {e}")))?;
        read_total += got;
        convert_frames(
            &block[..got / frame_bytes * frame_bytes],
            kind,
            channels,
            &mut samples,
        );
        if got < want {
            return Err(SttError::audio(
                path,
                format!(
                    "truncated or corrupt WAV data: the data chunk declares {declared} bytes, \
                     the file holds {read_total}"
                ),
            ));
        }
    }
    Ok(Ok(Decoded {
        samples,
        sample_rate: spec.sample_rate,
    }))
}

/// Why hound did not decode a RIFF/WAVE file, reported if symphonia cannot either.
enum WavFallback {
    /// The header ends early: the message to report.
    Truncated(String),
    /// A variant hound does not read, or a malformed header: why.
    Unsupported(String),
}

/// Where a WAV file's samples are.
struct WavLayout {
    /// Bytes per frame, from the `fmt ` chunk.
    block_align: u16,
    /// Length of the `data` chunk as declared.
    data_len: u32,
}

/// Walks the RIFF chunks up to the start of `data` (where `reader` is left), reading the block
/// alignment from `fmt ` on the way. hound has validated the structure already.
fn wav_layout(reader: &mut impl Read) -> std::io::Result<WavLayout> {
    let mut riff = [0u8; 12];
    reader.read_exact(&mut riff)?;
    let mut block_align = None;
    loop {
        let mut header = [0u8; 8];
        reader.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        match &header[..4] {
            b"data" => {
                let block_align = block_align.ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "no fmt chunk before data")
                })?;
                return Ok(WavLayout {
                    block_align,
                    data_len: len,
                });
            }
            b"fmt " if len >= 16 => {
                let mut fmt = vec![0u8; len as usize + (len as usize & 1)];
                reader.read_exact(&mut fmt)?;
                block_align = Some(u16::from_le_bytes([fmt[12], fmt[13]]));
            }
            _ => {
                // Chunks are padded to an even length.
                let skip = u64::from(len) + u64::from(len & 1);
                std::io::copy(&mut reader.by_ref().take(skip), &mut std::io::sink())?;
            }
        }
    }
}

/// Reads until `buf` is full or the end of the file; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Storage of one WAV sample.
#[derive(Clone, Copy)]
enum PcmKind {
    /// Little-endian integer of this many bytes (1: unsigned with offset 128, else signed),
    /// valid bits left-justified.
    Int(usize),
    /// Little-endian IEEE float.
    F32,
}

/// Converts whole interleaved frames to `[-1, 1]` floats, averaging the channels.
fn convert_frames(data: &[u8], kind: PcmKind, channels: usize, out: &mut Vec<f32>) {
    match kind {
        PcmKind::Int(1) => mix_into(data, 1, channels, 1.0 / 128.0, out, |b| {
            f32::from(b[0]) - 128.0
        }),
        PcmKind::Int(2) => mix_into(data, 2, channels, 1.0 / 32_768.0, out, |b| {
            f32::from(i16::from_le_bytes([b[0], b[1]]))
        }),
        PcmKind::Int(3) => mix_into(data, 3, channels, 1.0 / 8_388_608.0, out, |b| {
            (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32
        }),
        PcmKind::Int(_) => mix_into(data, 4, channels, 1.0 / 2_147_483_648.0, out, |b| {
            i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32
        }),
        PcmKind::F32 => mix_into(data, 4, channels, 1.0, out, |b| {
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        }),
    }
}

/// Decodes `bytes`-byte samples with `decode`, averages each frame of `channels` and scales.
#[inline(always)]
fn mix_into(
    data: &[u8],
    bytes: usize,
    channels: usize,
    scale: f32,
    out: &mut Vec<f32>,
    decode: impl Fn(&[u8]) -> f32,
) {
    match channels {
        1 => out.extend(data.chunks_exact(bytes).map(|b| decode(b) * scale)),
        2 => {
            let scale = scale * 0.5;
            out.extend(
                data.chunks_exact(2 * bytes)
                    .map(|f| (decode(&f[..bytes]) + decode(&f[bytes..])) * scale),
            );
        }
        _ => {
            let scale = scale / channels as f32;
            out.extend(
                data.chunks_exact(bytes * channels)
                    .map(|f| f.chunks_exact(bytes).map(&decode).sum::<f32>() * scale),
            );
        }
    }
}

/// Decodes the default audio track of any container/codec symphonia recognises, mixing to mono.
fn decode_symphonia(path: &Path) -> Result<Decoded> {
    let file =
        File::open(path).map_err(|e| SttError::audio(path, format!("cannot open file: {e}")))?;
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let mut hint = Hint::new();
    if let Some(ext) = &ext {
        hint.with_extension(ext);
    }
    let format_opts = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let probed = match symphonia::default::get_probe().format(
        &hint,
        mss,
        &format_opts,
        &MetadataOptions::default(),
    ) {
        Ok(probed) => probed,
        Err(e) => {
            let what = if matches!(ext.as_deref(), Some("wav" | "wave")) {
                "not a WAV file (no RIFF/WAVE header) and not another recognised format"
            } else {
                "unsupported or unrecognised audio format"
            };
            let detail = match e {
                SymError::IoError(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                    String::new()
                }
                SymError::Unsupported(_) => String::new(),
                other => format!(" ({other})"),
            };
            return Err(SttError::audio(
                path,
                format!("{what}{detail}; supported: {SUPPORTED_FORMATS}"),
            ));
        }
    };
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| SttError::audio(path, "contains no audio track"))?;
    let track_id = track.id;
    let mut sample_rate = track.codec_params.sample_rate.unwrap_or(0);
    let frames_hint = track.codec_params.n_frames.unwrap_or(0).min(1 << 28) as usize;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| {
            SttError::audio(
                path,
                format!("unsupported audio codec ({e}); supported: {SUPPORTED_FORMATS}"),
            )
        })?;

    let mut samples: Vec<f32> = Vec::with_capacity(frames_hint);
    let mut buf: Option<SampleBuffer<f32>> = None;
    let mut decode_errors = 0usize;
    let mut decoded_packets = 0usize;
    loop {
        let packet = match format.next_packet() {
            Ok(packet) => packet,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(SymError::ResetRequired) => break,
            Err(e) => {
                return Err(SttError::audio(path, format!("corrupt audio data: {e}")));
            }
        };
        if packet.track_id() != track_id {
            continue;
        }
        let audio = match decoder.decode(&packet) {
            Ok(audio) => audio,
            // A damaged packet (common in MP3 streams): skip it, as players do.
            Err(SymError::DecodeError(_)) => {
                decode_errors += 1;
                continue;
            }
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(SttError::audio(path, format!("corrupt audio data: {e}"))),
        };
        decoded_packets += 1;
        let spec = *audio.spec();
        if sample_rate == 0 {
            sample_rate = spec.rate;
        }
        let channels = spec.channels.count();
        let frames = audio.frames();
        if frames == 0 || channels == 0 {
            continue;
        }
        let needs_new = match &buf {
            Some(b) => b.capacity() < frames * channels,
            None => true,
        };
        if needs_new {
            buf = Some(SampleBuffer::new(audio.capacity() as u64, spec));
        }
        let Some(b) = buf.as_mut() else { continue };
        b.copy_interleaved_ref(audio);
        let interleaved = &b.samples()[..frames * channels];
        if channels == 1 {
            samples.extend_from_slice(interleaved);
        } else {
            let scale = 1.0 / channels as f32;
            samples.extend(
                interleaved
                    .chunks_exact(channels)
                    .map(|f| f.iter().sum::<f32>() * scale),
            );
        }
    }
    if decoded_packets == 0 && decode_errors > 0 {
        return Err(SttError::audio(
            path,
            format!("corrupt audio data: none of {decode_errors} packets could be decoded"),
        ));
    }
    Ok(Decoded {
        samples,
        sample_rate,
    })
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// How one resampling job lines rubato's output up with the ideal output grid.
#[derive(Clone, Copy)]
struct Plan {
    /// Reduced input step: output sample `k` lies at input time `k · l / m`.
    l: u64,
    /// Reduced output step.
    m: u64,
    /// Sinc phases in rubato's table.
    phases: usize,
    /// Whether rubato picks the nearest of `phases` (exact when `phases == m`) or interpolates.
    exact: bool,
    /// Outputs of rubato to discard before the first wanted one.
    skip: usize,
    /// Input samples fed before the first wanted output's input time.
    lead: usize,
    /// Input frames per rubato call.
    chunk: usize,
}

/// Resampling with `String` errors, wrapped by the public callers.
fn resample_impl(
    samples: &[f32],
    from_rate: u32,
    to_rate: u32,
) -> std::result::Result<Vec<f32>, String> {
    if from_rate == 0 || to_rate == 0 {
        return Err(format!(
            "cannot resample from {from_rate} Hz to {to_rate} Hz: zero rate"
        ));
    }
    if from_rate == to_rate {
        return Ok(samples.to_vec());
    }
    let (from, to) = (u64::from(from_rate), u64::from(to_rate));
    let out_len = ((samples.len() as u128 * u128::from(to) + u128::from(from / 2))
        / u128::from(from)) as usize;
    if out_len == 0 {
        return Ok(Vec::new());
    }
    let g = gcd(from, to);
    let (l, m) = (from / g, to / g);
    let exact = m as usize <= MAX_EXACT_PHASES;
    let phases = if exact {
        m as usize
    } else {
        INTERPOLATED_PHASES
    };

    // Rubato's output j (fed input from absolute index s0, zeros before it) lies at input time
    // s0 + (j + 1)·l/m - 1 + 1/phases. We want output `skip` at the first wanted output's time
    // `t0`, i.e. s0 = t0 - lead with lead = (skip + 1)·l/m - 1 + 1/phases an integer (closest
    // to one when the table is interpolated), and lead at least half the filter plus a margin
    // so the first kept output sees real context.
    let min_lead = (SINC_LEN / 2 + 8) as u64;
    let denom = m * phases as u64;
    // lead + 1 = lead_plus(skip) / denom, kept unsigned.
    let lead_plus = |skip: u64| (skip + 1) * l * phases as u64 + m;
    let mut skip = 0u64;
    while lead_plus(skip) < (min_lead + 1) * denom {
        skip += 1;
    }
    let search = if exact { m } else { m.min(1 << 16) };
    let mut best = (u64::MAX, skip);
    for s in skip..skip + search {
        let rem = lead_plus(s) % denom;
        let dist = rem.min(denom - rem);
        if dist < best.0 {
            best = (dist, s);
            if dist == 0 {
                break;
            }
        }
    }
    let skip = best.1;
    let lead = ((lead_plus(skip) + denom / 2) / denom - 1) as usize;
    let t_ratio_ceil = from.div_ceil(to) as usize;
    let chunk = RESAMPLE_CHUNK.max(4 * SINC_LEN + 4 * t_ratio_ceil);
    let plan = Plan {
        l,
        m,
        phases,
        exact,
        skip: skip as usize,
        lead,
        chunk,
    };

    // Segments start on output indices that are multiples of m, hence on integer input times.
    let threads = rayon::current_num_threads().max(1);
    let per_task = out_len.div_ceil(threads * 4).max(MIN_SEGMENT);
    let seg_len = per_task.div_ceil(m as usize) * m as usize;
    let mut out = vec![0.0f32; out_len];
    out.par_chunks_mut(seg_len)
        .enumerate()
        .try_for_each(|(i, seg)| resample_segment(samples, from, to, &plan, i * seg_len, seg))?;
    Ok(out)
}

/// Fills `out` with output samples `first..first + out.len()` (`first` a multiple of `plan.m`).
fn resample_segment(
    samples: &[f32],
    from: u64,
    to: u64,
    plan: &Plan,
    first: usize,
    out: &mut [f32],
) -> std::result::Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("resampling {from} Hz -> {to} Hz: {e}");
    let cutoff = calculate_cutoff::<f32>(SINC_LEN, WindowFunction::BlackmanHarris2);
    let params = SincInterpolationParameters {
        sinc_len: SINC_LEN,
        f_cutoff: cutoff,
        oversampling_factor: plan.phases,
        interpolation: if plan.exact {
            SincInterpolationType::Nearest
        } else {
            SincInterpolationType::Cubic
        },
        window: WindowFunction::BlackmanHarris2,
    };
    let ratio = to as f64 / from as f64;
    let mut resampler =
        SincFixedIn::<f32>::new(ratio, 1.0, params, plan.chunk, 1).map_err(|e| err(&e))?;
    let t0 = (first as u64 / plan.m * plan.l) as i64;
    let mut pos = t0 - plan.lead as i64;
    let mut input = vec![vec![0.0f32; plan.chunk]];
    let mut output = vec![vec![0.0f32; resampler.output_frames_max()]];
    let mut to_skip = plan.skip;
    let mut written = 0;
    let mut idle_calls = 0;
    while written < out.len() {
        fill_chunk(samples, pos, &mut input[0]);
        pos += plan.chunk as i64;
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut output, None)
            .map_err(|e| err(&e))?;
        if produced == 0 {
            idle_calls += 1;
            if idle_calls > 4 {
                return Err(err(&"resampler produced no output"));
            }
            continue;
        }
        let produced = &output[0][..produced];
        let dropped = to_skip.min(produced.len());
        to_skip -= dropped;
        let take = (produced.len() - dropped).min(out.len() - written);
        out[written..written + take].copy_from_slice(&produced[dropped..dropped + take]);
        written += take;
    }
    Ok(())
}

/// Copies `samples[pos..pos + chunk.len()]` into `chunk`, with zeros outside the signal.
fn fill_chunk(samples: &[f32], pos: i64, chunk: &mut [f32]) {
    chunk.fill(0.0);
    let len = samples.len() as i64;
    let start = pos.max(0);
    let end = (pos + chunk.len() as i64).min(len);
    if start < end {
        let dst = (start - pos) as usize;
        chunk[dst..dst + (end - start) as usize]
            .copy_from_slice(&samples[start as usize..end as usize]);
    }
}
