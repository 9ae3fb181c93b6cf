//! The client steps call: a [`Backend`] wrapped with the response cache, rate limits,
//! an adaptive in-flight window, retries and a circuit breaker.
//!
//! Size: ~730 lines of code plus tests. Cache, rate limits, the in-flight window, retries
//! and the breaker act on one request in one order; they stay in one file so that order
//! is read top to bottom in `run`.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tokio::sync::Notify;

use crate::accounting::{estimate_cost, Accounting, Ledger};
use crate::api::{Backend, ChatRequest, ChatResponse, FinishReason, Teacher, TeacherError};
use crate::cache::ResponseCache;
use crate::config::TeacherConfig;
use crate::key::request_key;
use crate::ratelimit::Pacer;

/// What every teacher client of a run shares.
///
/// The budget lives in [`Accounting`] (`Accounting::new(max_budget_usd)`), because
/// spending is counted there and is shared by all teachers.
#[derive(Clone)]
pub struct Shared {
    /// The response cache; `None` runs without one (nothing stored or read).
    pub cache: Option<Arc<ResponseCache>>,
    /// `false` for `--no-cache`: answers are still stored, but never read.
    pub read_cache: bool,
    /// Counters and budget for the manifest and progress bar.
    pub accounting: Arc<Accounting>,
}

impl Shared {
    /// Shared state with the given cache (read unless `read_cache` is false) and accounting.
    pub fn new(
        cache: Option<Arc<ResponseCache>>,
        read_cache: bool,
        accounting: Arc<Accounting>,
    ) -> Shared {
        Shared {
            cache,
            read_cache,
            accounting,
        }
    }
}

/// Per-call policy that does not change which answer is wanted (so it is not part of
/// the request or its cache key).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// Turn an answer cut at `max_tokens` into [`TeacherError::Truncated`] instead of
    /// returning it with `FinishReason::Length`.
    pub require_complete: bool,
}

/// Live client state for the progress bar.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientStats {
    /// Requests in flight now.
    pub in_flight: usize,
    /// Current in-flight window (≤ `max_in_flight`; halved on 429).
    pub window: usize,
    /// Whether the circuit breaker is open.
    pub breaker_open: bool,
}

// ---------------------------------------------------------------------------------------
// In-flight window

/// Width of one bucket of the window's recent-outcomes record.
const TICK: Duration = Duration::from_millis(250);
/// How far back the window looks when it decides whether throttling is sustained.
const THROTTLE_SPAN: Duration = Duration::from_secs(5);
/// Sustained throttling: at least this many 429s in the span …
const THROTTLE_MIN: u64 = 8;
/// … making up at least this share of the answers in it. An isolated 429 (a burst
/// limit, one busy replica) is far below: the 5%-error benchmark mix has 2.5% 429s.
const THROTTLE_SHARE: f64 = 0.2;
/// At most one cut per this interval, so the 429s of requests already in flight when
/// the quota ran out count as one event.
const CUT_EVERY: Duration = Duration::from_secs(1);
/// Growth resumes this long after the last cut, when 429s are back under half the
/// threshold share: one more slot per success, so the window doubles every round trip
/// (slow start) and is back at `max_in_flight` within a few round trips.
const GROW_AFTER: Duration = Duration::from_secs(2);

struct WindowState {
    limit: usize,
    in_flight: usize,
    /// (tick number, answers, 429s) for the last [`THROTTLE_SPAN`].
    recent: VecDeque<(u64, u64, u64)>,
    last_cut: Option<Instant>,
}

/// A semaphore whose size follows the server's quota: halved only on sustained
/// throttling, grown back once it stops, capped at `max`. An isolated 429 only delays
/// its own request (its retry waits out `Retry-After`).
struct Window {
    max: usize,
    epoch: Instant,
    state: Mutex<WindowState>,
    notify: Notify,
}

struct Permit<'a> {
    w: &'a Window,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = self.w.state.lock().expect("window lock");
        s.in_flight -= 1;
        if s.in_flight < s.limit {
            drop(s);
            self.w.notify.notify_one();
        }
    }
}

impl Window {
    fn new(max: usize) -> Window {
        let max = max.max(1);
        Window {
            max,
            epoch: Instant::now(),
            state: Mutex::new(WindowState {
                limit: max,
                in_flight: 0,
                recent: VecDeque::new(),
                last_cut: None,
            }),
            notify: Notify::new(),
        }
    }

    /// Takes a slot if one is free, without waiting.
    fn try_take(&self) -> Option<Permit<'_>> {
        let mut s = self.state.lock().expect("window lock");
        if s.in_flight < s.limit {
            s.in_flight += 1;
            let wake_more = s.in_flight < s.limit;
            drop(s);
            if wake_more {
                // Pass the baton: several slots may have opened at once.
                self.notify.notify_one();
            }
            return Some(Permit { w: self });
        }
        None
    }

    async fn acquire(&self) -> Permit<'_> {
        // A free slot is taken without registering a waiter first.
        if let Some(p) = self.try_take() {
            return p;
        }
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(p) = self.try_take() {
                return p;
            }
            notified.await;
        }
    }

    /// Counts an answer (`throttled` for a 429) and adapts the limit.
    fn outcome(&self, throttled: bool) {
        self.outcome_at(Instant::now(), throttled)
    }

    fn outcome_at(&self, now: Instant, throttled: bool) {
        let tick = (now - self.epoch).as_millis() as u64 / TICK.as_millis() as u64;
        let span = THROTTLE_SPAN.as_millis() as u64 / TICK.as_millis() as u64;
        let mut s = self.state.lock().expect("window lock");
        while s.recent.front().is_some_and(|b| b.0 + span <= tick) {
            s.recent.pop_front();
        }
        match s.recent.back_mut() {
            Some(b) if b.0 == tick => {
                b.1 += 1;
                b.2 += u64::from(throttled);
            }
            _ => s.recent.push_back((tick, 1, u64::from(throttled))),
        }
        let (n, t) = s.recent.iter().fold((0, 0), |(n, t), b| (n + b.1, t + b.2));
        let share = t as f64 / n.max(1) as f64;
        if throttled {
            let sustained = t >= THROTTLE_MIN && share >= THROTTLE_SHARE;
            if sustained && s.last_cut.is_none_or(|c| now - c >= CUT_EVERY) {
                s.limit = (s.limit / 2).max(1);
                s.last_cut = Some(now);
                tracing::info!(
                    "{t} of the last {n} answers were 429: in-flight window now {}",
                    s.limit
                );
            }
        } else if s.limit < self.max
            && s.last_cut.is_none_or(|c| now - c >= GROW_AFTER)
            && share < THROTTLE_SHARE / 2.0
        {
            s.limit += 1;
            drop(s);
            self.notify.notify_one();
        }
    }

    fn stats(&self) -> (usize, usize) {
        let s = self.state.lock().expect("window lock");
        (s.in_flight, s.limit)
    }
}

// ---------------------------------------------------------------------------------------
// Circuit breaker

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Closed,
    /// Calls wait until `until`, then one of them probes.
    Open {
        until: Instant,
    },
    /// One probe is out; the others wait for its answer.
    HalfOpen {
        since: Instant,
    },
}

struct BreakerState {
    mode: Mode,
    consecutive: u32,
    /// When the current outage began (the breaker opened).
    outage_since: Option<Instant>,
    cooldown: Duration,
    last_error: String,
}

/// Pauses a teacher whose endpoint is down instead of failing its calls: after
/// `breaker_min_failures` consecutive endpoint faults (connection, timeout, 5xx) it
/// opens and calls wait; after a cooldown one call probes; an answer closes it and
/// everyone goes on, a fault reopens it with twice the cooldown (at most 15 s). Past
/// `max_outage_secs` of outage every waiting call fails with
/// [`TeacherError::Outage`], which stops the step with a message to rerun. Faults
/// that belong to one request (429, 4xx, unusable body) do not count: the server
/// answered.
struct Breaker {
    teacher: String,
    open_after: u32,
    first_cooldown: Duration,
    max_outage: Duration,
    /// A probe that has not come back in this long is taken as lost (its caller was
    /// cancelled) and another call probes.
    probe_timeout: Duration,
    state: Mutex<BreakerState>,
    notify: Notify,
    open: AtomicBool,
}

impl Breaker {
    fn new(name: &str, cfg: &TeacherConfig) -> Breaker {
        let first = Duration::from_secs_f64(cfg.breaker_cooldown_secs.max(0.001));
        Breaker {
            teacher: name.to_string(),
            open_after: cfg.breaker_min_failures.max(1),
            first_cooldown: first,
            max_outage: Duration::from_secs_f64(cfg.max_outage_secs.max(0.001)),
            probe_timeout: Duration::from_secs_f64(cfg.timeout_secs.max(0.001) + 2.0),
            state: Mutex::new(BreakerState {
                mode: Mode::Closed,
                consecutive: 0,
                outage_since: None,
                cooldown: first,
                last_error: String::new(),
            }),
            notify: Notify::new(),
            open: AtomicBool::new(false),
        }
    }

    /// Waits while the endpoint is down. `Ok(true)` makes the caller the probe.
    async fn admit(&self) -> Result<bool, TeacherError> {
        // Fast path: a closed breaker costs one atomic load per call, no lock.
        if !self.open.load(Ordering::Acquire) {
            return Ok(false);
        }
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake_at = {
                let mut s = self.state.lock().expect("breaker lock");
                let now = Instant::now();
                if let (Some(since), false) = (s.outage_since, s.mode == Mode::Closed) {
                    if now - since >= self.max_outage {
                        return Err(TeacherError::Outage(format!(
                            "teacher {}: the endpoint has been down for {:.0} s (last error: {}); committed work is kept — run the same command again to resume once it is back (or raise max_outage_secs)",
                            self.teacher,
                            (now - since).as_secs_f64(),
                            s.last_error
                        )));
                    }
                }
                let limit = s.outage_since.map(|t| t + self.max_outage);
                match s.mode {
                    Mode::Closed => return Ok(false),
                    Mode::Open { until } if now >= until => {
                        s.mode = Mode::HalfOpen { since: now };
                        return Ok(true);
                    }
                    Mode::HalfOpen { since } if now - since >= self.probe_timeout => {
                        s.mode = Mode::HalfOpen { since: now };
                        return Ok(true);
                    }
                    Mode::Open { until } => until,
                    Mode::HalfOpen { since } => since + self.probe_timeout,
                }
                .min(limit.unwrap_or(now + self.max_outage))
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(wake_at.into()) => {}
            }
        }
    }

    /// The server answered (whatever it said).
    fn alive(&self) {
        let mut s = self.state.lock().expect("breaker lock");
        s.consecutive = 0;
        if s.mode != Mode::Closed {
            let down = s
                .outage_since
                .map(|t| t.elapsed().as_secs_f64())
                .unwrap_or(0.0);
            s.mode = Mode::Closed;
            s.outage_since = None;
            s.cooldown = self.first_cooldown;
            self.open.store(false, Ordering::Release);
            drop(s);
            tracing::warn!(
                "teacher {}: the endpoint answers again after {down:.1} s; calls go on",
                self.teacher
            );
            self.notify.notify_waiters();
        }
    }

    /// An endpoint fault. Returns whether the breaker is open now.
    fn fault(&self, err: &TeacherError, probe: bool) -> bool {
        let mut s = self.state.lock().expect("breaker lock");
        let now = Instant::now();
        s.consecutive += 1;
        s.last_error = err.to_string();
        match s.mode {
            Mode::HalfOpen { .. } if probe => {
                s.cooldown = (s.cooldown * 2).min(Duration::from_secs_f64(
                    crate::config::BREAKER_COOLDOWN_MAX_SECS,
                ));
                s.mode = Mode::Open {
                    until: now + s.cooldown,
                };
                drop(s);
                self.notify.notify_waiters();
                true
            }
            Mode::Closed if s.consecutive >= self.open_after => {
                s.mode = Mode::Open {
                    until: now + s.cooldown,
                };
                s.outage_since = Some(now);
                self.open.store(true, Ordering::Release);
                tracing::warn!(
                    "teacher {}: {} endpoint faults in a row (last: {err}); pausing its calls and probing every {:.1}–{} s for up to {:.0} s",
                    self.teacher,
                    s.consecutive,
                    s.cooldown.as_secs_f64(),
                    crate::config::BREAKER_COOLDOWN_MAX_SECS,
                    self.max_outage.as_secs_f64()
                );
                true
            }
            Mode::Closed => false,
            _ => true,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rate limits

/// A limiter that never lets more than `per_minute` units through in any 60-second
/// window: the burst is small (≈ 50 ms of traffic, so timer granularity does not waste
/// capacity) and the steady rate is lowered by that burst.
struct Limit {
    limiter: DefaultDirectRateLimiter,
    burst: u32,
    /// Serialises multi-chunk takes: if chunks of concurrent requests interleaved,
    /// many requests would finish paying at once and be sent in a bunch.
    turn: tokio::sync::Mutex<()>,
}

impl Limit {
    fn per_minute(n: u64) -> Limit {
        let n = n.clamp(1, u64::from(u32::MAX));
        let burst = n.div_ceil(1200).max(1);
        let steady = if n > burst { n - burst } else { n };
        let period = Duration::from_secs_f64(60.0 / steady as f64);
        let burst32 = NonZeroU32::new(burst as u32).expect("burst ≥ 1");
        let quota = Quota::with_period(period)
            .expect("period > 0")
            .allow_burst(burst32);
        Limit {
            limiter: RateLimiter::direct(quota),
            burst: burst as u32,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Waits until `n` units may pass, taking them in burst-sized chunks so a request
    /// bigger than the burst still goes through at the limited rate.
    async fn take(&self, mut n: u64) {
        let _turn = if n > u64::from(self.burst) {
            Some(self.turn.lock().await)
        } else {
            None
        };
        while n > 0 {
            let chunk = n.min(u64::from(self.burst)) as u32;
            let nz = NonZeroU32::new(chunk).expect("chunk ≥ 1");
            if self.limiter.until_n_ready(nz).await.is_err() {
                // Cannot happen: chunk ≤ burst. Fall back to single units.
                self.limiter.until_ready().await;
            }
            n -= u64::from(chunk);
        }
    }
}

/// Tokens a request is expected to use before it is sent: prompt chars/4 plus
/// `max_tokens` (or 256 when unset). Used by the TPM limit and by `retort plan`.
pub fn estimate_tokens(req: &ChatRequest) -> u64 {
    let chars: usize = req.messages.iter().map(|m| m.content.chars().count()).sum();
    (chars as u64).div_ceil(4) + u64::from(req.max_tokens.unwrap_or(256))
}

// ---------------------------------------------------------------------------------------
// Client

/// A teacher as steps see it. See the crate docs for the layers.
pub struct Client {
    name: String,
    cfg: TeacherConfig,
    backend: Arc<dyn Backend>,
    shared: Shared,
    window: Window,
    breaker: Breaker,
    pacer: Pacer,
    rpm: Option<Limit>,
    tpm: Option<Arc<Limit>>,
    timeout: Duration,
    sent: AtomicU64,
}

impl Client {
    /// Wraps `backend` (built from `cfg`) as the teacher `name`. Zero limits are
    /// reported by [`TeacherConfig::validate`]; here they are raised to 1 rather than
    /// disabling the limit.
    pub fn new(
        name: &str,
        cfg: &TeacherConfig,
        backend: Arc<dyn Backend>,
        shared: Arc<Shared>,
    ) -> Client {
        Client {
            name: name.to_string(),
            cfg: cfg.clone(),
            backend,
            shared: (*shared).clone(),
            window: Window::new(cfg.max_in_flight),
            breaker: Breaker::new(name, cfg),
            pacer: Pacer::default(),
            rpm: cfg.requests_per_minute.map(|n| Limit::per_minute(n.into())),
            tpm: cfg
                .tokens_per_minute
                .map(|n| Arc::new(Limit::per_minute(n))),
            timeout: Duration::from_secs_f64(cfg.timeout_secs.max(0.001)),
            sent: AtomicU64::new(0),
        }
    }

    /// Live state for the progress bar.
    pub fn stats(&self) -> ClientStats {
        let (in_flight, window) = self.window.stats();
        ClientStats {
            in_flight,
            window,
            breaker_open: self.breaker.open.load(Ordering::Relaxed),
        }
    }

    /// The teacher's configuration.
    pub fn config(&self) -> &TeacherConfig {
        &self.cfg
    }

    fn backoff_ms(&self, retry: u32, asked: Option<u64>, throttled: bool) -> u64 {
        let base = if throttled {
            self.cfg
                .retry_base_ms
                .max(crate::config::RATE_LIMIT_BASE_MS)
        } else {
            self.cfg.retry_base_ms
        };
        let cap = base
            .saturating_mul(1u64 << retry.min(20))
            .min(self.cfg.retry_max_ms)
            .max(1);
        let jitter = rand::rng().random_range(0..=cap);
        match asked {
            // The server said how long; wait at least that (capped), plus a little
            // jitter so the retried requests do not all land in the same instant.
            Some(ms) => {
                let ms = ms.min((self.cfg.max_retry_wait_secs * 1000.0) as u64);
                ms + jitter.min(ms / 10 + 1)
            }
            None => jitter,
        }
    }

    /// One chat completion with explicit per-call options.
    pub async fn chat_with(
        &self,
        step: &str,
        mut req: ChatRequest,
        opts: CallOptions,
    ) -> Result<ChatResponse, TeacherError> {
        let ledger = self.shared.accounting.ledger(&self.name, step);
        ledger.call();
        let r = self.run(&ledger, &mut req, opts).await;
        if r.is_ok() {
            ledger.answered();
        } else {
            ledger.failure();
        }
        r
    }

    async fn run(
        &self,
        ledger: &Ledger,
        req: &mut ChatRequest,
        opts: CallOptions,
    ) -> Result<ChatResponse, TeacherError> {
        let done = |mut r: ChatResponse, cached: bool| {
            r.cached = cached;
            // Every backend's answer, fresh or cached, leaves here with an inline trace
            // moved out of the content: one place for the rule.
            r.split_think();
            if opts.require_complete && r.finish_reason == FinishReason::Length {
                Err(TeacherError::Truncated)
            } else {
                Ok(r)
            }
        };
        self.cfg.apply_defaults(req);
        let key = self.shared.cache.as_ref().map(|_| {
            request_key(
                self.backend.provider(),
                self.backend.model(),
                req,
                &self.cfg.extra_body,
            )
        });
        if let (Some(cache), Some(key), true) = (&self.shared.cache, &key, self.shared.read_cache) {
            match cache.get(key).await {
                Ok(Some(hit)) => match self.backend.parse_raw(&hit.raw) {
                    Ok(r) => {
                        ledger.cache_hit();
                        return done(r, true);
                    }
                    // A stored body the current parser rejects: ask again rather than
                    // fail a record that a fresh answer may satisfy.
                    Err(e) => tracing::warn!("cached answer {key} unreadable ({e}); asking again"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    "response cache read failed ({e}); asking the teacher for this and every later answer of this run"
                ),
            }
        }
        let estimate = estimate_tokens(req);
        let mut retry = 0u32;
        loop {
            self.shared.accounting.check_budget()?;
            // Waits while the endpoint is down (and fails past max_outage_secs).
            let probe = self.breaker.admit().await?;
            let permit = self.window.acquire().await;
            self.pacer.wait().await;
            if let Some(l) = &self.rpm {
                l.take(1).await;
            }
            if let Some(l) = &self.tpm {
                l.take(estimate).await;
            }
            // Limits may have waited a while: the budget may be spent meanwhile.
            self.shared.accounting.check_budget()?;
            ledger.request(retry > 0);
            self.sent.fetch_add(1, Ordering::Relaxed);
            let result = match tokio::time::timeout(
                self.timeout + Duration::from_secs(1),
                self.backend.chat_raw(req),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(TeacherError::Timeout(self.timeout.as_millis() as u64)),
            };
            match result {
                Ok(raw) => {
                    if let Some(h) = &raw.rate {
                        self.pacer.observe(h, self.window.stats().0, estimate);
                    }
                    drop(permit);
                    self.window.outcome(false);
                    self.breaker.alive();
                    let usage = raw.response.usage;
                    ledger.usage(
                        usage,
                        estimate_cost(&self.cfg, usage.prompt_tokens, usage.completion_tokens),
                    );
                    if let Some(tpm) = &self.tpm {
                        let actual = usage.prompt_tokens + usage.completion_tokens;
                        if actual > estimate {
                            // Underestimated: take the difference later so following
                            // requests pay for it, without delaying this answer.
                            let tpm = tpm.clone();
                            tokio::spawn(async move { tpm.take(actual - estimate).await });
                        }
                    }
                    if let (Some(cache), Some(key)) = (&self.shared.cache, &key) {
                        if let Err(e) = cache.put(
                            key,
                            self.backend.provider(),
                            self.backend.model(),
                            raw.raw,
                            usage,
                        ) {
                            tracing::error!("cannot store answer in the response cache: {e}");
                        }
                    }
                    return done(raw.response, false);
                }
                Err(e) => {
                    drop(permit);
                    let is_429 = e.status() == Some(429);
                    let mut paused = false;
                    if e.is_endpoint_fault() {
                        // A pool with a live endpoint left routes around this fault (the
                        // failing one is cooled down); only a dead pool, or a single
                        // endpoint, feeds the breaker.
                        if self.backend.live_endpoints().is_none_or(|n| n == 0) {
                            paused = self.breaker.fault(&e, probe);
                        }
                    } else {
                        // 429, 4xx, unusable body: the server is up.
                        self.window.outcome(is_429);
                        self.breaker.alive();
                    }
                    if !e.is_retriable() {
                        return Err(e);
                    }
                    if paused {
                        // The endpoint is down: the breaker holds this call until a
                        // probe gets through, and the wait costs it no retry.
                        tracing::debug!(teacher = %self.name, "endpoint down ({}): waiting for it", e.class());
                        continue;
                    }
                    if retry >= self.retry_limit(&e) {
                        return Err(e);
                    }
                    let asked = match &e {
                        TeacherError::Http { retry_after_ms, .. } => *retry_after_ms,
                        _ => None,
                    };
                    let wait = self.backoff_ms(retry, asked, is_429);
                    tracing::debug!(
                        teacher = %self.name,
                        "attempt {} failed ({}): retry in {wait} ms",
                        retry + 1,
                        e.class()
                    );
                    // Only this call sleeps; its window slot is already released.
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    retry += 1;
                }
            }
        }
    }

    /// Retries a fault may have. An unusable body usually comes back the same for the
    /// same request (the measured case: a prompt the server cannot answer), so it gets
    /// two, not `max_retries`: enough for a proxy's one-off glitch, cheap for a prompt
    /// that always fails.
    fn retry_limit(&self, e: &TeacherError) -> u32 {
        match e {
            TeacherError::BadResponse(_) => self.cfg.max_retries.min(2),
            _ => self.cfg.max_retries,
        }
    }
}

#[async_trait]
impl Teacher for Client {
    fn name(&self) -> &str {
        &self.name
    }
    fn model(&self) -> &str {
        self.backend.model()
    }
    async fn chat(&self, step: &str, req: ChatRequest) -> Result<ChatResponse, TeacherError> {
        self.chat_with(step, req, CallOptions::default()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolated_429s_leave_the_window_alone() {
        // The trickle: 2.5% of answers are 429, spread over time. The old AIMD
        // window halved on each and settled near 10 of 64.
        let w = Window::new(64);
        let t0 = Instant::now();
        for i in 0..4000u64 {
            let at = t0 + Duration::from_millis(i); // 1,000 answers per second
            w.outcome_at(at, i % 40 == 0);
        }
        assert_eq!(w.stats().1, 64);
    }

    #[test]
    fn sustained_throttling_halves_once_a_second_and_recovers() {
        let w = Window::new(64);
        let t0 = Instant::now();
        // 1 s of 50% 429s at 100 answers/s: one cut (CUT_EVERY), not fifty.
        for i in 0..100u64 {
            w.outcome_at(t0 + Duration::from_millis(10 * i), i % 2 == 0);
        }
        assert_eq!(w.stats().1, 32);
        // Still throttled in the next second: one more cut.
        for i in 100..200u64 {
            w.outcome_at(t0 + Duration::from_millis(10 * i), i % 2 == 0);
        }
        assert_eq!(w.stats().1, 16);
        // Throttling stops; once the span has forgotten the 429s, each success adds a
        // slot, so the window is back at its cap within a few dozen answers.
        let later = t0 + Duration::from_secs(8);
        for i in 0..60u64 {
            w.outcome_at(later + Duration::from_millis(i), false);
        }
        assert_eq!(w.stats().1, 64);
    }

    fn breaker_cfg(open_after: u32, cooldown: f64, outage: f64) -> TeacherConfig {
        let mut c = TeacherConfig::new(crate::config::Provider::Openai, "m");
        c.breaker_min_failures = open_after;
        c.breaker_cooldown_secs = cooldown;
        c.max_outage_secs = outage;
        c.timeout_secs = 1.0;
        c
    }

    #[tokio::test]
    async fn breaker_opens_on_consecutive_faults_then_half_opens_and_closes() {
        let b = Breaker::new("t", &breaker_cfg(3, 0.1, 60.0));
        let e = TeacherError::Connect("refused".into());
        assert!(!b.fault(&e, false));
        b.alive(); // an answer in between resets the count
        assert!(!b.fault(&e, false));
        assert!(!b.fault(&e, false));
        assert!(b.fault(&e, false));
        assert!(b.open.load(Ordering::Relaxed));
        // Callers wait out the cooldown; the first after it is the probe.
        let t = Instant::now();
        assert!(b.admit().await.unwrap());
        assert!(
            t.elapsed() >= Duration::from_millis(90),
            "{:?}",
            t.elapsed()
        );
        // While the probe is out, another caller waits for its outcome.
        let waiter = async { b.admit().await };
        let closer = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            b.alive();
        };
        let (w, ()) = tokio::join!(waiter, closer);
        assert!(
            !w.unwrap(),
            "after the probe's answer calls go on as normal"
        );
        assert!(!b.open.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn failed_probes_back_off_and_the_outage_limit_stops_calls() {
        let b = Breaker::new("t", &breaker_cfg(1, 0.05, 0.4));
        let e = TeacherError::Connect("refused".into());
        assert!(b.fault(&e, false));
        let t = Instant::now();
        let mut probes = 0;
        let err = loop {
            match b.admit().await {
                Ok(true) => {
                    probes += 1;
                    b.fault(&e, true);
                }
                Ok(false) => panic!("closed without an answer"),
                Err(err) => break err,
            }
        };
        // Cooldowns 0.1, 0.2 (doubled per failed probe) fit about twice in 0.4 s.
        assert!((1..=4).contains(&probes), "{probes} probes");
        assert!(
            t.elapsed() >= Duration::from_millis(390),
            "{:?}",
            t.elapsed()
        );
        assert!(err.is_fatal_for_step());
        assert!(err.to_string().contains("down for"), "{err}");
    }

    #[tokio::test]
    async fn limiter_paces_within_the_per_minute_rate() {
        // 1200/min = 20/s with a burst of 1: 31 units need ≥ 30 intervals of 60/1199 s.
        let l = Limit::per_minute(1200);
        let t0 = Instant::now();
        let mut times = Vec::new();
        for _ in 0..31 {
            l.take(1).await;
            times.push(t0.elapsed());
        }
        assert!(
            times[30] >= Duration::from_secs_f64(30.0 * 60.0 / 1199.0 - 0.01),
            "{:?}",
            times[30]
        );
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..]
                .iter()
                .filter(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(in_window <= 21, "{in_window} units within 1 s of unit {i}");
        }
    }
}
