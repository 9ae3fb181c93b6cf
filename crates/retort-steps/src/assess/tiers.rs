//! `tiers`: stratifies records by difficulty and quality into named tiers (e.g. the
//! easy → hard phases PhasedSFT trains in), written as `labels.tier`. One file per tier
//! is the export step's `split_by = "tier"`.
//!
//! Two modes:
//!
//! ```toml
//! # Explicit bounds, checked in order; the first tier a record fits wins. Bounds are
//! # inclusive; a missing bound is open.
//! [[step]]
//! kind = "tiers"
//! tiers = [
//!   { name = "easy",   max_difficulty = 3 },
//!   { name = "medium", min_difficulty = 4, max_difficulty = 6 },
//!   { name = "hard",   min_difficulty = 7, min_quality = 6 },
//! ]
//!
//! # Quantiles (the default when `tiers` is not given): the difficulty range is cut at
//! # equal-count quantiles into as many tiers as names, from easiest to hardest.
//! [[step]]
//! kind = "tiers"
//! quantiles = ["easy", "medium", "hard"]   # default
//! min_quality = 5                          # optional, both modes
//! ```
//!
//! `difficulty` and `quality` name the score columns (default `difficulty`, `quality`,
//! as written by `score`). In quantile mode the cut points are the values at ranks
//! `⌈k·N/T⌉` of the sorted difficulties, and a record equal to a cut point goes to the
//! lower tier, so equal scores always share a tier (with a coarse scale the tiers are
//! then not of equal size). Quantile mode needs the whole table; explicit mode streams.
//!
//! Records fitting no tier are rejections with reason `no_tier`; below `min_quality`,
//! reason `quality`. A record missing a score column the configuration uses is a
//! `bad_input` failure (run `score` first).

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Failure, Record, Rejection};
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// One named tier with inclusive bounds; `None` is open.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierSpec {
    pub name: String,
    pub min_difficulty: Option<f64>,
    pub max_difficulty: Option<f64>,
    pub min_quality: Option<f64>,
    pub max_quality: Option<f64>,
}

impl TierSpec {
    fn uses_difficulty(&self) -> bool {
        self.min_difficulty.is_some() || self.max_difficulty.is_some()
    }
    fn uses_quality(&self) -> bool {
        self.min_quality.is_some() || self.max_quality.is_some()
    }
    fn fits(&self, d: Option<f64>, q: Option<f64>) -> bool {
        let within = |x: Option<f64>, lo: Option<f64>, hi: Option<f64>| match x {
            Some(x) => lo.is_none_or(|lo| x >= lo) && hi.is_none_or(|hi| x <= hi),
            None => lo.is_none() && hi.is_none(),
        };
        within(d, self.min_difficulty, self.max_difficulty)
            && within(q, self.min_quality, self.max_quality)
    }
}

/// Options of the `tiers` step.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TiersOptions {
    /// Explicit tiers, checked in order. Default: quantile mode.
    #[serde(default)]
    pub tiers: Vec<TierSpec>,
    /// Tier names for quantile mode, easiest first. Default `["easy", "medium", "hard"]`.
    pub quantiles: Option<Vec<String>>,
    /// Score column with the difficulty. Default `difficulty`.
    pub difficulty: Option<String>,
    /// Score column with the quality. Default `quality`.
    pub quality: Option<String>,
    /// Records with a lower quality are rejected (reason `quality`). Default none.
    pub min_quality: Option<f64>,
}

/// The built `tiers` step.
pub struct TiersStep {
    opts: TiersOptions,
    difficulty: String,
    quality: String,
    quantiles: Vec<String>,
}

/// Build `tiers` from its spec.
pub fn build(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let opts: TiersOptions = parse_options(spec)?;
    let step = TiersStep::new(opts)?;
    let writes = if step.opts.tiers.is_empty() {
        format!(
            "labels.tier ∈ {{{}}} by quantiles of scores.{}",
            step.quantiles.join(", "),
            step.difficulty
        )
    } else {
        format!(
            "labels.tier ∈ {{{}}}",
            step.opts
                .tiers
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Ok(Built::new(Arc::new(step), writes))
}

impl TiersStep {
    /// Check the options and build the step.
    pub fn new(opts: TiersOptions) -> Result<Self, Vec<String>> {
        let mut errs = Vec::new();
        if !opts.tiers.is_empty() && opts.quantiles.is_some() {
            errs.push("set either `tiers` (explicit bounds) or `quantiles`, not both".into());
        }
        let quantiles = opts
            .quantiles
            .clone()
            .unwrap_or_else(|| vec!["easy".into(), "medium".into(), "hard".into()]);
        if opts.tiers.is_empty() && quantiles.is_empty() {
            errs.push("`quantiles` is empty; give at least one tier name".into());
        }
        let mut names: Vec<&str> = if opts.tiers.is_empty() {
            quantiles.iter().map(String::as_str).collect()
        } else {
            opts.tiers.iter().map(|t| t.name.as_str()).collect()
        };
        names.sort();
        for w in names.windows(2) {
            if w[0] == w[1] {
                errs.push(format!("tier name `{}` is used twice", w[0]));
            }
        }
        for t in &opts.tiers {
            for (what, lo, hi) in [
                ("difficulty", t.min_difficulty, t.max_difficulty),
                ("quality", t.min_quality, t.max_quality),
            ] {
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    if lo > hi {
                        errs.push(format!(
                            "tier `{}`: min_{what} {lo} is above max_{what} {hi}",
                            t.name
                        ));
                    }
                }
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(TiersStep {
            difficulty: opts
                .difficulty
                .clone()
                .unwrap_or_else(|| "difficulty".into()),
            quality: opts.quality.clone().unwrap_or_else(|| "quality".into()),
            quantiles,
            opts,
        })
    }

    fn needs_difficulty(&self) -> bool {
        self.opts.tiers.is_empty() || self.opts.tiers.iter().any(TierSpec::uses_difficulty)
    }

    fn needs_quality(&self) -> bool {
        self.opts.min_quality.is_some() || self.opts.tiers.iter().any(TierSpec::uses_quality)
    }

    /// Read the score columns the configuration uses; a missing one is a failure.
    fn columns(&self, r: &Record) -> Result<(Option<f64>, Option<f64>), String> {
        let get = |col: &str, needed: bool| -> Result<Option<f64>, String> {
            match (r.scores.get(col), needed) {
                (Some(v), _) if v.is_finite() => Ok(Some(*v)),
                (_, false) => Ok(None),
                _ => Err(format!(
                    "record has no scores.{col}; put a `score` step rating it before `tiers`"
                )),
            }
        };
        Ok((
            get(&self.difficulty, self.needs_difficulty())?,
            get(&self.quality, self.needs_quality())?,
        ))
    }

    /// Split records into those with the needed columns and `bad_input` failures.
    #[allow(clippy::type_complexity)]
    fn read(
        &self,
        ctx: &StepCtx,
        batch: Vec<Record>,
    ) -> (Vec<(Record, Option<f64>, Option<f64>)>, Vec<Failure>) {
        let mut rows = Vec::new();
        let mut failures = Vec::new();
        for r in batch {
            match self.columns(&r) {
                Ok((d, q)) => rows.push((r, d, q)),
                Err(message) => failures.push(Failure {
                    step: ctx.step_id.clone(),
                    record_id: r.id.clone(),
                    class: "bad_input".into(),
                    status: None,
                    message,
                    raw: r.prompt_text(),
                }),
            }
        }
        (rows, failures)
    }

    fn reject(ctx: &StepCtx, r: &Record, reason: &str, detail: String) -> Rejection {
        Rejection {
            step: ctx.step_id.clone(),
            record_id: r.id.clone(),
            reason: reason.into(),
            detail,
            text: r.prompt_text(),
        }
    }

    /// Label `batch` given the quantile cut points (quantile mode) or the explicit tiers.
    fn label(
        &self,
        ctx: &StepCtx,
        rows: Vec<(Record, Option<f64>, Option<f64>)>,
        cuts: &[f64],
    ) -> Batch {
        let mut out = Batch::default();
        for (mut r, d, q) in rows {
            if let (Some(min), Some(q)) = (self.opts.min_quality, q) {
                if q < min {
                    out.rejections.push(Self::reject(
                        ctx,
                        &r,
                        "quality",
                        format!("{} {q} < min_quality {min}", self.quality),
                    ));
                    continue;
                }
            }
            let tier = if self.opts.tiers.is_empty() {
                let d = d.expect("difficulty is needed in quantile mode");
                Some(self.quantiles[tier_index(cuts, d)].clone())
            } else {
                self.opts
                    .tiers
                    .iter()
                    .find(|t| t.fits(d, q))
                    .map(|t| t.name.clone())
            };
            match tier {
                Some(t) => {
                    r.labels.insert("tier".into(), t);
                    out.records.push(r);
                }
                None => {
                    let detail = format!(
                        "{} {d:?}, {} {q:?} fits no tier",
                        self.difficulty, self.quality
                    );
                    out.rejections
                        .push(Self::reject(ctx, &r, "no_tier", detail));
                }
            }
        }
        out
    }
}

/// Cut points splitting `values` into `tiers` equal-count groups: the value at rank
/// `⌈k·N/T⌉` (1-based) for k = 1..T.
pub fn quantile_cuts(values: &[f64], tiers: usize) -> Vec<f64> {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return vec![];
    }
    (1..tiers)
        .map(|k| v[((k * n).div_ceil(tiers)).max(1) - 1])
        .collect()
}

/// Tier index of `x`: how many cut points it is strictly above.
pub fn tier_index(cuts: &[f64], x: f64) -> usize {
    cuts.iter().filter(|&&c| x > c).count()
}

#[async_trait]
impl MapStep for TiersStep {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let (rows, failures) = self.read(ctx, batch);
        let mut b = self.label(ctx, rows, &[]);
        b.failures = failures;
        Ok(b)
    }
}

#[async_trait]
impl Step for TiersStep {
    fn shape(&self) -> Shape {
        if self.opts.tiers.is_empty() {
            Shape::WholeTable
        } else {
            Shape::Streaming
        }
    }

    async fn run(
        &self,
        ctx: &StepCtx,
        inputs: Inputs,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        if !self.opts.tiers.is_empty() {
            return run_map(self, ctx, inputs, out).await;
        }
        let all = inputs.read_all().await?;
        let consumed = all.len() as u64;
        let (rows, failures) = self.read(ctx, all);
        let ds: Vec<f64> = rows.iter().filter_map(|(_, d, _)| *d).collect();
        let cuts = quantile_cuts(&ds, self.quantiles.len());
        for (k, c) in cuts.iter().enumerate() {
            ctx.stats.set_metric(&format!("tier_cut_{}", k + 1), *c);
        }
        let mut b = self.label(ctx, rows, &cuts);
        for name in &self.quantiles {
            let n = b
                .records
                .iter()
                .filter(|r| r.labels.get("tier") == Some(name))
                .count();
            ctx.stats.set_metric(&format!("tier_{name}"), n as f64);
        }
        b.failures = failures;
        b.consumed = consumed;
        ctx.stats.count_rejections(&b.rejections);
        ctx.stats.add_done(consumed);
        out.commit(b).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_cuts_equal_counts_for_distinct_values() {
        let v: Vec<f64> = (1..=9).map(|x| x as f64).collect();
        let cuts = quantile_cuts(&v, 3);
        assert_eq!(cuts, vec![3.0, 6.0]);
        let tiers: Vec<usize> = v.iter().map(|&x| tier_index(&cuts, x)).collect();
        assert_eq!(tiers, vec![0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn equal_scores_share_a_tier_and_boundary_goes_low() {
        // A 1–5 scale: many ties. 10 values, 3 tiers → ranks 4 and 7.
        let v = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 3.0, 4.0, 5.0, 5.0];
        let cuts = quantile_cuts(&v, 3);
        assert_eq!(cuts, vec![3.0, 3.0]);
        assert_eq!(tier_index(&cuts, 3.0), 0);
        assert_eq!(tier_index(&cuts, 3.5), 2);
        assert_eq!(tier_index(&cuts, 1.0), 0);
        assert_eq!(tier_index(&cuts, 5.0), 2);
    }

    #[test]
    fn explicit_bounds_are_inclusive_and_open_when_missing() {
        let t = TierSpec {
            name: "mid".into(),
            min_difficulty: Some(4.0),
            max_difficulty: Some(6.0),
            min_quality: None,
            max_quality: None,
        };
        assert!(t.fits(Some(4.0), None));
        assert!(t.fits(Some(6.0), Some(1.0)));
        assert!(!t.fits(Some(6.01), None));
        assert!(!t.fits(Some(3.99), None));
        assert!(!t.fits(None, None));
    }
}
