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

/// True for a pipeline key path whose value may carry a credential: a header of a
/// teacher (`teachers.<name>.headers.<h>`) or of the embedder (`embedder.headers.<h>`).
/// The one rule both the manifest's pipeline and its command line follow.
fn is_secret_path(path: &[&str]) -> bool {
    matches!(
        path,
        ["teachers", _, "headers", _, ..] | ["embedder", "headers", _, ..]
    )
}

/// The resolved pipeline with every teacher/embedder header value replaced: a header
/// may carry a credential, and the manifest must never hold one.
fn redacted_pipeline(doc: &toml::Table) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    let redact = |section: &mut serde_json::Value, prefix: &[&str]| {
        if let Some(h) = section.get_mut("headers").and_then(|h| h.as_object_mut()) {
            for (name, val) in h.iter_mut() {
                let path: Vec<&str> = prefix.iter().copied().chain(["headers", name]).collect();
                if is_secret_path(&path) {
                    *val = serde_json::Value::String("[redacted]".into());
                }
            }
        }
    };
    if let Some(ts) = v.get_mut("teachers").and_then(|t| t.as_object_mut()) {
        for (name, t) in ts.iter_mut() {
            redact(t, &["teachers", name]);
        }
    }
    if let Some(e) = v.get_mut("embedder") {
        redact(e, &["embedder"]);
    }
    v
}

/// The command line as one shell-readable string, for the manifest: arguments quoted
/// where the shell would split them, and the value of every `--set` whose key
/// [`is_secret_path`] replaced by `[redacted]`.
pub fn redacted_command(args: &[String]) -> String {
    let mut out = Vec::with_capacity(args.len());
    let mut after_set = false;
    for a in args {
        let redacted = if let Some(kv) = a.strip_prefix("--set=") {
            format!("--set={}", redact_assignment(kv))
        } else if after_set {
            redact_assignment(a)
        } else {
            a.clone()
        };
        after_set = a == "--set";
        out.push(shell_quote(&redacted));
    }
    out.join(" ")
}

fn redact_assignment(kv: &str) -> String {
    match kv.split_once('=') {
        Some((key, _)) if is_secret_path(&key.trim().split('.').collect::<Vec<_>>()) => {
            format!("{key}=[redacted]")
        }
        _ => kv.to_string(),
    }
}

fn shell_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+%[]".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// Current time as RFC 3339.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The manifest a run starts with.
pub(crate) fn new_manifest(plan: &Plan, resumed: bool, command: Option<String>) -> Manifest {
    Manifest {
        schema_version: retort_store::MANIFEST_VERSION,
        name: plan.name.clone(),
        retort_version: env!("CARGO_PKG_VERSION").to_string(),
        pipeline_file: plan.source.path.display().to_string(),
        command,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_keeps_what_was_typed_and_redacts_header_values() {
        let c = redacted_command(&args(&[
            "retort",
            "run",
            "pipelines/sft.toml",
            "--set",
            "step.tasks.target=500",
            "--set",
            "teachers.big.headers.Authorization=Bearer sk-live-123",
            "--set=embedder.headers.x-api-key=k-456",
            "--out",
            "runs/my run",
        ]));
        assert_eq!(
            c,
            "retort run pipelines/sft.toml --set step.tasks.target=500 --set \
             teachers.big.headers.Authorization=[redacted] --set=embedder.headers.x-api-key=[redacted] \
             --out 'runs/my run'"
        );
        assert!(!c.contains("sk-live") && !c.contains("k-456"));
    }

    #[test]
    fn quotes_what_the_shell_would_split() {
        assert_eq!(
            redacted_command(&args(&["retort", "run", "it's.toml", ""])),
            r#"retort run 'it'\''s.toml' ''"#
        );
    }

    #[test]
    fn pipeline_headers_are_redacted_and_other_keys_kept() {
        let doc: toml::Table = toml::from_str(
            r#"
[teachers.a]
model = "m"
headers = { Authorization = "Bearer sk-1" }
[embedder]
headers = { x-key = "k-2" }
"#,
        )
        .unwrap();
        let v = redacted_pipeline(&doc);
        assert_eq!(v["teachers"]["a"]["headers"]["Authorization"], "[redacted]");
        assert_eq!(v["embedder"]["headers"]["x-key"], "[redacted]");
        assert_eq!(v["teachers"]["a"]["model"], "m");
    }
}
