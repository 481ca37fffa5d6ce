#!/usr/bin/env python3
"""Time Piper's ONNX voice on onnxruntime, the way Piper runs it, on given phoneme ids.

Usage:
  piper_tts.py --model VOICE.onnx --ids IDS.json [--threads N] [--runs N]

IDS.json is what `mlbench tts --phonemes --json` prints: a list of {"phonemes", "ids"}, one per
sentence, so both tools synthesize exactly the same ids. Each sentence is one onnxruntime run
with the voice's default scales (`inference` in VOICE.onnx.json), batch 1, as Piper does. One
untimed warm-up pass, then N timed passes over all sentences (the best is kept). Prints one JSON
object on stdout:

  {"peer": "piper-onnxruntime", "onnxruntime": ..., "threads": ..., "times_s": [...],
   "best_s": ..., "audio_s": ..., "rtf": ...}
"""

import argparse
import json
import time

import numpy as np
import onnxruntime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    config = json.load(open(args.model + ".json", encoding="utf-8"))
    inf = config.get("inference", {})
    scales = np.array(
        [inf.get("noise_scale", 0.667), inf.get("length_scale", 1.0), inf.get("noise_w", 0.8)],
        dtype=np.float32,
    )
    rate = config["audio"]["sample_rate"]
    sentences = [s["ids"] for s in json.load(open(args.ids, encoding="utf-8"))]

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])

    def run_all() -> int:
        samples = 0
        for ids in sentences:
            audio = session.run(
                None,
                {
                    "input": np.array([ids], dtype=np.int64),
                    "input_lengths": np.array([len(ids)], dtype=np.int64),
                    "scales": scales,
                },
            )[0]
            samples += audio.size
        return samples

    run_all()
    times, samples = [], 0
    for _ in range(args.runs):
        t = time.perf_counter()
        samples = run_all()
        times.append(time.perf_counter() - t)
    audio_s = samples / rate
    print(
        json.dumps(
            {
                "peer": "piper-onnxruntime",
                "onnxruntime": onnxruntime.__version__,
                "threads": args.threads,
                "times_s": times,
                "best_s": min(times),
                "audio_s": audio_s,
                "rtf": min(times) / audio_s,
            }
        )
    )


if __name__ == "__main__":
    main()
