#!/usr/bin/env bash
# mlbench tts vs Piper on onnxruntime, side by side: same voice, same phoneme ids, same scales.
#
# Usage: benches/tts_side_by_side.sh [RUNS]
#
#   RUNS   timed runs per tool, the best kept (default 3)
#
# Needs: the test weights (scripts/fetch-test-weights.sh: DIR/piper-joe-medium), espeak-ng, a
# release build (cargo build --release -p mlbench) and a python with numpy + onnxruntime
# ($MLBENCH_PEER_PYTHON, default: the venv benches/stt_side_by_side.sh uses,
# ~/.cache/mlbench/peer-venv, where `pip install onnxruntime numpy` is run if they are missing).
# Environment: MLBENCH_TEST_WEIGHTS, MLBENCH_BIN, MLBENCH_BENCH_THREADS (default 2).
# Real-time factor = synthesis seconds / audio seconds (lower is faster); mlbench's time is its
# `synthesize` stage (VITS only, as for onnxruntime; phonemization excluded for both).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS="${1:-3}"
WEIGHTS="${MLBENCH_TEST_WEIGHTS:-$HOME/.cache/mlbench/test-weights}"
BIN="${MLBENCH_BIN:-$ROOT/target/release/mlbench}"
THREADS="${MLBENCH_BENCH_THREADS:-2}"
VOICE="$WEIGHTS/piper-joe-medium/en_US-joe-medium.onnx"
[[ -f "$VOICE" ]] || { echo "tts_side_by_side: $VOICE missing: run scripts/fetch-test-weights.sh" >&2; exit 1; }
[[ -x "$BIN" ]] || { echo "tts_side_by_side: $BIN missing: cargo build --release -p mlbench" >&2; exit 1; }

PY="${MLBENCH_PEER_PYTHON:-}"
if [[ -z "$PY" ]]; then
    VENV="${MLBENCH_PEER_VENV:-$HOME/.cache/mlbench/peer-venv}"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" >&2
    PY="$VENV/bin/python"
    "$PY" -c "import onnxruntime, numpy" 2>/dev/null ||
        "$PY" -m pip install --quiet onnxruntime numpy >&2
fi

TMP="$(mktemp -d)"
trap 'rm -rf -- "$TMP"' EXIT
cat >"$TMP/text.txt" <<'TEXT'
The train leaves at 7 o'clock in the morning.
Please call me back before Friday, if you can.
She bought 12 eggs, 2 loaves of bread, and a bottle of milk.
Why did the old man walk home alone?
In 1999, the city built a new bridge across the river.
Turn left at the next corner; then go straight for 3 blocks.
The weather today is sunny, with a high of 25 degrees.
Could you send the report to my office by noon?
Our team won the game by 4 points!
He opened the door, looked outside, and smiled.
TEXT

"$BIN" tts --file "$TMP/text.txt" --model "$VOICE" --phonemes --json >"$TMP/ids.json"
# Alternating runs, so that a change in machine load hits both tools alike.
echo "tts_side_by_side: $RUNS alternating runs, $THREADS threads each" >&2
"$BIN" tts --file "$TMP/text.txt" --model "$VOICE" -o "$TMP/warmup.wav" >/dev/null
for i in $(seq "$RUNS"); do
    "$PY" "$ROOT/benches/peers/piper_tts.py" --model "$VOICE" --ids "$TMP/ids.json" \
        --threads "$THREADS" --runs 1 >"$TMP/peer-$i.json"
    RAYON_NUM_THREADS="$THREADS" "$BIN" tts --file "$TMP/text.txt" --model "$VOICE" \
        -o "$TMP/out.wav" --json >"$TMP/mlbench-$i.json"
done

"$PY" - "$TMP" "$RUNS" <<'EOF_PY'
import json, sys
tmp, runs = sys.argv[1], int(sys.argv[2])
peer = min((json.load(open(f"{tmp}/peer-{i}.json")) for i in range(1, runs + 1)),
           key=lambda p: p["rtf"])
ours = [json.load(open(f"{tmp}/mlbench-{i}.json")) for i in range(1, runs + 1)]
def synth(r):
    return next(s["total_s"] for s in r["stages"] if s["stage"] == "synthesize")
best = min(ours, key=synth)
silence = 0.2 * len(best["sentences"])  # mlbench's sentence silence is not synthesized
audio = best["duration_s"] - silence
rtf = synth(best) / audio
print("| tool | sentences | audio s | synthesis s (best of %d) | real-time factor |" % runs)
print("|---|---|---|---|---|")
print(f"| Piper, onnxruntime {peer['onnxruntime']} | {len(best['sentences'])} | {peer['audio_s']:.2f} | {peer['best_s']:.3f} | {peer['rtf']:.4f} |")
print(f"| mlbench tts | {len(best['sentences'])} | {audio:.2f} | {synth(best):.3f} | {rtf:.4f} |")
print(f"\nmlbench / onnxruntime real-time factor: {rtf / peer['rtf']:.2f} (below 1: mlbench is faster)")
load = open("/proc/loadavg").read().split()[:3] if __import__("os").path.exists("/proc/loadavg") else []
print(f"load average after the runs: {' '.join(load)}")
EOF_PY
