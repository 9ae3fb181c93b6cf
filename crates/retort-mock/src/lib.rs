//! A mock OpenAI-compatible and Anthropic HTTP server for tests and benchmarks.
//!
//! It binds `127.0.0.1:0`, answers `/v1/chat/completions`, `/v1/embeddings`,
//! `/v1/models` and the Anthropic `/v1/messages`, and can misbehave on purpose: fixed
//! latency, random or scripted 429 (with `Retry-After` or `retry-after-ms`), 500, hung
//! requests, truncated and invalid JSON bodies, and `finish_reason = length`. Every
//! request is logged (time, path, headers, body, what was injected) so tests can check
//! rate limits, retries and that no secret was sent where it should not be.
//!
//! Random injection is deterministic per request number (a hash of `seed` and the
//! request counter), so a failing test replays the same way.
//!
//! For benchmarks it can also draw each delay from a lognormal (a long tail, like real
//! teachers), answer a fixed share of *prompts* with garbage on every attempt, enforce a
//! requests-per-minute quota with OpenAI / Anthropic rate-limit headers, and go down
//! for a while ([`MockServer::outage`]) and come back on the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

/// How a 429 tells the client to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfterStyle {
    /// `Retry-After: <seconds>` (fractional seconds allowed, e.g. `0.25`).
    Seconds,
    /// `retry-after-ms: <milliseconds>` (what OpenAI sends).
    Millis,
    /// No header at all: the client must pick its own backoff.
    None,
}

/// One kind of misbehaviour the mock can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// 429 Too Many Requests with the given wait.
    TooMany {
        /// Wait the server asks for, in milliseconds.
        retry_after_ms: u64,
        /// Header used to say it.
        style: RetryAfterStyle,
    },
    /// 500 Internal Server Error.
    ServerError,
    /// Never answer (until `hang_for` elapses): the client must time out.
    Hang,
    /// 200 with a JSON body cut in the middle.
    TruncatedJson,
    /// 200 with a body that is not JSON at all.
    InvalidJson,
    /// 200 with a valid answer that stopped at `max_tokens` (`finish_reason = length`).
    Length,
    /// 200 with a non-JSON body because the *prompt* is one of the bad ones
    /// (`rate_bad_prompt`): the same prompt gets it on every attempt.
    BadPrompt,
    /// 429 because the `quota_rpm` bucket is empty.
    Quota,
}

impl Injected {
    /// Short label used in the request log.
    pub fn label(&self) -> &'static str {
        match self {
            Injected::TooMany { .. } => "429",
            Injected::ServerError => "500",
            Injected::Hang => "hang",
            Injected::TruncatedJson => "truncated_json",
            Injected::InvalidJson => "invalid_json",
            Injected::Length => "length",
            Injected::BadPrompt => "bad_prompt",
            Injected::Quota => "quota",
        }
    }
}

/// A scripted reply: when the last user message matches `pattern`, answer `reply`.
/// `$0`, `$1`, … in `reply` expand to the match and its groups.
#[derive(Clone, Debug)]
pub struct ReplyRule {
    /// Regex searched in the last user message.
    pub pattern: regex::Regex,
    /// Reply template.
    pub reply: String,
}

/// A scripted error: the first `times` requests whose last user message matches
/// `pattern` get `error` instead of an answer (later ones are answered normally).
#[derive(Clone, Debug)]
pub struct ErrorRule {
    /// Regex searched in the last user message.
    pub pattern: regex::Regex,
    /// How many matching requests misbehave.
    pub times: u64,
    /// What they get.
    pub error: Injected,
}

/// A reply function: receives the last user message, returns the answer text.
pub type ReplyFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// Everything the mock does, fixed at start.
#[derive(Clone)]
pub struct MockConfig {
    /// Delay before every answer (also before error answers).
    pub latency: Duration,
    /// When set, replaces `latency`: each request's delay is drawn from a lognormal
    /// with this mean and `latency_sigma` (see [`lognormal_delay`]).
    pub latency_mean: Option<Duration>,
    /// Sigma of the lognormal delay (of the underlying normal); 1.0 is a long tail
    /// (median ≈ 0.61 × mean, p99 ≈ 6.2 × mean).
    pub latency_sigma: f64,
    /// Share of POST requests answered 429.
    pub rate_429: f64,
    /// Wait the random 429s ask for.
    pub retry_after_ms: u64,
    /// Header the random 429s use.
    pub retry_after_style: RetryAfterStyle,
    /// Share of POST requests answered 500.
    pub rate_500: f64,
    /// Share of POST requests that hang.
    pub rate_hang: f64,
    /// How long a hung request hangs before the server gives up on it.
    pub hang_for: Duration,
    /// Share of POST requests answered with a cut JSON body.
    pub rate_truncated: f64,
    /// Share of POST requests answered with a non-JSON body.
    pub rate_invalid: f64,
    /// Share of chat requests answered with `finish_reason = length`.
    pub rate_length: f64,
    /// Share of *prompts* (by a hash of the last user message and `seed`) answered 200
    /// with a non-JSON body, every time they are sent; checked before the random
    /// injection, so retrying never helps.
    pub rate_bad_prompt: f64,
    /// Go down once, automatically: when the chat request with this index arrives
    /// (that many came before it), run [`MockServer::outage`] for the duration.
    pub outage_after: Option<(u64, Duration)>,
    /// Requests-per-minute quota on chat and messages requests: a bucket of this many
    /// requests refilled continuously at `quota_rpm / 60` per second. Every answer on
    /// `/v1/chat/completions` carries `x-ratelimit-{limit,remaining,reset}-requests`;
    /// an empty bucket answers 429 with `Retry-After` (whole seconds).
    pub quota_rpm: Option<u64>,
    /// With `quota_rpm`, also send `anthropic-ratelimit-requests-{limit,remaining,reset}`
    /// (reset as an RFC 3339 time) on `/v1/messages`.
    pub anthropic_headers: bool,
    /// Scripted errors, checked before the random ones.
    pub error_rules: Vec<ErrorRule>,
    /// Scripted replies, first match wins.
    pub rules: Vec<ReplyRule>,
    /// Reply function, used when no rule matches. Default: `echo: <last user message>`.
    pub reply_fn: Option<ReplyFn>,
    /// Model id reported in answers and by `/v1/models`.
    pub model: String,
    /// Embedding dimension.
    pub embedding_dim: usize,
    /// When set, requests must carry this key (`Authorization: Bearer …` or
    /// `x-api-key`); otherwise 401 whose message echoes the key received, as OpenAI
    /// does, so tests can check the client redacts it.
    pub require_key: Option<String>,
    /// Reflect the credential the request carried (`Authorization` or `x-api-key`), as
    /// misconfigured gateways and debug servers do, so tests can check it never reaches
    /// disk: every answer carries it in an `x-echo-authorization` header; a prompt with
    /// `LEAK-4XX` gets a 400 whose message quotes it, `LEAK-HTML` a 200 non-JSON body with
    /// it, `LEAK-CONTENT` an answer that ends with it; `{{AUTH}}` in any reply (rules,
    /// reply function) is replaced by it.
    pub echo_auth: bool,
    /// Seed of the random injection.
    pub seed: u64,
    /// Keep a log entry per request. Off for long benchmarks to keep memory flat.
    pub record: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency: Duration::ZERO,
            latency_mean: None,
            latency_sigma: 1.0,
            rate_429: 0.0,
            retry_after_ms: 1000,
            retry_after_style: RetryAfterStyle::Seconds,
            rate_500: 0.0,
            rate_hang: 0.0,
            hang_for: Duration::from_secs(60),
            rate_truncated: 0.0,
            rate_invalid: 0.0,
            rate_length: 0.0,
            rate_bad_prompt: 0.0,
            outage_after: None,
            quota_rpm: None,
            anthropic_headers: false,
            error_rules: Vec::new(),
            rules: Vec::new(),
            reply_fn: None,
            model: "mock-model".to_string(),
            embedding_dim: 16,
            require_key: None,
            echo_auth: false,
            seed: 7,
            record: true,
        }
    }
}

impl std::fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockConfig")
            .field("latency", &self.latency)
            .field("latency_mean", &self.latency_mean)
            .field("latency_sigma", &self.latency_sigma)
            .field("rate_429", &self.rate_429)
            .field("rate_500", &self.rate_500)
            .field("rate_hang", &self.rate_hang)
            .field("rate_truncated", &self.rate_truncated)
            .field("rate_invalid", &self.rate_invalid)
            .field("rate_length", &self.rate_length)
            .field("rate_bad_prompt", &self.rate_bad_prompt)
            .field("outage_after", &self.outage_after)
            .field("quota_rpm", &self.quota_rpm)
            .field("anthropic_headers", &self.anthropic_headers)
            .field("rules", &self.rules.len())
            .field("error_rules", &self.error_rules.len())
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// One request as the mock saw it.
#[derive(Clone, Debug)]
pub struct RequestLog {
    /// Request number, from 0.
    pub seq: u64,
    /// When the request arrived (after its body was read, before the latency).
    pub at: Instant,
    /// Method.
    pub method: String,
    /// Path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// Headers as received, lower-case names.
    pub headers: Vec<(String, String)>,
    /// Body as received.
    pub body: String,
    /// Last user message of a chat request (empty otherwise).
    pub last_user: String,
    /// Status the mock answered (0 for a hang).
    pub status: u16,
    /// What was injected, if anything.
    pub injected: Option<&'static str>,
}

impl RequestLog {
    /// Value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    cfg: MockConfig,
    counter: AtomicU64,
    chat: AtomicU64,
    messages: AtomicU64,
    embeddings: AtomicU64,
    log: Mutex<Vec<RequestLog>>,
    rule_hits: Mutex<Vec<u64>>,
    /// Requests to the serving task: go down for a while.
    control: mpsc::UnboundedSender<Outage>,
    /// `outage_after` already fired.
    outage_fired: AtomicBool,
    /// Outages started so far.
    outages: AtomicU64,
    /// The `quota_rpm` bucket.
    bucket: Mutex<Bucket>,
}

/// A request to go down for `dur`; `ack` is told once the listener is closed and the
/// open connections are gone.
struct Outage {
    dur: Duration,
    ack: Option<oneshot::Sender<()>>,
}

/// Token bucket of the `quota_rpm` quota.
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// What the quota said about one request.
struct QuotaCheck {
    limit: u64,
    remaining: u64,
    /// Until the bucket is full again.
    reset: Duration,
    /// `Some(wait)` when the bucket was empty.
    refused: Option<Duration>,
}

/// A running mock server. Dropping it stops accepting connections and closes the open
/// ones.
pub struct MockServer {
    /// Address it listens on (`127.0.0.1:<port>`).
    pub addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` and serves in the background on the current tokio runtime.
    pub async fn start(cfg: MockConfig) -> std::io::Result<MockServer> {
        Self::start_on(cfg, "127.0.0.1:0".parse().expect("literal address")).await
    }

    /// Binds the given address (the binary uses it for a fixed port).
    pub async fn start_on(cfg: MockConfig, bind: SocketAddr) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let n_rules = cfg.error_rules.len();
        let (control, control_rx) = mpsc::unbounded_channel();
        let tokens = cfg.quota_rpm.unwrap_or(0) as f64;
        let state = Arc::new(State {
            cfg,
            counter: AtomicU64::new(0),
            chat: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            embeddings: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            rule_hits: Mutex::new(vec![0; n_rules]),
            control,
            outage_fired: AtomicBool::new(false),
            outages: AtomicU64::new(0),
            bucket: Mutex::new(Bucket {
                tokens,
                last: Instant::now(),
            }),
        });
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(listener, addr, state.clone(), rx, control_rx));
        Ok(MockServer {
            addr,
            state,
            shutdown: tx,
        })
    }

    /// `http://127.0.0.1:<port>/v1`, the OpenAI-style base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:<port>`, the Anthropic-style base URL.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received on any path.
    pub fn requests(&self) -> u64 {
        self.state.counter.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/chat/completions`.
    pub fn chat_requests(&self) -> u64 {
        self.state.chat.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/messages`.
    pub fn messages_requests(&self) -> u64 {
        self.state.messages.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/embeddings`.
    pub fn embedding_requests(&self) -> u64 {
        self.state.embeddings.load(Ordering::SeqCst)
    }

    /// A copy of the request log (empty when `record` is off).
    pub fn log(&self) -> Vec<RequestLog> {
        self.state.log.lock().expect("mock log poisoned").clone()
    }

    /// Outages started so far (by [`MockServer::outage`] or `outage_after`).
    pub fn outages(&self) -> u64 {
        self.state.outages.load(Ordering::SeqCst)
    }

    /// Goes down for `dur`, then serves again on the same address: the listener is
    /// closed (new connections are refused) and every open connection is dropped
    /// mid-request (the client sees a reset or an early EOF). Returns once the server
    /// is down; it comes back by itself. An outage asked for during another one is
    /// ignored.
    pub async fn outage(&self, dur: Duration) {
        let (ack, done) = oneshot::channel();
        if self
            .state
            .control
            .send(Outage {
                dur,
                ack: Some(ack),
            })
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Stops accepting and closes open connections; later requests see "connection refused".
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Resolves once shutdown was asked for (or the server handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

/// Serves until shutdown, going down and re-binding the same address on each outage.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    mut control: mpsc::UnboundedReceiver<Outage>,
) {
    let mut listener = Some(listener);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => match rebind(addr, &mut stop).await {
                Some(l) => l,
                None => return,
            },
        };
        let Some(outage) = accept_loop(l, &state, &mut stop, &mut control).await else {
            return;
        };
        // The listener and every connection task are gone by now.
        state.outages.fetch_add(1, Ordering::SeqCst);
        tracing::info!("mock outage for {:?} on {addr}", outage.dur);
        if let Some(ack) = outage.ack {
            let _ = ack.send(());
        }
        tokio::select! {
            _ = tokio::time::sleep(outage.dur) => {}
            _ = stopped(&mut stop) => return,
        }
        // Outages asked for while down are void: tell their callers it already began.
        while let Ok(o) = control.try_recv() {
            if let Some(ack) = o.ack {
                let _ = ack.send(());
            }
        }
    }
}

/// Binds `addr` again after an outage. On unix tokio sets `SO_REUSEADDR`, so the
/// closed connections in TIME_WAIT do not block it; retries for ~10 s anyway in case
/// the port is briefly held, then gives up (the server stays down).
async fn rebind(addr: SocketAddr, stop: &mut watch::Receiver<bool>) -> Option<TcpListener> {
    for _ in 0..200 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => tracing::warn!("mock re-bind of {addr} failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stopped(stop) => return None,
        }
    }
    tracing::error!("mock could not re-bind {addr}; staying down");
    None
}

/// Accepts and serves until shutdown (`None`) or an outage request (`Some`). Either
/// way the listener is dropped and every connection task aborted before it returns.
async fn accept_loop(
    listener: TcpListener,
    state: &Arc<State>,
    stop: &mut watch::Receiver<bool>,
    control: &mut mpsc::UnboundedReceiver<Outage>,
) -> Option<Outage> {
    let mut conns = JoinSet::new();
    let exit = loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            // Reap finished connections so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            o = control.recv() => break o,
            _ = stopped(stop) => break None,
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("mock accept failed: {e}");
                // E.g. out of file descriptors: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = conn.await;
        });
    };
    drop(listener);
    // Aborting a task drops its connection (and the request it is serving) at once.
    conns.shutdown().await;
    exit
}

/// splitmix64: a cheap, well-mixed hash for deterministic per-request draws.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

/// The delay of request `seq` under a lognormal with the given *mean* and `sigma`
/// (mu = ln(mean) - sigma²/2, so the draws average to `mean`). Deterministic: two
/// uniform hashes of `seed` and `seq` go through Box–Muller.
pub fn lognormal_delay(mean: Duration, sigma: f64, seed: u64, seq: u64) -> Duration {
    let mean_s = mean.as_secs_f64();
    if mean_s <= 0.0 {
        return Duration::ZERO;
    }
    let base = mix(seed ^ 0x6C6F_676E_6F72_6D61) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // 1 - unit is in (0, 1], so the log is finite.
    let u1 = 1.0 - unit(base);
    let u2 = unit(base ^ 0xD1B5_4A32_D192_ED03);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let mu = mean_s.ln() - sigma * sigma / 2.0;
    // Cap at a day so a silly sigma cannot overflow `Duration`.
    Duration::from_secs_f64((mu + sigma * z).exp().min(86_400.0))
}

/// Whether `prompt` is one of the `rate` share of bad prompts under `seed`.
fn is_bad_prompt(prompt: &str, seed: u64, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(prompt.as_bytes());
    let h = h.finalize();
    let x = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    ((x >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// A duration the way OpenAI's rate-limit headers write it (Go style): `250ms`, `1s`,
/// `1.5s`, `6m0s`, `1h2m3s`.
pub fn go_duration(d: Duration) -> String {
    fn trim(x: f64) -> String {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
    if d.is_zero() {
        return "0s".to_string();
    }
    if d < Duration::from_secs(1) {
        return format!("{}ms", trim(d.as_secs_f64() * 1000.0));
    }
    let whole = d.as_secs();
    let (h, m) = (whole / 3600, whole % 3600 / 60);
    let s = trim((whole % 60) as f64 + f64::from(d.subsec_millis()) / 1000.0);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A time as RFC 3339 in UTC, whole seconds (`2026-11-25T12:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn json_response(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

fn rough_tokens(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4).max(1)
}

/// Deterministic unit vector from the text's hash, so equal texts get equal vectors.
pub fn mock_embedding(text: &str, dim: usize) -> Vec<f32> {
    let h = Sha256::digest(text.as_bytes());
    let mut seed = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            seed = mix(seed);
            ((seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn last_user(body: &Value) -> String {
    body.get("messages")
        .and_then(|m| m.as_array())
        .and_then(|msgs| {
            msgs.iter()
                .rev()
                .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            // Anthropic content blocks: concatenate the text parts.
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(""),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

fn prompt_chars(body: &Value) -> String {
    let mut s = String::new();
    if let Some(sys) = body.get("system").and_then(|v| v.as_str()) {
        s.push_str(sys);
    }
    if let Some(msgs) = body.get("messages").and_then(|m| m.as_array()) {
        for m in msgs {
            if let Some(c) = m.get("content").and_then(|c| c.as_str()) {
                s.push_str(c);
            }
        }
    }
    s
}

impl State {
    fn reply_for(&self, user: &str) -> String {
        for r in &self.cfg.rules {
            if let Some(caps) = r.pattern.captures(user) {
                let mut out = String::new();
                caps.expand(&r.reply, &mut out);
                return out;
            }
        }
        match &self.cfg.reply_fn {
            Some(f) => f(user),
            None => format!("echo: {user}"),
        }
    }

    /// Takes one request from the `quota_rpm` bucket, if there is a quota.
    fn take_quota(&self) -> Option<QuotaCheck> {
        let limit = self.cfg.quota_rpm?;
        let cap = limit as f64;
        let rate = cap / 60.0;
        let mut b = self.bucket.lock().expect("mock bucket poisoned");
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * rate).min(cap);
        b.last = now;
        let refused = if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            None
        } else if rate > 0.0 {
            Some(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        } else {
            Some(Duration::from_secs(60))
        };
        let reset = if rate > 0.0 {
            Duration::from_secs_f64((cap - b.tokens) / rate)
        } else {
            Duration::ZERO
        };
        Some(QuotaCheck {
            limit,
            remaining: b.tokens.floor() as u64,
            reset,
            refused,
        })
    }

    /// Whether chat request number `index` starts the automatic outage (once).
    fn outage_due(&self, index: u64) -> bool {
        match self.cfg.outage_after {
            Some((n, dur)) if index >= n && !self.outage_fired.swap(true, Ordering::SeqCst) => {
                let _ = self.control.send(Outage { dur, ack: None });
                true
            }
            _ => false,
        }
    }

    fn pick_injection(&self, seq: u64, user: &str, is_chat: bool) -> Option<Injected> {
        if !self.cfg.error_rules.is_empty() {
            let mut hits = self.rule_hits.lock().expect("mock rule hits poisoned");
            for (i, r) in self.cfg.error_rules.iter().enumerate() {
                if hits[i] < r.times && r.pattern.is_match(user) {
                    hits[i] += 1;
                    return Some(r.error);
                }
            }
        }
        let c = &self.cfg;
        if is_chat && is_bad_prompt(user, c.seed, c.rate_bad_prompt) {
            return Some(Injected::BadPrompt);
        }
        let u = unit(c.seed ^ seq.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut edge = 0.0;
        let table = [
            (
                c.rate_429,
                Injected::TooMany {
                    retry_after_ms: c.retry_after_ms,
                    style: c.retry_after_style,
                },
            ),
            (c.rate_500, Injected::ServerError),
            (c.rate_hang, Injected::Hang),
            (c.rate_truncated, Injected::TruncatedJson),
            (c.rate_invalid, Injected::InvalidJson),
            (if is_chat { c.rate_length } else { 0.0 }, Injected::Length),
        ];
        for (rate, inj) in table {
            edge += rate;
            if u < edge {
                return Some(inj);
            }
        }
        None
    }

    fn key_ok(&self, headers: &[(String, String)]) -> Result<(), String> {
        let Some(want) = &self.cfg.require_key else {
            return Ok(());
        };
        let got = received_key(headers);
        if &got == want {
            Ok(())
        } else {
            Err(got)
        }
    }
}

/// The key a request carried (`Authorization: Bearer …` or `x-api-key`), or "".
fn received_key(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find_map(|(k, v)| match k.as_str() {
            "authorization" => Some(v.trim_start_matches("Bearer ").to_string()),
            "x-api-key" => Some(v.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let seq = state.counter.fetch_add(1, Ordering::SeqCst);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body_bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(json_response(
                400,
                json!({"error": e.to_string()}).to_string(),
            ))
        }
    };
    let at = Instant::now();
    let body: Value = serde_json::from_slice(&body_bytes).unwrap_or(Value::Null);
    let user = last_user(&body);

    let Routed {
        status,
        injected,
        resp,
        down,
    } = route(&state, seq, &method, &path, &headers, &body, &user);
    if state.cfg.record {
        state
            .log
            .lock()
            .expect("mock log poisoned")
            .push(RequestLog {
                seq,
                at,
                method,
                path,
                headers,
                body: String::from_utf8_lossy(&body_bytes).into_owned(),
                last_user: user,
                status,
                injected: injected.map(|i| i.label()),
            });
    }
    if down {
        // The outage this request started drops its connection; never answer it.
        std::future::pending::<()>().await;
    }
    // A quota refusal is the rate limiter answering, not the model: no delay.
    if injected != Some(Injected::Quota) {
        let delay = match state.cfg.latency_mean {
            Some(mean) => lognormal_delay(mean, state.cfg.latency_sigma, state.cfg.seed, seq),
            None => state.cfg.latency,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    if injected == Some(Injected::Hang) {
        tokio::time::sleep(state.cfg.hang_for).await;
    }
    Ok(resp)
}

/// What [`route`] decided for one request.
struct Routed {
    /// Status logged (0 for a hang or a dropped request).
    status: u16,
    injected: Option<Injected>,
    resp: Response<Full<Bytes>>,
    /// This request started the automatic outage: it must not be answered.
    down: bool,
}

impl Routed {
    fn plain(status: u16, resp: Response<Full<Bytes>>) -> Routed {
        Routed {
            status,
            injected: None,
            resp,
            down: false,
        }
    }
}

fn route(
    state: &State,
    seq: u64,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &Value,
    user: &str,
) -> Routed {
    // Accept both `/v1/x` and `/x` so a base URL with or without `/v1` works.
    let p = path.strip_prefix("/v1").unwrap_or(path);
    if method == "GET" && p == "/models" {
        let b = json!({"object": "list", "data": [{"id": state.cfg.model, "object": "model"}]});
        return Routed::plain(200, json_response(200, b.to_string()));
    }
    if method != "POST" || !matches!(p, "/chat/completions" | "/messages" | "/embeddings") {
        let b = json!({"error": {"message": format!("no route {method} {path}")}});
        return Routed::plain(404, json_response(404, b.to_string()));
    }
    match p {
        "/chat/completions" => {
            let index = state.chat.fetch_add(1, Ordering::SeqCst);
            if state.outage_due(index) {
                return Routed {
                    status: 0,
                    injected: None,
                    resp: json_response(503, "{}".to_string()),
                    down: true,
                };
            }
        }
        "/messages" => {
            state.messages.fetch_add(1, Ordering::SeqCst);
        }
        _ => {
            state.embeddings.fetch_add(1, Ordering::SeqCst);
        }
    };
    let anthropic = p == "/messages";
    if let Err(got) = state.key_ok(headers) {
        let b = json!({"error": {"message": format!("Incorrect API key provided: {got}"), "type": "invalid_request_error"}});
        return Routed::plain(401, json_response(401, b.to_string()));
    }
    if body.is_null() {
        let b = json!({"error": {"message": "request body is not JSON"}});
        return Routed::plain(400, json_response(400, b.to_string()));
    }
    let is_chat = p != "/embeddings";
    let echo = state.cfg.echo_auth.then(|| received_key(headers));
    if let Some(auth) = &echo {
        if is_chat && user.contains("LEAK-4XX") {
            let b = json!({"error": {"message": format!("bad request from key {auth}")}});
            let mut resp = json_response(400, b.to_string());
            add_echo_header(&mut resp, auth);
            return Routed::plain(400, resp);
        }
    }
    let quota = if is_chat { state.take_quota() } else { None };
    let (status, injected, mut resp) = match quota.as_ref().and_then(|q| q.refused) {
        Some(wait) => quota_refusal(wait, anthropic),
        None => answer(
            state,
            seq,
            p,
            body,
            user,
            is_chat,
            anthropic,
            echo.as_deref(),
        ),
    };
    if let Some(q) = &quota {
        add_quota_headers(&mut resp, q, anthropic, state.cfg.anthropic_headers);
    }
    if let Some(auth) = &echo {
        add_echo_header(&mut resp, auth);
    }
    Routed {
        status,
        injected,
        resp,
        down: false,
    }
}

/// The 429 of an empty quota bucket: `Retry-After` in whole seconds, rounded up.
fn quota_refusal(
    wait: Duration,
    anthropic: bool,
) -> (u16, Option<Injected>, Response<Full<Bytes>>) {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let msg = if anthropic {
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "request quota exceeded"}})
    } else {
        json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}})
    };
    let r = Response::builder()
        .status(StatusCode::TOO_MANY_REQUESTS)
        .header("content-type", "application/json")
        .header("retry-after", secs.to_string())
        .body(Full::new(Bytes::from(msg.to_string())))
        .expect("static response parts");
    (429, Some(Injected::Quota), r)
}

/// OpenAI-style headers on chat completions; Anthropic-style on messages when asked.
fn add_quota_headers(
    resp: &mut Response<Full<Bytes>>,
    q: &QuotaCheck,
    anthropic: bool,
    anthropic_headers: bool,
) {
    let h = resp.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    if !anthropic {
        put("x-ratelimit-limit-requests", q.limit.to_string());
        put("x-ratelimit-remaining-requests", q.remaining.to_string());
        put("x-ratelimit-reset-requests", go_duration(q.reset));
    } else if anthropic_headers {
        // Round the reset time up so a client waiting for it finds the bucket full.
        let reset = SystemTime::now() + q.reset + Duration::from_millis(999);
        put("anthropic-ratelimit-requests-limit", q.limit.to_string());
        put(
            "anthropic-ratelimit-requests-remaining",
            q.remaining.to_string(),
        );
        put("anthropic-ratelimit-requests-reset", rfc3339(reset));
    }
}

/// `echo_auth`'s response header.
fn add_echo_header(resp: &mut Response<Full<Bytes>>, auth: &str) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(auth) {
        resp.headers_mut().insert("x-echo-authorization", v);
    }
}

/// A request past the key, body and quota checks: injected misbehaviour or an answer.
/// `echo` is the received key when `echo_auth` is on.
#[allow(clippy::too_many_arguments)]
fn answer(
    state: &State,
    seq: u64,
    p: &str,
    body: &Value,
    user: &str,
    is_chat: bool,
    anthropic: bool,
    echo: Option<&str>,
) -> (u16, Option<Injected>, Response<Full<Bytes>>) {
    let inj = state.pick_injection(seq, user, is_chat);
    match inj {
        Some(Injected::TooMany {
            retry_after_ms,
            style,
        }) => {
            let mut b = Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("content-type", "application/json");
            match style {
                RetryAfterStyle::Seconds => {
                    b = b.header("retry-after", format!("{}", retry_after_ms as f64 / 1000.0))
                }
                RetryAfterStyle::Millis => {
                    b = b.header("retry-after-ms", retry_after_ms.to_string())
                }
                RetryAfterStyle::None => {}
            }
            let msg = if anthropic {
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
            } else {
                json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})
            };
            let r = b
                .body(Full::new(Bytes::from(msg.to_string())))
                .expect("static response parts");
            return (429, inj, r);
        }
        Some(Injected::ServerError) => {
            let b = json!({"error": {"message": "injected server error"}});
            return (500, inj, json_response(500, b.to_string()));
        }
        Some(Injected::Hang) => {
            return (0, inj, json_response(504, "{}".to_string()));
        }
        _ => {}
    }
    let full = if p == "/embeddings" {
        embeddings_body(state, body)
    } else {
        let mut reply = state.reply_for(user);
        if let Some(auth) = echo {
            reply = reply.replace("{{AUTH}}", auth);
            if user.contains("LEAK-CONTENT") {
                reply.push_str(&format!(" (debug: key {auth})"));
            }
        }
        let length = inj == Some(Injected::Length);
        if anthropic {
            anthropic_body(state, seq, body, reply, length)
        } else {
            openai_body(state, seq, body, reply, length)
        }
    };
    let text = match inj {
        Some(Injected::TruncatedJson) => full[..full.len() / 2].to_string(),
        Some(Injected::InvalidJson) => "<html>upstream returned garbage</html>".to_string(),
        Some(Injected::BadPrompt) => {
            "<html>this prompt always breaks the upstream</html>".to_string()
        }
        _ if is_chat && user.contains("LEAK-HTML") && echo.is_some() => {
            format!(
                "<html>debug_auth: Bearer {}</html>",
                echo.unwrap_or_default()
            )
        }
        _ => full,
    };
    (200, inj, json_response(200, text))
}

fn cut_reply(reply: String, length: bool) -> (String, bool) {
    if length {
        let half: String = reply.chars().take(reply.chars().count() / 2).collect();
        (half, true)
    } else {
        (reply, false)
    }
}

fn openai_body(state: &State, seq: u64, body: &Value, reply: String, length: bool) -> String {
    let (content, cut) = cut_reply(reply, length);
    let pt = rough_tokens(&prompt_chars(body));
    let ct = rough_tokens(&content);
    json!({
        "id": format!("chatcmpl-mock-{seq}"),
        "object": "chat.completion",
        "created": 0,
        "model": state.cfg.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": if cut { "length" } else { "stop" },
        }],
        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
    })
    .to_string()
}

fn anthropic_body(state: &State, seq: u64, body: &Value, reply: String, length: bool) -> String {
    let (content, cut) = cut_reply(reply, length);
    let pt = rough_tokens(&prompt_chars(body));
    let ct = rough_tokens(&content);
    json!({
        "id": format!("msg_mock_{seq}"),
        "type": "message",
        "role": "assistant",
        "model": state.cfg.model,
        "content": [{"type": "text", "text": content}],
        "stop_reason": if cut { "max_tokens" } else { "end_turn" },
        "stop_sequence": null,
        "usage": {"input_tokens": pt, "output_tokens": ct},
    })
    .to_string()
}

fn embeddings_body(state: &State, body: &Value) -> String {
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        _ => Vec::new(),
    };
    let tokens: u64 = inputs.iter().map(|s| rough_tokens(s)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"object": "embedding", "index": i, "embedding": mock_embedding(t, state.cfg.embedding_dim)})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": state.cfg.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A bare HTTP/1.1 answer: status, lower-case headers, body.
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// POSTs `body` with `Connection: close` over a raw socket (the mock has no HTTP
    /// client dependency) and reads the whole answer.
    async fn post(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<Answer> {
        let mut s = TcpStream::connect(addr).await?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no complete answer")
        })?;
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Answer {
            status,
            headers,
            body: body.to_string(),
        })
    }

    fn chat(prompt: &str) -> String {
        json!({"model": "m", "messages": [{"role": "user", "content": prompt}]}).to_string()
    }

    async fn post_chat(addr: SocketAddr, prompt: &str) -> std::io::Result<Answer> {
        post(addr, "/v1/chat/completions", &chat(prompt)).await
    }

    #[test]
    fn lognormal_draws_average_to_the_mean() {
        let mean = Duration::from_millis(500);
        let mut xs: Vec<f64> = (0..2000)
            .map(|i| lognormal_delay(mean, 1.0, 7, i).as_secs_f64())
            .collect();
        let avg = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((avg - 0.5).abs() < 0.05, "mean {avg}");
        xs.sort_by(f64::total_cmp);
        // Median of a lognormal is exp(mu) = mean * exp(-sigma²/2) ≈ 0.303 s.
        let median = xs[1000];
        assert!((median - 0.303).abs() < 0.03, "median {median}");
        assert!(xs[1999] > 2.0, "no tail: max {}", xs[1999]);
        // Deterministic per request number, different across numbers.
        assert_eq!(
            lognormal_delay(mean, 1.0, 7, 42),
            lognormal_delay(mean, 1.0, 7, 42)
        );
        assert_ne!(
            lognormal_delay(mean, 1.0, 7, 42),
            lognormal_delay(mean, 1.0, 7, 43)
        );
        assert_eq!(lognormal_delay(mean, 0.0, 7, 5), mean);
    }

    #[test]
    fn rate_limit_formats() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc3339(t(1_764_072_000)), "2025-11-25T12:00:00Z");
        assert_eq!(rfc3339(t(951_782_400 + 86_399)), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn a_bad_prompt_is_bad_on_every_attempt() {
        let server = MockServer::start(MockConfig {
            rate_bad_prompt: 0.3,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut bad = 0;
        for i in 0..30 {
            let prompt = format!("question {i}");
            let mut seen = Vec::new();
            for _ in 0..3 {
                let a = post_chat(server.addr, &prompt).await.unwrap();
                assert_eq!(a.status, 200);
                seen.push(serde_json::from_str::<Value>(&a.body).is_err());
            }
            assert!(seen.iter().all(|b| *b == seen[0]), "{prompt}: {seen:?}");
            assert_eq!(seen[0], is_bad_prompt(&prompt, 7, 0.3));
            bad += usize::from(seen[0]);
        }
        assert!((3..=18).contains(&bad), "{bad} of 30 bad");
        let log = server.log();
        let labelled = log
            .iter()
            .filter(|l| l.injected == Some("bad_prompt"))
            .count();
        assert_eq!(labelled, bad * 3);
    }

    #[tokio::test]
    async fn outage_refuses_and_drops_then_recovers_on_the_same_port() {
        let server = MockServer::start(MockConfig {
            latency: Duration::from_millis(800),
            ..Default::default()
        })
        .await
        .unwrap();
        let addr = server.addr;
        let in_flight = tokio::spawn(async move { post_chat(addr, "slow").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        server.outage(Duration::from_millis(1000)).await;
        // The request that was being served is cut, not answered.
        let cut = tokio::time::timeout(Duration::from_millis(500), in_flight)
            .await
            .expect("in-flight request not dropped")
            .unwrap();
        assert!(cut.is_err(), "in-flight request was answered");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "accepted while down"
        );
        // Back on the same port after the outage.
        let mut up = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "never came back");
        assert!(started.elapsed() >= Duration::from_millis(950));
        let a = post_chat(addr, "after").await.unwrap();
        assert_eq!(a.status, 200);
        assert!(a.body.contains("echo: after"));
        assert_eq!(server.outages(), 1);
    }

    #[tokio::test]
    async fn outage_after_fires_once() {
        let server = MockServer::start(MockConfig {
            outage_after: Some((2, Duration::from_millis(500))),
            ..Default::default()
        })
        .await
        .unwrap();
        let addr = server.addr;
        for i in 0..2 {
            assert_eq!(post_chat(addr, &format!("{i}")).await.unwrap().status, 200);
        }
        // The third starts the outage and is dropped.
        assert!(post_chat(addr, "third").await.is_err());
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "accepted while down"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        for i in 0..5 {
            let a = post_chat(addr, &format!("later {i}")).await.unwrap();
            assert_eq!(a.status, 200);
        }
        assert_eq!(server.outages(), 1);
        assert_eq!(server.chat_requests(), 8);
    }

    #[tokio::test]
    async fn quota_headers_count_down_then_429() {
        let server = MockServer::start(MockConfig {
            quota_rpm: Some(3),
            anthropic_headers: true,
            ..Default::default()
        })
        .await
        .unwrap();
        for want in ["2", "1", "0"] {
            let a = post_chat(server.addr, "q").await.unwrap();
            assert_eq!(a.status, 200);
            assert_eq!(a.header("x-ratelimit-limit-requests"), Some("3"));
            assert_eq!(a.header("x-ratelimit-remaining-requests"), Some(want));
            assert!(a
                .header("x-ratelimit-reset-requests")
                .unwrap()
                .ends_with('s'));
        }
        let a = post_chat(server.addr, "q").await.unwrap();
        assert_eq!(a.status, 429);
        // One request refills in 60 / 3 = 20 s.
        assert_eq!(a.header("retry-after"), Some("20"));
        assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));
        let reset = a.header("x-ratelimit-reset-requests").unwrap();
        assert!(reset.starts_with("59.") || reset == "1m0s", "{reset}");
        assert!(a.header("anthropic-ratelimit-requests-limit").is_none());
        let log = server.log();
        assert_eq!(log.last().unwrap().injected, Some("quota"));

        // Anthropic names on /v1/messages, sharing the same (empty) bucket.
        let body = json!({"model": "m", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let a = post(server.addr, "/v1/messages", &body).await.unwrap();
        assert_eq!(a.status, 429);
        assert_eq!(a.header("anthropic-ratelimit-requests-limit"), Some("3"));
        assert_eq!(
            a.header("anthropic-ratelimit-requests-remaining"),
            Some("0")
        );
        let reset = a.header("anthropic-ratelimit-requests-reset").unwrap();
        let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
        assert!(re.is_match(reset), "{reset}");
        assert!(a.header("x-ratelimit-limit-requests").is_none());
    }
}
