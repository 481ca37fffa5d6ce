#!/usr/bin/env python3
"""PyTorch peer of benches/conv.rs: times every shape of benches/conv_shapes.json with
torch.nn.functional on the CPU in f32, with the same thread count, and prints JSON
{"torch": version, "threads": n, "results": {name: {"median_s", "min_s", "runs"}}}.

Run by the Rust bench itself (side by side, one process tree); standalone:
    python benches/peers/torch_conv.py --threads 2 [--shapes benches/conv_shapes.json]
Needs torch and numpy (benches/peers/setup-torch.sh makes a venv with pinned versions).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F


def pair(v, default):
    if v is None:
        v = default
    return tuple(v) if isinstance(v, list) else (v, v)


def build(shape):
    x = torch.randn(shape["x"])
    w = torch.randn(shape["w"]) * 0.05
    op = shape["op"]
    groups = shape.get("groups", 1)
    out_ch = shape["w"][1] * groups if "transpose" in op else shape["w"][0]
    b = torch.randn(out_ch)
    stride, dilation = shape.get("stride", 1), shape.get("dilation", 1)
    pad = shape.get("padding", 0)
    if op == "conv1d":
        return lambda: F.conv1d(x, w, b, stride, pad, dilation, groups)
    if op == "conv_transpose1d":
        return lambda: F.conv_transpose1d(x, w, b, stride, pad, shape.get("output_padding", 0),
                                          groups, dilation)
    if op == "conv2d":
        if isinstance(pad, list) and len(pad) == 4:  # (top, bottom, left, right): pad first
            top, bottom, left, right = pad
            return lambda: F.conv2d(F.pad(x, (left, right, top, bottom)), w, b,
                                    pair(stride, 1), 0, pair(dilation, 1), groups)
        return lambda: F.conv2d(x, w, b, pair(stride, 1), pair(pad, 0), pair(dilation, 1),
                                groups)
    if op == "conv_transpose2d":
        return lambda: F.conv_transpose2d(x, w, b, pair(stride, 1), pair(pad, 0),
                                          pair(shape.get("output_padding", 0), 0), groups,
                                          pair(dilation, 1))
    raise ValueError(op)


def time_it(fn, min_runs, budget_s):
    fn()
    fn()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_runs or (time.perf_counter() - start < budget_s and len(samples) < 50):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default=os.path.join(here, "..", "conv_shapes.json"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=5, help="fewest timed runs per shape")
    ap.add_argument("--budget", type=float, default=2.0, help="seconds per shape")
    ap.add_argument("--filter", default="", help="only shapes whose name contains this")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shapes = json.load(open(args.shapes))["shapes"]
    results = {}
    with torch.inference_mode():
        for shape in shapes:
            if args.filter not in shape["name"]:
                continue
            samples = time_it(build(shape), args.runs, args.budget)
            results[shape["name"]] = {"median_s": statistics.median(samples),
                                      "min_s": min(samples), "runs": len(samples)}
            print(f"torch {shape['name']}: {statistics.median(samples) * 1e3:.2f} ms",
                  file=sys.stderr)
    json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(),
               "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
