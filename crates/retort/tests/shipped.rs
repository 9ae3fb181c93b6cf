//! The pipelines shipped under `pipelines/`, driven through the binary as a user would:
//! every one passes `retort validate`; `reasoning.toml` runs against the mock in each
//! reasoning shape it offers and its three exports read back through pyarrow with the
//! trace apart from the answer; `structured.toml` runs on the embedded SmolLM2 under its
//! schema grammar and every reply parses and validates.

mod common;

use common::*;
use std::path::PathBuf;

fn shipped(name: &str) -> PathBuf {
    repo_root().join("pipelines").join(name)
}

#[test]
fn every_shipped_pipeline_validates() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("pipelines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["structured.toml", "reasoning.toml", "quickstart.toml"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    for f in &files {
        let o = run(&["validate", f.to_str().unwrap()], &repo_root());
        assert!(
            o.status.success(),
            "retort validate {}: {}",
            f.display(),
            text(&o)
        );
    }
}

/// The three exports of one run, checked in Python against what the mock answers:
/// `echo: <prompt>` with the trace `Reasoning about: <first 60 characters>` (argv: run
/// directory, rows, reasoning shape).
const CHECK_REASONING: &str = r#"
import json, sys
import pyarrow.parquet as pq
import pyarrow.json as pj
run, n, shape = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rows(name):
    p = f"{run}/{name}"
    t = pq.read_table(p) if p.endswith(".parquet") else pj.read_json(p)
    return {r["id"]: r for r in t.to_pylist()}
plain, thinking, inline = rows("sft.parquet"), rows("sft-thinking.parquet"), rows("sft-inline.jsonl")
assert len(plain) == n, (len(plain), n)
assert set(plain) == set(thinking) == set(inline), "the three exports hold different rows"
for rid, r in plain.items():
    m = r["messages"]
    assert [t["role"] for t in m] == ["user", "assistant"], (rid, m)
    user, a = m[0]["content"], m[1]
    answer, trace = "echo: " + user, "Reasoning about: " + user[:60]
    if shape == "think":
        trace = trace.strip()  # a <think> block's text is trimmed when it is taken out
    assert a["content"] == answer, (rid, a["content"], answer)
    assert a["reasoning_content"] == trace, (rid, a["reasoning_content"], trace)
    assert m[0]["reasoning_content"] is None, (rid, m[0])
    assert "<think>" not in a["content"] and "Reasoning about" not in a["content"], (rid, a)
    t = thinking[rid]["messages"][1]
    assert t["content"] == answer and t["thinking"] == trace and "reasoning_content" not in t, (rid, t)
    i = inline[rid]["messages"][1]
    assert i["content"] == f"<think>\n{trace}\n</think>\n\n{answer}", (rid, i)
    assert "reasoning_content" not in i and "thinking" not in i, (rid, i)
print("ok", len(plain))
"#;

#[test]
fn reasoning_pipeline_keeps_every_shape_of_trace_apart_from_the_answer() {
    let n = 12;
    for shape in ["reasoning_content", "reasoning", "think"] {
        let (_rt, mock) = start_mock(retort_mock::MockConfig {
            reasoning: Some(retort_mock::ReasoningShape::parse(shape).unwrap()),
            ..retort_mock::MockConfig::default()
        });
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let o = run(
            &[
                "run",
                shipped("reasoning.toml").to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--limit",
                &n.to_string(),
                "--set",
                &format!("teachers.reasoner.base_url={}", mock.base_url()),
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{shape}: {}", text(&o));
        let m = manifest(&out.join("manifest.json"));
        assert_eq!(m["status"], "complete", "{shape}");
        assert_eq!(m["failures"], 0, "{shape}: {}", m["steps"]);
        assert_eq!(m["teachers"]["total"]["calls"], n, "{shape}");
        for (file, mode) in [
            ("sft.parquet", "reasoning_content"),
            ("sft-thinking.parquet", "thinking"),
            ("sft-inline.jsonl", "inline"),
        ] {
            pyarrow_check_with("messages", &out.join(file), &["--reasoning", mode]);
        }
        let o = std::process::Command::new("python3")
            .args([
                "-c",
                CHECK_REASONING,
                out.to_str().unwrap(),
                &n.to_string(),
                shape,
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{shape}: {}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("ok {n}"));
    }
}

/// `check_export.py FORMAT PATH FLAGS…`.
fn pyarrow_check_with(format: &str, path: &std::path::Path, flags: &[&str]) {
    let o = std::process::Command::new("python3")
        .arg(repo_root().join("tests/consumer/check_export.py"))
        .arg(format)
        .arg(path)
        .args(flags)
        .output()
        .expect("python3 is needed for the consumer check (pip install pyarrow)");
    assert!(
        o.status.success(),
        "pyarrow rejected {} as {format} {flags:?}: {}",
        path.display(),
        text(&o)
    );
}

#[test]
fn structured_pipeline_on_smollm2_under_the_grammar_gives_only_valid_records() {
    let n = 10;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = run(
        &[
            "run",
            shipped("structured.toml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--limit",
            &n.to_string(),
            "--set",
            "teachers.local.model=smollm2",
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let m = manifest(&out.join("manifest.json"));
    assert_eq!(m["status"], "complete");
    let qa = m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "qa")
        .unwrap()
        .clone();
    // Every reply under the grammar parsed and validated: no failure of any class.
    assert_eq!(m["failures"], 0, "{qa}");
    assert_eq!(qa["rows_in"], n, "{qa}");
    assert_eq!(qa["rows_out"], n, "{qa}");
    pyarrow_check_with(
        "messages",
        &out.join("sft.parquet"),
        &["--keep", "difficulty:double,category:string"],
    );
    pyarrow_check_with(
        "alpaca",
        &out.join("qa.jsonl"),
        &["--keep", "difficulty:double,category:string"],
    );
    let checked = py(&format!(
        r#"
import pyarrow.parquet as pq
rows = pq.read_table('{}').to_pylist()
assert len(rows) == {n}, len(rows)
topics = {{}}
import json
for l in open('{}'):
    t = json.loads(l)
    topics[t["id"]] = t
for r in rows:
    q, a = r["messages"][0], r["messages"][1]
    assert q["role"] == "user" and a["role"] == "assistant", r
    assert 10 <= len(q["content"]) <= 200, q
    assert 1 <= len(a["content"]) <= 500, a
    assert r["difficulty"] in (1.0, 2.0, 3.0, 4.0, 5.0), r["difficulty"]
    assert r["category"] == topics[r["id"]]["category"], r
# The Alpaca file holds the same question/solution pairs.
alpaca = sorted((json.loads(l)["instruction"], json.loads(l)["output"]) for l in open('{}'))
assert alpaca == sorted((r["messages"][0]["content"], r["messages"][1]["content"]) for r in rows)
print("ok", len(rows))
"#,
        out.join("sft.parquet").display(),
        repo_root().join("seeds/topics.jsonl").display(),
        out.join("qa.jsonl").display(),
    ));
    assert_eq!(checked, format!("ok {n}"));
}
