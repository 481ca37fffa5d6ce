//! Whisper's log-mel spectrogram, computed exactly as openai-whisper's
//! `audio.py::log_mel_spectrogram` does, on the CPU.
//!
//! The steps, for 16 kHz mono samples:
//!
//! 1. append `padding` zero samples (openai's `transcribe()` appends [`N_SAMPLES`]);
//! 2. `torch.stft(n_fft=400, hop_length=160, window=hann_window(400), center=True,
//!    pad_mode="reflect")`: reflect-pad 200 samples on each side, frame every 160 samples,
//!    multiply by the periodic Hann window, FFT; the last frame is dropped (`stft[..., :-1]`),
//!    so `n_frames = (len + padding) / 160`;
//! 3. power spectrum `|X|²` of the 201 non-negative frequency bins;
//! 4. multiply by the mel filter bank of `librosa.filters.mel(sr=16000, n_fft=400,
//!    n_mels=N)` (Slaney mel scale and Slaney area normalisation), computed here by
//!    [`mel_filters`] rather than read from a table;
//! 5. `log10(max(x, 1e-10))`, then `max(x, x.max() - 8)`, then `(x + 4) / 4`.
//!
//! [`LogMel`] holds the filters (with each triangle's non-zero span, so the filter product
//! touches ~2 bins per filter instead of 201), the window and an FFT plan, built once. The
//! 400-point real FFTs of two consecutive frames share one complex FFT (one frame in the real
//! part, the other in the imaginary part), and groups of frames run in parallel with rayon.

use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// FFT size (window length) in samples.
pub const N_FFT: usize = 400;
/// Hop between successive frames in samples (10 ms at 16 kHz).
pub const HOP_LENGTH: usize = 160;
/// Length of one Whisper input window in seconds.
pub const CHUNK_LENGTH_S: usize = 30;
/// Samples in one Whisper input window (30 s at 16 kHz).
pub const N_SAMPLES: usize = 480_000;
/// Mel frames in one Whisper input window.
pub const N_FRAMES: usize = 3000;

/// Number of non-negative frequency bins of an [`N_FFT`]-point real FFT.
const N_BINS: usize = N_FFT / 2 + 1;
/// Sample rate the filters are designed for.
const SAMPLE_RATE_HZ: f64 = 16_000.0;
/// Frames per rayon task (even: frames are transformed in pairs).
const FRAMES_PER_TASK: usize = 64;

/// Precision of the FFT and the filter product. `f64` keeps the result within a few 1e-6 of
/// the exact values, so the difference to openai's float32 torch is torch's own rounding.
type F = f64;

/// Whisper's log-mel spectrogram extractor: filters, window and FFT plan, built once.
///
/// Cheap to share across threads (`Send + Sync`); [`LogMel::compute`] takes `&self`.
pub struct LogMel {
    n_mels: usize,
    /// Hann window as torch's float32 `hann_window(400)` computes it.
    window: Vec<F>,
    /// For each mel filter, its first non-zero bin.
    starts: Vec<usize>,
    /// For each mel filter, the offset of its non-zero weights in `weights`, plus a final end.
    offsets: Vec<usize>,
    /// Non-zero filter weights, filter after filter.
    weights: Vec<F>,
    fft: Arc<dyn Fft<F>>,
}

impl std::fmt::Debug for LogMel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogMel")
            .field("n_mels", &self.n_mels)
            .field("n_fft", &N_FFT)
            .field("hop_length", &HOP_LENGTH)
            .field("non_zero_weights", &self.weights.len())
            .finish()
    }
}

impl LogMel {
    /// Builds the extractor for `n_mels` mel bins (80 for Whisper v1/v2, 128 for large-v3).
    ///
    /// # Panics
    ///
    /// If `n_mels` is 0.
    pub fn new(n_mels: usize) -> Self {
        assert!(n_mels > 0, "n_mels must be positive");
        let dense = mel_filters(n_mels);
        let mut starts = Vec::with_capacity(n_mels);
        let mut offsets = Vec::with_capacity(n_mels + 1);
        let mut weights = Vec::new();
        for row in dense.chunks_exact(N_BINS) {
            let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
            let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |l| l + 1);
            starts.push(first);
            offsets.push(weights.len());
            weights.extend(row[first..last].iter().map(|&w| F::from(w)));
        }
        offsets.push(weights.len());
        // torch.hann_window(400) (periodic): arange(401) * (2π / 400), cos, * -0.5, + 0.5, all
        // in float32, first 400 values.
        let step = (std::f64::consts::PI * 2.0 / N_FFT as f64) as f32;
        let window = (0..N_FFT)
            .map(|n| F::from((n as f32 * step).cos() * -0.5 + 0.5))
            .collect();
        let fft = FftPlanner::<F>::new().plan_fft_forward(N_FFT);
        Self {
            n_mels,
            window,
            starts,
            offsets,
            weights,
            fft,
        }
    }

    /// Number of mel bins of the output.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Returns (data row-major `[n_mels][n_frames]`, n_frames); `padding` zero samples are
    /// appended first (openai's transcribe() uses padding=N_SAMPLES);
    /// n_frames = (len+padding)/HOP_LENGTH.
    ///
    /// With fewer than [`HOP_LENGTH`] samples in all, there is no frame: `(vec![], 0)`. torch's
    /// reflect padding needs more than 200 samples; shorter signals are mirrored repeatedly
    /// (numpy's `pad(mode="reflect")`), which is what torch does whenever it can.
    pub fn compute(&self, samples: &[f32], padding: usize) -> (Vec<f32>, usize) {
        let total = samples.len() + padding;
        let n_frames = total / HOP_LENGTH;
        if n_frames == 0 {
            return (Vec::new(), 0);
        }
        let n_mels = self.n_mels;
        let signal = Signal { samples, total };

        // log10 mel energies, written straight into the row-major output: task `t` owns frames
        // `t * FRAMES_PER_TASK..` of every mel row.
        let mut data = vec![0.0f32; n_mels * n_frames];
        let n_tasks = n_frames.div_ceil(FRAMES_PER_TASK);
        let mut tiles: Vec<Vec<&mut [f32]>> =
            (0..n_tasks).map(|_| Vec::with_capacity(n_mels)).collect();
        for row in data.chunks_mut(n_frames) {
            for (tile, piece) in tiles.iter_mut().zip(row.chunks_mut(FRAMES_PER_TASK)) {
                tile.push(piece);
            }
        }
        tiles
            .into_par_iter()
            .enumerate()
            .for_each(|(task, mut tile)| {
                self.log_mel_frames(&signal, task * FRAMES_PER_TASK, &mut tile)
            });

        let max = data
            .par_iter()
            .copied()
            .reduce(|| f32::NEG_INFINITY, f32::max);
        let floor = max - 8.0;
        data.par_iter_mut()
            .for_each(|v| *v = (v.max(floor) + 4.0) / 4.0);
        (data, n_frames)
    }

    /// Fills column `i` of every row of `tile` with `log10(max(mel, 1e-10))` of frame
    /// `first + i`.
    fn log_mel_frames(&self, signal: &Signal<'_>, first: usize, tile: &mut [&mut [f32]]) {
        let n = tile.first().map_or(0, |row| row.len());
        let silent = (1e-10f32).log10();
        let mut buf = vec![Complex::<F>::new(0.0, 0.0); N_FFT];
        let mut scratch = vec![Complex::<F>::new(0.0, 0.0); self.fft.get_inplace_scratch_len()];
        let mut power = [[0.0 as F; N_BINS]; 2];
        let (mut tmp_a, mut tmp_b) = ([0.0f32; N_FFT], [0.0f32; N_FFT]);
        for i in (0..n).step_by(2) {
            let two = i + 1 < n;
            let xa = signal.frame(first + i, &mut tmp_a);
            let xb = if two {
                signal.frame(first + i + 1, &mut tmp_b)
            } else {
                &[]
            };
            if xa.iter().chain(xb).all(|&x| x == 0.0) {
                for row in tile.iter_mut() {
                    row[i..(i + 2).min(n)].fill(silent);
                }
                continue;
            }
            for (n, c) in buf.iter_mut().enumerate() {
                let w = self.window[n];
                let b = if two { w * F::from(xb[n]) } else { 0.0 };
                *c = Complex::new(w * F::from(xa[n]), b);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            // X_a[k] = (Z[k] + conj(Z[N-k])) / 2, X_b[k] = (Z[k] - conj(Z[N-k])) / 2i.
            for k in 0..N_BINS {
                let z = buf[k];
                let zn = buf[(N_FFT - k) % N_FFT];
                let (sr, di) = (z.re + zn.re, z.im - zn.im);
                let (dr, si) = (z.re - zn.re, z.im + zn.im);
                power[0][k] = 0.25 * (sr * sr + di * di);
                power[1][k] = 0.25 * (dr * dr + si * si);
            }
            for (m, row) in tile.iter_mut().enumerate() {
                let w = &self.weights[self.offsets[m]..self.offsets[m + 1]];
                let s = self.starts[m];
                for (j, spec) in power.iter().enumerate().take(if two { 2 } else { 1 }) {
                    let e: F = w
                        .iter()
                        .zip(&spec[s..s + w.len()])
                        .map(|(w, p)| w * p)
                        .sum();
                    row[i + j] = (e as f32).max(1e-10).log10();
                }
            }
        }
    }
}

/// The input of [`LogMel::compute`]: `samples` followed by zeros up to `total` samples.
struct Signal<'a> {
    samples: &'a [f32],
    total: usize,
}

impl Signal<'_> {
    /// The `N_FFT` samples of STFT frame `f` of the signal reflect-padded by `N_FFT / 2` on both
    /// sides (torch's `center=True, pad_mode="reflect"`): a slice of the input when the frame
    /// lies inside it, else assembled in `tmp`.
    fn frame<'s>(&'s self, f: usize, tmp: &'s mut [f32; N_FFT]) -> &'s [f32] {
        let pad = N_FFT / 2;
        let start = f * HOP_LENGTH;
        if start >= pad && start - pad + N_FFT <= self.samples.len() {
            return &self.samples[start - pad..start - pad + N_FFT];
        }
        // Mirror into 0..total with period 2·(total - 1), as numpy's repeated reflection (torch
        // reflects once, which is the same whenever torch accepts the input).
        let total = self.total as i64;
        let period = (2 * (total - 1)).max(1);
        for (n, v) in tmp.iter_mut().enumerate() {
            let mut j = (start + n) as i64 - pad as i64;
            if j < 0 || j >= total {
                j = j.rem_euclid(period);
                if j >= total {
                    j = period - j;
                }
            }
            *v = self.samples.get(j as usize).copied().unwrap_or(0.0);
        }
        tmp
    }
}

/// Slaney-style Hz → mel, as librosa's `hz_to_mel(htk=False)`.
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// Slaney-style mel → Hz, as librosa's `mel_to_hz(htk=False)`.
fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// Whisper's mel filter bank, row-major `[n_mels][N_FFT/2+1]`.
///
/// The same numbers as `librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)` (Slaney mel
/// scale, `htk=False`, `norm="slaney"`, fmin 0, fmax 8 kHz), which is how openai generated
/// `mel_filters.npz`; the float64 intermediate steps and float32 roundings follow librosa's.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    // np.fft.rfftfreq(400, d=1/16000)
    let val = 1.0 / (N_FFT as f64 * (1.0 / SAMPLE_RATE_HZ));
    let fft_freqs: Vec<f64> = (0..N_BINS).map(|k| k as f64 * val).collect();
    // mel_frequencies(n_mels + 2, fmin=0, fmax=8000): linspace in mel, back to Hz.
    let n_points = n_mels + 2;
    let min_mel = hz_to_mel(0.0);
    let max_mel = hz_to_mel(SAMPLE_RATE_HZ / 2.0);
    let step = (max_mel - min_mel) / (n_points - 1) as f64;
    let mel_f: Vec<f64> = (0..n_points)
        .map(|i| {
            if i == n_points - 1 {
                max_mel
            } else {
                i as f64 * step + min_mel
            }
        })
        .map(mel_to_hz)
        .collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();

    let mut weights = vec![0.0f32; n_mels * N_BINS];
    for (i, row) in weights.chunks_exact_mut(N_BINS).enumerate() {
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for (w, &f) in row.iter_mut().zip(&fft_freqs) {
            let lower = -(mel_f[i] - f) / fdiff[i];
            let upper = (mel_f[i + 2] - f) / fdiff[i + 1];
            let tri = 0.0f64.max(lower.min(upper)) as f32;
            *w = (f64::from(tri) * enorm) as f32;
        }
    }
    weights
}
