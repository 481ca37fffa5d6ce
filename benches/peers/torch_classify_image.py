#!/usr/bin/env python3
"""Time an image classifier's forward pass in PyTorch, the peer of `mlbench bench classify-image`.

Usage:
  torch_classify_image.py (--config JSON --model-type resnet|vit | --model PATH)
                          [--image-size N] [--batch-sizes 1,8] [--threads N] [--runs N]
                          [--warmup N]

--config/--model-type: a transformers architecture built from that config.json content with
random weights (`*ForImageClassification(config)`), as mlbench builds it. --model: a checkpoint;
a folder with config.json is loaded with transformers' AutoModelForImageClassification, and
EfficientNet-Lite weights (a model.safetensors with `_conv_stem.weight`, as
scripts/fetch-test-weights.sh leaves it) with efficientnet-lite-pytorch, the implementation the
weights were published for.

Per batch size: a fixed normal batch (b, 3, size, size) in float32, `--warmup` untimed forward
passes, then `--runs` timed ones under torch.inference_mode(), with torch.set_num_threads(N).
Prints one JSON object on stdout:

  {"peer": "pytorch", "implementation": "transformers 5.24.0 (torch 2.15.0)", "threads": N,
   "warmup": W, "results": [{"batch_size": b, "times_s": [...]}, ...]}
"""

import argparse
import json
import os
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="config.json content of a random-weight architecture")
    what.add_argument("--model", help="checkpoint folder or .safetensors file")
    p.add_argument("--model-type", choices=["resnet", "vit"], help="architecture of --config")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args(argv)
    if args.config is not None and args.model_type is None:
        p.error("--config needs --model-type")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if not args.batch_sizes or min(args.batch_sizes) < 1 or args.runs < 1 or args.threads < 1:
        p.error("--batch-sizes, --runs and --threads must be at least 1")
    return args


def random_model(config_json, model_type):
    import transformers

    config = json.loads(config_json)
    config.pop("model_type", None)
    if model_type == "resnet":
        cfg = transformers.ResNetConfig(**config)
        model = transformers.ResNetForImageClassification(cfg)
    else:
        cfg = transformers.ViTConfig(**config)
        model = transformers.ViTForImageClassification(cfg)
    return model, f"transformers {transformers.__version__}"


def checkpoint(path):
    weights = path if path.endswith(".safetensors") else os.path.join(path, "model.safetensors")
    from safetensors import safe_open

    with safe_open(weights, "pt") as f:
        lite = "_conv_stem.weight" in f.keys()
    if lite:
        import efficientnet_lite_pytorch
        from efficientnet_lite_pytorch import EfficientNet
        from safetensors.torch import load_file

        model = EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(load_file(weights))
        version = getattr(efficientnet_lite_pytorch, "__version__", "0.1.0")
        return model, f"efficientnet-lite-pytorch {version}"
    import transformers

    model = transformers.AutoModelForImageClassification.from_pretrained(path)
    return model, f"transformers {transformers.__version__}"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.config is not None:
        model, name = random_model(args.config, args.model_type)
    else:
        model, name = checkpoint(args.model)
    model = model.float().eval()
    results = []
    with torch.inference_mode():
        for b in args.batch_sizes:
            x = torch.randn(b, 3, args.image_size, args.image_size)
            for _ in range(args.warmup):
                model(x)
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t)
            results.append({"batch_size": b, "times_s": times})
    print(
        json.dumps(
            {
                "peer": "pytorch",
                "implementation": f"{name} (torch {torch.__version__})",
                "threads": args.threads,
                "warmup": args.warmup,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
