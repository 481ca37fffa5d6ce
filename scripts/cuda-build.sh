#!/usr/bin/env bash
# Compiles the CUDA build of mlbench on a machine without a GPU or system CUDA, and checks that
# the resulting binary reports a missing GPU cleanly. CI runs it after the tests; users with a
# CUDA toolkit just run `cargo build --release --features cuda`.
#
# Usage: scripts/cuda-build.sh
#
# The CUDA 13.0 compiler and libraries come from PyPI wheels (pinned; the CUDA 12 wheels ship no
# nvcc) into a cached venv, $MLBENCH_CUDA_VENV (default ~/.cache/mlbench/cuda13-venv, ~1.2 GB);
# libcuda, which only a driver provides, is replaced at link and run time by a stub whose every
# entry point returns CUDA_ERROR_STUB_LIBRARY. The build goes to $CARGO_TARGET_DIR/cuda (default
# target/cuda), for compute capability $CUDA_COMPUTE_CAP (default 90: H100/H200). Takes about
# 15 minutes on 2 cores the first time (candle's kernels through nvcc), seconds when cached.
# Recipe and facts: shared/cuda-build.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv="${MLBENCH_CUDA_VENV:-$HOME/.cache/mlbench/cuda13-venv}"
log() { printf 'cuda-build: %s\n' "$*" >&2; }

wheels=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-cccl==13.0.85
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35)
marker="$venv/.mlbench-wheels"
if [ ! -f "$marker" ] || [ "$(cat "$marker")" != "${wheels[*]}" ]; then
    log "installing the CUDA 13.0 wheels into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    # All pinned in one call: otherwise pip mixes in newer pieces that cudarc rejects.
    "$venv/bin/pip" install -q "${wheels[@]}"
    echo "${wheels[*]}" >"$marker"
fi

CUDA_HOME="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
export CUDA_HOME
export PATH="$CUDA_HOME/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"

# The wheels ship versioned .so files only: add the link-time names, and a libcuda stub.
for lib in cudart cublas cublasLt curand nvrtc; do
    so="$(cd "$CUDA_HOME/lib" && ls "lib$lib.so."* | head -n 1)"
    ln -sf "$so" "$CUDA_HOME/lib/lib$lib.so"
done
mkdir -p "$CUDA_HOME/lib/stubs"
if [ ! -f "$CUDA_HOME/lib/stubs/libcuda.so" ]; then
    cargo fetch -q
    driver_sys="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | head -n 1)"
    grep -ohE 'pub unsafe fn cu[A-Za-z0-9_]+' "$driver_sys" | awk '{print $4}' | sort -u |
        awk '{printf "int %s(void){return 34;}\n", $1}' >"$CUDA_HOME/lib/stubs/cuda_stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CUDA_HOME/lib/stubs/libcuda.so" \
        "$CUDA_HOME/lib/stubs/cuda_stub.c"
    ln -sf libcuda.so "$CUDA_HOME/lib/stubs/libcuda.so.1"
fi

target="${CARGO_TARGET_DIR:-target}/cuda"
log "cargo build --release -p mlbench --features cuda (target dir $target)"
CARGO_TARGET_DIR="$target" cargo build --release -p mlbench --features cuda
bin="$target/release/mlbench"

# Without a GPU, `--device cuda` must fail with one clear line and a non-zero exit, not a crash.
export LD_LIBRARY_PATH="$CUDA_HOME/lib/stubs:$CUDA_HOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp/tone.wav" <<'PY'
import math, struct, sys, wave
with wave.open(sys.argv[1], "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(16000)
    w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) for i in range(8000)))
PY
set +e
"$bin" stt "$tmp/tone.wav" --model "$tmp" --device cuda >"$tmp/out" 2>"$tmp/err"
rc=$?
set -e
err="$(cat "$tmp/err")"
log "mlbench stt --device cuda on the stub: exit $rc: $err"
if [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ] || ! grep -qi "cuda" "$tmp/err" ||
    [ "$(grep -c . "$tmp/err")" -ne 1 ]; then
    log "error: expected one error line naming CUDA and a clean non-zero exit"
    exit 1
fi
"$bin" bench stt --device cuda --runs 1 --warmup 0 >"$tmp/bench" 2>/dev/null
grep -q "skipped" "$tmp/bench" || { log "error: bench did not skip cuda"; cat "$tmp/bench" >&2; exit 1; }
log "ok: the CUDA build compiles, starts, and reports the missing GPU cleanly"
