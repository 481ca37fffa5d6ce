#!/usr/bin/env bash
# Makes the PyTorch venv that `mlbench bench classify-image --peers` (torch_classify_image.py) and
# benches/conv.rs run their peers in: requirements-transformers.txt (torch, transformers,
# efficientnet-lite-pytorch) from PyPI. torch pulls its CUDA libraries too, a few GB, but runs on
# the CPU here. Idempotent; prints the venv's python.
# Environment: MLBENCH_TORCH_VENV (default ~/.cache/mlbench/torch-venv).
set -euo pipefail
venv="${MLBENCH_TORCH_VENV:-$HOME/.cache/mlbench/torch-venv}"
req="$(dirname "$0")/requirements-transformers.txt"
if [ ! -x "$venv/bin/python" ] ||
    ! "$venv/bin/python" -c "import torch, transformers, safetensors, efficientnet_lite_pytorch, sentence_transformers, diffusers" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$req" >&2
fi
echo "$venv/bin/python"
