#!/usr/bin/env python3
"""Tiny MMS-TTS (transformers `VitsModel`) checkpoints and their goldens for mlbench-tts.

Usage: mms_goldens.py [REPO_ROOT]   (default: the current directory)

Builds two random-weight `VitsModel`s with tiny sizes and the stochastic duration predictor,
each with a `VitsTokenizer` over a small character vocabulary (MMS style: `normalize`,
`add_blank`, no phonemizer), and writes:

  tests/data/tts-tiny-mms/single/   one speaker; weight-norm kept as `weight_g` / `weight_v`,
                                    the form of the real facebook/mms-tts-* safetensors
  tests/data/tts-tiny-mms/bin/      `single` as a zip-format `pytorch_model.bin` (g/v, without
                                    the training-only posterior encoder and posterior flows)
  tests/data/tts-tiny-mms/multi/    three speakers (speaker_embedding_size 8, WaveNet dilation
                                    rate 2); weight-norm as transformers 5 saves it,
                                    `parametrizations.weight.original0` / `original1`
  tests/golden/tts-mms-single.safetensors, tests/golden/tts-mms-multi.safetensors

Each golden holds, for a fixed text, the token ids (`ids`, i64), the frames per token
(`durations`, f32: ceil(exp(log_duration) / speaking_rate)) and the waveform (`audio`, f32),
with noise_scale = noise_scale_duration = 0 so the output is deterministic; `single` also has
`ids_fast` / `durations_fast` / `audio_fast` at speaking_rate 1.5 and the tokenizer's ids for
the texts of the metadata `tokenizer_cases` (`tok_N`, i64); `multi` uses speaker id 2.

Needs torch, transformers, safetensors, numpy (scripts/reference/requirements.txt).
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.numpy import save_file
from safetensors.torch import load_file, save_file as save_torch
from transformers import VitsConfig, VitsModel, VitsTokenizer

# Vocabulary in MMS order style: id 0 is a letter (it doubles as the blank of add_blank).
VOCAB = list("kabcdefghijlmnopqrstuvwxyz") + [" ", "'", "-", "0", "1", "2", "3", "A"]
TEXT = "Hello world, this is a test"
MULTI_TEXT = "quick brown fox"
TOKENIZER_CASES = [
    "Hello World!",
    "  it's 2 o'clock -- Fine.  ",
    "caf\u00e9 na\u00efve 9 Zebra",
    "A cat and a BAT",
    "?!",
]


def tiny_config(multi: bool) -> VitsConfig:
    return VitsConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        window_size=4,
        ffn_dim=24,
        ffn_kernel_size=3,
        flow_size=8,
        spectrogram_bins=9,
        upsample_initial_channel=16,
        upsample_rates=[4, 4],
        upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3, 5],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]],
        depth_separable_num_layers=3,
        duration_predictor_flow_bins=10,
        duration_predictor_num_flows=4,
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=3,
        posterior_encoder_num_wavenet_layers=1,
        wavenet_kernel_size=5,
        wavenet_dilation_rate=2 if multi else 1,
        use_stochastic_duration_prediction=True,
        num_speakers=3 if multi else 1,
        speaker_embedding_size=8 if multi else 0,
        sampling_rate=16000,
    )


def perturb(model: VitsModel, seed: int) -> None:
    """Random values for the parameters the initialiser leaves at zero or one."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("translate", "log_scale")) or "layer_norm" in name or "norms_" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        # Moderate durations (the affine flow's shift sets the mean log-duration) and audio
        # that does not saturate the final tanh.
        model.duration_predictor.conv_proj.weight.mul_(0.2)
        model.duration_predictor.flows[0].translate[0].fill_(-1.0)
        model.decoder.conv_post.weight.mul_(0.03)


def write_tokenizer(folder: str) -> VitsTokenizer:
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({c: i for i, c in enumerate(VOCAB)}, f, ensure_ascii=False, indent=2)
    config = {
        "add_blank": True,
        "is_uroman": False,
        "language": "eng",
        "normalize": True,
        "pad_token": "<pad>",
        "phonemize": False,
        "tokenizer_class": "VitsTokenizer",
        "unk_token": "<unk>",
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    return VitsTokenizer.from_pretrained(folder)


def to_weight_g_v(folder: str) -> None:
    """Renames `parametrizations.weight.original0/1` to `weight_g/weight_v` in place."""
    path = os.path.join(folder, "model.safetensors")
    tensors = load_file(path)
    renamed = {
        k.replace(".parametrizations.weight.original0", ".weight_g").replace(
            ".parametrizations.weight.original1", ".weight_v"
        ): v.contiguous()
        for k, v in tensors.items()
    }
    save_torch(renamed, path, metadata={"format": "pt"})


def write_pytorch_copy(folder: str, dest: str) -> None:
    """The same weights as a zip-format `pytorch_model.bin` (g/v form, without the posterior
    encoder and posterior flows, which inference never reads), for repos that lack
    `model.safetensors`."""
    os.makedirs(dest, exist_ok=True)
    tensors = load_file(os.path.join(folder, "model.safetensors"))
    training = ("posterior_encoder.", "duration_predictor.post_")
    tensors = {k: v for k, v in tensors.items() if not k.startswith(training)}
    torch.save(tensors, os.path.join(dest, "pytorch_model.bin"))
    shutil.copy(os.path.join(folder, "config.json"), dest)
    write_tokenizer(dest)


def run(model: VitsModel, ids: list, speaker=None, speaking_rate=1.0):
    captured = {}
    hook = model.duration_predictor.register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("log_duration", out)
    )
    with torch.no_grad():
        out = model(torch.tensor([ids]), speaker_id=speaker, speaking_rate=speaking_rate)
    hook.remove()
    durations = torch.ceil(torch.exp(captured["log_duration"]) / speaking_rate)
    return (
        durations.reshape(-1).numpy().astype(np.float32),
        out.waveform.reshape(-1).numpy().astype(np.float32),
    )


def build(root: str, name: str, multi: bool) -> None:
    torch.manual_seed(7 if multi else 3)
    folder = os.path.join(root, "tests/data/tts-tiny-mms", name)
    os.makedirs(folder, exist_ok=True)
    model = VitsModel(tiny_config(multi)).eval()
    perturb(model, 11 if multi else 5)
    model.noise_scale = 0.0
    model.noise_scale_duration = 0.0
    model.save_pretrained(folder)
    keys = load_file(os.path.join(folder, "model.safetensors")).keys()
    assert any(".parametrizations.weight.original0" in k for k in keys), "save format changed"
    if not multi:
        to_weight_g_v(folder)
        write_pytorch_copy(folder, os.path.join(root, "tests/data/tts-tiny-mms/bin"))
    tokenizer = write_tokenizer(folder)
    # A reloaded model (from the files as committed) makes the goldens.
    model = VitsModel.from_pretrained(folder).eval()
    model.noise_scale = 0.0
    model.noise_scale_duration = 0.0

    text = MULTI_TEXT if multi else TEXT
    ids = tokenizer(text)["input_ids"]
    speaker = 2 if multi else None
    durations, audio = run(model, ids, speaker)
    golden = {"ids": np.array(ids, dtype=np.int64), "durations": durations, "audio": audio}
    meta = {"text": text, "speaker": str(speaker), "transformers": __import__("transformers").__version__}
    if not multi:
        d_fast, a_fast = run(model, ids, None, 1.5)
        golden.update(ids_fast=golden["ids"].copy(), durations_fast=d_fast, audio_fast=a_fast)
        for i, case in enumerate(TOKENIZER_CASES):
            golden[f"tok_{i}"] = np.array(tokenizer(case)["input_ids"], dtype=np.int64)
        meta["tokenizer_cases"] = json.dumps(TOKENIZER_CASES, ensure_ascii=False)
    out = os.path.join(root, f"tests/golden/tts-mms-{name}.safetensors")
    save_file(golden, out, metadata=meta)
    print(
        f"{name}: {len(ids)} ids, {int(durations.sum())} frames, {audio.size} samples, "
        f"peak {np.abs(audio).max():.3f}, durations {durations.astype(int).tolist()}"
    )


def main() -> None:
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    build(root, "single", multi=False)
    build(root, "multi", multi=True)


if __name__ == "__main__":
    main()
