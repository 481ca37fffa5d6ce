#!/usr/bin/env python3
"""Golden tensors for mlbench-vision, computed with PyTorch.

Usage:
  vision_goldens.py lite0 MODEL.safetensors   EfficientNet-lite0 logits of the photos in tests/data
  vision_goldens.py bench MODEL.safetensors [SPEED_BIN]
                                              ms/image of EfficientNet-lite0, 2 threads: PyTorch,
                                              and mlbench side by side with SPEED_BIN (build it:
                                              cargo build --release -p mlbench-vision --example speed;
                                              target/release/examples/speed)
  vision_goldens.py tiny                      tiny random ResNet/ViT/ConvNeXt checkpoints + goldens
  vision_goldens.py tiny-arch ARCH            one more tiny checkpoint + its own golden file
                                              (ARCH: dinov2, dinov2-swiglu, clip, mobilenetv4)

`tiny` writes tests/data/vision-tiny-{resnet,resnet-basic,vit,efficientnet,convnext}/ (config.json,
preprocessor_config.json, model.safetensors: transformers' *ForImageClassification with random
weights, 3 labels) and tests/golden/vision-tiny.safetensors: per model, `ARCH.input` (2, 3, 32, 32)
random pixel values and `ARCH.logits`, and `ARCH.chelsea.pixel_values` (what the model's own
transformers image processor makes of tests/data/chelsea.png) and `ARCH.chelsea.logits`.

`tiny-arch ARCH` writes tests/data/vision-tiny-ARCH/ and tests/golden/vision-tiny-ARCH.safetensors
with the same keys (without the `ARCH.` prefix) and leaves every other file alone. `dinov2` is
pretrained for 40×40 and fed 32×32, so its position embeddings are interpolated (bicubic).
`mobilenetv4` is timm's (timm==1.0.31) `mobilenetv4_conv_medium` built with channel multiplier 1/16
(the 1280-wide head stays), saved by `timm.models.save_for_hf` in float16 to stay small (the
goldens come from the f16-rounded weights, run in f32), fed 64×64.

MODEL.safetensors is what scripts/fetch-test-weights.sh leaves in DIR/efficientnet-lite0/.
Needs torch, pillow, safetensors and efficientnet-lite-pytorch==0.1.0 (the implementation the
weights were published with; PyPI).

`bench` uses PyTorch's default settings. On a busy machine its OpenMP threads spin while waiting
and lose 4-5x; OMP_WAIT_POLICY=PASSIVE avoids that (but halves its batch-1 speed when quiet).

Preprocessing (shared/weights.md): short side to 256 with PIL bicubic, centre crop 224,
(x - 127) / 128. The golden stores the cropped uint8 pixels (3, 224, 224) of each photo, so the
Rust test can feed the very same tensor to its model, and the logits (1000).
"""

import os
import sys
import time

import torch
from PIL import Image
from safetensors.torch import load_file, save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PHOTOS = ["chelsea.png", "coffee.png", "rocket.jpg"]


def lite0(weights):
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(load_file(weights))
    return model.eval()


def crop_224(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = 256 / min(w, h)
    nw, nh = round(w * scale), round(h * scale)
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - 224) // 2, (nh - 224) // 2
    img = img.crop((left, top, left + 224, top + 224))
    return torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).reshape(224, 224, 3).permute(2, 0, 1).contiguous()


def normalize(pixels):
    return (pixels.float() - 127.0) / 128.0


def golden_lite0(weights):
    model = lite0(weights)
    out = {}
    with torch.no_grad():
        for name in PHOTOS:
            pixels = crop_224(os.path.join(ROOT, "tests", "data", name))
            logits = model(normalize(pixels)[None])[0]
            stem = name.split(".")[0]
            out[f"{stem}.pixels"] = pixels
            out[f"{stem}.logits"] = logits.contiguous()
            top = logits.softmax(-1).topk(5)
            print(stem, [(int(i), round(float(p), 4)) for p, i in zip(top.values, top.indices)])
    path = os.path.join(ROOT, "tests", "golden", "vision-efficientnet-lite0.safetensors")
    save_file(out, path)
    print("wrote", path)


def bench(weights, speed_bin=None, rounds=3, runs=40):
    """PyTorch (2 threads) and, with speed_bin (mlbench-vision's `speed` example), mlbench on the
    same preprocessed photo, alternating `rounds` times; best median per side and batch size."""
    import re
    import subprocess

    torch.set_num_threads(2)
    model = lite0(weights)
    photo = os.path.join(ROOT, "tests", "data", "chelsea.png")
    x = normalize(crop_224(photo))[None]
    best = {}
    for _ in range(rounds):
        with torch.no_grad():
            for batch in (1, 8):
                xb = x.repeat(batch, 1, 1, 1)
                for _ in range(3):
                    model(xb)
                times = []
                for _ in range(max(3, runs // batch)):
                    t = time.perf_counter()
                    model(xb)
                    times.append(time.perf_counter() - t)
                times.sort()
                ms = times[len(times) // 2] * 1e3 / batch
                key = ("pytorch", batch)
                best[key] = min(best.get(key, ms), ms)
        if speed_bin:
            env = dict(os.environ, RAYON_NUM_THREADS="2")
            out = subprocess.run([speed_bin, os.path.dirname(os.path.abspath(weights)), photo, str(runs)],
                                 env=env, check=True, capture_output=True, text=True).stdout
            for batch, ms in re.findall(r"batch (\d+): median [\d.]+ ms, ([\d.]+) ms/image", out):
                key = ("mlbench", int(batch))
                best[key] = min(best.get(key, float(ms)), float(ms))
    print(f"EfficientNet-lite0, 2 threads, best of {rounds} alternating rounds (median of each):")
    for batch in (1, 8):
        pt = best[("pytorch", batch)]
        line = f"  batch {batch}: pytorch {torch.__version__} {pt:.2f} ms/image ({1e3 / pt:.1f} images/s)"
        if ("mlbench", batch) in best:
            mb = best[("mlbench", batch)]
            line += f", mlbench {mb:.2f} ms/image ({1e3 / mb:.1f} images/s), mlbench/pytorch {mb / pt:.2f}"
        print(line)


LABELS = {0: "cat", 1: "dog", 2: "bird"}


def tiny_models():
    import transformers as tf

    common = dict(num_channels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    imagenet = dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    return {
        "resnet": (
            tf.ResNetForImageClassification(tf.ResNetConfig(
                embedding_size=8, hidden_sizes=[8, 16, 24], depths=[1, 2, 1],
                layer_type="bottleneck", **common)),
            tf.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875, **imagenet),
        ),
        "resnet-basic": (
            tf.ResNetForImageClassification(tf.ResNetConfig(
                embedding_size=8, hidden_sizes=[8, 16], depths=[2, 1], layer_type="basic",
                downsample_in_first_stage=True, **common)),
            tf.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875, **imagenet),
        ),
        "vit": (
            tf.ViTForImageClassification(tf.ViTConfig(
                image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2,
                num_attention_heads=2, intermediate_size=32, **common)),
            tf.ViTImageProcessor(size={"height": 32, "width": 32}),
        ),
        "efficientnet": (
            tf.EfficientNetForImageClassification(tf.EfficientNetConfig(
                image_size=32, width_coefficient=0.25, depth_coefficient=1.0,
                in_channels=[32, 16, 24], out_channels=[16, 24, 40], kernel_sizes=[3, 3, 5],
                strides=[1, 2, 2], num_block_repeats=[1, 2, 1], expand_ratios=[1, 6, 6],
                depthwise_padding=[3], hidden_dim=320, **common)),
            tf.EfficientNetImageProcessor(size={"height": 32, "width": 32}),
        ),
        "convnext": (
            tf.ConvNextForImageClassification(tf.ConvNextConfig(
                patch_size=4, num_stages=2, hidden_sizes=[8, 16], depths=[2, 1], image_size=32,
                layer_scale_init_value=0.5, **common)),
            tf.ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875, **imagenet),
        ),
    }


def extra_tiny_models():
    """Architectures added after `tiny`; each gets its own golden file."""
    import transformers as tf

    common = dict(num_channels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    bit = dict(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32}, resample=3,
               image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    dinov2 = dict(patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                  mlp_ratio=2, layerscale_value=0.5, **common)
    return {
        "dinov2": lambda: (
            tf.Dinov2ForImageClassification(tf.Dinov2Config(image_size=40, **dinov2)),
            tf.BitImageProcessor(**bit),
        ),
        "dinov2-swiglu": lambda: (
            tf.Dinov2ForImageClassification(tf.Dinov2Config(
                image_size=32, use_swiglu_ffn=True, **dinov2)),
            tf.BitImageProcessor(**bit),
        ),
        "clip": lambda: (
            tf.CLIPForImageClassification(tf.CLIPConfig(
                text_config=dict(vocab_size=64, hidden_size=8, intermediate_size=16,
                                 num_hidden_layers=1, num_attention_heads=2,
                                 max_position_embeddings=8),
                vision_config=dict(image_size=32, patch_size=8, hidden_size=16,
                                   intermediate_size=32, num_hidden_layers=2,
                                   num_attention_heads=2),
                projection_dim=8, **common)),
            tf.CLIPImageProcessor(size={"shortest_edge": 32},
                                  crop_size={"height": 32, "width": 32}),
        ),
    }


def tiny_mobilenetv4():
    """timm's MobileNetV4-conv-medium at 1/16 of the channels, saved as timm writes hub
    checkpoints (config.json with pretrained_cfg, model.safetensors) in float16."""
    from timm.data import create_transform, resolve_data_config
    from timm.models import save_for_hf
    from timm.models.mobilenetv3 import _gen_mobilenet_v4

    model = _gen_mobilenet_v4("mobilenetv4_conv_medium", channel_multiplier=0.0625, num_classes=3)
    model.pretrained_cfg = dict(model.pretrained_cfg, input_size=(3, 64, 64), crop_pct=0.9,
                                test_input_size=(3, 64, 64), pool_size=(2, 2))
    randomize(model)
    model.eval().half().float()
    dest = os.path.join(ROOT, "tests", "data", "vision-tiny-mobilenetv4")
    os.makedirs(dest, exist_ok=True)
    save_for_hf(model.half(), dest, model_config={"label_names": list(LABELS.values())},
                model_args={"channel_multiplier": 0.0625}, safe_serialization=True)
    model.float()
    transform = create_transform(**resolve_data_config({}, model=model))
    photo = Image.open(os.path.join(ROOT, "tests", "data", "chelsea.png")).convert("RGB")
    x = torch.randn(2, 3, 64, 64)
    pixels = transform(photo)[None]
    with torch.no_grad():
        out = {
            "input": x,
            "logits": model(x),
            "chelsea.pixel_values": pixels[0].contiguous(),
            "chelsea.logits": model(pixels)[0].contiguous(),
        }
    size = os.path.getsize(os.path.join(dest, "model.safetensors"))
    print("mobilenetv4", f"{size} bytes", out["logits"].tolist())
    path = os.path.join(ROOT, "tests", "golden", "vision-tiny-mobilenetv4.safetensors")
    save_file(out, path)
    print("wrote", path)


def randomize(model):
    """Random weights everywhere, batch-norm statistics included (else they are 0 / 1), and
    weights scaled by fan-in so the signal reaches the logits (transformers' std 0.02 init leaves
    EfficientNet's logits independent of the input)."""
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = mod.weight[0].numel()
                mod.weight.normal_(0.0, fan_in ** -0.5)
                if mod.bias is not None:
                    mod.bias.uniform_(-0.1, 0.1)
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
            if isinstance(mod, torch.nn.LayerNorm):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.5, 0.5)
        # Layer scales, class/position embeddings: random too, so a mix-up shows.
        for name, p in model.named_parameters():
            if name.endswith(("lambda1", "cls_token", "class_embedding", "position_embeddings",
                              "position_embedding.weight")):
                p.normal_(0.0, 0.5)


def golden_tiny_arch(name):
    if name == "mobilenetv4":
        torch.manual_seed(1)
        return tiny_mobilenetv4()
    models = extra_tiny_models()
    if name not in models:
        sys.exit(f"unknown ARCH {name!r}; one of {', '.join(models)}")
    torch.manual_seed(1)
    model, processor = models[name]()
    model.eval()
    randomize(model)
    photo = Image.open(os.path.join(ROOT, "tests", "data", "chelsea.png")).convert("RGB")
    dest = os.path.join(ROOT, "tests", "data", f"vision-tiny-{name}")
    os.makedirs(dest, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    x = torch.randn(2, 3, 32, 32)
    pixels = processor(images=photo, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = {
            "input": x,
            "logits": model(pixel_values=x).logits,
            "chelsea.pixel_values": pixels[0].contiguous(),
            "chelsea.logits": model(pixel_values=pixels).logits[0].contiguous(),
        }
    size = os.path.getsize(os.path.join(dest, "model.safetensors"))
    print(name, f"{size} bytes", out["logits"].tolist())
    path = os.path.join(ROOT, "tests", "golden", f"vision-tiny-{name}.safetensors")
    save_file(out, path)
    print("wrote", path)


def golden_tiny():
    torch.manual_seed(0)
    out = {}
    photo = Image.open(os.path.join(ROOT, "tests", "data", "chelsea.png")).convert("RGB")
    for name, (model, processor) in tiny_models().items():
        model.eval()
        # Random weights everywhere, batch-norm statistics included (else they are 0 / 1), and
        # weights scaled by fan-in so the signal reaches the logits (transformers' std 0.02
        # init leaves EfficientNet's logits independent of the input).
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                    fan_in = mod.weight[0].numel()
                    mod.weight.normal_(0.0, fan_in ** -0.5)
                    if mod.bias is not None:
                        mod.bias.uniform_(-0.1, 0.1)
                if isinstance(mod, torch.nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.5, 0.5)
                    mod.running_var.uniform_(0.5, 1.5)
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.5, 0.5)
                if isinstance(mod, torch.nn.LayerNorm):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.5, 0.5)
        dest = os.path.join(ROOT, "tests", "data", f"vision-tiny-{name}")
        os.makedirs(dest, exist_ok=True)
        model.save_pretrained(dest, safe_serialization=True)
        processor.save_pretrained(dest)
        x = torch.randn(2, 3, 32, 32)
        pixels = processor(images=photo, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            out[f"{name}.input"] = x
            out[f"{name}.logits"] = model(pixel_values=x).logits
            out[f"{name}.chelsea.pixel_values"] = pixels[0].contiguous()
            out[f"{name}.chelsea.logits"] = model(pixel_values=pixels).logits[0].contiguous()
        size = os.path.getsize(os.path.join(dest, "model.safetensors"))
        print(name, f"{size} bytes", out[f"{name}.logits"].tolist())
    path = os.path.join(ROOT, "tests", "golden", "vision-tiny.safetensors")
    save_file(out, path)
    print("wrote", path)


if __name__ == "__main__":
    commands = {"lite0": golden_lite0, "bench": bench, "tiny": golden_tiny,
                "tiny-arch": golden_tiny_arch}
    nargs = {"lite0": (3,), "bench": (3, 4), "tiny": (2,), "tiny-arch": (3,)}
    if len(sys.argv) < 2 or sys.argv[1] not in commands or len(sys.argv) not in nargs[sys.argv[1]]:
        sys.exit(__doc__)
    commands[sys.argv[1]](*sys.argv[2:])
