use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retort_core::{Failure, PositionSet, Record, Rejection};
use retort_teacher::{Embedder, Teacher, TeacherError};

use crate::cpu::Cpu;

/// Everything a running step may use besides its inputs and output.
#[derive(Clone)]
pub struct StepCtx {
    /// Step id from the pipeline file.
    pub step_id: String,
    /// Step kind (`load`, `score`, …).
    pub kind: String,
    /// Directory of the pipeline file: relative paths in options resolve against it.
    pub base_dir: PathBuf,
    /// The run directory (`runs/<name>/`).
    pub run_dir: PathBuf,
    /// Pipeline seed mixed with the step id, for seeded sampling and generation.
    pub seed: u64,
    /// Teachers by name.
    pub teachers: BTreeMap<String, Arc<dyn Teacher>>,
    /// The pipeline's embedder, when one is declared.
    pub embedder: Option<Arc<dyn Embedder>>,
    /// Bridge to the CPU pool for heavy work.
    pub cpu: Cpu,
    /// Live counters shown in progress and written to the manifest.
    pub stats: Arc<StepStats>,
    /// The step's share of teacher calls: at most `concurrency` permits, taken by
    /// [`crate::calls::chat`] for the length of one call. Set by the call pool
    /// ([`crate::calls::run_pool`]); `None` outside it (no step-level cap).
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Set when the run is asked to stop (SIGINT, SIGTERM, SIGHUP): the call pool then
    /// starts nothing new, lets the calls under way finish and commits them.
    pub stopping: Stopping,
}

/// The run's stop request as steps see it. The default never fires (tests, tools).
#[derive(Clone, Debug)]
pub struct Stopping(tokio::sync::watch::Receiver<bool>);

impl Default for Stopping {
    fn default() -> Self {
        // The sender is dropped at once: `wait` then never returns.
        Stopping(tokio::sync::watch::channel(false).1)
    }
}

impl Stopping {
    /// A stop request and the handle that raises it.
    pub fn new() -> (tokio::sync::watch::Sender<bool>, Stopping) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Stopping(rx))
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once a stop is asked for; never, when nobody can ask.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl StepCtx {
    /// The named teacher, or an error naming the step (compile checks this too).
    pub fn teacher(&self, name: &str) -> Result<Arc<dyn Teacher>, StepError> {
        self.teachers.get(name).cloned().ok_or_else(|| {
            StepError::Config(format!(
                "step `{}`: teacher `{name}` is not declared under [teachers]",
                self.step_id
            ))
        })
    }

    /// The embedder, or an error naming the step.
    pub fn embedder(&self) -> Result<Arc<dyn Embedder>, StepError> {
        self.embedder.clone().ok_or_else(|| {
            StepError::Config(format!(
                "step `{}` needs an [embedder] section in the pipeline file",
                self.step_id
            ))
        })
    }
}

/// Live counters of one step. The runner reads them for progress bars and the manifest.
#[derive(Debug, Default)]
pub struct StepStats {
    /// Expected total of units (rows or calls) when known, for the ETA.
    pub total: AtomicU64,
    /// Units done so far.
    pub done: AtomicU64,
    /// Rejections by reason.
    pub rejected: Mutex<BTreeMap<String, u64>>,
    /// Free-form numbers the step wants in the manifest (e.g. `dedup_recall`).
    pub metrics: Mutex<BTreeMap<String, f64>>,
    /// Files the step wrote for the user (export paths), listed in the manifest.
    pub outputs: Mutex<Vec<String>>,
    /// The same files as paths, kept in the step's `state.json` so a later run can
    /// check they are still there before it skips the step.
    pub output_files: Mutex<Vec<std::path::PathBuf>>,
    /// Records left pending by a transient fault (not committed; the next run retries).
    pub pending: AtomicU64,
    /// Records sent back to the queue after a transient fault in this invocation.
    pub requeued: AtomicU64,
    /// Set by the call pool: `done` counts records finished, in any order.
    pub pool: std::sync::atomic::AtomicBool,
    /// Input rows an earlier attempt had finished when this one started (resume).
    pub resumed_in: AtomicU64,
    /// Things the user should know that did not stop the step (an empty input file),
    /// shown in the run summary and the manifest.
    pub warnings: Mutex<Vec<String>>,
}

impl StepStats {
    /// Add to the done counter.
    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    /// Set the expected total.
    pub fn set_total(&self, n: u64) {
        self.total.store(n, Ordering::Relaxed);
    }
    /// Count rejections by reason.
    pub fn count_rejections(&self, rejections: &[Rejection]) {
        let mut m = self.rejected.lock().unwrap();
        for r in rejections {
            *m.entry(r.reason.clone()).or_default() += 1;
        }
    }
    /// List a file written for the user in the manifest and the run summary, with its
    /// row count when it has one.
    pub fn add_output(&self, path: &std::path::Path, rows: Option<u64>) {
        let shown = match rows {
            Some(n) => format!("{} ({n} rows)", path.display()),
            None => path.display().to_string(),
        };
        self.outputs.lock().unwrap().push(shown);
        self.output_files.lock().unwrap().push(path.to_path_buf());
    }
    /// A warning for the run summary and the manifest (also logged now).
    pub fn warn(&self, message: String) {
        tracing::warn!("{message}");
        self.warnings.lock().unwrap().push(message);
    }
    /// Record a named metric for the manifest.
    pub fn set_metric(&self, name: &str, v: f64) {
        self.metrics.lock().unwrap().insert(name.to_string(), v);
    }
}

/// Why a step stopped. Per-record problems are not errors: they are [`Failure`] rows.
///
/// The kind says who can act: `Config` the user (fix the file or the input), `Io` and
/// `Store` the machine (disk, permissions; [`StepError::is_disk_full`] reads the cause),
/// `Teacher`/`Transient` the endpoint, `Upstream` nobody here (the cause is reported by
/// the step named), `Internal` us (a task panicked). Causes are kept as sources, so
/// nothing is flattened to text before the CLI prints it.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Bad options or a bad input file (names the file/line/step and says what to do).
    #[error("{0}")]
    Config(String),
    /// An operating-system error outside the storage layer (creating a folder, writing a
    /// pool file).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Reading or writing retort data (Parquet, JSONL, checkpoints) failed; the error
    /// names the file.
    #[error(transparent)]
    Store(#[from] retort_store::StoreError),
    /// A teacher error that stops the whole step (budget reached, endpoint down for
    /// longer than `max_outage_secs`).
    #[error("{0}")]
    Teacher(#[from] TeacherError),
    /// A transient teacher fault (connection, timeout, 5xx, 429 after all retries) for
    /// one record. The call pool keeps that record pending instead of committing a
    /// failure; outside the pool it stops the step like any error (nothing is lost:
    /// the batch is not committed and a rerun asks again).
    #[error("transient: {0}")]
    Transient(TeacherError),
    /// The run was asked to stop; what the step finished is committed.
    #[error("interrupted")]
    Interrupted,
    /// The step stopped with records still to do after transient faults; everything else
    /// is committed and running the same command again retries them.
    #[error("{message}")]
    Unfinished {
        /// How many are left and what to do.
        message: String,
        /// The last transient fault seen.
        source: Option<TeacherError>,
    },
    /// A step this one reads from failed; its own error says why.
    #[error("upstream step `{0}` failed")]
    Upstream(String),
    /// A bug: a task panicked or was cancelled, or a step broke its own contract.
    #[error("{0}")]
    Internal(String),
}

impl StepError {
    /// An [`StepError::Io`] naming what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StepError {
        let context = context.into();
        move |source| StepError::Io { context, source }
    }

    /// Whether the cause is a full disk or an exhausted quota, so the run's message can
    /// say "free space" instead of "fix the cause". Walks the source chain for the OS
    /// error; libraries that flatten their causes to text (SQLite) are read by message.
    pub fn is_disk_full(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::StorageFull
                    || io.kind() == std::io::ErrorKind::QuotaExceeded
                {
                    return true;
                }
            }
            cur = e.source();
        }
        is_disk_full_message(&self.to_string())
    }
}

/// The text a flattened disk-full error carries (`ENOSPC`, `EDQUOT`).
pub fn is_disk_full_message(message: &str) -> bool {
    message.contains("No space left on device")
        || message.contains("os error 28")
        || message.contains("Disk quota exceeded")
        || message.contains("os error 122")
}

/// One committed unit of a step's output.
#[derive(Debug, Default)]
pub struct Batch {
    pub records: Vec<Record>,
    pub failures: Vec<Failure>,
    pub rejections: Vec<Rejection>,
    /// How many input rows this batch finished consuming, for steps that consume their
    /// input in order: the positions after those of earlier commits. Ignored when `done`
    /// is set.
    pub consumed: u64,
    /// The input positions this batch finished, for steps that finish records out of
    /// order (the call pool). After a crash, exactly these are skipped.
    pub done: Option<PositionSet>,
    /// Which input position each record, failure and rejection came from, for steps
    /// whose outputs map to single inputs (the call pool): `retort run --retry-failed`
    /// uses it to redo exactly the inputs whose failures it retries.
    pub origins: Option<Origins>,
    /// Step-private resume state saved with this commit (e.g. a generator's call
    /// counter). The latest committed state is handed back by
    /// [`OutputSink::resume_state`] after a crash.
    pub state: Option<serde_json::Value>,
}

/// Input records with their input positions (see [`PositionSet`]).
#[derive(Debug, Default)]
pub struct Positioned {
    /// Position of each record, ascending.
    pub positions: Vec<u64>,
    /// The records.
    pub records: Vec<Record>,
}

/// The input position behind each item of a [`Batch`], in the batch's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origins {
    /// One per record.
    pub records: Vec<u64>,
    /// One per failure.
    pub failures: Vec<u64>,
    /// One per rejection.
    pub rejections: Vec<u64>,
}

/// A stream of input record batches from one upstream step.
#[async_trait]
pub trait InputStream: Send {
    /// The next batch with each row's input position, `None` at the end. On resume,
    /// rows whose positions committed batches finished are left out.
    async fn next_positioned(&mut self) -> Result<Option<Positioned>, StepError>;

    /// The next batch, `None` at the end (positions dropped).
    async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, StepError> {
        Ok(self.next_positioned().await?.map(|p| p.records))
    }
}

/// A step's inputs, in the order of its `after` list.
pub struct Inputs {
    pub streams: Vec<(String, Box<dyn InputStream>)>,
}

impl Inputs {
    /// No inputs (source steps such as `load`).
    pub fn none() -> Self {
        Inputs { streams: vec![] }
    }

    /// Every input record, all streams concatenated in `after` order.
    pub async fn read_all(self) -> Result<Vec<Record>, StepError> {
        let mut all = Vec::new();
        for (_, mut s) in self.streams {
            while let Some(b) = s.next_batch().await? {
                all.extend(b);
            }
        }
        Ok(all)
    }

    /// Each input's records separately, keyed by upstream step id.
    pub async fn read_each(self) -> Result<Vec<(String, Vec<Record>)>, StepError> {
        let mut out = Vec::new();
        for (id, mut s) in self.streams {
            let mut all = Vec::new();
            while let Some(b) = s.next_batch().await? {
                all.extend(b);
            }
            out.push((id, all));
        }
        Ok(out)
    }

    /// Batches from all streams, in `after` order.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, StepError> {
        Ok(self.next_positioned().await?.map(|p| p.records))
    }

    /// Batches from all streams with their input positions, in `after` order.
    pub async fn next_positioned(&mut self) -> Result<Option<Positioned>, StepError> {
        while let Some((_, s)) = self.streams.first_mut() {
            if let Some(b) = s.next_positioned().await? {
                return Ok(Some(b));
            }
            self.streams.remove(0);
        }
        Ok(None)
    }
}

/// Where a step commits its output. Each commit is atomic and durable: after a crash
/// the run resumes after the last committed batch.
#[async_trait]
pub trait OutputSink: Send {
    /// Commit one batch (records, failures, rejections and the input cursor) atomically.
    async fn commit(&mut self, batch: Batch) -> Result<(), StepError>;
    /// Write a named side table next to the output (e.g. `duplicates`), atomically.
    async fn side_table(&mut self, name: &str, records: Vec<Record>) -> Result<(), StepError>;
    /// Records committed by an earlier interrupted attempt of this step (generators use
    /// this to rebuild their state on resume). Empty on a fresh start.
    async fn committed(&self) -> Result<Vec<Record>, StepError>;
    /// Number of input rows consumed by earlier committed batches.
    fn consumed(&self) -> u64;
    /// The `state` of the last committed batch of an earlier interrupted attempt.
    fn resume_state(&self) -> Option<serde_json::Value>;
}

/// Default rows per input batch (see [`Step::batch_size`]).
pub const DEFAULT_BATCH: usize = 1024;

/// Rows per input batch for pure CPU steps.
pub const CPU_BATCH: usize = 16_384;

/// How the runner feeds a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// No inputs; produces records (`load`).
    Source,
    /// Consumes input batch by batch as upstream commits them (`filter`, `score`, …).
    Streaming,
    /// Needs its whole input before it starts (`dedup`, `cluster`, `pair`, generators).
    WholeTable,
}

/// A runnable step.
#[async_trait]
pub trait Step: Send + Sync {
    /// How the runner feeds this step.
    fn shape(&self) -> Shape;
    /// Rows per input batch. Each batch is one commit, i.e. one durable checkpoint: steps
    /// that call teachers keep the default (a crash loses little), pure CPU steps ask for
    /// large batches so a million rows are not a thousand fsyncs.
    fn batch_size(&self) -> usize {
        DEFAULT_BATCH
    }
    /// Run to completion, committing output through `out`.
    async fn run(
        &self,
        ctx: &StepCtx,
        inputs: Inputs,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError>;
    /// Called once the run has ended (complete or failed; not when interrupted), after
    /// the final manifest is written, for each step that ran to the end in this
    /// invocation. A step whose output describes the run itself refreshes it here: the
    /// report ran while later steps were still going and would otherwise show them so.
    /// Blocking; the runner calls it off the async workers.
    fn after_run(&self, _run_dir: &std::path::Path) -> Result<(), StepError> {
        Ok(())
    }
}

/// A step that maps each input batch to an output batch independently. [`run_map`]
/// drives it; resume then comes for free from the input cursor.
#[async_trait]
pub trait MapStep: Send + Sync {
    /// Process one batch. `consumed` of the result is ignored (set by [`run_map`]).
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError>;

    /// Called once after the last record of this invocation is committed (not after a
    /// stop): for checks over everything the step did, such as a collapsed score column.
    async fn finish(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        Ok(())
    }
}

/// Drive a [`MapStep`]: one commit per input batch. Committing batch *n* overlaps with
/// reading batch *n+1*, so storage and compute run side by side.
pub async fn run_map(
    step: &dyn MapStep,
    ctx: &StepCtx,
    mut inputs: Inputs,
    out: &mut dyn OutputSink,
) -> Result<(), StepError> {
    let mut next = inputs.next_positioned().await?;
    while let Some(batch) = next {
        let n = batch.records.len() as u64;
        let mut b = step.map(ctx, batch.records).await?;
        b.consumed = n;
        b.done = Some(PositionSet::from_positions(batch.positions));
        ctx.stats.count_rejections(&b.rejections);
        ctx.stats.add_done(n);
        let (read, committed) = tokio::join!(inputs.next_positioned(), out.commit(b));
        committed?;
        next = read?;
    }
    step.finish(ctx).await
}

/// A step that needs its whole input before it starts (dedup, cluster, report): it gets
/// every input record at once. [`table_step!`](crate::table_step) implements [`Step`]
/// for it: the CPU batch size, [`Shape::WholeTable`], reading the input and setting the
/// progress total.
#[async_trait]
pub trait TableStep: Send + Sync {
    /// Process the whole input and commit the result.
    async fn run_table(
        &self,
        ctx: &StepCtx,
        records: Vec<Record>,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError>;

    /// As [`Step::after_run`].
    fn after_run(&self, _run_dir: &std::path::Path) -> Result<(), StepError> {
        Ok(())
    }
}

/// Implements [`Step`] for a [`TableStep`].
#[macro_export]
macro_rules! table_step {
    ($t:ty) => {
        #[async_trait::async_trait]
        impl $crate::api::Step for $t {
            fn batch_size(&self) -> usize {
                $crate::api::CPU_BATCH
            }
            fn shape(&self) -> $crate::api::Shape {
                $crate::api::Shape::WholeTable
            }
            async fn run(
                &self,
                ctx: &$crate::api::StepCtx,
                inputs: $crate::api::Inputs,
                out: &mut dyn $crate::api::OutputSink,
            ) -> Result<(), $crate::api::StepError> {
                let records = inputs.read_all().await?;
                ctx.stats.set_total(records.len() as u64);
                $crate::api::TableStep::run_table(self, ctx, records, out).await
            }
            fn after_run(&self, run_dir: &std::path::Path) -> Result<(), $crate::api::StepError> {
                $crate::api::TableStep::after_run(self, run_dir)
            }
        }
    };
}

/// Implements [`Step`] for a [`MapStep`]: a streaming step driven by [`run_map`], with
/// the default batch size or the one given (e.g. [`CPU_BATCH`] for pure CPU steps).
#[macro_export]
macro_rules! map_step {
    ($t:ty) => {
        $crate::map_step!($t, $crate::api::DEFAULT_BATCH);
    };
    ($t:ty, $batch:expr) => {
        #[async_trait::async_trait]
        impl $crate::api::Step for $t {
            fn batch_size(&self) -> usize {
                $batch
            }
            fn shape(&self) -> $crate::api::Shape {
                $crate::api::Shape::Streaming
            }
            async fn run(
                &self,
                ctx: &$crate::api::StepCtx,
                inputs: $crate::api::Inputs,
                out: &mut dyn $crate::api::OutputSink,
            ) -> Result<(), $crate::api::StepError> {
                $crate::api::run_map(self, ctx, inputs, out).await
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use retort_store::StoreError;

    fn enospc() -> std::io::Error {
        std::io::Error::from_raw_os_error(28)
    }

    #[test]
    fn a_full_disk_is_found_through_the_source_chain() {
        let direct = StepError::io("writing pool.jsonl")(enospc());
        assert!(direct.is_disk_full(), "{direct}");
        let stored = StepError::Store(StoreError::Io {
            path: "steps/a/part-00000.parquet".into(),
            source: enospc(),
        });
        assert!(stored.is_disk_full(), "{stored}");
        // The Parquet writer wraps the OS error as an external cause.
        let parquet = StepError::Store(StoreError::Parquet {
            path: "steps/a/part-00000.parquet".into(),
            source: parquet_error(enospc()),
        });
        assert!(parquet.is_disk_full(), "{parquet}");
        // Found by kind, not by the words of the message.
        let quiet = std::io::Error::new(std::io::ErrorKind::StorageFull, "device busy");
        let quiet = StepError::Store(StoreError::Parquet {
            path: "steps/a/part-00000.parquet".into(),
            source: parquet_error(quiet),
        });
        assert!(quiet.is_disk_full(), "{quiet}");
    }

    #[test]
    fn other_errors_are_not_a_full_disk() {
        let denied = StepError::io("writing out.jsonl")(std::io::Error::from(
            std::io::ErrorKind::PermissionDenied,
        ));
        assert!(!denied.is_disk_full(), "{denied}");
        assert!(!StepError::Config("step `a`: bad option".into()).is_disk_full());
        assert!(!StepError::Upstream("a".into()).is_disk_full());
    }

    fn parquet_error(e: std::io::Error) -> parquet::errors::ParquetError {
        e.into()
    }
}
