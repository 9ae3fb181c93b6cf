//! Data a user can trust (issue 16), through the binary: a judge is calibrated before it
//! scores, one at chance is stopped by `min_calibration_accuracy` before it rates the
//! run, and without a minimum its weakness and its collapsed scores are warnings in the
//! run summary, the manifest and the report's Quality section.

mod common;

use std::path::Path;

use common::*;
use retort_store::Manifest;

/// 25 instruction/answer records and a load → score → report → export pipeline whose
/// judge is the mock at `base`; `extra` adds score options.
fn pipeline(d: &Path, base: &str, extra: &str) {
    let rows: String = (0..25)
        .map(|i| {
            format!("{{\"id\": \"r{i}\", \"instruction\": \"Explain topic {i}.\", \"output\": \"Topic {i} is explained here.\"}}\n")
        })
        .collect();
    write(d, "rows.jsonl", &rows);
    write(
        d,
        "p.toml",
        &format!(
            r#"
name = "q"
[teachers.judge]
provider = "openai"
base_url = "{base}"
model = "mock-judge"
retry_base_ms = 5
[[step]]
id = "rows"
kind = "load"
path = "rows.jsonl"
[[step]]
id = "scored"
kind = "score"
after = ["rows"]
teacher = "judge"
aspects = ["quality"]
calibration = "on"
{extra}
[[step]]
id = "report"
kind = "report"
after = ["scored"]
[[step]]
id = "out"
kind = "export"
after = ["scored"]
format = "alpaca"
path = "out.jsonl"
"#
        ),
    );
}

/// A judge that gives 10 to everything.
fn always_ten() -> retort_mock::MockConfig {
    retort_mock::MockConfig {
        rules: vec![retort_mock::ReplyRule {
            pattern: regex::Regex::new(r"(?s)strict, fair reviewer").unwrap(),
            reply: r#"{"rationale": "great", "score": 10}"#.to_string(),
        }],
        ..Default::default()
    }
}

#[test]
fn a_judge_at_chance_is_stopped_before_it_scores_the_run() {
    let (_rt, mock) = start_mock(always_ten());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    pipeline(d, &mock.base_url(), "min_calibration_accuracy = 0.8");
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("scored"), "{t}");
    assert!(t.contains("failed its calibration"), "{t}");
    assert!(t.contains("calibration accuracy 0.50 on 105 items"), "{t}");
    // Only the set was asked: 105 items × 2 answers, no record of the run.
    assert_eq!(mock.log().len(), 210);
    assert!(!mock.log().iter().any(|r| r.body.contains("Explain topic")));
    assert!(!d.join("run/out.jsonl").exists());
    let m = Manifest::read(&d.join("run")).unwrap();
    let s = m.steps.iter().find(|s| s.id == "scored").unwrap();
    assert_eq!(s.metrics["calibration_accuracy"], 0.5);
    assert_eq!(s.metrics["calibration_tie_rate"], 1.0);
}

#[test]
fn a_weak_judge_without_a_minimum_is_flagged_in_the_summary_manifest_and_report() {
    let (_rt, mock) = start_mock(always_ten());
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    pipeline(d, &mock.base_url(), "");
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("calibration: step `scored`: judge accuracy 0.50 on 105 items"),
        "{t}"
    );
    assert!(t.contains("below 0.8: its scores are weak evidence"), "{t}");
    assert!(
        t.contains("scores.quality has collapsed: 100% of 25 records got 10"),
        "{t}"
    );
    let m = Manifest::read(&d.join("run")).unwrap();
    let s = m.steps.iter().find(|s| s.id == "scored").unwrap();
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert_eq!(s.metrics["scores_quality_top_share"], 1.0);
    let html = std::fs::read_to_string(d.join("run/report.html")).unwrap();
    let q = &html[html.find(r#"<section id="quality">"#).unwrap()..];
    let q = &q[..q.find("</section>").unwrap()];
    assert!(q.contains("Judge calibration"), "{q}");
    assert!(q.contains(r#"class="flagged""#), "{q}");
    assert!(q.contains("has collapsed"), "{q}");
    assert!(q.contains("— collapsed"), "{q}");
    // The rerun asks nothing new: the calibration calls are cached with the rest.
    let before = mock.log().len();
    let o = run(&["run", "p.toml", "--out", "run", "--fresh"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mock.log().len(), before, "every call came from the cache");
}
