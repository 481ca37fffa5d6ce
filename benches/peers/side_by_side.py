#!/usr/bin/env python3
"""Driver of benches/stt_side_by_side.sh: mlbench vs faster-whisper on the LibriVox clips.

Standard library only (run it with any python3); the peer runs in its own venv (--peer-python).
See benches/README.md for what it measures. Usage:

  side_by_side.py --mlbench BIN --model DIR --peer-python PY [--runs N] [--threads N]
                  [--clips DIR] [--json FILE]
"""

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "faster_whisper_stt.py"

CONFIGS = [("greedy", 1), ("beam 5", 5)]
# (tool, compute type); the order of the first run, rotated by one for each later run.
TOOLS = [("faster-whisper", "int8"), ("faster-whisper", "float32"), ("mlbench", "f32")]
# CTranslate2's PyPI wheels use Intel MKL only on GenuineIntel CPUs and oneDNN elsewhere, where
# float32 GEMMs are several times slower; on such CPUs faster-whisper float32 also runs with
# CT2_USE_MKL=1 (MKL forced on) so the table shows the peer at its best too.
MKL_FLOAT32 = ("faster-whisper", "float32 CT2_USE_MKL=1")

TIMING_LINE = re.compile(r": ([0-9.]+) s of audio in ([0-9.]+) s \(real-time factor [^)]*\); model load ([0-9.]+) s$")


# --- WER (same normaliser as the project's tests, tests/common/mod.rs) ---------------------------

def normalize(text):
    """Lower-case words; punctuation (hyphens included) becomes a space; mr/mrs/dr spelled out."""
    cleaned = "".join(c if (c.isalnum() or c == "'" or c.isspace()) else " " for c in text.lower())
    spelled = {"mr": "mister", "mrs": "missus", "dr": "doctor"}
    return [spelled.get(w, w) for w in cleaned.split()]


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a):
        cur = [i + 1] * (len(b) + 1)
        for j, y in enumerate(b):
            cur[j + 1] = min(prev[j] + (x != y), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[len(b)]


def corpus_wer(references, hypotheses):
    """Total word edits over total reference words."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    edits = words = 0
    for r, h in zip(references, hypotheses):
        r, h = normalize(r), normalize(h)
        edits += edit_distance(r, h)
        words += len(r)
    return edits / max(words, 1)


# --- data ------------------------------------------------------------------------------------------

def load_clips(clips_dir):
    """[(wav path, reference text)] from a pocketsphinx-style `transcription` file."""
    d = Path(clips_dir)
    tfile = d / "transcription"
    if not tfile.is_file():
        sys.exit(f"side-by-side: {tfile} missing (install Debian's pocketsphinx-testdata)")
    clips = []
    for line in tfile.read_text().splitlines():
        m = re.match(r"^(.*)\(([^()]+)\)\s*$", line.strip())
        if not m:
            continue
        words = m.group(1).replace("<s>", " ").replace("</s>", " ").split()
        wav = d / f"{m.group(2)}.wav"
        if not wav.is_file():
            sys.exit(f"side-by-side: {wav} missing")
        clips.append((str(wav), " ".join(words)))
    if not clips:
        sys.exit(f"side-by-side: no clips in {tfile}")
    return clips


def wav_seconds(path):
    with wave.open(path) as w:
        return w.getnframes() / w.getframerate()


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --- the tools -------------------------------------------------------------------------------------

def run_checked(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-4000:])
        sys.exit(f"side-by-side: command failed with exit status {p.returncode}: {' '.join(cmd)}")
    return p


def cpu_is_genuine_intel():
    try:
        return "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def run_peer(args, files, compute_type, beam):
    """One process: model load, warm-up pass (both untimed), one timed pass over all clips."""
    env = dict(os.environ)
    env.pop("CT2_USE_MKL", None)
    if compute_type.endswith(" CT2_USE_MKL=1"):
        compute_type = compute_type.split()[0]
        env["CT2_USE_MKL"] = "1"
    cmd = [args.peer_python, str(PEER_SCRIPT), "--model", args.model, "--compute-type", compute_type,
           "--beam-size", str(beam), "--threads", str(args.threads), "--runs", "1", *files]
    out = json.loads(run_checked(cmd, env=env).stdout)
    return {"time_s": out["best_s"], "texts": out["texts"],
            "version": f"faster-whisper {out['version']}, ctranslate2 {out['ctranslate2_version']}"}


def parse_json_stream(text):
    """The concatenated JSON documents that `mlbench stt --json` prints for several files."""
    dec, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return docs
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)


def run_mlbench(args, files, beam):
    """One process: the clips twice, the first pass a warm-up; the time is the sum of the second
    pass's per-file transcribe times from --timings (model and audio loading excluded)."""
    cmd = [args.mlbench, "stt", *files, *files, "--model", args.model, "--beam-size", str(beam),
           "--language", "en", "--json", "--timings"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
    p = run_checked(cmd, env=env)
    docs = parse_json_stream(p.stdout)
    timings = [TIMING_LINE.search(line) for line in p.stderr.splitlines()]
    timings = [m for m in timings if m]
    n = len(files)
    if len(docs) != 2 * n or len(timings) != 2 * n:
        sys.exit(f"side-by-side: mlbench printed {len(docs)} JSON documents and {len(timings)} "
                 f"timing lines for {2 * n} inputs")
    return {"time_s": sum(float(m.group(2)) for m in timings[n:]),
            "texts": [d["text"].strip() for d in docs[n:]],
            "model_load_s": float(timings[0].group(3))}


# --- report ----------------------------------------------------------------------------------------

def fmt_pct(x):
    return f"{100 * x:.1f}%"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlbench", required=True, help="the mlbench binary")
    ap.add_argument("--model", required=True, help="CTranslate2 Whisper model directory")
    ap.add_argument("--peer-python", required=True, help="python of the venv with faster-whisper")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool and config; best is kept")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads for both tools (default 2)")
    ap.add_argument("--clips", default="/usr/share/pocketsphinx/test/data/librivox")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("runs must be at least 1")

    clips = load_clips(args.clips)
    files = [c[0] for c in clips]
    refs = [c[1] for c in clips]
    audio_s = sum(wav_seconds(f) for f in files)
    # Run a private copy of the binary, so that a rebuild during the run cannot mix two builds.
    tmpdir = tempfile.mkdtemp(prefix="mlbench-sbs-")
    atexit.register(shutil.rmtree, tmpdir, True)
    bin_stat = os.stat(args.mlbench)
    mlbench_built = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(bin_stat.st_mtime))
    args.mlbench_path, args.mlbench = args.mlbench, shutil.copy2(args.mlbench, os.path.join(tmpdir, "mlbench"))
    load_before = os.getloadavg()
    started = time.time()
    log = lambda msg: print(f"side-by-side: {msg}", file=sys.stderr, flush=True)
    log(f"{len(files)} clips, {args.runs} runs, {args.threads} threads, "
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")

    tools = list(TOOLS)
    if not cpu_is_genuine_intel():
        tools.insert(2, MKL_FLOAT32)
    results = []  # one per (config, tool)
    peer_version = None
    mlbench_load = []
    for cname, beam in CONFIGS:
        per_tool = {t: [] for t in tools}
        for r in range(args.runs):
            order = tools[r % len(tools):] + tools[:r % len(tools)]
            for tool in order:
                name, ct = tool
                if name == "mlbench":
                    out = run_mlbench(args, files, beam)
                    mlbench_load.append(out["model_load_s"])
                else:
                    out = run_peer(args, files, ct, beam)
                    peer_version = out["version"]
                w = corpus_wer(refs, out["texts"])
                per_tool[tool].append({"run": r + 1, "time_s": round(out["time_s"], 4), "wer": w,
                                       "texts": out["texts"], "load_average_1m": round(os.getloadavg()[0], 2)})
                log(f"{cname:7} run {r + 1}/{args.runs}  {name:14} {ct:22} {out['time_s']:7.2f} s  "
                    f"WER {fmt_pct(w)}")
        for tool in tools:
            runs = per_tool[tool]
            best = min(runs, key=lambda x: x["time_s"])
            results.append({"config": cname, "beam_size": beam, "tool": tool[0], "compute_type": tool[1],
                            "best_s": best["time_s"], "wer_best_run": best["wer"],
                            "wer_min": min(x["wer"] for x in runs), "wer_max": max(x["wer"] for x in runs),
                            "runs": runs})
    for row in results:
        ml = next(x for x in results if x["beam_size"] == row["beam_size"] and x["tool"] == "mlbench")
        row["mlbench_over_this"] = round(ml["best_s"] / row["best_s"], 3)

    load_after = os.getloadavg()
    lines = [
        "| tool | compute type | beam | best time (s) | mlbench time ÷ this | WER |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in results:
        wer = fmt_pct(row["wer_best_run"])
        if row["wer_min"] != row["wer_max"]:
            wer += f" (runs: {fmt_pct(row['wer_min'])}–{fmt_pct(row['wer_max'])})"
        ratio = "—" if row["tool"] == "mlbench" else f"{row['mlbench_over_this']:.2f}"
        lines.append(f"| {row['tool']} | {row['compute_type']} | {row['beam_size']} | "
                     f"{row['best_s']:.2f} | {ratio} | {wer} |")
    table = "\n".join(lines)
    summary = (f"{len(files)} LibriVox clips ({audio_s:.1f} s of audio, "
               f"{sum(len(normalize(r)) for r in refs)} reference words), "
               f"best of {args.runs} runs, {args.threads} threads; {peer_version}; "
               f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
               f"(1 min), {os.cpu_count()} CPUs ({cpu_model()}); mlbench built {mlbench_built}; "
               f"{time.time() - started:.0f} s in all")
    print(table)
    print()
    print(summary)

    if args.json:
        doc = {
            "clips": [{"file": f, "reference": r} for f, r in clips],
            "model": args.model,
            "mlbench": args.mlbench_path,
            "peer": peer_version,
            "runs": args.runs,
            "threads": args.threads,
            "cpus": os.cpu_count(),
            "cpu": cpu_model(),
            "audio_s": round(audio_s, 3),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in load_after],
            "mlbench_model_load_s": mlbench_load,
            "mlbench_built": mlbench_built,
            "results": results,
            "table_markdown": table,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
