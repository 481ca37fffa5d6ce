#!/usr/bin/env python3
"""Time faster-whisper (CTranslate2) on a set of clips, with mlbench's default decoding settings.

Usage:
  faster_whisper_stt.py --model DIR [--compute-type int8|float32] [--beam-size N]
                        [--threads N] [--runs N] FILE...

Loads the model once (not timed), decodes every clip to 16 kHz mono (not timed, as mlbench's
`--timings` also excludes audio loading), runs one untimed warm-up pass over all clips, then times
N passes over all clips. A timed pass is transcribe() plus consuming the segment generator (where
faster-whisper does its work). Prints one JSON object on stdout:

  {"peer": "faster-whisper", "version": ..., "ctranslate2_version": ..., "compute_type": ...,
   "beam_size": ..., "best_of": ..., "threads": ..., "times_s": [...], "best_s": ...,
   "texts": [...]}

texts are the transcripts of the last timed pass, one per FILE, in order.

Decoding settings equal mlbench's defaults: temperature fallback 0.0, 0.2, ..., 1.0;
best_of 5; patience 1; compression-ratio threshold 2.4; log-prob threshold -1; no-speech threshold
0.6; condition_on_previous_text True; segment timestamps on, word timestamps off; VAD off;
language "en".
"""

import argparse
import json
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="audio clips")
    p.add_argument("--model", required=True, help="CTranslate2 Whisper model directory")
    p.add_argument("--compute-type", default="int8", choices=["int8", "float32"],
                   help="CTranslate2 compute type (default: int8)")
    p.add_argument("--beam-size", type=int, default=5, help="beam width at temperature 0 (default: 5)")
    p.add_argument("--best-of", type=int, default=5,
                   help="candidates sampled at temperatures above 0 (default: 5)")
    p.add_argument("--threads", type=int, default=2, help="CTranslate2 cpu_threads (default: 2)")
    p.add_argument("--runs", type=int, default=3, help="timed passes over all clips (default: 3)")
    p.add_argument("--language", default="en", help='spoken language (default: "en")')
    args = p.parse_args(argv)
    if args.runs < 1 or args.beam_size < 1 or args.best_of < 1 or args.threads < 1:
        p.error("--runs, --beam-size, --best-of and --threads must be at least 1")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)

    import ctranslate2
    import faster_whisper
    from faster_whisper import WhisperModel, decode_audio

    model = WhisperModel(
        args.model,
        device="cpu",
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        num_workers=1,
        local_files_only=True,
    )
    audio = [decode_audio(f, sampling_rate=model.feature_extractor.sampling_rate) for f in args.files]

    def one_pass():
        texts = []
        for samples in audio:
            segments, _info = model.transcribe(
                samples,
                language=args.language,
                task="transcribe",
                beam_size=args.beam_size,
                best_of=args.best_of,
                patience=1.0,
                temperature=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
                compression_ratio_threshold=2.4,
                log_prob_threshold=-1.0,
                no_speech_threshold=0.6,
                condition_on_previous_text=True,
                without_timestamps=False,
                word_timestamps=False,
                vad_filter=False,
            )
            # The generator does the work: consume it inside the timed section.
            texts.append("".join(s.text for s in segments).strip())
        return texts

    one_pass()  # warm-up, not timed
    times = []
    texts = []
    for _ in range(args.runs):
        start = time.perf_counter()
        texts = one_pass()
        times.append(time.perf_counter() - start)

    json.dump(
        {
            "peer": "faster-whisper",
            "version": faster_whisper.__version__,
            "ctranslate2_version": ctranslate2.__version__,
            "compute_type": args.compute_type,
            "beam_size": args.beam_size,
            "best_of": args.best_of,
            "threads": args.threads,
            "files": args.files,
            "times_s": [round(t, 4) for t in times],
            "best_s": round(min(times), 4),
            "texts": texts,
        },
        sys.stdout,
        indent=2,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
