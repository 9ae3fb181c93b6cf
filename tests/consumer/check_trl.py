#!/usr/bin/env python3
"""Consumer check for retort exports with TRL's own dataset helpers (`trl.data_utils`):
the file is loaded with Hugging Face `datasets`, as a trainer loads it, and the helpers a
TRL trainer runs on it must see the dataset type the format promises and produce the
texts a trainer would tokenise.

    python3 tests/consumer/check_trl.py CHECK...

where each CHECK is `FORMAT:PATH`, `tools:MESSAGES_PATH`, `unpair:DPO_PATH:KTO_PATH` or
`extract:DPO_PATH:IMPLICIT_PATH` (one process runs them all: importing the stack takes
seconds).

`unpair`: TRL's `unpair_preference_dataset` on a `dpo[_conversational]` export gives
exactly the (prompt, completion, label) rows of the `kto[_conversational]` export of
the same records. `extract`: TRL's `extract_prompt` on an
`implicit_preference[_conversational]` export gives back the `dpo[_conversational]`
prompt and answers (for strings: up to TRL's character-level split, see formats.md).

The chat template is applied with a tokenizer built here, offline: a WordLevel
`tokenizers` model in `transformers.PreTrainedTokenizerFast` with a Qwen3-style template
that renders `reasoning_content`. No network and no torch are needed. Exit 0: ok; 1: the
file is not what TRL expects (the message says why); 2: bad usage or a package missing
(the message gives the pip command).
"""

import json
import os
import sys
import tempfile

PIP = "python3 -m pip install pyarrow transformers tokenizers datasets && python3 -m pip install --no-deps trl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
try:
    import datasets
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from trl.data_utils import (
        extract_prompt,
        is_conversational,
        maybe_apply_chat_template,
        maybe_extract_prompt,
        unpair_preference_dataset,
    )
except ImportError as e:
    sys.stderr.write(f"check_trl.py needs TRL and its dataset stack ({e}); install them with:\n  {PIP}\n")
    sys.exit(2)

datasets.disable_progress_bars()

# Tools and tool calls are rendered the way Qwen3's template does: the definitions in
# the system part, each call as `<tool_call>` JSON, arguments as given (a string).
TEMPLATE = (
    "{% if tools %}<|tools|>\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}<|end|>\n{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|>\n"
    "{% if m.get('reasoning_content') is string %}<think>\n{{ m['reasoning_content'] }}\n</think>\n\n{% endif %}"
    "{{ m['content'] }}"
    "{% if m.get('tool_calls') %}{% for c in m['tool_calls'] %}<tool_call>{\"name\": \"{{ c['function']['name'] }}\", \"arguments\": "
    "{% if c['function']['arguments'] is string %}{{ c['function']['arguments'] }}{% else %}{{ c['function']['arguments'] | tojson }}{% endif %}}</tool_call>{% endfor %}{% endif %}"
    "<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def tokenizer():
    vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2, "<|end|>": 3}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    t = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", bos_token="<s>", eos_token="</s>"
    )
    t.chat_template = TEMPLATE
    return t


class Bad(Exception):
    pass


def load(path):
    cache = tempfile.mkdtemp(prefix="retort-trl-")
    if path.endswith(".parquet"):
        return datasets.Dataset.from_parquet(path, cache_dir=cache)
    if path.endswith(".jsonl"):
        return datasets.Dataset.from_json(path, cache_dir=cache)
    raise Bad(f"{path}: expected a .parquet or .jsonl file")


def expect(cond, msg):
    if not cond:
        raise Bad(msg)


def contents(msgs):
    return [m["content"] for m in msgs]


CONVERSATIONAL = {
    "messages": True,
    "prompt_completion": False,
    "prompt_completion_conversational": True,
    "prompt_only": False,
    "prompt_only_conversational": True,
    "dpo": False,
    "dpo_conversational": True,
    "kto": False,
    "kto_conversational": True,
    "implicit_preference": False,
    "implicit_preference_conversational": True,
}


def check_format(fmt, path):
    ds = load(path)
    tok = tokenizer()
    expect(len(ds) > 0, f"{path}: no rows")
    for n, ex in enumerate(ds, 1):
        where = f"{path}: row {n}"
        conv = is_conversational(ex)
        expect(conv == CONVERSATIONAL[fmt], f"{where}: trl is_conversational = {conv}, expected {CONVERSATIONAL[fmt]}")
        out = maybe_apply_chat_template(ex, tok)
        if not conv:
            expect(out == ex, f"{where}: a standard example must pass maybe_apply_chat_template unchanged")
            if fmt in ("dpo", "kto"):
                expect(maybe_extract_prompt(ex) == ex, f"{where}: explicit prompt must survive maybe_extract_prompt")
            continue
        if fmt == "messages":
            text = out["text"]
            for m in ex["messages"]:
                expect(m["content"] in text, f"{where}: {m['content']!r} missing from the rendered chat")
                if m.get("reasoning_content"):
                    expect(f"<think>\n{m['reasoning_content']}\n</think>" in text, f"{where}: reasoning_content not rendered by the chat template")
        if "prompt" in ex:
            last = ex["prompt"][-1]["role"]
            if last == "user":
                expect(out["prompt"].endswith("<|assistant|>\n"), f"{where}: prompt lacks the generation prompt")
            for c in contents(ex["prompt"]):
                expect(c in out["prompt"], f"{where}: prompt turn {c!r} missing after the chat template")
        for col in ("completion", "chosen", "rejected"):
            if col in ex and "prompt" in ex:
                expect(ex[col] and all(m["role"] == "assistant" for m in ex[col]), f"{where}: {col} must be assistant turns")
                for c in contents(ex[col]):
                    expect(c in out[col], f"{where}: {col} text {c!r} missing after the chat template")
        if fmt == "implicit_preference_conversational":
            split = maybe_extract_prompt(ex)
            expect(split["prompt"] and split["prompt"][-1]["role"] != "assistant", f"{where}: extract_prompt found no prompt")
    return f"ok: trl reads {path} as `{fmt}` ({len(ds)} rows)"


def rows(ds, cols):
    return sorted(json.dumps([r[c] for c in cols], sort_keys=True, ensure_ascii=False) for r in ds)


def check_unpair(dpo_path, kto_path):
    dpo = load(dpo_path)
    unpaired = unpair_preference_dataset(dpo)
    kto = load(kto_path)
    cols = ["prompt", "completion", "label"]
    want, got = rows(unpaired, cols), rows(kto, cols)
    if want != got:
        diff = next(((g, w) for g, w in zip(got, want) if g != w), None)
        raise Bad(f"{kto_path}: rows differ from trl.unpair_preference_dataset({dpo_path}): {len(got)} vs {len(want)} rows; first difference (ours, trl's): {diff}")
    return f"ok: {kto_path} == unpair_preference_dataset({dpo_path}) ({len(got)} rows)"


def check_extract(dpo_path, implicit_path):
    dpo = load(dpo_path)
    imp = load(implicit_path)
    expect(len(dpo) == len(imp), f"{implicit_path}: {len(imp)} rows, but {dpo_path} has {len(dpo)}")
    for n, (d, i) in enumerate(zip(dpo, imp), 1):
        where = f"{implicit_path}: row {n}"
        expect(d["prompt_id"] == i["prompt_id"], f"{where}: rows are not in the same order as {dpo_path}")
        got = extract_prompt({"chosen": i["chosen"], "rejected": i["rejected"]})
        if isinstance(d["prompt"], list):
            for k in ("prompt", "chosen", "rejected"):
                expect(got[k] == d[k], f"{where}: extract_prompt {k} = {got[k]!r}, expected {d[k]!r}")
        else:
            # TRL splits strings at the first differing character, so the extracted
            # prompt is ours plus whatever the two answers begin with in common.
            expect(got["prompt"].startswith(d["prompt"]), f"{where}: extracted prompt {got['prompt']!r} does not start with {d['prompt']!r}")
            for k in ("chosen", "rejected"):
                expect(got["prompt"] + got[k] == d["prompt"] + "\n\n" + d[k], f"{where}: prompt + {k} is not the full text")
    return f"ok: extract_prompt({implicit_path}) gives {dpo_path}'s prompts and answers"


def check_tools(path):
    """A `messages` export with `tools = true`: `tools` is the JSON text SFTTrainer
    `json.loads`, and the chat template applied with those tools (as SFTTrainer does)
    renders every definition and every call, with arguments that are JSON."""
    ds = load(path)
    tok = tokenizer()
    expect(len(ds) > 0, f"{path}: no rows")
    for n, ex in enumerate(ds, 1):
        where = f"{path}: row {n}"
        expect(is_conversational(ex), f"{where}: not conversational for TRL")
        expect(isinstance(ex["tools"], str), f"{where}: tools is {type(ex['tools'])}, expected the JSON text TRL json.loads")
        tools = json.loads(ex["tools"])
        out = maybe_apply_chat_template({"messages": ex["messages"]}, tok, tools=tools)["text"]
        for t in tools:
            expect(json.dumps(t["function"]["name"]) in out, f"{where}: tool {t['function']['name']} not rendered: {out!r}")
        calls = [c for m in ex["messages"] for c in (m.get("tool_calls") or [])]
        expect(calls, f"{where}: no tool calls")
        for c in calls:
            args = json.loads(c["function"]["arguments"])
            rendered = '<tool_call>{"name": "%s", "arguments": %s}</tool_call>' % (c["function"]["name"], c["function"]["arguments"])
            expect(rendered in out, f"{where}: call {c} not rendered as {rendered!r} in {out!r}")
            expect(isinstance(args, dict), f"{where}: arguments {args!r} are not an object")
    return f"ok tools {path} ({len(ds)} rows)"


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    failed = 0
    for check in argv[1:]:
        parts = check.split(":")
        try:
            if len(parts) == 2 and parts[0] in CONVERSATIONAL:
                print(check_format(*parts))
            elif len(parts) == 2 and parts[0] == "tools":
                print(check_tools(parts[1]))
            elif len(parts) == 3 and parts[0] == "unpair":
                print(check_unpair(parts[1], parts[2]))
            elif len(parts) == 3 and parts[0] == "extract":
                print(check_extract(parts[1], parts[2]))
            else:
                sys.stderr.write(f"bad check `{check}`\n{__doc__}")
                return 2
        except Bad as e:
            sys.stderr.write(f"{e}\n")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
