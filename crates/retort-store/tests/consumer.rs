//! Consumer check: every export format, as Parquet and as JSONL, is read back by pyarrow
//! (what Hugging Face `datasets` and TRL use underneath) through
//! `tests/consumer/check_export.py`, which asserts the exact columns and Arrow types.
//! Needs `python3` with `pyarrow`; missing either is a failure, not a skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{chat_record, full_record, sft_record};
use retort_core::{Message, Record};
use retort_store::{ExportFormat, Exporter};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/consumer/check_export.py")
}

fn require_pyarrow() {
    let out = Command::new("python3")
        .args(["-c", "import pyarrow; print(pyarrow.__version__)"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the consumer check needs pyarrow: pip install pyarrow\n(python3 said: {})",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("the consumer check needs python3 with pyarrow (pip install pyarrow): cannot run python3: {e}"),
    }
}

fn check(format: &str, path: &Path) -> (bool, String) {
    let o = Command::new("python3")
        .arg(script())
        .arg(format)
        .arg(path)
        .output()
        .expect("run python3");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Records that every format can express, with at least one non-null value in every
/// nullable column (so JSON type inference sees the real types) and one null.
fn dataset() -> Vec<Record> {
    let mut v = Vec::new();
    for i in 0..5 {
        let mut r = full_record(i);
        if i % 2 == 1 {
            // Single-turn prompt: expressible in the standard DPO format too.
            r.messages = vec![Message::user(format!("问题 {i}"))];
            r.instruction = None;
            r.input = None;
            if let Some(p) = r.pair.as_mut() {
                p.rationale = None;
            }
        }
        v.push(r);
    }
    v.push(sft_record(10));
    v.push(chat_record(11));
    v
}

#[test]
fn every_export_format_reads_back_in_pyarrow_with_the_promised_schema() {
    require_pyarrow();
    let dir = tempfile::tempdir().unwrap();
    let records = dataset();
    for format in ExportFormat::ALL {
        for ext in ["parquet", "jsonl"] {
            let path = dir.path().join(format!("{}.{ext}", format.name()));
            let mut ex = Exporter::create(&path, format).unwrap();
            let skipped = ex.write(&records).unwrap();
            let rows = ex.finish().unwrap();
            assert!(
                rows > 0,
                "{}: nothing written; skipped {skipped:?}",
                format.name()
            );
            assert_eq!(rows as usize + skipped.len(), records.len());
            let (ok, out) = check(format.name(), &path);
            assert!(ok, "{} {ext}: {out}", format.name());
        }
    }
}

#[test]
fn the_check_rejects_a_file_of_another_format() {
    require_pyarrow();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sft.parquet");
    let mut ex = Exporter::create(&path, ExportFormat::Messages).unwrap();
    ex.write(&dataset()).unwrap();
    ex.finish().unwrap();
    let (ok, out) = check("dpo_conversational", &path);
    assert!(!ok, "{out}");
    assert!(out.contains("expected columns"), "{out}");
}
