//! The one call module: how a step's teacher calls are made, kept in flight and turned
//! into answers, failure rows, pending records or a stopped step.
//!
//! **The outcome rule**, in one place ([`chat`], [`chat_all`]):
//! - an answer is returned to the step;
//! - a *permanent* fault (a 4xx other than 429, an unusable body after the client's
//!   retries, a truncated answer the step refused) is the record's [`Failure`] row with
//!   its class and raw text;
//! - a *transient* fault (connection refused or reset, timeout, 5xx, 429 after every
//!   retry) is never a committed outcome: it comes back as [`StepError::Transient`], and
//!   [`run_pool`] keeps that record pending — retried later in the run and, if it still
//!   fails, by the next `retort run` of the same command;
//! - a fault of the whole step (budget reached, endpoint down past `max_outage_secs`, a
//!   teacher that cannot start) stops the step with [`StepError::Teacher`] after the
//!   finished records are committed.
//!
//! **The pool** ([`run_pool`]): a teacher step describes one record's work as a
//! [`MapStep`] over a batch of one record; the pool keeps up to the step's
//! `concurrency` calls in flight at every moment, across records and input batches. A
//! slow, retrying or hanging call holds its own permit and nothing else: records finish
//! and are committed in completion order, each commit naming the input positions it
//! finished ([`Batch::done`]), so a resume skips exactly those. Within a commit records
//! are in input order. Measured reasons are in `docs/benchmarks.md` ("Teacher steps end
//! to end").

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use retort_core::{Failure, PositionSet, Record};
use retort_teacher::{ChatRequest, ChatResponse, Teacher, TeacherError};

use crate::api::{Batch, Inputs, MapStep, Origins, OutputSink, Positioned, StepCtx, StepError};

/// A judge request (score, judge, calibration): one user turn, deterministic settings.
pub fn judge_request(
    prompt: String,
    temperature: f32,
    max_tokens: u32,
    response_format: Option<serde_json::Value>,
) -> ChatRequest {
    ChatRequest {
        messages: vec![retort_core::Message::user(prompt)],
        temperature: Some(temperature),
        max_tokens: Some(max_tokens),
        response_format,
        ..Default::default()
    }
}

/// A teacher error turned into a failure row; `raw` keeps what could not be used.
pub fn failure(step: &str, record_id: &str, e: &TeacherError, raw: &str) -> Failure {
    Failure {
        step: step.to_string(),
        record_id: record_id.to_string(),
        class: e.class().to_string(),
        status: e.status(),
        message: e.to_string(),
        raw: raw.to_string(),
    }
}

/// Sorts a teacher error into the three outcomes: `Ok(e)` for a permanent fault (the
/// caller records it), `Err` for a transient fault or one that stops the step.
pub fn classify(e: TeacherError) -> Result<TeacherError, StepError> {
    if e.is_fatal_for_step() {
        Err(StepError::Teacher(e))
    } else if e.is_transient() {
        Err(StepError::Transient(e))
    } else {
        Ok(e)
    }
}

/// One of the step's call permits inside [`run_pool`], held for one call; `None`
/// outside the pool.
async fn permit(ctx: &StepCtx) -> Option<tokio::sync::SemaphorePermit<'_>> {
    match &ctx.gate {
        Some(g) => Some(g.acquire().await.expect("the gate is never closed")),
        None => None,
    }
}

/// One teacher call under the outcome rule: the answer, or the record's permanent
/// [`Failure`] (with `raw` empty for the caller to fill), or `Err` for a transient or
/// step-stopping fault. Inside [`run_pool`] the call holds one of the step's
/// `concurrency` permits while it runs.
pub async fn chat(
    ctx: &StepCtx,
    teacher: &dyn Teacher,
    req: ChatRequest,
    record_id: &str,
) -> Result<Result<ChatResponse, Failure>, StepError> {
    let _permit = permit(ctx).await;
    match teacher.chat(&ctx.step_id, req).await {
        Ok(r) => Ok(Ok(r)),
        Err(e) => {
            let e = classify(e)?;
            tracing::debug!(step = %ctx.step_id, record = record_id, error = %e, "teacher call failed");
            Ok(Err(failure(&ctx.step_id, record_id, &e, "")))
        }
    }
}

/// Several calls to one teacher for one record, at most `concurrency` at once (and
/// each under the pool's permit), answers in request order. Permanent faults come back
/// in their slots; a transient or step-stopping fault is `Err`.
pub async fn chat_all(
    ctx: &StepCtx,
    teacher: &Arc<dyn Teacher>,
    reqs: Vec<ChatRequest>,
    concurrency: usize,
) -> Result<Vec<Result<ChatResponse, TeacherError>>, StepError> {
    let n = reqs.len();
    let mut answers = futures::stream::iter(reqs.into_iter().enumerate())
        .map(|(i, req)| {
            let t = teacher.clone();
            async move {
                let _permit = permit(ctx).await;
                (i, t.chat(&ctx.step_id, req).await)
            }
        })
        .buffer_unordered(concurrency.max(1));
    let mut out: Vec<Option<Result<ChatResponse, TeacherError>>> = (0..n).map(|_| None).collect();
    while let Some((i, r)) = answers.next().await {
        out[i] = Some(match r {
            Ok(a) => Ok(a),
            Err(e) => Err(classify(e)?),
        });
    }
    Ok(out
        .into_iter()
        .map(|r| r.expect("every request yields one answer"))
        .collect())
}

/// Run `f` over `items` with at most `concurrency` futures in flight; results come back
/// in input order (a record's own calls, so its assembly is reproducible). The first
/// `Err` stops everything.
pub async fn run_ordered<T, R, F, Fut>(
    items: Vec<T>,
    concurrency: usize,
    f: F,
) -> Result<Vec<R>, StepError>
where
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<R, StepError>>,
{
    use futures::TryStreamExt;
    futures::stream::iter(items.into_iter().map(f))
        .buffered(concurrency.max(1))
        .try_collect()
        .await
}

/// How many times a record whose calls hit a transient fault goes back to the queue in
/// the same invocation before it is left pending for the next run, and how long it
/// waits each time. The client has already retried each call `max_retries` times and
/// waited out any outage shorter than `max_outage_secs`, so a record that still fails
/// meets a fault that outlasted both; two more tries, 2 s and 10 s later, catch a
/// server that was restarting.
const REQUEUE_DELAYS: [Duration; 2] = [Duration::from_secs(2), Duration::from_secs(10)];

/// Commit at least this often while records finish, so a crash loses little.
const COMMIT_EVERY: Duration = Duration::from_secs(1);

struct Job {
    pos: u64,
    record: Record,
    attempt: usize,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Drive a teacher step: each input record is one `step.map(ctx, vec![record])`, up to
/// `concurrency` calls in flight across records (see the module docs). Returns once
/// every record is committed; if some stayed pending after transient faults, returns
/// an error saying how many and that a rerun retries them.
pub async fn run_pool(
    step: &dyn MapStep,
    ctx: &StepCtx,
    inputs: Inputs,
    out: &mut dyn OutputSink,
    concurrency: usize,
) -> Result<(), StepError> {
    run_pool_with(step, ctx, inputs, out, concurrency, &REQUEUE_DELAYS).await
}

/// [`run_pool`] with the waits before each requeue given (tests use short ones).
async fn run_pool_with(
    step: &dyn MapStep,
    ctx: &StepCtx,
    inputs: Inputs,
    out: &mut dyn OutputSink,
    concurrency: usize,
    requeue_delays: &[Duration],
) -> Result<(), StepError> {
    let concurrency = concurrency.max(1);
    ctx.stats.pool.store(true, Ordering::Relaxed);
    let mut pool_ctx = ctx.clone();
    pool_ctx.gate = Some(Arc::new(tokio::sync::Semaphore::new(concurrency)));
    let ctx = &pool_ctx;
    // Records under way: enough that every permit has a call waiting for it even when
    // some records are finishing their last (slow) call.
    let max_live = concurrency * 2 + 8;

    let mut inputs = Some(inputs);
    let mut sink = Some(out);
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut delayed: Vec<(Instant, Job)> = Vec::new();
    let mut live: FuturesUnordered<BoxFut<'_, (Job, Result<Batch, StepError>)>> =
        FuturesUnordered::new();
    type Read = (Inputs, Result<Option<Positioned>, StepError>);
    let mut reading: Option<BoxFut<'_, Read>> = None;
    type Committed<'a> = (&'a mut dyn OutputSink, Result<(), StepError>);
    let mut committing: Option<BoxFut<'_, Committed<'_>>> = None;
    let mut input_done = false;
    let mut finished: Vec<(u64, Batch)> = Vec::new();
    let mut last_commit = Instant::now();
    let mut stop: Option<StepError> = None;
    let mut pending: u64 = 0;
    let mut last_transient: Option<TeacherError> = None;
    // A stop request: start nothing new, let the calls under way finish and commit.
    let mut draining = false;
    let wake = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(wake);

    loop {
        // Start records while there is room; requeued ones first once their wait is over.
        while stop.is_none() && !draining && live.len() < max_live {
            let now = Instant::now();
            let job = match delayed.iter().position(|(at, _)| *at <= now) {
                Some(i) => Some(delayed.swap_remove(i).1),
                None => queue.pop_front(),
            };
            let Some(job) = job else { break };
            live.push(Box::pin(async move {
                let res = step.map(ctx, vec![job.record.clone()]).await;
                (job, res)
            }));
        }
        if reading.is_none() && !input_done && stop.is_none() && !draining && queue.len() < max_live
        {
            let mut i = inputs.take().expect("inputs are back when not reading");
            reading = Some(Box::pin(async move {
                let r = i.next_positioned().await;
                (i, r)
            }));
        }
        // Done when nothing is under way or waiting; after a stop, once the calls that
        // were under way are dropped (what finished is still committed below).
        let drained = live.is_empty()
            && (stop.is_some()
                || (draining && reading.is_none())
                || (queue.is_empty() && reading.is_none() && input_done && delayed.is_empty()));
        if committing.is_none()
            && !finished.is_empty()
            && (finished.len() >= crate::api::DEFAULT_BATCH
                || last_commit.elapsed() >= COMMIT_EVERY
                || drained)
        {
            let batch = merge(std::mem::take(&mut finished));
            let s = sink.take().expect("sink is back when not committing");
            last_commit = Instant::now();
            committing = Some(Box::pin(async move {
                let r = s.commit(batch).await;
                (s, r)
            }));
        }
        if drained && committing.is_none() && finished.is_empty() {
            break;
        }
        // Wake for a timer only when it can lead somewhere: a requeued record once
        // there is room to start it, a commit once there is something finished and no
        // commit under way. A deadline already past that cannot act would make this
        // loop spin (it did: two cores busy beside the embedded model while its calls
        // ran longer than COMMIT_EVERY). Every other change wakes a branch below.
        let room = stop.is_none() && !draining && live.len() < max_live;
        let retry_at = delayed.iter().map(|(at, _)| *at).min().filter(|_| room);
        let commit_at =
            (committing.is_none() && !finished.is_empty()).then(|| last_commit + COMMIT_EVERY);
        // One timer for the whole loop, moved only when its deadline changes: a fresh
        // `sleep_until` per pass registered a timer earlier than any the runtime knew
        // of on nearly every finished record, and each such registration wakes the
        // I/O driver with a syscall (7,265 of them in a 20,000-call run).
        match retry_at.into_iter().chain(commit_at).min() {
            Some(at) if at != wake.deadline().into_std() => wake.as_mut().reset(at.into()),
            None if wake.deadline().into_std() <= Instant::now() => wake
                .as_mut()
                .reset((Instant::now() + Duration::from_secs(3600)).into()),
            _ => {}
        }
        tokio::select! {
            Some((job, res)) = live.next(), if !live.is_empty() => {
                match res {
                    Ok(b) => {
                        ctx.stats.count_rejections(&b.rejections);
                        ctx.stats.add_done(1);
                        finished.push((job.pos, b));
                    }
                    // Not committed: the next run asks again.
                    Err(StepError::Transient(_)) if draining => {}
                    Err(StepError::Transient(e)) => {
                        if let Some(wait) = requeue_delays.get(job.attempt).filter(|_| stop.is_none()) {
                            tracing::debug!(step = %ctx.step_id, record = %job.record.id, error = %e, "transient fault; record requeued");
                            ctx.stats.requeued.fetch_add(1, Ordering::Relaxed);
                            delayed.push((Instant::now() + *wait, Job { attempt: job.attempt + 1, ..job }));
                        } else {
                            tracing::warn!(step = %ctx.step_id, record = %job.record.id, error = %e, "transient fault persisted; the record stays pending for the next run");
                            pending += 1;
                            ctx.stats.pending.fetch_add(1, Ordering::Relaxed);
                        }
                        last_transient = Some(e);
                    }
                    Err(e) => {
                        if stop.is_none() {
                            stop = Some(e);
                            // Calls still in flight are dropped: what they would have
                            // answered is re-asked on resume (free when it reached the cache).
                            live = FuturesUnordered::new();
                            reading = None;
                        }
                    }
                }
            }
            (i, r) = async { reading.as_mut().expect("guarded").await }, if reading.is_some() => {
                reading = None;
                inputs = Some(i);
                match r {
                    Ok(Some(p)) => queue.extend(
                        p.positions.into_iter().zip(p.records).map(|(pos, record)| Job { pos, record, attempt: 0 }),
                    ),
                    Ok(None) => input_done = true,
                    Err(e) => {
                        if stop.is_none() {
                            stop = Some(e);
                            live = FuturesUnordered::new();
                        }
                    }
                }
            }
            (s, r) = async { committing.as_mut().expect("guarded").await }, if committing.is_some() => {
                committing = None;
                sink = Some(s);
                r?;
            }
            _ = ctx.stopping.wait(), if !draining => {
                draining = true;
                // A read under way holds nothing that is not read again on resume.
                reading = None;
            }
            _ = &mut wake => {}
        }
    }
    if let Some(e) = stop {
        return Err(e);
    }
    step.finish(ctx).await?;
    if draining {
        return Err(StepError::Interrupted);
    }
    if pending > 0 {
        let last = last_transient
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        return Err(StepError::Unfinished {
            message: format!(
                "{pending} record(s) are pending after transient faults (last: {last}); everything else is committed — run the same command again to retry them"
            ),
            source: last_transient,
        });
    }
    Ok(())
}

/// One commit from records finished out of order: input order within the commit, and
/// the positions they finished.
fn merge(mut finished: Vec<(u64, Batch)>) -> Batch {
    finished.sort_by_key(|(p, _)| *p);
    let mut out = Batch {
        done: Some(PositionSet::from_positions(
            finished.iter().map(|(p, _)| *p),
        )),
        consumed: finished.len() as u64,
        ..Default::default()
    };
    let mut origins = Origins::default();
    for (p, b) in finished {
        origins
            .records
            .extend(std::iter::repeat_n(p, b.records.len()));
        origins
            .failures
            .extend(std::iter::repeat_n(p, b.failures.len()));
        origins
            .rejections
            .extend(std::iter::repeat_n(p, b.rejections.len()));
        out.records.extend(b.records);
        out.failures.extend(b.failures);
        out.rejections.extend(b.rejections);
    }
    out.origins = Some(origins);
    out
}

/// Implements [`crate::api::Step`] for a teacher-calling [`MapStep`]: a streaming step
/// driven by [`run_pool`] with the concurrency the given expression reads from `self`.
#[macro_export]
macro_rules! call_step {
    ($t:ty, |$s:ident| $concurrency:expr) => {
        #[async_trait::async_trait]
        impl $crate::api::Step for $t {
            fn shape(&self) -> $crate::api::Shape {
                $crate::api::Shape::Streaming
            }
            async fn run(
                &self,
                ctx: &$crate::api::StepCtx,
                inputs: $crate::api::Inputs,
                out: &mut dyn $crate::api::OutputSink,
            ) -> Result<(), $crate::api::StepError> {
                let $s = self;
                $crate::calls::run_pool(self, ctx, inputs, out, $concurrency).await
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{inputs_from, test_ctx, MemSink};
    use async_trait::async_trait;
    use retort_core::Message;
    use retort_teacher::{FinishReason, Usage};
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicU64;
    use std::sync::Mutex;

    /// Per prompt and attempt number: how long the call takes and whether it fails.
    type Script = Box<dyn Fn(&str, u32) -> (Duration, Result<(), TeacherError>) + Send + Sync>;

    /// A teacher whose behaviour per prompt is a function of the prompt and how many
    /// times it was asked.
    struct Fake {
        asked: Mutex<BTreeMap<String, u32>>,
        answered: AtomicU64,
        f: Script,
    }

    #[async_trait]
    impl Teacher for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn model(&self) -> &str {
            "fake"
        }
        async fn chat(&self, _step: &str, req: ChatRequest) -> Result<ChatResponse, TeacherError> {
            let p = req.messages[0].content.clone();
            let n = {
                let mut a = self.asked.lock().unwrap();
                let n = a.entry(p.clone()).or_default();
                *n += 1;
                *n
            };
            let (wait, r) = (self.f)(&p, n);
            tokio::time::sleep(wait).await;
            r?;
            self.answered.fetch_add(1, Ordering::Relaxed);
            Ok(ChatResponse {
                content: format!("answer to {p}"),
                finish_reason: FinishReason::Stop,
                usage: Usage::default(),
                model: "fake".into(),
                cached: false,
                reasoning: None,
                tool_calls: Vec::new(),
            })
        }
    }

    /// One call per record; the answer becomes its output.
    struct Echo;

    #[async_trait]
    impl MapStep for Echo {
        async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
            let t = ctx.teacher("fake")?;
            let mut b = Batch::default();
            for mut r in batch {
                let req = ChatRequest {
                    messages: vec![Message::user(r.instruction.clone().unwrap())],
                    ..Default::default()
                };
                match chat(ctx, t.as_ref(), req, &r.id).await? {
                    Ok(a) => {
                        r.output = Some(a.content);
                        b.records.push(r);
                    }
                    Err(f) => b.failures.push(f),
                }
            }
            Ok(b)
        }
    }

    fn rows(n: usize) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                id: format!("r{i}"),
                instruction: Some(format!("q{i}")),
                ..Default::default()
            })
            .collect()
    }

    fn ctx_with(f: Arc<Fake>) -> StepCtx {
        let mut teachers: BTreeMap<String, Arc<dyn Teacher>> = BTreeMap::new();
        teachers.insert("fake".into(), f);
        test_ctx("s", teachers, None)
    }

    fn fake(
        f: impl Fn(&str, u32) -> (Duration, Result<(), TeacherError>) + Send + Sync + 'static,
    ) -> Arc<Fake> {
        Arc::new(Fake {
            asked: Mutex::new(BTreeMap::new()),
            answered: AtomicU64::new(0),
            f: Box::new(f),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_call_holds_only_its_own_slot() {
        // Call q0 takes 2 s; the other 1,999 take 5 ms each at 64 in flight (≈ 0.16 s
        // of work). With per-batch, in-order calls (the old run_map + buffered) the
        // slow call held its batch and 63 finished calls behind it for the 2 s.
        let t = fake(|p, _| {
            let ms = if p == "q0" { 2000 } else { 5 };
            (Duration::from_millis(ms), Ok(()))
        });
        let ctx = ctx_with(t.clone());
        let mut sink = MemSink::default();
        let watch = t.clone();
        let probe = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            watch.answered.load(Ordering::Relaxed)
        });
        let t0 = Instant::now();
        run_pool(&Echo, &ctx, inputs_from(rows(2000), 1024), &mut sink, 64)
            .await
            .unwrap();
        let answered_while_slow = probe.await.unwrap();
        assert_eq!(
            answered_while_slow, 1999,
            "other calls waited on the slow one"
        );
        assert!(
            t0.elapsed() < Duration::from_millis(2600),
            "{:?}",
            t0.elapsed()
        );
        // Every record once; each commit in input order and naming what it finished;
        // the slow record is committed on its own, last.
        let ids: Vec<String> = sink.records().into_iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), 2000);
        let mut done = PositionSet::new();
        for b in &sink.batches {
            let d = b.done.as_ref().expect("pool commits name their positions");
            assert_eq!(d.len() as usize, b.records.len());
            done.union(d);
        }
        assert_eq!(done, PositionSet::range(0, 2000));
        assert_eq!(ids.last().unwrap(), "r0");
    }

    /// CPU time this thread has used (Linux: utime + stime of /proc/thread-self/stat).
    fn thread_cpu() -> Duration {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields after the `(comm)`, which may hold spaces: state is field 3, utime 14.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<u64> = rest
            .split(' ')
            .skip(11)
            .take(2)
            .map(|v| v.parse().unwrap())
            .collect();
        // Clock ticks; 100 per second on every Linux this runs on.
        Duration::from_millis((f[0] + f[1]) * 10)
    }

    #[tokio::test]
    async fn a_pool_waiting_on_slow_calls_sleeps_instead_of_spinning() {
        // Calls longer than COMMIT_EVERY (embedded models take seconds): the pool has
        // nothing to do but wait. It used to re-arm an elapsed commit deadline and spin
        // a core until the next answer.
        let t = fake(|_, _| (Duration::from_millis(2500), Ok(())));
        let ctx = ctx_with(t.clone());
        let mut sink = MemSink::default();
        let cpu0 = thread_cpu();
        run_pool(&Echo, &ctx, inputs_from(rows(2), 1024), &mut sink, 2)
            .await
            .unwrap();
        let used = thread_cpu() - cpu0;
        assert_eq!(sink.records().len(), 2);
        assert!(
            used < Duration::from_millis(300),
            "{used:?} of CPU while waiting 2.5 s"
        );
    }

    #[tokio::test]
    async fn transient_faults_requeue_then_leave_the_record_pending() {
        let t = fake(|p, n| match (p, n) {
            // Fails twice, then answers: requeued within the run, committed.
            ("q1", 1..=2) => (Duration::ZERO, Err(TeacherError::Connect("reset".into()))),
            // Always times out: pending, never a failure row.
            ("q2", _) => (Duration::ZERO, Err(TeacherError::Timeout(10))),
            // A permanent fault is the record's failure row.
            ("q3", _) => (
                Duration::ZERO,
                Err(TeacherError::Http {
                    status: 400,
                    message: "bad request".into(),
                    retry_after_ms: None,
                }),
            ),
            _ => (Duration::ZERO, Ok(())),
        });
        let ctx = ctx_with(t.clone());
        let mut sink = MemSink::default();
        let delays = [Duration::from_millis(10), Duration::from_millis(10)];
        let err = run_pool_with(&Echo, &ctx, inputs_from(rows(5), 2), &mut sink, 4, &delays)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("1 record(s) are pending"), "{err}");
        assert!(
            err.to_string().contains("run the same command again"),
            "{err}"
        );
        let mut ids: Vec<String> = sink.records().into_iter().map(|r| r.id).collect();
        ids.sort();
        assert_eq!(ids, ["r0", "r1", "r4"]);
        let f = sink.failures();
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].record_id.as_str(), f[0].class.as_str()),
            ("r3", "http_4xx")
        );
        let mut done = PositionSet::new();
        for b in &sink.batches {
            done.union(b.done.as_ref().unwrap());
        }
        assert!(!done.contains(2), "the pending record is not marked done");
        assert_eq!(done.len(), 4);
        assert_eq!(ctx.stats.pending.load(Ordering::Relaxed), 1);
        assert_eq!(ctx.stats.requeued.load(Ordering::Relaxed), 4);
    }

    #[tokio::test]
    async fn a_step_stopping_fault_commits_what_finished_first() {
        let t = fake(|p, _| match p {
            "q7" => (Duration::from_millis(50), Err(TeacherError::Budget(1.0))),
            _ => (Duration::ZERO, Ok(())),
        });
        let ctx = ctx_with(t);
        let mut sink = MemSink::default();
        let err = run_pool(&Echo, &ctx, inputs_from(rows(8), 8), &mut sink, 8)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StepError::Teacher(TeacherError::Budget(_))),
            "{err}"
        );
        assert_eq!(
            sink.records().len(),
            7,
            "the finished records are committed"
        );
    }
}
