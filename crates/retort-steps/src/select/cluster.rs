//! `cluster`: k-means over the records' embeddings (k-means++ seeding, rayon-parallel,
//! mini-batch when large), a 2-D PCA map position per record, and a `clusters` side
//! table with sizes, mean scores, centroid-nearest representatives and, with a
//! `label_teacher`, a short teacher-written label per cluster.
//!
//! Records get `cluster`, `scores.map_x`, `scores.map_y`, and `labels.cluster_label`
//! when labelled. A label the teacher could not write is a failure row; the cluster is
//! then left unlabelled, never given a made-up name.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Message, Provenance, Record};
use retort_teacher::ChatRequest;
use retort_vector::kmeans::{choose_k, representatives, KMeans};
use serde::Deserialize;

use crate::api::*;
use crate::calls;
use crate::gen_common::render;
use crate::spec::{parse_options, BuildCtx, Built, Estimate, StepSpec};
use crate::templates::Template;
use crate::text_view::{flatten_embeddings, TextView};

/// Options of a `cluster` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterOptions {
    /// Number of clusters; default `round(√(n/2))` clamped to [2, 1000].
    #[serde(default)]
    pub k: Option<usize>,
    /// Representatives kept per cluster (nearest the centroid first).
    #[serde(default = "default_reps")]
    pub representatives: usize,
    /// Teacher that writes a short label per cluster from its representatives.
    #[serde(default)]
    pub label_teacher: Option<String>,
    /// Label prompt template (built-in `cluster_label` or a .jinja path).
    #[serde(default = "default_template")]
    pub template: String,
    /// Text shown to the labelling teacher.
    #[serde(default)]
    pub text: TextView,
    /// Longest label accepted, in words.
    #[serde(default = "default_words")]
    pub max_label_words: usize,
}

fn default_reps() -> usize {
    5
}
fn default_template() -> String {
    "cluster_label".into()
}
fn default_words() -> usize {
    6
}

/// Build a `cluster` step.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: ClusterOptions = parse_options(spec)?;
    let mut errs = Vec::new();
    if o.k == Some(0) {
        errs.push("`k` must be at least 1".into());
    }
    if let Some(t) = &o.label_teacher {
        if let Err(e) = ctx.check_teacher(t) {
            errs.push(format!("`label_teacher`: {e}"));
        }
    }
    let template = match Template::load(&o.template, &ctx.base_dir) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            errs.push(format!("`template`: {e}"));
            None
        }
    };
    if !errs.is_empty() {
        return Err(errs);
    }
    let template = template.expect("checked above");
    let mut b = Built::new(
        Arc::new(Cluster {
            o: o.clone(),
            template: template.clone(),
        }),
        format!(
            "records with a cluster id and map position; steps/{}/clusters.parquet{}",
            spec.id,
            if o.label_teacher.is_some() {
                " with teacher-written labels"
            } else {
                ""
            }
        ),
    );
    if let Some(f) = template.file() {
        b.files.push(f);
    }
    if let Some(t) = &o.label_teacher {
        b.estimates.push(Estimate {
            teacher: t.clone(),
            calls_per_input: 0.0,
            fixed_calls: o.k.unwrap_or(30) as u64,
            prompt_tokens: (o.representatives as u64)
                .saturating_mul(80)
                .saturating_add(60),
            max_tokens: 24,
        });
    }
    Ok(b)
}

/// The `cluster` step.
pub struct Cluster {
    o: ClusterOptions,
    template: Arc<Template>,
}

crate::table_step!(Cluster);

#[async_trait]
impl TableStep for Cluster {
    async fn run_table(
        &self,
        ctx: &StepCtx,
        mut records: Vec<Record>,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        let n = records.len();
        if n == 0 {
            out.side_table("clusters", vec![]).await?;
            return out.commit(Batch::default()).await;
        }
        let (flat, dim) = flatten_embeddings(&records, &ctx.step_id, "cluster")?;
        let k = self.o.k.unwrap_or_else(|| choose_k(n)).min(n);
        let seed = ctx.seed;
        let per = self.o.representatives;
        let (assign, reps, (points, projection)) = ctx
            .cpu
            .run(move || {
                let res = KMeans::auto(n, k, seed).fit(&flat, dim);
                let reps = representatives(&flat, dim, &res, per);
                let (points, projection) = retort_vector::layout::map_2d(&flat, dim, seed);
                (res.assignments, reps, (points, projection))
            })
            .await;
        for (i, r) in records.iter_mut().enumerate() {
            r.cluster = Some(assign[i]);
            r.scores.insert("map_x".into(), points[i][0] as f64);
            r.scores.insert("map_y".into(), points[i][1] as f64);
        }

        // Per-cluster summary rows.
        let mut clusters: Vec<Record> = Vec::new();
        let mut failures = Vec::new();
        let mut label_prompts: Vec<(usize, String)> = Vec::new();
        for (c, members) in reps.iter().enumerate() {
            let in_c: Vec<&Record> = records
                .iter()
                .filter(|r| r.cluster == Some(c as u32))
                .collect();
            let mut sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
            for r in &in_c {
                for (key, v) in &r.scores {
                    if key == "map_x" || key == "map_y" {
                        continue;
                    }
                    let e = sums.entry(key.clone()).or_default();
                    e.0 += v;
                    e.1 += 1;
                }
            }
            let mut rec = Record {
                id: format!("cluster-{c}"),
                provenance: Provenance {
                    step: ctx.step_id.clone(),
                    parents: members
                        .iter()
                        .map(|&i| records[i as usize].id.clone())
                        .collect(),
                    ..Default::default()
                },
                cluster: Some(c as u32),
                ..Default::default()
            };
            rec.scores.insert("size".into(), in_c.len() as f64);
            rec.labels
                .insert("map_projection".into(), projection.name().into());
            for (key, (s, cnt)) in sums {
                rec.scores.insert(format!("mean_{key}"), s / cnt as f64);
            }
            if self.o.label_teacher.is_some() {
                let examples: Vec<String> = members
                    .iter()
                    .map(|&i| {
                        let t = self.o.text.text(&records[i as usize]);
                        t.chars().take(300).collect()
                    })
                    .collect();
                let prompt = render(
                    &self.template,
                    serde_json::json!({"examples": examples, "max_words": self.o.max_label_words}),
                )?;
                label_prompts.push((clusters.len(), prompt));
            }
            clusters.push(rec);
        }
        if let Some(t) = &self.o.label_teacher {
            let teacher = ctx.teacher(t)?;
            let reqs = label_prompts
                .iter()
                .map(|(_, prompt)| ChatRequest {
                    messages: vec![Message::user(prompt.clone())],
                    temperature: Some(0.0),
                    max_tokens: Some(24),
                    seed: Some(seed),
                    ..Default::default()
                })
                .collect();
            // All clusters' label calls at once (the teacher's own limits apply), not
            // one after another.
            let answers = calls::chat_all(ctx, &teacher, reqs, LABEL_CONCURRENCY).await?;
            for ((c, prompt), answer) in label_prompts.iter().zip(answers) {
                let rec = &mut clusters[*c];
                match answer {
                    Ok(resp) => {
                        let label = resp
                            .content
                            .lines()
                            .map(str::trim)
                            .find(|l| !l.is_empty())
                            .unwrap_or("")
                            .trim_matches(|c: char| c == '"' || c == '*' || c == '.' || c == '\'')
                            .to_string();
                        let words = label.split_whitespace().count();
                        if label.is_empty() || words > self.o.max_label_words * 2 {
                            failures.push(retort_core::Failure {
                                step: ctx.step_id.clone(),
                                record_id: rec.id.clone(),
                                class: "parse".into(),
                                status: None,
                                message: format!(
                                    "cluster label is empty or longer than {} words",
                                    self.o.max_label_words * 2
                                ),
                                raw: resp.content,
                            });
                        } else {
                            rec.labels.insert("cluster_label".into(), label);
                        }
                    }
                    Err(e) => failures.push(calls::failure(&ctx.step_id, &rec.id, &e, prompt)),
                }
            }
        }
        let labels: BTreeMap<u32, String> = clusters
            .iter()
            .filter_map(|c| Some((c.cluster?, c.labels.get("cluster_label")?.clone())))
            .collect();
        for r in records.iter_mut() {
            if let Some(l) = r.cluster.and_then(|c| labels.get(&c)) {
                r.labels.insert("cluster_label".into(), l.clone());
            }
        }
        ctx.stats.set_metric("k", k as f64);
        ctx.stats.add_done(n as u64);
        out.side_table("clusters", clusters).await?;
        out.commit(Batch {
            records,
            failures,
            consumed: n as u64,
            ..Default::default()
        })
        .await
    }
}

/// Cluster label calls in flight at once.
const LABEL_CONCURRENCY: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;

    #[tokio::test]
    async fn recovers_planted_clusters_and_summarises_them() {
        let mut rows = Vec::new();
        for c in 0..3 {
            for j in 0..20 {
                let mut v = vec![0.0f32; 6];
                v[c] = 1.0;
                v[3 + (j % 3)] = 0.05 * (j as f32 / 20.0);
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
                let mut r = Record {
                    id: format!("c{c}-{j}"),
                    instruction: Some(format!("topic {c} item {j}")),
                    embedding: Some(v),
                    ..Default::default()
                };
                r.scores.insert("quality".into(), c as f64);
                rows.push(r);
            }
        }
        let st = Cluster {
            o: ClusterOptions {
                k: Some(3),
                representatives: 2,
                label_teacher: None,
                template: "cluster_label".into(),
                text: TextView::Instruction,
                max_label_words: 6,
            },
            template: Arc::new(Template::load("cluster_label", std::path::Path::new(".")).unwrap()),
        };
        let ctx = test_ctx("k", Default::default(), None);
        let mut out = MemSink::default();
        st.run(&ctx, inputs_from(rows, 16), &mut out).await.unwrap();
        let recs = out.records();
        // Same planted group ⇒ same cluster, different groups ⇒ different clusters.
        for c in 0..3 {
            let ids: std::collections::BTreeSet<u32> = recs
                .iter()
                .filter(|r| r.id.starts_with(&format!("c{c}-")))
                .map(|r| r.cluster.unwrap())
                .collect();
            assert_eq!(ids.len(), 1);
        }
        let cl = &out.sides["clusters"];
        assert_eq!(cl.len(), 3);
        assert!(cl.iter().all(|c| c.scores["size"] == 20.0));
        assert!(cl.iter().all(|c| c.provenance.parents.len() == 2));
        assert!(recs.iter().all(|r| r.scores.contains_key("map_x")));
    }
}
