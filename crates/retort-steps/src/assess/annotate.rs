//! `annotate`: teacher-free heuristic columns for every record — languages, whether the
//! response is in the prompt's language, lengths, repetition, refusal, leaked template
//! markers.
//!
//! ```toml
//! [[step]]
//! id = "annotated"
//! kind = "annotate"
//! after = ["answers"]
//!
//! [[step]]
//! id = "same_language"
//! kind = "filter"
//! after = ["annotated"]
//! keep = "lang_mismatch == 0"     # also drops rows with no verdict; `!= 1` keeps them
//! ```
//!
//! The columns are `retort_text::heuristics::annotate`'s, written by [`annotate_record`],
//! which `score` (with `heuristics = true`) calls too, so the two steps cannot disagree:
//! labels `language` (prompt) and `response_language`; scores
//! `prompt_language_confidence`, `response_language_confidence`, `lang_mismatch` (0/1,
//! only when both languages are confidently identified), `{prompt,response}_len_chars`,
//! `_len_words`, `_repetition`, `_non_ascii_ratio`, `_leaked_markers` and
//! `response_is_refusal`. A record without a response gets the prompt columns only.
//! Nothing is dropped: every input record is passed on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use rayon::prelude::*;
use retort_core::Record;
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// Options of an `annotate` step: none yet; the table exists so an unknown key is an
/// error rather than silently ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotateOptions {}

/// Build an `annotate` step.
pub fn build(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let _: AnnotateOptions = parse_options(spec)?;
    Ok(Built::new(
        Arc::new(Annotate::default()),
        "labels.{language, response_language}, scores.lang_mismatch and the heuristic columns",
    ))
}

/// Write the heuristic columns of `r` (prompt and final response as
/// [`Record::prompt_text`] and [`Record::response_text`] read them) into its scores and
/// labels, replacing earlier values of the same names. The one place both `annotate`
/// and `score` get them from.
pub fn annotate_record(r: &mut Record) {
    let prompt = r.prompt_text();
    let response = r.response_text();
    let a = retort_text::heuristics::annotate(&prompt, response.as_deref());
    // A record re-annotated after its response changed must not keep a stale verdict.
    r.scores.remove("lang_mismatch");
    r.scores.extend(a.scores);
    r.labels.extend(a.labels);
}

/// Annotate a batch on the CPU pool, records in parallel (language identification is
/// the costly part, a fraction of a millisecond per text).
pub(crate) async fn annotate_all(ctx: &StepCtx, records: Vec<Record>) -> Vec<Record> {
    let cpu = ctx.cpu.clone();
    ctx.cpu
        .run(move || {
            let mut records = records;
            cpu.pool()
                .install(|| records.par_iter_mut().for_each(annotate_record));
            records
        })
        .await
}

/// Answers in another language than their prompt: counted over a step's records, and a
/// warning when they are most of them (a teacher answering English in Spanish).
#[derive(Debug, Default)]
pub(crate) struct LangTally {
    judged: AtomicU64,
    mismatched: AtomicU64,
}

impl LangTally {
    /// A share above this of records with a verdict is warned about.
    const WARN_SHARE: f64 = 0.5;

    pub(crate) fn count(&self, records: &[Record]) {
        for r in records {
            if let Some(m) = r.scores.get("lang_mismatch") {
                self.judged.fetch_add(1, Ordering::Relaxed);
                if *m == 1.0 {
                    self.mismatched.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Records `lang_mismatch_rate` and warns above [`Self::WARN_SHARE`] (over 20+).
    pub(crate) fn check(&self, ctx: &StepCtx) {
        let judged = self.judged.load(Ordering::Relaxed);
        if judged == 0 {
            return;
        }
        let share = self.mismatched.load(Ordering::Relaxed) as f64 / judged as f64;
        ctx.stats.set_metric("lang_mismatch_rate", share);
        if judged >= 20 && share > Self::WARN_SHARE {
            ctx.stats.warn(format!(
                "{:.0}% of {judged} answers are in another language than their prompt — the teacher does not follow the prompt's language; filter with keep = \"lang_mismatch == 0\" or choose another teacher",
                share * 100.0
            ));
        }
    }
}

/// The `annotate` step.
#[derive(Default)]
pub struct Annotate {
    tally: LangTally,
}

#[async_trait]
impl MapStep for Annotate {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let records = annotate_all(ctx, batch).await;
        self.tally.count(&records);
        Ok(Batch {
            records,
            ..Default::default()
        })
    }

    async fn finish(&self, ctx: &StepCtx) -> Result<(), StepError> {
        self.tally.check(ctx);
        Ok(())
    }
}

crate::map_step!(Annotate, 1024);
