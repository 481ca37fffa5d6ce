#!/usr/bin/env python3
"""Write the reference data of crates/mlbench-stt/tests/audio_mel.rs.

Everything lands in crates/mlbench-stt/tests/data/ (about 450 KB in all):

- ``chirp_16k.wav``: the test signal, 1.3 s of 16 kHz mono 16-bit PCM: a linear chirp
  100 Hz -> 7 kHz, a 440 Hz tone and Gaussian noise (fixed seed), so every mel band has energy
  within the 80 dB that Whisper's log-mel keeps.
- ``chirp_16k.flac``, ``chirp_16k.ogg`` (Vorbis), ``chirp_16k.mp3``, ``chirp_16k.m4a`` (AAC-LC,
  written only when PyAV is installed): the same signal in the compressed formats the decoder
  must read (FLAC is lossless, so it must decode bit-exactly).
- ``mel_filters_80.f32``, ``mel_filters_128.f32``: ``librosa.filters.mel(sr=16000, n_fft=400,
  n_mels=N)``, row-major [N][201]. When openai-whisper is installed, they are also checked
  against its shipped ``assets/mel_filters.npz``.
- ``logmel_*.f32``: openai-whisper's ``log_mel_spectrogram`` (``whisper/audio.py``, reproduced
  below line for line, in float32 torch on the CPU) of the signal or part of it, row-major
  [n_mels][n_frames]:
    - ``logmel_80_chirp.f32``: whole signal, 80 mels, padding 0 (130 frames);
    - ``logmel_128_chirp_pad8000.f32``: whole signal, 128 mels, padding 8000 (180 frames);
    - ``logmel_80_short480.f32``: first 480 samples, 80 mels, padding 0 (3 frames);
    - ``logmel_80_half_padN.f32``: first 8000 samples (0.5 s), 80 mels, padding N_SAMPLES as
      ``transcribe()`` uses; only the first 60 of the 3050 frames are stored (the rest are
      all-zero input frames, at the floor value).

Raw ``.f32`` files are little-endian float32 without a header; the Rust test knows the shapes.

Usage (numpy, torch, librosa and soundfile come from PyPI; openai-whisper is optional and only
used for its filter file; PyAV is optional and only used to encode AAC)::

    python3 -m venv /tmp/melvenv
    /tmp/melvenv/bin/pip install torch numpy librosa soundfile
    /tmp/melvenv/bin/pip install --no-deps openai-whisper   # optional
    /tmp/melvenv/bin/pip install av                         # optional, for the M4A file
    /tmp/melvenv/bin/python scripts/reference/mel_goldens.py
"""

import importlib.util
import os
import sys

import librosa
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_SAMPLES = 30 * SAMPLE_RATE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "mlbench-stt", "tests", "data")


def log_mel_spectrogram(audio, filters, padding=0, dtype=torch.float32):
    """openai-whisper's audio.py::log_mel_spectrogram, with the filters passed in."""
    audio = torch.from_numpy(audio).to(dtype)
    if padding > 0:
        audio = F.pad(audio, (0, padding))
    window = torch.hann_window(N_FFT, dtype=dtype)
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2

    filters = torch.from_numpy(filters).to(dtype)
    mel_spec = filters @ magnitudes

    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    return log_spec.numpy()


def signal():
    """The 1.3 s test signal as int16."""
    n = int(1.3 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0, f1, dur = 100.0, 7000.0, n / SAMPLE_RATE
    chirp = 0.45 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * dur) * t**2))
    tone = 0.2 * np.sin(2 * np.pi * 440.0 * t) * (t > 0.4) * (t < 0.9)
    noise = 0.02 * np.random.RandomState(1234).standard_normal(n)
    x = chirp + tone + noise
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def write_m4a(path, pcm):
    """AAC-LC in an MP4 (M4A) container, through PyAV's bundled ffmpeg, when PyAV is installed."""
    try:
        import av
    except ImportError:
        print("PyAV not installed: chirp_16k.m4a not written")
        return
    with av.open(path, mode="w", format="ipod") as container:
        stream = container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = 48000
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def save(name, array):
    array = np.ascontiguousarray(array, dtype="<f4")
    array.tofile(os.path.join(OUT, name))
    print(f"{name}: shape {array.shape}, {array.nbytes} bytes")


def main():
    os.makedirs(OUT, exist_ok=True)
    pcm = signal()
    sf.write(os.path.join(OUT, "chirp_16k.wav"), pcm, SAMPLE_RATE, subtype="PCM_16")
    sf.write(os.path.join(OUT, "chirp_16k.flac"), pcm, SAMPLE_RATE, subtype="PCM_16")
    sf.write(os.path.join(OUT, "chirp_16k.ogg"), pcm, SAMPLE_RATE, format="OGG", subtype="VORBIS")
    if "MP3" in sf.available_formats():
        sf.write(os.path.join(OUT, "chirp_16k.mp3"), pcm, SAMPLE_RATE, format="MP3",
                 subtype="MPEG_LAYER_III")
    write_m4a(os.path.join(OUT, "chirp_16k.m4a"), pcm)
    for ext in ("wav", "flac", "ogg", "mp3", "m4a"):
        path = os.path.join(OUT, f"chirp_16k.{ext}")
        if os.path.exists(path):
            print(f"chirp_16k.{ext}: {os.path.getsize(path)} bytes")
    audio = pcm.astype(np.float32) / 32768.0

    filters = {}
    for n_mels in (80, 128):
        fb = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels)
        assert fb.dtype == np.float32 and fb.shape == (n_mels, N_FFT // 2 + 1)
        filters[n_mels] = fb
        save(f"mel_filters_{n_mels}.f32", fb)

    spec = importlib.util.find_spec("whisper")
    if spec is not None and spec.submodule_search_locations:
        npz = os.path.join(spec.submodule_search_locations[0], "assets", "mel_filters.npz")
        with np.load(npz) as shipped:
            for n_mels in (80, 128):
                diff = np.abs(shipped[f"mel_{n_mels}"] - filters[n_mels]).max()
                print(f"librosa vs openai-whisper mel_filters.npz, {n_mels} mels: max |diff| {diff:.3g}")
    else:
        print("openai-whisper not installed: filters not checked against mel_filters.npz")

    cases = [
        ("logmel_80_chirp.f32", audio, 80, 0, None),
        ("logmel_128_chirp_pad8000.f32", audio, 128, 8000, None),
        ("logmel_80_short480.f32", audio[:480], 80, 0, None),
        ("logmel_80_half_padN.f32", audio[:8000], 80, N_SAMPLES, 60),
    ]
    for name, x, n_mels, padding, keep in cases:
        mel = log_mel_spectrogram(x, filters[n_mels], padding)
        mel64 = log_mel_spectrogram(x.astype(np.float64), filters[n_mels].astype(np.float64),
                                    padding, dtype=torch.float64)
        print(f"{name}: float32 torch vs float64 torch max |diff| {np.abs(mel - mel64).max():.3g}")
        assert mel.shape == (n_mels, (len(x) + padding) // HOP_LENGTH)
        if keep is not None:
            assert np.all(mel[:, keep:] == mel[:, keep:].min())
            mel = mel[:, :keep]
        save(name, mel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
