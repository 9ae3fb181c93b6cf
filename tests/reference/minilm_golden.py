#!/usr/bin/env python3
"""Golden vectors for retort's embedded MiniLM embedder, from an independent implementation.

The reference is a plain numpy BERT forward pass (embeddings, 6 post-LN encoder layers with
erf GELU, mean pooling over real tokens, L2 normalisation) reading model.safetensors directly;
no candle, torch or sentence-transformers code is involved. Tokenisation uses the HF
`tokenizers` package on the same tokenizer.json, padding disabled, truncation at 256 tokens
(sentence-transformers' max_seq_length for this model). Each sentence is embedded alone, so
there is no padding at all.

Usage (needs `pip install numpy safetensors tokenizers`):
    python3 tests/reference/minilm_golden.py <minilm dir> > tests/reference/minilm_golden.json
where <minilm dir> is the fetched model directory, by default
    ~/.cache/retort/models/all-minilm-l6-v2
"""
import hashlib
import json
import math
import os
import sys

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply today.",
    "How do I reverse a linked list in Python?",
    "What is the way to invert a linked list using Python?",
    "Bananas are rich in potassium.",
    "retort builds SFT and DPO datasets from seed tasks.",
    "Ünïcödé, emoji 🚀 and numbers 12345 survive tokenisation.",
]

_erf = np.vectorize(math.erf)


def layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def linear(x, t, name):
    return x @ t[name + ".weight"].T + t[name + ".bias"]


def embed(ids, t, cfg):
    n_heads = cfg["num_attention_heads"]
    hidden = cfg["hidden_size"]
    d = hidden // n_heads
    n = len(ids)
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][:n]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q = linear(x, t, p + "attention.self.query").reshape(n, n_heads, d).transpose(1, 0, 2)
        k = linear(x, t, p + "attention.self.key").reshape(n, n_heads, d).transpose(1, 0, 2)
        v = linear(x, t, p + "attention.self.value").reshape(n, n_heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, hidden)
        a = linear(ctx, t, p + "attention.output.dense")
        x = layer_norm(a + x, t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"])
        h = gelu(linear(x, t, p + "intermediate.dense"))
        o = linear(h, t, p + "output.dense")
        x = layer_norm(o + x, t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def main():
    default = os.path.expanduser("~/.cache/retort/models/all-minilm-l6-v2")
    model_dir = sys.argv[1] if len(sys.argv) > 1 else default
    weights = os.path.join(model_dir, "model.safetensors")
    with open(weights, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    tensors = {k.removeprefix("bert."): v.astype(np.float64) for k, v in load_file(weights).items()}
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    out = []
    for s in SENTENCES:
        ids = tok.encode(s).ids
        vec = embed(np.array(ids), tensors, cfg)
        out.append({"text": s, "tokens": len(ids), "vector": [round(float(x), 6) for x in vec]})
    json.dump(
        {
            "reference": "numpy float64 BERT forward pass (tests/reference/minilm_golden.py)",
            "model_sha256": sha,
            "max_length": 256,
            "sentences": out,
        },
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
