#!/usr/bin/env python3
"""Tiny random Stable Diffusion pipelines and golden tensors for mlbench-diffusion (diffusers).

Usage:
  diffusion_goldens.py tiny          tests/data/diffusion-tiny-sd{,xl}/ + tests/golden/diffusion-tiny-sd{,xl}.safetensors
  diffusion_goldens.py bench [BIN]   one UNet step at 512x512 with CFG (batch 2), SD 1.5 shape, random
                                     weights, 2 threads: diffusers, and mlbench side by side with BIN
                                     (cargo build --release -p mlbench-diffusion --example unet_speed)

`tiny` builds, with fixed seeds, an SD-1.5-shaped pipeline in diffusers layout (model_index.json;
unet/, vae/, text_encoder/, tokenizer/, scheduler/) with tiny channel counts: a UNet (stored in f16) with blocks
(CrossAttnDownBlock2D, DownBlock2D) of 32 channels (32 groups, as candle's blocks need), a 2-block VAE (scale factor 2), a 2-layer
CLIP text encoder of width 16 and a CLIP BPE tokenizer with a tiny vocabulary (bytes plus the
merges of the prompt's words; vocab.json + merges.txt only, as real SD repos ship it).

Goldens (names in tests/golden/README.md): token ids and text embeddings of prompts, one UNet
output for given (latents, timestep, embeddings), a VAE decode of given latents, scheduler steps on
given inputs for each scheduler and config variant (the ancestral noise is given too), and whole
images from given latents.

Needs torch, diffusers, transformers, safetensors (scripts/reference/requirements.txt).
"""

import json
import os
import shutil
import sys
import time

import torch
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data", "diffusion-tiny-sd")
GOLDEN = os.path.join(ROOT, "tests", "golden", "diffusion-tiny-sd.safetensors")

PROMPT = "a photo of a cat, painting"
NEGATIVE = "blurry"
WORDS = ["a", "photo", "of", "cat", "painting", "blurry", "dog"]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def tiny_tokenizer(folder):
    """vocab.json + merges.txt in CLIP's layout: bytes, bytes + </w>, merges, then the specials."""
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars]
    merges = []
    for word in WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if " ".join(pair) not in merges:
                merges.append(" ".join(pair))
                vocab.append(pair[0] + pair[1])
            parts = [pair[0] + pair[1]] + parts[2:]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
    return len(vocab)


def build_tiny():
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if os.path.exists(DATA):
        shutil.rmtree(DATA)
    tmp_tok = os.path.join(DATA, "tokenizer")
    vocab_size = tiny_tokenizer(tmp_tok)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=2,
        norm_num_groups=32,
    )
    torch.manual_seed(1)
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
        sample_size=16,
    )
    torch.manual_seed(2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=16,
            hidden_act="quick_gelu",
            bos_token_id=vocab_size - 2,
            eos_token_id=vocab_size - 1,
            pad_token_id=vocab_size - 1,
        )
    )
    # Small random perturbations so that norms and biases are not all 1 / 0.
    with torch.no_grad():
        for model in (unet, vae, text_encoder):
            for name, p in model.named_parameters():
                if name.endswith("bias") or "norm" in name:
                    p.add_(torch.randn_like(p) * 0.1)
    tokenizer = CLIPTokenizer(os.path.join(tmp_tok, "vocab.json"), os.path.join(tmp_tok, "merges.txt"),
                              model_max_length=77, pad_token="<|endoftext|>")
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    # The UNet is stored in f16 to keep the file small; everything runs in f32 from those values.
    unet.half()
    pipe.save_pretrained(DATA, safe_serialization=True)
    unet.float()
    # Keep the tokenizer as real SD repos ship it: vocab.json + merges.txt (+ tokenizer_config.json).
    shutil.rmtree(tmp_tok)
    tiny_tokenizer(tmp_tok)
    # The goldens come from the pipeline as a user loads it from disk.
    return StableDiffusionPipeline.from_pretrained(DATA, safety_checker=None)


DATA_XL = os.path.join(ROOT, "tests", "data", "diffusion-tiny-sdxl")
GOLDEN_XL = os.path.join(ROOT, "tests", "golden", "diffusion-tiny-sdxl.safetensors")


def build_tiny_xl():
    """SDXL-shaped: two text encoders (the second with projection), text_time added conditioning."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    if os.path.exists(DATA_XL):
        shutil.rmtree(DATA_XL)
    toks = []
    for name, pad in [("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")]:
        folder = os.path.join(DATA_XL, name)
        vocab_size = tiny_tokenizer(folder)
        cfg = os.path.join(folder, "tokenizer_config.json")
        c = json.load(open(cfg))
        c["pad_token"] = pad
        json.dump(c, open(cfg, "w"), indent=2)
        toks.append(CLIPTokenizer(os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt"),
                                  model_max_length=77, pad_token=pad))
    torch.manual_seed(10)
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(32, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 16,
        cross_attention_dim=32,
        norm_num_groups=32,
    )
    torch.manual_seed(11)
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4, norm_num_groups=4, layers_per_block=1, sample_size=16, scaling_factor=0.13025,
    )
    def te_config(act):
        return CLIPTextConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                              num_attention_heads=2, max_position_embeddings=77, projection_dim=16, hidden_act=act,
                              bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    torch.manual_seed(12)
    te1 = CLIPTextModel(te_config("quick_gelu"))
    torch.manual_seed(13)
    te2 = CLIPTextModelWithProjection(te_config("gelu"))
    with torch.no_grad():
        for model in (unet, vae, te1, te2):
            for name, p in model.named_parameters():
                if name.endswith("bias") or "norm" in name:
                    p.add_(torch.randn_like(p) * 0.1)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=toks[0],
                                     tokenizer_2=toks[1], unet=unet, scheduler=scheduler)
    unet.half()
    pipe.save_pretrained(DATA_XL, safe_serialization=True)
    for name, pad in [("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")]:
        folder = os.path.join(DATA_XL, name)
        shutil.rmtree(folder)
        tiny_tokenizer(folder)
        cfg = os.path.join(folder, "tokenizer_config.json")
        c = json.load(open(cfg))
        c["pad_token"] = pad
        json.dump(c, open(cfg, "w"), indent=2)
    return StableDiffusionXLPipeline.from_pretrained(DATA_XL)


def tiny_xl():
    pipe = build_tiny_xl()
    out = {}
    with torch.no_grad():
        for key, text in [("prompt", PROMPT), ("negative", NEGATIVE)]:
            ids = pipe.tokenizer_2(text, padding="max_length", max_length=77, truncation=True,
                                   return_tensors="pt").input_ids
            out[f"tokens2.{key}"] = ids[0].to(torch.int64)
        emb, neg, pooled, neg_pooled = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                                          do_classifier_free_guidance=True, negative_prompt=NEGATIVE)
        out["text.prompt_embeds"] = emb.contiguous()
        out["text.negative_embeds"] = neg.contiguous()
        out["text.pooled"] = pooled.contiguous()
        out["text.negative_pooled"] = neg_pooled.contiguous()
        _, neg0, _, neg_pooled0 = pipe.encode_prompt(PROMPT, device="cpu", num_images_per_prompt=1,
                                                     do_classifier_free_guidance=True, negative_prompt=None)
        assert neg0.abs().max() == 0 and neg_pooled0.abs().max() == 0  # force_zeros_for_empty_prompt
        g = torch.Generator().manual_seed(4)
        lat = torch.randn(2, 4, 8, 8, generator=g)
        time_ids = torch.tensor([[16.0, 16.0, 0.0, 0.0, 16.0, 16.0]] * 2)
        out["unet.latents"] = lat
        out["unet.timestep"] = torch.tensor([501.0])
        out["unet.embeds"] = torch.cat([neg, emb])
        out["unet.text_embeds"] = torch.cat([neg_pooled, pooled])
        out["unet.time_ids"] = time_ids
        out["unet.out"] = pipe.unet(lat, 501, encoder_hidden_states=out["unet.embeds"],
                                    added_cond_kwargs={"text_embeds": out["unet.text_embeds"],
                                                       "time_ids": time_ids}).sample.contiguous()
        latents = torch.randn(1, 4, 8, 8, generator=g)
        out["image.latents"] = latents
        image = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=5.0,
                     latents=latents.clone(), output_type="np", height=16, width=16).images[0]
        out["image.euler"] = torch.from_numpy(image).contiguous()
    save_file({k: v.contiguous() for k, v in out.items()}, GOLDEN_XL)
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(DATA_XL) for f in fs)
    print(f"{DATA_XL}: {total} bytes; {GOLDEN_XL}: {os.path.getsize(GOLDEN_XL)} bytes")


V_CONFIG = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
                clip_sample=False, set_alpha_to_one=False, prediction_type="v_prediction",
                timestep_spacing="trailing", rescale_betas_zero_snr=False)


def scheduler_goldens(out):
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
        UniPCMultistepScheduler,
    )
    import diffusers.schedulers.scheduling_euler_ancestral_discrete as ea_mod
    import diffusers.schedulers.scheduling_lcm as lcm_mod

    base = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1)
    cases = {
        "ddim": (DDIMScheduler, dict(base, clip_sample=False, set_alpha_to_one=False)),
        "ddim_v_trailing": (DDIMScheduler, V_CONFIG),
        "ddim_linear_spacing": (DDIMScheduler, dict(base, beta_schedule="linear", beta_start=0.0001, beta_end=0.02,
                                                    timestep_spacing="linspace", set_alpha_to_one=True,
                                                    clip_sample=False)),
        "euler": (EulerDiscreteScheduler, dict(base)),
        "euler_v_trailing": (EulerDiscreteScheduler, dict(base, prediction_type="v_prediction",
                                                          timestep_spacing="trailing")),
        "euler_karras_linspace": (EulerDiscreteScheduler, dict(base, use_karras_sigmas=True, timestep_spacing="linspace")),
        "euler_ancestral": (EulerAncestralDiscreteScheduler, dict(base)),
        "dpmpp_2m": (DPMSolverMultistepScheduler, dict(base)),
        "dpmpp_2m_karras": (DPMSolverMultistepScheduler, dict(base, use_karras_sigmas=True)),
        "dpmpp_2m_v": (DPMSolverMultistepScheduler, dict(base, prediction_type="v_prediction")),
        "unipc": (UniPCMultistepScheduler, dict(base)),
        "lcm": (LCMScheduler, dict(base, timestep_spacing="leading")),
    }
    steps = 5
    g = torch.Generator().manual_seed(10)
    sample0 = torch.randn(1, 4, 4, 4, generator=g)
    outputs = [torch.randn(1, 4, 4, 4, generator=g) for _ in range(steps)]
    noises = [torch.randn(1, 4, 4, 4, generator=g) for _ in range(steps)]
    out["sched.sample"] = sample0
    for i in range(steps):
        out[f"sched.model_output.{i}"] = outputs[i]
        out[f"sched.noise.{i}"] = noises[i]

    for name, (cls, cfg) in cases.items():
        sched = cls(**cfg)
        with open(os.path.join(ROOT, "tests", "data", "diffusion-schedulers", f"{name}.json"), "w") as f:
            f.write(sched.config_to_json_string() if hasattr(sched, "config_to_json_string") else json.dumps(dict(sched.config)))
        sched.set_timesteps(steps)
        out[f"sched.{name}.timesteps"] = sched.timesteps.to(torch.float32).clone()
        out[f"sched.{name}.init_noise_sigma"] = torch.tensor([float(sched.init_noise_sigma)])
        queue = list(noises)

        def fake_randn(shape, generator=None, device=None, dtype=None, layout=None):
            return queue.pop(0).to(dtype or torch.float32)

        ea_mod.randn_tensor = fake_randn
        lcm_mod.randn_tensor = fake_randn
        sample = sample0.clone()
        for i, t in enumerate(sched.timesteps):
            scaled = sched.scale_model_input(sample, t)
            out[f"sched.{name}.scaled.{i}"] = scaled.clone()
            sample = sched.step(outputs[i], t, sample).prev_sample
            out[f"sched.{name}.prev.{i}"] = sample.clone()
        # img2img: timesteps after strength 0.6 and add_noise at the first of them.
        sched = cls(**cfg)
        sched.set_timesteps(steps)
        t_start = max(steps - int(steps * 0.6), 0)
        ts = sched.timesteps[t_start * sched.order:]
        if hasattr(sched, "set_begin_index"):
            sched.set_begin_index(t_start * sched.order)
        out[f"sched.{name}.img2img_timesteps"] = ts.to(torch.float32).clone()
        out[f"sched.{name}.add_noise"] = sched.add_noise(sample0, noises[0], ts[:1]).clone()


def tiny():
    pipe = build_tiny()
    os.makedirs(os.path.join(ROOT, "tests", "data", "diffusion-schedulers"), exist_ok=True)
    out = {}
    tok = pipe.tokenizer
    for key, text in [("prompt", PROMPT), ("negative", NEGATIVE), ("empty", ""),
                      ("unknown", "Hello   WORLD  dog's! 42")]:
        ids = tok(text, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        out[f"tokens.{key}"] = ids[0].to(torch.int64)
    with torch.no_grad():
        emb, neg = pipe.encode_prompt(PROMPT, "cpu", 1, True, NEGATIVE)
        out["text.prompt_embeds"] = emb.contiguous()
        out["text.negative_embeds"] = neg.contiguous()
        emb_only = pipe.text_encoder(out["tokens.prompt"][None])
        out["text.pooled"] = emb_only.pooler_output.contiguous()

        g = torch.Generator().manual_seed(3)
        lat = torch.randn(2, 4, 8, 8, generator=g)
        out["unet.latents"] = lat
        out["unet.timestep"] = torch.tensor([501.0])
        out["unet.embeds"] = torch.cat([neg, emb])
        out["unet.out"] = pipe.unet(lat, 501, encoder_hidden_states=out["unet.embeds"]).sample.contiguous()

        z = torch.randn(1, 4, 8, 8, generator=g)
        out["vae.latents"] = z
        out["vae.decoded"] = pipe.vae.decode(z / pipe.vae.config.scaling_factor).sample.contiguous()
        img = torch.rand(1, 3, 16, 16, generator=g) * 2 - 1
        out["vae.image"] = img
        dist = pipe.vae.encode(img).latent_dist
        out["vae.encoded_mean"] = dist.mean.contiguous()
        out["vae.encoded_std"] = dist.std.contiguous()

        latents = torch.randn(1, 4, 8, 8, generator=g)
        out["image.latents"] = latents
        save_file({"latents": latents}, os.path.join(DATA, "..", "diffusion-tiny-sd-latents.safetensors"))
        from diffusers import DPMSolverMultistepScheduler, DDIMScheduler
        config = pipe.scheduler.config
        for name, cls in [("ddim", DDIMScheduler), ("dpmpp_2m", DPMSolverMultistepScheduler)]:
            pipe.scheduler = cls.from_config(config)
            image = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=7.5,
                         latents=latents.clone(), output_type="np", height=16, width=16).images[0]
            out[f"image.{name}"] = torch.from_numpy(image).contiguous()
        # v-prediction (SD 2.x-style scheduler config): tests/data/diffusion-schedulers/ddim_v_trailing.json
        pipe.scheduler = DDIMScheduler(**V_CONFIG)
        image = pipe(PROMPT, negative_prompt=NEGATIVE, num_inference_steps=4, guidance_scale=7.5,
                     latents=latents.clone(), output_type="np", height=16, width=16).images[0]
        out["image.ddim_v_trailing"] = torch.from_numpy(image).contiguous()
    scheduler_goldens(out)
    save_file({k: v.contiguous() for k, v in out.items()}, GOLDEN)
    total = 0
    for dp, _, fs in os.walk(DATA):
        for f in fs:
            total += os.path.getsize(os.path.join(dp, f))
    print(f"{DATA}: {total} bytes; {GOLDEN}: {os.path.getsize(GOLDEN)} bytes")


def bench(binary=None):
    from diffusers import UNet2DConditionModel

    torch.set_num_threads(2)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8).eval()
    lat = torch.randn(2, 4, 64, 64)
    emb = torch.randn(2, 77, 768)
    with torch.no_grad():
        unet(lat, 500, encoder_hidden_states=emb)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            unet(lat, 500, encoder_hidden_states=emb)
            times.append(time.perf_counter() - t0)
    print(f"diffusers (torch {torch.__version__}, 2 threads): one UNet step 2x4x64x64: {min(times):.2f} s (best of 3)")
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4).eval()
    z = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        vae.decode(z)
        t0 = time.perf_counter()
        vae.decode(z)
    print(f"diffusers: one VAE decode 1x4x64x64 -> 512x512: {time.perf_counter() - t0:.2f} s")
    if binary:
        os.system(binary)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    if cmd == "tiny":
        tiny()
        tiny_xl()
    elif cmd == "bench":
        bench(sys.argv[2] if len(sys.argv) > 2 else None)
    else:
        sys.exit(__doc__)
