#!/usr/bin/env python3
"""Time text embedding or classification in PyTorch, the peer of `mlbench bench classify-text`.

Usage:
  torch_classify_text.py --model DIR --kind embed|classify --texts JSON
                         [--batch-sizes 1,32] [--threads N] [--runs N] [--warmup N]

--model: a checkpoint folder, the same one mlbench runs (for mlbench's random models, the
temporary folder it wrote: config.json, random model.safetensors, tokenizer). --kind embed:
sentence-transformers, `SentenceTransformer(DIR).encode(texts, batch_size=b)` (tokenization,
forward, pooling, normalisation, as a user calls it). --kind classify: transformers,
`AutoTokenizer` + `AutoModelForSequenceClassification`, tokenizing the batch (padding,
truncation), the forward pass and the softmax, to a Python list (what the text-classification
pipeline does, without its per-text loop). --texts: a JSON list of strings; the batch of size b is
its first b texts, repeated from the start beyond its length (as mlbench does).

Per batch size: `--warmup` untimed runs, then `--runs` timed ones under torch.inference_mode(),
with torch.set_num_threads(N). Prints one JSON object on stdout:

  {"peer": "sentence-transformers", "implementation": "sentence-transformers 6.2.0 (torch 2.15.0)",
   "threads": N, "warmup": W, "results": [{"batch_size": b, "tokens_per_text": t, "times_s": [...]}, ...]}

tokens_per_text: the mean real tokens per text of the batch with the peer's tokenizer, specials
included (mlbench notes a difference from its own count).
"""

import argparse
import json
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--kind", required=True, choices=["embed", "classify"])
    p.add_argument("--texts", required=True, help="JSON list of texts")
    p.add_argument("--batch-sizes", default="1,32")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    args = p.parse_args(argv)
    args.texts = json.loads(args.texts)
    if not isinstance(args.texts, list) or not args.texts or not all(isinstance(t, str) for t in args.texts):
        p.error("--texts must be a non-empty JSON list of strings")
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    if not args.batch_sizes or min(args.batch_sizes) < 1 or args.runs < 1 or args.threads < 1:
        p.error("--batch-sizes, --runs and --threads must be at least 1")
    return args


def embedder(path):
    """A function of a batch of texts, and the implementation's name."""
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(path, device="cpu")

    def run(texts):
        model.encode(texts, batch_size=len(texts), convert_to_numpy=True)

    def tokens(texts):
        return model.tokenize(texts)["attention_mask"].sum().item() / len(texts)

    return run, tokens, f"sentence-transformers {sentence_transformers.__version__}"


def classifier(path):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path).float().eval()
    # A folder without tokenizer_config.json leaves model_max_length unset: cut at the positions
    # the model has (RoBERTa's start after pad_token_id + 1), as mlbench does.
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit is not None and model.config.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= model.config.pad_token_id + 1
    max_length = min(tokenizer.model_max_length, limit or tokenizer.model_max_length)
    if tokenizer.pad_token is None and model.config.pad_token_id is not None:
        # Padding as mlbench pads: with the config's pad_token_id.
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(model.config.pad_token_id)

    def encode(texts):
        return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")

    def run(texts):
        enc = encode(texts)
        torch.softmax(model(**enc).logits, dim=-1).tolist()

    def tokens(texts):
        return encode(texts)["attention_mask"].sum().item() / len(texts)

    return run, tokens, f"transformers {transformers.__version__}"


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    torch.set_num_threads(args.threads)
    run, tokens, name = (embedder if args.kind == "embed" else classifier)(args.model)
    results = []
    with torch.inference_mode():
        for b in args.batch_sizes:
            texts = [args.texts[i % len(args.texts)] for i in range(b)]
            for _ in range(args.warmup):
                run(texts)
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                run(texts)
                times.append(time.perf_counter() - t)
            results.append({"batch_size": b, "tokens_per_text": tokens(texts), "times_s": times})
    print(
        json.dumps(
            {
                "peer": "sentence-transformers" if args.kind == "embed" else "transformers",
                "implementation": f"{name} (torch {torch.__version__})",
                "threads": args.threads,
                "warmup": args.warmup,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
