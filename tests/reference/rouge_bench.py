#!/usr/bin/env python3
"""Time rouge_score's brute-force novelty check (Stanford Alpaca's filter) on the pool
and candidates dumped by retort-text's novelty benchmark, to put both on the same data:

    NOVELTY_BENCH_DUMP=/tmp/novelty cargo bench -p retort-text --bench novelty
    python3 tests/reference/rouge_bench.py /tmp/novelty [N_CANDIDATES]

Alpaca (generate_instruction.py) tokenises the pool once, then per candidate scores it
against every pool item with `rouge_scorer._score_lcs` (in a multiprocessing pool of
num_cpus workers; here one process, and with Pool(2) when NOVELTY_PROCS=2), and keeps
it when max <= 0.7. Prints ms per candidate and the decisions' accept count, which the
Rust side must reproduce for the same candidates.
"""
import json
import os
import sys
import time
from functools import partial
from multiprocessing import Pool

from rouge_score import rouge_scorer


def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(l)["instruction"] for l in f if l.strip()]


def main():
    d = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    procs = int(os.environ.get("NOVELTY_PROCS", "1"))
    pool = load(os.path.join(d, "pool.jsonl"))
    cands = load(os.path.join(d, "candidates.jsonl"))[:n]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool_tokens = [scorer._tokenizer.tokenize(p) for p in pool]
    accepted = 0
    t = time.perf_counter()
    with Pool(procs) as p:
        for c in cands:
            ct = scorer._tokenizer.tokenize(c)
            if procs > 1:
                scores = p.map(partial(rouge_scorer._score_lcs, ct), pool_tokens)
            else:
                scores = [rouge_scorer._score_lcs(ct, pt) for pt in pool_tokens]
            m = max(s.fmeasure for s in scores)
            accepted += m <= 0.7
    dt = time.perf_counter() - t
    print(f"pool {len(pool)}, {len(cands)} candidates, {procs} process(es): "
          f"{dt / len(cands) * 1e3:.1f} ms/candidate, {accepted} accepted (fixed pool)")


if __name__ == "__main__":
    main()
