//! Generation steps (`self_instruct`, `self_chat`, `evol_instruct`, `respond`) driven by
//! an in-process scripted teacher: parsing, truncation, failures, every filter and
//! eliminator reason, alternation rules, resume.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retort_core::{Message, Provenance, Record};
use retort_steps::gen_common::derive_seed;
use retort_steps::registry::{build, BuildCtx, StepSpec};
use retort_steps::testing::{inputs_from, test_ctx, MemSink};
use retort_steps::{Step, StepCtx, StepError};
use retort_teacher::{ChatRequest, ChatResponse, FinishReason, Teacher, TeacherError, Usage};

type Rule = dyn Fn(&ChatRequest) -> Result<(String, FinishReason), TeacherError> + Send + Sync;

/// A teacher whose answers come from a function of the request; every request is logged.
struct Scripted {
    name: String,
    rule: Box<Rule>,
    log: Mutex<Vec<ChatRequest>>,
}

impl Scripted {
    fn new(
        name: &str,
        f: impl Fn(&ChatRequest) -> Result<(String, FinishReason), TeacherError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Scripted {
            name: name.into(),
            rule: Box::new(f),
            log: Mutex::new(vec![]),
        })
    }
    /// Answers in order, one per call (use with `concurrency = 1`).
    fn queued(name: &str, replies: Vec<Result<(&str, FinishReason), TeacherError>>) -> Arc<Self> {
        let q = Mutex::new(
            replies
                .into_iter()
                .map(|r| r.map(|(s, f)| (s.to_string(), f)))
                .collect::<std::collections::VecDeque<_>>(),
        );
        Self::new(name, move |_| {
            q.lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Err(TeacherError::Other("script exhausted".into())))
        })
    }
    fn requests(&self) -> Vec<ChatRequest> {
        self.log.lock().unwrap().clone()
    }
}

#[async_trait]
impl Teacher for Scripted {
    fn name(&self) -> &str {
        &self.name
    }
    fn model(&self) -> &str {
        "scripted-model"
    }
    async fn chat(&self, _step: &str, req: ChatRequest) -> Result<ChatResponse, TeacherError> {
        self.log.lock().unwrap().push(req.clone());
        let (content, finish_reason) = (self.rule)(&req)?;
        Ok(ChatResponse {
            content,
            finish_reason,
            usage: Usage::default(),
            model: format!("{}-model", self.name),
            cached: false,
            reasoning: None,
            tool_calls: Vec::new(),
        })
    }
}

const STOP: FinishReason = FinishReason::Stop;
const LENGTH: FinishReason = FinishReason::Length;

fn ctx(teachers: &[(&str, Arc<Scripted>)]) -> StepCtx {
    let mut m: BTreeMap<String, Arc<dyn Teacher>> = BTreeMap::new();
    for (n, t) in teachers {
        m.insert(n.to_string(), t.clone());
    }
    test_ctx("gen", m, None)
}

fn built(kind: &str, options: &str, teachers: &[&str]) -> Arc<dyn Step> {
    let spec = StepSpec {
        id: "gen".into(),
        kind: kind.into(),
        after: vec!["seeds".into()],
        options: toml::from_str(options).unwrap(),
    };
    let bctx = BuildCtx {
        base_dir: ".".into(),
        teachers: teachers.iter().map(|s| s.to_string()).collect(),
        has_embedder: false,
    };
    match build(&spec, &bctx) {
        Ok(b) => b.step,
        Err(e) => panic!("build failed: {e:?}"),
    }
}

fn build_errors(kind: &str, options: &str, teachers: &[&str]) -> Vec<String> {
    let spec = StepSpec {
        id: "gen".into(),
        kind: kind.into(),
        after: vec![],
        options: toml::from_str(options).unwrap(),
    };
    let bctx = BuildCtx {
        base_dir: ".".into(),
        teachers: teachers.iter().map(|s| s.to_string()).collect(),
        has_embedder: false,
    };
    match build(&spec, &bctx) {
        Ok(_) => vec![],
        Err(e) => e,
    }
}

fn seed(id: &str, instruction: &str, input: &str, output: &str) -> Record {
    Record {
        id: id.into(),
        instruction: Some(instruction.into()),
        input: (!input.is_empty()).then(|| input.into()),
        output: Some(output.into()),
        provenance: Provenance {
            step: "seeds".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn seeds() -> Vec<Record> {
    vec![
        seed(
            "s1",
            "Give three tips for staying healthy.",
            "",
            "Eat well, sleep, move.",
        ),
        seed(
            "s2",
            "Translate the sentence into French.",
            "Good morning.",
            "Bonjour.",
        ),
        seed(
            "s3",
            "Classify the sentiment of the review as positive or negative.",
            "I loved it.",
            "positive",
        ),
        seed(
            "s4",
            "Summarize the paragraph in one sentence.",
            "Cats sleep a lot.",
            "Cats sleep much.",
        ),
        seed("s5", "请把下面的句子翻译成英文。", "你好", "Hello"),
    ]
}

async fn run(step: &dyn Step, c: &StepCtx, rows: Vec<Record>) -> Result<MemSink, StepError> {
    let mut sink = MemSink::default();
    step.run(c, inputs_from(rows, 3), &mut sink).await?;
    Ok(sink)
}

fn reasons(sink: &MemSink) -> Vec<String> {
    sink.rejections().into_iter().map(|r| r.reason).collect()
}

fn alpaca_block(n: usize, inst: &str, input: &str, output: &str) -> String {
    format!("{n}. Instruction: {inst}\n{n}. Input:\n{input}\n{n}. Output:\n{output}\n###\n")
}

// ------------------------------------------------------------------------------------
// self_instruct, alpaca mode
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn alpaca_parses_numbered_blocks_and_applies_every_filter() {
    let reply = [
        alpaca_block(
            4,
            "Write a short poem about the autumn wind in the mountains.",
            "<noinput>",
            "Leaves drift...",
        ),
        alpaca_block(
            5,
            "Give three tips for staying healthy.",
            "",
            "Same as a seed.",
        ),
        alpaca_block(
            6,
            "Describe the image attached below in detail please.",
            "",
            "...",
        ),
        alpaca_block(7, "Sort it.", "", "..."),
        alpaca_block(8, "\"Explain why the sea is salty to a child.\"", "", "..."),
        alpaca_block(
            9,
            "Write a short poem about the autumn wind in the mountains.",
            "",
            "Again.",
        ),
        alpaca_block(
            10,
            "Give three useful tips for staying healthy and fit.",
            "",
            "Near-copy of a seed.",
        ),
        alpaca_block(11, "List the prime numbers between ten and thirty.", "", ""),
        alpaca_block(12, "请把下面这个句子翻译成英文。", "早上好", "Good morning"),
        alpaca_block(
            13,
            "Explain how a rainbow forms after rain.",
            "",
            "Sunlight is refrac",
        ),
    ]
    .concat();
    let t = Scripted::queued("t", vec![Ok((&reply, LENGTH))]);
    let step = built(
        "self_instruct",
        "teacher = \"t\"\ntarget = 50\nmax_calls = 1\nconcurrency = 1",
        &["t"],
    );
    let sink = run(step.as_ref(), &ctx(&[("t", t.clone())]), seeds())
        .await
        .unwrap();
    let recs = sink.records();
    assert_eq!(recs.len(), 1, "{recs:#?}");
    let r = &recs[0];
    assert_eq!(
        r.instruction.as_deref(),
        Some("Write a short poem about the autumn wind in the mountains.")
    );
    assert_eq!(r.input, None, "<noinput> means no input");
    assert_eq!(r.output.as_deref(), Some("Leaves drift..."));
    assert_eq!(r.labels["mode"], "alpaca");
    assert_eq!(r.provenance.teacher.as_deref(), Some("t"));
    assert_eq!(r.provenance.template.as_deref(), Some("alpaca_generate"));
    assert_eq!(r.provenance.parents.len(), 3, "3 demos shown");
    assert!(r.provenance.parents.iter().all(|p| p.starts_with('s')));
    let mut got = reasons(&sink);
    got.sort();
    let mut want = vec![
        "truncated_last",
        "duplicate",
        "keyword",
        "too_short",
        "starts_with_punct",
        "duplicate",
        "rouge_l",
        "empty_output",
        "rouge_l",
    ];
    want.sort();
    assert_eq!(got, want);
    let rouge: Vec<_> = sink
        .rejections()
        .into_iter()
        .filter(|r| r.reason == "rouge_l")
        .collect();
    assert!(
        rouge.iter().any(|r| r.detail.contains("vs s5")),
        "CJK near-copy rejected against the Chinese seed: {rouge:?}"
    );
    assert!(rouge.iter().any(|r| r.detail.contains("vs s1")));
    // The prompt showed 3 demos and asked for tasks 4..13.
    let req = &t.requests()[0];
    let p = &req.messages[0].content;
    assert!(p.contains("Now write tasks 4 to 13"), "{p}");
    assert_eq!(req.seed, Some(derive_seed(42, &[0])));
    // The call counter is committed for resume.
    assert_eq!(
        sink.batches.last().unwrap().state,
        Some(serde_json::json!({"calls": 1}))
    );
}

#[tokio::test]
async fn alpaca_malformed_reply_is_a_failure_with_raw_text() {
    let t = Scripted::queued(
        "t",
        vec![
            Ok(("I'm not sure what you want me to do here.", STOP)),
            // A permanent fault (a transient one would leave the call pending).
            Err(TeacherError::Http {
                status: 400,
                message: "context length exceeded".into(),
                retry_after_ms: None,
            }),
        ],
    );
    let step = built(
        "self_instruct",
        "teacher = \"t\"\nmax_calls = 2\nconcurrency = 1",
        &["t"],
    );
    let sink = run(step.as_ref(), &ctx(&[("t", t)]), seeds())
        .await
        .unwrap();
    assert!(sink.records().is_empty());
    let f = sink.failures();
    assert_eq!(f.len(), 2);
    assert_eq!(f[0].class, "parse");
    assert_eq!(f[0].raw, "I'm not sure what you want me to do here.");
    assert_eq!(f[0].record_id, "call-0");
    assert_eq!(f[1].class, "http_4xx");
    assert_eq!(f[1].status, Some(400));
    assert!(
        f[1].raw.contains("Instruction:"),
        "the prompt is kept as raw"
    );
}

#[tokio::test]
async fn budget_error_stops_the_step() {
    let t = Scripted::queued("t", vec![Err(TeacherError::Budget(1.0))]);
    let step = built(
        "self_instruct",
        "teacher = \"t\"\nmax_calls = 3\nconcurrency = 1",
        &["t"],
    );
    let e = run(step.as_ref(), &ctx(&[("t", t)]), seeds())
        .await
        .err()
        .expect("must fail");
    assert!(
        matches!(e, StepError::Teacher(TeacherError::Budget(_))),
        "{e:?}"
    );
}

#[tokio::test]
async fn alpaca_stops_at_target_and_records_the_surplus() {
    let reply = [
        alpaca_block(
            4,
            "Name the largest planet in the solar system.",
            "",
            "Jupiter.",
        ),
        alpaca_block(5, "Write a haiku that mentions a lighthouse.", "", "..."),
        alpaca_block(
            6,
            "Compute the area of a circle with radius three.",
            "",
            "28.27",
        ),
    ]
    .concat();
    let t = Scripted::new("t", move |_| Ok((reply.clone(), STOP)));
    let step = built(
        "self_instruct",
        "teacher = \"t\"\ntarget = 2\nmax_calls = 10\nconcurrency = 4",
        &["t"],
    );
    let sink = run(step.as_ref(), &ctx(&[("t", t.clone())]), seeds())
        .await
        .unwrap();
    assert_eq!(sink.records().len(), 2);
    assert_eq!(sink.batches.len(), 1, "one round");
    assert_eq!(t.requests().len(), 4, "a round is `concurrency` calls");
    let r = reasons(&sink);
    // The third task of every call finds no room; it never joins the pool.
    assert_eq!(r.iter().filter(|x| *x == "over_target").count(), 4);
    assert_eq!(
        r.iter().filter(|x| *x == "duplicate").count(),
        6,
        "the other calls repeat the same tasks"
    );
}

#[tokio::test]
async fn alpaca_resume_continues_call_counter_and_keeps_pool() {
    let reply = [
        alpaca_block(
            4,
            "Name the largest planet in the solar system.",
            "",
            "Jupiter.",
        ),
        alpaca_block(5, "Write a haiku that mentions a lighthouse.", "", "..."),
    ]
    .concat();
    let t = Scripted::new("t", move |_| Ok((reply.clone(), STOP)));
    let step = built(
        "self_instruct",
        "teacher = \"t\"\ntarget = 3\nmax_calls = 3\nconcurrency = 1",
        &["t"],
    );
    let mut sink = MemSink::default();
    let mut prev = seed(
        "g1",
        "Name the largest planet in the solar system.",
        "",
        "Jupiter.",
    );
    prev.provenance.step = "gen".into();
    prev.provenance.seeds = vec!["s1".into()];
    sink.previous = vec![prev];
    sink.state = Some(serde_json::json!({"calls": 2}));
    let c = ctx(&[("t", t.clone())]);
    step.run(&c, inputs_from(seeds(), 10), &mut sink)
        .await
        .unwrap();
    let reqs = t.requests();
    assert_eq!(reqs.len(), 1, "calls 0 and 1 were made before the crash");
    assert_eq!(reqs[0].seed, Some(derive_seed(42, &[2])));
    let recs = sink.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].instruction.as_deref(),
        Some("Write a haiku that mentions a lighthouse.")
    );
    assert_eq!(
        reasons(&sink),
        vec!["duplicate"],
        "the committed task is in the pool"
    );
    assert_eq!(
        sink.batches.last().unwrap().state,
        Some(serde_json::json!({"calls": 3}))
    );
}

#[tokio::test]
async fn same_seed_same_requests() {
    let mk = || {
        Scripted::new("t", |_| {
            Ok((
                alpaca_block(
                    4,
                    "Name the largest planet in the solar system.",
                    "",
                    "Jupiter.",
                ),
                STOP,
            ))
        })
    };
    let (a, b) = (mk(), mk());
    let step = built(
        "self_instruct",
        "teacher = \"t\"\nmax_calls = 3\ntarget = 10\nconcurrency = 2",
        &["t"],
    );
    run(step.as_ref(), &ctx(&[("t", a.clone())]), seeds())
        .await
        .unwrap();
    run(step.as_ref(), &ctx(&[("t", b.clone())]), seeds())
        .await
        .unwrap();
    assert_eq!(a.requests(), b.requests());
    let prompts: std::collections::HashSet<_> = a
        .requests()
        .iter()
        .map(|r| r.messages[0].content.clone())
        .collect();
    assert!(prompts.len() > 1, "different calls sample different demos");
}

// ------------------------------------------------------------------------------------
// self_instruct, classic mode
// ------------------------------------------------------------------------------------

fn classic_teacher() -> Arc<Scripted> {
    Scripted::new("t", |req| {
        let p = &req.messages[0].content;
        if p.starts_with("Come up with a series of tasks") {
            return Ok((
                "9. Decide whether the given email is spam or not spam.\n\
                 10. Suggest a name for a new bakery.\n\
                 11. Answer the arithmetic question exactly.\n\
                 12. Echo the word back.\n\
                 13. Write a limerick about a cat who loves to"
                    .into(),
                LENGTH,
            ));
        }
        if p.contains("Is it classification?") {
            let yes = p
                .trim_end()
                .ends_with("spam or not spam.\nIs it classification?");
            return Ok((if yes { "Yes" } else { "No" }.into(), STOP));
        }
        if p.ends_with("Task: Decide whether the given email is spam or not spam.") {
            return Ok((
                "Class label: spam\nInput: WIN a FREE cruise now!!!\nClass label: not spam\nInput: Lunch at noon?".into(),
                STOP,
            ));
        }
        if p.ends_with("Task: Suggest a name for a new bakery.") {
            return Ok(("Example 1\nInput: <noinput>\nOutput: Rise & Shine\nExample 2\nInput: French style\nOutput:".into(), STOP));
        }
        if p.ends_with("Task: Answer the arithmetic question exactly.") {
            return Ok((
                "Example 1\nInput: 2+2\nOutput: 4\nExample 2\nInput: 2+2\nOutput: 5".into(),
                STOP,
            ));
        }
        if p.ends_with("Task: Echo the word back.") {
            return Ok(("Input: hello\nOutput: hello".into(), STOP));
        }
        Err(TeacherError::Other(format!("unexpected prompt: {p}")))
    })
}

#[tokio::test]
async fn classic_pipeline_classifies_generates_instances_and_drops_bad_ones() {
    let t = classic_teacher();
    let step = built(
        "self_instruct",
        "teacher = \"t\"\nmode = \"classic\"\nmax_calls = 1\ntarget = 10",
        &["t"],
    );
    let sink = run(step.as_ref(), &ctx(&[("t", t.clone())]), seeds())
        .await
        .unwrap();
    let recs = sink.records();
    let spam: Vec<_> = recs
        .iter()
        .filter(|r| r.instruction.as_deref().unwrap().contains("spam"))
        .collect();
    assert_eq!(spam.len(), 2);
    assert!(spam.iter().all(|r| r.labels["is_classification"] == "true"));
    assert_eq!(
        spam[0].output.as_deref(),
        Some("spam"),
        "output-first: the label is the output"
    );
    assert_eq!(spam[0].input.as_deref(), Some("WIN a FREE cruise now!!!"));
    assert_eq!(spam[0].labels["task_id"], spam[1].labels["task_id"]);
    let bakery: Vec<_> = recs
        .iter()
        .filter(|r| r.instruction.as_deref().unwrap().contains("bakery"))
        .collect();
    assert_eq!(bakery.len(), 1);
    assert_eq!(bakery[0].labels["is_classification"], "false");
    assert_eq!(bakery[0].input, None);
    assert_eq!(recs.len(), 3);
    let mut r = reasons(&sink);
    r.sort();
    assert_eq!(
        r,
        vec![
            "conflicting_outputs",
            "empty_output",
            "input_equals_output",
            "no_instances",
            "truncated_last"
        ]
    );
    // 8 demos: 6 seeds... but only 5 seeds exist and no machine tasks yet.
    let first = &t.requests()[0].messages[0].content;
    assert!(first.contains("5. ") && !first.contains("\n6. "), "{first}");
    assert!(first.contains("numbered 6 to 13"), "{first}");
}

// ------------------------------------------------------------------------------------
// self_chat
// ------------------------------------------------------------------------------------

fn topic(id: &str, t: &str) -> Record {
    let mut r = Record {
        id: id.into(),
        ..Default::default()
    };
    r.labels.insert("topic".into(), t.into());
    r
}

#[tokio::test]
async fn baize_rules() {
    let t = Scripted::queued(
        "t",
        vec![
            // 1. good, cut by length: the last (partial) turn is dropped, then the dangling
            //    human turn too.
            Ok(("Sure.\n[Human] What is a comet?\n[AI] A ball of ice and dust.\n[Human] Why a tail?\n[AI] The sun's heat and wind push materi", LENGTH)),
            // 2. two AI turns in a row.
            Ok(("[Human] Hi\n[AI] Hello\n[AI] Anything else?", STOP)),
            // 3. starts with AI.
            Ok(("[AI] Hello\n[Human] Hi", STOP)),
            // 4. no markers at all.
            Ok(("Human: hi\nAI: hello", STOP)),
            // 5. too long: cut to max_turns = 2 exchanges.
            Ok(("[Human] a1\n[AI] b1\n[Human] a2\n[AI] b2\n[Human] a3\n[AI] b3", STOP)),
            // 6. an empty turn.
            Ok(("[Human] q\n[AI]\n[Human] r\n[AI] s", STOP)),
        ],
    );
    let step = built(
        "self_chat",
        "teacher = \"t\"\nmax_turns = 2\nconcurrency = 1",
        &["t"],
    );
    let rows = (1..=6).map(|i| topic(&format!("t{i}"), "comets")).collect();
    let sink = run(step.as_ref(), &ctx(&[("t", t.clone())]), rows)
        .await
        .unwrap();
    let recs = sink.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(
        recs[0].messages,
        vec![
            Message::user("What is a comet?"),
            Message::assistant("A ball of ice and dust.")
        ]
    );
    assert_eq!(recs[0].provenance.parents, vec!["t1".to_string()]);
    assert_eq!(recs[0].labels["turns"], "1");
    assert_eq!(recs[1].messages.len(), 4);
    assert_eq!(recs[1].messages[3], Message::assistant("b2"));
    assert_eq!(
        reasons(&sink),
        vec!["alternation", "first_turn_not_human", "empty_turn"]
    );
    let f = sink.failures();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].class.as_str(), f[0].record_id.as_str()),
        ("parse", "t4")
    );
    assert_eq!(f[0].raw, "Human: hi\nAI: hello");
    assert!(t.requests()[0].messages[0].content.contains("'comets'"));
}

#[tokio::test]
async fn baize_min_turns() {
    let t = Scripted::queued("t", vec![Ok(("[Human] q\n[AI] a", STOP))]);
    let step = built("self_chat", "teacher = \"t\"\nmin_turns = 2", &["t"]);
    let sink = run(step.as_ref(), &ctx(&[("t", t)]), vec![topic("x", "tea")])
        .await
        .unwrap();
    assert_eq!(reasons(&sink), vec!["too_few_turns"]);
}

#[tokio::test]
async fn dual_roles_never_swap_and_user_can_end() {
    let user = Scripted::new("u", |req| {
        assert_eq!(req.messages.len(), 1, "the user simulator gets one message");
        let p = &req.messages[0].content;
        if !p.contains("Assistant:") {
            Ok(("User: How do volcanoes form?".into(), STOP))
        } else if p.matches("Assistant:").count() == 1 {
            Ok(("What about Iceland?".into(), STOP))
        } else {
            Ok(("Thanks, that's all. <end>".into(), STOP))
        }
    });
    let asst = Scripted::new("a", |req| {
        let n = req
            .messages
            .iter()
            .filter(|m| m.role == "assistant")
            .count();
        Ok((format!("answer {}", n + 1), STOP))
    });
    let step = built(
        "self_chat",
        "teacher = \"a\"\nuser_teacher = \"u\"\nmode = \"dual\"\nmax_turns = 5",
        &["a", "u"],
    );
    let c = ctx(&[("a", asst.clone()), ("u", user.clone())]);
    let sink = run(step.as_ref(), &c, vec![topic("v", "volcanoes")])
        .await
        .unwrap();
    let recs = sink.records();
    assert_eq!(
        recs.len(),
        1,
        "{:?} {:?}",
        sink.failures(),
        sink.rejections()
    );
    assert_eq!(
        recs[0].messages,
        vec![
            Message::user("How do volcanoes form?"),
            Message::assistant("answer 1"),
            Message::user("What about Iceland?"),
            Message::assistant("answer 2"),
        ]
    );
    assert_eq!(recs[0].labels["user_teacher"], "u");
    // The user-simulator prompt quotes the history first and instructs last.
    let last_user = user.requests().last().unwrap().messages[0].content.clone();
    let hist = last_user.find("Assistant: answer 2").unwrap();
    let instr = last_user.find("Now play the user").unwrap();
    assert!(hist < instr);
    assert!(
        last_user.trim_end().ends_with("reply with exactly <end>."),
        "{last_user}"
    );
    // The assistant sees real roles, after the system prompt.
    let a2 = &asst.requests()[1].messages;
    let roles: Vec<_> = a2.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, vec!["system", "user", "assistant", "user"]);
}

#[tokio::test]
async fn dual_stops_at_max_turns_and_opens_with_input() {
    let user = Scripted::new("u", |_| Ok(("And then?".into(), STOP)));
    let asst = Scripted::new("a", |_| Ok(("Indeed.".into(), STOP)));
    let step = built(
        "self_chat",
        "teacher = \"a\"\nuser_teacher = \"u\"\nmode = \"dual\"\nmax_turns = 2\nopen_with_input = true\nfield = \"instruction\"",
        &["a", "u"],
    );
    let c = ctx(&[("a", asst.clone()), ("u", user.clone())]);
    let r = seed("q", "Why is the sky blue?", "", "");
    let sink = run(step.as_ref(), &c, vec![r]).await.unwrap();
    let m = &sink.records()[0].messages;
    assert_eq!(m.len(), 4);
    assert_eq!(m[0], Message::user("Why is the sky blue?"));
    assert_eq!(user.requests().len(), 1);
    assert_eq!(asst.requests().len(), 2);
}

#[tokio::test]
async fn dual_user_ending_immediately_is_rejected_and_errors_fail() {
    let user = Scripted::new("u", |_| Ok(("<end>".into(), STOP)));
    let asst = Scripted::new("a", |_| Err(TeacherError::BadResponse("not JSON".into())));
    let step = built(
        "self_chat",
        "teacher = \"a\"\nuser_teacher = \"u\"\nmode = \"dual\"",
        &["a", "u"],
    );
    let c = ctx(&[("a", asst.clone()), ("u", user)]);
    let sink = run(step.as_ref(), &c, vec![topic("x", "tea")])
        .await
        .unwrap();
    assert_eq!(reasons(&sink), vec!["too_few_turns"]);
    let step = built(
        "self_chat",
        "teacher = \"a\"\nmode = \"dual\"\nopen_with_input = true",
        &["a"],
    );
    let c = ctx(&[("a", asst)]);
    let sink = run(step.as_ref(), &c, vec![topic("x", "tea")])
        .await
        .unwrap();
    assert_eq!(sink.failures()[0].class, "bad_response");
    assert!(sink.records().is_empty());
}

// ------------------------------------------------------------------------------------
// evol_instruct
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn evol_chain_with_eliminator() {
    let t = Scripted::queued(
        "t",
        vec![
            // round 1: unchanged → no_gain; round 2: leaked marker; round 3: good.
            Ok(("#Rewritten Prompt#: Give three tips for staying healthy.", STOP)),
            Ok(("Here is #The Given Prompt# made harder: give tips", STOP)),
            Ok(("Give three evidence-based tips for staying healthy while working night shifts, with one sentence of justification each.", STOP)),
            // round 4: refusal.
            Ok(("I'm sorry, but I can't help with that.", STOP)),
        ],
    );
    let a = Scripted::queued(
        "a",
        vec![Ok((
            "1. Keep a fixed sleep window...\n2. ...\n3. ...",
            STOP,
        ))],
    );
    let step = built(
        "evol_instruct",
        "teacher = \"t\"\nanswer_teacher = \"a\"\nrounds = 4\nconcurrency = 1",
        &["t", "a"],
    );
    let c = ctx(&[("t", t.clone()), ("a", a)]);
    let sink = run(
        step.as_ref(),
        &c,
        vec![seed("s1", "Give three tips for staying healthy.", "", "x")],
    )
    .await
    .unwrap();
    assert_eq!(reasons(&sink), vec!["no_gain", "leaked_marker", "refusal"]);
    let recs = sink.records();
    assert_eq!(recs.len(), 1);
    assert!(recs[0]
        .instruction
        .as_deref()
        .unwrap()
        .contains("night shifts"));
    assert!(recs[0].output.as_deref().unwrap().starts_with("1. Keep"));
    assert_eq!(recs[0].labels["evol_round"], "3");
    assert_eq!(recs[0].provenance.parents, vec!["s1".to_string()]);
    assert_eq!(recs[0].provenance.seeds, vec!["s1".to_string()]);
    // Round 4 evolved the surviving round-3 prompt.
    let p4 = &t.requests()[3].messages[0].content;
    assert!(p4.contains("night shifts"), "{p4}");
}

#[tokio::test]
async fn evol_short_sorry_answer_is_eliminated() {
    let t = Scripted::queued(
        "t",
        vec![Ok((
            "Explain quantum tunnelling to a ten-year-old using a playground analogy.",
            STOP,
        ))],
    );
    let a = Scripted::queued("a", vec![Ok(("Sorry, that is too hard to explain.", STOP))]);
    let step = built(
        "evol_instruct",
        "teacher = \"t\"\nanswer_teacher = \"a\"\nrounds = 1",
        &["t", "a"],
    );
    let c = ctx(&[("t", t), ("a", a)]);
    let sink = run(
        step.as_ref(),
        &c,
        vec![seed("s", "Explain quantum tunnelling.", "", "")],
    )
    .await
    .unwrap();
    assert_eq!(reasons(&sink), vec!["refusal"]);
    assert!(sink.records().is_empty());
}

#[test]
fn evol_build_checks_methods() {
    let e = build_errors(
        "evol_instruct",
        "teacher = \"t\"\nmethods = [\"deepen\", \"shorten\"]",
        &["t"],
    );
    assert!(
        e.iter()
            .any(|m| m.contains("unknown evolution method `shorten`")),
        "{e:?}"
    );
}

// ------------------------------------------------------------------------------------
// respond
// ------------------------------------------------------------------------------------

#[tokio::test]
async fn respond_many_teachers_k_samples() {
    let a = Scripted::new("a", |req| {
        Ok((format!("a says #{}", req.sample_index), STOP))
    });
    let b = Scripted::new("b", |req| {
        if req.sample_index == 1 {
            Err(TeacherError::Http {
                status: 400,
                message: "bad".into(),
                retry_after_ms: None,
            })
        } else {
            Ok(("b says".into(), STOP))
        }
    });
    let step = built(
        "respond",
        "teachers = [\"a\", \"b\"]\nsamples = 2\nsystem = \"Be brief.\"",
        &["a", "b"],
    );
    let c = ctx(&[("a", a.clone()), ("b", b)]);
    let sink = run(step.as_ref(), &c, vec![seed("p", "Say hi.", "", "old")])
        .await
        .unwrap();
    let r = &sink.records()[0];
    let got: Vec<_> = r
        .candidates
        .iter()
        .map(|c| (c.teacher.as_str(), c.sample, c.content.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", 0, "a says #0"),
            ("a", 1, "a says #1"),
            ("b", 0, "b says")
        ]
    );
    assert_eq!(r.candidates[0].model, "a-model");
    assert_eq!(
        r.output.as_deref(),
        Some("old"),
        "several answers leave output alone"
    );
    let f = sink.failures();
    assert_eq!(
        (f[0].record_id.as_str(), f[0].class.as_str()),
        ("p#b#1", "http_4xx")
    );
    let reqs = a.requests();
    assert_eq!(reqs[0].messages[0], Message::system("Be brief."));
    assert_eq!(reqs[0].messages[1], Message::user("Say hi."));
    assert_ne!(reqs[0].seed, reqs[1].seed);
    assert_eq!(reqs[1].sample_index, 1);
}

#[tokio::test]
async fn respond_single_teacher_writes_output_and_fails_truncated() {
    let a = Scripted::queued(
        "a",
        vec![Ok(("Hello!", STOP)), Ok(("Once upon a ti", LENGTH))],
    );
    let step = built("respond", "teacher = \"a\"\nconcurrency = 1", &["a"]);
    let mut chat = Record {
        id: "c".into(),
        messages: vec![Message::user("Tell a story."), Message::assistant("old")],
        ..Default::default()
    };
    chat.provenance.seeds = vec!["root".into()];
    let sink = run(
        step.as_ref(),
        &ctx(&[("a", a)]),
        vec![seed("p", "Say hi.", "", ""), chat],
    )
    .await
    .unwrap();
    let recs = sink.records();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].output.as_deref(), Some("Hello!"));
    assert_eq!(recs[0].provenance.teacher.as_deref(), Some("a"));
    let f = sink.failures();
    assert_eq!(
        (
            f[0].record_id.as_str(),
            f[0].class.as_str(),
            f[0].raw.as_str()
        ),
        ("c#a#0", "truncated", "Once upon a ti")
    );
}

#[test]
fn build_errors_are_collected() {
    let e = build_errors(
        "respond",
        "teachers = [\"x\"]\nsamples = 3\ntemperature = 0.0",
        &["a"],
    );
    assert_eq!(e.len(), 2, "{e:?}");
    let e = build_errors(
        "self_instruct",
        "teacher = \"a\"\nthreshold = 1.5\nbogus = 1",
        &["a"],
    );
    assert!(e[0].contains("bogus"), "unknown keys are errors: {e:?}");
    let e = build_errors(
        "self_instruct",
        "teacher = \"a\"\ntemplate = \"missing.jinja\"",
        &["a"],
    );
    assert!(e[0].contains("missing.jinja"), "{e:?}");
    let e = build_errors("self_chat", "teacher = \"a\"\nuser_teacher = \"a\"", &["a"]);
    assert!(e[0].contains("dual"), "{e:?}");
}
