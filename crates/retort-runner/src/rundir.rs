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
//!
//! Each part's metadata names the input positions its batch finished
//! (`retort.done`, ranges as JSON; see [`PositionSet`]). Their union is what a resume
//! skips: teacher steps finish records in completion order, so it need not be a
//! prefix. Parts written before positions were recorded carry only the cumulative
//! `retort.consumed`, read as the range after the previous part's.

use std::fs;
use std::path::{Path, PathBuf};

use retort_core::{Failure, PositionSet, Record, Rejection};
use retort_steps::{Batch, StepError};

const META_CONSUMED: &str = "retort.consumed";
const META_STATE: &str = "retort.state";
const META_HASH: &str = "retort.config_hash";
const META_DONE: &str = "retort.done";
const META_ROWS_AT: &str = "retort.rows_at";
const META_FAILED_AT: &str = "retort.failed_at";
const META_REJECTED_AT: &str = "retort.rejected_at";

pub use retort_store::StepFileState;
use retort_store::{RunDir, StepPaths};

/// One step's checkpoint folder.
pub struct StepDir {
    dir: PathBuf,
    hash: String,
    parts: usize,
    done: PositionSet,
    state: Option<serde_json::Value>,
    rows: u64,
    side_tables: Vec<String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> StepError + '_ {
    move |e| StepError::io(path.display().to_string())(e)
}

/// A checkpoint file whose content cannot be used, naming the file.
fn broken(path: &Path, message: String) -> StepError {
    StepError::Store(retort_store::StoreError::Content {
        path: path.to_path_buf(),
        message,
    })
}

/// Write a small file atomically (unique temp name, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StepError> {
    retort_store::write_bytes_atomic(path, bytes).map_err(StepError::from)
}

/// The one writer of a run directory: an exclusive OS lock (`flock`) on
/// `RUN_DIR/.lock`, held for the life of the value and released by the OS when the
/// process ends however it ends (SIGKILL included), so a stale lock never blocks a
/// later run. The file names the holder for the message a second writer gets. Readers
/// (`inspect`, `plan`) never take it.
#[derive(Debug)]
pub struct RunLock {
    _file: fs::File,
}

impl RunLock {
    /// Takes the lock or fails at once (no waiting) with a message naming the holder.
    pub fn acquire(run_dir: &Path) -> Result<RunLock, String> {
        use std::io::{Read, Seek, Write};
        if !run_dir.is_dir() {
            return Err(format!(
                "{} is not a directory (hint: give the run directory a `retort run` wrote, e.g. runs/<name>)",
                run_dir.display()
            ));
        }
        let path = RunDir::new(run_dir).lock();
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                format!(
                    "cannot open the run directory's lock {}: {e}",
                    path.display()
                )
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another retort process".to_string()
                } else {
                    format!("another retort process ({})", holder.replace('\n', ", "))
                };
                return Err(format!(
                    "{} is in use by {who}; two runs in one directory would pay twice and mix their answers. \
                     Wait for it to finish (it resumes from the same checkpoints), or give this run its own directory with --out DIR",
                    run_dir.display()
                ));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        let info = format!(
            "pid {}\ncommand {}\nsince {}\n",
            std::process::id(),
            command_line(),
            crate::manifest::now()
        );
        // Best effort: the lock is what excludes; the text only names the holder.
        let _ = file
            .set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| file.write_all(info.as_bytes()));
        Ok(RunLock { _file: file })
    }
}

/// This process's command line as the manifest records it: `--set` values under a
/// secret key replaced ([`crate::manifest::redacted_command`]), since the lock file and
/// error messages are on disk and in logs.
pub(crate) fn command_line() -> String {
    crate::manifest::redacted_command(&std::env::args().collect::<Vec<_>>())
}

/// The command that resumes this run: the same command without `--fresh`, which would
/// throw away the committed progress the message promises to keep.
pub(crate) fn resume_command() -> String {
    let args: Vec<String> = std::env::args().filter(|a| a != "--fresh").collect();
    crate::manifest::redacted_command(&args)
}

impl StepDir {
    /// Path of a step's folder.
    pub fn path_for(run_dir: &Path, id: &str) -> PathBuf {
        RunDir::new(run_dir).step(id).dir().to_path_buf()
    }

    /// What the step's `state.json` says, if it is there and readable.
    pub fn state(run_dir: &Path, id: &str) -> Option<StepFileState> {
        let p = RunDir::new(run_dir).step(id).state();
        serde_json::from_slice(&fs::read(p).ok()?).ok()
    }

    /// Whether the step finished before with this config hash.
    pub fn is_done(run_dir: &Path, id: &str, hash: &str) -> Option<StepFileState> {
        Self::state(run_dir, id).filter(|s| s.done && s.config_hash == hash)
    }

    /// Open a step folder for (re)running with config `hash`. Checkpoints of another
    /// hash are discarded; checkpoints of this hash are kept and resumed from.
    pub fn open(run_dir: &Path, id: &str, hash: &str) -> Result<StepDir, StepError> {
        let dir = Self::path_for(run_dir, id);
        let state_path = StepPaths::at(&dir).state();
        let same = fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<StepFileState>(&b).ok())
            .is_some_and(|s| s.config_hash == hash && !s.done);
        if !same && dir.exists() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        retort_store::remove_temp_files(&dir)?;
        let mut sd = StepDir {
            dir,
            hash: hash.to_string(),
            parts: 0,
            done: PositionSet::new(),
            state: None,
            rows: 0,
            side_tables: Vec::new(),
        };
        // The committed prefix: parts that are there and whose footer reads. A part past
        // a gap or a corrupt one (a disk fault, a hand-deleted file) is not believed:
        // it and everything after it are removed, so those records are recomputed
        // instead of read as empty or failing every resume.
        let mut metas = Vec::new();
        loop {
            let path = StepPaths::at(&sd.dir).part(sd.parts);
            if !path.exists() {
                break;
            }
            match retort_store::read_meta(&path)
                .and_then(|m| Ok((m, retort_store::count_rows(&path)?)))
            {
                Ok(m) => metas.push(m),
                Err(e) => {
                    tracing::warn!(
                        "step `{id}`: {} is unreadable ({e}); recomputing the records it held",
                        path.display()
                    );
                    break;
                }
            }
            sd.parts += 1;
        }
        // Debris of a crash between a batch's side files and its part file, and parts
        // past the committed prefix.
        for entry in fs::read_dir(&sd.dir).map_err(io(&sd.dir))? {
            let entry = entry.map_err(io(&sd.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if let Some((_, n)) = StepPaths::batch_of(&name) {
                if n >= sd.parts {
                    fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
                }
            }
        }
        let mut cumulative = 0u64;
        for (i, (meta, rows)) in metas.into_iter().enumerate() {
            let path = StepPaths::at(&sd.dir).part(i);
            let consumed: u64 = meta
                .get(META_CONSUMED)
                .and_then(|v| v.parse().ok())
                .unwrap_or(cumulative);
            match meta.get(META_DONE) {
                Some(v) => {
                    let done: PositionSet = serde_json::from_str(v).map_err(|e| {
                        broken(
                            &path,
                            format!(
                                "unreadable `{META_DONE}` metadata ({e}); delete the step folder {} to recompute it",
                                sd.dir.display()
                            ),
                        )
                    })?;
                    sd.done.union(&done);
                }
                None => sd.done.insert_range(cumulative, consumed),
            }
            cumulative = consumed;
            if i + 1 == sd.parts {
                sd.state = meta
                    .get(META_STATE)
                    .and_then(|v| serde_json::from_str(v).ok());
            }
            sd.rows += rows;
        }
        write_atomic(
            &state_path,
            &serde_json::to_vec_pretty(&StepFileState {
                config_hash: hash.to_string(),
                ..Default::default()
            })
            .expect("state serialises"),
        )?;
        Ok(sd)
    }

    /// Committed parts so far.
    pub fn parts(&self) -> usize {
        self.parts
    }
    /// Input rows finished by committed parts (for steps that consume in order, the
    /// length of that prefix).
    pub fn consumed(&self) -> u64 {
        self.done.len()
    }
    /// Input positions finished by committed parts.
    pub fn done(&self) -> &PositionSet {
        &self.done
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
                &StepPaths::at(&self.dir).failures(i),
                &batch.failures,
            )?;
        }
        if !batch.rejections.is_empty() {
            retort_store::write_rejections_atomic(
                &StepPaths::at(&self.dir).rejections(i),
                &batch.rejections,
            )?;
        }
        let finished = match &batch.done {
            Some(d) => d.clone(),
            None => {
                let start = self.done.prefix();
                PositionSet::range(start, start + batch.consumed)
            }
        };
        let mut done = self.done.clone();
        done.union(&finished);
        let consumed = done.len().to_string();
        let finished_json = serde_json::to_string(&finished).expect("positions serialise");
        let state = batch
            .state
            .as_ref()
            .map(|s| s.to_string())
            .or_else(|| self.state.as_ref().map(|s| s.to_string()))
            .unwrap_or_default();
        let origins = batch.origins.as_ref().map(|o| {
            let j = |v: &Vec<u64>| serde_json::to_string(v).expect("positions serialise");
            (j(&o.records), j(&o.failures), j(&o.rejections))
        });
        let mut meta: Vec<(&str, &str)> = vec![
            (META_CONSUMED, &consumed),
            (META_DONE, &finished_json),
            (META_STATE, &state),
            (META_HASH, &self.hash),
        ];
        if let Some((r, f, j)) = &origins {
            meta.extend([
                (META_ROWS_AT, r.as_str()),
                (META_FAILED_AT, f),
                (META_REJECTED_AT, j),
            ]);
        }
        retort_store::write_records_atomic_with_meta(
            &StepPaths::at(&self.dir).part(i),
            &batch.records,
            &meta,
        )?;
        self.parts += 1;
        self.done = done;
        if batch.state.is_some() {
            self.state = batch.state.clone();
        }
        self.rows += batch.records.len() as u64;
        Ok(())
    }

    /// Write a named side table atomically.
    pub fn side_table(&mut self, name: &str, records: &[Record]) -> Result<(), StepError> {
        retort_store::write_records_atomic(&StepPaths::at(&self.dir).side(name), records)?;
        if !self.side_tables.iter().any(|n| n == name) {
            self.side_tables.push(name.to_string());
        }
        Ok(())
    }

    /// Mark the step complete, with what [`verify`] will check before believing it.
    pub fn mark_done(&self, outputs: Vec<PathBuf>) -> Result<(), StepError> {
        write_atomic(
            &StepPaths::at(&self.dir).state(),
            &serde_json::to_vec_pretty(&StepFileState {
                config_hash: self.hash.clone(),
                done: true,
                rows: self.rows,
                rows_in: self.done.len(),
                parts: Some(self.parts),
                side_tables: self.side_tables.clone(),
                outputs,
            })
            .expect("state serialises"),
        )
    }
}

/// Checks a finished step's checkpoints against its `state.json` before a run skips it:
/// every part present with a readable footer and the row count it promised, every side
/// table and output file there (Parquet ones readable). `Err` names the first file that
/// is missing or broken; the caller recomputes the step rather than read it as empty.
pub fn verify(run_dir: &Path, id: &str, state: &StepFileState) -> Result<(), String> {
    let dir = StepDir::path_for(run_dir, id);
    let readable = |path: &Path| -> Result<u64, String> {
        if !path.exists() {
            return Err(format!("{} is missing", path.display()));
        }
        retort_store::count_rows(path)
            .map_err(|e| format!("{} is unreadable ({e})", path.display()))
    };
    let parts = StepPaths::at(&dir).count_parts();
    if let Some(want) = state.parts {
        if parts < want {
            return Err(format!(
                "{} is missing (state.json lists {want} parts)",
                StepPaths::at(&dir).part(parts).display()
            ));
        }
    }
    let mut rows = 0;
    for p in StepPaths::at(&dir).parts(state.parts.unwrap_or(parts)) {
        rows += readable(&p)?;
    }
    if rows != state.rows {
        return Err(format!(
            "the parts in {} hold {rows} rows, state.json says {}",
            dir.display(),
            state.rows
        ));
    }
    for name in &state.side_tables {
        readable(&StepPaths::at(&dir).side(name))?;
    }
    for out in &state.outputs {
        let out = &run_dir.join(out);
        if out.extension().is_some_and(|e| e == "parquet") {
            readable(out)?;
        } else if !out.exists() {
            return Err(format!("{} is missing", out.display()));
        }
    }
    Ok(())
}

/// Read every committed record of a step.
pub fn read_step_records(step_dir: &Path) -> Result<Vec<Record>, StepError> {
    StepPaths::at(step_dir)
        .read_records()
        .map_err(StepError::from)
}

/// Gather every step's failures and rejections into the run-level tables.
pub fn gather_tables(run_dir: &Path, step_ids: &[String]) -> Result<(u64, u64), StepError> {
    let mut failures: Vec<Failure> = Vec::new();
    let mut rejections: Vec<Rejection> = Vec::new();
    for id in step_ids {
        let dir = StepDir::path_for(run_dir, id);
        let n = StepPaths::at(&dir).count_parts();
        for i in 0..n {
            let f = StepPaths::at(&dir).failures(i);
            if f.exists() {
                failures.extend(retort_store::read_failures(&f)?);
            }
            let r = StepPaths::at(&dir).rejections(i);
            if r.exists() {
                rejections.extend(retort_store::read_rejections(&r)?);
            }
        }
    }
    retort_store::write_failures_atomic(&RunDir::new(run_dir).failures(), &failures)?;
    retort_store::write_rejections_atomic(&RunDir::new(run_dir).rejections(), &rejections)?;
    Ok((failures.len() as u64, rejections.len() as u64))
}

/// What `--retry-failed` did to one step's checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retried {
    /// Inputs whose outcome was removed, so the step redoes them.
    pub inputs: u64,
    /// Failure rows of the chosen classes that could not be tied to an input (steps
    /// that commit in input order, e.g. generators): left as they are.
    pub untied: u64,
}

/// For `retort run --retry-failed`: removes from a step's committed parts every input
/// that has a failure of one of `classes` (all classes when empty) — its records,
/// failures and rejections, and its position from the done set — so the resumed step
/// redoes exactly those inputs. Parts are rewritten atomically, and the step is marked
/// unfinished. Only parts that record which input each row came from qualify.
pub fn retry_failed(run_dir: &Path, id: &str, classes: &[String]) -> Result<Retried, StepError> {
    let dir = StepDir::path_for(run_dir, id);
    let mut out = Retried::default();
    let wanted = |c: &str| classes.is_empty() || classes.iter().any(|k| k == c);
    for i in 0..StepPaths::at(&dir).count_parts() {
        let f_path = StepPaths::at(&dir).failures(i);
        if !f_path.exists() {
            continue;
        }
        let failures = retort_store::read_failures(&f_path)?;
        if !failures.iter().any(|f| wanted(&f.class)) {
            continue;
        }
        let p_path = StepPaths::at(&dir).part(i);
        let meta = retort_store::read_meta(&p_path)?;
        let positions = |key: &str| -> Result<Option<Vec<u64>>, StepError> {
            meta.get(key)
                .map(|v| {
                    serde_json::from_str(v)
                        .map_err(|e| broken(&p_path, format!("unreadable `{key}` ({e})")))
                })
                .transpose()
        };
        let (Some(rows_at), Some(failed_at), Some(rejected_at)) = (
            positions(META_ROWS_AT)?,
            positions(META_FAILED_AT)?,
            positions(META_REJECTED_AT)?,
        ) else {
            out.untied += failures.iter().filter(|f| wanted(&f.class)).count() as u64;
            continue;
        };
        let redo: std::collections::BTreeSet<u64> = failures
            .iter()
            .zip(&failed_at)
            .filter(|(f, _)| wanted(&f.class))
            .map(|(_, p)| *p)
            .collect();
        let keep = |at: &[u64], n: usize| -> Vec<bool> {
            (0..n)
                .map(|k| at.get(k).is_none_or(|p| !redo.contains(p)))
                .collect()
        };
        let records = retort_store::read_records(&p_path)?;
        let kr = keep(&rows_at, records.len());
        let kf = keep(&failed_at, failures.len());
        let r_path = StepPaths::at(&dir).rejections(i);
        let rejections = if r_path.exists() {
            retort_store::read_rejections(&r_path)?
        } else {
            vec![]
        };
        let kj = keep(&rejected_at, rejections.len());
        let pick = |v: &[u64], k: &[bool]| -> Vec<u64> {
            v.iter()
                .zip(k)
                .filter(|(_, k)| **k)
                .map(|(p, _)| *p)
                .collect()
        };
        let mut done: PositionSet = meta
            .get(META_DONE)
            .map(|v| serde_json::from_str(v))
            .transpose()
            .map_err(|e| broken(&p_path, format!("unreadable `{META_DONE}` ({e})")))?
            .unwrap_or_default();
        for p in &redo {
            done.remove(*p);
        }
        let j = |v: &Vec<u64>| serde_json::to_string(v).expect("positions serialise");
        let new_meta: Vec<(String, String)> = meta
            .iter()
            .map(|(k, v)| {
                let v = match k.as_str() {
                    META_DONE => serde_json::to_string(&done).expect("positions serialise"),
                    META_ROWS_AT => j(&pick(&rows_at, &kr)),
                    META_FAILED_AT => j(&pick(&failed_at, &kf)),
                    META_REJECTED_AT => j(&pick(&rejected_at, &kj)),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect();
        // Side files first, the part (the commit point) last, as in a commit: a crash
        // in between leaves the removed inputs' records, which the rerun's retry then
        // removes again.
        let failures = kept(failures, &kf);
        retort_store::write_failures_atomic(&f_path, &failures)?;
        if r_path.exists() {
            retort_store::write_rejections_atomic(&r_path, &kept(rejections, &kj))?;
        }
        let meta_refs: Vec<(&str, &str)> = new_meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        retort_store::write_records_atomic_with_meta(&p_path, &kept(records, &kr), &meta_refs)?;
        out.inputs += redo.len() as u64;
    }
    if out.inputs > 0 {
        if let Some(mut st) = StepDir::state(run_dir, id) {
            st.done = false;
            write_atomic(
                &StepPaths::at(&dir).state(),
                &serde_json::to_vec_pretty(&st).expect("state serialises"),
            )?;
        }
    }
    Ok(out)
}

/// The items whose `keep` flag is set.
fn kept<T>(items: Vec<T>, keep: &[bool]) -> Vec<T> {
    items
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(x, _)| x)
        .collect()
}
