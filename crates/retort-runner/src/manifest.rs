//! `manifest.json`: what a run did. Written atomically at the start, whenever the run
//! ends (complete, failed or interrupted), so a reader never sees half a manifest.
//! It never holds a secret: teachers name the environment variable of their key only.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use crate::compile::Plan;
use crate::live::Live;

/// The manifest of one run directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Pipeline name.
    pub name: String,
    /// retort version that wrote it.
    pub retort_version: String,
    /// The pipeline file path.
    pub pipeline_file: String,
    /// sha256 of the resolved pipeline.
    pub pipeline_hash: String,
    /// The pipeline after `--set` overrides.
    pub pipeline: serde_json::Value,
    /// `running`, `complete`, `failed` or `interrupted`.
    pub status: String,
    /// True when this run continued an earlier one in the same directory.
    pub resumed: bool,
    /// RFC 3339 start time.
    pub started_at: String,
    /// RFC 3339 end time.
    pub finished_at: Option<String>,
    /// Per step, in execution order.
    pub steps: Vec<StepReport>,
    /// Rows in `failures.parquet`.
    pub failures: u64,
    /// Rows in `rejections.parquet`.
    pub rejections: u64,
    /// Tokens, requests, cache hits and cost per teacher and step.
    pub teachers: serde_json::Value,
    /// Files written for the user.
    pub outputs: Vec<String>,
}

/// One step's line in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepReport {
    pub id: String,
    pub kind: String,
    /// `done`, `skipped (unchanged)`, `failed`, `running`, `waiting`, `pending`.
    pub status: String,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Rows that were already committed when this run started (resume).
    pub resumed_rows: u64,
    pub failures: u64,
    /// Records left pending by transient faults (connection, timeout, 5xx, 429): not
    /// committed, retried by the next run of the same command.
    #[serde(default)]
    pub pending: u64,
    /// Records sent back to the queue after a transient fault during this run.
    #[serde(default)]
    pub requeued: u64,
    /// Rejections by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Step metrics (e.g. dedup recall).
    pub metrics: BTreeMap<String, f64>,
    pub seconds: f64,
    pub error: Option<String>,
    /// What the user should know that did not stop the step (an empty input file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl StepReport {
    pub(crate) fn from_live(l: &Live) -> StepReport {
        let seconds = match *l.started.lock().unwrap() {
            Some(t) if l.status.lock().unwrap().starts_with("running") => t.elapsed().as_secs_f64(),
            _ => *l.seconds.lock().unwrap(),
        };
        StepReport {
            id: l.id.clone(),
            kind: l.kind.clone(),
            status: l.status.lock().unwrap().clone(),
            // A source reads files, not steps: its rows in are the rows it read.
            rows_in: if l.after.is_empty() {
                l.stats.done.load(Ordering::Relaxed)
            } else {
                l.rows_in.load(Ordering::Relaxed)
            },
            rows_out: l.rows_out.load(Ordering::Relaxed),
            resumed_rows: l.resumed_rows.load(Ordering::Relaxed),
            failures: l.failures.load(Ordering::Relaxed),
            pending: l.stats.pending.load(Ordering::Relaxed),
            requeued: l.stats.requeued.load(Ordering::Relaxed),
            rejected: l.stats.rejected.lock().unwrap().clone(),
            metrics: l.stats.metrics.lock().unwrap().clone(),
            seconds,
            error: l.error.lock().unwrap().clone(),
            warnings: l.stats.warnings.lock().unwrap().clone(),
        }
    }
}

/// The resolved pipeline with every teacher/embedder header value replaced: a header
/// may carry a credential, and the manifest must never hold one.
fn redacted_pipeline(doc: &toml::Table) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    let redact = |section: &mut serde_json::Value| {
        if let Some(h) = section.get_mut("headers").and_then(|h| h.as_object_mut()) {
            for (_, val) in h.iter_mut() {
                *val = serde_json::Value::String("[redacted]".into());
            }
        }
    };
    if let Some(ts) = v.get_mut("teachers").and_then(|t| t.as_object_mut()) {
        for (_, t) in ts.iter_mut() {
            redact(t);
        }
    }
    if let Some(e) = v.get_mut("embedder") {
        redact(e);
    }
    v
}

/// Current time as RFC 3339.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Manifest {
    pub(crate) fn new(plan: &Plan, resumed: bool) -> Manifest {
        Manifest {
            name: plan.name.clone(),
            retort_version: env!("CARGO_PKG_VERSION").to_string(),
            pipeline_file: plan.source.path.display().to_string(),
            pipeline_hash: plan.hash.clone(),
            pipeline: redacted_pipeline(&plan.resolved),
            status: "running".into(),
            resumed,
            started_at: now(),
            finished_at: None,
            steps: vec![],
            failures: 0,
            rejections: 0,
            teachers: serde_json::Value::Null,
            outputs: vec![],
        }
    }
}
