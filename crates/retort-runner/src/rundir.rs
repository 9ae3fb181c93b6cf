//! The run directory: per-step checkpoints committed atomically batch by batch, so a
//! crashed or interrupted run resumes after its last committed batch.
//!
//! ```text
//! runs/<name>/
//!   manifest.json
//!   steps/<id>/state.json              config hash + status (done only when complete)
//!   steps/<id>/part-00000.parquet      committed output batches (resume cursor in metadata)
//!   steps/<id>/failures-00000.parquet  failures of the batch, written before its part
//!   steps/<id>/rejections-00000.parquet
//!   steps/<id>/<side>.parquet          side tables (e.g. duplicates)
//!   failures.parquet · rejections.parquet   all steps', gathered at the end of a run
//! ```
//!
//! A batch commits in a fixed order: its failures and rejections files first, its
//! `part-N` file last. The part file is the commit point; a failures/rejections file
//! without its part file is the debris of a crash and is removed on resume, so nothing is
//! counted twice.

use std::fs;
use std::path::{Path, PathBuf};

use retort_core::{Failure, Record, Rejection};
use retort_steps::{Batch, StepError};
use serde::{Deserialize, Serialize};

const META_CONSUMED: &str = "retort.consumed";
const META_STATE: &str = "retort.state";
const META_HASH: &str = "retort.config_hash";

/// What `state.json` says about a step.
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
}

/// One step's checkpoint folder.
pub struct StepDir {
    dir: PathBuf,
    hash: String,
    parts: usize,
    consumed: u64,
    state: Option<serde_json::Value>,
    rows: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StepError + '_ {
    move |e| StepError::Io(format!("{}: {e}", path.display()))
}

fn store(e: retort_store::StoreError) -> StepError {
    StepError::Io(e.to_string())
}

/// Write a small file atomically (temp name, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StepError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn part_name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:05}.parquet")
}

impl StepDir {
    /// Path of a step's folder.
    pub fn path_for(run_dir: &Path, id: &str) -> PathBuf {
        run_dir.join("steps").join(id)
    }

    /// Whether the step finished before with this config hash.
    pub fn is_done(run_dir: &Path, id: &str, hash: &str) -> Option<StepFileState> {
        let p = Self::path_for(run_dir, id).join("state.json");
        let s: StepFileState = serde_json::from_slice(&fs::read(p).ok()?).ok()?;
        (s.done && s.config_hash == hash).then_some(s)
    }

    /// Open a step folder for (re)running with config `hash`. Checkpoints of another
    /// hash are discarded; checkpoints of this hash are kept and resumed from.
    pub fn open(run_dir: &Path, id: &str, hash: &str) -> Result<StepDir, StepError> {
        let dir = Self::path_for(run_dir, id);
        let state_path = dir.join("state.json");
        let same = fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<StepFileState>(&b).ok())
            .is_some_and(|s| s.config_hash == hash && !s.done);
        if !same && dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        retort_store::remove_temp_files(&dir).map_err(store)?;
        let mut sd = StepDir {
            dir,
            hash: hash.to_string(),
            parts: 0,
            consumed: 0,
            state: None,
            rows: 0,
        };
        while sd.dir.join(part_name("part", sd.parts)).exists() {
            sd.parts += 1;
        }
        // Debris of a crash between a batch's side files and its part file.
        for entry in fs::read_dir(&sd.dir).map_err(io(&sd.dir))? {
            let entry = entry.map_err(io(&sd.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            for prefix in ["failures-", "rejections-"] {
                if let Some(n) = name
                    .strip_prefix(prefix)
                    .and_then(|r| r.strip_suffix(".parquet"))
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    if n >= sd.parts {
                        fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
                    }
                }
            }
        }
        if sd.parts > 0 {
            let last = sd.dir.join(part_name("part", sd.parts - 1));
            let meta = retort_store::read_meta(&last).map_err(store)?;
            sd.consumed = meta
                .get(META_CONSUMED)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            sd.state = meta
                .get(META_STATE)
                .and_then(|v| serde_json::from_str(v).ok());
            for i in 0..sd.parts {
                sd.rows +=
                    retort_store::count_rows(&sd.dir.join(part_name("part", i))).map_err(store)?;
            }
        }
        write_atomic(
            &state_path,
            &serde_json::to_vec_pretty(&StepFileState {
                config_hash: hash.to_string(),
                done: false,
                rows: 0,
                rows_in: 0,
            })
            .expect("state serialises"),
        )?;
        Ok(sd)
    }

    /// Committed parts so far.
    pub fn parts(&self) -> usize {
        self.parts
    }
    /// Input rows consumed by committed parts.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }
    /// Output rows committed.
    pub fn rows(&self) -> u64 {
        self.rows
    }
    /// Resume state of the last committed part.
    pub fn resume_state(&self) -> Option<serde_json::Value> {
        self.state.clone()
    }
    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Commit one batch durably: side files first, the part file last (commit point).
    pub fn commit(&mut self, batch: &Batch) -> Result<(), StepError> {
        let i = self.parts;
        if !batch.failures.is_empty() {
            retort_store::write_failures_atomic(
                &self.dir.join(part_name("failures", i)),
                &batch.failures,
            )
            .map_err(store)?;
        }
        if !batch.rejections.is_empty() {
            retort_store::write_rejections_atomic(
                &self.dir.join(part_name("rejections", i)),
                &batch.rejections,
            )
            .map_err(store)?;
        }
        let consumed = (self.consumed + batch.consumed).to_string();
        let state = batch
            .state
            .as_ref()
            .map(|s| s.to_string())
            .or_else(|| self.state.as_ref().map(|s| s.to_string()))
            .unwrap_or_default();
        retort_store::write_records_atomic_with_meta(
            &self.dir.join(part_name("part", i)),
            &batch.records,
            &[
                (META_CONSUMED, &consumed),
                (META_STATE, &state),
                (META_HASH, &self.hash),
            ],
        )
        .map_err(store)?;
        self.parts += 1;
        self.consumed += batch.consumed;
        if batch.state.is_some() {
            self.state = batch.state.clone();
        }
        self.rows += batch.records.len() as u64;
        Ok(())
    }

    /// Write a named side table atomically.
    pub fn side_table(&self, name: &str, records: &[Record]) -> Result<(), StepError> {
        retort_store::write_records_atomic(&self.dir.join(format!("{name}.parquet")), records)
            .map_err(store)?;
        Ok(())
    }

    /// Mark the step complete.
    pub fn mark_done(&self) -> Result<(), StepError> {
        write_atomic(
            &self.dir.join("state.json"),
            &serde_json::to_vec_pretty(&StepFileState {
                config_hash: self.hash.clone(),
                done: true,
                rows: self.rows,
                rows_in: self.consumed,
            })
            .expect("state serialises"),
        )
    }
}

/// Paths of a step's committed part files, in order.
pub fn part_paths(step_dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| step_dir.join(part_name("part", i)))
        .collect()
}

/// Number of committed part files in a step folder.
pub fn count_parts(step_dir: &Path) -> usize {
    let mut n = 0;
    while step_dir.join(part_name("part", n)).exists() {
        n += 1;
    }
    n
}

/// Read every committed record of a step.
pub fn read_step_records(step_dir: &Path) -> Result<Vec<Record>, StepError> {
    let mut out = Vec::new();
    for p in part_paths(step_dir, count_parts(step_dir)) {
        out.extend(retort_store::read_records(&p).map_err(store)?);
    }
    Ok(out)
}

/// Gather every step's failures and rejections into the run-level tables.
pub fn gather_tables(run_dir: &Path, step_ids: &[String]) -> Result<(u64, u64), StepError> {
    let mut failures: Vec<Failure> = Vec::new();
    let mut rejections: Vec<Rejection> = Vec::new();
    for id in step_ids {
        let dir = StepDir::path_for(run_dir, id);
        let n = count_parts(&dir);
        for i in 0..n {
            let f = dir.join(part_name("failures", i));
            if f.exists() {
                failures.extend(retort_store::read_failures(&f).map_err(store)?);
            }
            let r = dir.join(part_name("rejections", i));
            if r.exists() {
                rejections.extend(retort_store::read_rejections(&r).map_err(store)?);
            }
        }
    }
    retort_store::write_failures_atomic(&run_dir.join("failures.parquet"), &failures)
        .map_err(store)?;
    retort_store::write_rejections_atomic(&run_dir.join("rejections.parquet"), &rejections)
        .map_err(store)?;
    Ok((failures.len() as u64, rejections.len() as u64))
}
