//! A run directory gathered into a [`ReportInput`]: the records to map (a step's
//! committed parts), cluster summaries, every removed duplicate, the first rejections and
//! failures of every step (for the records explorer), and the manifest's run summary,
//! read through the run-directory contract ([`retort_store::run_dir`]). Used by the
//! `report` step and `retort report RUN_DIR`.

use std::collections::BTreeMap;
use std::path::Path;

use retort_core::Record;
use retort_store::{Manifest, RunDir, StepPaths, StoreError};

use crate::limits::EXPLORER_MAX_SIDE_ROWS;
use crate::{ClusterInfo, DuplicateRow, ReportInput, RunSummaryView, StepRow, TeacherRow};

/// Write the page atomically (unique temp name, then rename).
pub fn write_html(path: &Path, html: &str) -> Result<(), StoreError> {
    retort_store::write_bytes_atomic(path, html.as_bytes())
}

/// Every committed record of a step, in part order.
pub fn read_step(run_dir: &Path, id: &str) -> Result<Vec<Record>, StoreError> {
    RunDir::new(run_dir).step(id).read_records()
}

fn read_side(run_dir: &Path, id: &str, name: &str) -> Result<Vec<Record>, StoreError> {
    let p = RunDir::new(run_dir).step(id).side(name);
    if !p.exists() {
        return Ok(vec![]);
    }
    retort_store::read_records(&p)
}

/// Gather a run directory into a report. `records` are the records to map (the report
/// step's input); `None` takes the last `cluster` step's output, or else the last
/// step with records.
pub fn load_run(
    run_dir: &Path,
    records: Option<Vec<Record>>,
    title: Option<String>,
) -> Result<ReportInput, StoreError> {
    let m = Manifest::read(run_dir)?;

    let cluster_step = m.steps.iter().rev().find(|s| s.kind == "cluster");
    let records = match records {
        Some(r) => r,
        None => match cluster_step {
            Some(s) => read_step(run_dir, &s.id)?,
            None => {
                let mut found = vec![];
                for s in m.steps.iter().rev() {
                    if s.kind != "export" && s.kind != "report" && s.rows_out > 0 {
                        found = read_step(run_dir, &s.id)?;
                        break;
                    }
                }
                found
            }
        },
    };
    let cluster_rows = match cluster_step {
        Some(s) => read_side(run_dir, &s.id, "clusters")?,
        None => vec![],
    };
    let points_note = cluster_rows
        .first()
        .and_then(|c| c.labels.get("map_projection"))
        .and_then(|p| retort_vector::layout::Projection::from_name(p))
        .map(|p| p.describe().to_string());
    let clusters: Vec<ClusterInfo> = match cluster_step {
        Some(_) => cluster_rows
            .into_iter()
            .map(|c| ClusterInfo {
                id: c.cluster.unwrap_or(0),
                label: c.labels.get("cluster_label").cloned(),
                size: c.scores.get("size").copied().unwrap_or(0.0) as u64,
                representatives: c.provenance.parents.clone(),
                mean_scores: c
                    .scores
                    .iter()
                    .filter_map(|(k, v)| k.strip_prefix("mean_").map(|k| (k.to_string(), *v)))
                    .collect(),
            })
            .collect(),
        None => vec![],
    };
    let mut duplicates = Vec::new();
    let mut duplicate_records = Vec::new();
    for s in m.steps.iter().filter(|s| s.kind == "dedup") {
        for d in read_side(run_dir, &s.id, "duplicates")? {
            let mode = d
                .labels
                .get("dedup_mode")
                .and_then(|m| m.parse().ok())
                .ok_or_else(|| StoreError::Content {
                    path: RunDir::new(run_dir).step(&s.id).side("duplicates"),
                    message: format!("record `{}` has no valid dedup_mode", d.id),
                })?;
            if duplicate_records.len() < EXPLORER_MAX_SIDE_ROWS {
                duplicate_records.push(d.clone());
            }
            duplicates.push(DuplicateRow {
                removed_id: d.id.clone(),
                removed_text: d.prompt_text(),
                kept_id: d.labels.get("duplicate_of").cloned().unwrap_or_default(),
                kept_text: d
                    .labels
                    .get("duplicate_of_text")
                    .cloned()
                    .unwrap_or_default(),
                similarity: d.scores.get("similarity").copied().unwrap_or(f64::NAN),
                mode,
            });
        }
    }
    let points: Option<Vec<[f32; 2]>> = records
        .iter()
        .map(|r| {
            Some([
                *r.scores.get("map_x")? as f32,
                *r.scores.get("map_y")? as f32,
            ])
        })
        .collect::<Option<Vec<_>>>()
        .filter(|p| !p.is_empty());

    // Tokens and cost per step from the teacher accounting.
    let mut per_step: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
    for s in &m.teachers.steps {
        let e = per_step.entry(s.step.clone()).or_default();
        e.0 += s.counters.prompt_tokens;
        e.1 += s.counters.completion_tokens;
        e.2 += s.counters.cost_usd;
    }
    let teachers: Vec<TeacherRow> = m
        .teachers
        .teachers
        .iter()
        .map(|(name, c)| TeacherRow {
            name: name.clone(),
            // The model comes from the pipeline as run; accounting only knows names.
            model: m.pipeline["teachers"][name.as_str()]["model"]
                .as_str()
                .map(str::to_string),
            calls: c.calls,
            cache_hits: c.cache_hits,
            requests: c.requests,
            retries: c.retries,
            failures: c.failures,
            prompt_tokens: c.prompt_tokens,
            completion_tokens: c.completion_tokens,
            cost_usd: c.cost_usd,
        })
        .collect();
    // Read each step's committed failure and rejection parts rather than the run-level
    // tables, which are only gathered when the run ends (a report step runs before that).
    // Every failure is counted; the explorer keeps the first rows of each kind.
    let mut failures_by_class = BTreeMap::new();
    let mut failures = Vec::new();
    let mut rejections = Vec::new();
    for s in &m.steps {
        let step = RunDir::new(run_dir).step(&s.id);
        let Ok(entries) = std::fs::read_dir(step.dir()) else {
            continue;
        };
        let mut parts: Vec<(String, usize, std::path::PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let (kind, i) = StepPaths::batch_of(&name)?;
                (kind != "part").then(|| (kind.to_string(), i, e.path()))
            })
            .collect();
        // Part order, so the explorer lists rows as the step committed them.
        parts.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        for (kind, _, path) in parts {
            if kind == "failures" {
                for f in retort_store::read_failures(&path)? {
                    *failures_by_class.entry(f.class.clone()).or_insert(0u64) += 1;
                    if failures.len() < EXPLORER_MAX_SIDE_ROWS {
                        failures.push(f);
                    }
                }
            } else if kind == "rejections" && rejections.len() < EXPLORER_MAX_SIDE_ROWS {
                let mut rows = retort_store::read_rejections(&path)?;
                rows.truncate(EXPLORER_MAX_SIDE_ROWS - rejections.len());
                rejections.extend(rows);
            }
        }
    }
    let summary = RunSummaryView {
        name: m.name.clone(),
        status: m.status.clone(),
        started_at: Some(m.started_at.clone()),
        finished_at: m.finished_at.clone(),
        seconds: Some(m.steps.iter().map(|s| s.seconds).fold(0.0, f64::max)),
        pipeline_hash: Some(m.pipeline_hash.clone()),
        steps: m
            .steps
            .iter()
            .map(|s| {
                let (p, c, cost) = per_step.get(&s.id).copied().unwrap_or_default();
                StepRow {
                    id: s.id.clone(),
                    kind: s.kind.clone(),
                    status: s.status.clone(),
                    rows_in: s.rows_in,
                    rows_out: s.rows_out,
                    failures: s.failures,
                    rejected: s.rejected.clone(),
                    metrics: s.metrics.clone(),
                    prompt_tokens: p,
                    completion_tokens: c,
                    cost_usd: cost,
                    seconds: s.seconds,
                    error: s.error.clone(),
                    warnings: s.warnings.clone(),
                }
            })
            .collect(),
        teachers,
        failures_by_class,
    };
    Ok(ReportInput {
        title: title.unwrap_or_else(|| format!("retort report — {}", m.name)),
        records,
        points,
        points_note,
        clusters,
        duplicates,
        summary,
        duplicate_records,
        rejections,
        failures,
    })
}
