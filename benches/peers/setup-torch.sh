#!/usr/bin/env bash
# Makes the PyTorch venv that benches/conv.rs runs its peer in (PyPI; torch pulls its CUDA
# libraries too, a few GB, but runs on the CPU here). Prints the venv's python.
set -euo pipefail
venv="${MLBENCH_TORCH_VENV:-$HOME/.cache/mlbench/torch-venv}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$(dirname "$0")/requirements-torch.txt" >&2
fi
echo "$venv/bin/python"
