//! Consumer check: every export format, as Parquet and as JSONL, is read back by pyarrow
//! (what Hugging Face `datasets` and TRL use underneath) through
//! `tests/consumer/check_export.py`, which asserts the exact columns and Arrow types,
//! and the TRL formats by TRL's own dataset helpers through
//! `tests/consumer/check_trl.py`. Needs `python3` with pyarrow, datasets, transformers,
//! tokenizers and trl (`scripts/system-deps.sh` installs them); missing any is a
//! failure naming the pip command, not a skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{chat_record, full_record, sft_record};
use retort_core::{Message, Record};
use retort_store::{ExportFormat, ExportOptions, Exporter, KeepColumn, Reasoning};

const PIP: &str = "python3 -m pip install pyarrow transformers tokenizers datasets && python3 -m pip install --no-deps trl (or run scripts/system-deps.sh)";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/consumer")
        .join(name)
}

fn require_python_packages() {
    let out = Command::new("python3")
        .args([
            "-c",
            "import pyarrow, datasets, tokenizers, transformers, trl.data_utils",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "the consumer check needs pyarrow and TRL's dataset stack: {PIP}\n(python3 said: {})",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("the consumer check needs python3 ({PIP}): cannot run python3: {e}"),
    }
}

fn python(script_name: &str, args: &[String]) -> (bool, String) {
    let o = Command::new("python3")
        .arg(script(script_name))
        .args(args)
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

fn check(format: &str, path: &Path, flags: &[&str]) -> (bool, String) {
    let mut args = vec![format.to_string(), path.display().to_string()];
    args.extend(flags.iter().map(|s| s.to_string()));
    python("check_export.py", &args)
}

fn reasoned(content: &str, trace: &str) -> Message {
    let mut m = Message::assistant(content);
    m.reasoning = Some(trace.into());
    m
}

/// Records that every format can express, with at least one non-null value in every
/// nullable column (so JSON type inference sees the real types) and one null, and
/// reasoning traces on a chat answer and on a chosen side.
fn dataset() -> Vec<Record> {
    let mut v = Vec::new();
    for i in 0..5 {
        let mut r = full_record(i);
        if i % 2 == 1 {
            // Single-turn prompt: expressible in the standard preference formats too.
            r.messages = vec![Message::user(format!("问题 {i}"))];
            r.instruction = None;
            r.input = None;
            if let Some(p) = r.pair.as_mut() {
                p.rationale = None;
            }
        }
        if i == 4 {
            if let Some(p) = r.pair.as_mut() {
                p.chosen = vec![reasoned("It is blue.", "Rayleigh scattering.")];
            }
        }
        v.push(r);
    }
    v.push(sft_record(10));
    let mut c = chat_record(11);
    c.messages[2] = reasoned("Hello!", "A greeting deserves one.");
    v.push(c);
    v.push(chat_record(12));
    v
}

fn export(dir: &Path, name: &str, format: ExportFormat, o: &ExportOptions) -> PathBuf {
    let path = dir.join(name);
    let records = dataset();
    let mut ex = Exporter::create_with(&path, format, o).unwrap();
    let skipped = ex.write(&records).unwrap();
    let rows = ex.finish().unwrap();
    assert!(rows > 0, "{name}: nothing written; skipped {skipped:?}");
    path
}

/// Formats TRL has a dataset type for (all but records, alpaca, sharegpt, alpaca_ranking).
fn is_trl(f: ExportFormat) -> bool {
    !matches!(
        f,
        ExportFormat::Records
            | ExportFormat::Alpaca
            | ExportFormat::ShareGpt
            | ExportFormat::AlpacaRanking
    )
}

#[test]
fn every_export_format_reads_back_in_pyarrow_and_trl() {
    require_python_packages();
    let dir = tempfile::tempdir().unwrap();
    let mut trl_checks = Vec::new();
    for ext in ["parquet", "jsonl"] {
        let sub = dir.path().join(ext);
        std::fs::create_dir_all(&sub).unwrap();
        let mut paths = std::collections::BTreeMap::new();
        for format in ExportFormat::ALL {
            let name = format!("{}.{ext}", format.name());
            let path = export(&sub, &name, format, &ExportOptions::default());
            let flags: &[&str] = if format == ExportFormat::AlpacaRanking {
                &["--dataset-info"]
            } else {
                &[]
            };
            let (ok, out) = check(format.name(), &path, flags);
            assert!(ok, "{} {ext}: {out}", format.name());
            if is_trl(format) {
                trl_checks.push(format!("{}:{}", format.name(), path.display()));
            }
            paths.insert(format.name(), path.display().to_string());
        }
        for (op, paired, other) in [
            ("unpair", "dpo", "kto"),
            ("unpair", "dpo_conversational", "kto_conversational"),
            ("extract", "dpo", "implicit_preference"),
            (
                "extract",
                "dpo_conversational",
                "implicit_preference_conversational",
            ),
        ] {
            trl_checks.push(format!("{op}:{}:{}", paths[paired], paths[other]));
        }
    }
    let (ok, out) = python("check_trl.py", &trl_checks);
    assert!(ok, "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("ok:")).count(),
        trl_checks.len(),
        "{out}"
    );
}

#[test]
fn export_options_read_back_with_their_columns() {
    require_python_packages();
    let dir = tempfile::tempdir().unwrap();
    let keep = |names: &[&str]| -> Vec<KeepColumn> {
        names
            .iter()
            .map(|n| KeepColumn::parse(n).unwrap())
            .collect()
    };
    for ext in ["parquet", "jsonl"] {
        // Kept columns with a value in some rows and null in others, no id, `thinking`.
        let o = ExportOptions {
            include_id: false,
            keep_columns: keep(&["quality", "language", "cluster", "model", "scores.absent"]),
            reasoning: Some(Reasoning::Thinking),
            dataset_info: Some(true),
            tools: false,
        };
        let p = export(
            dir.path(),
            &format!("sft.{ext}"),
            ExportFormat::Messages,
            &o,
        );
        let flags = [
            "--no-id",
            "--reasoning",
            "thinking",
            "--keep",
            "quality:double,language:string,cluster:uint32,model:string,absent:double",
            "--dataset-info",
        ];
        let (ok, out) = check("messages", &p, &flags);
        assert!(ok, "{ext}: {out}");
        let o = ExportOptions {
            keep_columns: keep(&["quality", "model", "tier"]),
            reasoning: Some(Reasoning::Inline),
            ..Default::default()
        };
        let p = export(
            dir.path(),
            &format!("kto.{ext}"),
            ExportFormat::KtoConversational,
            &o,
        );
        let (ok, out) = check(
            "kto_conversational",
            &p,
            &[
                "--reasoning",
                "inline",
                "--keep",
                "quality:double,model:string,tier:string",
            ],
        );
        assert!(ok, "{ext}: {out}");
        for f in [ExportFormat::Alpaca, ExportFormat::ShareGpt] {
            let o = ExportOptions {
                dataset_info: Some(true),
                reasoning: Some(Reasoning::Drop),
                ..Default::default()
            };
            let p = export(dir.path(), &format!("{}.{ext}", f.name()), f, &o);
            let (ok, out) = check(f.name(), &p, &["--reasoning", "drop", "--dataset-info"]);
            assert!(ok, "{ext}: {out}");
        }
    }
}

#[test]
fn the_check_rejects_a_file_of_another_format() {
    require_python_packages();
    let dir = tempfile::tempdir().unwrap();
    let path = export(
        dir.path(),
        "sft.parquet",
        ExportFormat::Messages,
        &ExportOptions::default(),
    );
    let (ok, out) = check("dpo_conversational", &path, &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("expected columns"), "{out}");
    let (ok, out) = python("check_trl.py", &[format!("prompt_only:{}", path.display())]);
    assert!(!ok, "{out}");
    assert!(out.contains("is_conversational"), "{out}");
}
