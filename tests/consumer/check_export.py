#!/usr/bin/env python3
"""Consumer check for retort exports: read a file the way training tools do (pyarrow,
which Hugging Face `datasets` uses underneath) and assert the exact columns and Arrow
types of its format.

    python3 tests/consumer/check_export.py FORMAT PATH [--no-id] [--reasoning MODE]
        [--keep NAME:TYPE,...] [--dataset-info]

FORMAT is any export format of docs/formats.md. PATH ends in .parquet (read with
pyarrow.parquet) or .jsonl (read with pyarrow.json). The flags mirror the export step's
options: `--no-id` for `include_id = false`, `--reasoning` for the reasoning mode
(default reasoning_content), `--keep` for `keep_columns` with the Arrow type each must
have (double, string, uint32), `--dataset-info` to check the LLaMA-Factory entry in the
dataset_info.json beside the file.

Types are compared structurally: field names, order and value types must match; field
nullability and the name of a list's item field are ignored (they differ between
writers and no consumer looks at them). JSON cannot say how wide an integer or float is,
so for .jsonl files unsigned/narrow integers are expected as int64 and float32 as
double, and a column (or struct field) that is null or an empty list in every row may
be inferred as type `null`. Exit status 0 means the file is what the format promises;
1 means it is not (the message says which column and why); 2 means bad usage or pyarrow
missing.
"""

import json
import os
import sys

try:
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq
except ImportError:
    sys.stderr.write("check_export.py needs pyarrow: pip install pyarrow\n")
    sys.exit(2)


def record_msg():
    # The internal record schema keeps an assistant turn's reasoning apart (nullable).
    # and its tool calls (arguments as JSON text) and a tool turn's call id and name.
    call = pa.struct([("id", pa.string()), ("name", pa.string()), ("arguments", pa.string())])
    return pa.struct(
        [
            ("role", pa.string()),
            ("content", pa.string()),
            ("reasoning", pa.string()),
            ("tool_calls", pa.list_(call)),
            ("tool_call_id", pa.string()),
            ("name", pa.string()),
        ]
    )


def kv(value):
    return pa.list_(pa.struct([("key", pa.string()), ("value", value)]))


RECORDS = [
    ("id", pa.string()),
    ("instruction", pa.string()),
    ("input", pa.string()),
    ("output", pa.string()),
    ("messages", pa.list_(record_msg())),
    ("tools", pa.string()),
    (
        "candidates",
        pa.list_(
            pa.struct(
                [
                    ("teacher", pa.string()),
                    ("model", pa.string()),
                    ("sample", pa.uint32()),
                    ("content", pa.string()),
                    ("score", pa.float64()),
                    ("rationale", pa.string()),
                    ("reasoning", pa.string()),
                ]
            )
        ),
    ),
    (
        "pair",
        pa.struct(
            [
                ("chosen", pa.list_(record_msg())),
                ("rejected", pa.list_(record_msg())),
                ("chosen_model", pa.string()),
                ("rejected_model", pa.string()),
                ("chosen_score", pa.float64()),
                ("rejected_score", pa.float64()),
                ("margin", pa.float64()),
                ("rationale", pa.string()),
            ]
        ),
    ),
    ("scores", kv(pa.float64())),
    ("labels", kv(pa.string())),
    ("embedding", pa.list_(pa.float32())),
    ("cluster", pa.uint32()),
    ("step", pa.string()),
    ("teacher", pa.string()),
    ("template", pa.string()),
    ("parents", pa.list_(pa.string())),
    ("seeds", pa.list_(pa.string())),
]

REASONING_FIELD = {"reasoning_content": "reasoning_content", "thinking": "thinking", "inline": None, "drop": None}
KEEP_TYPES = {"double": pa.float64(), "string": pa.string(), "uint32": pa.uint32()}
ID = ("id", pa.string())


def judge_extra(margin=True):
    cols = [
        ("prompt_id", pa.string()),
        ("chosen_model", pa.string()),
        ("rejected_model", pa.string()),
        ("chosen_score", pa.float64()),
        ("rejected_score", pa.float64()),
    ]
    if margin:
        cols.append(("margin", pa.float64()))
    return cols + [("rationale", pa.string())]


def expected(reasoning):
    """Each format's columns under a reasoning mode; `id` is the ID tuple."""
    field = REASONING_FIELD[reasoning]

    def turns(who="role", text="content"):
        f = [(who, pa.string()), (text, pa.string())]
        if field:
            f.append((field, pa.string()))
        return pa.list_(pa.struct(f))

    chat, s, b = turns(), pa.string(), pa.bool_()
    return {
        "records": RECORDS,
        "messages": [("messages", chat), ID],
        "alpaca": [("instruction", s), ("input", s), ("output", s)],
        "sharegpt": [("conversations", turns("from", "value")), ID],
        "prompt_completion": [("prompt", s), ("completion", s), ID],
        "prompt_completion_conversational": [("prompt", chat), ("completion", chat), ID],
        "prompt_only": [("prompt", s), ID],
        "prompt_only_conversational": [("prompt", chat), ID],
        "dpo": [("prompt", s), ("chosen", s), ("rejected", s)] + judge_extra(),
        "dpo_conversational": [("prompt", chat), ("chosen", chat), ("rejected", chat)] + judge_extra(),
        "kto": [("prompt", s), ("completion", s), ("label", b), ("prompt_id", s), ID],
        "kto_conversational": [("prompt", chat), ("completion", chat), ("label", b), ("prompt_id", s), ID],
        "implicit_preference": [("chosen", s), ("rejected", s)] + judge_extra(margin=False) + [ID],
        "implicit_preference_conversational": [("chosen", chat), ("rejected", chat)] + judge_extra(margin=False) + [ID],
        "alpaca_ranking": [("instruction", s), ("input", s), ("chosen", s), ("rejected", s), ID],
    }


FORMATS = list(expected("drop"))

# What LLaMA-Factory's dataset_info.json must say about each format it reads.
DATASET_INFO = {
    "alpaca": {"columns": {"prompt": "instruction", "query": "input", "response": "output"}},
    "alpaca_ranking": {"ranking": True, "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}},
    "sharegpt": {"formatting": "sharegpt", "columns": {"messages": "conversations"}},
    "messages": {"formatting": "sharegpt", "columns": {"messages": "messages"}},
}


def json_widen(t):
    """The type pyarrow.json infers for a column written from type t."""
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_list(t):
        return pa.list_(json_widen(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([(t.field(i).name, json_widen(t.field(i).type)) for i in range(t.num_fields)])
    return t


def mismatch(got, want, where, allow_null):
    """None if got matches want structurally, else a description of the first difference."""
    if allow_null and pa.types.is_null(got):
        return None
    if pa.types.is_list(want):
        if not pa.types.is_list(got):
            return f"{where}: expected {want}, found {got}"
        return mismatch(got.value_type, want.value_type, where + "[]", allow_null)
    if pa.types.is_struct(want):
        if not pa.types.is_struct(got):
            return f"{where}: expected {want}, found {got}"
        got_names = [got.field(i).name for i in range(got.num_fields)]
        want_names = [want.field(i).name for i in range(want.num_fields)]
        if got_names != want_names:
            return f"{where}: expected struct fields {want_names}, found {got_names}"
        for i in range(want.num_fields):
            m = mismatch(got.field(i).type, want.field(i).type, f"{where}.{want_names[i]}", allow_null)
            if m:
                return m
        return None
    if got != want:
        return f"{where}: expected {want}, found {got}"
    return None


def is_sha256(v):
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def assistant_turns(v):
    return bool(v) and all(m["role"] == "assistant" for m in v)


def check_values(fmt, table, reasoning):
    """The value-level promises a trainer relies on."""
    rows = table.to_pylist()
    labels = {}
    for n, row in enumerate(rows, 1):
        if "prompt_id" in row and not is_sha256(row["prompt_id"]):
            return f"row {n}: prompt_id {row['prompt_id']!r} is not a sha256 hex digest"
        if fmt in ("dpo_conversational", "kto_conversational", "prompt_completion_conversational"):
            for col in ("chosen", "rejected", "completion"):
                if col in row and not assistant_turns(row[col]):
                    return f"row {n}: {col} must be a non-empty list of assistant messages"
            if not row["prompt"] or row["prompt"][-1]["role"] == "assistant":
                return f"row {n}: prompt must be non-empty and not end with an answer"
        if fmt == "prompt_completion_conversational" and len(row["completion"]) != 1:
            return f"row {n}: completion must be exactly the final assistant message"
        if fmt == "prompt_only_conversational" and (not row["prompt"] or row["prompt"][-1]["role"] == "assistant"):
            return f"row {n}: a prompt-only prompt must end with a turn to answer"
        if fmt == "implicit_preference_conversational":
            for col in ("chosen", "rejected"):
                c = row[col]
                if len(c) < 2 or c[-1]["role"] != "assistant" or c[0]["role"] == "assistant":
                    return f"row {n}: {col} must be the prompt turns followed by the answer"
            if row["chosen"][:-1] != row["rejected"][:-1]:
                return f"row {n}: chosen and rejected must share their prompt turns"
        if fmt in ("kto", "kto_conversational"):
            if not isinstance(row["label"], bool):
                return f"row {n}: label {row['label']!r} is not a bool"
            labels.setdefault(row["id"], []).append(row["label"])
        if fmt == "sharegpt":
            for t in row["conversations"]:
                if t["from"] not in ("system", "human", "gpt"):
                    return f"row {n}: conversations[].from is {t['from']!r}, expected system/human/gpt"
        if fmt in ("alpaca", "alpaca_ranking") and row["input"] is None:
            return f"row {n}: input is null; alpaca wants an empty string"
        if reasoning == "inline":
            for col, v in row.items():
                if isinstance(v, list) and any(isinstance(m, dict) and set(m) - {"role", "content", "from", "value"} for m in v):
                    return f"row {n}: {col} has a reasoning field although reasoning = inline"
    for rid, ls in labels.items():
        if sorted(ls) != [False, True]:
            return f"record {rid}: a kto export has one true and one false row per pair, found {ls}"
    return None


def check_dataset_info(fmt, path):
    info = os.path.join(os.path.dirname(path) or ".", "dataset_info.json")
    try:
        with open(info) as f:
            entries = json.load(f)
    except (OSError, ValueError) as e:
        return f"{info}: cannot read it ({e})"
    name = os.path.splitext(os.path.basename(path))[0]
    entry = entries.get(name)
    if entry is None:
        return f"{info}: has no entry `{name}` (entries: {sorted(entries)})"
    if entry.get("file_name") != os.path.basename(path):
        return f"{info}: entry `{name}` points at {entry.get('file_name')!r}"
    for k, v in DATASET_INFO[fmt].items():
        if entry.get(k) != v:
            return f"{info}: entry `{name}` has {k} = {entry.get(k)!r}, LLaMA-Factory needs {v!r}"
    return None


def parse_args(argv):
    if len(argv) < 3 or argv[1] not in FORMATS:
        return None
    opts = {"fmt": argv[1], "path": argv[2], "id": True, "reasoning": "reasoning_content", "keep": [], "dataset_info": False}
    rest = argv[3:]
    while rest:
        flag = rest.pop(0)
        if flag == "--no-id":
            opts["id"] = False
        elif flag == "--dataset-info":
            opts["dataset_info"] = True
        elif flag == "--reasoning" and rest and rest[0] in REASONING_FIELD:
            opts["reasoning"] = rest.pop(0)
        elif flag == "--keep" and rest:
            for item in rest.pop(0).split(","):
                name, _, t = item.partition(":")
                if t not in KEEP_TYPES:
                    return None
                opts["keep"].append((name, KEEP_TYPES[t]))
        else:
            return None
    return opts


def main(argv):
    opts = parse_args(argv)
    if opts is None:
        sys.stderr.write(__doc__)
        return 2
    fmt, path = opts["fmt"], opts["path"]
    if path.endswith(".parquet"):
        table = pq.read_table(path)
        jsonl = False
    elif path.endswith(".jsonl"):
        table = pj.read_json(path)
        jsonl = True
    else:
        sys.stderr.write(f"{path}: expected a .parquet or .jsonl file\n")
        return 2

    want = [c for c in expected(opts["reasoning"])[fmt] if opts["id"] or c != ID] + opts["keep"]
    got_names = table.schema.names
    want_names = [n for n, _ in want]
    if got_names != want_names:
        sys.stderr.write(
            f"{path}: not a `{fmt}` export: expected columns {want_names}, found {got_names}\n"
        )
        return 1
    for (name, t), field in zip(want, table.schema):
        expected_type = json_widen(t) if jsonl else t
        m = mismatch(field.type, expected_type, name, allow_null=jsonl)
        if m:
            sys.stderr.write(f"{path}: not a `{fmt}` export: column {m}\n")
            return 1
    if table.num_rows == 0:
        sys.stderr.write(f"{path}: has no rows; nothing for a trainer to read\n")
        return 1
    m = check_values(fmt, table, opts["reasoning"])
    if not m and opts["dataset_info"]:
        m = check_dataset_info(fmt, path)
    if m:
        sys.stderr.write(f"{path}: not a valid `{fmt}` export: {m}\n")
        return 1
    print(f"ok: {path} is a `{fmt}` export with {table.num_rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
