//! Judge calibration through the `score` and `judge` steps with scripted judges: a judge
//! that tells good from flawed answers passes, judges that always say "10" or always
//! "A" come out at chance and are stopped by `min_calibration_accuracy` before they rate
//! a single record of the run, and `auto` runs the set only for a step of some size.

mod judge_support;

use std::path::Path;

use judge_support::*;
use retort_core::{Candidate, Record};
use retort_steps::calibration::{parse_set, Item, Mode, BUILTIN_SET};
use retort_steps::judge::{JudgeMode, JudgeOptions, JudgeStep};
use retort_steps::judge_parse::Scale;
use retort_steps::score::{Aspect, ScoreOptions, ScoreStep};
use retort_steps::testing::{inputs_from, MemSink};
use retort_steps::{Step, StepError};

fn set() -> Vec<Item> {
    parse_set(BUILTIN_SET, "built-in").unwrap()
}

fn score_opts(aspects: Vec<Aspect>, calibration: Mode, min: Option<f64>) -> ScoreOptions {
    ScoreOptions {
        teacher: "judge".into(),
        aspects,
        scale: Scale::TEN,
        templates: Default::default(),
        heuristics: false,
        structured: false,
        concurrency: 8,
        temperature: 0.0,
        max_tokens: 64,
        calibration,
        min_calibration_accuracy: min,
    }
}

fn judge_opts(mode: JudgeMode, calibration: Mode, min: Option<f64>) -> JudgeOptions {
    JudgeOptions {
        teacher: "judge".into(),
        mode,
        scale: None,
        aspects: vec![],
        template: None,
        structured: false,
        concurrency: 8,
        temperature: 0.0,
        max_tokens: 64,
        calibration,
        min_calibration_accuracy: min,
    }
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = rec(&format!("r{i}"), &format!("Run task {i}"), None);
            r.output = Some(format!("Run answer {i}"));
            r.candidates = vec![
                Candidate {
                    teacher: "a".into(),
                    content: format!("Run answer {i} from a"),
                    ..Default::default()
                },
                Candidate {
                    teacher: "b".into(),
                    content: format!("Run answer {i} from b"),
                    ..Default::default()
                },
            ];
            r
        })
        .collect()
}

/// The text between `open` and `close` in a rendered judge prompt.
fn between<'a>(p: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = p.find(open)? + open.len();
    let end = start + p[start..].find(close)?;
    Some(p[start..end].trim())
}

/// Whether `answer` is the good (`Some(true)`) or flawed answer of a calibration item.
fn is_good(answer: &str) -> Option<bool> {
    set().into_iter().find_map(|i| {
        if answer == i.good.trim() {
            Some(true)
        } else if answer == i.bad.trim() {
            Some(false)
        } else {
            None
        }
    })
}

/// A pointwise judge that knows the set: 9 for a good answer, 2 for a flawed one, 5 for
/// anything else (the run's own records).
fn knowing_pointwise(prompt: &str) -> String {
    // Difficulty prompts show no response: they get the neutral 5 too.
    match between(prompt, "[Response]", "[End of response]").and_then(is_good) {
        Some(true) => "Score: 9",
        Some(false) => "Score: 2",
        None => "Score: 5",
    }
    .into()
}

fn run_prompts(t: &ScriptedTeacher) -> usize {
    t.seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.messages[0].content.contains("Run answer"))
        .count()
}

async fn run(
    step: &dyn Step,
    t: std::sync::Arc<ScriptedTeacher>,
    rows: Vec<Record>,
) -> (Result<(), StepError>, MemSink, retort_steps::StepCtx) {
    let ctx = ctx_with(t);
    let mut sink = MemSink::default();
    let r = step.run(&ctx, inputs_from(rows, 8), &mut sink).await;
    (r, sink, ctx)
}

#[tokio::test]
async fn a_judge_that_tells_good_from_flawed_passes_and_its_results_are_step_metrics() {
    let t = ScriptedTeacher::rule(|p| Ok(knowing_pointwise(p)));
    let step = ScoreStep::new(
        score_opts(vec![Aspect::Quality], Mode::On, Some(0.8)),
        Path::new("."),
    )
    .unwrap();
    let (r, sink, ctx) = run(&step, t.clone(), records(5)).await;
    r.unwrap();
    assert_eq!(sink.records().len(), 5);
    let m = ctx.stats.metrics.lock().unwrap().clone();
    assert_eq!(m["calibration_accuracy"], 1.0);
    assert_eq!(m["calibration_items"], set().len() as f64);
    assert_eq!(m["calibration_calls"], 2.0 * set().len() as f64);
    assert_eq!(m["calibration_flaw_unsafe_compliance"], 1.0);
    assert_eq!(m["calibration_lang_zh"], 1.0);
    assert_eq!(m["calibration_tie_rate"], 0.0);
    // The set was asked once, then the run's five records.
    assert_eq!(t.calls(), 2 * set().len() + 5);
    assert!(ctx.stats.warnings.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_judge_that_always_says_ten_is_at_chance_and_stopped_before_the_run() {
    let t = ScriptedTeacher::rule(|_| Ok("Score: 10".into()));
    let step = ScoreStep::new(
        score_opts(
            vec![Aspect::Quality, Aspect::Difficulty],
            Mode::On,
            Some(0.8),
        ),
        Path::new("."),
    )
    .unwrap();
    let (r, sink, ctx) = run(&step, t.clone(), records(5)).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("failed its calibration"), "{e}");
    assert!(e.contains("accuracy 0.50"), "{e}");
    assert!(e.contains("min_calibration_accuracy = 0.8"), "{e}");
    assert!(sink.records().is_empty());
    assert_eq!(run_prompts(&t), 0, "no record of the run was rated");
    assert_eq!(
        ctx.stats.metrics.lock().unwrap()["calibration_tie_rate"],
        1.0
    );
}

#[tokio::test]
async fn without_a_minimum_a_weak_judge_is_a_warning_and_the_run_goes_on() {
    let t = ScriptedTeacher::rule(|_| Ok("Score: 10".into()));
    let step = ScoreStep::new(
        score_opts(vec![Aspect::Quality], Mode::On, None),
        Path::new("."),
    )
    .unwrap();
    let (r, sink, ctx) = run(&step, t.clone(), records(30)).await;
    r.unwrap();
    assert_eq!(sink.records().len(), 30);
    let w = ctx.stats.warnings.lock().unwrap().clone();
    assert!(
        w.iter().any(|w| w.contains("calibration accuracy 0.50")),
        "{w:?}"
    );
    // And the run's own 30 scores, all 10, are a collapsed column.
    assert!(
        w.iter()
            .any(|w| w.contains("scores.quality has collapsed: 100% of 30")),
        "{w:?}"
    );
    assert_eq!(
        ctx.stats.metrics.lock().unwrap()["scores_quality_top_share"],
        1.0
    );
}

#[tokio::test]
async fn a_pairwise_judge_that_always_answers_a_is_at_chance_with_full_first_position_bias() {
    let t = ScriptedTeacher::rule(|_| Ok(r#"{"winner": "A"}"#.into()));
    let step = JudgeStep::new(
        judge_opts(JudgeMode::Pairwise, Mode::On, Some(0.8)),
        Path::new("."),
    )
    .unwrap();
    let (r, _sink, ctx) = run(&step, t.clone(), records(4)).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("accuracy 0.50"), "{e}");
    assert!(e.contains("first-position preference 1.00"), "{e}");
    let m = ctx.stats.metrics.lock().unwrap().clone();
    assert_eq!(m["calibration_first_position"], 1.0);
    assert_eq!(m["calibration_swap_agreement"], 0.0);
    assert_eq!(run_prompts(&t), 0);
}

#[tokio::test]
async fn a_pairwise_judge_that_knows_the_good_answer_in_either_position_passes() {
    // Whichever position holds the good answer wins; the run's own pairs are ties.
    let t = ScriptedTeacher::rule(|p| {
        let a = between(p, "[Response A]", "[End of response A]").expect("pairwise template");
        Ok(match is_good(a) {
            None => "[[C]]",
            Some(true) => "[[A]]",
            Some(false) => "[[B]]",
        }
        .into())
    });
    let step = JudgeStep::new(
        judge_opts(JudgeMode::Pairwise, Mode::On, Some(0.8)),
        Path::new("."),
    )
    .unwrap();
    let (r, sink, ctx) = run(&step, t.clone(), records(4)).await;
    r.unwrap();
    assert_eq!(sink.records().len(), 4);
    let m = ctx.stats.metrics.lock().unwrap().clone();
    assert_eq!(m["calibration_accuracy"], 1.0);
    assert_eq!(m["calibration_first_position"], 0.5);
    assert_eq!(m["calibration_swap_agreement"], 1.0);
}

#[tokio::test]
async fn without_a_minimum_the_records_go_on_beside_the_calibration_and_with_one_they_wait() {
    let is_run = |r: &retort_teacher::ChatRequest| r.messages[0].content.contains("Run answer");
    for (min, waits) in [(None, false), (Some(0.8), true)] {
        let t = ScriptedTeacher::rule(|p| Ok(knowing_pointwise(p)));
        t.set_delay(std::time::Duration::from_millis(1));
        let step = ScoreStep::new(
            score_opts(vec![Aspect::Quality], Mode::On, min),
            Path::new("."),
        )
        .unwrap();
        let (r, sink, ctx) = run(&step, t.clone(), records(40)).await;
        r.unwrap();
        assert_eq!(sink.records().len(), 40);
        assert_eq!(
            ctx.stats.metrics.lock().unwrap()["calibration_accuracy"],
            1.0
        );
        let seen = t.seen.lock().unwrap();
        assert_eq!(seen.len(), 2 * set().len() + 40);
        let first_run = seen.iter().position(is_run).unwrap();
        let last_calibration = seen.iter().rposition(|r| !is_run(r)).unwrap();
        assert_eq!(
            first_run > last_calibration,
            waits,
            "min {min:?}: first run call #{first_run}, last calibration call #{last_calibration}"
        );
    }
}

#[tokio::test]
async fn calibration_on_runs_even_when_the_step_gets_no_record_to_rate() {
    // `calibrate.toml`'s judge once got no pairs (its answers were truncated) and its
    // calibration, asked for with `on`, was silently skipped.
    let t = ScriptedTeacher::rule(|_| Ok(r#"{"winner": "A"}"#.into()));
    let step = JudgeStep::new(
        judge_opts(JudgeMode::Pairwise, Mode::On, Some(0.8)),
        Path::new("."),
    )
    .unwrap();
    let (r, _sink, ctx) = run(&step, t.clone(), vec![]).await;
    let e = r.unwrap_err().to_string();
    assert!(e.contains("failed its calibration"), "{e}");
    assert_eq!(
        ctx.stats.metrics.lock().unwrap()["calibration_first_position"],
        1.0
    );

    let t = ScriptedTeacher::rule(|p| Ok(knowing_pointwise(p)));
    let step = ScoreStep::new(
        score_opts(vec![Aspect::Quality], Mode::On, None),
        Path::new("."),
    )
    .unwrap();
    let (r, _sink, ctx) = run(&step, t.clone(), vec![]).await;
    r.unwrap();
    assert_eq!(
        ctx.stats.metrics.lock().unwrap()["calibration_accuracy"],
        1.0
    );
    assert_eq!(t.calls(), 2 * set().len());
}

#[tokio::test]
async fn auto_leaves_a_small_step_alone_and_checks_a_large_one() {
    let t = ScriptedTeacher::rule(|p| Ok(knowing_pointwise(p)));
    let step = ScoreStep::new(
        score_opts(vec![Aspect::Quality, Aspect::Difficulty], Mode::Auto, None),
        Path::new("."),
    )
    .unwrap();
    let (r, _, ctx) = run(&step, t.clone(), records(20)).await;
    r.unwrap();
    assert_eq!(t.calls(), 40, "20 records × 2 aspects, no calibration");
    assert!(!ctx
        .stats
        .metrics
        .lock()
        .unwrap()
        .contains_key("calibration_accuracy"));

    // 250 records × 2 aspects = 500 calls ≥ 400: the set is asked once, part-way.
    let t = ScriptedTeacher::rule(|p| Ok(knowing_pointwise(p)));
    let step = ScoreStep::new(
        score_opts(vec![Aspect::Quality, Aspect::Difficulty], Mode::Auto, None),
        Path::new("."),
    )
    .unwrap();
    let (r, sink, ctx) = run(&step, t.clone(), records(250)).await;
    r.unwrap();
    assert_eq!(sink.records().len(), 250);
    assert_eq!(t.calls(), 500 + 2 * set().len());
    assert_eq!(
        ctx.stats.metrics.lock().unwrap()["calibration_accuracy"],
        1.0
    );
}

#[tokio::test]
async fn calibration_options_are_checked_when_the_step_is_built() {
    let e = ScoreStep::new(
        score_opts(vec![Aspect::Difficulty], Mode::On, None),
        Path::new("."),
    )
    .err()
    .unwrap();
    assert!(e.contains("has no \"quality\""), "{e}");
    let e = ScoreStep::new(
        score_opts(vec![Aspect::Quality], Mode::Auto, Some(1.5)),
        Path::new("."),
    )
    .err()
    .unwrap();
    assert!(e.contains("between 0 and 1"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.jsonl"), "{\"id\": 1}\n").unwrap();
    let e = ScoreStep::new(
        score_opts(vec![Aspect::Quality], Mode::File("mine.jsonl".into()), None),
        dir.path(),
    )
    .err()
    .unwrap();
    assert!(e.contains("mine.jsonl:1:"), "{e}");
}
