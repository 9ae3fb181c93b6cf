#!/usr/bin/env python3
"""Consumer check for a retort dataset card: the folder is loaded the way the Hub and a
training script load it.

    python3 tests/consumer/check_card.py FOLDER

FOLDER holds README.md (written by `retort card`) and the exports at the paths its
`configs` name. The check parses the front matter with PyYAML, loads every config with
`datasets.load_dataset(FOLDER, config_name)`, and checks that each split has the rows
`dataset_info` declares and that the declared features are exactly what `datasets` makes
of the Parquet file's Arrow schema (`Features.from_arrow_schema(...)._to_yaml_list()`).
It prints one JSON object: {config: {split: rows}}, plus the parsed front matter under
"_front", for the Rust test to compare with the manifest.

Exit 0: ok; 1: the card or the data is not what it claims (the message says why);
2: bad usage or a package missing (the message gives the pip command).
"""

import json
import os
import sys

PIP = "python3 -m pip install pyyaml datasets pyarrow"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
try:
    import yaml
    import datasets
    import pyarrow.parquet as pq
except ImportError as e:
    print(f"missing package ({e}); install with: {PIP}", file=sys.stderr)
    sys.exit(2)


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    folder = sys.argv[1]
    text = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
    if not text.startswith("---\n"):
        fail("README.md does not start with a --- front matter")
    front_text, sep, _body = text[4:].partition("\n---\n")
    if not sep:
        fail("the front matter is not closed by ---")
    front = yaml.safe_load(front_text)
    for key in ("configs", "tags", "size_categories", "task_categories"):
        if key not in front:
            fail(f"front matter has no `{key}`")
    if "synthetic" not in front["tags"]:
        fail(f"tags {front['tags']} lack `synthetic`")
    info = {i["config_name"]: i for i in front.get("dataset_info", [])}
    out = {"_front": front}
    for cfg in front["configs"]:
        name = cfg["config_name"]
        # The card's own data_files, as the Hub reads them.
        ds = datasets.load_dataset(folder, name)
        got = {split: ds[split].num_rows for split in ds}
        want_splits = sorted(df["split"] for df in cfg["data_files"])
        if sorted(got) != want_splits:
            fail(f"config {name}: datasets found splits {sorted(got)}, the card says {want_splits}")
        if name in info:
            declared = {s["name"]: s["num_examples"] for s in info[name]["splits"]}
            if declared != got:
                fail(f"config {name}: datasets loaded {got} rows, dataset_info declares {declared}")
            for df in cfg["data_files"]:
                schema = pq.read_schema(os.path.join(folder, df["path"]))
                expected = datasets.Features.from_arrow_schema(schema)._to_yaml_list()
                if expected != info[name]["features"]:
                    fail(
                        f"config {name}: features differ from datasets' own for {df['path']}:\n"
                        f"card:     {info[name]['features']}\ndatasets: {expected}"
                    )
            first = next(iter(ds.values()))
            if first.features._to_yaml_list() != info[name]["features"]:
                fail(f"config {name}: the loaded dataset's features differ from the card's")
        out[name] = got
    print(json.dumps(out))


if __name__ == "__main__":
    main()
