//! `respond`: answers to each record's prompt from one or more teachers, `samples`
//! answers each — the input to judging and preference pairing.
//!
//! The prompt is the record's chat view without its final assistant turn (so a record
//! that already has an answer is answered afresh), after an optional system prompt
//! (`system` text or `system_template`). Sample `i` of teacher `t` is sent with
//! `sample_index = i` and a seed derived from the step seed, the record id, the teacher
//! and `i`, so the k samples are k distinct cached answers and a re-run is free.
//!
//! Output: the input record with one [`Candidate`] per answer appended; with a single
//! teacher and `samples = 1` the answer is also written to `output` (and as the final
//! assistant turn of `messages` for chat-shaped records). A failed call is a failure
//! row (`<id>#<teacher>#<sample>`); the record keeps its other answers and is dropped
//! only when every call failed. An answer cut at `max_tokens` is a `truncated` failure
//! unless `allow_truncated` is set.
//!
//! A reasoning trace the teacher sends beside its answer (`reasoning_content`,
//! `<think>…</think>`, Anthropic thinking) is kept on the candidate, apart from the
//! content that judges and pairing read; it follows the answer onto the assistant turn
//! and into `pair`'s chosen/rejected sides, where exports decide how to write it.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Candidate, Failure, Message, Record};
use retort_teacher::{ChatResponse, FinishReason};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Batch, MapStep, StepCtx, StepError};
use crate::gen_common::{self as gc, Outcome, Sampling};
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};
use crate::templates::Template;

/// Options of `kind = "respond"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondOptions {
    /// Teachers that answer (each gives `samples` answers).
    #[serde(default)]
    pub teachers: Vec<String>,
    /// Shorthand for one teacher (`teacher = "big"` = `teachers = ["big"]`).
    pub teacher: Option<String>,
    /// Answers per teacher (default 1).
    #[serde(default = "one")]
    pub samples: u32,
    /// System prompt text sent before the prompt.
    pub system: Option<String>,
    /// System prompt template (e.g. `respond_system`), rendered per record with
    /// `prompt` and `language`; exclusive with `system`.
    pub system_template: Option<String>,
    /// Calls in flight (default 16).
    #[serde(default = "gc::default_concurrency")]
    pub concurrency: usize,
    /// Temperature (default 0.7; must be above 0 when `samples > 1`).
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// `max_tokens` per answer (default 2048).
    pub max_tokens: Option<u32>,
    /// Keep answers cut at `max_tokens` instead of failing them (default false).
    #[serde(default)]
    pub allow_truncated: bool,
    /// Reasoning effort for reasoning models (`low`, `medium`, `high`), sent as
    /// `reasoning_effort` where the provider takes it.
    pub reasoning_effort: Option<String>,
    /// Budget of the reasoning trace in tokens (Anthropic extended thinking).
    pub max_reasoning_tokens: Option<u32>,
}

fn one() -> u32 {
    1
}

/// The runnable step.
pub struct Respond {
    o: RespondOptions,
    teachers: Vec<String>,
    sampling: Sampling,
    system_template: Option<Arc<Template>>,
}

/// Build `respond` from its options.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: RespondOptions = parse_options(spec)?;
    let mut errors = vec![];
    let mut files = vec![];
    let teachers: Vec<String> = match (&o.teacher, o.teachers.is_empty()) {
        (Some(t), true) => vec![t.clone()],
        (None, false) => o.teachers.clone(),
        (Some(_), false) => {
            errors.push("set either `teacher` or `teachers`, not both".into());
            vec![]
        }
        (None, true) => {
            errors.push("`teachers` is missing: name at least one teacher that answers".into());
            vec![]
        }
    };
    for (i, t) in teachers.iter().enumerate() {
        gc::check_teacher(ctx, "teachers", t, &mut errors);
        if teachers[..i].contains(t) {
            errors.push(format!(
                "teacher `{t}` is listed twice in `teachers`; use `samples` for several answers"
            ));
        }
    }
    let temperature = gc::check_samples(o.samples, o.temperature, o.concurrency, &mut errors);
    if o.system.is_some() && o.system_template.is_some() {
        errors.push("set either `system` or `system_template`, not both".into());
    }
    let system_template = o
        .system_template
        .as_deref()
        .and_then(|s| gc::load_template(s, "system_template", ctx, &mut files, &mut errors));
    if !errors.is_empty() {
        return Err(errors);
    }
    let sampling = Sampling {
        temperature: Some(temperature),
        top_p: o.top_p,
        max_tokens: Some(o.max_tokens.unwrap_or(2048)),
    };
    let estimates = teachers
        .iter()
        .map(|t| gc::estimate(t, o.samples as f64, 0, 200, sampling))
        .collect();
    let writes = format!(
        "{} candidate answer(s) per record from {}",
        o.samples as usize * teachers.len(),
        teachers.join(", ")
    );
    let step = Respond {
        o,
        teachers,
        sampling,
        system_template,
    };
    let mut built = Built::new(Arc::new(step), writes);
    built.files = files;
    built.estimates = estimates;
    Ok(built)
}

/// One call to make: (record index, teacher index, sample).
type Job = (usize, usize, u32);

impl Respond {
    fn messages(&self, r: &Record) -> Result<Option<Vec<Message>>, StepError> {
        let prompt = r.prompt_messages();
        if prompt.iter().all(|m| m.content.trim().is_empty()) {
            return Ok(None);
        }
        let system = match (&self.o.system, &self.system_template) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(t)) => {
                let text = r.prompt_text();
                let language = retort_text::heuristics::detect_language(&text);
                Some(gc::render(
                    t,
                    json!({"prompt": text, "language": language}),
                )?)
            }
            (None, None) => None,
        };
        let mut m = vec![];
        if let Some(s) = system.filter(|s| !s.trim().is_empty()) {
            if prompt.first().is_none_or(|p| p.role != "system") {
                m.push(Message::system(s.trim()));
            }
        }
        m.extend(prompt);
        Ok(Some(m))
    }
}

#[async_trait]
impl MapStep for Respond {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let step = ctx.step_id.clone();
        let mut out = Outcome::default();
        let mut prompts: Vec<Option<Vec<Message>>> = Vec::with_capacity(batch.len());
        let mut jobs: Vec<Job> = vec![];
        for (i, r) in batch.iter().enumerate() {
            let m = self.messages(r)?;
            if m.is_none() {
                out.fail(
                    &step,
                    &r.id,
                    "bad_input",
                    "the record has no prompt to answer",
                    serde_json::to_string(r).unwrap_or_default(),
                );
            } else {
                for t in 0..self.teachers.len() {
                    for s in 0..self.o.samples {
                        jobs.push((i, t, s));
                    }
                }
            }
            prompts.push(m);
        }
        let teachers = self
            .teachers
            .iter()
            .map(|t| ctx.teacher(t))
            .collect::<Result<Vec<_>, _>>()?;
        let answers: Vec<(Job, Result<ChatResponse, Failure>)> =
            crate::calls::run_ordered(jobs, self.o.concurrency, |(i, t, s)| {
                let r = &batch[i];
                let messages = prompts[i]
                    .clone()
                    .expect("jobs only for records with a prompt");
                let teacher = teachers[t].clone();
                let tname = &self.teachers[t];
                async move {
                    let seed = gc::derive_seed(
                        ctx.seed,
                        &[gc::str_seed(&r.id), gc::str_seed(tname), s as u64],
                    );
                    let mut req = self.sampling.request(messages, seed, s);
                    req.reasoning_effort = self.o.reasoning_effort.clone();
                    req.max_reasoning_tokens = self.o.max_reasoning_tokens;
                    let rid = format!("{}#{tname}#{s}", r.id);
                    let res = crate::calls::chat(ctx, teacher.as_ref(), req, &rid).await?;
                    Ok(((i, t, s), res))
                }
            })
            .await?;
        let mut per_record: Vec<Vec<Candidate>> = vec![vec![]; batch.len()];
        for ((i, t, s), res) in answers {
            let tname = &self.teachers[t];
            let rid = format!("{}#{tname}#{s}", batch[i].id);
            match res {
                Err(mut f) => {
                    f.raw = batch[i].prompt_text();
                    out.failures.push(f);
                }
                Ok(a) if a.finish_reason == FinishReason::Length && !self.o.allow_truncated => {
                    out.fail(
                        &step,
                        &rid,
                        "truncated",
                        "the answer stopped at max_tokens",
                        a.content,
                    );
                }
                Ok(a) if a.content.trim().is_empty() => {
                    out.fail(
                        &step,
                        &rid,
                        "empty",
                        "the teacher returned an empty answer",
                        a.content,
                    );
                }
                Ok(a) => per_record[i].push(Candidate {
                    teacher: tname.clone(),
                    model: a.model,
                    sample: s,
                    content: a.content.trim().to_string(),
                    score: None,
                    rationale: None,
                    reasoning: a.reasoning.filter(|t| !t.trim().is_empty()),
                }),
            }
        }
        let single = self.teachers.len() == 1 && self.o.samples == 1;
        for (r, cands) in batch.into_iter().zip(per_record) {
            if cands.is_empty() {
                continue;
            }
            let mut rec = r;
            if single {
                if !rec.messages.is_empty() {
                    rec.messages = rec.prompt_messages();
                    rec.messages.push(cands[0].turn());
                }
                rec.output = Some(cands[0].content.clone());
            }
            rec.provenance.seeds = gc::root_seeds(&rec);
            rec.provenance.parents = vec![rec.id.clone()];
            rec.provenance.step = step.clone();
            rec.provenance.teacher = single.then(|| self.teachers[0].clone());
            rec.provenance.template = self.system_template.as_ref().map(|t| t.name.clone());
            rec.candidates.extend(cands);
            out.records.push(rec);
        }
        Ok(out.into_batch())
    }
}

crate::call_step!(Respond, |s| s.o.concurrency);
