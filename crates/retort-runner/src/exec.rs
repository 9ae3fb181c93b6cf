//! The DAG driver: every step runs as a tokio task; streaming steps consume their
//! upstream's committed parts as they appear, whole-table steps wait for their inputs
//! to finish. Records travel between steps through committed Parquet parts, so memory
//! stays bounded by the batch size however fast each side is, and the same files are
//! the checkpoints a resumed run starts from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use retort_steps::{Cpu, InputStream, Inputs, Shape, StepCtx, StepError};
use retort_teacher::{Accounting, Embedder, ResponseCache, Shared, Teacher};
use serde::Serialize;
use tokio::sync::{watch, OnceCell};

use crate::compile::Plan;
pub use crate::error::RunError;
pub use crate::factory::Factory;
use crate::factory::{LazyEmbedder, LazyTeacher};
use crate::handoff::Handoff;
use crate::io::{CountingInput, DirSink, InputCursor, PartInput, Status, Up};
use crate::live::Live;
use crate::manifest::Manifest;
use crate::progress::{ClientProbe, Progress};
use crate::resume::{earlier_spend, retry_failed, verified_skips};
use crate::rundir::{self, StepDir};

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
    /// The command line that started the run, for the manifest (and the dataset card);
    /// pass it through [`crate::manifest::redacted_command`].
    pub command: Option<String>,
}

/// What a finished run reports.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
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
    let rd = retort_store::RunDir::new(&run_dir);
    let _lock = rundir::RunLock::acquire(&run_dir).map_err(RunError::Setup)?;
    // Under the lock every temp file here is debris of an earlier, killed run.
    retort_store::remove_temp_files_under(&run_dir)
        .map_err(|e| RunError::Setup(format!("cannot clean up the run directory: {e}")))?;
    if opts.fresh {
        for p in rd.checkpoints() {
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
    std::fs::create_dir_all(rd.steps()).map_err(|e| {
        RunError::Setup(format!(
            "cannot create the run directory {}: {e}",
            run_dir.display()
        ))
    })?;
    let resumed = rd.manifest().exists();
    if let Some(classes) = &opts.retry_failed {
        retry_failed(&plan, &run_dir, classes)?;
    }

    // --no-cache never touches the file: neither reads nor writes.
    let cache = if opts.no_cache {
        None
    } else {
        let (cache, moved) = ResponseCache::open_or_set_aside(rd.cache()).map_err(|e| {
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
        let lazy: Arc<dyn Embedder> = Arc::new(LazyEmbedder {
            cfg: cfg.clone(),
            factory: factory.clone(),
            inner: OnceCell::new(),
        });
        match &cache {
            Some(c) => {
                Arc::new(retort_teacher::CachedEmbedder::new(lazy, c.clone())) as Arc<dyn Embedder>
            }
            None => lazy,
        }
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

    let manifest = Arc::new(Mutex::new(crate::manifest::new_manifest(
        &plan,
        resumed,
        opts.command.clone(),
    )));
    let write_manifest: ManifestWriter = {
        let manifest = manifest.clone();
        let live = live.clone();
        let accounting = accounting.clone();
        let path = rd.manifest();
        Arc::new(move |status: &str| -> Result<Manifest, StepError> {
            let mut m = manifest.lock().unwrap();
            m.status = status.to_string();
            m.steps = live
                .iter()
                .map(|l| crate::manifest::step_report(l))
                .collect();
            m.teachers = accounting.snapshot();
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
            Ok(Err((id, e))) => errors.push((format!("step `{id}` failed: "), e)),
            Err(e) => errors.push((
                String::new(),
                StepError::Internal(format!("a step task panicked: {e}")),
            )),
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
    let mut gathered = rundir::gather_tables(&run_dir, &ids);
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
    let write_final =
        |status: &str, errors: &mut Vec<(String, StepError)>| match write_manifest(status) {
            Ok(m) => Some(m),
            Err(e) => {
                errors.push(("manifest.json could not be written: ".into(), e));
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
                .map_err(|e| StepError::Internal(format!("panicked: {e}")))
                .and_then(|r| r);
            if let Err(e) = res {
                errors.push((
                    format!(
                        "step `{}` could not refresh its output after the run: ",
                        ps.spec.id
                    ),
                    e,
                ));
            }
        }
        if let Err(e) = std::mem::replace(&mut gathered, Ok((0, 0))) {
            errors.push(("gathering failures and rejections: ".into(), e));
        }
        if !errors.is_empty() && status == "complete" {
            written = write_final("failed", &mut errors);
        }
    }
    let again = format!(
        "run the same command again to resume: {}",
        rundir::resume_command()
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
            let full = errors.iter().any(|(_, e)| e.is_disk_full());
            let lines: Vec<String> = errors.iter().map(|(at, e)| format!("{at}{e}")).collect();
            return Err(RunError::Steps {
                message: format!(
                    "{}\ncommitted progress is kept in {}; {}{again}",
                    lines.join("\n"),
                    run_dir.display(),
                    if full {
                        "the disk is full: free space there (df -h shows how much), then "
                    } else {
                        "fix the cause and "
                    }
                ),
                errors: errors.into_iter().map(|(_, e)| e).collect(),
            });
        }
    };
    Ok(RunSummary { run_dir, manifest })
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
        let parts = retort_store::RunDir::new(run_dir).step(id).count_parts();
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
            .map_err(|e| StepError::Internal(format!("step dir task: {e}")))??
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
                    Status::Failed => return Err(StepError::Upstream(up_id.clone())),
                    Status::Running => {
                        if rx.changed().await.is_err() {
                            return Err(StepError::Internal(format!(
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
        .map_err(|e| StepError::Internal(format!("step dir task: {e}")))??;
    *lv.status.lock().unwrap() = "done".into();
    Ok(())
}

fn mix_seed(seed: u64, id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let h = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    u64::from_le_bytes(h[..8].try_into().expect("8 bytes"))
}
