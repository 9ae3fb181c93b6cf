//! What a run takes over from an earlier one in the same directory: the money already
//! spent, the failures it is asked to retry, and the finished steps it may skip once
//! their checkpoints are verified.

use std::collections::BTreeMap;
use std::path::Path;

use crate::compile::Plan;
use crate::error::RunError;
use crate::rundir::{self, StepDir};

/// Dollars spent by earlier invocations in this run directory (their manifest's
/// `teachers.spent_usd`, itself cumulative), so the budget spans resumes. `--fresh` has
/// already removed the manifest when it starts over.
pub(crate) fn earlier_spend(run_dir: &Path) -> Result<f64, RunError> {
    if !retort_store::RunDir::new(run_dir).manifest().exists() {
        return Ok(0.0);
    }
    let m = retort_store::Manifest::read(run_dir).map_err(|e| {
        RunError::Setup(format!(
            "{e}; it holds the earlier run's spend: fix it or start over with --fresh"
        ))
    })?;
    Ok(m.teachers.spent_usd)
}

/// `--retry-failed`: takes the chosen failures' inputs out of each step's checkpoint
/// (see [`rundir::retry_failed`]) and recomputes everything downstream of a step that
/// changed, since its output is no longer what they read.
pub(crate) fn retry_failed(
    plan: &Plan,
    run_dir: &Path,
    classes: &[String],
) -> Result<(), RunError> {
    let what = if classes.is_empty() {
        "any class".to_string()
    } else {
        classes.join(", ")
    };
    let mut changed: Vec<String> = Vec::new();
    for ps in &plan.steps {
        let id = &ps.spec.id;
        let state = StepDir::state(run_dir, id);
        if state.is_none_or(|s| s.config_hash != ps.hash) {
            continue; // no checkpoint of this configuration: it runs anew anyway
        }
        let r = rundir::retry_failed(run_dir, id, classes)
            .map_err(|e| RunError::Setup(format!("--retry-failed: step `{id}`: {e}")))?;
        if r.inputs > 0 {
            tracing::warn!(
                "step `{id}`: retrying {} input(s) with failures of {what}",
                r.inputs
            );
            changed.push(id.clone());
        }
        if r.untied > 0 {
            tracing::warn!(
                "step `{id}`: {} failure(s) of {what} are not tied to single inputs (this kind commits its work in order) and stay; change the step or use --fresh to redo it",
                r.untied
            );
        }
    }
    // Everything downstream of a changed step recomputes (teacher answers come from
    // the cache).
    let mut stale: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    loop {
        let before = stale.len();
        for ps in &plan.steps {
            if ps
                .spec
                .after
                .iter()
                .any(|a| changed.contains(a) || stale.contains(a))
            {
                stale.insert(ps.spec.id.clone());
            }
        }
        if stale.len() == before {
            break;
        }
    }
    for id in stale.difference(&changed.iter().cloned().collect()) {
        let dir = StepDir::path_for(run_dir, id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| {
                RunError::Setup(format!(
                    "--retry-failed: cannot clear {} for recomputing: {e}",
                    dir.display()
                ))
            })?;
        }
    }
    if changed.is_empty() {
        tracing::warn!("--retry-failed: no committed failure of {what} to retry");
    }
    Ok(())
}

/// The steps this run skips, in plan order: finished before with the same config hash,
/// checkpoints that pass [`rundir::verify`], and every upstream skipped too. A step
/// whose files are missing or broken is recomputed from its inputs (the response cache
/// makes repeated teacher calls free) and so is everything after it, since its new
/// output is what they must be made from.
pub(crate) fn verified_skips(
    plan: &Plan,
    run_dir: &Path,
) -> BTreeMap<String, Option<rundir::StepFileState>> {
    let mut skips: BTreeMap<String, Option<rundir::StepFileState>> = BTreeMap::new();
    for ps in &plan.steps {
        let id = &ps.spec.id;
        let done = StepDir::is_done(run_dir, id, &ps.hash).filter(|st| {
            match rundir::verify(run_dir, id, st) {
                Ok(()) => true,
                Err(why) => {
                    tracing::warn!(
                        "step `{id}` finished before, but {why}: recomputing it and every step after it"
                    );
                    false
                }
            }
        });
        let ups_skipped = ps
            .spec
            .after
            .iter()
            .all(|a| matches!(skips.get(a), Some(Some(_))));
        skips.insert(id.clone(), done.filter(|_| ups_skipped));
    }
    skips
}
