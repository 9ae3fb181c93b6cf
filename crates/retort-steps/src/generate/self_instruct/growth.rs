//! The continuous generation loop of `self_instruct`: calls in flight continuously,
//! screened and committed in call order (see the parent module for the recipe).

use super::*;

/// How far generation call `i` may run ahead of the oldest call not yet finished: its
/// demos come from the pool as it stood when call `i - LAG` finished, so the requests
/// (and the response cache) are the same whatever the timing, while a slow call holds
/// up nothing until `LAG` later calls have all finished.
fn lag(concurrency: usize) -> u64 {
    8 * concurrency as u64
}

/// One self-instruct growth run: generation calls kept in flight continuously, their
/// results screened and committed in call order.
pub(super) struct Growth<'a> {
    pub(super) step: &'a SelfInstruct,
    pub(super) ctx: &'a StepCtx,
    pub(super) teacher: Arc<dyn Teacher>,
    pub(super) seeds: &'a [Task],
    pub(super) machine: Vec<Task>,
    /// The novelty pool; `None` only while a screening runs on the CPU pool.
    pub(super) pool: Option<Pool>,
    pub(super) accepted: u64,
    /// First call index of this invocation.
    pub(super) base: u64,
    /// (call index j, machine tasks after every call < j finished), for demo snapshots.
    pub(super) len_at: VecDeque<(u64, usize)>,
    pub(super) next_call: u64,
    /// Calls < `screened` have had their candidates screened.
    pub(super) screened: u64,
    /// Calls < `done` are finished (classic mode: their instance calls too).
    pub(super) done: u64,
    /// Generation replies not yet screened, by call index.
    pub(super) results: BTreeMap<u64, GenResult>,
    /// Screened calls not yet finished: their outcome so far and instance calls left.
    pub(super) per_call: BTreeMap<u64, (Outcome, usize)>,
    pub(super) committed_calls: u64,
}

/// What one generation call came back with, and its demos.
pub(super) struct GenResult {
    call: Call,
    reply: Result<ChatResponse, retort_core::Failure>,
}

enum Work {
    Gen(GenResult),
    Classic(u64, Outcome),
}

/// A transient fault sends a call back this many times (after these waits) before
/// the step stops with its work committed up to the last finished call.
const GEN_REQUEUE: [std::time::Duration; 2] = [
    std::time::Duration::from_secs(2),
    std::time::Duration::from_secs(10),
];

type WorkFut<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = (Option<Call>, Result<Work, StepError>)> + Send + 'a>,
>;

impl<'a> Growth<'a> {
    /// Machine tasks visible to call `i`.
    fn snapshot(&self, i: u64) -> &[Task] {
        let j = i
            .saturating_sub(lag(self.step.o.concurrency))
            .max(self.base);
        let n = self
            .len_at
            .iter()
            .find(|(k, _)| *k == j)
            .map(|(_, n)| *n)
            .expect("a snapshot is taken for every finished call");
        &self.machine[..n]
    }

    fn gen_future(&self, call: Call, attempt: usize) -> WorkFut<'a> {
        let step = self.step;
        let ctx = self.ctx;
        let teacher = self.teacher.clone();
        Box::pin(async move {
            if attempt > 0 {
                tokio::time::sleep(GEN_REQUEUE[attempt - 1]).await;
            }
            let req = step.gen.request(
                vec![Message::user(call.prompt.clone())],
                gc::derive_seed(ctx.seed, &[call.index]),
                0,
            );
            let rid = format!("call-{}", call.index);
            match crate::calls::chat(ctx, teacher.as_ref(), req, &rid).await {
                Ok(reply) => (None, Ok(Work::Gen(GenResult { call, reply }))),
                Err(e) => (Some(call), Err(e)),
            }
        })
    }

    pub(super) async fn run(
        &mut self,
        out: &mut dyn OutputSink,
        bad_seeds: Outcome,
    ) -> Result<u64, StepError> {
        let o = &self.step.o;
        let concurrency = o.concurrency.max(1);
        let mut live: FuturesUnordered<WorkFut<'a>> = FuturesUnordered::new();
        let mut attempts: HashMap<u64, usize> = HashMap::new();
        let mut round = bad_seeds;
        let mut round_calls = 0usize;
        let mut stop: Option<StepError> = None;
        loop {
            // Launch generation calls while there is room and the lag allows.
            while stop.is_none()
                && self.accepted < o.target
                && self.next_call < self.step.max_calls
                && live.len() < concurrency
                && self.next_call < self.done + lag(concurrency)
            {
                let i = self.next_call;
                let call = self
                    .step
                    .prepare(self.ctx, i, self.seeds, self.snapshot(i))?;
                live.push(self.gen_future(call, 0));
                self.next_call += 1;
            }
            // Commit finished calls in call order, a round of `concurrency` at a time.
            let finished_all = live.is_empty();
            if round_calls >= concurrency
                || (finished_all && (round_calls > 0 || !round.failures.is_empty()))
            {
                self.ctx.stats.count_rejections(&round.rejections);
                let mut batch = std::mem::take(&mut round).into_batch();
                batch.state = Some(json!({ "calls": self.done }));
                out.commit(batch).await?;
                self.committed_calls = self.done;
                round_calls = 0;
            }
            if finished_all {
                break;
            }
            let Some((call, res)) = live.next().await else {
                break;
            };
            match res {
                Ok(Work::Gen(g)) => {
                    self.results.insert(g.call.index, g);
                }
                Ok(Work::Classic(k, outcome)) => {
                    let e = self
                        .per_call
                        .get_mut(&k)
                        .expect("classic job of a screened call");
                    e.0.merge(outcome);
                    e.1 -= 1;
                }
                Err(StepError::Transient(e)) if stop.is_none() => {
                    let call = call.expect("only generation calls are retried here");
                    let n = attempts.entry(call.index).or_default();
                    if *n < GEN_REQUEUE.len() {
                        *n += 1;
                        tracing::debug!(step = %self.ctx.step_id, call = call.index, error = %e, "transient fault; call requeued");
                        self.ctx
                            .stats
                            .requeued
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        live.push(self.gen_future(call, *n));
                    } else {
                        stop = Some(StepError::Unfinished {
                            message: format!(
                                "generation call {} kept failing with a transient fault ({e}); the tasks of calls before it are committed — run the same command again to resume",
                                call.index
                            ),
                            source: Some(e),
                        });
                        live = FuturesUnordered::new();
                    }
                    continue;
                }
                Err(e) => {
                    if stop.is_none() {
                        stop = Some(e);
                        live = FuturesUnordered::new();
                    }
                    continue;
                }
            }
            if stop.is_some() {
                continue;
            }
            self.screen_ready(&mut live).await?;
            round_calls += self.finish_ready(&mut round);
        }
        if let Some(e) = stop {
            return Err(e);
        }
        Ok(self.done)
    }

    /// Screens, in call order, every generation reply whose predecessors are screened;
    /// classic mode starts the accepted instructions' instance calls.
    async fn screen_ready(
        &mut self,
        live: &mut FuturesUnordered<WorkFut<'a>>,
    ) -> Result<(), StepError> {
        let step_id = self.ctx.step_id.clone();
        while let Some(g) = self.results.remove(&self.screened) {
            let k = self.screened;
            self.screened += 1;
            let mut outcome = Outcome::default();
            let rid = format!("call-{}", g.call.index);
            let demos = g.call.demos;
            let r = match g.reply {
                Ok(r) => r,
                Err(mut f) => {
                    f.raw = g.call.prompt;
                    outcome.failures.push(f);
                    self.per_call.insert(k, (outcome, 0));
                    continue;
                }
            };
            let parsed = match self.step.o.mode {
                Mode::Alpaca => parse_alpaca(&r.content, r.finish_reason),
                Mode::Classic => {
                    parse_classic_list(&r.content, r.finish_reason).map(|(items, rj)| {
                        let c = items
                            .into_iter()
                            .map(|i| Candidate {
                                instruction: i,
                                input: String::new(),
                                output: String::new(),
                            })
                            .collect();
                        (c, rj)
                    })
                }
            };
            let cands = match parsed {
                Ok((cs, rejects)) => {
                    for (j, (why, d, text)) in rejects.into_iter().enumerate() {
                        outcome.reject(&step_id, &format!("{rid}#{j}"), why, d, text);
                    }
                    cs.into_iter().map(|c| (0usize, c)).collect::<Vec<_>>()
                }
                Err(e) => {
                    outcome.fail(&step_id, &rid, "parse", e, r.content);
                    self.per_call.insert(k, (outcome, 0));
                    continue;
                }
            };
            let room = self.step.o.target.saturating_sub(self.accepted);
            let filter = self.step.filter.clone();
            let pool = self.pool.take().expect("pool present between screenings");
            let (pool, (ok, rejected)) = self
                .ctx
                .cpu
                .run(move || {
                    let mut pool = pool;
                    let r = screen(&mut pool, &filter, cands, room);
                    (pool, r)
                })
                .await;
            self.pool = Some(pool);
            for (id, why, d, text) in rejected {
                outcome.reject(&step_id, &id, why, d, text);
            }
            let mut jobs = 0usize;
            match self.step.o.mode {
                Mode::Alpaca => {
                    for (_, c) in ok {
                        let rec = self.step.record(
                            self.ctx,
                            &c.instruction,
                            &c.input,
                            &c.output,
                            &demos,
                            &self.step.t_gen.name,
                        );
                        outcome.records.push(rec);
                        self.accepted += 1;
                        self.ctx.stats.add_done(1);
                    }
                }
                Mode::Classic => {
                    for (ord, (_, c)) in ok.into_iter().enumerate() {
                        let (step, ctx, teacher, demos) =
                            (self.step, self.ctx, self.teacher.clone(), demos.clone());
                        live.push(Box::pin(async move {
                            let r = step
                                .classic_task(
                                    ctx,
                                    teacher.as_ref(),
                                    k,
                                    ord as u64,
                                    c.instruction,
                                    demos,
                                )
                                .await
                                .map(|o| Work::Classic(k, o));
                            (None, r)
                        }));
                        jobs += 1;
                    }
                }
            }
            self.per_call.insert(k, (outcome, jobs));
        }
        Ok(())
    }

    /// Moves every screened call whose instance calls are all back, in call order,
    /// into `round`; returns how many.
    fn finish_ready(&mut self, round: &mut Outcome) -> usize {
        let mut n = 0;
        while self
            .per_call
            .get(&self.done)
            .is_some_and(|(_, left)| *left == 0)
        {
            let (outcome, _) = self.per_call.remove(&self.done).expect("checked");
            // Alpaca: every accepted task joins the demo pool. Classic: one task per
            // instruction (its first instance), and it counts as accepted only now
            // that its instances exist.
            let mut tasks_seen = HashSet::new();
            for r in &outcome.records {
                let Some(t) = task_from_record(r) else {
                    continue;
                };
                match self.step.o.mode {
                    Mode::Alpaca => self.machine.push(t),
                    Mode::Classic => {
                        let task = r.labels.get("task_id").cloned().unwrap_or_default();
                        if tasks_seen.insert(task) {
                            self.machine.push(t);
                            self.accepted += 1;
                            self.ctx.stats.add_done(1);
                        }
                    }
                }
            }
            round.merge(outcome);
            self.done += 1;
            n += 1;
            self.len_at.push_back((self.done, self.machine.len()));
            let keep_from = self.done.saturating_sub(lag(self.step.o.concurrency) + 1);
            while self.len_at.len() > 1 && self.len_at[0].0 < keep_from {
                self.len_at.pop_front();
            }
        }
        n
    }
}
