//! `judge`: rates the candidate answers of each record (`Record.candidates`, written by
//! `respond`) so `pair` can build preference pairs.
//!
//! ```toml
//! [[step]]
//! id = "judged"
//! kind = "judge"
//! after = ["answers"]
//! teacher = "judge"
//! mode = "pointwise"          # default; or "pairwise"
//! scale = "1-10"              # pointwise only; default "1-10"
//! aspects = []                # pointwise only; any of "instruction_following",
//!                             # "honesty", "truthfulness", "helpfulness" (UltraFeedback)
//! template = "judge_pointwise"   # default per mode; not allowed together with `aspects`
//! structured = false          # send a JSON schema in response_format; replies must match it
//! concurrency = 16
//! temperature = 0.0
//! max_tokens = 512
//! ```
//!
//! **Pointwise**: one call per candidate (per aspect when `aspects` is set). The
//! candidate's `score` is its rating, or the mean of its aspect ratings; `rationale` is
//! the judge's reason (one line per aspect, `aspect (score): reason`). Per-aspect scores
//! are also written to the record as `scores.judge_<aspect>_<candidate index>`.
//!
//! **Pairwise**: every pair of candidates is asked twice, with the positions swapped
//! (A/B then B/A). A candidate wins a pair only when both orders prefer it; any other
//! combination (including a judge that always answers "A") is a tie, so position bias
//! cannot pick winners. A candidate's `score` is its win rate over the pairs it is in,
//! ties counting half: in `[0, 1]`, 0.5 for everyone when nothing is decided. `n`
//! candidates cost `n·(n−1)` calls. The fraction of pairs whose two orders agreed is
//! reported as the step metric `position_consistency`.
//!
//! A record with no candidates (or fewer than two in pairwise mode) is rejected with
//! reason `too_few_candidates`. When any call for a record fails or its reply cannot be
//! parsed, the record goes to the failures table (raw reply kept) and is not passed on:
//! a half-judged record would let `pair` compare a judged candidate with an unjudged one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Record, Rejection};
use serde::{Deserialize, Serialize};

use crate::api::*;
use crate::calibration::{self, Calibrator};
use crate::calls::judge_request;
use crate::judge_parse::{parse_score, parse_verdict, read_reply, JudgeFormat, Scale, Verdict};
use crate::score::{
    default_concurrency, default_max_tokens, parse_failure, prompt_estimate, record_vars,
    teacher_failure,
};
use crate::spec::{parse_options, BuildCtx, Built, Estimate, StepSpec};
use crate::templates::Template;

/// How candidates are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeMode {
    /// Each candidate rated on its own against a rubric.
    #[default]
    Pointwise,
    /// Candidates compared two at a time, both orders.
    Pairwise,
}

/// UltraFeedback's rating aspects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UfAspect {
    InstructionFollowing,
    Honesty,
    Truthfulness,
    Helpfulness,
}

impl UfAspect {
    /// Name as written in the pipeline file and in column names.
    pub fn name(&self) -> &'static str {
        match self {
            UfAspect::InstructionFollowing => "instruction_following",
            UfAspect::Honesty => "honesty",
            UfAspect::Truthfulness => "truthfulness",
            UfAspect::Helpfulness => "helpfulness",
        }
    }
    /// Built-in rubric template for this aspect.
    pub fn template(&self) -> String {
        format!("judge_ultrafeedback_{}", self.name())
    }
}

/// Options of the `judge` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeOptions {
    /// Judge teacher name (required).
    pub teacher: String,
    /// `pointwise` (default) or `pairwise`.
    #[serde(default)]
    pub mode: JudgeMode,
    /// Pointwise rating scale. Default `"1-10"`.
    pub scale: Option<Scale>,
    /// UltraFeedback aspects to rate separately (pointwise only). Default none: one
    /// general rubric.
    #[serde(default)]
    pub aspects: Vec<UfAspect>,
    /// Template (built-in name or `.jinja` path). Default `judge_pointwise` or
    /// `judge_pairwise`.
    pub template: Option<String>,
    /// Send a JSON schema in `response_format`; a reply that does not match it is a
    /// `schema` failure. Default false.
    #[serde(default)]
    pub structured: bool,
    /// Judge calls in flight at once within a batch. Default 16.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Sampling temperature. Default 0.
    #[serde(default)]
    pub temperature: f32,
    /// Completion limit per call. Default 512.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Check the judge on a calibration set first: `"auto"` (default), `"on"`, `"off"`
    /// or a JSONL path (see [`crate::calibration`]).
    #[serde(default)]
    pub calibration: calibration::Mode,
    /// Stop the step when the calibration accuracy is below this share.
    pub min_calibration_accuracy: Option<f64>,
}

/// The built `judge` step.
pub struct JudgeStep {
    opts: JudgeOptions,
    scale: Scale,
    /// Pointwise: one template per aspect (`None` = the general rubric). Pairwise: one.
    templates: Vec<(Option<UfAspect>, Template)>,
    /// `structured = true`: the schema sent with every request and held against its reply.
    format: Option<JudgeFormat>,
    pairs_total: AtomicU64,
    pairs_consistent: AtomicU64,
    calibrator: Calibrator,
    /// Pointwise: every candidate score given in this run with the candidate's length in
    /// chars, for the collapse and length-bias checks when the step finishes.
    given: std::sync::Mutex<Vec<(f64, f64)>>,
}

/// Candidates assumed per record for `retort plan` (the usual two teachers or samples).
const PLAN_CANDIDATES: f64 = 2.0;

fn check(opts: &JudgeOptions) -> Vec<String> {
    let mut errs = Vec::new();
    if opts.concurrency == 0 {
        errs.push("`concurrency` must be at least 1".into());
    }
    if opts.mode == JudgeMode::Pairwise {
        if !opts.aspects.is_empty() {
            errs.push("`aspects` applies to mode = \"pointwise\" only".into());
        }
        if opts.scale.is_some() {
            errs.push(
                "`scale` applies to mode = \"pointwise\" only (pairwise scores are win rates in 0–1)"
                    .into(),
            );
        }
    }
    if !opts.aspects.is_empty() && opts.template.is_some() {
        errs.push(
            "set either `aspects` (built-in UltraFeedback rubrics) or `template`, not both".into(),
        );
    }
    errs
}

fn load_templates(
    opts: &JudgeOptions,
    base: &std::path::Path,
) -> Result<Vec<(Option<UfAspect>, Template)>, Vec<String>> {
    let wanted: Vec<(Option<UfAspect>, String)> = if opts.aspects.is_empty() {
        let default = match opts.mode {
            JudgeMode::Pointwise => "judge_pointwise",
            JudgeMode::Pairwise => "judge_pairwise",
        };
        vec![(None, opts.template.clone().unwrap_or(default.into()))]
    } else {
        let mut a = opts.aspects.clone();
        a.sort();
        a.dedup();
        a.into_iter().map(|a| (Some(a), a.template())).collect()
    };
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (a, name) in wanted {
        match Template::load(&name, base) {
            Ok(t) => out.push((a, t)),
            Err(e) => errs.push(e),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Build `judge` from its spec.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let opts: JudgeOptions = parse_options(spec)?;
    let mut errs = check(&opts);
    if let Err(e) = ctx.check_teacher(&opts.teacher) {
        errs.push(e);
    }
    let templates = match load_templates(&opts, &ctx.base_dir) {
        Ok(t) => t,
        Err(e) => {
            errs.extend(e);
            vec![]
        }
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    let calls = match opts.mode {
        JudgeMode::Pointwise => PLAN_CANDIDATES,
        JudgeMode::Pairwise => PLAN_CANDIDATES * (PLAN_CANDIDATES - 1.0),
    };
    let estimates = templates
        .iter()
        .map(|(_, t)| Estimate {
            teacher: opts.teacher.clone(),
            calls_per_input: calls,
            fixed_calls: 0,
            prompt_tokens: prompt_estimate(t, 600),
            max_tokens: opts.max_tokens as u64,
        })
        .collect();
    let files = templates.iter().filter_map(|(_, t)| t.file()).collect();
    let writes = match opts.mode {
        JudgeMode::Pointwise => format!(
            "candidates[].score ({} scale{}) by `{}` (plan assumes 2 candidates per record)",
            opts.scale.unwrap_or_default(),
            if opts.aspects.is_empty() {
                String::new()
            } else {
                format!(
                    ", mean of {}",
                    opts.aspects
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            opts.teacher
        ),
        JudgeMode::Pairwise => format!(
            "candidates[].score (position-swapped pairwise win rate) by `{}` (plan assumes 2 candidates per record)",
            opts.teacher
        ),
    };
    let step = JudgeStep::with_templates(opts, templates, &ctx.base_dir).map_err(|e| vec![e])?;
    Ok(Built {
        step: Arc::new(step),
        writes,
        files,
        estimates,
    })
}

impl JudgeStep {
    /// Build directly from options (tests and library users), loading the templates.
    pub fn new(opts: JudgeOptions, base_dir: &std::path::Path) -> Result<Self, Vec<String>> {
        let errs = check(&opts);
        if !errs.is_empty() {
            return Err(errs);
        }
        let templates = load_templates(&opts, base_dir)?;
        Self::with_templates(opts, templates, base_dir).map_err(|e| vec![e])
    }

    fn with_templates(
        opts: JudgeOptions,
        templates: Vec<(Option<UfAspect>, Template)>,
        base_dir: &std::path::Path,
    ) -> Result<Self, String> {
        let calls_per_record = match opts.mode {
            JudgeMode::Pointwise => PLAN_CANDIDATES * templates.len() as f64,
            JudgeMode::Pairwise => PLAN_CANDIDATES * (PLAN_CANDIDATES - 1.0),
        };
        let calibrator = Calibrator::new(
            opts.calibration.clone(),
            opts.min_calibration_accuracy,
            calls_per_record,
            base_dir,
        )?;
        let scale = opts.scale.unwrap_or_default();
        Ok(JudgeStep {
            format: opts.structured.then(|| match opts.mode {
                JudgeMode::Pointwise => JudgeFormat::score(scale),
                JudgeMode::Pairwise => JudgeFormat::verdict(),
            }),
            scale,
            opts,
            templates,
            pairs_total: AtomicU64::new(0),
            pairs_consistent: AtomicU64::new(0),
            calibrator,
            given: Default::default(),
        })
    }

    /// The pointwise prompts for one answer to `r`: one per template.
    fn pointwise_prompts(
        &self,
        r: &Record,
        answer: &str,
    ) -> Result<Vec<(Option<UfAspect>, String)>, StepError> {
        let mut v = record_vars(r);
        v.insert("response".into(), answer.into());
        v.insert("scale_min".into(), self.scale.min.into());
        v.insert("scale_max".into(), self.scale.max.into());
        self.templates
            .iter()
            .map(|(aspect, tpl)| Ok((*aspect, tpl.render(&v).map_err(StepError::Config)?)))
            .collect()
    }

    /// The pairwise prompt showing `a` as response A and `b` as response B.
    fn pairwise_prompt(&self, r: &Record, a: &str, b: &str) -> Result<String, StepError> {
        let mut v = record_vars(r);
        v.insert("response_a".into(), a.into());
        v.insert("response_b".into(), b.into());
        self.templates[0].1.render(&v).map_err(StepError::Config)
    }

    /// How calibration asks this step's judge, in its own mode and templates.
    fn asker(&self) -> calibration::Asker<'_> {
        match self.opts.mode {
            JudgeMode::Pointwise => calibration::Asker::Pointwise {
                prompts: Box::new(move |r: &Record, answer: &str| {
                    Ok(self
                        .pointwise_prompts(r, answer)?
                        .into_iter()
                        .map(|(_, p)| p)
                        .collect())
                }),
                scale: self.scale,
            },
            JudgeMode::Pairwise => calibration::Asker::Pairwise {
                prompt: Box::new(move |r: &Record, a: &str, b: &str| self.pairwise_prompt(r, a, b)),
            },
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

    fn min_candidates(&self) -> usize {
        match self.opts.mode {
            JudgeMode::Pointwise => 1,
            JudgeMode::Pairwise => 2,
        }
    }
}

crate::call_step!(JudgeStep, |s| s.opts.concurrency);

/// One judge call: which record, and what it asks.
struct Job {
    rec: usize,
    /// Pointwise: (candidate, aspect). Pairwise: (candidate in position A, candidate in B).
    a: usize,
    b: usize,
    aspect: Option<UfAspect>,
    prompt: String,
}

/// How a pair of candidates came out after both orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairOutcome {
    /// The first candidate of the pair won in both orders.
    First,
    /// The second candidate won in both orders.
    Second,
    /// The orders disagreed, or the judge called a tie.
    Tie,
}

/// Combine the verdicts of a pair asked as (A = first, B = second) and then swapped
/// (A = second, B = first). Only agreement decides a winner.
pub fn combine_swapped(first_as_a: Verdict, second_as_a: Verdict) -> PairOutcome {
    match (first_as_a, second_as_a) {
        (Verdict::A, Verdict::B) => PairOutcome::First,
        (Verdict::B, Verdict::A) => PairOutcome::Second,
        _ => PairOutcome::Tie,
    }
}

#[async_trait]
impl MapStep for JudgeStep {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let teacher = ctx.teacher(&self.opts.teacher)?;
        let mut rejections = Vec::new();
        let mut jobs = Vec::new();
        let mut eligible = vec![true; batch.len()];
        for (i, r) in batch.iter().enumerate() {
            let n = r.candidates.len();
            if n < self.min_candidates() {
                rejections.push(Rejection {
                    step: ctx.step_id.clone(),
                    record_id: r.id.clone(),
                    reason: "too_few_candidates".into(),
                    detail: format!(
                        "{n} candidate(s); {:?} judging needs at least {}",
                        self.opts.mode,
                        self.min_candidates()
                    ),
                    text: r.prompt_text(),
                });
                eligible[i] = false;
                continue;
            }
            self.calibrator
                .before_record(ctx, &teacher, || self.asker(), || self.settings())
                .await?;
            match self.opts.mode {
                JudgeMode::Pointwise => {
                    for (c, cand) in r.candidates.iter().enumerate() {
                        for (aspect, prompt) in self.pointwise_prompts(r, &cand.content)? {
                            jobs.push(Job {
                                rec: i,
                                a: c,
                                b: c,
                                aspect,
                                prompt,
                            });
                        }
                    }
                }
                JudgeMode::Pairwise => {
                    for x in 0..n {
                        for y in x + 1..n {
                            for (a, b) in [(x, y), (y, x)] {
                                let prompt = self.pairwise_prompt(
                                    r,
                                    &r.candidates[a].content,
                                    &r.candidates[b].content,
                                )?;
                                jobs.push(Job {
                                    rec: i,
                                    a,
                                    b,
                                    aspect: None,
                                    prompt,
                                });
                            }
                        }
                    }
                }
            }
        }

        let format = self.format.as_ref().map(|f| f.response_format.clone());
        let reqs = jobs
            .iter()
            .map(|j| {
                judge_request(
                    j.prompt.clone(),
                    self.opts.temperature,
                    self.opts.max_tokens,
                    format.clone(),
                )
            })
            .collect();
        let answers = crate::calls::chat_all(ctx, &teacher, reqs, self.opts.concurrency).await?;

        let mut failures = Vec::new();
        let mut ok = eligible;
        // Pointwise: (rec, cand) → [(aspect, score, rationale)].
        let mut rated: BTreeMap<(usize, usize), Vec<(Option<UfAspect>, f64, Option<String>)>> =
            BTreeMap::new();
        // Pairwise: (rec, a, b) → (verdict, rationale).
        let mut verdicts: BTreeMap<(usize, usize, usize), (Verdict, Option<String>)> =
            BTreeMap::new();
        for (j, answer) in jobs.iter().zip(answers) {
            let id = &batch[j.rec].id;
            let what = match self.opts.mode {
                JudgeMode::Pointwise => format!(
                    "candidate {}{}",
                    j.a,
                    j.aspect
                        .map(|a| format!(" {}", a.name()))
                        .unwrap_or_default()
                ),
                JudgeMode::Pairwise => format!("candidates {} (A) vs {} (B)", j.a, j.b),
            };
            let reply = match answer {
                Ok(r) => r,
                Err(e) => {
                    failures.push(teacher_failure(ctx, id, &what, &e, &j.prompt));
                    ok[j.rec] = false;
                    continue;
                }
            };
            match self.opts.mode {
                JudgeMode::Pointwise => {
                    match read_reply(&reply.content, self.format.as_ref(), |t| {
                        parse_score(t, self.scale)
                    }) {
                        Ok(s) => rated.entry((j.rec, j.a)).or_default().push((
                            j.aspect,
                            s.score,
                            s.rationale,
                        )),
                        Err(e) => {
                            failures.push(parse_failure(ctx, id, &what, &e, &reply));
                            ok[j.rec] = false;
                        }
                    }
                }
                JudgeMode::Pairwise => {
                    match read_reply(&reply.content, self.format.as_ref(), parse_verdict) {
                        Ok(v) => {
                            verdicts.insert((j.rec, j.a, j.b), (v.verdict, v.rationale));
                        }
                        Err(e) => {
                            failures.push(parse_failure(ctx, id, &what, &e, &reply));
                            ok[j.rec] = false;
                        }
                    }
                }
            }
        }

        let mut records = Vec::new();
        for (i, mut r) in batch.into_iter().enumerate() {
            if !ok[i] {
                continue;
            }
            match self.opts.mode {
                JudgeMode::Pointwise => {
                    for c in 0..r.candidates.len() {
                        let ratings = rated.remove(&(i, c)).unwrap_or_default();
                        let mean = ratings.iter().map(|x| x.1).sum::<f64>() / ratings.len() as f64;
                        let rationale = if ratings.len() == 1 && ratings[0].0.is_none() {
                            ratings[0].2.clone()
                        } else {
                            let lines: Vec<String> = ratings
                                .iter()
                                .map(|(a, s, why)| {
                                    let name = a.map(|a| a.name()).unwrap_or("overall");
                                    r.scores.insert(format!("judge_{name}_{c}"), *s);
                                    format!("{name} ({s}): {}", why.as_deref().unwrap_or(""))
                                })
                                .collect();
                            Some(lines.join("\n"))
                        };
                        self.given
                            .lock()
                            .unwrap()
                            .push((mean, r.candidates[c].content.chars().count() as f64));
                        r.candidates[c].score = Some(mean);
                        r.candidates[c].rationale = rationale;
                    }
                }
                JudgeMode::Pairwise => {
                    let n = r.candidates.len();
                    let mut points = vec![0.0f64; n];
                    let mut notes: Vec<Vec<String>> = vec![Vec::new(); n];
                    for x in 0..n {
                        for y in x + 1..n {
                            let (v1, why1) =
                                verdicts.remove(&(i, x, y)).expect("both orders judged");
                            let (v2, why2) =
                                verdicts.remove(&(i, y, x)).expect("both orders judged");
                            let outcome = combine_swapped(v1, v2);
                            self.pairs_total.fetch_add(1, Ordering::Relaxed);
                            if outcome != PairOutcome::Tie
                                || (v1 == Verdict::Tie && v2 == Verdict::Tie)
                            {
                                self.pairs_consistent.fetch_add(1, Ordering::Relaxed);
                            }
                            let (px, py, word_x, word_y) = match outcome {
                                PairOutcome::First => (1.0, 0.0, "won", "lost"),
                                PairOutcome::Second => (0.0, 1.0, "lost", "won"),
                                PairOutcome::Tie => (0.5, 0.5, "tie", "tie"),
                            };
                            points[x] += px;
                            points[y] += py;
                            let why = format!(
                                "[as A] {} [as B] {}",
                                why1.as_deref().unwrap_or("-"),
                                why2.as_deref().unwrap_or("-")
                            );
                            notes[x]
                                .push(format!("vs candidate {y}: {word_x} ({v1:?}/{v2:?}) {why}"));
                            notes[y]
                                .push(format!("vs candidate {x}: {word_y} ({v1:?}/{v2:?}) {why}"));
                        }
                    }
                    for c in 0..n {
                        r.candidates[c].score = Some(points[c] / (n - 1) as f64);
                        r.candidates[c].rationale = Some(notes[c].join("\n"));
                    }
                }
            }
            records.push(r);
        }
        let total = self.pairs_total.load(Ordering::Relaxed);
        if total > 0 {
            ctx.stats.set_metric(
                "position_consistency",
                self.pairs_consistent.load(Ordering::Relaxed) as f64 / total as f64,
            );
        }
        Ok(Batch {
            records,
            failures,
            rejections,
            ..Default::default()
        })
    }

    async fn finish(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let teacher = ctx.teacher(&self.opts.teacher)?;
        self.calibrator
            .at_finish(ctx, &teacher, || self.asker(), || self.settings())
            .await?;
        let given = self.given.lock().unwrap();
        let scores: Vec<f64> = given.iter().map(|g| g.0).collect();
        crate::score::check_collapse(ctx, "candidates.score", &scores);
        let lens: Vec<f64> = given.iter().map(|g| g.1).collect();
        crate::score::check_length_bias(ctx, "candidates.score", &scores, &lens);
        Ok(())
    }
}
