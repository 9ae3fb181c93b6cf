#!/usr/bin/env python3
"""Validate the hand-written seed sets shipped in seeds/.

Run from the repository root (or anywhere): `python3 seeds/check_seeds.py`.
Exits non-zero on the first class of problem found and prints every offending
line, so a broken seed never reaches `load` silently. With `--counts` it also
prints per-category counts in Markdown, which is how the table in
seeds/README.md is produced; with `--similarity` it lists instruction pairs
inside one file whose ROUGE-L F1 exceeds 0.7 (informational, not an error).

Checks:
- every line parses as one JSON object with exactly the expected keys and types;
- ids are unique within a file and follow the file's id pattern;
- minimum sizes (en >= 160 tasks over >= 12 categories, zh >= 110, topics >= 60
  with ~15 Chinese ones);
- no generation-filter blacklist keyword in any instruction or topic (checked
  as a plain substring, which is stricter than a word match, so a seed can
  never be rejected by whichever form the filter uses);
- classification tasks carry short label outputs;
- Chinese tasks are actually written in Chinese;
- instructions do not start with punctuation and are not repeated.
"""

import collections
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent

BLACKLIST_EN = [
    "image", "graph", "picture", "file", "map", "draw", "plot", "go to",
    "video", "audio", "music", "flowchart", "diagram",
]
BLACKLIST_ZH = ["图像", "图片", "照片", "文件", "图表", "链接", "视频", "音频", "音乐", "地图", "画图", "绘制"]

TASK_KEYS = {"id", "name", "instruction", "instances", "is_classification", "category"}
TOPIC_KEYS = {"id", "topic", "category", "language"}
CJK = re.compile(r"[\u4e00-\u9fff]")
NAME = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")


def blacklisted(text):
    low = text.lower()
    return [w for w in BLACKLIST_EN + BLACKLIST_ZH if w in low]


def read_jsonl(path, errors):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                errors.append(f"{path.name}:{n}: blank line")
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"{path.name}:{n}: invalid JSON: {e}")
                continue
            if not isinstance(obj, dict):
                errors.append(f"{path.name}:{n}: not a JSON object")
                continue
            rows.append((n, obj))
    return rows


def check_tasks(path, prefix, min_tasks, min_categories, chinese, errors):
    rows = read_jsonl(path, errors)
    seen_ids, seen_names, seen_instr = set(), set(), set()
    id_re = re.compile(rf"^{prefix}\d{{3}}$")
    for n, t in rows:
        where = f"{path.name}:{n}"
        if set(t) != TASK_KEYS:
            errors.append(f"{where}: keys {sorted(t)} != {sorted(TASK_KEYS)}")
            continue
        if not isinstance(t["id"], str) or not id_re.match(t["id"]):
            errors.append(f"{where}: bad id {t['id']!r}")
        if t["id"] in seen_ids:
            errors.append(f"{where}: duplicate id {t['id']}")
        seen_ids.add(t["id"])
        if not isinstance(t["name"], str) or not NAME.match(t["name"]):
            errors.append(f"{where}: name must be snake_case: {t['name']!r}")
        if t["name"] in seen_names:
            errors.append(f"{where}: duplicate name {t['name']}")
        seen_names.add(t["name"])
        instr = t["instruction"]
        if not isinstance(instr, str) or not instr.strip():
            errors.append(f"{where}: empty instruction")
            continue
        if instr != instr.strip():
            errors.append(f"{where}: instruction has surrounding whitespace")
        if not instr[0].isalnum() and not CJK.match(instr[0]):
            errors.append(f"{where}: instruction starts with punctuation")
        if instr in seen_instr:
            errors.append(f"{where}: repeated instruction")
        seen_instr.add(instr)
        bad = blacklisted(instr)
        if bad:
            errors.append(f"{where}: blacklisted word(s) {bad} in instruction")
        if chinese:
            if len(CJK.findall(instr)) < 4:
                errors.append(f"{where}: instruction is not Chinese")
        elif not 4 <= len(instr.split()) <= 150:
            errors.append(f"{where}: instruction has {len(instr.split())} words (want 4..150)")
        if not isinstance(t["category"], str) or not NAME.match(t["category"]):
            errors.append(f"{where}: bad category {t['category']!r}")
        if not isinstance(t["is_classification"], bool):
            errors.append(f"{where}: is_classification must be a bool")
        inst = t["instances"]
        if not isinstance(inst, list) or not inst:
            errors.append(f"{where}: instances must be a non-empty list")
            continue
        for i in inst:
            if not isinstance(i, dict) or set(i) != {"input", "output"}:
                errors.append(f"{where}: instance keys must be input/output")
                continue
            if not isinstance(i["input"], str) or not isinstance(i["output"], str):
                errors.append(f"{where}: input/output must be strings")
                continue
            if not i["output"].strip():
                errors.append(f"{where}: empty output")
            if i["input"].strip() and i["input"].strip() == i["output"].strip():
                errors.append(f"{where}: input equals output")
            if i["input"] != i["input"].strip() or i["output"] != i["output"].strip():
                errors.append(f"{where}: input/output has surrounding whitespace")
            if t["is_classification"]:
                limit = 120 if chinese else 200
                if len(i["output"]) > limit:
                    errors.append(f"{where}: classification output too long for a label")
    cats = collections.Counter(t.get("category") for _, t in rows)
    if len(rows) < min_tasks:
        errors.append(f"{path.name}: {len(rows)} tasks < {min_tasks}")
    if len(cats) < min_categories:
        errors.append(f"{path.name}: {len(cats)} categories < {min_categories}")
    return rows


def check_topics(path, min_topics, min_zh, errors):
    rows = read_jsonl(path, errors)
    seen_ids, seen_topics = set(), set()
    for n, t in rows:
        where = f"{path.name}:{n}"
        if set(t) != TOPIC_KEYS:
            errors.append(f"{where}: keys {sorted(t)} != {sorted(TOPIC_KEYS)}")
            continue
        if not re.match(r"^topic_\d{3}$", t["id"]) or t["id"] in seen_ids:
            errors.append(f"{where}: bad or duplicate id {t['id']!r}")
        seen_ids.add(t["id"])
        if t["language"] not in ("en", "zh"):
            errors.append(f"{where}: language must be en or zh")
        if not isinstance(t["topic"], str) or not t["topic"].strip():
            errors.append(f"{where}: empty topic")
            continue
        if t["topic"] in seen_topics:
            errors.append(f"{where}: repeated topic")
        seen_topics.add(t["topic"])
        has_cjk = bool(CJK.search(t["topic"]))
        if has_cjk != (t["language"] == "zh"):
            errors.append(f"{where}: language field disagrees with the text")
        bad = blacklisted(t["topic"])
        if bad:
            errors.append(f"{where}: blacklisted word(s) {bad} in topic")
        if not isinstance(t["category"], str) or not NAME.match(t["category"]):
            errors.append(f"{where}: bad category {t['category']!r}")
    zh = sum(1 for _, t in rows if t.get("language") == "zh")
    if len(rows) < min_topics:
        errors.append(f"{path.name}: {len(rows)} topics < {min_topics}")
    if zh < min_zh:
        errors.append(f"{path.name}: {zh} Chinese topics < {min_zh}")
    return rows


def rouge_tokens(text):
    """Tokens as the novelty filter sees them: CJK per character, otherwise
    rouge_score's default (lowercase, split on non-alphanumerics)."""
    low = text.lower()
    cjk = CJK.findall(low)
    latin = re.sub(r"[^a-z0-9]+", " ", CJK.sub(" ", low)).split()
    return latin + cjk if cjk else latin


def rouge_l_f1(a, b):
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[-1]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(b), lcs / len(a)
    return 2 * p * r / (p + r)


def similar_pairs(rows, threshold):
    """Instruction pairs within one file whose ROUGE-L F1 exceeds threshold.
    Seeds this close to each other add little diversity to the demo pool."""
    toks = [(t["id"], rouge_tokens(t["instruction"])) for _, t in rows]
    out = []
    for i in range(len(toks)):
        for j in range(i + 1, len(toks)):
            f = rouge_l_f1(toks[i][1], toks[j][1])
            if f > threshold:
                out.append((f, toks[i][0], toks[j][0]))
    return sorted(out, reverse=True)


def summary(name, rows, key):
    cats = collections.Counter(r[key] for _, r in rows)
    lines = [f"### {name}: {len(rows)} items, {len(cats)} categories", "",
             "| category | count |", "|---|---|"]
    lines += [f"| {c} | {k} |" for c, k in sorted(cats.items())]
    return "\n".join(lines)


def main():
    errors = []
    en = check_tasks(HERE / "en.jsonl", "seed_en_", 160, 12, False, errors)
    zh = check_tasks(HERE / "zh.jsonl", "seed_zh_", 110, 12, True, errors)
    topics = check_topics(HERE / "topics.jsonl", 60, 15, errors)
    for e in errors:
        print("ERROR", e)
    if "--counts" in sys.argv:
        print(summary("en.jsonl", en, "category"), end="\n\n")
        print(summary("zh.jsonl", zh, "category"), end="\n\n")
        print(summary("topics.jsonl", topics, "category"), end="\n\n")
        for name, rows in (("en.jsonl", en), ("zh.jsonl", zh)):
            no_input = sum(1 for _, t in rows if not t["instances"][0]["input"])
            cls = sum(1 for _, t in rows if t["is_classification"])
            print(f"{name}: {no_input}/{len(rows)} without input "
                  f"({100 * no_input / max(len(rows), 1):.0f}%), {cls} classification")
        langs = collections.Counter(t["language"] for _, t in topics)
        print(f"topics.jsonl languages: {dict(sorted(langs.items()))}")
    if "--similarity" in sys.argv:
        for name, rows in (("en.jsonl", en), ("zh.jsonl", zh)):
            pairs = similar_pairs(rows, 0.7)
            print(f"{name}: {len(pairs)} instruction pairs with ROUGE-L F1 > 0.7")
            for f, a, b in pairs:
                print(f"  {f:.2f} {a} {b}")
    if errors:
        sys.exit(1)
    print("seeds OK")


if __name__ == "__main__":
    main()
