#!/usr/bin/env python3
"""Reference ROUGE-L values from Google's rouge_score, for retort-text's agreement test.

Run once (needs `pip install rouge-score==0.1.2`) and commit the output:

    python3 tests/reference/rouge_reference.py

Writes crates/retort-text/tests/data/rouge_reference.json with
- `pairs`: hand-written and seeded-random English pairs with rouge_score's tokens and
  its rougeL precision / recall / F1 (target = a, prediction = b, no stemmer);
- `novelty`: a seeded pool and candidates run through Alpaca's filter loop
  (max rougeL F1 against the pool, reject when > 0.7, accepted ones join the pool).
"""
import json
import os
import random
import struct

from rouge_score import rouge_scorer, tokenize

HAND = [
    ("Give three tips for staying healthy.", "Give three tips for staying healthy."),
    ("Give three tips for staying healthy.", "What are three tips for staying healthy?"),
    ("What are the three primary colors?", "Name the three primary colours."),
    ("Describe the structure of an atom.", "Explain the structure of an atom in simple terms."),
    ("How can we reduce air pollution?", "Suggest ways to reduce water pollution in cities."),
    ("Write a haiku about autumn leaves.", "Compose a haiku about falling leaves in autumn."),
    ("Don't stop believing!", "do not stop believing"),
    ("It's 3:45 p.m. on 2024-01-05", "its 3 45 pm on 2024 01 05"),
    ("Café au lait costs $3.50", "cafe au lait costs 3 50"),
    ("naïve résumé façade", "naive resume facade"),
    ("e-mail: john_doe@example.com", "email john doe example com"),
    ("UPPER lower MiXeD", "upper LOWER mixed"),
    ("", "something"),
    ("something", ""),
    ("!!! ??? ...", "..."),
    ("the the the the", "the"),
    ("a b c d e f g", "g f e d c b a"),
    ("a b a b a b", "b a b a b a"),
    ("Translate 'hello' into French.", "Translate the word hello into French"),
    ("Classify the sentiment of this tweet: I love it!", "Classify the sentiment of the following review."),
    ("Rewrite the sentence in passive voice.", "Rewrite this sentence using the passive voice."),
    ("Generate a list of 5 fruits.", "Generate a list of five vegetables."),
    ("Calculate 17 * 23.", "What is 17 times 23?"),
    ("Summarize the article in two sentences.", "Summarize the following article in one sentence."),
    ("Explain quantum entanglement to a child.", "Explain photosynthesis to a five-year-old child."),
    ("İstanbul is big", "istanbul is big"),
    ("\u212Aelvin scale", "kelvin scale"),
    ("x\ty\nz", "x y z"),
    ("Ünïcödé wörds ärë här", "unicode words are har"),
    ("写一首关于秋天的诗 write a poem", "write a poem about autumn"),
    ("C++ and C# are languages", "c and c are languages"),
    ("version 2.0.1 released", "version 2 0 1 released"),
]

WORDS = (
    "the a an of to in for on with and or write explain describe list give generate "
    "create summarize classify rewrite translate compare suggest find name identify "
    "three five ten tips ways reasons examples steps ideas questions facts words "
    "healthy simple short detailed creative funny formal persuasive technical "
    "poem story essay email letter tweet review article paragraph sentence "
    "climate change history science music sports travel food health money school "
    "python function program algorithm data table number list sorting prime "
    "why how what when where who which is are can should would could"
).split()


def bits(x):
    """IEEE-754 bits of a float as an integer: JSON readers need not round-trip floats."""
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def sentence(rng, lo, hi):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def mutate(rng, s):
    w = s.split()
    for _ in range(rng.randint(0, max(1, len(w) // 3))):
        op = rng.random()
        if op < 0.4 and w:
            w[rng.randrange(len(w))] = rng.choice(WORDS)
        elif op < 0.7:
            w.insert(rng.randrange(len(w) + 1), rng.choice(WORDS))
        elif w:
            del w[rng.randrange(len(w))]
    out = " ".join(w)
    if rng.random() < 0.3:
        out = out.capitalize() + "."
    return out


def main():
    rng = random.Random(20261125)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pairs = list(HAND)
    for _ in range(40):
        a = sentence(rng, 3, 25)
        pairs.append((a, mutate(rng, a)))
    for _ in range(10):
        pairs.append((sentence(rng, 3, 20), sentence(rng, 3, 20)))
    for _ in range(6):  # longer than one 64-bit word of the bit-parallel LCS
        a = sentence(rng, 70, 160)
        pairs.append((a, mutate(rng, a)))

    rows = []
    for a, b in pairs:
        s = scorer.score(a, b)["rougeL"]
        rows.append({
            "a": a,
            "b": b,
            "tokens_a": tokenize.tokenize(a, None),
            "tokens_b": tokenize.tokenize(b, None),
            "precision": s.precision,
            "recall": s.recall,
            "f1": s.fmeasure,
            "f1_bits": bits(s.fmeasure),
        })

    # Alpaca's loop (generate_instruction.py): scores against every pool item,
    # reject when max > 0.7, accepted candidates join the pool.
    pool = [sentence(rng, 4, 18) for _ in range(150)]
    cands = []
    for _ in range(150):
        r = rng.random()
        if r < 0.35:
            cands.append(mutate(rng, rng.choice(pool)))
        elif r < 0.7:  # two rounds of edits: scores land around the threshold
            cands.append(mutate(rng, mutate(rng, rng.choice(pool))))
        else:
            cands.append(sentence(rng, 4, 18))
    pool_tokens = [scorer._tokenizer.tokenize(p) for p in pool]
    decisions = []
    for c in cands:
        ct = scorer._tokenizer.tokenize(c)
        scores = [rouge_scorer._score_lcs(ct, pt).fmeasure for pt in pool_tokens]
        m = max(scores)
        accepted = not (m > 0.7)
        decisions.append({"text": c, "max_sim": m, "max_sim_bits": bits(m),
                          "accepted": accepted})
        if accepted:
            pool_tokens.append(ct)

    out = {
        "generator": "tests/reference/rouge_reference.py",
        "rouge_score_version": "0.1.2",
        "pairs": rows,
        "novelty": {"threshold": 0.7, "pool": pool, "candidates": decisions},
    }
    path = os.path.join(os.path.dirname(__file__), "..", "..",
                        "crates", "retort-text", "tests", "data", "rouge_reference.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    acc = sum(d["accepted"] for d in decisions)
    print(f"wrote {len(rows)} pairs, {len(decisions)} novelty decisions ({acc} accepted) to {path}")


if __name__ == "__main__":
    main()
