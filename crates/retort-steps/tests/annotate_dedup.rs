//! Issue #16 through the steps as a pipeline builds them: `annotate` (languages and
//! `lang_mismatch`) → `filter` on it, `score` writing the same columns, and `dedup` on the
//! response / prompt_response side in exact, near and semantic mode (semantic checking
//! what `embed` embedded).

mod judge_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use judge_support::{ctx_with, rec, ScriptedTeacher};
use retort_core::Record;
use retort_steps::registry::{build, BuildCtx, StepSpec};
use retort_steps::testing::{inputs_from, test_ctx, MemSink};
use retort_steps::{Step, StepCtx, StepError};
use retort_teacher::{Embedder, TeacherError};

/// A step built from its TOML options, as `retort run` builds it.
fn step(kind: &str, options: &str) -> Arc<dyn Step> {
    let spec = StepSpec {
        id: kind.into(),
        kind: kind.into(),
        after: vec!["up".into()],
        options: toml::from_str(options).unwrap(),
    };
    let ctx = BuildCtx {
        teachers: vec!["judge".into()],
        has_embedder: true,
        ..Default::default()
    };
    match build(&spec, &ctx) {
        Ok(b) => b.step,
        Err(e) => panic!("{kind} {options}: {e:?}"),
    }
}

async fn run(step: &dyn Step, ctx: &StepCtx, rows: Vec<Record>) -> Result<MemSink, StepError> {
    let mut sink = MemSink::default();
    step.run(ctx, inputs_from(rows, 3), &mut sink).await?;
    Ok(sink)
}

fn ids(rows: &[Record]) -> Vec<&str> {
    rows.iter().map(|r| r.id.as_str()).collect()
}

/// The rows issue #16 found in the quickstart, and the cases the rule must not flag.
fn answers() -> Vec<Record> {
    vec![
        rec(
            "spanish",
            "Generate a random sentence.",
            Some("Eres un perro muy simpático y siempre me alegras el día."),
        ),
        rec(
            "english",
            "Give three tips for staying healthy.",
            Some("Drink water, sleep eight hours and walk every day."),
        ),
        rec(
            "asked",
            "Translate into Portuguese: the library opens at nine.",
            Some("A biblioteca abre às nove horas."),
        ),
        rec(
            "zh_asked",
            "请用英文回答：什么是光合作用？",
            Some("Photosynthesis is how plants turn light, water and carbon dioxide into sugar."),
        ),
        rec(
            "zh_english",
            "解释为什么天空是蓝色的。",
            Some("The sky looks blue because air scatters short blue wavelengths of sunlight more than red ones."),
        ),
        rec("number", "What is six times seven?", Some("42")),
        rec("no_answer", "Name three prime numbers.", None),
    ]
}

#[tokio::test]
async fn annotate_labels_languages_and_flags_answers_in_another_language() {
    let ctx = test_ctx("annotated", Default::default(), None);
    let out = run(&*step("annotate", ""), &ctx, answers()).await.unwrap();
    let rows: BTreeMap<String, Record> = out
        .records()
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    assert_eq!(rows.len(), 7, "annotate passes every record on");
    let mismatch = |id: &str| rows[id].scores.get("lang_mismatch").copied();
    assert_eq!(rows["spanish"].labels["language"], "en");
    assert_eq!(rows["spanish"].labels["response_language"], "es");
    assert_eq!(mismatch("spanish"), Some(1.0));
    assert_eq!(mismatch("english"), Some(0.0));
    assert_eq!(mismatch("asked"), Some(0.0), "a translation was asked for");
    assert_eq!(rows["zh_asked"].labels["language"], "zh");
    assert_eq!(mismatch("zh_asked"), Some(0.0), "用英文 asks for English");
    assert_eq!(mismatch("zh_english"), Some(1.0));
    // No verdict without a confidently identified answer: the column is absent.
    assert_eq!(rows["number"].labels["response_language"], "und");
    assert_eq!(mismatch("number"), None);
    assert_eq!(mismatch("no_answer"), None);
    assert!(!rows["no_answer"].labels.contains_key("response_language"));
    assert!(rows["spanish"].scores["response_language_confidence"] >= 0.5);
    assert!(rows["spanish"].scores["prompt_language_confidence"] >= 0.5);
    for c in [
        "prompt_len_chars",
        "response_len_words",
        "response_repetition",
        "response_is_refusal",
        "response_leaked_markers",
    ] {
        assert!(rows["english"].scores.contains_key(c), "{c}");
    }
}

#[tokio::test]
async fn a_filter_drops_on_lang_mismatch() {
    let ctx = test_ctx("annotated", Default::default(), None);
    let annotated = run(&*step("annotate", ""), &ctx, answers())
        .await
        .unwrap()
        .records();
    let strict = run(
        &*step("filter", "keep = \"lang_mismatch == 0\""),
        &ctx,
        annotated.clone(),
    )
    .await
    .unwrap();
    // `== 0` drops the mismatches and the rows without a verdict.
    assert_eq!(ids(&strict.records()), vec!["english", "asked", "zh_asked"]);
    let lenient = run(
        &*step("filter", "keep = \"lang_mismatch != 1\""),
        &ctx,
        annotated,
    )
    .await
    .unwrap();
    assert_eq!(
        ids(&lenient.records()),
        vec!["english", "asked", "zh_asked", "number", "no_answer"]
    );
    let rejected: Vec<String> = strict
        .rejections()
        .into_iter()
        .map(|r| r.record_id)
        .collect();
    assert_eq!(
        rejected,
        vec!["spanish", "zh_english", "number", "no_answer"]
    );
}

#[tokio::test]
async fn score_writes_the_same_columns_as_annotate() {
    let judge = ScriptedTeacher::rule(|_| Ok("{\"score\": 7}".into()));
    let ctx = ctx_with(judge);
    let scored = run(
        &*step("score", "teacher = \"judge\"\naspects = [\"quality\"]"),
        &ctx,
        answers()[..5].to_vec(),
    )
    .await
    .unwrap()
    .records();
    let annotated = run(&*step("annotate", ""), &ctx, answers()[..5].to_vec())
        .await
        .unwrap()
        .records();
    assert_eq!(scored.len(), 5);
    for (s, a) in scored.iter().zip(&annotated) {
        let mut s_scores = s.scores.clone();
        assert_eq!(s_scores.remove("quality"), Some(7.0));
        // lingua's confidences can differ in the last bit between calls (its sums run in
        // hash-map order), so values are compared to 1e-9, names exactly.
        assert!(s_scores.keys().eq(a.scores.keys()), "{}", s.id);
        for (k, v) in &s_scores {
            assert!(
                (v - a.scores[k]).abs() < 1e-9,
                "{} {k}: {v} vs {}",
                s.id,
                a.scores[k]
            );
        }
        assert_eq!(s.labels, a.labels, "{}", s.id);
    }
    assert_eq!(scored[0].scores["lang_mismatch"], 1.0);
}

/// Different prompts, one answer given twice word for word (issue #16: the report said no
/// duplicate was removed above two identical cards).
fn same_answers() -> Vec<Record> {
    let mut rows = vec![
        rec(
            "a",
            "Generate a random sentence.",
            Some("The cat sat on the warm windowsill and watched the rain."),
        ),
        rec(
            "b",
            "Write a sentence about a pet.",
            Some("The cat sat on the warm windowsill and watched the rain."),
        ),
        rec(
            "c",
            "Describe the weather today.",
            Some("It is cold and grey, with a light drizzle all afternoon."),
        ),
    ];
    for (r, q) in rows.iter_mut().zip([4.0, 9.0, 5.0]) {
        r.scores.insert("quality".into(), q);
    }
    rows
}

#[tokio::test]
async fn exact_and_near_dedup_find_the_same_answer_to_different_prompts() {
    let ctx = test_ctx("dd", Default::default(), None);
    let on_prompt = run(&*step("dedup", "mode = \"exact\""), &ctx, same_answers())
        .await
        .unwrap();
    assert_eq!(on_prompt.records().len(), 3, "the prompts all differ");

    let exact = run(
        &*step("dedup", "mode = \"exact\"\ntext = \"response\""),
        &ctx,
        same_answers(),
    )
    .await
    .unwrap();
    assert_eq!(
        ids(&exact.records()),
        vec!["b", "c"],
        "keep_by quality keeps b"
    );
    let d = &exact.sides["duplicates"];
    assert_eq!(ids(d), vec!["a"]);
    assert_eq!(d[0].labels["duplicate_of"], "b");
    assert_eq!(d[0].labels["dedup_text"], "response");
    for l in ["duplicate_of_text", "duplicate_text"] {
        assert_eq!(
            d[0].labels[l],
            "The cat sat on the warm windowsill and watched the rain."
        );
    }
    let rej = exact.rejections();
    assert_eq!(rej[0].reason, "duplicate_exact");
    assert_eq!(
        rej[0].text,
        "The cat sat on the warm windowsill and watched the rain."
    );

    let mut near_rows = same_answers();
    near_rows[0].output = Some("The cat sat on the warm windowsill and watched the rain!".into());
    let near = run(
        &*step(
            "dedup",
            "mode = \"near\"\ntext = \"response\"\nthreshold = 0.7",
        ),
        &ctx,
        near_rows,
    )
    .await
    .unwrap();
    assert_eq!(ids(&near.records()), vec!["b", "c"]);
    assert_eq!(near.sides["duplicates"][0].labels["dedup_text"], "response");
}

#[tokio::test]
async fn prompt_response_dedup_needs_both_sides_equal() {
    let mut rows = same_answers();
    rows.push(rec(
        "a2",
        "Generate a random sentence.",
        Some("The cat sat on the warm windowsill and watched the rain."),
    ));
    rows.push(rec(
        "a3",
        "Generate a random sentence.",
        Some("A red kite drifted over the hill."),
    ));
    let ctx = test_ctx("dd", Default::default(), None);
    let out = run(
        &*step("dedup", "mode = \"exact\"\ntext = \"prompt_response\""),
        &ctx,
        rows,
    )
    .await
    .unwrap();
    // Only a2 repeats a whole pair (a's); b shares a's answer, a3 shares a's prompt.
    assert_eq!(ids(&out.records()), vec!["a", "b", "c", "a3"]);
    assert_eq!(out.sides["duplicates"][0].id, "a2");
    assert_eq!(
        out.sides["duplicates"][0].labels["dedup_text"],
        "prompt_response"
    );
}

/// Bag-of-words vectors: equal texts embed equally, different texts far apart.
struct WordsEmbedder;

#[async_trait]
impl Embedder for WordsEmbedder {
    fn model(&self) -> &str {
        "words"
    }
    fn dim(&self) -> usize {
        64
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; 64];
                for w in t.split_whitespace() {
                    let h = w
                        .bytes()
                        .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
                    v[(h % 64) as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                v.iter().map(|x| x / n).collect()
            })
            .collect())
    }
}

async fn embedded(text: &str) -> Vec<Record> {
    let ctx = test_ctx("emb", Default::default(), Some(Arc::new(WordsEmbedder)));
    let opts = format!("text = \"{text}\"");
    let out = run(&*step("embed", &opts), &ctx, same_answers())
        .await
        .unwrap()
        .records();
    assert!(out.iter().all(|r| r.labels["embedding_text"] == text));
    out
}

#[tokio::test]
async fn semantic_dedup_compares_the_embedded_side_and_checks_it() {
    let ctx = test_ctx("dd", Default::default(), None);
    let by_response = embedded("response").await;
    let out = run(
        &*step(
            "dedup",
            "mode = \"semantic\"\ntext = \"response\"\nmethod = \"exact\"",
        ),
        &ctx,
        by_response.clone(),
    )
    .await
    .unwrap();
    assert_eq!(ids(&out.records()), vec!["b", "c"]);
    let d = &out.sides["duplicates"][0];
    assert_eq!(d.labels["dedup_text"], "response");
    assert!(d.scores["similarity"] > 0.999);

    // Without `text`, semantic compares whatever was embedded and says which side that was.
    let out = run(
        &*step("dedup", "mode = \"semantic\"\nmethod = \"exact\""),
        &ctx,
        by_response.clone(),
    )
    .await
    .unwrap();
    assert_eq!(out.sides["duplicates"][0].labels["dedup_text"], "response");

    // Asking for a side that was not embedded stops the step with the fix.
    let e = run(
        &*step("dedup", "mode = \"semantic\"\ntext = \"prompt\""),
        &ctx,
        by_response,
    )
    .await
    .err()
    .expect("a mismatch is an error");
    let msg = e.to_string();
    assert!(
        msg.contains("text = \"prompt\" but the records were embedded from their response text"),
        "{msg}"
    );
    assert!(
        msg.contains("set text = \"prompt\" on the `embed` step"),
        "{msg}"
    );

    let by_prompt = embedded("prompt").await;
    let e = run(
        &*step("dedup", "mode = \"semantic\"\ntext = \"response\""),
        &ctx,
        by_prompt.clone(),
    )
    .await
    .err()
    .expect("a mismatch is an error");
    assert!(
        e.to_string().contains("embedded from their prompt text"),
        "{e}"
    );
    let out = run(
        &*step("dedup", "mode = \"semantic\"\ntext = \"prompt\""),
        &ctx,
        by_prompt,
    )
    .await
    .unwrap();
    assert_eq!(out.records().len(), 3, "the prompts differ");

    // Vectors with no record of their text are only accepted when `text` is not set.
    let mut bare = embedded("response").await;
    for r in &mut bare {
        r.labels.remove("embedding_text");
    }
    let e = run(
        &*step("dedup", "mode = \"semantic\"\ntext = \"response\""),
        &ctx,
        bare.clone(),
    )
    .await
    .err()
    .expect("unknown embedded text with `text` set is an error");
    assert!(
        e.to_string().contains("has no labels.embedding_text"),
        "{e}"
    );
    let out = run(
        &*step("dedup", "mode = \"semantic\"\nmethod = \"exact\""),
        &ctx,
        bare,
    )
    .await
    .unwrap();
    assert_eq!(out.sides["duplicates"][0].labels["dedup_text"], "embedding");
}
