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
    let mut cfg = TeacherConfig::new(Provider::Openai, "mock-model");
    cfg.base_url = Some(mock.base_url());
    cfg.timeout_secs = 5.0;
    let shared = Arc::new(Shared::new(None, true, Arc::new(Accounting::new(None))));
    let client = Client::new("judge", &cfg, http_backend(&cfg).unwrap(), shared);
    let mut teachers: BTreeMap<String, Arc<dyn Teacher>> = BTreeMap::new();
    teachers.insert("judge".into(), Arc::new(client));
    let ctx = test_ctx("e2e", teachers, None);

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
            structured: true,
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
    // structured = true put the schema on the wire.
    let body: serde_json::Value = serde_json::from_str(&mock.log()[0].body).unwrap();
    assert_eq!(body["response_format"]["type"], "json_schema");

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
