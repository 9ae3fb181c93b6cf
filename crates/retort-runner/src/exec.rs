//! The DAG executor: every step runs as a tokio task; streaming steps consume their
//! upstream's committed parts as they appear, whole-table steps wait for their inputs
//! to finish. Records travel between steps through committed Parquet parts, so memory
//! stays bounded by the batch size however fast each side is, and the same files are
//! the checkpoints a resumed run starts from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retort_core::{PositionSet, Record};
use retort_steps::{
    Batch, Cpu, InputStream, Inputs, OutputSink, Positioned, Shape, StepCtx, StepError, StepStats,
};
use retort_teacher::{
    Accounting, Backend, ChatRequest, ChatResponse, Client, Embedder, EmbedderConfig,
    ResponseCache, Shared, Teacher, TeacherConfig, TeacherError,
};
use serde::Serialize;
use tokio::sync::{watch, OnceCell};

use crate::compile::Plan;
use crate::handoff::Handoff;
use crate::manifest::{Manifest, StepReport};
use crate::progress::{ClientProbe, Progress};
use crate::rundir::{self, StepDir};

/// Builds the backends behind teachers and the embedder. The CLI supplies one that
/// knows the HTTP providers and the embedded models; tests supply their own.
pub trait Factory: Send + Sync {
    /// A backend for the named teacher.
    fn backend(&self, name: &str, cfg: &TeacherConfig) -> Result<Arc<dyn Backend>, String>;
    /// The embedder.
    fn embedder(&self, cfg: &EmbedderConfig) -> Result<Arc<dyn Embedder>, String>;
}

/// How this run behaves (as opposed to what the pipeline defines).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run directory (default `runs/<name>`).
    pub out: Option<PathBuf>,
    /// Discard every checkpoint and start over.
    pub fresh: bool,
    /// Run without the response cache: `cache.sqlite` is neither read nor written.
    pub no_cache: bool,
    /// No progress bars.
    pub quiet: bool,
    /// CPU pool threads (0 = one per core).
    pub threads: usize,
    /// `--retry-failed`: redo the inputs whose committed failures have one of these
    /// classes (all classes when empty); `None` keeps every committed outcome.
    pub retry_failed: Option<Vec<String>>,
}

/// Why a run stopped short.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// One or more steps failed; the others' progress is committed.
    #[error("{0}")]
    Steps(String),
    /// The run could not start (run directory, cache).
    #[error("{0}")]
    Setup(String),
    /// A stop signal ended the run; committed work is kept.
    #[error("{message}")]
    Interrupted {
        /// The signal.
        signal: crate::signals::Signal,
        /// What happened and how to resume.
        message: String,
    },
}

/// What a finished run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Running,
    Done,
    Failed,
}

#[derive(Clone, Copy, Debug)]
struct Up {
    parts: usize,
    status: Status,
}

/// A teacher whose client is built on first use, so a pipeline that declares a big
/// local model but only runs cheap steps never loads it.
struct LazyTeacher {
    name: String,
    cfg: TeacherConfig,
    factory: Arc<dyn Factory>,
    shared: Arc<Shared>,
    client: OnceCell<Result<Arc<Client>, String>>,
}

#[async_trait]
impl Teacher for LazyTeacher {
    fn name(&self) -> &str {
        &self.name
    }
    fn model(&self) -> &str {
        &self.cfg.model
    }
    async fn chat(&self, step: &str, req: ChatRequest) -> Result<ChatResponse, TeacherError> {
        let client = self
            .client
            .get_or_init(|| async {
                let backend = self.factory.backend(&self.name, &self.cfg)?;
                Ok(Arc::new(Client::new(
                    &self.name,
                    &self.cfg,
                    backend,
                    self.shared.clone(),
                )))
            })
            .await;
        match client {
            Ok(c) => c.chat(step, req).await,
            Err(e) => Err(TeacherError::CircuitOpen(format!(
                "teacher `{}` could not start: {e}",
                self.name
            ))),
        }
    }
}

/// The embedder, built on first use, with vectors cached by text hash in the run's
/// cache so a resumed or repeated run never recomputes them.
struct LazyEmbedder {
    cfg: EmbedderConfig,
    factory: Arc<dyn Factory>,
    inner: OnceCell<Result<Arc<dyn Embedder>, String>>,
    cache: Option<Arc<ResponseCache>>,
}

impl LazyEmbedder {
    async fn get(&self) -> Result<&Arc<dyn Embedder>, TeacherError> {
        self.inner
            .get_or_init(|| async { self.factory.embedder(&self.cfg) })
            .await
            .as_ref()
            .map_err(|e| TeacherError::CircuitOpen(format!("the embedder could not start: {e}")))
    }
}

#[async_trait]
impl Embedder for LazyEmbedder {
    fn model(&self) -> &str {
        self.cfg.model.as_deref().unwrap_or("all-minilm-l6-v2")
    }
    fn dim(&self) -> usize {
        self.cfg.dim.unwrap_or(384)
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        let Some(cache) = &self.cache else {
            return self.get().await?.embed(texts).await;
        };
        let model = self.model().to_string();
        let hashes: Vec<[u8; 32]> = texts.iter().map(|t| retort_teacher::text_hash(t)).collect();
        // The cache only saves work: a failed read or write is a warning, never a stop.
        let mut found = match cache.get_embeddings(&model, hashes.clone()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(
                    "embedding cache read failed ({e}); computing every vector of this run"
                );
                vec![None; texts.len()]
            }
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|i| found[*i].is_none()).collect();
        if !missing.is_empty() {
            let todo: Vec<String> = missing.iter().map(|i| texts[*i].clone()).collect();
            let vecs = self.get().await?.embed(&todo).await?;
            if vecs.len() != todo.len() {
                return Err(TeacherError::BadResponse(format!(
                    "the embedder returned {} vectors for {} texts",
                    vecs.len(),
                    todo.len()
                )));
            }
            let items: Vec<([u8; 32], Vec<f32>)> = missing
                .iter()
                .zip(&vecs)
                .map(|(i, v)| (hashes[*i], v.clone()))
                .collect();
            if let Err(e) = cache.put_embeddings(&model, items) {
                tracing::warn!(
                    "embedding cache write failed ({e}); vectors are not kept for the next run"
                );
            }
            for (i, v) in missing.into_iter().zip(vecs) {
                found[i] = Some(v);
            }
        }
        Ok(found
            .into_iter()
            .map(|v| v.expect("filled above"))
            .collect())
    }
}

/// Input from one upstream step's committed parts, following them as they appear.
struct PartInput {
    dir: PathBuf,
    up: watch::Receiver<Up>,
    next_part: usize,
    reader: Option<retort_store::RecordReader>,
    /// Records of a part taken from the upstream's handoff, not yet handed on.
    held: std::vec::IntoIter<Record>,
    handoff: Arc<Handoff>,
    batch: usize,
    cursor: Arc<InputCursor>,
    upstream: String,
}

/// Input positions of one step, shared by its input streams (read one after another
/// in `after` order, so one counter numbers them all), and the positions committed
/// batches already finished.
struct InputCursor {
    next: AtomicU64,
    done: PositionSet,
}

impl InputCursor {
    /// Numbers `rows` and leaves out those a committed batch finished (resume); `None`
    /// when nothing is left to hand on.
    fn position(&self, rows: Vec<Record>) -> Option<Positioned> {
        let start = self.next.fetch_add(rows.len() as u64, Ordering::Relaxed);
        let end = start + rows.len() as u64;
        let mut p = Positioned::default();
        if self.done.is_empty()
            || !self
                .done
                .ranges()
                .iter()
                .any(|&(a, b)| a < end && start < b)
        {
            p.positions = (start..end).collect();
            p.records = rows;
        } else {
            for (pos, r) in (start..end).zip(rows) {
                if !self.done.contains(pos) {
                    p.positions.push(pos);
                    p.records.push(r);
                }
            }
        }
        (!p.records.is_empty()).then_some(p)
    }
}

#[async_trait]
impl InputStream for PartInput {
    async fn next_positioned(&mut self) -> Result<Option<Positioned>, StepError> {
        loop {
            if self.held.len() > 0 {
                let rows: Vec<Record> = self.held.by_ref().take(self.batch).collect();
                if let Some(p) = self.cursor.position(rows) {
                    return Ok(Some(p));
                }
                continue;
            }
            if let Some(mut r) = self.reader.take() {
                let (r2, next) = tokio::task::spawn_blocking(move || {
                    let n = r.next();
                    (r, n)
                })
                .await
                .map_err(|e| StepError::Other(format!("reader task: {e}")))?;
                match next {
                    Some(Ok(rows)) => {
                        self.reader = Some(r2);
                        if let Some(p) = self.cursor.position(rows) {
                            return Ok(Some(p));
                        }
                        continue;
                    }
                    Some(Err(e)) => return Err(StepError::Io(e.to_string())),
                    None => continue,
                }
            }
            let up = *self.up.borrow_and_update();
            if self.next_part < up.parts {
                let part = self.next_part;
                self.next_part += 1;
                if let Some(records) = self.handoff.take(part) {
                    self.held = records.into_iter();
                    continue;
                }
                let p = self.dir.join(format!("part-{part:05}.parquet"));
                self.reader = Some(
                    retort_store::RecordReader::open(&p, self.batch)
                        .map_err(|e| StepError::Io(e.to_string()))?,
                );
                continue;
            }
            match up.status {
                Status::Done => return Ok(None),
                Status::Failed => {
                    return Err(StepError::Other(format!(
                        "upstream step `{}` failed",
                        self.upstream
                    )))
                }
                Status::Running => {
                    if self.up.changed().await.is_err() {
                        return Err(StepError::Other(format!(
                            "upstream step `{}` stopped",
                            self.upstream
                        )));
                    }
                }
            }
        }
    }
}

/// Commits a step's batches to its folder and tells downstream steps.
struct DirSink {
    dir: Option<StepDir>,
    tx: Arc<watch::Sender<Up>>,
    handoff: Arc<Handoff>,
    failures: Arc<AtomicU64>,
    rows_out: Arc<AtomicU64>,
}

impl DirSink {
    async fn with_dir<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut StepDir) -> Result<T, StepError> + Send + 'static,
    ) -> Result<T, StepError> {
        let mut dir = self.dir.take().expect("step dir present");
        let (dir, res) = tokio::task::spawn_blocking(move || {
            let r = f(&mut dir);
            (dir, r)
        })
        .await
        .map_err(|e| StepError::Other(format!("writer task: {e}")))?;
        self.dir = Some(dir);
        res
    }
}

#[async_trait]
impl OutputSink for DirSink {
    async fn commit(&mut self, batch: Batch) -> Result<(), StepError> {
        let nf = batch.failures.len() as u64;
        let nr = batch.records.len() as u64;
        let (parts, records) = self
            .with_dir(move |d| {
                d.commit(&batch)?;
                Ok((d.parts(), batch.records))
            })
            .await?;
        self.failures.fetch_add(nf, Ordering::Relaxed);
        self.rows_out.fetch_add(nr, Ordering::Relaxed);
        self.handoff.put(parts - 1, records);
        self.tx.send_modify(|u| u.parts = parts);
        Ok(())
    }
    async fn side_table(&mut self, name: &str, records: Vec<Record>) -> Result<(), StepError> {
        let name = name.to_string();
        self.with_dir(move |d| d.side_table(&name, &records)).await
    }
    async fn committed(&self) -> Result<Vec<Record>, StepError> {
        let dir = self.dir.as_ref().expect("step dir").dir().to_path_buf();
        tokio::task::spawn_blocking(move || rundir::read_step_records(&dir))
            .await
            .map_err(|e| StepError::Other(format!("reader task: {e}")))?
    }
    fn consumed(&self) -> u64 {
        self.dir.as_ref().map(|d| d.consumed()).unwrap_or(0)
    }
    fn resume_state(&self) -> Option<serde_json::Value> {
        self.dir.as_ref().and_then(|d| d.resume_state())
    }
}

/// Per-step live numbers shared with progress and the manifest.
pub(crate) struct Live {
    pub id: String,
    pub kind: String,
    /// Upstream step ids (for progress totals).
    pub after: Vec<String>,
    pub stats: Arc<StepStats>,
    pub rows_out: Arc<AtomicU64>,
    pub failures: Arc<AtomicU64>,
    pub rows_in: Arc<AtomicU64>,
    pub status: Mutex<String>,
    pub started: Mutex<Option<Instant>>,
    pub seconds: Mutex<f64>,
    pub resumed_rows: AtomicU64,
    pub error: Mutex<Option<String>>,
    /// Teacher calls per input row and fixed calls, from the step's plan estimate.
    pub calls_per_input: f64,
    pub fixed_calls: u64,
}

impl Live {
    fn new(id: &str, kind: &str, after: &[String], calls_per_input: f64, fixed_calls: u64) -> Live {
        Live {
            id: id.to_string(),
            kind: kind.to_string(),
            after: after.to_vec(),
            stats: Arc::new(StepStats::default()),
            rows_out: Arc::new(AtomicU64::new(0)),
            failures: Arc::new(AtomicU64::new(0)),
            rows_in: Arc::new(AtomicU64::new(0)),
            status: Mutex::new("pending".into()),
            started: Mutex::new(None),
            seconds: Mutex::new(0.0),
            resumed_rows: AtomicU64::new(0),
            error: Mutex::new(None),
            calls_per_input,
            fixed_calls,
        }
    }

    /// A step's live state for unit tests of progress and the manifest.
    #[cfg(test)]
    pub(crate) fn for_test(id: &str, after: &[&str], calls_per_input: f64) -> Live {
        let after: Vec<String> = after.iter().map(|s| s.to_string()).collect();
        Live::new(id, "test", &after, calls_per_input, 0)
    }
}

/// Dollars spent by earlier invocations in this run directory (their manifest's
/// `teachers.spent_usd`, itself cumulative), so the budget spans resumes. `--fresh` has
/// already removed the manifest when it starts over.
fn earlier_spend(run_dir: &Path) -> Result<f64, RunError> {
    let path = run_dir.join("manifest.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0.0),
        Err(e) => {
            return Err(RunError::Setup(format!(
                "cannot read {} ({e}), which holds the spend of the earlier run; fix its permissions or start over with --fresh",
                path.display()
            )))
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        RunError::Setup(format!(
            "{} is not valid JSON ({e}), so the earlier run's spend is unknown; start over with --fresh",
            path.display()
        ))
    })?;
    match v["teachers"]["spent_usd"].as_f64() {
        Some(usd) => Ok(usd),
        None => {
            tracing::warn!(
                "{} has no teachers.spent_usd; the budget counts from $0 for this invocation",
                path.display()
            );
            Ok(0.0)
        }
    }
}

/// `--retry-failed`: takes the chosen failures' inputs out of each step's checkpoint
/// (see [`rundir::retry_failed`]) and recomputes everything downstream of a step that
/// changed, since its output is no longer what they read.
fn retry_failed(plan: &Plan, run_dir: &Path, classes: &[String]) -> Result<(), RunError> {
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

/// Writes manifest.json with the given run status; shared by every step task.
type ManifestWriter = Arc<dyn Fn(&str) -> Result<Manifest, StepError> + Send + Sync>;

/// Run a compiled plan.
pub async fn run(
    plan: Plan,
    opts: RunOptions,
    factory: Arc<dyn Factory>,
) -> Result<RunSummary, RunError> {
    let run_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&plan.name));
    std::fs::create_dir_all(&run_dir).map_err(|e| {
        RunError::Setup(format!(
            "cannot create the run directory {}: {e}",
            run_dir.display()
        ))
    })?;
    // Held until this function returns: everything below writes into the directory.
    let _lock = rundir::RunLock::acquire(&run_dir).map_err(RunError::Setup)?;
    // Under the lock every temp file here is debris of an earlier, killed run.
    retort_store::remove_temp_files_under(&run_dir)
        .map_err(|e| RunError::Setup(format!("cannot clean up the run directory: {e}")))?;
    if opts.fresh {
        for sub in [
            "steps",
            "manifest.json",
            "failures.parquet",
            "rejections.parquet",
        ] {
            let p = run_dir.join(sub);
            if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else if p.exists() {
                std::fs::remove_file(&p)
            } else {
                Ok(())
            }
            .map_err(|e| RunError::Setup(format!("--fresh: cannot remove {}: {e}", p.display())))?;
        }
    }
    std::fs::create_dir_all(run_dir.join("steps")).map_err(|e| {
        RunError::Setup(format!(
            "cannot create the run directory {}: {e}",
            run_dir.display()
        ))
    })?;
    let resumed = run_dir.join("manifest.json").exists();
    if let Some(classes) = &opts.retry_failed {
        retry_failed(&plan, &run_dir, classes)?;
    }

    // --no-cache never touches the file: neither reads nor writes.
    let cache = if opts.no_cache {
        None
    } else {
        let (cache, moved) = ResponseCache::open_or_set_aside(run_dir.join("cache.sqlite"))
            .map_err(|e| {
                RunError::Setup(format!(
                    "cannot open the response cache in {}: {e} (hint: --no-cache runs without it)",
                    run_dir.display()
                ))
            })?;
        if let Some(w) = moved {
            tracing::warn!("{w}");
        }
        Some(Arc::new(cache))
    };
    let accounting = Arc::new(Accounting::resuming(
        plan.max_budget_usd,
        earlier_spend(&run_dir)?,
    ));
    let shared = Arc::new(Shared::new(cache.clone(), true, accounting.clone()));
    let lazies: Vec<Arc<LazyTeacher>> = plan
        .teachers
        .iter()
        .map(|(name, cfg)| {
            Arc::new(LazyTeacher {
                name: name.clone(),
                cfg: cfg.clone(),
                factory: factory.clone(),
                shared: shared.clone(),
                client: OnceCell::new(),
            })
        })
        .collect();
    let teachers: BTreeMap<String, Arc<dyn Teacher>> = lazies
        .iter()
        .map(|t| {
            let d: Arc<dyn Teacher> = t.clone();
            (t.name.clone(), d)
        })
        .collect();
    let embedder: Option<Arc<dyn Embedder>> = plan.embedder.as_ref().map(|cfg| {
        let e: Arc<dyn Embedder> = Arc::new(LazyEmbedder {
            cfg: cfg.clone(),
            factory: factory.clone(),
            inner: OnceCell::new(),
            cache: cache.clone(),
        });
        e
    });
    let cpu = Cpu::new(opts.threads);

    let live: Vec<Arc<Live>> = plan
        .steps
        .iter()
        .map(|s| {
            let e = &s.built.estimates;
            Arc::new(Live::new(
                &s.spec.id,
                &s.spec.kind,
                &s.spec.after,
                e.iter().map(|e| e.calls_per_input).sum(),
                e.iter().map(|e| e.fixed_calls).sum(),
            ))
        })
        .collect();

    let manifest = Arc::new(Mutex::new(Manifest::new(&plan, resumed)));
    let write_manifest: ManifestWriter = {
        let manifest = manifest.clone();
        let live = live.clone();
        let accounting = accounting.clone();
        let path = run_dir.join("manifest.json");
        Arc::new(move |status: &str| -> Result<Manifest, StepError> {
            let mut m = manifest.lock().unwrap();
            m.status = status.to_string();
            m.steps = live.iter().map(|l| StepReport::from_live(l)).collect();
            m.teachers = serde_json::to_value(accounting.snapshot()).unwrap_or_default();
            m.finished_at = (status != "running").then(crate::manifest::now);
            rundir::write_atomic(
                &path,
                &serde_json::to_vec_pretty(&*m).expect("manifest serialises"),
            )?;
            Ok(m.clone())
        })
    };
    write_manifest("running").map_err(|e| RunError::Setup(e.to_string()))?;

    // One watch channel per step: committed parts and status.
    let channels: BTreeMap<String, (Arc<watch::Sender<Up>>, watch::Receiver<Up>)> = plan
        .steps
        .iter()
        .map(|s| {
            let (tx, rx) = watch::channel(Up {
                parts: 0,
                status: Status::Running,
            });
            (s.spec.id.clone(), (Arc::new(tx), rx))
        })
        .collect();

    // Each step's newest committed parts, held for the inputs that read it.
    let handoffs: Arc<BTreeMap<String, Arc<Handoff>>> = Arc::new(
        plan.steps
            .iter()
            .map(|s| {
                let consumers = plan
                    .steps
                    .iter()
                    .flat_map(|d| &d.spec.after)
                    .filter(|a| **a == s.spec.id)
                    .count();
                (s.spec.id.clone(), Arc::new(Handoff::new(consumers)))
            })
            .collect(),
    );

    let clients: ClientProbe = {
        let lazies = lazies.clone();
        Arc::new(move || {
            lazies
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.client.get()?.as_ref().ok()?.stats())))
                .collect()
        })
    };
    let progress = Progress::start(live.clone(), accounting.clone(), clients, opts.quiet);

    let skips = verified_skips(&plan, &run_dir);
    let mut signals = crate::signals::Signals::listen()
        .map_err(|e| RunError::Setup(format!("cannot install signal handlers: {e}")))?;
    let (stop_tx, stopping) = retort_steps::Stopping::new();
    let mut tasks = Vec::new();
    for (ps, lv) in plan.steps.iter().zip(live.iter()) {
        let id = ps.spec.id.clone();
        let skip = skips[&id].clone();
        let step = ps.built.step.clone();
        let shape = ps.shape;
        let hash = ps.hash.clone();
        let after = ps.spec.after.clone();
        let tx = channels[&id].0.clone();
        let ups: Vec<(String, watch::Receiver<Up>)> = after
            .iter()
            .map(|a| (a.clone(), channels[a].1.clone()))
            .collect();
        let run_dir = run_dir.clone();
        let ctx = StepCtx {
            step_id: id.clone(),
            kind: ps.spec.kind.clone(),
            base_dir: plan.base_dir.clone(),
            run_dir: run_dir.clone(),
            seed: mix_seed(plan.seed, &id),
            teachers: teachers.clone(),
            embedder: embedder.clone(),
            cpu: cpu.clone(),
            stats: lv.stats.clone(),
            gate: None,
            stopping: stopping.clone(),
        };
        let lv = lv.clone();
        let write_manifest = write_manifest.clone();
        let handoffs = handoffs.clone();
        tasks.push(tokio::spawn(async move {
            let res = run_one(
                &ctx,
                skip,
                step,
                shape,
                &hash,
                ups,
                tx.clone(),
                &handoffs,
                &run_dir,
                &lv,
            )
            .await;
            let status = if res.is_ok() {
                Status::Done
            } else {
                Status::Failed
            };
            match &res {
                // After a stop, a step that ended early because its upstream stopped
                // was interrupted too, not failed.
                Err(_) if ctx.stopping.is_set() => {
                    *lv.status.lock().unwrap() = "interrupted".into()
                }
                Err(e) => {
                    *lv.status.lock().unwrap() = "failed".into();
                    *lv.error.lock().unwrap() = Some(e.to_string());
                }
                Ok(()) => {}
            }
            if let Some(t) = *lv.started.lock().unwrap() {
                *lv.seconds.lock().unwrap() = t.elapsed().as_secs_f64();
            }
            // Keep manifest.json current as steps finish, so a report step (or a
            // person) reading it mid-run sees real statuses.
            let _ = tokio::task::spawn_blocking(move || write_manifest("running")).await;
            tx.send_modify(|u| u.status = status);
            res.map_err(|e| (ctx.step_id.clone(), e))
        }));
    }

    let mut errors = Vec::new();
    let mut interrupted: Option<crate::signals::Signal> = None;
    let results = {
        let mut all = Box::pin(futures::future::join_all(tasks.iter_mut()));
        tokio::select! {
            r = &mut all => r,
            sig = signals.recv() => {
                interrupted = Some(sig);
                let _ = stop_tx.send(true);
                tracing::warn!(
                    "{}: stopping; calls under way get up to {} s to finish and be committed (send it again to stop at once)",
                    sig.name(),
                    crate::signals::GRACE.as_secs()
                );
                tokio::select! {
                    r = &mut all => r,
                    _ = tokio::time::sleep(crate::signals::GRACE) => vec![],
                    _ = signals.recv() => vec![],
                }
            }
        }
    };
    if interrupted.is_some() {
        // Steps still running past the grace stop here; nothing they had not committed
        // is believed (their checkpoints say exactly what is done).
        for t in &tasks {
            t.abort();
        }
        // Only the unfinished: a finished handle was already read by the join above.
        for t in tasks.into_iter().filter(|t| !t.is_finished()) {
            let _ = t.await;
        }
        for l in &live {
            let mut st = l.status.lock().unwrap();
            if !matches!(st.as_str(), "done" | "failed" | "skipped (unchanged)") {
                *st = "interrupted".into();
            }
        }
    }
    for r in results {
        match r {
            Ok(Ok(())) | Ok(Err((_, StepError::Interrupted))) => {}
            Ok(Err((id, e))) => errors.push(format!("step `{id}` failed: {e}")),
            Err(e) => errors.push(format!("a step task panicked: {e}")),
        }
    }
    progress.finish().await;
    // Cache writes are queued to the cache's own thread; make them durable before the
    // process exits so a repeated or `--fresh` run finds every paid answer.
    if let Some(cache) = &cache {
        if let Err(e) = cache.flush().await {
            tracing::warn!(
                "the response cache could not be written ({e}); the run's outputs are complete, but a repeated run asks those teachers again"
            );
        }
    }

    let ids: Vec<String> = plan.steps.iter().map(|s| s.spec.id.clone()).collect();
    let gathered = rundir::gather_tables(&run_dir, &ids);
    {
        let mut m = manifest.lock().unwrap();
        if let Ok((f, r)) = gathered {
            m.failures = f;
            m.rejections = r;
        }
        m.outputs = live
            .iter()
            .flat_map(|l| l.stats.outputs.lock().unwrap().clone())
            .collect();
    }
    let status = if interrupted.is_some() {
        "interrupted"
    } else if errors.is_empty() {
        "complete"
    } else {
        "failed"
    };
    // A manifest that cannot be written (a full disk) is one more error, never one
    // that hides the steps' own errors and the way to resume.
    let write_final = |status: &str, errors: &mut Vec<String>| match write_manifest(status) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.push(format!("manifest.json could not be written: {e}"));
            None
        }
    };
    let mut written = write_final(status, &mut errors);
    if interrupted.is_none() {
        // Steps that describe the run (the report) re-render now that it has ended.
        for (ps, lv) in plan.steps.iter().zip(live.iter()) {
            let st = lv.status.lock().unwrap().clone();
            // Only steps that ran: a skipped report keeps the page of the run that made
            // it, whose summary has the counts this invocation (all skips) does not.
            if st != "done" {
                continue;
            }
            let step = ps.built.step.clone();
            let dir = run_dir.clone();
            let res = tokio::task::spawn_blocking(move || step.after_run(&dir))
                .await
                .map_err(|e| StepError::Other(format!("panicked: {e}")))
                .and_then(|r| r);
            if let Err(e) = res {
                errors.push(format!(
                    "step `{}` could not refresh its output after the run: {e}",
                    ps.spec.id
                ));
            }
        }
        if let Err(e) = &gathered {
            errors.push(format!("gathering failures and rejections: {e}"));
        }
        if !errors.is_empty() && status == "complete" {
            written = write_final("failed", &mut errors);
        }
    }
    let again = format!(
        "run the same command again to resume: {}",
        rundir::command_line()
    );
    if let Some(signal) = interrupted {
        return Err(RunError::Interrupted {
            signal,
            message: format!(
                "interrupted by {}; committed progress is kept in {} — {again}",
                signal.name(),
                run_dir.display()
            ),
        });
    }
    let manifest = match written {
        Some(m) if errors.is_empty() => m,
        _ => {
            let full = errors.iter().any(|e| is_disk_full(e));
            return Err(RunError::Steps(format!(
                "{}\ncommitted progress is kept in {}; {}{again}",
                errors.join("\n"),
                run_dir.display(),
                if full {
                    "the disk is full: free space there (df -h shows how much), then "
                } else {
                    "fix the cause and "
                }
            )));
        }
    };
    Ok(RunSummary { run_dir, manifest })
}

/// Whether an error message is the OS's "disk full" (ENOSPC, or a quota).
fn is_disk_full(message: &str) -> bool {
    message.contains("No space left on device")
        || message.contains("os error 28")
        || message.contains("Disk quota exceeded")
        || message.contains("StorageFull")
}

/// The steps this run skips, in plan order: finished before with the same config hash,
/// checkpoints that pass [`rundir::verify`], and every upstream skipped too. A step
/// whose files are missing or broken is recomputed from its inputs (the response cache
/// makes repeated teacher calls free) and so is everything after it, since its new
/// output is what they must be made from.
fn verified_skips(plan: &Plan, run_dir: &Path) -> BTreeMap<String, Option<rundir::StepFileState>> {
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

#[allow(clippy::too_many_arguments)]
async fn run_one(
    ctx: &StepCtx,
    skip: Option<rundir::StepFileState>,
    step: Arc<dyn retort_steps::Step>,
    shape: Shape,
    hash: &str,
    ups: Vec<(String, watch::Receiver<Up>)>,
    tx: Arc<watch::Sender<Up>>,
    handoffs: &BTreeMap<String, Arc<Handoff>>,
    run_dir: &Path,
    lv: &Live,
) -> Result<(), StepError> {
    let id = &ctx.step_id;
    if let Some(done) = skip {
        // Finished before with the same config: skip, and let downstream read it.
        let parts = rundir::count_parts(&StepDir::path_for(run_dir, id));
        lv.rows_out.store(done.rows, Ordering::Relaxed);
        lv.resumed_rows.store(done.rows, Ordering::Relaxed);
        // What it took in when it ran, so a skipped step's row reads like a finished one
        // (a source's "consumed" counts file rows, which a running source reports as 0).
        if !ups.is_empty() {
            lv.rows_in.store(done.rows_in, Ordering::Relaxed);
        }
        *lv.status.lock().unwrap() = "skipped (unchanged)".into();
        tx.send_modify(|u| u.parts = parts);
        // Downstream still needs our inputs to be complete for correctness of its own
        // resume, but not to wait: our output is final.
        return Ok(());
    }
    let dir = {
        let run_dir = run_dir.to_path_buf();
        let id = id.clone();
        let hash = hash.to_string();
        tokio::task::spawn_blocking(move || StepDir::open(&run_dir, &id, &hash))
            .await
            .map_err(|e| StepError::Other(format!("step dir task: {e}")))??
    };
    let parts = dir.parts();
    let consumed = dir.consumed();
    let cursor = Arc::new(InputCursor {
        next: AtomicU64::new(0),
        done: dir.done().clone(),
    });
    lv.resumed_rows.store(dir.rows(), Ordering::Relaxed);
    ctx.stats.resumed_in.store(consumed, Ordering::Relaxed);
    lv.rows_out.store(dir.rows(), Ordering::Relaxed);
    tx.send_modify(|u| u.parts = parts);

    if shape == Shape::WholeTable {
        *lv.status.lock().unwrap() = "waiting".into();
        for (up_id, rx) in &ups {
            let mut rx = rx.clone();
            loop {
                let st = rx.borrow_and_update().status;
                match st {
                    Status::Done => break,
                    Status::Failed => {
                        return Err(StepError::Other(format!("upstream step `{up_id}` failed")))
                    }
                    Status::Running => {
                        if rx.changed().await.is_err() {
                            return Err(StepError::Other(format!(
                                "upstream step `{up_id}` stopped"
                            )));
                        }
                    }
                }
            }
        }
    }
    *lv.status.lock().unwrap() = if parts > 0 {
        "running (resumed)".into()
    } else {
        "running".into()
    };
    *lv.started.lock().unwrap() = Some(Instant::now());

    let inputs = Inputs {
        streams: ups
            .into_iter()
            .map(|(up_id, rx)| {
                let s: Box<dyn InputStream> = Box::new(CountingInput {
                    inner: PartInput {
                        dir: StepDir::path_for(run_dir, &up_id),
                        up: rx,
                        next_part: 0,
                        reader: None,
                        held: Vec::new().into_iter(),
                        handoff: handoffs[&up_id].clone(),
                        batch: step.batch_size().max(1),
                        cursor: cursor.clone(),
                        upstream: up_id.clone(),
                    },
                    rows_in: lv.rows_in.clone(),
                });
                (up_id, s)
            })
            .collect(),
    };
    lv.rows_in.store(consumed, Ordering::Relaxed);
    let mut sink = DirSink {
        dir: Some(dir),
        tx: tx.clone(),
        handoff: handoffs[id].clone(),
        failures: lv.failures.clone(),
        rows_out: lv.rows_out.clone(),
    };
    step.run(ctx, inputs, &mut sink).await?;
    let dir = sink.dir.take().expect("step dir");
    // Outputs inside the run directory are kept relative to it, so the checks still
    // hold when the same directory is reached by another path.
    let outputs: Vec<PathBuf> = ctx
        .stats
        .output_files
        .lock()
        .unwrap()
        .iter()
        .map(|p| {
            p.strip_prefix(run_dir)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| p.clone())
        })
        .collect();
    tokio::task::spawn_blocking(move || dir.mark_done(outputs))
        .await
        .map_err(|e| StepError::Other(format!("step dir task: {e}")))??;
    *lv.status.lock().unwrap() = "done".into();
    Ok(())
}

struct CountingInput {
    inner: PartInput,
    rows_in: Arc<AtomicU64>,
}

#[async_trait]
impl InputStream for CountingInput {
    async fn next_positioned(&mut self) -> Result<Option<Positioned>, StepError> {
        let b = self.inner.next_positioned().await?;
        if let Some(b) = &b {
            self.rows_in
                .fetch_add(b.records.len() as u64, Ordering::Relaxed);
        }
        Ok(b)
    }
}

fn mix_seed(seed: u64, id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}

/// How long a progress tick lasts.
pub(crate) const TICK: Duration = Duration::from_millis(150);
