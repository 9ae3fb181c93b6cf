//! `manifest.json`: what a run did. Written atomically at the start, whenever the run
//! ends (complete, failed or interrupted), so a reader never sees half a manifest.
//! It never holds a secret: teachers name the environment variable of their key only.

use std::sync::atomic::Ordering;

pub use retort_store::{Manifest, StepReport};

use crate::compile::Plan;
use crate::live::Live;

/// A step's manifest line from its live numbers.
pub(crate) fn step_report(l: &Live) -> StepReport {
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

/// The manifest a run starts with.
pub(crate) fn new_manifest(plan: &Plan, resumed: bool) -> Manifest {
    Manifest {
        schema_version: retort_store::MANIFEST_VERSION,
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
        teachers: Default::default(),
        outputs: vec![],
    }
}
