#!/usr/bin/env bash
# mlbench vs faster-whisper, side by side, on the same weights, clips and decoding settings.
#
# Usage: benches/stt_side_by_side.sh [RUNS] [--json FILE]
#
#   RUNS         runs per tool and config, the best time kept (default 3)
#   --json FILE  also write the results (every run's time, WER and texts) as JSON to FILE
#
# Needs: python3 with venv + pip, Debian's pocketsphinx-testdata (the clips), the test weights
# (scripts/fetch-test-weights.sh) and a release build (cargo build --release -p mlbench).
# Environment:
#   MLBENCH_PEER_VENV     venv for faster-whisper (default ~/.cache/mlbench/peer-venv; created and
#                         kept in step with benches/peers/requirements.txt)
#   MLBENCH_TEST_WEIGHTS  weights directory (default ~/.cache/mlbench/test-weights)
#   MLBENCH_BIN           mlbench binary (default ./target/release/mlbench)
#   MLBENCH_BENCH_THREADS CPU threads for both tools (default 2)
#   MLBENCH_BENCH_CLIPS   clips directory with a `transcription` file
#                         (default /usr/share/pocketsphinx/test/data/librivox)
# The table goes to stdout, progress to stderr. See benches/README.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$ROOT/benches/peers"
PYTHON="${PYTHON:-python3}"

RUNS=3
JSON=()
while (($# > 0)); do
    case "$1" in
        --json)
            [[ $# -ge 2 ]] || { echo "stt_side_by_side: --json needs a FILE" >&2; exit 2; }
            JSON=(--json "$2")
            shift 2
            ;;
        --json=*) JSON=(--json "${1#--json=}"); shift ;;
        -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        [0-9]*) RUNS="$1"; shift ;;
        *) echo "stt_side_by_side: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

log() { printf 'stt_side_by_side: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

VENV="${MLBENCH_PEER_VENV:-$HOME/.cache/mlbench/peer-venv}"
WEIGHTS="${MLBENCH_TEST_WEIGHTS:-$HOME/.cache/mlbench/test-weights}"
MODEL="$WEIGHTS/whisper-tiny.en-ct2"
BIN="${MLBENCH_BIN:-$ROOT/target/release/mlbench}"
THREADS="${MLBENCH_BENCH_THREADS:-2}"
CLIPS="${MLBENCH_BENCH_CLIPS:-/usr/share/pocketsphinx/test/data/librivox}"

[[ -x "$BIN" ]] || die "$BIN missing: run 'cargo build --release -p mlbench' first"
[[ -f "$MODEL/model.bin" ]] || die "$MODEL missing: run scripts/fetch-test-weights.sh first"
[[ -f "$CLIPS/transcription" ]] ||
    die "$CLIPS/transcription missing: install Debian's pocketsphinx-testdata (apt-get install pocketsphinx-testdata)"

# The peer's venv, (re)installed whenever requirements.txt changes.
REQS="$PEERS/requirements.txt"
STAMP="$VENV/.mlbench-requirements"
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
if ! cmp -s "$REQS" "$STAMP"; then
    log "installing $REQS into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS" >&2 ||
        die "pip install -r $REQS failed"
    cp -- "$REQS" "$STAMP"
fi

exec "$PYTHON" "$PEERS/side_by_side.py" --mlbench "$BIN" --model "$MODEL" \
    --peer-python "$VENV/bin/python" --runs "$RUNS" --threads "$THREADS" --clips "$CLIPS" \
    "${JSON[@]+"${JSON[@]}"}"
