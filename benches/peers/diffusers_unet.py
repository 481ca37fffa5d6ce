#!/usr/bin/env python3
"""Time one UNet step with classifier-free guidance and one VAE decode in diffusers, the peer of
`mlbench bench diffuse`.

Usage:
  diffusers_unet.py --unet-config JSON --vae-config JSON [--latent N] [--tokens N]
                    [--text-width N] [--threads N] [--runs N] [--warmup N]

The UNet (`UNet2DConditionModel(**unet_config)`) and the VAE (`AutoencoderKL(**vae_config)`) are
built from the same config.json content as mlbench builds them, with random weights. Inputs:
latents (2, 4, N, N) and text embeddings (2, tokens, width) at timestep 500 for the UNet, latents
(1, 4, N, N) for the VAE decode, all float32. `--warmup` untimed runs, then `--runs` timed ones
under torch.inference_mode(), with torch.set_num_threads(N). Prints one JSON object on stdout:

  {"peer": "diffusers", "implementation": "diffusers 0.42.1 (torch 2.15.0)", "threads": N,
   "warmup": W, "unet": {"times_s": [...]}, "vae": {"times_s": [...]}}
"""

import argparse
import json
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--unet-config", required=True, help="the UNet's config.json content")
    p.add_argument("--vae-config", required=True, help="the VAE's config.json content")
    p.add_argument("--latent", type=int, default=64, help="latent side")
    p.add_argument("--tokens", type=int, default=77)
    p.add_argument("--text-width", type=int, default=768)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args(argv)
    if args.runs < 1 or args.threads < 1 or args.latent < 1:
        p.error("--runs, --threads and --latent must be at least 1")
    return args


def times(f, warmup, runs):
    for _ in range(warmup):
        f()
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import diffusers
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.latent
    with torch.inference_mode():
        unet = diffusers.UNet2DConditionModel(**json.loads(args.unet_config)).float().eval()
        latents = torch.randn(2, 4, n, n)
        text = torch.randn(2, args.tokens, args.text_width)
        t = torch.tensor(500.0)
        unet_times = times(lambda: unet(latents, t, encoder_hidden_states=text), args.warmup, args.runs)
        del unet
        vae = diffusers.AutoencoderKL(**json.loads(args.vae_config)).float().eval()
        z = torch.randn(1, 4, n, n)
        vae_times = times(lambda: vae.decode(z), args.warmup, args.runs)
    print(
        json.dumps(
            {
                "peer": "diffusers",
                "implementation": f"diffusers {diffusers.__version__} (torch {torch.__version__})",
                "threads": args.threads,
                "warmup": args.warmup,
                "unet": {"times_s": unet_times},
                "vae": {"times_s": vae_times},
            }
        )
    )


if __name__ == "__main__":
    main()
