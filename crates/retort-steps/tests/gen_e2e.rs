//! One run per generation step through the real teacher client (`retort_teacher::Client`)
//! and the mock OpenAI server on 127.0.0.1.

use std::collections::BTreeMap;
use std::sync::Arc;

use retort_core::{Message, Record};
use retort_mock::{MockConfig, MockServer};
use retort_steps::registry::{build, BuildCtx, StepSpec};
use retort_steps::testing::{inputs_from, test_ctx, MemSink};
use retort_steps::StepCtx;
use retort_teacher::{http_backend, Accounting, Client, Provider, Shared, Teacher, TeacherConfig};

async fn setup(cfg: MockConfig) -> (MockServer, StepCtx) {
    let mock = MockServer::start(cfg).await.unwrap();
    let mut tc = TeacherConfig::new(Provider::Openai, "mock-model");
    tc.base_url = Some(mock.base_url());
    tc.timeout_secs = 5.0;
    let shared = Arc::new(Shared::new(None, true, Arc::new(Accounting::new(None))));
    let client = Client::new("t", &tc, http_backend(&tc).unwrap(), shared);
    let mut teachers: BTreeMap<String, Arc<dyn Teacher>> = BTreeMap::new();
    teachers.insert("t".into(), Arc::new(client));
    (mock, test_ctx("gen", teachers, None))
}

async fn run(kind: &str, options: &str, c: &StepCtx, rows: Vec<Record>) -> MemSink {
    let spec = StepSpec {
        id: "gen".into(),
        kind: kind.into(),
        after: vec!["in".into()],
        options: toml::from_str(options).unwrap(),
    };
    let bctx = BuildCtx {
        base_dir: ".".into(),
        teachers: vec!["t".into()],
        has_embedder: false,
    };
    let step = build(&spec, &bctx).unwrap_or_else(|e| panic!("{e:?}")).step;
    let mut sink = MemSink::default();
    step.run(c, inputs_from(rows, 8), &mut sink).await.unwrap();
    sink
}

fn rec(id: &str, instruction: &str) -> Record {
    Record {
        id: id.into(),
        instruction: Some(instruction.into()),
        output: Some("seed answer".into()),
        ..Default::default()
    }
}

fn alpaca_reply(_: &str) -> String {
    // Five blocks of similar length: the mock's `length` injection keeps the first half,
    // so two whole blocks and a cut third arrive.
    [
        "Explain why the sky looks blue at noon.",
        "List four uses of baking soda at home.",
        "Write a limerick about a forgetful cat.",
        "Convert seventy degrees Fahrenheit to C.",
        "Suggest two names for a hiking club now.",
    ]
    .iter()
    .enumerate()
    .map(|(i, inst)| {
        let n = i + 4;
        format!("{n}. Instruction: {inst}\n{n}. Input:\n<noinput>\n{n}. Output:\nA short answer.\n###\n")
    })
    .collect()
}

#[tokio::test]
async fn self_instruct_alpaca_over_http_with_truncation() {
    let (mock, c) = setup(MockConfig {
        reply_fn: Some(Arc::new(alpaca_reply)),
        rate_length: 1.0,
        ..MockConfig::default()
    })
    .await;
    let sink = run(
        "self_instruct",
        "teacher = \"t\"\ntarget = 2\nmax_calls = 1",
        &c,
        vec![
            rec("s1", "Give three tips for staying healthy."),
            rec("s2", "Name a colour of the rainbow."),
        ],
    )
    .await;
    let recs = sink.records();
    assert_eq!(recs.len(), 2, "{:?}", sink.rejections());
    assert_eq!(
        recs[0].instruction.as_deref(),
        Some("Explain why the sky looks blue at noon.")
    );
    assert!(sink
        .rejections()
        .iter()
        .any(|r| r.reason == "truncated_last"));
    assert_eq!(mock.chat_requests(), 1);
}

fn chat_reply(last_user: &str) -> String {
    if last_user.contains("Play a curious user") {
        "How do tides work?".into()
    } else if last_user.contains("Now play the user") {
        if last_user.matches("Assistant:").count() >= 2 {
            "<end>".into()
        } else {
            "Why are there two a day?".into()
        }
    } else {
        format!("Answer to: {last_user}")
    }
}

#[tokio::test]
async fn self_chat_dual_over_http() {
    let (mock, c) = setup(MockConfig {
        reply_fn: Some(Arc::new(chat_reply)),
        ..MockConfig::default()
    })
    .await;
    let mut topic = Record {
        id: "tp".into(),
        ..Default::default()
    };
    topic.labels.insert("topic".into(), "tides".into());
    let sink = run(
        "self_chat",
        "teacher = \"t\"\nmode = \"dual\"\nmax_turns = 5",
        &c,
        vec![topic],
    )
    .await;
    let recs = sink.records();
    assert_eq!(recs.len(), 1, "{:?}", sink.failures());
    assert_eq!(
        recs[0].messages,
        vec![
            Message::user("How do tides work?"),
            Message::assistant("Answer to: How do tides work?"),
            Message::user("Why are there two a day?"),
            Message::assistant("Answer to: Why are there two a day?"),
        ]
    );
    assert_eq!(mock.chat_requests(), 5);
}

fn evol_reply(last_user: &str) -> String {
    if last_user.contains("#The Given Prompt#") || last_user.contains("#Given Prompt#") {
        "Explain how tides work, naming the roles of the Moon and the Sun and why spring tides happen.".into()
    } else {
        "The Moon's gravity pulls the oceans; when Sun and Moon align, spring tides are higher."
            .into()
    }
}

#[tokio::test]
async fn evol_instruct_over_http() {
    let (_mock, c) = setup(MockConfig {
        reply_fn: Some(Arc::new(evol_reply)),
        ..MockConfig::default()
    })
    .await;
    let sink = run(
        "evol_instruct",
        "teacher = \"t\"\nanswer_teacher = \"t\"\nrounds = 2",
        &c,
        vec![rec("s", "Explain tides.")],
    )
    .await;
    let recs = sink.records();
    assert_eq!(recs.len(), 1, "round 2 repeats round 1's rewrite");
    assert!(recs[0].output.as_deref().unwrap().starts_with("The Moon"));
    assert_eq!(sink.rejections()[0].reason, "no_gain");
}

#[tokio::test]
async fn respond_over_http() {
    let (mock, c) = setup(MockConfig::default()).await;
    let sink = run(
        "respond",
        "teachers = [\"t\"]\nsamples = 3",
        &c,
        vec![rec("p", "Say hi.")],
    )
    .await;
    let r = &sink.records()[0];
    assert_eq!(r.candidates.len(), 3);
    assert!(r
        .candidates
        .iter()
        .all(|c| c.content == "echo: Say hi." && c.model == "mock-model"));
    assert_eq!(
        mock.chat_requests(),
        3,
        "k samples are k requests, not one cached answer"
    );
}

#[tokio::test]
async fn respond_keeps_reasoning_beside_each_answer_through_pairing() {
    let (_mock, c) = setup(MockConfig {
        reasoning: Some(retort_mock::ReasoningShape::ReasoningContent),
        ..MockConfig::default()
    })
    .await;
    // Two samples: the traces ride on the candidates, apart from the content.
    let sink = run(
        "respond",
        "teacher = \"t\"\nsamples = 2",
        &c,
        vec![rec("p", "Say hi.")],
    )
    .await;
    let mut r = sink.records()[0].clone();
    assert_eq!(r.candidates.len(), 2);
    for cand in &r.candidates {
        assert_eq!(cand.content, "echo: Say hi.");
        assert_eq!(cand.reasoning.as_deref(), Some("Reasoning about: Say hi."));
    }
    // Pairing carries each side's trace onto its assistant turn.
    r.candidates[0].score = Some(9.0);
    r.candidates[1].score = Some(2.0);
    let pairs = run("pair", "", &c, vec![r]).await;
    let p = pairs.records()[0].pair.clone().expect("a pair");
    assert_eq!(p.chosen[0].content, "echo: Say hi.");
    assert_eq!(
        p.chosen[0].reasoning.as_deref(),
        Some("Reasoning about: Say hi.")
    );
    assert_eq!(
        p.rejected[0].reasoning.as_deref(),
        Some("Reasoning about: Say hi.")
    );

    // One answer: the output turn of a chat record carries the trace.
    let chat = Record {
        id: "c".into(),
        messages: vec![Message::user("Tell a joke.")],
        ..Default::default()
    };
    let sink = run("respond", "teacher = \"t\"", &c, vec![chat]).await;
    let r = &sink.records()[0];
    let last = r.messages.last().unwrap();
    assert_eq!(
        (last.role.as_str(), last.content.as_str()),
        ("assistant", "echo: Tell a joke.")
    );
    assert_eq!(
        last.reasoning.as_deref(),
        Some("Reasoning about: Tell a joke.")
    );
    assert_eq!(r.output.as_deref(), Some("echo: Tell a joke."));
}
