//! `dedup`: remove duplicates, keeping the best member of each group.
//!
//! Modes: `exact` (normalised hash: NFKC, case-fold, whitespace collapse), `near`
//! (MinHash-LSH over word or CJK character shingles, exact Jaccard check), `semantic`
//! (cosine over the records' embeddings ≥ τ; partitioned exact search by default, HNSW
//! on request). Each removed record goes to the `duplicates` side table with
//! `labels.duplicate_of`, `labels.duplicate_of_text` and `labels.duplicate_text` (the
//! kept and the removed record's compared text), `labels.dedup_mode`,
//! `labels.dedup_text` (the side compared) and `scores.similarity`, and to
//! rejections.parquet (reason `duplicate_<mode>`); the semantic mode also writes its
//! measured recall against exact search to the manifest.
//!
//! The side compared is `text` (any [`TextView`]: `prompt` by default, `response` to
//! find the same answer given to different prompts, `prompt_response` for whole pairs).
//! `semantic` compares embeddings, so it cannot choose its text: the `embed` step before
//! it does (`labels.embedding_text`). A `text` set on a semantic dedup is a check that
//! every record was embedded from that view — a mismatch stops the step with the fix —
//! and without it the step compares whatever was embedded and reports that view.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Record, Rejection};
use retort_vector::dedup::{
    estimate_recall, Method, SemanticDedup, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M,
};
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};
use crate::text_view::{flatten_embeddings, score_key, TextView, EMBEDDING_TEXT_LABEL};

/// Options of a `dedup` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupOptions {
    /// `exact`, `near` or `semantic`.
    pub mode: String,
    /// The side compared. `exact`/`near`: the text hashed (default `prompt`). `semantic`:
    /// the view the embeddings must have been computed from (checked; default: any).
    #[serde(default)]
    pub text: Option<TextView>,
    /// `near`: Jaccard threshold (default 0.8); `semantic`: cosine threshold (default 0.95).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `near`: MinHash permutations.
    #[serde(default = "default_perm")]
    pub num_perm: usize,
    /// `near`: LSH bands (`num_perm` must be a multiple).
    #[serde(default = "default_bands")]
    pub bands: usize,
    /// `semantic`: `partitioned` (default), `hnsw` or `exact`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Score columns that pick the kept member, compared in order, higher wins
    /// (default: quality, then difficulty); ties keep the earlier record.
    #[serde(default = "default_keep_by")]
    pub keep_by: Vec<String>,
    /// `semantic`: rows searched exactly to estimate recall (0 = skip).
    #[serde(default = "default_recall_sample")]
    pub recall_sample: usize,
    /// `method = "hnsw"`: links per node, `M` (default 48).
    #[serde(default)]
    pub hnsw_m: Option<usize>,
    /// `method = "hnsw"`: candidate list while building (default 120; must exceed 2M).
    #[serde(default)]
    pub ef_construction: Option<usize>,
    /// `method = "hnsw"`: candidate list of the queries from unlinked rows (default 96).
    #[serde(default)]
    pub ef_search: Option<usize>,
}

impl DedupOptions {
    /// The semantic search method these options ask for.
    fn search_method(&self) -> Method {
        match self.method.as_str() {
            "hnsw" => Method::Hnsw {
                m: self.hnsw_m.unwrap_or(HNSW_M),
                ef_construction: self.ef_construction.unwrap_or(HNSW_EF_CONSTRUCTION),
                ef_search: self.ef_search.unwrap_or(HNSW_EF_SEARCH),
            },
            "exact" => Method::Exact,
            _ => Method::partitioned(),
        }
    }
}

fn default_perm() -> usize {
    128
}
fn default_bands() -> usize {
    32
}
fn default_method() -> String {
    "partitioned".into()
}
fn default_keep_by() -> Vec<String> {
    vec!["quality".into(), "difficulty".into()]
}
fn default_recall_sample() -> usize {
    1000
}

/// Build a `dedup` step.
pub fn build(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: DedupOptions = parse_options(spec)?;
    let mut errs = Vec::new();
    match o.mode.as_str() {
        "exact" | "near" | "semantic" => {}
        m => errs.push(format!(
            "unknown dedup mode `{m}`; hint: use exact, near or semantic"
        )),
    }
    if !["partitioned", "hnsw", "exact"].contains(&o.method.as_str()) {
        errs.push(format!(
            "unknown method `{}`; hint: use partitioned, hnsw or exact",
            o.method
        ));
    }
    let hnsw_knobs = [
        ("hnsw_m", o.hnsw_m),
        ("ef_construction", o.ef_construction),
        ("ef_search", o.ef_search),
    ];
    for (name, value) in hnsw_knobs {
        match value {
            Some(_) if o.mode != "semantic" || o.method != "hnsw" => errs.push(format!(
                "`{name}` only applies to mode = \"semantic\" with method = \"hnsw\"; hint: remove it or set the method"
            )),
            Some(0) => errs.push(format!("`{name}` must be at least 1")),
            _ => {}
        }
    }
    if let Method::Hnsw {
        m, ef_construction, ..
    } = o.search_method()
    {
        if o.method == "hnsw" && (m > 255 || ef_construction <= 2 * m) {
            errs.push(format!(
                "hnsw: `hnsw_m` = {m} must be at most 255 and `ef_construction` = {ef_construction} must exceed 2 × hnsw_m = {}; \
                 with fewer build candidates than the 2M links a node keeps, hnsw_rs links them all without its \
                 diversity heuristic and recall collapses on clustered data; hint: raise ef_construction",
                2 * m
            ));
        }
    }
    if o.bands == 0 || o.num_perm == 0 || !o.num_perm.is_multiple_of(o.bands) {
        errs.push(format!(
            "`num_perm` ({}) must be a positive multiple of `bands` ({})",
            o.num_perm, o.bands
        ));
    }
    if let Some(t) = o.threshold {
        if !(0.0..=1.0).contains(&t) {
            errs.push(format!("`threshold` must be in [0, 1], got {t}"));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let side = match (o.mode.as_str(), o.text) {
        ("semantic", Some(v)) => format!("embeddings of the {} text", v.name()),
        ("semantic", None) => "embeddings (of whichever text was embedded)".to_string(),
        (_, v) => format!("the {} text", v.unwrap_or_default().name()),
    };
    let writes = format!(
        "records without {} duplicates of {side} (removed ones in steps/{}/duplicates.parquet)",
        o.mode, spec.id
    );
    Ok(Built::new(Arc::new(Dedup { o }), writes))
}

/// The `dedup` step.
pub struct Dedup {
    o: DedupOptions,
}

/// (removed index, kept index, similarity)
type Removal = (usize, usize, f64);

fn best_of(group: &[usize], keys: &[Vec<f64>]) -> usize {
    let mut best = group[0];
    for &i in &group[1..] {
        if keys[i]
            .partial_cmp(&keys[best])
            .is_some_and(|o| o == std::cmp::Ordering::Greater)
        {
            best = i;
        }
    }
    best
}

fn exact_removals(texts: &[String], keys: &[Vec<f64>]) -> Vec<Removal> {
    let mut groups: HashMap<u128, Vec<usize>> = HashMap::new();
    for (i, t) in texts.iter().enumerate() {
        groups
            .entry(retort_text::normalize::exact_key(t))
            .or_default()
            .push(i);
    }
    let mut out = Vec::new();
    for g in groups.values().filter(|g| g.len() > 1) {
        let keep = best_of(g, keys);
        out.extend(g.iter().filter(|i| **i != keep).map(|&i| (i, keep, 1.0)));
    }
    out
}

fn near_removals(
    texts: &[String],
    keys: &[Vec<f64>],
    num_perm: usize,
    bands: usize,
    threshold: f64,
) -> Vec<Removal> {
    let hasher = retort_text::minhash::MinHasher::new(num_perm, 0x5eed);
    let pairs = hasher.near_duplicates(texts, bands, threshold);
    let as_u32: Vec<(u32, u32, f32)> = pairs
        .iter()
        .map(|(a, b, j)| (*a as u32, *b as u32, *j as f32))
        .collect();
    let groups = retort_vector::union_find::groups(texts.len(), &as_u32);
    let mut out = Vec::new();
    for g in groups {
        let g: Vec<usize> = g.into_iter().map(|i| i as usize).collect();
        let keep = best_of(&g, keys);
        let ks = hasher.shingles(&texts[keep]);
        for &i in g.iter().filter(|i| **i != keep) {
            let sim = retort_text::minhash::jaccard(&hasher.shingles(&texts[i]), &ks);
            out.push((i, keep, sim));
        }
    }
    out
}

/// The side a dedup compared: a text view, or (semantic, records embedded before the
/// embed step labelled its vectors) embeddings of an unrecorded text.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Side {
    View(TextView),
    UnlabelledEmbedding,
}

impl Side {
    /// What `labels.dedup_text` says.
    fn name(self) -> &'static str {
        match self {
            Side::View(v) => v.name(),
            Side::UnlabelledEmbedding => "embedding",
        }
    }

    /// The text shown for a record (rejections, `duplicate_of_text`): the compared view,
    /// or the prompt when the embedded text is unknown.
    fn text(self, r: &Record) -> String {
        match self {
            Side::View(v) => v.text(r),
            Side::UnlabelledEmbedding => r.prompt_text(),
        }
    }
}

/// The view the records' embeddings were computed from (`labels.embedding_text`),
/// checked against `want` (the step's `text`). Every record must carry the same view;
/// records with no label at all are accepted only when `text` is not set.
fn embedded_side(
    records: &[Record],
    want: Option<TextView>,
    step: &str,
) -> Result<Side, StepError> {
    let mut seen: Option<(&str, &str)> = None;
    let mut unlabelled: Option<&str> = None;
    for r in records {
        match r.labels.get(EMBEDDING_TEXT_LABEL) {
            None => unlabelled = unlabelled.or(Some(&r.id)),
            Some(v) => match seen {
                None => seen = Some((v, &r.id)),
                Some((first, id)) if first != v => {
                    return Err(StepError::Config(format!(
                        "step `{step}`: records were embedded from different texts (`{first}` for `{id}`, `{v}` for `{}`), so their vectors cannot be compared; hint: embed one text view for every record before a semantic dedup",
                        r.id
                    )))
                }
                Some(_) => {}
            },
        }
    }
    let fix = |view: &str| {
        format!("hint: set text = \"{view}\" on the `embed` step before `{step}`, or change this step's `text`")
    };
    match (want, seen, unlabelled) {
        (Some(w), Some((got, id)), _) if got != w.name() => Err(StepError::Config(format!(
            "step `{step}`: text = \"{}\" but the records were embedded from their {got} text (record `{id}`, labels.{EMBEDDING_TEXT_LABEL}); {}",
            w.name(),
            fix(w.name())
        ))),
        (Some(w), _, Some(id)) => Err(StepError::Config(format!(
            "step `{step}`: text = \"{}\" but record `{id}` has no labels.{EMBEDDING_TEXT_LABEL}, so what its embedding stands for is unknown; {}",
            w.name(),
            fix(w.name())
        ))),
        (_, Some((got, id)), Some(bare)) => Err(StepError::Config(format!(
            "step `{step}`: record `{id}` was embedded from its {got} text but record `{bare}` has no labels.{EMBEDDING_TEXT_LABEL}; hint: embed every record with one `embed` step before a semantic dedup"
        ))),
        (_, Some((got, _)), None) => Ok(Side::View(
            TextView::from_name(got).ok_or_else(|| {
                StepError::Config(format!(
                    "step `{step}`: labels.{EMBEDDING_TEXT_LABEL} = `{got}` is not a text view; hint: re-run the `embed` step"
                ))
            })?,
        )),
        (Some(w), None, None) => Ok(Side::View(w)),
        (None, None, _) => Ok(Side::UnlabelledEmbedding),
    }
}

crate::table_step!(Dedup);

#[async_trait]
impl TableStep for Dedup {
    async fn run_table(
        &self,
        ctx: &StepCtx,
        records: Vec<Record>,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        let n = records.len();
        let keys: Vec<Vec<f64>> = records
            .iter()
            .map(|r| score_key(r, &self.o.keep_by))
            .collect();
        let o = self.o.clone();
        let mode = o.mode.clone();
        let side = if mode == "semantic" {
            embedded_side(&records, o.text, &ctx.step_id)?
        } else {
            Side::View(o.text.unwrap_or_default())
        };
        let (removals, recall) = if mode == "semantic" {
            let (flat, dim) = if n == 0 {
                (vec![], 0)
            } else {
                flatten_embeddings(&records, &ctx.step_id, "dedup")?
            };
            let seed = ctx.seed;
            let keys2 = keys.clone();
            ctx.cpu
                .run(move || {
                    if n == 0 {
                        return (vec![], None);
                    }
                    let sd = SemanticDedup {
                        threshold: o.threshold.unwrap_or(0.95) as f32,
                        method: o.search_method(),
                    };
                    let outcome = sd.dedup(&flat, dim, |i| keys2[i as usize].clone());
                    let recall = (o.recall_sample > 0).then(|| {
                        estimate_recall(
                            &flat,
                            dim,
                            sd.threshold,
                            &outcome.pairs,
                            o.recall_sample,
                            seed,
                        )
                    });
                    let rem = outcome
                        .removed
                        .iter()
                        .map(|r| {
                            (
                                r.index as usize,
                                r.duplicate_of as usize,
                                r.similarity as f64,
                            )
                        })
                        .collect();
                    (rem, recall)
                })
                .await
        } else {
            let texts: Vec<String> = records.iter().map(|r| side.text(r)).collect();
            let keys2 = keys.clone();
            let rem = ctx
                .cpu
                .run(move || {
                    if mode == "exact" {
                        exact_removals(&texts, &keys2)
                    } else {
                        near_removals(
                            &texts,
                            &keys2,
                            o.num_perm,
                            o.bands,
                            o.threshold.unwrap_or(0.8),
                        )
                    }
                })
                .await;
            (rem, None)
        };
        if let Some(r) = recall {
            ctx.stats
                .set_metric("recall_sampled_rows", r.sampled_rows as f64);
            ctx.stats
                .set_metric("recall_true_pairs", r.true_pairs as f64);
            if let Some(v) = r.recall() {
                ctx.stats.set_metric("recall", v);
            }
        }
        let mut removed_of: HashMap<usize, (usize, f64)> = HashMap::new();
        for (i, k, s) in removals {
            removed_of.insert(i, (k, s));
        }
        ctx.stats.set_metric("removed", removed_of.len() as f64);
        let mut dups = Vec::new();
        let mut rejections = Vec::new();
        let mut kept = Vec::with_capacity(n - removed_of.len());
        let kept_info: HashMap<usize, (String, String)> = removed_of
            .values()
            .map(|(k, _)| (*k, (records[*k].id.clone(), side.text(&records[*k]))))
            .collect();
        for (i, r) in records.into_iter().enumerate() {
            match removed_of.get(&i) {
                None => kept.push(r),
                Some((k, sim)) => {
                    let (kid, ktext) = kept_info[k].clone();
                    let text = side.text(&r);
                    rejections.push(Rejection {
                        step: ctx.step_id.clone(),
                        record_id: r.id.clone(),
                        reason: format!("duplicate_{}", self.o.mode),
                        detail: format!("{sim:.3} vs {kid}"),
                        text: text.clone(),
                    });
                    let mut d = r;
                    d.embedding = None;
                    d.labels.insert("duplicate_of".into(), kid);
                    d.labels.insert("duplicate_of_text".into(), ktext);
                    d.labels.insert("dedup_mode".into(), self.o.mode.clone());
                    d.labels.insert("dedup_text".into(), side.name().into());
                    d.labels.insert("duplicate_text".into(), text);
                    d.scores.insert("similarity".into(), *sim);
                    dups.push(d);
                }
            }
        }
        ctx.stats.count_rejections(&rejections);
        ctx.stats.add_done(n as u64);
        out.side_table("duplicates", dups).await?;
        out.commit(Batch {
            records: kept,
            rejections,
            consumed: n as u64,
            ..Default::default()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use retort_core::Record;

    fn rec(id: &str, text: &str, q: f64) -> Record {
        let mut r = Record {
            id: id.into(),
            instruction: Some(text.into()),
            ..Default::default()
        };
        r.scores.insert("quality".into(), q);
        r
    }

    fn step(mode: &str) -> Dedup {
        Dedup {
            o: DedupOptions {
                mode: mode.into(),
                // Semantic compares whatever was embedded (these vectors carry no label).
                text: (mode != "semantic").then_some(TextView::Instruction),
                threshold: None,
                num_perm: 128,
                bands: 32,
                method: "partitioned".into(),
                keep_by: default_keep_by(),
                recall_sample: 100,
                hnsw_m: None,
                ef_construction: None,
                ef_search: None,
            },
        }
    }

    fn build_errors(options: &str) -> Vec<String> {
        let spec = StepSpec {
            id: "dd".into(),
            kind: "dedup".into(),
            after: vec![],
            options: toml::from_str(options).unwrap(),
        };
        match build(&spec, &BuildCtx::default()) {
            Ok(_) => vec![],
            Err(e) => e,
        }
    }

    #[test]
    fn hnsw_settings_are_checked_where_they_are_written() {
        assert!(build_errors(
            "mode = \"semantic\"\nmethod = \"hnsw\"\nhnsw_m = 32\nef_construction = 100"
        )
        .is_empty());
        let e = build_errors(
            "mode = \"semantic\"\nmethod = \"hnsw\"\nhnsw_m = 48\nef_construction = 80",
        );
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("must exceed 2 × hnsw_m = 96"), "{e:?}");
        let e = build_errors("mode = \"semantic\"\nef_search = 200");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("`ef_search` only applies"), "{e:?}");
        let o: DedupOptions =
            toml::from_str("mode = \"semantic\"\nmethod = \"hnsw\"\nef_search = 200").unwrap();
        assert_eq!(
            o.search_method(),
            Method::Hnsw {
                m: 48,
                ef_construction: 120,
                ef_search: 200
            }
        );
    }

    #[tokio::test]
    async fn exact_keeps_the_best_scored_variant() {
        let rows = vec![
            rec("a", "Name three  prime numbers.", 3.0),
            rec("b", "name three prime numbers.", 8.0),
            rec("c", "Ｎａｍｅ three prime numbers.", 5.0),
            rec("d", "Write a poem.", 1.0),
        ];
        let ctx = test_ctx("d", Default::default(), None);
        let mut out = MemSink::default();
        step("exact")
            .run(&ctx, inputs_from(rows, 2), &mut out)
            .await
            .unwrap();
        let kept: Vec<String> = out.records().iter().map(|r| r.id.clone()).collect();
        assert_eq!(kept, vec!["b", "d"]);
        let d = &out.sides["duplicates"];
        assert_eq!(d.len(), 2);
        assert!(d.iter().all(|r| r.labels["duplicate_of"] == "b"));
        assert_eq!(out.rejections().len(), 2);
    }

    #[tokio::test]
    async fn semantic_groups_by_cosine_and_reports_recall() {
        let mut rows = Vec::new();
        let basis = |k: usize| {
            let mut v = vec![0.0f32; 8];
            v[k] = 1.0;
            v
        };
        for (i, k, q) in [(0, 0, 1.0), (1, 0, 9.0), (2, 1, 5.0), (3, 2, 5.0)] {
            let mut r = rec(&format!("r{i}"), &format!("text {i}"), q);
            let mut v = basis(k);
            if i == 1 {
                v[3] = 0.05;
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
            }
            r.embedding = Some(v);
            rows.push(r);
        }
        let ctx = test_ctx("s", Default::default(), None);
        let mut out = MemSink::default();
        step("semantic")
            .run(&ctx, inputs_from(rows, 10), &mut out)
            .await
            .unwrap();
        let kept: Vec<String> = out.records().iter().map(|r| r.id.clone()).collect();
        assert_eq!(kept, vec!["r1", "r2", "r3"]);
        let d = &out.sides["duplicates"][0];
        assert_eq!(d.id, "r0");
        assert!(d.scores["similarity"] > 0.99);
        assert_eq!(ctx.stats.metrics.lock().unwrap()["recall"], 1.0);
    }

    #[tokio::test]
    async fn near_catches_small_edits() {
        let base = "Explain how a refrigerator keeps food cold using the vapour compression cycle and why it needs a compressor";
        let rows = vec![
            rec("a", base, 2.0),
            rec("b", &format!("{base}."), 6.0),
            rec(
                "c",
                "Write a limerick about a cat who learns to play the violin at night",
                4.0,
            ),
        ];
        let ctx = test_ctx("n", Default::default(), None);
        let mut out = MemSink::default();
        step("near")
            .run(&ctx, inputs_from(rows, 10), &mut out)
            .await
            .unwrap();
        let kept: Vec<String> = out.records().iter().map(|r| r.id.clone()).collect();
        assert_eq!(kept, vec!["b", "c"]);
    }
}
