//! The client steps call: a [`Backend`] wrapped with the response cache, rate limits,
//! an adaptive in-flight window, retries and a circuit breaker.

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
use crate::cache::{request_key, ResponseCache};
use crate::config::TeacherConfig;
use crate::http::apply_defaults;

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
// Adaptive in-flight window (AIMD)

struct WindowState {
    limit: usize,
    in_flight: usize,
    successes: usize,
    epoch: u64,
}

/// A semaphore whose size adapts: halved on a 429 (once per congestion event),
/// grown by one after a window's worth of successes, capped at `max`.
struct Window {
    max: usize,
    state: Mutex<WindowState>,
    notify: Notify,
}

struct Permit<'a> {
    w: &'a Window,
    epoch: u64,
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
            state: Mutex::new(WindowState {
                limit: max,
                in_flight: 0,
                successes: 0,
                epoch: 0,
            }),
            notify: Notify::new(),
        }
    }

    async fn acquire(&self) -> Permit<'_> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock().expect("window lock");
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    let epoch = s.epoch;
                    let wake_more = s.in_flight < s.limit;
                    drop(s);
                    if wake_more {
                        // Pass the baton: several slots may have opened at once.
                        self.notify.notify_one();
                    }
                    return Permit { w: self, epoch };
                }
            }
            notified.await;
        }
    }

    fn success(&self) {
        let mut s = self.state.lock().expect("window lock");
        if s.limit < self.max {
            s.successes += 1;
            if s.successes >= s.limit {
                s.successes = 0;
                s.limit += 1;
                drop(s);
                self.notify.notify_one();
            }
        }
    }

    /// A 429 on a request sent under `epoch`: shrink once per congestion event, so a
    /// burst of 429s from requests already in flight halves the window only once.
    fn throttled(&self, epoch: u64) {
        let mut s = self.state.lock().expect("window lock");
        if s.epoch == epoch {
            s.limit = (s.limit / 2).max(1);
            s.successes = 0;
            s.epoch += 1;
            tracing::debug!("429: in-flight window now {}", s.limit);
        }
    }

    fn stats(&self) -> (usize, usize) {
        let s = self.state.lock().expect("window lock");
        (s.in_flight, s.limit)
    }
}

// ---------------------------------------------------------------------------------------
// Circuit breaker

/// Counts attempts and non-429 failures in one-second buckets over a sliding window
/// (so memory stays flat at any request rate) and opens for good when failures pass
/// both a count and a share.
struct Breaker {
    window_secs: u64,
    min_failures: u64,
    ratio: f64,
    epoch: Instant,
    buckets: Mutex<VecDeque<(u64, u64, u64)>>,
    open: AtomicBool,
    reason: Mutex<String>,
}

impl Breaker {
    fn new(cfg: &TeacherConfig) -> Breaker {
        Breaker {
            window_secs: cfg.breaker_window_secs.max(1.0).ceil() as u64,
            min_failures: u64::from(cfg.breaker_min_failures.max(1)),
            ratio: cfg.breaker_failure_ratio,
            epoch: Instant::now(),
            buckets: Mutex::new(VecDeque::new()),
            open: AtomicBool::new(false),
            reason: Mutex::new(String::new()),
        }
    }

    fn check(&self) -> Result<(), TeacherError> {
        if self.open.load(Ordering::Relaxed) {
            return Err(TeacherError::CircuitOpen(
                self.reason.lock().expect("breaker lock").clone(),
            ));
        }
        Ok(())
    }

    fn record(&self, failure: Option<&TeacherError>, teacher: &str) {
        let sec = self.epoch.elapsed().as_secs();
        let mut b = self.buckets.lock().expect("breaker lock");
        while b
            .front()
            .is_some_and(|(s, _, _)| *s + self.window_secs <= sec)
        {
            b.pop_front();
        }
        match b.back_mut() {
            Some(last) if last.0 == sec => {
                last.1 += 1;
                last.2 += u64::from(failure.is_some());
            }
            _ => b.push_back((sec, 1, u64::from(failure.is_some()))),
        }
        let Some(err) = failure else { return };
        let (total, failed) = b
            .iter()
            .fold((0, 0), |(t, f), (_, bt, bf)| (t + bt, f + bf));
        if failed >= self.min_failures && failed as f64 >= self.ratio * total as f64 {
            drop(b);
            if !self.open.swap(true, Ordering::SeqCst) {
                let msg = format!(
                    "teacher {teacher}: {failed} of {total} requests failed in the last {} s (last error: {err}); stopping instead of hammering a failing endpoint (hint: check the server, or raise breaker_failure_ratio)",
                    self.window_secs
                );
                tracing::error!("{msg}");
                *self.reason.lock().expect("breaker lock") = msg;
            }
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
            breaker: Breaker::new(cfg),
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
        if r.is_err() {
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
            if opts.require_complete && r.finish_reason == FinishReason::Length {
                Err(TeacherError::Truncated)
            } else {
                Ok(r)
            }
        };
        self.breaker.check()?;
        apply_defaults(&self.cfg, req);
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
                Err(e) => tracing::warn!("response cache read failed ({e}); asking the teacher"),
            }
        }
        let estimate = estimate_tokens(req);
        let mut retry = 0u32;
        loop {
            self.shared.accounting.check_budget()?;
            self.breaker.check()?;
            let permit = self.window.acquire().await;
            if let Some(l) = &self.rpm {
                l.take(1).await;
            }
            if let Some(l) = &self.tpm {
                l.take(estimate).await;
            }
            // Limits may have waited a while: re-check what may have changed meanwhile.
            self.shared.accounting.check_budget()?;
            self.breaker.check()?;
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
                    drop(permit);
                    self.window.success();
                    self.breaker.record(None, &self.name);
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
                    let epoch = permit.epoch;
                    drop(permit);
                    let is_429 = e.status() == Some(429);
                    if is_429 {
                        self.window.throttled(epoch);
                    } else if self.backend.live_endpoints().is_none_or(|n| n == 0) {
                        // A pool with a live endpoint left routes around this failure
                        // (the failing one is cooled down); only a dead pool, or a
                        // single endpoint, feeds the breaker.
                        self.breaker.record(Some(&e), &self.name);
                    }
                    if !e.is_retriable() || retry >= self.cfg.max_retries {
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

    #[tokio::test]
    async fn window_halves_once_per_event_and_regrows() {
        let w = Window::new(8);
        let p = w.acquire().await;
        let e = p.epoch;
        drop(p);
        w.throttled(e);
        w.throttled(e); // same congestion event: no second halving
        assert_eq!(w.stats().1, 4);
        for _ in 0..4 {
            w.success();
        }
        assert_eq!(w.stats().1, 5);
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
