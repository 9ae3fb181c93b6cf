#!/usr/bin/env python3
"""Consumer check for retort exports: read a file the way training tools do (pyarrow,
which Hugging Face `datasets` uses underneath) and assert the exact columns and Arrow
types of its format.

    python3 tests/consumer/check_export.py FORMAT PATH

FORMAT is one of: records, messages, alpaca, sharegpt, dpo, dpo_conversational.
PATH ends in .parquet (read with pyarrow.parquet) or .jsonl (read with pyarrow.json).

Types are compared structurally: field names, order and value types must match; field
nullability and the name of a list's item field are ignored (they differ between
writers and no consumer looks at them). JSON cannot say how wide an integer or float is,
so for .jsonl files unsigned/narrow integers are expected as int64 and float32 as
double, and a column that is null (or an empty list) in every row may be inferred as
type `null`. Exit status 0 means the file is what the format promises; 1 means it is not
(the message says which column and why); 2 means bad usage or pyarrow missing.
"""

import sys

try:
    import pyarrow as pa
    import pyarrow.json as pj
    import pyarrow.parquet as pq
except ImportError:
    sys.stderr.write("check_export.py needs pyarrow: pip install pyarrow\n")
    sys.exit(2)


def msg():
    return pa.struct([("role", pa.string()), ("content", pa.string())])


def record_msg():
    # The internal record schema keeps an assistant turn's reasoning apart (nullable).
    return pa.struct(
        [("role", pa.string()), ("content", pa.string()), ("reasoning", pa.string())]
    )


def kv(value):
    return pa.list_(pa.struct([("key", pa.string()), ("value", value)]))


DPO_EXTRA = [
    ("prompt_id", pa.string()),
    ("chosen_model", pa.string()),
    ("rejected_model", pa.string()),
    ("chosen_score", pa.float64()),
    ("rejected_score", pa.float64()),
    ("margin", pa.float64()),
    ("rationale", pa.string()),
]

EXPECTED = {
    "records": [
        ("id", pa.string()),
        ("instruction", pa.string()),
        ("input", pa.string()),
        ("output", pa.string()),
        ("messages", pa.list_(record_msg())),
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
    ],
    "messages": [("messages", pa.list_(msg())), ("id", pa.string())],
    "alpaca": [("instruction", pa.string()), ("input", pa.string()), ("output", pa.string())],
    "sharegpt": [
        ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
        ("id", pa.string()),
    ],
    "dpo": [("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string())] + DPO_EXTRA,
    "dpo_conversational": [
        ("prompt", pa.list_(msg())),
        ("chosen", pa.list_(msg())),
        ("rejected", pa.list_(msg())),
    ]
    + DPO_EXTRA,
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


def check_values(fmt, table):
    """A few value-level promises a trainer relies on."""
    rows = table.to_pylist()
    for n, row in enumerate(rows, 1):
        if fmt in ("dpo", "dpo_conversational"):
            pid = row["prompt_id"]
            if not (isinstance(pid, str) and len(pid) == 64 and all(c in "0123456789abcdef" for c in pid)):
                return f"row {n}: prompt_id {pid!r} is not a sha256 hex digest"
        if fmt == "dpo_conversational":
            for col in ("chosen", "rejected"):
                if not row[col] or any(m["role"] != "assistant" for m in row[col]):
                    return f"row {n}: {col} must be a non-empty list of assistant messages"
            if not row["prompt"]:
                return f"row {n}: prompt is empty"
        if fmt == "sharegpt":
            for t in row["conversations"]:
                if t["from"] not in ("system", "human", "gpt"):
                    return f"row {n}: conversations[].from is {t['from']!r}, expected system/human/gpt"
        if fmt == "alpaca" and row["input"] is None:
            return f"row {n}: input is null; alpaca wants an empty string"
    return None


def main(argv):
    if len(argv) != 3 or argv[1] not in EXPECTED:
        sys.stderr.write(f"usage: {argv[0]} {{{','.join(EXPECTED)}}} PATH.(parquet|jsonl)\n")
        return 2
    fmt, path = argv[1], argv[2]
    if path.endswith(".parquet"):
        table = pq.read_table(path)
        jsonl = False
    elif path.endswith(".jsonl"):
        table = pj.read_json(path)
        jsonl = True
    else:
        sys.stderr.write(f"{path}: expected a .parquet or .jsonl file\n")
        return 2

    want = EXPECTED[fmt]
    got_names = table.schema.names
    want_names = [n for n, _ in want]
    if got_names != want_names:
        sys.stderr.write(
            f"{path}: not a `{fmt}` export: expected columns {want_names}, found {got_names}\n"
        )
        return 1
    for (name, t), field in zip(want, table.schema):
        expected = json_widen(t) if jsonl else t
        m = mismatch(field.type, expected, name, allow_null=jsonl)
        if m:
            sys.stderr.write(f"{path}: not a `{fmt}` export: column {m}\n")
            return 1
    if table.num_rows == 0:
        sys.stderr.write(f"{path}: has no rows; nothing for a trainer to read\n")
        return 1
    m = check_values(fmt, table)
    if m:
        sys.stderr.write(f"{path}: not a valid `{fmt}` export: {m}\n")
        return 1
    print(f"ok: {path} is a `{fmt}` export with {table.num_rows} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
