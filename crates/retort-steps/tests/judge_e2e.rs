//! score → judge → pair through the real teacher client and the mock OpenAI server on
//! 127.0.0.1.

mod judge_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use judge_support::{rec, with_candidates};
use retort_core::{Message, Record};
use retort_mock::{MockConfig, MockServer};
use retort_steps::judge::{JudgeMode, JudgeOptions, JudgeStep};
use retort_steps::judge_parse::Scale;
use retort_steps::pair::{PairOptions, PairStep};
use retort_steps::score::{Aspect, ScoreOptions, ScoreStep};
use retort_steps::testing::{inputs_from, test_ctx, MemSink};
use retort_steps::Step;
use retort_teacher::{http_backend, Accounting, Client, Provider, Shared, Teacher, TeacherConfig};

/// The mock judge: difficulty as fenced JSON, quality as `Score: n` text (an unreadable
/// reply for the prompt mentioning "gibberish"), pairwise verdicts preferring the
/// longer response in either position.
fn judge_reply(prompt: &str) -> String {
    if prompt.contains("[Response A]") {
        let cut = |tag: &str| {
            let s = prompt.find(&format!("[Response {tag}]\n")).unwrap() + 12;
            let e = prompt.find(&format!("[End of response {tag}]")).unwrap();
            prompt[s..e].trim().len()
        };
        let w = if cut("A") > cut("B") { "A" } else { "B" };
        format!("{{\"rationale\": \"more complete\", \"winner\": \"{w}\"}}")
    } else if prompt.contains("difficulty and complexity") {
        "```json\n{\"rationale\": \"a few steps\", \"score\": 4}\n```".into()
    } else if prompt.contains("gibberish") {
        "I would rather not say.".into()
    } else {
        "Solid answer.\nScore: 8".into()
    }
}

#[tokio::test]
async fn score_judge_pair_over_local_http() {
    let mock = MockServer::start(MockConfig {
        reply_fn: Some(Arc::new(judge_reply)),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let ctx = judge_ctx(&mock, "e2e");

    let mut rows: Vec<Record> = (0..5)
        .map(|i| {
            let mut r = with_candidates(
                &format!("q{i}"),
                &format!("Explain topic {i}"),
                &[
                    "short",
                    "a much longer and more complete answer",
                    "medium answer",
                ],
            );
            r.output = Some(format!("Reference answer {i}"));
            r
        })
        .collect();
    rows.push(rec("bad", "Rate this gibberish", Some("xyz")));

    let score = ScoreStep::new(
        ScoreOptions {
            teacher: "judge".into(),
            aspects: vec![Aspect::Quality, Aspect::Difficulty],
            scale: Scale::TEN,
            templates: Default::default(),
            heuristics: true,
            // Free-text replies: the tolerant reader's shapes (structured replies are
            // held to their schema, `structured_judges_hold_every_reply_to_its_schema`).
            structured: false,
            concurrency: 8,
            temperature: 0.0,
            max_tokens: 128,
            calibration: Default::default(),
            min_calibration_accuracy: None,
        },
        Path::new("."),
    )
    .unwrap();
    let mut scored = MemSink::default();
    score
        .run(&ctx, inputs_from(rows, 4), &mut scored)
        .await
        .unwrap();
    let fails = scored.failures();
    assert_eq!(fails.len(), 1);
    assert_eq!(
        (
            fails[0].record_id.as_str(),
            fails[0].class.as_str(),
            fails[0].raw.as_str()
        ),
        ("bad", "parse", "I would rather not say.")
    );
    let scored = scored.records();
    assert_eq!(scored.len(), 5);
    assert!(scored
        .iter()
        .all(|r| r.scores["quality"] == 8.0 && r.scores["difficulty"] == 4.0));
    let body: serde_json::Value = serde_json::from_str(&mock.log()[0].body).unwrap();
    assert!(body.get("response_format").is_none(), "{body}");

    let judge = JudgeStep::new(
        JudgeOptions {
            teacher: "judge".into(),
            mode: JudgeMode::Pairwise,
            scale: None,
            aspects: vec![],
            template: None,
            structured: false,
            concurrency: 8,
            temperature: 0.0,
            max_tokens: 128,
            calibration: Default::default(),
            min_calibration_accuracy: None,
        },
        Path::new("."),
    )
    .unwrap();
    let mut judged = MemSink::default();
    judge
        .run(&ctx, inputs_from(scored, 2), &mut judged)
        .await
        .unwrap();
    assert!(judged.failures().is_empty(), "{:?}", judged.failures());
    let judged = judged.records();
    assert_eq!(judged.len(), 5);
    for r in &judged {
        let s: Vec<f64> = r.candidates.iter().map(|c| c.score.unwrap()).collect();
        assert_eq!(s, vec![0.0, 1.0, 0.5], "{}", r.id);
    }

    let mut pairs = MemSink::default();
    PairStep::new(PairOptions::default())
        .run(&ctx, inputs_from(judged, 3), &mut pairs)
        .await
        .unwrap();
    let pairs = pairs.records();
    assert_eq!(pairs.len(), 5);
    let p = pairs[0].pair.as_ref().unwrap();
    assert_eq!(pairs[0].messages, vec![Message::user("Explain topic 0")]);
    assert_eq!(
        p.chosen[0].content,
        "a much longer and more complete answer"
    );
    assert_eq!(p.rejected[0].content, "short");
    assert_eq!(p.margin, 1.0);
    // 6 records × 2 aspects (the bad one still asked both), then 5 × 3 pairs × 2 orders.
    assert_eq!(mock.chat_requests(), 12 + 30);
}

/// A client of `mock` named `judge`, and a context holding it.
fn judge_ctx(mock: &MockServer, step_id: &str) -> retort_steps::StepCtx {
    let mut cfg = TeacherConfig::new(Provider::Openai, "mock-model");
    cfg.base_url = Some(mock.base_url());
    cfg.timeout_secs = 5.0;
    let shared = Arc::new(Shared::new(None, true, Arc::new(Accounting::new(None))));
    let client = Client::new("judge", &cfg, http_backend(&cfg).unwrap(), shared);
    let mut teachers: BTreeMap<String, Arc<dyn Teacher>> = BTreeMap::new();
    teachers.insert("judge".into(), Arc::new(client));
    test_ctx(step_id, teachers, None)
}

/// `score` (quality) and a pairwise `judge` with `structured = true` over three records,
/// against `mock`: (records scored, failures as (class, raw)) of each.
async fn structured_run(mock: &MockServer) -> [(Vec<Record>, Vec<(String, String)>); 2] {
    let ctx = judge_ctx(mock, "structured");
    let rows: Vec<Record> = (0..3)
        .map(|i| {
            with_candidates(
                &format!("q{i}"),
                &format!("Explain topic {i}"),
                &["short", "a longer answer"],
            )
        })
        .map(|mut r| {
            r.output = Some("Reference answer".into());
            r
        })
        .collect();
    let score = ScoreStep::new(
        ScoreOptions {
            teacher: "judge".into(),
            aspects: vec![Aspect::Quality],
            scale: Scale::TEN,
            templates: Default::default(),
            heuristics: false,
            structured: true,
            concurrency: 4,
            temperature: 0.0,
            max_tokens: 128,
            calibration: retort_steps::calibration::Mode::Off,
            min_calibration_accuracy: None,
        },
        Path::new("."),
    )
    .unwrap();
    let judge = JudgeStep::new(
        JudgeOptions {
            teacher: "judge".into(),
            mode: JudgeMode::Pairwise,
            scale: None,
            aspects: vec![],
            template: None,
            structured: true,
            concurrency: 4,
            temperature: 0.0,
            max_tokens: 128,
            calibration: retort_steps::calibration::Mode::Off,
            min_calibration_accuracy: None,
        },
        Path::new("."),
    )
    .unwrap();
    let mut out = Vec::new();
    for step in [&score as &dyn Step, &judge] {
        let mut sink = MemSink::default();
        step.run(&ctx, inputs_from(rows.clone(), 3), &mut sink)
            .await
            .unwrap();
        let fails = sink
            .failures()
            .iter()
            .map(|f| (f.class.clone(), f.raw.clone()))
            .collect();
        out.push((sink.records(), fails));
    }
    out.try_into().unwrap()
}

#[tokio::test]
async fn structured_judges_hold_every_reply_to_its_schema() {
    // A server that enforces the schema: every rating is a record, on the scale.
    let honours = MockServer::start(MockConfig::default()).await.unwrap();
    let [(scored, score_fails), (judged, judge_fails)] = structured_run(&honours).await;
    assert!(
        score_fails.is_empty() && judge_fails.is_empty(),
        "{score_fails:?} {judge_fails:?}"
    );
    assert_eq!((scored.len(), judged.len()), (3, 3));
    assert!(scored
        .iter()
        .all(|r| (1.0..=10.0).contains(&r.scores["quality"])));
    let body: serde_json::Value = serde_json::from_str(&honours.log()[0].body).unwrap();
    assert_eq!(body["response_format"]["type"], "json_schema");

    // A server that ignores it and answers in prose the tolerant reader could have read:
    // every reply is a `schema` failure with its text, no record is rated.
    let ignores = MockServer::start(MockConfig {
        honour_schema: false,
        reply_fn: Some(Arc::new(|p: &str| {
            if p.contains("[Response A]") {
                "Winner: A".to_string()
            } else {
                "Solid answer.\nScore: 8".to_string()
            }
        })),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let [(scored, score_fails), (judged, judge_fails)] = structured_run(&ignores).await;
    assert_eq!((scored.len(), judged.len()), (0, 0));
    assert_eq!(score_fails.len(), 3);
    assert!(
        score_fails
            .iter()
            .all(|(c, raw)| c == "schema" && raw == "Solid answer.\nScore: 8"),
        "{score_fails:?}"
    );
    assert_eq!(judge_fails.len(), 6, "both orders of each pair");
    assert!(
        judge_fails
            .iter()
            .all(|(c, raw)| c == "schema" && raw == "Winner: A"),
        "{judge_fails:?}"
    );
}
