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
//! structured = false                    # send a JSON schema in response_format; replies must match it
//! concurrency = 16                      # judge calls in flight per batch
//! temperature = 0.0
//! max_tokens = 512
//! calibration = "auto"                  # check the quality judge first; "on", "off", a path
//! min_calibration_accuracy = 0.8        # stop when it does worse (default: warn below 0.8)
//! ```
//!
//! Calibration ([`crate::calibration`]) asks the quality rubric about good and flawed
//! answers before the run's records. When the step finishes it checks what it gave:
//! a column where one value covers more than [`COLLAPSE_SHARE`] of the records, quality
//! scores that rank-correlate with answer length beyond [`LENGTH_BIAS`], and answers
//! mostly in another language than their prompts are warnings in the run summary.
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
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retort_core::{Failure, Record};
use retort_teacher::{ChatResponse, FinishReason, TeacherError};
use serde::{Deserialize, Serialize};

use crate::api::*;
use crate::calibration::{self, Calibrator};
use crate::calls::judge_request;
use crate::judge_parse::{parse_score, read_reply, JudgeFormat, ParseError, Scale, ScoreReply};
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
    /// Send a JSON schema in `response_format` (for endpoints with structured output);
    /// a reply that does not match it is a `schema` failure.
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
    /// Check the quality judge on a calibration set first: `"auto"` (default), `"on"`,
    /// `"off"` or a JSONL path (see [`crate::calibration`]).
    #[serde(default)]
    pub calibration: calibration::Mode,
    /// Stop the step when the calibration accuracy is below this share.
    pub min_calibration_accuracy: Option<f64>,
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
    /// `structured = true`: the schema sent with every rating and held against its reply.
    format: Option<JudgeFormat>,
    calibrator: Calibrator,
    /// Per aspect, every score given in this run with the answer's length in chars: for
    /// the collapse and length-bias checks when the step finishes.
    given: Mutex<BTreeMap<Aspect, Vec<(f64, f64)>>>,
    tally: crate::annotate::LangTally,
}

/// A score column where one value covers more than this share of rows has collapsed.
pub const COLLAPSE_SHARE: f64 = 0.8;
/// A judge whose quality scores rank-correlate with answer length beyond this (either
/// way) is judging length.
pub const LENGTH_BIAS: f64 = 0.5;
/// Fewer scores than this say nothing about collapse or bias.
const CHECK_MIN_ROWS: usize = 20;

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
    let calibrator = match calibrator(&opts, &ctx.base_dir) {
        Ok(c) => Some(c),
        Err(e) => {
            errs.push(e);
            None
        }
    };
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
        step: Arc::new(ScoreStep::assemble(
            opts,
            templates,
            calibrator.expect("no build errors"),
        )),
        writes,
        files,
        estimates,
    })
}

/// Rough prompt size of a template plus `record_tokens` of record text (4 chars/token).
pub(crate) fn prompt_estimate(t: &Template, record_tokens: u64) -> u64 {
    (t.source().len() as u64).div_ceil(4) + record_tokens
}

/// The step's calibration: of the quality rubric, the only aspect a good and a flawed
/// answer tell apart.
fn calibrator(opts: &ScoreOptions, base: &std::path::Path) -> Result<Calibrator, String> {
    if !opts.aspects.contains(&Aspect::Quality) {
        return match (&opts.calibration, opts.min_calibration_accuracy) {
            (calibration::Mode::Auto | calibration::Mode::Off, None) => Ok(Calibrator::off()),
            _ => Err("calibration checks the quality judge, and `aspects` has no \"quality\"; add it or remove `calibration`/`min_calibration_accuracy`".into()),
        };
    }
    Calibrator::new(
        opts.calibration.clone(),
        opts.min_calibration_accuracy,
        opts.aspects.len() as f64,
        base,
    )
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
        let calibrator = calibrator(&opts, base_dir)?;
        Ok(ScoreStep::assemble(opts, templates, calibrator))
    }

    /// The step from its checked parts: the one place `build` and `new` share, so what
    /// the options imply (the structured format) is derived once.
    fn assemble(
        opts: ScoreOptions,
        templates: Vec<(Aspect, Template)>,
        calibrator: Calibrator,
    ) -> ScoreStep {
        ScoreStep {
            format: opts.structured.then(|| JudgeFormat::score(opts.scale)),
            opts,
            templates,
            calibrator,
            given: Mutex::default(),
            tally: Default::default(),
        }
    }

    /// The variables of `aspect`'s template for `r`; `None` when it asks for quality
    /// and the record has no response to rate.
    fn vars(
        &self,
        r: &Record,
        aspect: Aspect,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let mut v = record_vars(r);
        v.insert("scale_min".into(), self.opts.scale.min.into());
        v.insert("scale_max".into(), self.opts.scale.max.into());
        if aspect == Aspect::Quality {
            let resp = r.response_text().filter(|s| !s.trim().is_empty())?;
            let chat = r.chat();
            let assistant_turns = chat.iter().filter(|m| m.role == "assistant").count();
            v.insert("response".into(), resp.into());
            v.insert(
                "messages".into(),
                serde_json::to_value(&chat).unwrap_or_default(),
            );
            v.insert("multi_turn".into(), (assistant_turns > 1).into());
        }
        Some(v)
    }

    /// How calibration asks this step's quality rubric about an answer.
    fn asker(&self) -> calibration::Asker<'_> {
        let tpl = self
            .templates
            .iter()
            .find(|(a, _)| *a == Aspect::Quality)
            .map(|(_, t)| t);
        calibration::Asker::Pointwise {
            prompts: Box::new(move |rec: &Record, answer: &str| {
                let tpl = tpl.expect("calibration runs only with a quality rubric");
                let mut r = rec.clone();
                r.output = Some(answer.to_string());
                let v = self
                    .vars(&r, Aspect::Quality)
                    .expect("calibration answers are not empty");
                Ok(vec![tpl.render(&v).map_err(StepError::Config)?])
            }),
            scale: self.opts.scale,
        }
    }

    fn settings(&self) -> calibration::Settings {
        calibration::Settings {
            temperature: self.opts.temperature,
            max_tokens: self.opts.max_tokens,
            format: self.format.clone(),
            concurrency: self.opts.concurrency,
        }
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
        for _ in &batch {
            self.calibrator
                .before_record(ctx, &teacher, || self.asker(), || self.settings())
                .await?;
        }
        let format = self.format.as_ref().map(|f| f.response_format.clone());
        let mut failures = Vec::new();
        // Records that cannot be rated at all (no response to rate) fail up front.
        let mut usable = vec![true; batch.len()];
        let mut jobs: Vec<(usize, Aspect, String)> = Vec::new();
        for (i, r) in batch.iter().enumerate() {
            for (aspect, tpl) in &self.templates {
                let Some(v) = self.vars(r, *aspect) else {
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
                Ok(reply) => match read_reply(&reply.content, self.format.as_ref(), |t| {
                    parse_score(t, self.opts.scale)
                }) {
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
            let len = r.response_text().map_or(0, |t| t.chars().count()) as f64;
            for (aspect, s) in scores {
                self.given
                    .lock()
                    .unwrap()
                    .entry(aspect)
                    .or_default()
                    .push((s.score, len));
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
            self.tally.count(&records);
        }
        Ok(Batch {
            records,
            failures,
            ..Default::default()
        })
    }

    async fn finish(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.tally.check(ctx);
        let teacher = ctx.teacher(&self.opts.teacher)?;
        self.calibrator
            .at_finish(ctx, &teacher, || self.asker(), || self.settings())
            .await?;
        let given = self.given.lock().unwrap();
        for (aspect, rows) in given.iter() {
            let scores: Vec<f64> = rows.iter().map(|r| r.0).collect();
            let name = aspect.name();
            check_collapse(ctx, &format!("scores.{name}"), &scores);
            if *aspect == Aspect::Quality {
                let lens: Vec<f64> = rows.iter().map(|r| r.1).collect();
                check_length_bias(ctx, "scores.quality", &scores, &lens);
            }
        }
        Ok(())
    }
}

/// Record how `column` rank-correlates with answer length as `<column>_length_correlation`
/// and warn beyond [`LENGTH_BIAS`].
pub fn check_length_bias(ctx: &StepCtx, column: &str, scores: &[f64], lens: &[f64]) {
    if scores.len() < CHECK_MIN_ROWS {
        return;
    }
    let Some(rho) = calibration::spearman(scores, lens) else {
        return;
    };
    ctx.stats.set_metric(
        &format!("{}_length_correlation", column.replace('.', "_")),
        rho,
    );
    if rho.abs() > LENGTH_BIAS {
        ctx.stats.warn(format!(
            "{column} rank-correlates with answer length (Spearman {rho:.2} over {} records): the judge may be rating length, not quality",
            scores.len()
        ));
    }
}

/// Warn when one value covers more than [`COLLAPSE_SHARE`] of a score column (a judge
/// that says 8 to everything), and record the share as `<column>_top_share`.
pub fn check_collapse(ctx: &StepCtx, column: &str, scores: &[f64]) {
    if scores.len() < CHECK_MIN_ROWS {
        return;
    }
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for s in scores {
        *counts.entry(s.to_bits()).or_default() += 1;
    }
    let (bits, top) = counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .expect("not empty");
    let share = top as f64 / scores.len() as f64;
    ctx.stats
        .set_metric(&format!("{}_top_share", column.replace('.', "_")), share);
    if share > COLLAPSE_SHARE {
        ctx.stats.warn(format!(
            "{column} has collapsed: {:.0}% of {} records got {} — the judge does not tell them apart; try a stronger judge or another rubric",
            share * 100.0,
            scores.len(),
            f64::from_bits(bits)
        ));
    }
}
