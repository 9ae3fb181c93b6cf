//! `evol_instruct`: make instructions harder (in-depth) and rarer (in-breadth) over
//! several rounds, as in WizardLM's Evol-Instruct.
//!
//! Each input record's prompt is evolved `rounds` times in a chain. Each round picks one
//! method (seeded by the step seed, the record id and the round): in-depth
//! `constraints`, `deepen`, `concretize`, `reasoning`, `complicate_input`, or
//! `breadth`. The rewrite then passes the **eliminator**; an eliminated rewrite is kept
//! in `rejections` with its reason and the next round evolves the last surviving prompt
//! again (as WizardLM puts failed evolutions back into the pool):
//! - `no_gain`: the rewrite equals the original (after whitespace/case folding) or its
//!   ROUGE-L F1 with the original is at least `max_similarity`;
//! - `leaked_marker`: it still contains the prompt's scaffolding ("#Rewritten Prompt#",
//!   "given prompt", …) or chat-format markers;
//! - `refusal`: the teacher refused instead of rewriting;
//! - `only_stopwords`: nothing but punctuation and stop words (also `empty`);
//! - with `answer_teacher`, the answer is checked too: `refusal` when it reads as a
//!   refusal (or says "sorry") and has fewer than `short_answer_words` words,
//!   `only_stopwords`/`empty_answer` as above.
//!
//! Every surviving evolution is one output record (`instruction`, and `output` when
//! answered), labelled `evol_method` and `evol_round`, with the previous generation as
//! its parent.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use rand::seq::IndexedRandom;
use retort_core::{content_id, Message, Provenance, Record};
use retort_teacher::FinishReason;
use serde::Deserialize;
use serde_json::json;

use crate::api::{Batch, MapStep, StepCtx, StepError};
use crate::gen_common::{self as gc, Outcome, Sampling};
use crate::generate::replies as rp;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};
use crate::templates::Template;

/// Evolution methods: in-depth ones, then `breadth`.
pub const METHODS: &[&str] = &[
    "constraints",
    "deepen",
    "concretize",
    "reasoning",
    "complicate_input",
    "breadth",
];

/// Options of `kind = "evol_instruct"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvolInstructOptions {
    /// Teacher that rewrites the prompts.
    pub teacher: String,
    /// Teacher that answers each evolved prompt (unset: prompts only).
    pub answer_teacher: Option<String>,
    /// Evolution rounds per input (default 3).
    #[serde(default = "three")]
    pub rounds: usize,
    /// Methods to draw from, uniformly (default: all but `complicate_input`).
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// ROUGE-L F1 with the original at or above which a rewrite adds nothing (default 0.9).
    #[serde(default = "default_similarity")]
    pub max_similarity: f64,
    /// An answer shorter than this many words (CJK: characters) that reads as a refusal
    /// is eliminated (default 80, WizardLM's rule).
    #[serde(default = "default_short")]
    pub short_answer_words: usize,
    /// Also pass each input record through unchanged (default false).
    #[serde(default)]
    pub keep_original: bool,
    /// Language the rewrites must use; unset = the prompt's own.
    pub language: Option<String>,
    /// Records evolved concurrently (default 16).
    #[serde(default = "gc::default_concurrency")]
    pub concurrency: usize,
    /// Rewrite temperature (default 0.7).
    pub temperature: Option<f32>,
    /// Nucleus sampling of rewrites.
    pub top_p: Option<f32>,
    /// `max_tokens` of rewrites (default 1024).
    pub max_tokens: Option<u32>,
    /// `max_tokens` of answers (default 2048).
    pub answer_max_tokens: Option<u32>,
    /// In-depth template (default `evol_in_depth`; gets `method`).
    pub depth_template: Option<String>,
    /// In-breadth template (default `evol_in_breadth`).
    pub breadth_template: Option<String>,
}

fn three() -> usize {
    3
}
fn default_methods() -> Vec<String> {
    [
        "constraints",
        "deepen",
        "concretize",
        "reasoning",
        "breadth",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
fn default_similarity() -> f64 {
    0.9
}
fn default_short() -> usize {
    80
}

/// The runnable step.
pub struct EvolInstruct {
    o: EvolInstructOptions,
    rewrite: Sampling,
    answer: Sampling,
    depth: Arc<Template>,
    breadth: Arc<Template>,
}

/// Build `evol_instruct` from its options.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: EvolInstructOptions = parse_options(spec)?;
    let mut errors = vec![];
    let mut files = vec![];
    gc::check_teacher(ctx, "teacher", &o.teacher, &mut errors);
    if let Some(a) = &o.answer_teacher {
        gc::check_teacher(ctx, "answer_teacher", a, &mut errors);
    }
    if o.rounds == 0 {
        errors.push("`rounds` must be at least 1".into());
    }
    if o.methods.is_empty() {
        errors.push(format!(
            "`methods` is empty; pick from {}",
            METHODS.join(", ")
        ));
    }
    for m in &o.methods {
        if !METHODS.contains(&m.as_str()) {
            errors.push(format!(
                "unknown evolution method `{m}`; known: {}",
                METHODS.join(", ")
            ));
        }
    }
    gc::check_unit("max_similarity", o.max_similarity, &mut errors);
    if o.concurrency == 0 {
        errors.push("`concurrency` must be at least 1".into());
    }
    let depth = gc::load_template(
        o.depth_template.as_deref().unwrap_or("evol_in_depth"),
        "depth_template",
        ctx,
        &mut files,
        &mut errors,
    );
    let breadth = gc::load_template(
        o.breadth_template.as_deref().unwrap_or("evol_in_breadth"),
        "breadth_template",
        ctx,
        &mut files,
        &mut errors,
    );
    let (Some(depth), Some(breadth), true) = (depth, breadth, errors.is_empty()) else {
        return Err(errors);
    };
    let rewrite = Sampling {
        temperature: Some(o.temperature.unwrap_or(0.7)),
        top_p: o.top_p,
        max_tokens: Some(o.max_tokens.unwrap_or(1024)),
    };
    let answer = Sampling {
        max_tokens: Some(o.answer_max_tokens.unwrap_or(2048)),
        ..rewrite
    };
    let mut estimates = vec![gc::estimate(
        &o.teacher,
        o.rounds as f64,
        0,
        gc::prompt_tokens_estimate(&depth, 100),
        rewrite,
    )];
    if let Some(a) = &o.answer_teacher {
        estimates.push(gc::estimate(a, o.rounds as f64, 0, 150, answer));
    }
    let writes = format!(
        "up to {} evolved instructions per input{}",
        o.rounds,
        if o.answer_teacher.is_some() {
            ", answered"
        } else {
            ""
        }
    );
    let step = EvolInstruct {
        o,
        rewrite,
        answer,
        depth,
        breadth,
    };
    let mut built = Built::new(Arc::new(step), writes);
    built.files = files;
    built.estimates = estimates;
    Ok(built)
}

/// Scaffolding of the evol prompts that must not survive into a rewrite (compared
/// case-insensitively).
const EVOL_MARKERS: &[&str] = &[
    "#the given prompt#",
    "#given prompt#",
    "#rewritten prompt#",
    "#created prompt#",
    "given prompt",
    "rewritten prompt",
    "created prompt",
];

/// Labels the reply may echo in front of the rewrite (stripped, not eliminated).
const ANSWER_LABELS: &[&str] = &[
    "#Rewritten Prompt#",
    "#Created Prompt#",
    "Rewritten Prompt",
    "Created Prompt",
];

fn units(text: &str) -> usize {
    retort_text::filters::length(text).units
}

/// The eliminator for a rewrite: `Some((reason, detail))` when it must go.
pub(crate) fn eliminate_rewrite(
    original: &str,
    rewrite: &str,
    max_similarity: f64,
) -> Option<(&'static str, String)> {
    if rewrite.trim().is_empty() {
        return Some(("empty", "the rewrite is empty".into()));
    }
    if rp::only_stopwords(rewrite) {
        return Some(("only_stopwords", "only punctuation and stop words".into()));
    }
    let lower = rewrite.to_lowercase();
    if let Some(m) = EVOL_MARKERS.iter().find(|m| lower.contains(*m)) {
        return Some(("leaked_marker", format!("contains {m:?}")));
    }
    if retort_text::heuristics::leaked_markers(rewrite) > 0 {
        return Some((
            "leaked_marker",
            "contains a chat-format or template marker".into(),
        ));
    }
    if retort_text::heuristics::is_refusal(rewrite) {
        return Some(("refusal", "the teacher refused to rewrite".into()));
    }
    if gc::dup_key(original) == gc::dup_key(rewrite) {
        return Some(("no_gain", "identical to the original".into()));
    }
    let sim = retort_text::rouge::rouge_l_f1(original, rewrite);
    if sim >= max_similarity {
        return Some((
            "no_gain",
            format!("ROUGE-L {sim:.3} >= {max_similarity} with the original"),
        ));
    }
    None
}

/// The eliminator for an answer: `Some((reason, detail))` when the evolution must go.
pub(crate) fn eliminate_answer(answer: &str, short_words: usize) -> Option<(&'static str, String)> {
    if answer.trim().is_empty() {
        return Some(("empty_answer", "the answer is empty".into()));
    }
    if rp::only_stopwords(answer) {
        return Some((
            "only_stopwords",
            "the answer is only punctuation and stop words".into(),
        ));
    }
    let n = units(answer);
    let sorry = answer.to_lowercase().contains("sorry") || answer.contains("抱歉");
    if n < short_words && (sorry || retort_text::heuristics::is_refusal(answer)) {
        return Some((
            "refusal",
            format!("a refusal-like answer of {n} words (< {short_words})"),
        ));
    }
    None
}

impl EvolInstruct {
    async fn one(&self, ctx: &StepCtx, r: Record) -> Result<Outcome, StepError> {
        let mut out = Outcome::default();
        let step = ctx.step_id.clone();
        let prompt = r.prompt_text();
        if prompt.trim().is_empty() {
            out.fail(
                &step,
                &r.id,
                "bad_input",
                "the record has no prompt (instruction or user turn)",
                serde_json::to_string(&r).unwrap_or_default(),
            );
            return Ok(out);
        }
        let teacher = ctx.teacher(&self.o.teacher)?;
        let answerer = match &self.o.answer_teacher {
            Some(a) => Some(ctx.teacher(a)?),
            None => None,
        };
        let rs = gc::str_seed(&r.id);
        let mut current = prompt;
        let mut parent = r.id.clone();
        if self.o.keep_original {
            out.records.push(r.clone());
        }
        for round in 0..self.o.rounds as u64 {
            let rid = format!("{}#evol{}", r.id, round + 1);
            let mut rng = gc::rng(ctx.seed, &[rs, round]);
            let method = self
                .o
                .methods
                .choose(&mut rng)
                .expect("methods checked non-empty")
                .clone();
            let (t, vars) = if method == "breadth" {
                (
                    &self.breadth,
                    json!({"instruction": current, "language": self.o.language}),
                )
            } else {
                (
                    &self.depth,
                    json!({"instruction": current, "method": method, "language": self.o.language}),
                )
            };
            let p = gc::render(t, vars)?;
            let req = self.rewrite.request(
                vec![Message::user(p)],
                gc::derive_seed(ctx.seed, &[rs, round, 0]),
                0,
            );
            let reply = match crate::calls::chat(ctx, teacher.as_ref(), req, &rid).await? {
                Ok(x) => x,
                Err(f) => {
                    out.failures.push(f);
                    break;
                }
            };
            if reply.finish_reason == FinishReason::Length {
                out.fail(
                    &step,
                    &rid,
                    "truncated",
                    "the rewrite stopped at max_tokens",
                    reply.content,
                );
                break;
            }
            let rewrite = rp::strip_leading_label(&reply.content, ANSWER_LABELS).to_string();
            let (orig, rw, sim) = (current.clone(), rewrite.clone(), self.o.max_similarity);
            if let Some((why, detail)) = ctx
                .cpu
                .run(move || eliminate_rewrite(&orig, &rw, sim))
                .await
            {
                out.reject(
                    &step,
                    &rid,
                    why,
                    format!("{method}: {detail}"),
                    reply.content,
                );
                continue;
            }
            let mut answer = None;
            if let Some(a) = &answerer {
                let req = self.answer.request(
                    vec![Message::user(rewrite.clone())],
                    gc::derive_seed(ctx.seed, &[rs, round, 1]),
                    0,
                );
                let rep = match crate::calls::chat(ctx, a.as_ref(), req, &rid).await? {
                    Ok(x) => x,
                    Err(mut f) => {
                        f.raw = rewrite;
                        out.failures.push(f);
                        break;
                    }
                };
                if rep.finish_reason == FinishReason::Length {
                    out.fail(
                        &step,
                        &rid,
                        "truncated",
                        "the answer stopped at max_tokens",
                        rep.content,
                    );
                    break;
                }
                if let Some((why, detail)) =
                    eliminate_answer(&rep.content, self.o.short_answer_words)
                {
                    out.reject(
                        &step,
                        &rid,
                        why,
                        format!("{method}: {detail}"),
                        format!("{rewrite}\n\n---\n\n{}", rep.content),
                    );
                    continue;
                }
                answer = Some(rep.content.trim().to_string());
            }
            let mut labels = BTreeMap::new();
            labels.insert("evol_method".to_string(), method.clone());
            labels.insert("evol_round".to_string(), (round + 1).to_string());
            labels.insert(
                "language".to_string(),
                retort_text::heuristics::detect_language(&rewrite).to_string(),
            );
            let rec = Record {
                id: content_id(&[&parent, &rewrite, answer.as_deref().unwrap_or("")]),
                instruction: Some(rewrite.clone()),
                output: answer,
                labels,
                provenance: Provenance {
                    step: step.clone(),
                    teacher: Some(self.o.teacher.clone()),
                    template: Some(t.name.clone()),
                    parents: vec![parent.clone()],
                    seeds: gc::root_seeds(&r),
                },
                ..Default::default()
            };
            parent = rec.id.clone();
            current = rewrite;
            out.records.push(rec);
        }
        Ok(out)
    }
}

#[async_trait]
impl MapStep for EvolInstruct {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let outs =
            crate::calls::run_ordered(batch, self.o.concurrency, |r| self.one(ctx, r)).await?;
        let mut all = Outcome::default();
        for o in outs {
            all.merge(o);
        }
        Ok(all.into_batch())
    }
}

crate::call_step!(EvolInstruct, |s| s.o.concurrency);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eliminator_rules() {
        let o = "Sort the list of numbers 3, 1, 2 in ascending order.";
        assert_eq!(eliminate_rewrite(o, "", 0.9).unwrap().0, "empty");
        assert_eq!(
            eliminate_rewrite(o, "The... and, of?", 0.9).unwrap().0,
            "only_stopwords"
        );
        assert_eq!(
            eliminate_rewrite(o, "Rewritten prompt: sort it", 0.9)
                .unwrap()
                .0,
            "leaked_marker"
        );
        assert_eq!(
            eliminate_rewrite(o, "<|im_start|>Sort numbers", 0.9)
                .unwrap()
                .0,
            "leaked_marker"
        );
        assert_eq!(
            eliminate_rewrite(o, "As an AI language model, I cannot do that.", 0.9)
                .unwrap()
                .0,
            "refusal"
        );
        assert_eq!(
            eliminate_rewrite(
                o,
                "sort the list of numbers 3, 1, 2 in ascending order",
                0.9
            )
            .unwrap()
            .0,
            "no_gain"
        );
        assert_eq!(
            eliminate_rewrite(
                o,
                "Please sort the list of numbers 3, 1, 2 in ascending order.",
                0.9
            )
            .unwrap()
            .0,
            "no_gain"
        );
        assert!(eliminate_rewrite(
            o,
            "Sort the list 3, 1, 2 in ascending order with insertion sort, showing the list after every pass.",
            0.9
        )
        .is_none());
        // CJK rewrites are compared per character.
        assert_eq!(
            eliminate_rewrite("把这个句子翻译成英文。", "请把这个句子翻译成英文。", 0.9)
                .unwrap()
                .0,
            "no_gain"
        );
    }

    #[test]
    fn answer_rules() {
        assert_eq!(eliminate_answer("  ", 80).unwrap().0, "empty_answer");
        assert_eq!(
            eliminate_answer("Sorry, I don't know.", 80).unwrap().0,
            "refusal"
        );
        assert_eq!(
            eliminate_answer("抱歉，我无法回答这个问题。", 80)
                .unwrap()
                .0,
            "refusal"
        );
        let long = format!("Sorry for the long answer. {}", "word ".repeat(100));
        assert!(
            eliminate_answer(&long, 80).is_none(),
            "long answers that say sorry stay"
        );
        assert!(eliminate_answer("Insertion sort: [1, 2, 3].", 80).is_none());
    }
}
