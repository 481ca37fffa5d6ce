#!/usr/bin/env bash
# Makes the peer venv that `mlbench bench stt|tts --peers` and the side-by-side scripts run
# faster-whisper and Piper's onnxruntime in: requirements.txt and requirements-piper.txt from
# PyPI. Idempotent; prints the venv's python.
# Environment: MLBENCH_PEER_VENV (default ~/.cache/mlbench/peer-venv).
set -euo pipefail
venv="${MLBENCH_PEER_VENV:-$HOME/.cache/mlbench/peer-venv}"
dir="$(dirname "$0")"
if [ ! -x "$venv/bin/python" ] ||
    ! "$venv/bin/python" -c "import faster_whisper, ctranslate2, onnxruntime, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$dir/requirements.txt" -r "$dir/requirements-piper.txt" >&2
fi
echo "$venv/bin/python"
