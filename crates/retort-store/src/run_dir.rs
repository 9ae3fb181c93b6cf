//! The run directory contract: where every file of a run lives, and the typed shapes of
//! the files that describe it (`manifest.json`, each step's `state.json`). The runner
//! writes them; the report step, `retort report`, `inspect` and the dataset card read
//! them — all through this module, so a renamed field is a compile error, not a silent
//! zero.
//!
//! ```text
//! runs/<name>/
//!   .lock                              the writer's lock
//!   manifest.json                      Manifest (schema_version = MANIFEST_VERSION)
//!   cache.sqlite                       teacher answers and embeddings
//!   failures.parquet · rejections.parquet   every step's, gathered at the end of a run
//!   steps/<id>/state.json              StepFileState
//!   steps/<id>/part-00000.parquet      committed output batches
//!   steps/<id>/failures-00000.parquet  that batch's failures (written before its part)
//!   steps/<id>/rejections-00000.parquet
//!   steps/<id>/<side>.parquet          side tables (duplicates, clusters)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use retort_core::accounts::AccountingSnapshot;

use crate::error::{BoxError, StoreError};
use serde::{Deserialize, Serialize};

/// The manifest shape this retort writes. Version 1 (before the field existed) reads
/// the same; a newer version is refused with a message naming the retort that wrote it.
pub const MANIFEST_VERSION: u32 = 2;

/// A run directory's paths.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> RunDir {
        RunDir { root: root.into() }
    }
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `manifest.json`.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }
    /// `cache.sqlite`.
    pub fn cache(&self) -> PathBuf {
        self.root.join("cache.sqlite")
    }
    /// `.lock`, the writer's lock.
    pub fn lock(&self) -> PathBuf {
        self.root.join(".lock")
    }
    /// `failures.parquet`, gathered from every step.
    pub fn failures(&self) -> PathBuf {
        self.root.join("failures.parquet")
    }
    /// `rejections.parquet`, gathered from every step.
    pub fn rejections(&self) -> PathBuf {
        self.root.join("rejections.parquet")
    }
    /// `report.html`, where `retort report` writes by default.
    pub fn report(&self) -> PathBuf {
        self.root.join("report.html")
    }
    /// `steps/`.
    pub fn steps(&self) -> PathBuf {
        self.root.join("steps")
    }
    /// One step's checkpoint folder.
    pub fn step(&self, id: &str) -> StepPaths {
        StepPaths {
            dir: self.steps().join(id),
        }
    }
    /// What `--fresh` removes: every checkpoint and run-level table (not the cache).
    pub fn checkpoints(&self) -> [PathBuf; 4] {
        [
            self.steps(),
            self.manifest(),
            self.failures(),
            self.rejections(),
        ]
    }
}

/// The files of one step's checkpoint folder.
#[derive(Clone, Debug)]
pub struct StepPaths {
    dir: PathBuf,
}

/// `<prefix>-00000.parquet`.
fn numbered(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:05}.parquet")
}

impl StepPaths {
    /// The folder over an existing path (`RUN_DIR/steps/<id>`).
    pub fn at(dir: impl Into<PathBuf>) -> StepPaths {
        StepPaths { dir: dir.into() }
    }
    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    /// Committed part `i` (the commit point of batch `i`).
    pub fn part(&self, i: usize) -> PathBuf {
        self.dir.join(numbered("part", i))
    }
    /// Batch `i`'s failures.
    pub fn failures(&self, i: usize) -> PathBuf {
        self.dir.join(numbered("failures", i))
    }
    /// Batch `i`'s rejections.
    pub fn rejections(&self, i: usize) -> PathBuf {
        self.dir.join(numbered("rejections", i))
    }
    /// A side table (`duplicates`, `clusters`).
    pub fn side(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.parquet"))
    }
    /// Which batch a file of this folder belongs to: `("part" | "failures" |
    /// "rejections", i)`, or `None` for any other file.
    pub fn batch_of(file_name: &str) -> Option<(&str, usize)> {
        ["part", "failures", "rejections"]
            .into_iter()
            .find_map(|p| {
                let n = file_name
                    .strip_prefix(p)?
                    .strip_prefix('-')?
                    .strip_suffix(".parquet")?
                    .parse()
                    .ok()?;
                Some((p, n))
            })
    }
    /// How many parts are committed: the length of the run `part-00000`, `part-00001`, …
    pub fn count_parts(&self) -> usize {
        let mut n = 0;
        while self.part(n).exists() {
            n += 1;
        }
        n
    }
    /// The first `n` parts' paths, in order.
    pub fn parts(&self, n: usize) -> Vec<PathBuf> {
        (0..n).map(|i| self.part(i)).collect()
    }
    /// Every committed record of the step, in part order.
    pub fn read_records(&self) -> Result<Vec<retort_core::Record>, StoreError> {
        let mut out = Vec::new();
        for p in self.parts(self.count_parts()) {
            out.extend(crate::read_records(&p)?);
        }
        Ok(out)
    }
}

/// What `steps/<id>/state.json` says about a step.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepFileState {
    /// Config hash the checkpoints belong to.
    pub config_hash: String,
    /// True once the step finished; only then is it skipped on the next run.
    pub done: bool,
    /// Output rows when done.
    pub rows: u64,
    /// Input rows consumed when done (absent in state files of older versions).
    #[serde(default)]
    pub rows_in: u64,
    /// Committed part files when done (absent in state files of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<usize>,
    /// Side tables the step wrote (`duplicates`, `clusters`), without `.parquet`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub side_tables: Vec<String>,
    /// Files the step wrote for the user (exports, the report), relative to the run
    /// directory when inside it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<PathBuf>,
}

fn version_1() -> u32 {
    1
}

/// The manifest of one run directory: what the run did. Never holds a secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// The shape's version ([`MANIFEST_VERSION`] when written by this retort).
    #[serde(default = "version_1")]
    pub schema_version: u32,
    /// Pipeline name.
    pub name: String,
    /// retort version that wrote it.
    pub retort_version: String,
    /// The pipeline file path.
    pub pipeline_file: String,
    /// The command that started the run, as typed (`--set` values under a teacher's or
    /// the embedder's `headers` redacted). Absent in manifests written before 0.1 kept
    /// it, and when the run was started from the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// sha256 of the resolved pipeline.
    pub pipeline_hash: String,
    /// The pipeline after `--set` overrides, header values redacted.
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
    #[serde(default)]
    pub teachers: AccountingSnapshot,
    /// Files written for the user.
    pub outputs: Vec<String>,
}

/// One step's line in the manifest.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StepReport {
    /// Step id.
    pub id: String,
    /// Step kind.
    pub kind: String,
    /// `done`, `skipped (unchanged)`, `failed`, `interrupted`, `running`, `waiting`,
    /// `pending`.
    pub status: String,
    /// Rows read (a source's rows read from files).
    pub rows_in: u64,
    /// Rows written.
    pub rows_out: u64,
    /// Rows that were already committed when this run started (resume).
    pub resumed_rows: u64,
    /// Records the step could not produce.
    pub failures: u64,
    /// Records left pending by transient faults (connection, timeout, 5xx, 429): not
    /// committed, retried by the next run of the same command.
    #[serde(default)]
    pub pending: u64,
    /// Records sent back to the queue after a transient fault during this run.
    #[serde(default)]
    pub requeued: u64,
    /// Rejections by reason.
    #[serde(default)]
    pub rejected: BTreeMap<String, u64>,
    /// Step metrics (e.g. dedup recall).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Wall time of this invocation.
    pub seconds: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// What the user should know that did not stop the step (an empty input file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Manifest {
    /// Reads `run_dir`'s manifest. Errors name the file and say what to do: not a run
    /// directory, not JSON, or written by a retort whose manifest this one cannot read.
    pub fn read(run_dir: &Path) -> Result<Manifest, StoreError> {
        let path = RunDir::new(run_dir).manifest();
        let bad = |message: String, source: Option<BoxError>| StoreError::Manifest {
            path: path.clone(),
            message,
            source,
        };
        let bytes = std::fs::read(&path).map_err(|e| {
            bad(
                format!(
                    "{}: {e}; is this a run directory (made by `retort run`)?",
                    path.display()
                ),
                Some(Box::new(e)),
            )
        })?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            bad(
                format!("{} is not valid JSON ({e})", path.display()),
                Some(Box::new(e)),
            )
        })?;
        let version = v
            .get("schema_version")
            .and_then(|x| x.as_u64())
            .unwrap_or(1);
        let writer = v
            .get("retort_version")
            .and_then(|x| x.as_str())
            .unwrap_or("an unknown version")
            .to_string();
        if version > MANIFEST_VERSION as u64 {
            return Err(bad(
                format!(
                    "{} was written by retort {writer} (manifest version {version}); this retort ({}) reads up to version {MANIFEST_VERSION}: upgrade retort",
                    path.display(),
                    env!("CARGO_PKG_VERSION")
                ),
                None,
            ));
        }
        serde_json::from_value(v).map_err(|e| {
            bad(
                format!(
                    "{} was written by retort {writer} (manifest version {version}) and cannot be read ({e}); run the pipeline again with this retort to rewrite it (its checkpoints are reused)",
                    path.display()
                ),
                Some(Box::new(e)),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, v: serde_json::Value) {
        std::fs::write(RunDir::new(dir).manifest(), v.to_string()).unwrap();
    }

    fn v1() -> serde_json::Value {
        serde_json::json!({
            "name": "x", "retort_version": "0.1.0", "pipeline_file": "p.toml",
            "pipeline_hash": "h", "pipeline": {}, "status": "complete", "resumed": false,
            "started_at": "t", "finished_at": null, "failures": 0, "rejections": 0,
            "outputs": [],
            "steps": [{"id": "a", "kind": "load", "status": "done", "rows_in": 1,
                       "rows_out": 1, "resumed_rows": 0, "failures": 0, "seconds": 0.1,
                       "error": null}],
            "teachers": {"steps": [], "teachers": {}, "total": {"calls": 3, "cache_hits": 0,
                "requests": 3, "retries": 0, "failures": 0, "prompt_tokens": 1,
                "completion_tokens": 1, "cost_usd": 0.5}, "budget_usd": null,
                "spent_usd": 0.5, "budget_reached": false}
        })
    }

    #[test]
    fn a_version_1_manifest_reads() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), v1());
        let m = Manifest::read(d.path()).unwrap();
        assert_eq!(m.schema_version, 1);
        assert_eq!(m.teachers.total.calls, 3);
        assert_eq!(m.steps[0].pending, 0);
    }

    #[test]
    fn a_newer_or_broken_manifest_says_who_wrote_it() {
        let d = tempfile::tempdir().unwrap();
        let mut v = v1();
        v["schema_version"] = 99.into();
        v["retort_version"] = "9.0.0".into();
        write(d.path(), v);
        let e = Manifest::read(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("retort 9.0.0 (manifest version 99)") && e.contains("upgrade retort"),
            "{e}"
        );

        let mut v = v1();
        v["steps"] = serde_json::json!([{"id": 3}]);
        write(d.path(), v);
        let e = Manifest::read(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("written by retort 0.1.0 (manifest version 1)"),
            "{e}"
        );
        assert!(e.contains("run the pipeline again"), "{e}");

        let e = Manifest::read(&d.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is this a run directory"), "{e}");
    }

    #[test]
    fn batch_files_are_recognised() {
        assert_eq!(
            StepPaths::batch_of("part-00012.parquet"),
            Some(("part", 12))
        );
        assert_eq!(
            StepPaths::batch_of("failures-00000.parquet"),
            Some(("failures", 0))
        );
        assert_eq!(StepPaths::batch_of("duplicates.parquet"), None);
        assert_eq!(StepPaths::batch_of("part-x.parquet"), None);
    }
}
