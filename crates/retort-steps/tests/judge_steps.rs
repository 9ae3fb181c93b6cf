//! score → judge → pair → tiers with an in-process scripted judge.

mod judge_support;

use std::path::Path;

use judge_support::*;
use retort_core::{Message, Record};
use retort_steps::judge::{JudgeMode, JudgeOptions, JudgeStep, UfAspect};
use retort_steps::judge_parse::Scale;
use retort_steps::pair::{PairOptions, PairStep, Strategy};
use retort_steps::registry::{build, BuildCtx, StepSpec};
use retort_steps::score::{Aspect, ScoreOptions, ScoreStep};
use retort_steps::testing::{inputs_from, MemSink};
use retort_steps::tiers::{TierSpec, TiersOptions, TiersStep};
use retort_steps::{Step, StepError};
use retort_teacher::TeacherError;

fn score_opts(aspects: Vec<Aspect>) -> ScoreOptions {
    ScoreOptions {
        teacher: "judge".into(),
        aspects,
        scale: Scale::TEN,
        templates: Default::default(),
        heuristics: true,
        structured: false,
        concurrency: 1,
        temperature: 0.0,
        max_tokens: 256,
        calibration: Default::default(),
        min_calibration_accuracy: None,
    }
}

async fn run(
    step: &dyn Step,
    ctx: &retort_steps::StepCtx,
    rows: Vec<Record>,
) -> Result<MemSink, StepError> {
    let mut sink = MemSink::default();
    step.run(ctx, inputs_from(rows, 4), &mut sink).await?;
    Ok(sink)
}

/// Every accepted reply shape, one record each, in request order.
#[tokio::test]
async fn score_accepts_every_documented_reply_shape() {
    let accepted = [
        (r#"{"score": 7, "rationale": "clear"}"#, 7.0),
        (
            "Sure!\n```json\n{\"rationale\": \"ok\", \"score\": 8}\n```",
            8.0,
        ),
        ("Score: 6", 6.0),
        ("**Rating:** 5", 5.0),
        ("I'd say 4/10.", 4.0),
        ("Rating: [[3]]", 3.0),
        ("9", 9.0),
        (r#"{"score": "2"}"#, 2.0),
        ("Difficulty (1-10). Score: 10", 10.0),
    ];
    let t = ScriptedTeacher::queued(accepted.iter().map(|(r, _)| Ok(r.to_string())).collect());
    let ctx = ctx_with(t.clone());
    let rows: Vec<Record> = (0..accepted.len())
        .map(|i| rec(&format!("r{i}"), &format!("Task {i}"), None))
        .collect();
    let step = ScoreStep::new(score_opts(vec![Aspect::Difficulty]), Path::new(".")).unwrap();
    let sink = run(&step, &ctx, rows).await.unwrap();
    assert!(sink.failures().is_empty(), "{:?}", sink.failures());
    let out = sink.records();
    assert_eq!(out.len(), accepted.len());
    for (r, (_, want)) in out.iter().zip(accepted) {
        assert_eq!(r.scores["difficulty"], want, "record {}", r.id);
    }
    assert_eq!(out[0].labels["difficulty_rationale"], "clear");
    assert_eq!(t.calls(), accepted.len());
}

/// Unreadable and off-scale replies become failures with the raw reply; the record is
/// not passed on and gets no default score.
#[tokio::test]
async fn score_failures_keep_raw_reply_and_drop_the_record() {
    let replies = [
        ("I cannot judge this.", "parse"),
        ("Score: 4, no wait, Score: 9", "parse"),
        (r#"{"score": 11}"#, "out_of_scale"),
        ("Score: 0", "out_of_scale"),
        ("3/5", "out_of_scale"),
        ("", "parse"),
    ];
    let mut queue: Vec<Result<String, TeacherError>> =
        replies.iter().map(|(r, _)| Ok(r.to_string())).collect();
    queue.push(Ok(r#"{"score": 5}"#.into()));
    let t = ScriptedTeacher::queued(queue);
    let ctx = ctx_with(t);
    let rows: Vec<Record> = (0..=replies.len())
        .map(|i| rec(&format!("r{i}"), &format!("Task {i}"), None))
        .collect();
    let step = ScoreStep::new(score_opts(vec![Aspect::Difficulty]), Path::new(".")).unwrap();
    let sink = run(&step, &ctx, rows).await.unwrap();
    let fails = sink.failures();
    assert_eq!(fails.len(), replies.len());
    for (f, (raw, class)) in fails.iter().zip(replies) {
        assert_eq!(f.raw, raw);
        assert_eq!(f.class, class, "{}", f.message);
        assert!(f.message.starts_with("difficulty:"), "{}", f.message);
    }
    let out = sink.records();
    assert_eq!(out.len(), 1, "only the readable reply passes");
    assert_eq!(out[0].id, format!("r{}", replies.len()));
    assert_eq!(out[0].scores["difficulty"], 5.0);
}

#[tokio::test]
async fn score_quality_and_difficulty_with_heuristics() {
    let t = ScriptedTeacher::rule(|p| {
        Ok(if p.contains("difficulty and complexity") {
            r#"{"rationale": "easy", "score": 2}"#.into()
        } else {
            r#"{"rationale": "good", "score": 9}"#.into()
        })
    });
    let ctx = ctx_with(t.clone());
    let rows = vec![
        rec(
            "a",
            "Name three primary colours.",
            Some("Red, yellow and blue."),
        ),
        rec("b", "解释为什么天空是蓝色的。", Some("因为瑞利散射。")),
    ];
    let step = ScoreStep::new(
        score_opts(vec![Aspect::Quality, Aspect::Difficulty]),
        Path::new("."),
    )
    .unwrap();
    let sink = run(&step, &ctx, rows).await.unwrap();
    let out = sink.records();
    assert_eq!(out.len(), 2);
    assert_eq!(t.calls(), 4);
    for r in &out {
        assert_eq!(r.scores["quality"], 9.0);
        assert_eq!(r.scores["difficulty"], 2.0);
        assert_eq!(r.labels["quality_rationale"], "good");
        assert_eq!(r.labels["difficulty_rationale"], "easy");
        assert_eq!(r.scores["response_is_refusal"], 0.0);
        assert!(r.scores["prompt_len_chars"] > 0.0);
        assert!(r.scores.contains_key("response_repetition"));
    }
    assert_eq!(out[0].labels["language"], "en");
    assert_eq!(out[1].labels["language"], "zh");
    // The quality prompt shows the response; the difficulty prompt does not.
    let seen = t.seen.lock().unwrap();
    let q = seen
        .iter()
        .find(|r| r.messages[0].content.contains("Rate the quality"))
        .unwrap();
    assert!(q.messages[0].content.contains("Red, yellow and blue."));
    let d = seen
        .iter()
        .find(|r| r.messages[0].content.contains("difficulty and complexity"))
        .unwrap();
    assert!(!d.messages[0].content.contains("Red, yellow and blue."));
    assert!(q.response_format.is_none(), "structured is off by default");
}

#[tokio::test]
async fn score_quality_needs_a_response_and_sends_no_call_without_one() {
    let t = ScriptedTeacher::rule(|_| Ok("Score: 5".into()));
    let ctx = ctx_with(t.clone());
    let step = ScoreStep::new(
        score_opts(vec![Aspect::Quality, Aspect::Difficulty]),
        Path::new("."),
    )
    .unwrap();
    let sink = run(&step, &ctx, vec![rec("x", "Say hi", None)])
        .await
        .unwrap();
    assert!(sink.records().is_empty());
    let f = sink.failures();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].class, "bad_input");
    assert_eq!(t.calls(), 0);
}

#[tokio::test]
async fn score_multi_turn_chat_is_rated_as_a_conversation() {
    let t = ScriptedTeacher::rule(|_| Ok("Score: 7".into()));
    let ctx = ctx_with(t.clone());
    let mut r = rec("c", "", None);
    r.instruction = None;
    r.messages = vec![
        Message::user("Hi, plan a trip?"),
        Message::assistant("Where to?"),
        Message::user("Rome"),
        Message::assistant("Day 1: Colosseum."),
    ];
    let step = ScoreStep::new(score_opts(vec![Aspect::Quality]), Path::new(".")).unwrap();
    let sink = run(&step, &ctx, vec![r]).await.unwrap();
    assert_eq!(sink.records()[0].scores["quality"], 7.0);
    let p = t.seen.lock().unwrap()[0].messages[0].content.clone();
    assert!(
        p.contains("[Conversation]") && p.contains("Assistant: Where to?"),
        "{p}"
    );
}

#[tokio::test]
async fn score_structured_sends_schema_with_scale() {
    let t = ScriptedTeacher::rule(|_| Ok(r#"{"rationale": "x", "score": 3}"#.into()));
    let ctx = ctx_with(t.clone());
    let mut o = score_opts(vec![Aspect::Difficulty]);
    o.structured = true;
    o.scale = Scale::parse("1-6").unwrap();
    let step = ScoreStep::new(o, Path::new(".")).unwrap();
    run(&step, &ctx, vec![rec("a", "x", None)]).await.unwrap();
    let seen = t.seen.lock().unwrap();
    let f = seen[0].response_format.as_ref().unwrap();
    assert_eq!(f["type"], "json_schema");
    assert_eq!(
        f["json_schema"]["schema"]["properties"]["score"]["maximum"],
        6
    );
    assert!(seen[0].messages[0].content.contains("from 1 to 6"));
}

#[tokio::test]
async fn score_teacher_errors_are_failures_but_budget_stops_the_step() {
    let t = ScriptedTeacher::queued(vec![
        Err(TeacherError::Http {
            status: 400,
            message: "bad request".into(),
            retry_after_ms: None,
        }),
        Ok("Score: 4".into()),
    ]);
    let ctx = ctx_with(t);
    let step = ScoreStep::new(score_opts(vec![Aspect::Difficulty]), Path::new(".")).unwrap();
    let sink = run(&step, &ctx, vec![rec("a", "x", None), rec("b", "y", None)])
        .await
        .unwrap();
    let f = sink.failures();
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].class.as_str(), f[0].status), ("http_4xx", Some(400)));
    assert!(f[0].raw.contains("x"), "raw keeps the prompt that was sent");
    assert_eq!(sink.records().len(), 1);

    let t = ScriptedTeacher::queued(vec![Err(TeacherError::Budget(1.0))]);
    let ctx = ctx_with(t);
    let e = run(&step, &ctx, vec![rec("a", "x", None)])
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, StepError::Teacher(TeacherError::Budget(_))),
        "{e:?}"
    );
}

fn judge_opts(mode: JudgeMode) -> JudgeOptions {
    JudgeOptions {
        teacher: "judge".into(),
        mode,
        scale: None,
        aspects: vec![],
        template: None,
        structured: false,
        concurrency: 4,
        temperature: 0.0,
        max_tokens: 256,
        calibration: Default::default(),
        min_calibration_accuracy: None,
    }
}

/// The two responses of a rendered pairwise prompt.
fn a_and_b(p: &str) -> (String, String) {
    let cut = |tag: &str| {
        let start = p.find(&format!("[Response {tag}]\n")).unwrap() + 12;
        let end = p.find(&format!("[End of response {tag}]")).unwrap();
        p[start..end].trim().to_string()
    };
    (cut("A"), cut("B"))
}

#[tokio::test]
async fn pointwise_scores_each_candidate() {
    let t = ScriptedTeacher::rule(|p| {
        Ok(if p.contains("GOOD") {
            "Score: 9"
        } else {
            "Score: 3"
        }
        .into())
    });
    let ctx = ctx_with(t.clone());
    let step = JudgeStep::new(judge_opts(JudgeMode::Pointwise), Path::new(".")).unwrap();
    let rows = vec![with_candidates(
        "q",
        "Explain DNS",
        &["GOOD answer", "meh", "GOOD too"],
    )];
    let sink = run(&step, &ctx, rows).await.unwrap();
    let r = &sink.records()[0];
    let scores: Vec<f64> = r.candidates.iter().map(|c| c.score.unwrap()).collect();
    assert_eq!(scores, vec![9.0, 3.0, 9.0]);
    assert_eq!(r.candidates[0].rationale.as_deref(), Some("Score: 9"));
    assert_eq!(t.calls(), 3);
}

#[tokio::test]
async fn pointwise_ultrafeedback_aspects_are_averaged() {
    let t = ScriptedTeacher::rule(|p| {
        Ok(if p.contains("honesty and uncertainty") {
            r#"{"score": 4, "rationale": "hedges"}"#
        } else {
            r#"{"score": 8, "rationale": "follows"}"#
        }
        .into())
    });
    let ctx = ctx_with(t.clone());
    let mut o = judge_opts(JudgeMode::Pointwise);
    o.aspects = vec![UfAspect::InstructionFollowing, UfAspect::Honesty];
    let step = JudgeStep::new(o, Path::new(".")).unwrap();
    let sink = run(&step, &ctx, vec![with_candidates("q", "x", &["a1", "a2"])])
        .await
        .unwrap();
    let r = &sink.records()[0];
    assert_eq!(r.candidates[0].score, Some(6.0));
    assert_eq!(r.scores["judge_honesty_1"], 4.0);
    assert_eq!(r.scores["judge_instruction_following_1"], 8.0);
    let why = r.candidates[1].rationale.as_deref().unwrap();
    assert!(
        why.contains("honesty (4): hedges") && why.contains("instruction_following (8): follows"),
        "{why}"
    );
    assert_eq!(t.calls(), 4);
}

#[tokio::test]
async fn pointwise_unparsable_reply_fails_the_whole_record() {
    let t = ScriptedTeacher::rule(|p| {
        Ok(if p.contains("bad one") {
            "no idea"
        } else {
            "7"
        }
        .into())
    });
    let ctx = ctx_with(t);
    let step = JudgeStep::new(judge_opts(JudgeMode::Pointwise), Path::new(".")).unwrap();
    let rows = vec![
        with_candidates("q1", "x", &["fine", "bad one"]),
        with_candidates("q2", "y", &["fine", "also fine"]),
    ];
    let sink = run(&step, &ctx, rows).await.unwrap();
    assert_eq!(sink.records().len(), 1);
    assert_eq!(sink.records()[0].id, "q2");
    let f = sink.failures();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (
            f[0].record_id.as_str(),
            f[0].class.as_str(),
            f[0].raw.as_str()
        ),
        ("q1", "parse", "no idea")
    );
    assert!(f[0].message.contains("candidate 1"), "{}", f[0].message);
}

/// A judge that always prefers the first position decides nothing: every pair is a tie,
/// every candidate scores 0.5, and `pair` then emits no pair.
#[tokio::test]
async fn always_a_judge_yields_ties_not_wins() {
    let t =
        ScriptedTeacher::rule(|_| Ok(r#"{"winner": "A", "rationale": "first is best"}"#.into()));
    let ctx = ctx_with(t.clone());
    let step = JudgeStep::new(judge_opts(JudgeMode::Pairwise), Path::new(".")).unwrap();
    let rows = vec![with_candidates(
        "q",
        "Explain DNS",
        &["one", "two", "three"],
    )];
    let sink = run(&step, &ctx, rows).await.unwrap();
    assert_eq!(t.calls(), 6, "3 pairs × 2 orders");
    let judged = sink.records();
    for c in &judged[0].candidates {
        assert_eq!(c.score, Some(0.5));
        assert!(c.rationale.as_deref().unwrap().contains("tie"));
    }
    assert_eq!(
        ctx.stats.metrics.lock().unwrap()["position_consistency"],
        0.0
    );

    let pair = PairStep::new(PairOptions::default());
    let out = run(&pair, &ctx, judged).await.unwrap();
    assert!(out.records().is_empty());
    let rej = out.rejections();
    assert_eq!(rej.len(), 1);
    assert_eq!(rej[0].reason, "tie");
}

/// Every ordered pair is asked, and swapped orders see the responses in swapped slots.
#[tokio::test]
async fn pairwise_consistent_judge_gives_win_rates() {
    // Prefers the longer answer whatever its position.
    let t = ScriptedTeacher::rule(|p| {
        let (a, b) = a_and_b(p);
        Ok(if a.len() > b.len() {
            "Winner: A"
        } else {
            "[[B]]"
        }
        .into())
    });
    let ctx = ctx_with(t.clone());
    let step = JudgeStep::new(judge_opts(JudgeMode::Pairwise), Path::new(".")).unwrap();
    let rows = vec![with_candidates(
        "q",
        "x",
        &["mid answer", "s", "the longest answer"],
    )];
    let sink = run(&step, &ctx, rows).await.unwrap();
    let r = &sink.records()[0];
    let scores: Vec<f64> = r.candidates.iter().map(|c| c.score.unwrap()).collect();
    assert_eq!(scores, vec![0.5, 0.0, 1.0]);
    assert_eq!(
        ctx.stats.metrics.lock().unwrap()["position_consistency"],
        1.0
    );
    let orders: std::collections::BTreeSet<(String, String)> = t
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| a_and_b(&r.messages[0].content))
        .collect();
    assert_eq!(orders.len(), 6);
    assert!(orders.contains(&("s".into(), "mid answer".into())));
    assert!(orders.contains(&("mid answer".into(), "s".into())));

    let pair = PairStep::new(PairOptions::default());
    let out = run(&pair, &ctx, sink.records()).await.unwrap().records();
    assert_eq!(out.len(), 1);
    let p = out[0].pair.as_ref().unwrap();
    assert_eq!(p.chosen, vec![Message::assistant("the longest answer")]);
    assert_eq!(p.rejected, vec![Message::assistant("s")]);
    assert_eq!(
        (p.chosen_score, p.rejected_score, p.margin),
        (1.0, 0.0, 1.0)
    );
    assert_eq!(
        (p.chosen_model.as_str(), p.rejected_model.as_str()),
        ("m2", "m1")
    );
    assert!(p
        .rationale
        .as_deref()
        .unwrap()
        .starts_with("chosen: vs candidate 0: won"));
}

/// One order says A, the swapped order says tie: not a win.
#[tokio::test]
async fn pairwise_half_agreement_is_a_tie() {
    let t = ScriptedTeacher::rule(|p| {
        let (a, _) = a_and_b(p);
        Ok(if a == "x1" { "A" } else { "tie" }.into())
    });
    let ctx = ctx_with(t);
    let step = JudgeStep::new(judge_opts(JudgeMode::Pairwise), Path::new(".")).unwrap();
    let sink = run(&step, &ctx, vec![with_candidates("q", "x", &["x1", "x2"])])
        .await
        .unwrap();
    let s: Vec<f64> = sink.records()[0]
        .candidates
        .iter()
        .map(|c| c.score.unwrap())
        .collect();
    assert_eq!(s, vec![0.5, 0.5]);
}

#[tokio::test]
async fn pairwise_needs_two_candidates_and_records_unreadable_verdicts() {
    let t = ScriptedTeacher::rule(|_| Ok("They are both interesting.".into()));
    let ctx = ctx_with(t);
    let step = JudgeStep::new(judge_opts(JudgeMode::Pairwise), Path::new(".")).unwrap();
    let rows = vec![
        with_candidates("one", "x", &["only"]),
        with_candidates("two", "y", &["p", "q"]),
    ];
    let sink = run(&step, &ctx, rows).await.unwrap();
    assert!(sink.records().is_empty());
    assert_eq!(sink.rejections()[0].reason, "too_few_candidates");
    let f = sink.failures();
    assert_eq!(f.len(), 2, "both orders failed to parse");
    assert!(f
        .iter()
        .all(|f| f.class == "parse" && f.raw == "They are both interesting."));
}

fn judged(id: &str, scores: &[f64]) -> Record {
    let answers: Vec<String> = (0..scores.len()).map(|i| format!("answer {i}")).collect();
    let refs: Vec<&str> = answers.iter().map(String::as_str).collect();
    let mut r = with_candidates(id, &format!("prompt {id}"), &refs);
    for (c, s) in r.candidates.iter_mut().zip(scores) {
        c.score = Some(*s);
        c.rationale = Some(format!("rated {s}"));
    }
    r
}

#[tokio::test]
async fn pair_strategies_and_margins_on_a_fixed_table() {
    let ctx = ctx_with(ScriptedTeacher::rule(|_| {
        unreachable!("pair calls no teacher")
    }));
    let table = || {
        vec![
            judged("a", &[3.0, 9.0, 5.0]),
            judged("b", &[7.0, 7.0]),
            judged("c", &[6.0, 5.0]),
            judged("d", &[8.0]),
        ]
    };
    let opts = |strategy, min_margin| PairOptions {
        strategy,
        min_margin,
        min_chosen_score: None,
    };

    let s = run(
        &PairStep::new(opts(Strategy::BestVsWorst, 2.0)),
        &ctx,
        table(),
    )
    .await
    .unwrap();
    let ids: Vec<String> = s.records().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec!["a-1v0"]);
    let reasons: Vec<(String, String)> = s
        .rejections()
        .iter()
        .map(|r| (r.record_id.clone(), r.reason.clone()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("b".into(), "tie".into()),
            ("c".into(), "margin".into()),
            ("d".into(), "too_few_candidates".into())
        ]
    );
    assert_eq!(ctx.stats.rejected.lock().unwrap()["margin"], 1);

    let s = run(&PairStep::new(opts(Strategy::AllPairs, 0.0)), &ctx, table())
        .await
        .unwrap();
    let ids: Vec<String> = s.records().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec!["a-1v0", "a-2v0", "a-1v2", "c-0v1"]);

    let s = run(
        &PairStep::new(PairOptions {
            min_chosen_score: Some(8.0),
            ..opts(Strategy::AllPairs, 0.0)
        }),
        &ctx,
        table(),
    )
    .await
    .unwrap();
    let ids: Vec<String> = s.records().iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, vec!["a-1v0", "a-1v2"]);

    // Seeded: the same pipeline seed draws the same rejected candidate.
    let a = run(
        &PairStep::new(opts(Strategy::BestVsRandomLower, 0.0)),
        &ctx,
        table(),
    )
    .await
    .unwrap();
    let b = run(
        &PairStep::new(opts(Strategy::BestVsRandomLower, 0.0)),
        &ctx,
        table(),
    )
    .await
    .unwrap();
    assert_eq!(a.records(), b.records());
    assert!(a.records()[0].id.starts_with("a-1v"));
}

#[tokio::test]
async fn pair_output_record_shape() {
    let ctx = ctx_with(ScriptedTeacher::rule(|_| unreachable!()));
    let mut r = judged("a", &[2.0, 8.0]);
    r.scores.insert("difficulty".into(), 4.0);
    let s = run(&PairStep::new(PairOptions::default()), &ctx, vec![r])
        .await
        .unwrap();
    let p = &s.records()[0];
    assert_eq!(p.messages, vec![Message::user("prompt a")]);
    assert!(p.candidates.is_empty() && p.output.is_none());
    assert_eq!(p.scores["difficulty"], 4.0, "upstream columns are kept");
    assert_eq!(
        p.labels["prompt_id"],
        retort_steps::pair::prompt_id(&[Message::user("prompt a")])
    );
    assert_eq!(p.labels["prompt_id"].len(), 64);
    assert_eq!(
        (
            p.labels["chosen_teacher"].as_str(),
            p.labels["rejected_teacher"].as_str()
        ),
        ("t1", "t0")
    );
    assert_eq!(p.provenance.parents, vec!["a".to_string()]);
    let pair = p.pair.as_ref().unwrap();
    assert_eq!(
        pair.rationale.as_deref(),
        Some("chosen: rated 8\n\nrejected: rated 2")
    );
    assert_eq!(pair.margin, 6.0);
}

#[tokio::test]
async fn pair_unjudged_candidates_are_failures() {
    let ctx = ctx_with(ScriptedTeacher::rule(|_| unreachable!()));
    let r = with_candidates("u", "x", &["a", "b"]);
    let s = run(&PairStep::new(PairOptions::default()), &ctx, vec![r])
        .await
        .unwrap();
    assert!(s.records().is_empty());
    assert_eq!(s.failures()[0].class, "bad_input");
}

fn scored(id: &str, d: f64, q: f64) -> Record {
    let mut r = rec(id, id, Some("x"));
    r.scores.insert("difficulty".into(), d);
    r.scores.insert("quality".into(), q);
    r
}

#[tokio::test]
async fn tiers_by_quantiles_and_by_bounds() {
    let ctx = ctx_with(ScriptedTeacher::rule(|_| unreachable!()));
    let rows: Vec<Record> = (1..=9)
        .map(|d| scored(&format!("r{d}"), d as f64, 5.0 + (d % 2) as f64))
        .collect();

    let step = TiersStep::new(TiersOptions::default()).unwrap();
    assert_eq!(step.shape(), retort_steps::Shape::WholeTable);
    let s = run(&step, &ctx, rows.clone()).await.unwrap();
    let tiers: Vec<String> = s
        .records()
        .iter()
        .map(|r| r.labels["tier"].clone())
        .collect();
    assert_eq!(
        tiers,
        ["easy", "easy", "easy", "medium", "medium", "medium", "hard", "hard", "hard"]
    );
    assert_eq!(s.batches.len(), 1);
    assert_eq!(s.batches[0].consumed, 9);

    let tier = |name: &str, lo: Option<f64>, hi: Option<f64>, min_q: Option<f64>| TierSpec {
        name: name.into(),
        min_difficulty: lo,
        max_difficulty: hi,
        min_quality: min_q,
        max_quality: None,
    };
    let opts = TiersOptions {
        tiers: vec![
            tier("easy", None, Some(3.0), None),
            tier("medium", Some(4.0), Some(6.0), None),
            tier("hard", Some(7.0), None, Some(6.0)),
        ],
        ..Default::default()
    };
    let step = TiersStep::new(opts).unwrap();
    assert_eq!(step.shape(), retort_steps::Shape::Streaming);
    let s = run(&step, &ctx, rows).await.unwrap();
    let got: Vec<(String, String)> = s
        .records()
        .iter()
        .map(|r| (r.id.clone(), r.labels["tier"].clone()))
        .collect();
    assert_eq!(got[2], ("r3".into(), "easy".into()));
    assert_eq!(got[3], ("r4".into(), "medium".into()));
    assert_eq!(got[5], ("r6".into(), "medium".into()));
    // r7 and r9 have quality 6, r8 has quality 5: below the hard tier's min_quality.
    assert_eq!(got[6], ("r7".into(), "hard".into()));
    assert_eq!(got.len(), 8);
    let rej = s.rejections();
    assert_eq!(
        (rej[0].record_id.as_str(), rej[0].reason.as_str()),
        ("r8", "no_tier")
    );
}

#[tokio::test]
async fn tiers_min_quality_and_missing_columns() {
    let ctx = ctx_with(ScriptedTeacher::rule(|_| unreachable!()));
    let mut missing = rec("m", "m", None);
    missing.scores.insert("quality".into(), 9.0);
    let rows = vec![scored("lo", 1.0, 2.0), scored("ok", 2.0, 8.0), missing];
    let step = TiersStep::new(TiersOptions {
        min_quality: Some(5.0),
        quantiles: Some(vec!["p1".into(), "p2".into()]),
        ..Default::default()
    })
    .unwrap();
    let s = run(&step, &ctx, rows).await.unwrap();
    assert_eq!(s.records().len(), 1);
    assert_eq!(s.rejections()[0].reason, "quality");
    let f = s.failures();
    assert_eq!(
        (f[0].record_id.as_str(), f[0].class.as_str()),
        ("m", "bad_input")
    );
    assert!(f[0].message.contains("scores.difficulty"));
}

fn spec(kind: &str, toml_src: &str) -> StepSpec {
    StepSpec {
        id: "s".into(),
        kind: kind.into(),
        after: vec![],
        options: toml::from_str(toml_src).unwrap(),
    }
}

#[test]
fn registry_builds_the_kinds_and_reports_every_problem() {
    let ctx = BuildCtx {
        teachers: vec!["judge".into()],
        ..Default::default()
    };
    let b = build(&spec("score", r#"teacher = "judge""#), &ctx).unwrap();
    assert_eq!(b.estimates.len(), 2);
    assert!(b.writes.contains("quality, difficulty"), "{}", b.writes);
    let b = build(
        &spec("judge", "teacher = \"judge\"\nmode = \"pairwise\""),
        &ctx,
    )
    .unwrap();
    assert_eq!(b.estimates[0].calls_per_input, 2.0);
    assert!(build(&spec("pair", r#"strategy = "all_pairs""#), &ctx).is_ok());
    assert!(build(&spec("tiers", ""), &ctx).is_ok());

    let e = build(
        &spec(
            "score",
            "teacher = \"nope\"\naspects = [\"quality\"]\ntemplates = { quality = \"missing.jinja\", difficulty = \"x\" }",
        ),
        &ctx,
    )
    .err()
    .unwrap();
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(e[0].contains("teacher `nope`"));
    assert!(e.iter().any(|m| m.contains("missing.jinja")));
    assert!(e
        .iter()
        .any(|m| m.contains("`templates.difficulty` is set")));

    let e = build(&spec("score", "teacher = \"judge\"\nscale = \"10\""), &ctx)
        .err()
        .unwrap();
    assert!(e[0].contains("scale"), "{e:?}");
    let e = build(&spec("score", "teacher = \"judge\"\nbogus = 1"), &ctx)
        .err()
        .unwrap();
    assert!(e[0].contains("bogus"), "{e:?}");
    let e = build(
        &spec(
            "judge",
            "teacher = \"judge\"\nmode = \"pairwise\"\naspects = [\"honesty\"]",
        ),
        &ctx,
    )
    .err()
    .unwrap();
    assert!(
        e[0].contains("`aspects` applies to mode = \"pointwise\" only"),
        "{e:?}"
    );
    let e = build(&spec("pair", "strategy = \"best\""), &ctx)
        .err()
        .unwrap();
    assert!(e[0].contains("best"), "{e:?}");
    let e = build(
        &spec(
            "tiers",
            "tiers = [{ name = \"a\", min_difficulty = 5, max_difficulty = 2 }]",
        ),
        &ctx,
    )
    .err()
    .unwrap();
    assert!(e[0].contains("above"), "{e:?}");
}

/// Every built-in judge template rendered with fixed variables (review the .snap files
/// when a template changes).
#[test]
fn rendered_templates_snapshot() {
    use retort_steps::templates::Template;
    let single = serde_json::json!({
        "instruction": "Give three tips for staying healthy.",
        "messages": [{"role": "user", "content": "Give three tips for staying healthy."}],
        "response": "1. Eat vegetables. 2. Sleep well. 3. Walk daily.",
        "multi_turn": false,
        "response_a": "Eat well, sleep, exercise.",
        "response_b": "Drink water.",
        "scale_min": 1,
        "scale_max": 10,
    });
    let chat = serde_json::json!({
        "instruction": "Plan a trip?",
        "messages": [
            {"role": "user", "content": "Plan a trip?"},
            {"role": "assistant", "content": "Where to?"},
            {"role": "user", "content": "Rome, two days."},
            {"role": "assistant", "content": "Day 1: Colosseum. Day 2: Vatican."}
        ],
        "response": "Day 1: Colosseum. Day 2: Vatican.",
        "multi_turn": true,
        "scale_min": 1,
        "scale_max": 6,
    });
    // A pointwise judge sees the prompt turns only; the candidate is `response`.
    let mut prompt_chat = chat.clone();
    prompt_chat["messages"].as_array_mut().unwrap().pop();
    let cases = [
        ("score_quality", &single, ""),
        ("score_quality", &chat, "_chat"),
        ("score_difficulty", &single, ""),
        ("judge_pointwise", &single, ""),
        ("judge_pointwise", &prompt_chat, "_chat"),
        ("judge_pairwise", &single, ""),
        ("judge_ultrafeedback_instruction_following", &single, ""),
        ("judge_ultrafeedback_honesty", &single, ""),
        ("judge_ultrafeedback_truthfulness", &single, ""),
        ("judge_ultrafeedback_helpfulness", &single, ""),
    ];
    for (name, vars, suffix) in cases {
        let t = Template::load(name, Path::new(".")).unwrap();
        let text = t.render(vars).unwrap();
        assert!(
            !text.contains("{{") && !text.contains("{#"),
            "{name} left template syntax"
        );
        insta::assert_snapshot!(format!("{name}{suffix}"), text);
    }
}
