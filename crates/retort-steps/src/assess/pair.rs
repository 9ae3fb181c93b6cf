//! `pair`: builds DPO preference pairs from the judged candidates of each record.
//!
//! ```toml
//! [[step]]
//! id = "pairs"
//! kind = "pair"
//! after = ["judged"]
//! strategy = "best_vs_worst"   # default; "best_vs_random_lower", "all_pairs"
//! min_margin = 0.0             # default; pairs with chosen − rejected < min_margin dropped
//! min_chosen_score = 7.0       # optional; pairs whose chosen scores lower are dropped
//! ```
//!
//! - `best_vs_worst`: the top-scored candidate against the lowest-scored one.
//! - `best_vs_random_lower`: the top-scored candidate against one drawn at random among
//!   the candidates that score lower by at least `min_margin` (seeded by the pipeline
//!   seed, the step id and the record id, so reruns and resumes draw the same one).
//! - `all_pairs`: every pair of candidates with different scores, higher one chosen.
//!
//! Among equal top scores the earlier candidate is taken (candidates keep the order
//! `respond` wrote them in). Nothing is silently dropped: equal scores are rejections
//! with reason `tie`, a margin below `min_margin` is `margin`, a chosen score below
//! `min_chosen_score` is `chosen_score`, fewer than two candidates is
//! `too_few_candidates`. A candidate with no score is a `bad_input` failure (run `judge`
//! first).
//!
//! Each output record has `messages` = the prompt turns, `pair` = chosen/rejected as
//! one-message assistant lists (each with its candidate's reasoning trace, if any) with
//! models, scores, margin and the judge's rationale,
//! `labels.prompt_id` = sha256 (hex) of the prompt (see [`prompt_id`]), and
//! `labels.chosen_teacher` / `labels.rejected_teacher`. Its id is
//! `<record id>-<chosen index>v<rejected index>`; `candidates` and `output` are cleared.

use std::sync::Arc;

use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retort_core::{Candidate, Failure, Message, Pair, Record, Rejection};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// How pairs are chosen among a record's candidates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    BestVsWorst,
    BestVsRandomLower,
    AllPairs,
}

/// Options of the `pair` step.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairOptions {
    /// Default `best_vs_worst`.
    #[serde(default)]
    pub strategy: Strategy,
    /// Smallest accepted `chosen_score − rejected_score`. Default 0 (any strict
    /// difference; equal scores are always ties).
    #[serde(default)]
    pub min_margin: f64,
    /// Smallest accepted chosen score. Default none.
    pub min_chosen_score: Option<f64>,
}

/// The built `pair` step.
pub struct PairStep {
    opts: PairOptions,
}

impl PairStep {
    /// A pair step with these options.
    pub fn new(opts: PairOptions) -> Self {
        PairStep { opts }
    }
}

/// Build `pair` from its spec.
pub fn build(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let opts: PairOptions = parse_options(spec)?;
    if opts.min_margin.is_nan() || opts.min_margin < 0.0 {
        return Err(vec![format!(
            "`min_margin` must be 0 or more, got {}",
            opts.min_margin
        )]);
    }
    let writes = format!(
        "preference pairs ({:?}, min_margin {}{}): messages = prompt, pair.{{chosen, rejected, scores, margin}}, labels.prompt_id",
        opts.strategy,
        opts.min_margin,
        opts.min_chosen_score
            .map(|s| format!(", min_chosen_score {s}"))
            .unwrap_or_default()
    );
    Ok(Built::new(Arc::new(PairStep { opts }), writes))
}

crate::map_step!(PairStep);

/// sha256 (hex) identifying a prompt: of the user text for a single user turn (TRL's
/// standard `prompt` string), else of the JSON list of `{role, content}` turns, so two
/// conversations that share only their first turn get different ids.
pub fn prompt_id(prompt: &[Message]) -> String {
    let bytes = match prompt {
        [m] if m.role == "user" => m.content.clone().into_bytes(),
        turns => serde_json::to_vec(turns).expect("messages serialise"),
    };
    hex::encode(Sha256::digest(&bytes))
}

/// One planned pair: candidate indices (chosen, rejected).
type Planned = (usize, usize);

/// Why a planned pair or a record produced nothing.
#[derive(Debug, PartialEq)]
pub(crate) struct Drop {
    reason: &'static str,
    detail: String,
}

/// Pick pairs among `scores` by `opts`; drops carry their reason. `rng` is used only by
/// `best_vs_random_lower`.
pub(crate) fn plan(
    opts: &PairOptions,
    scores: &[f64],
    rng: &mut impl Rng,
) -> Vec<Result<Planned, Drop>> {
    let n = scores.len();
    if n < 2 {
        return vec![Err(Drop {
            reason: "too_few_candidates",
            detail: format!("{n} candidate(s); a pair needs two"),
        })];
    }
    // The first of equal maxima / minima, so ties resolve to `respond`'s order.
    let best = (0..n).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
    let worst = (0..n).fold(0, |w, i| if scores[i] < scores[w] { i } else { w });
    let candidates: Vec<Planned> = match opts.strategy {
        Strategy::BestVsWorst => vec![(best, worst)],
        Strategy::BestVsRandomLower => {
            let lower: Vec<usize> = (0..n)
                .filter(|&i| {
                    scores[i] < scores[best] && scores[best] - scores[i] >= opts.min_margin
                })
                .collect();
            if lower.is_empty() {
                // Report why: everyone tied with the best, or only small margins.
                vec![(best, worst)]
            } else {
                vec![(best, lower[rng.random_range(0..lower.len())])]
            }
        }
        Strategy::AllPairs => {
            let mut v = Vec::new();
            for i in 0..n {
                for j in i + 1..n {
                    if scores[j] > scores[i] {
                        v.push((j, i));
                    } else {
                        v.push((i, j));
                    }
                }
            }
            v
        }
    };
    candidates
        .into_iter()
        .map(|(c, r)| {
            let margin = scores[c] - scores[r];
            if margin == 0.0 || c == r {
                Err(Drop {
                    reason: "tie",
                    detail: format!("candidates {c} and {r} both score {}", scores[c]),
                })
            } else if margin < opts.min_margin {
                Err(Drop {
                    reason: "margin",
                    detail: format!(
                        "candidate {c} ({}) vs {r} ({}): margin {margin} < min_margin {}",
                        scores[c], scores[r], opts.min_margin
                    ),
                })
            } else if opts.min_chosen_score.is_some_and(|m| scores[c] < m) {
                Err(Drop {
                    reason: "chosen_score",
                    detail: format!(
                        "chosen candidate {c} scores {} < min_chosen_score {}",
                        scores[c],
                        opts.min_chosen_score.unwrap_or_default()
                    ),
                })
            } else {
                Ok((c, r))
            }
        })
        .collect()
}

fn rationale(chosen: &Candidate, rejected: &Candidate) -> Option<String> {
    match (&chosen.rationale, &rejected.rationale) {
        (None, None) => None,
        (Some(c), None) => Some(format!("chosen: {c}")),
        (None, Some(r)) => Some(format!("rejected: {r}")),
        (Some(c), Some(r)) => Some(format!("chosen: {c}\n\nrejected: {r}")),
    }
}

fn record_seed(step_seed: u64, record_id: &str) -> u64 {
    let h = Sha256::digest(record_id.as_bytes());
    step_seed ^ u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

#[async_trait]
impl MapStep for PairStep {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let mut out = Batch::default();
        for r in batch {
            let unscored: Vec<usize> = (0..r.candidates.len())
                .filter(|&i| r.candidates[i].score.is_none_or(|s| !s.is_finite()))
                .collect();
            if !unscored.is_empty() {
                out.failures.push(Failure {
                    step: ctx.step_id.clone(),
                    record_id: r.id.clone(),
                    class: "bad_input".into(),
                    status: None,
                    message: format!(
                        "candidate(s) {unscored:?} have no score; put a `judge` step before `pair`"
                    ),
                    raw: r.prompt_text(),
                });
                continue;
            }
            let scores: Vec<f64> = r.candidates.iter().filter_map(|c| c.score).collect();
            let mut rng = ChaCha8Rng::seed_from_u64(record_seed(ctx.seed, &r.id));
            let prompt = r.prompt_messages();
            let pid = prompt_id(&prompt);
            for planned in plan(&self.opts, &scores, &mut rng) {
                match planned {
                    Err(d) => out.rejections.push(Rejection {
                        step: ctx.step_id.clone(),
                        record_id: r.id.clone(),
                        reason: d.reason.into(),
                        detail: d.detail,
                        text: r.prompt_text(),
                    }),
                    Ok((c, j)) => {
                        let (ch, rj) = (&r.candidates[c], &r.candidates[j]);
                        let mut p = r.clone();
                        p.id = format!("{}-{c}v{j}", r.id);
                        p.messages = prompt.clone();
                        p.output = None;
                        p.candidates = Vec::new();
                        p.pair = Some(Pair {
                            chosen: vec![ch.turn()],
                            rejected: vec![rj.turn()],
                            chosen_model: ch.model.clone(),
                            rejected_model: rj.model.clone(),
                            chosen_score: scores[c],
                            rejected_score: scores[j],
                            margin: scores[c] - scores[j],
                            rationale: rationale(ch, rj),
                        });
                        p.labels.insert("prompt_id".into(), pid.clone());
                        p.labels.insert("chosen_teacher".into(), ch.teacher.clone());
                        p.labels
                            .insert("rejected_teacher".into(), rj.teacher.clone());
                        p.provenance.step = ctx.step_id.clone();
                        p.provenance.parents = vec![r.id.clone()];
                        out.records.push(p);
                    }
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        strategy: Strategy,
        min_margin: f64,
        min_chosen: Option<f64>,
        s: &[f64],
    ) -> Vec<Result<Planned, &'static str>> {
        let opts = PairOptions {
            strategy,
            min_margin,
            min_chosen_score: min_chosen,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        plan(&opts, s, &mut rng)
            .into_iter()
            .map(|r| r.map_err(|d| d.reason))
            .collect()
    }

    #[test]
    fn best_vs_worst_table() {
        use Strategy::BestVsWorst as S;
        assert_eq!(run(S, 0.0, None, &[3.0, 9.0, 5.0]), vec![Ok((1, 0))]);
        // First of equal maxima wins; first of equal minima loses.
        assert_eq!(run(S, 0.0, None, &[9.0, 2.0, 9.0, 2.0]), vec![Ok((0, 1))]);
        assert_eq!(run(S, 0.0, None, &[5.0, 5.0]), vec![Err("tie")]);
        assert_eq!(run(S, 2.0, None, &[5.0, 6.5]), vec![Err("margin")]);
        assert_eq!(run(S, 2.0, None, &[5.0, 7.0]), vec![Ok((1, 0))]);
        assert_eq!(
            run(S, 0.0, Some(8.0), &[5.0, 7.0]),
            vec![Err("chosen_score")]
        );
        assert_eq!(run(S, 0.0, Some(7.0), &[5.0, 7.0]), vec![Ok((1, 0))]);
        assert_eq!(run(S, 0.0, None, &[5.0]), vec![Err("too_few_candidates")]);
    }

    #[test]
    fn all_pairs_table() {
        let got = run(Strategy::AllPairs, 1.0, None, &[8.0, 4.0, 8.0, 7.5]);
        assert_eq!(
            got,
            vec![
                Ok((0, 1)),    // 8 vs 4
                Err("tie"),    // 8 vs 8
                Err("margin"), // 8 vs 7.5
                Ok((2, 1)),    // 4 vs 8, higher chosen
                Ok((3, 1)),    // 4 vs 7.5
                Err("margin"), // 8 vs 7.5
            ]
        );
    }

    #[test]
    fn random_lower_respects_margin_and_is_seeded() {
        // Only candidates 1 and 3 are lower by ≥ 2.
        let scores = [9.0, 3.0, 8.0, 6.0, 9.0];
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let opts = PairOptions {
                strategy: Strategy::BestVsRandomLower,
                min_margin: 2.0,
                min_chosen_score: None,
            };
            let a = plan(&opts, &scores, &mut ChaCha8Rng::seed_from_u64(seed));
            let b = plan(&opts, &scores, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(a, b, "same seed, same draw");
            let (c, r) = a[0].as_ref().unwrap();
            assert_eq!(*c, 0);
            seen.insert(*r);
        }
        assert_eq!(seen, [1, 3].into_iter().collect());
        assert_eq!(
            run(Strategy::BestVsRandomLower, 0.0, None, &[4.0, 4.0]),
            vec![Err("tie")]
        );
        assert_eq!(
            run(Strategy::BestVsRandomLower, 3.0, None, &[4.0, 5.0]),
            vec![Err("margin")]
        );
    }

    #[test]
    fn prompt_id_is_sha256_of_single_user_text() {
        assert_eq!(
            prompt_id(&[Message::user("abc")]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let multi = [
            Message::user("abc"),
            Message::assistant("x"),
            Message::user("y"),
        ];
        assert_ne!(prompt_id(&multi), prompt_id(&[Message::user("abc")]));
    }
}
