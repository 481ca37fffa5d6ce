#!/usr/bin/env python3
"""Write tests/golden/conv.safetensors: PyTorch convolutions that mlbench-core's conv layers
(crates/mlbench-core/src/kernels/conv) are checked against in crates/mlbench-core/tests/conv.rs.

Each case `NAME` stores `NAME.x` (input), `NAME.w` (weight), `NAME.b` (bias) and `NAME.y`
(PyTorch's output, f32 on the CPU), with the hyper-parameters in the file's metadata as JSON
(`cases`: name -> {op, stride, padding, dilation, groups, output_padding}). Shapes are small
versions of the layers of the project's models, chosen to exercise one feature each:

- conv1d stem (Whisper: kernel 3, padding 1, stride 2), dilated conv1d (HiFi-GAN resblock),
  grouped + dilated conv1d (VITS duration predictor's depthwise-separable conv);
- conv2d 3x3 (SD UNet), depthwise 5x5 stride 2 (EfficientNet), TF "same" asymmetric padding
  applied with F.pad (EfficientNet-lite stem), grouped conv2d, rectangular stride/dilation;
- conv_transpose1d (HiFi-GAN upsampling, kernel 16 stride 8 padding 4), conv_transpose2d with
  groups and output_padding.

Usage (torch, numpy and safetensors from PyPI; see requirements.txt):
    /tmp/refvenv/bin/python scripts/reference/conv_goldens.py [OUT]
"""

import json
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file


def case(op, x_shape, w_shape, *, stride=1, padding=0, dilation=1, groups=1, output_padding=0):
    return dict(op=op, x=x_shape, w=w_shape, stride=stride, padding=padding,
                dilation=dilation, groups=groups, output_padding=output_padding)


CASES = {
    "conv1d_stem": case("conv1d", [1, 20, 50], [24, 20, 3], stride=2, padding=1),
    "conv1d_dilated": case("conv1d", [1, 16, 40], [16, 16, 5], padding=6, dilation=3),
    "conv1d_grouped": case("conv1d", [2, 12, 30], [12, 3, 3], padding=3, dilation=3, groups=4),
    "conv2d_3x3": case("conv2d", [2, 8, 12, 10], [16, 8, 3, 3], padding=1),
    "conv2d_depthwise_s2": case("conv2d", [1, 6, 11, 13], [6, 1, 5, 5], stride=2, padding=2,
                                groups=6),
    # TF "same" for 16x16, kernel 3, stride 2: pad (0, 1) on each axis, via F.pad.
    "conv2d_tf_same": case("conv2d", [1, 3, 16, 16], [8, 3, 3, 3], stride=2,
                           padding=[0, 1, 0, 1]),
    "conv2d_grouped": case("conv2d", [1, 8, 9, 9], [6, 4, 3, 3], padding=1, groups=2),
    "conv2d_rect": case("conv2d", [1, 4, 12, 14], [5, 4, 3, 2], stride=[2, 1], padding=[1, 2],
                        dilation=[1, 2]),
    "conv_transpose1d_up": case("conv_transpose1d", [1, 16, 12], [16, 8, 16], stride=8,
                                padding=4),
    "conv_transpose2d_grouped": case("conv_transpose2d", [1, 6, 5, 7], [6, 2, 3, 3], stride=2,
                                     padding=1, groups=3, output_padding=1),
}


def run(c, x, w, b):
    if c["op"] == "conv1d":
        return F.conv1d(x, w, b, c["stride"], c["padding"], c["dilation"], c["groups"])
    if c["op"] == "conv2d":
        pad = c["padding"]
        if isinstance(pad, list) and len(pad) == 4:  # (top, bottom, left, right)
            x = F.pad(x, (pad[2], pad[3], pad[0], pad[1]))
            pad = 0
        return F.conv2d(x, w, b, c["stride"], pad, c["dilation"], c["groups"])
    if c["op"] == "conv_transpose1d":
        return F.conv_transpose1d(x, w, b, c["stride"], c["padding"], c["output_padding"],
                                  c["groups"], c["dilation"])
    if c["op"] == "conv_transpose2d":
        return F.conv_transpose2d(x, w, b, c["stride"], c["padding"], c["output_padding"],
                                  c["groups"], c["dilation"])
    raise ValueError(c["op"])


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/golden/conv.safetensors"
    torch.manual_seed(0)
    tensors = {}
    for name, c in CASES.items():
        x = torch.randn(c["x"])
        w = torch.randn(c["w"]) / (c["w"][1] * c["w"][2]) ** 0.5
        out_ch = c["w"][0] if c["op"].startswith("conv") and "transpose" not in c["op"] \
            else c["w"][1] * c["groups"]
        b = torch.randn(out_ch)
        y = run(c, x, w, b)
        tensors.update({f"{name}.x": x, f"{name}.w": w, f"{name}.b": b,
                        f"{name}.y": y.contiguous()})
    meta = {"cases": json.dumps(CASES), "torch": torch.__version__}
    save_file(tensors, out, metadata=meta)
    print(f"wrote {len(CASES)} cases to {out}")


if __name__ == "__main__":
    main()
