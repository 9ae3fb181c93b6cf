//! `score`: an LLM judge rates each record's *quality* (of the response to its
//! instruction, or of a whole chat) and *difficulty* (of the instruction), plus cheap
//! heuristic columns.
//!
//! ```toml
//! [[step]]
//! id = "scored"
//! kind = "score"
//! after = ["answers"]
//! teacher = "judge"
//! aspects = ["quality", "difficulty"]   # default: both
//! scale = "1-10"                        # default; "1-6" (Deita), "1-5" (PhasedSFT), …
//! templates = { quality = "my_rubric.jinja" }   # default: score_quality / score_difficulty
//! heuristics = true                     # default
//! structured = false                    # send a JSON schema in response_format
//! concurrency = 16                      # judge calls in flight per batch
//! temperature = 0.0
//! max_tokens = 512
//! ```
//!
//! Writes `scores.<aspect>` and `labels.<aspect>_rationale` (when the judge gave one).
//! With `heuristics`, also every column of the `annotate` step (languages with their
//! confidences, `lang_mismatch`, lengths, repetition, refusal, leaked markers), written
//! by the same function, [`crate::annotate::annotate_record`].
//!
//! **Only fully scored records are passed on.** When any aspect of a record fails (the
//! call errored, the reply had no readable score, or the score was off the scale) the
//! record goes to the failures table with the judge's raw reply, once per failed aspect,
//! and does not appear in the output: a record is never passed on with a default score.
//! A budget or circuit-breaker error stops the step.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Failure, Message, Record};
use retort_teacher::{ChatRequest, ChatResponse, FinishReason, TeacherError};
use serde::{Deserialize, Serialize};

use crate::api::*;
use crate::judge_parse::{parse_score, ParseError, Scale, ScoreReply};
use crate::spec::{parse_options, BuildCtx, Built, Estimate, StepSpec};
use crate::templates::Template;

/// What the `score` step rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    /// How good the response (or the whole chat) is. Needs a response.
    Quality,
    /// How difficult / complex the instruction is.
    Difficulty,
}

impl Aspect {
    /// Column name (`scores.quality`, `labels.quality_rationale`).
    pub fn name(&self) -> &'static str {
        match self {
            Aspect::Quality => "quality",
            Aspect::Difficulty => "difficulty",
        }
    }

    /// Built-in template for this aspect.
    pub fn default_template(&self) -> &'static str {
        match self {
            Aspect::Quality => "score_quality",
            Aspect::Difficulty => "score_difficulty",
        }
    }
}

/// Options of the `score` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreOptions {
    /// Judge teacher name (required).
    pub teacher: String,
    /// Aspects to rate. Default `["quality", "difficulty"]`.
    #[serde(default = "default_aspects")]
    pub aspects: Vec<Aspect>,
    /// Rating scale. Default `"1-10"`.
    #[serde(default)]
    pub scale: Scale,
    /// Template per aspect (built-in name or `.jinja` path). Default: `score_quality`,
    /// `score_difficulty`.
    #[serde(default)]
    pub templates: BTreeMap<Aspect, String>,
    /// Add the cheap heuristic columns. Default true.
    #[serde(default = "default_true")]
    pub heuristics: bool,
    /// Send a JSON schema in `response_format` (for endpoints with structured output).
    /// Default false: not every OpenAI-compatible server accepts it.
    #[serde(default)]
    pub structured: bool,
    /// Judge calls in flight at once within a batch. Default 16.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Sampling temperature. Default 0 (judges should be repeatable).
    #[serde(default)]
    pub temperature: f32,
    /// Completion limit per judge call. Default 512.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_aspects() -> Vec<Aspect> {
    vec![Aspect::Quality, Aspect::Difficulty]
}
pub(crate) fn default_true() -> bool {
    true
}
pub(crate) fn default_concurrency() -> usize {
    16
}
pub(crate) fn default_max_tokens() -> u32 {
    512
}

/// The built `score` step.
pub struct ScoreStep {
    opts: ScoreOptions,
    templates: Vec<(Aspect, Template)>,
}

/// Build `score` from its spec: parse options, check the teacher, load the templates.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let opts: ScoreOptions = parse_options(spec)?;
    let mut errs = Vec::new();
    if let Err(e) = ctx.check_teacher(&opts.teacher) {
        errs.push(e);
    }
    if opts.aspects.is_empty() {
        errs.push("`aspects` is empty; list at least one of \"quality\", \"difficulty\"".into());
    }
    if opts.concurrency == 0 {
        errs.push("`concurrency` must be at least 1".into());
    }
    for a in opts.templates.keys() {
        if !opts.aspects.contains(a) {
            errs.push(format!(
                "`templates.{}` is set but `{}` is not in `aspects`",
                a.name(),
                a.name()
            ));
        }
    }
    let mut templates = Vec::new();
    let mut aspects = opts.aspects.clone();
    aspects.dedup();
    for a in aspects {
        let name = opts
            .templates
            .get(&a)
            .map(String::as_str)
            .unwrap_or(a.default_template());
        match Template::load(name, &ctx.base_dir) {
            Ok(t) => templates.push((a, t)),
            Err(e) => errs.push(e),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let files = templates.iter().filter_map(|(_, t)| t.file()).collect();
    let estimates = templates
        .iter()
        .map(|(_, t)| Estimate {
            teacher: opts.teacher.clone(),
            calls_per_input: 1.0,
            fixed_calls: 0,
            prompt_tokens: prompt_estimate(t, 300),
            max_tokens: opts.max_tokens as u64,
        })
        .collect();
    let writes = format!(
        "scores.{{{}}} on a {} scale by `{}`{}",
        templates
            .iter()
            .map(|(a, _)| a.name())
            .collect::<Vec<_>>()
            .join(", "),
        opts.scale,
        opts.teacher,
        if opts.heuristics {
            " + the annotate columns (labels.language, scores.lang_mismatch, …)"
        } else {
            ""
        }
    );
    Ok(Built {
        step: Arc::new(ScoreStep { opts, templates }),
        writes,
        files,
        estimates,
    })
}

/// Rough prompt size of a template plus `record_tokens` of record text (4 chars/token).
pub(crate) fn prompt_estimate(t: &Template, record_tokens: u64) -> u64 {
    (t.source().len() as u64).div_ceil(4) + record_tokens
}

impl ScoreStep {
    /// Build directly from options (tests and library users), loading the templates.
    pub fn new(opts: ScoreOptions, base_dir: &std::path::Path) -> Result<Self, String> {
        let mut templates = Vec::new();
        for a in &opts.aspects {
            let name = opts
                .templates
                .get(a)
                .map(String::as_str)
                .unwrap_or(a.default_template());
            templates.push((*a, Template::load(name, base_dir)?));
        }
        Ok(ScoreStep { opts, templates })
    }
}

crate::call_step!(ScoreStep, |s| s.opts.concurrency);

/// The variables every judge template sees for a record.
pub(crate) fn record_vars(r: &Record) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("instruction".into(), r.prompt_text().into());
    m.insert(
        "messages".into(),
        serde_json::to_value(r.prompt_messages()).unwrap_or_default(),
    );
    m
}

/// A judge request: one user turn, deterministic settings.
pub(crate) fn judge_request(
    prompt: String,
    temperature: f32,
    max_tokens: u32,
    response_format: Option<serde_json::Value>,
) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(prompt)],
        temperature: Some(temperature),
        max_tokens: Some(max_tokens),
        response_format,
        ..Default::default()
    }
}

/// A failure row for a permanent teacher fault; `raw` keeps the prompt that was sent.
pub(crate) fn teacher_failure(
    ctx: &StepCtx,
    record_id: &str,
    what: &str,
    e: &TeacherError,
    prompt: &str,
) -> Failure {
    let mut f = crate::calls::failure(&ctx.step_id, record_id, e, prompt);
    f.message = format!("{what}: {}", f.message);
    f
}

/// A failure row for a reply that could not be used; `raw` keeps the reply.
pub(crate) fn parse_failure(
    ctx: &StepCtx,
    record_id: &str,
    what: &str,
    e: &ParseError,
    reply: &ChatResponse,
) -> Failure {
    let cut = if reply.finish_reason == FinishReason::Length {
        " (the reply was cut at max_tokens; raise `max_tokens`)"
    } else {
        ""
    };
    Failure {
        step: ctx.step_id.clone(),
        record_id: record_id.to_string(),
        class: e.class().to_string(),
        status: None,
        message: format!("{what}: {e}{cut}"),
        raw: reply.content.clone(),
    }
}

#[async_trait]
impl MapStep for ScoreStep {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let teacher = ctx.teacher(&self.opts.teacher)?;
        let format = self
            .opts
            .structured
            .then(|| self.opts.scale.response_format());
        let mut failures = Vec::new();
        // Records that cannot be rated at all (no response to rate) fail up front.
        let mut usable = vec![true; batch.len()];
        let mut jobs: Vec<(usize, Aspect, String)> = Vec::new();
        for (i, r) in batch.iter().enumerate() {
            let mut vars = record_vars(r);
            vars.insert("scale_min".into(), self.opts.scale.min.into());
            vars.insert("scale_max".into(), self.opts.scale.max.into());
            let chat = r.chat();
            let response = r.response_text();
            let assistant_turns = chat.iter().filter(|m| m.role == "assistant").count();
            for (aspect, tpl) in &self.templates {
                let mut v = vars.clone();
                if *aspect == Aspect::Quality {
                    let Some(resp) = response.as_deref().filter(|s| !s.trim().is_empty()) else {
                        failures.push(Failure {
                            step: ctx.step_id.clone(),
                            record_id: r.id.clone(),
                            class: "bad_input".into(),
                            status: None,
                            message: "quality: the record has no response to rate (no `output` and no assistant turn)".into(),
                            raw: r.prompt_text(),
                        });
                        usable[i] = false;
                        continue;
                    };
                    v.insert("response".into(), resp.into());
                    v.insert(
                        "messages".into(),
                        serde_json::to_value(&chat).unwrap_or_default(),
                    );
                    v.insert("multi_turn".into(), (assistant_turns > 1).into());
                }
                // A template that fails to render fails for every record: stop the step
                // with the template's message rather than fill the failures table.
                let prompt = tpl.render(&v).map_err(StepError::Config)?;
                jobs.push((i, *aspect, prompt));
            }
        }
        let jobs: Vec<_> = jobs.into_iter().filter(|(i, _, _)| usable[*i]).collect();
        let reqs = jobs
            .iter()
            .map(|(_, _, p)| {
                judge_request(
                    p.clone(),
                    self.opts.temperature,
                    self.opts.max_tokens,
                    format.clone(),
                )
            })
            .collect();
        let answers = crate::calls::chat_all(ctx, &teacher, reqs, self.opts.concurrency).await?;

        let mut got: Vec<BTreeMap<Aspect, ScoreReply>> = vec![BTreeMap::new(); batch.len()];
        let mut ok = usable;
        for ((i, aspect, prompt), answer) in jobs.iter().zip(answers) {
            let id = &batch[*i].id;
            match answer {
                Err(e) => {
                    failures.push(teacher_failure(ctx, id, aspect.name(), &e, prompt));
                    ok[*i] = false;
                }
                Ok(reply) => match parse_score(&reply.content, self.opts.scale) {
                    Ok(s) => {
                        got[*i].insert(*aspect, s);
                    }
                    Err(e) => {
                        failures.push(parse_failure(ctx, id, aspect.name(), &e, &reply));
                        ok[*i] = false;
                    }
                },
            }
        }

        let mut records = Vec::new();
        for ((mut r, scores), ok) in batch.into_iter().zip(got).zip(ok) {
            if !ok {
                continue;
            }
            for (aspect, s) in scores {
                r.scores.insert(aspect.name().to_string(), s.score);
                if let Some(why) = s.rationale {
                    r.labels.insert(format!("{}_rationale", aspect.name()), why);
                }
            }
            records.push(r);
        }
        if self.opts.heuristics {
            // The same columns, by the same code, as the `annotate` step.
            records = crate::annotate::annotate_all(ctx, records).await;
        }
        Ok(Batch {
            records,
            failures,
            ..Default::default()
        })
    }
}
