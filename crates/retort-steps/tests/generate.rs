//! The `generate` step through the real teacher client against the mock server on
//! 127.0.0.1: text replies into each kind of field, JSON-schema replies from a server that
//! honours `response_format` and from one that ignores it (which must give `schema`
//! failures, never records), reasoning kept apart from the answer, and every compile-time
//! check.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;
use retort_core::{Message, Provenance, Record};
use retort_mock::{MockConfig, MockServer, ReasoningShape, ReplyRule};
use retort_steps::registry::{build, BuildCtx, StepSpec};
use retort_steps::testing::{inputs_from, test_ctx, MemSink};
use retort_steps::Step;
use retort_teacher::{http_backend, Accounting, Client, Provider, Shared, Teacher, TeacherConfig};

fn spec(options: &str) -> StepSpec {
    StepSpec {
        id: "gen".into(),
        kind: "generate".into(),
        after: vec!["seeds".into()],
        options: toml::from_str(options).unwrap(),
    }
}

fn bctx() -> BuildCtx {
    BuildCtx {
        base_dir: ".".into(),
        teachers: vec!["t".into()],
        has_embedder: false,
    }
}

fn built(options: &str) -> Arc<dyn Step> {
    match build(&spec(options), &bctx()) {
        Ok(b) => b.step,
        Err(e) => panic!("build failed: {e:?}"),
    }
}

fn errors(options: &str) -> String {
    match build(&spec(options), &bctx()) {
        Ok(_) => panic!("expected build errors for {options}"),
        Err(e) => e.join("\n"),
    }
}

fn seeds() -> Vec<Record> {
    [
        "sorting algorithms",
        "photosynthesis",
        "the French revolution",
    ]
    .iter()
    .enumerate()
    .map(|(i, t)| Record {
        id: format!("s{i}"),
        instruction: Some(t.to_string()),
        labels: [("level".to_string(), "beginner".to_string())].into(),
        provenance: Provenance {
            step: "seeds".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .collect()
}

async fn run(mock: &MockServer, options: &str, rows: Vec<Record>) -> MemSink {
    let mut c = TeacherConfig::new(Provider::Openai, "mock-model");
    c.base_url = Some(mock.base_url());
    c.retry_base_ms = 10;
    let shared = Arc::new(Shared::new(None, true, Arc::new(Accounting::new(None))));
    let client: Arc<dyn Teacher> =
        Arc::new(Client::new("t", &c, http_backend(&c).unwrap(), shared));
    let ctx = test_ctx("gen", BTreeMap::from([("t".to_string(), client)]), None);
    let mut sink = MemSink::default();
    built(options)
        .run(&ctx, inputs_from(rows, 2), &mut sink)
        .await
        .unwrap();
    sink
}

const QA: &str = r#"
teacher = "t"
system = "You write {{ labels.level }} exam questions."
prompt = "Write a question and its answer about {{ instruction }}."
output = "json"
fields = { question = "instruction", answer = "output", topic = "labels.topic", difficulty = "scores.difficulty" }
[schema]
type = "object"
required = ["question", "answer", "topic", "difficulty"]
additionalProperties = false
[schema.properties.question]
type = "string"
[schema.properties.answer]
type = "string"
[schema.properties.topic]
type = "string"
[schema.properties.difficulty]
type = "integer"
minimum = 1
maximum = 5
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_replies_from_a_server_that_enforces_the_schema_fill_the_fields() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let sink = run(&mock, QA, seeds()).await;
    let recs = sink.records();
    assert_eq!(recs.len(), 3, "failures: {:?}", sink.failures());
    for r in &recs {
        let q = r.instruction.as_deref().unwrap();
        assert!(q.starts_with("question for Write a question"), "{q}");
        assert!(
            r.output.as_deref().unwrap().starts_with("answer for"),
            "{r:?}"
        );
        assert!(r.labels["topic"].starts_with("topic for"), "{r:?}");
        assert_eq!(r.scores["difficulty"], 1.0);
        assert_eq!(r.provenance.step, "gen");
        assert_eq!(r.provenance.teacher.as_deref(), Some("t"));
    }
    // The schema went to the server, and the system template saw the label.
    for entry in mock.log() {
        let body: serde_json::Value = serde_json::from_str(&entry.body).unwrap();
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(
            body["messages"][0]["content"],
            "You write beginner exam questions."
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_the_schema_gives_schema_failures_never_records() {
    let mock = MockServer::start(MockConfig {
        honour_schema: false,
        rules: vec![ReplyRule {
            // A near miss: JSON, but difficulty out of range.
            pattern: Regex::new("photosynthesis").unwrap(),
            reply: r#"{"question": "q", "answer": "a", "topic": "t", "difficulty": 9}"#.into(),
        }],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let sink = run(&mock, QA, seeds()).await;
    assert!(sink.records().is_empty(), "{:?}", sink.records());
    let f = sink.failures();
    assert_eq!(f.len(), 3, "{f:?}");
    for x in &f {
        assert_eq!(x.class, "schema", "{x:?}");
        assert!(!x.raw.is_empty(), "the raw reply is kept: {x:?}");
    }
    let near = f.iter().find(|x| x.record_id == "s1").unwrap();
    assert!(near.message.contains("/difficulty"), "{near:?}");
    assert!(f.iter().any(|x| x.message.contains("not JSON")), "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_replies_go_where_the_step_says_with_reasoning_kept_apart() {
    let mock = MockServer::start(MockConfig {
        reasoning: Some(ReasoningShape::Think),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    // A new assistant turn carries the trace on the message.
    let sink = run(
        &mock,
        r#"
teacher = "t"
prompt = "Explain {{ instruction }} simply."
to = "assistant"
"#,
        seeds(),
    )
    .await;
    let recs = sink.records();
    assert_eq!(recs.len(), 3);
    let last: &Message = recs[0].messages.last().unwrap();
    assert_eq!(last.role, "assistant");
    assert_eq!(last.content, "echo: Explain sorting algorithms simply.");
    assert_eq!(
        last.reasoning.as_deref(),
        Some("Reasoning about: Explain sorting algorithms simply.")
    );
    assert!(!last.content.contains("think"));

    // Into a label, samples = 2: two records per input, trace in labels.reasoning.
    let sink = run(
        &mock,
        r#"
teacher = "t"
prompt = "Name a subtopic of {{ instruction }}."
to = "labels.subtopic"
samples = 2
"#,
        seeds(),
    )
    .await;
    let recs = sink.records();
    let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["s0-s0", "s0-s1", "s1-s0", "s1-s1", "s2-s0", "s2-s1"]);
    assert_eq!(
        recs[0].labels["subtopic"],
        "echo: Name a subtopic of sorting algorithms."
    );
    assert!(recs[0].labels["reasoning"].starts_with("Reasoning about:"));
    assert_eq!(recs[0].instruction.as_deref(), Some("sorting algorithms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_missing_a_label_the_template_reads_is_its_own_failure() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let mut rows = seeds();
    rows[1].labels.clear();
    let sink = run(
        &mock,
        r#"
teacher = "t"
prompt = "A {{ labels.level }} question about {{ instruction }}."
"#,
        rows,
    )
    .await;
    assert_eq!(sink.records().len(), 2);
    let f = sink.failures();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].record_id.as_str(), f[0].class.as_str()),
        ("s1", "template")
    );
    assert_eq!(
        mock.log().len(),
        2,
        "no request for the record that could not render"
    );
}

#[test]
fn bad_options_are_compile_errors_that_say_what_to_do() {
    let e = errors(r#"teacher = "t""#);
    assert!(e.contains("`prompt` is missing"), "{e}");
    let e = errors(
        r#"
teacher = "nope"
prompt = "{{ instrution }}"
"#,
    );
    assert!(e.contains("teacher `nope`"), "{e}");
    assert!(
        e.contains("`instrution`") && e.contains("did you mean `instruction`"),
        "{e}"
    );
    let e = errors(
        r#"
teacher = "t"
prompt = "{{ instruction"
"#,
    );
    assert!(e.contains("syntax error"), "{e}");
    let e = errors(
        r#"
teacher = "t"
prompt = "x {{ instruction }}"
output = "json"
"#,
    );
    assert!(e.contains("schema_file"), "{e}");
    // Paths and types are checked against the schema.
    let bad = QA
        .replace("topic = \"labels.topic\"", "topc = \"labels.topic\"")
        .replace("answer = \"output\"", "answer = \"scores.answer\"");
    let e = errors(&bad);
    assert!(
        e.contains("`topc` is not in the schema") && e.contains("topic"),
        "{e}"
    );
    assert!(
        e.contains("`fields.answer` goes to `scores.answer`, a score"),
        "{e}"
    );
    let e = errors(
        r#"
teacher = "t"
prompt = "x {{ instruction }}"
to = "outpt"
"#,
    );
    assert!(e.contains("`outpt` is not a record field"), "{e}");
    let e = errors(
        r#"
teacher = "t"
prompt = "x {{ instruction }}"
fields = { a = "output" }
"#,
    );
    assert!(
        e.contains("output = \\\"json\\\"") || e.contains("output = \"json\""),
        "{e}"
    );
}
