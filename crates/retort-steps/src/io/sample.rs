//! `sample` (seeded uniform sample of `n` rows or a `fraction`) and `limit` (the first
//! `n` rows). Rows left out are not failures: they are simply not selected.

use std::sync::Arc;

use async_trait::async_trait;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retort_core::Record;
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// Options of a `sample` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleOptions {
    /// Exact number of rows to keep (reservoir sampling; memory holds `n` rows).
    #[serde(default)]
    pub n: Option<u64>,
    /// Keep each row with this probability (streaming).
    #[serde(default)]
    pub fraction: Option<f64>,
    /// Overrides the pipeline seed for this step.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// Options of a `limit` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOptions {
    /// Keep the first `n` rows.
    pub n: u64,
}

/// Build a `sample` step.
pub fn build_sample(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: SampleOptions = parse_options(spec)?;
    match (o.n, o.fraction) {
        (Some(n), None) => Ok(Built::new(
            Arc::new(Sample::N { n, seed: o.seed }),
            format!("a seeded sample of {n} rows"),
        )),
        (None, Some(f)) if f > 0.0 && f <= 1.0 => Ok(Built::new(
            Arc::new(Sample::Fraction { f, seed: o.seed }),
            format!("each row kept with probability {f}"),
        )),
        (None, Some(f)) => Err(vec![format!("`fraction` must be in (0, 1], got {f}")]),
        _ => Err(vec![
            "`sample` needs exactly one of `n` or `fraction`; hint: n = 1000".into(),
        ]),
    }
}

/// Build a `limit` step.
pub fn build_limit(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: LimitOptions = parse_options(spec)?;
    Ok(Built::new(
        Arc::new(Limit { n: o.n }),
        format!("the first {} rows", o.n),
    ))
}

/// The `sample` step.
pub enum Sample {
    N { n: u64, seed: Option<u64> },
    Fraction { f: f64, seed: Option<u64> },
}

#[async_trait]
impl Step for Sample {
    fn batch_size(&self) -> usize {
        CPU_BATCH
    }

    fn shape(&self) -> Shape {
        match self {
            Sample::N { .. } => Shape::WholeTable,
            Sample::Fraction { .. } => Shape::Streaming,
        }
    }

    async fn run(
        &self,
        ctx: &StepCtx,
        mut inputs: Inputs,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        match self {
            Sample::N { n, seed } => {
                // Reservoir sampling (Algorithm R), then restore input order so the
                // sample reads like the source.
                let mut rng = ChaCha8Rng::seed_from_u64(seed.unwrap_or(ctx.seed));
                let n = *n as usize;
                let mut res: Vec<(u64, Record)> = Vec::with_capacity(n.min(1 << 20));
                let mut seen: u64 = 0;
                while let Some(b) = inputs.next_batch().await? {
                    ctx.stats.add_done(b.len() as u64);
                    for r in b {
                        if res.len() < n {
                            res.push((seen, r));
                        } else {
                            let j = rng.random_range(0..=seen);
                            if (j as usize) < n {
                                res[j as usize] = (seen, r);
                            }
                        }
                        seen += 1;
                    }
                }
                res.sort_by_key(|(i, _)| *i);
                out.commit(Batch {
                    records: res.into_iter().map(|(_, r)| r).collect(),
                    consumed: seen,
                    ..Default::default()
                })
                .await
            }
            Sample::Fraction { f, seed } => {
                // One RNG stream per batch index keeps a resumed run's choices identical.
                let mut idx = out.consumed();
                while let Some(b) = inputs.next_batch().await? {
                    let n = b.len() as u64;
                    let records = b
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| {
                            let mut rng = ChaCha8Rng::seed_from_u64(
                                seed.unwrap_or(ctx.seed)
                                    ^ (idx + *i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                            );
                            rng.random::<f64>() < *f
                        })
                        .map(|(_, r)| r)
                        .collect();
                    idx += n;
                    ctx.stats.add_done(n);
                    out.commit(Batch {
                        records,
                        consumed: n,
                        ..Default::default()
                    })
                    .await?;
                }
                Ok(())
            }
        }
    }
}

/// The `limit` step.
pub struct Limit {
    n: u64,
}

#[async_trait]
impl Step for Limit {
    fn batch_size(&self) -> usize {
        CPU_BATCH
    }

    fn shape(&self) -> Shape {
        Shape::Streaming
    }

    async fn run(
        &self,
        ctx: &StepCtx,
        mut inputs: Inputs,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        let mut kept = out.consumed().min(self.n);
        while kept < self.n {
            let Some(mut b) = inputs.next_batch().await? else {
                break;
            };
            let take = ((self.n - kept) as usize).min(b.len());
            b.truncate(take);
            kept += take as u64;
            ctx.stats.add_done(take as u64);
            out.commit(Batch {
                consumed: take as u64,
                records: b,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    fn rows(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                id: format!("r{i}"),
                instruction: Some(format!("task {i}")),
                ..Default::default()
            })
            .collect()
    }

    #[tokio::test]
    async fn sample_n_is_seeded_and_exact() {
        let ctx = test_ctx("s", Default::default(), None);
        let mut a = MemSink::default();
        let mut b = MemSink::default();
        let s = Sample::N { n: 10, seed: None };
        s.run(&ctx, inputs_from(rows(1000), 64), &mut a)
            .await
            .unwrap();
        s.run(&ctx, inputs_from(rows(1000), 128), &mut b)
            .await
            .unwrap();
        assert_eq!(a.records().len(), 10);
        assert_eq!(a.records(), b.records());
        let ids: std::collections::BTreeSet<_> = a.records().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids.len(), 10);
    }

    #[tokio::test]
    async fn limit_stops_at_n() {
        let ctx = test_ctx("l", Default::default(), None);
        let mut out = MemSink::default();
        Limit { n: 25 }
            .run(&ctx, inputs_from(rows(100), 10), &mut out)
            .await
            .unwrap();
        let r = out.records();
        assert_eq!(r.len(), 25);
        assert_eq!(r[24].id, "r24");
    }
}
