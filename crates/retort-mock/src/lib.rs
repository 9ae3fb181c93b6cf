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

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    /// Seed of the random injection.
    pub seed: u64,
    /// Keep a log entry per request. Off for long benchmarks to keep memory flat.
    pub record: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            latency: Duration::ZERO,
            rate_429: 0.0,
            retry_after_ms: 1000,
            retry_after_style: RetryAfterStyle::Seconds,
            rate_500: 0.0,
            rate_hang: 0.0,
            hang_for: Duration::from_secs(60),
            rate_truncated: 0.0,
            rate_invalid: 0.0,
            rate_length: 0.0,
            error_rules: Vec::new(),
            rules: Vec::new(),
            reply_fn: None,
            model: "mock-model".to_string(),
            embedding_dim: 16,
            require_key: None,
            seed: 7,
            record: true,
        }
    }
}

impl std::fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockConfig")
            .field("latency", &self.latency)
            .field("rate_429", &self.rate_429)
            .field("rate_500", &self.rate_500)
            .field("rate_hang", &self.rate_hang)
            .field("rate_truncated", &self.rate_truncated)
            .field("rate_invalid", &self.rate_invalid)
            .field("rate_length", &self.rate_length)
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
        let state = Arc::new(State {
            cfg,
            counter: AtomicU64::new(0),
            chat: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            embeddings: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            rule_hits: Mutex::new(vec![0; n_rules]),
        });
        let (tx, rx) = watch::channel(false);
        tokio::spawn(accept_loop(listener, state.clone(), rx));
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

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stop: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("mock accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.changed() => {}
            }
        });
    }
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
        let got = headers
            .iter()
            .find_map(|(k, v)| match k.as_str() {
                "authorization" => Some(v.trim_start_matches("Bearer ").to_string()),
                "x-api-key" => Some(v.clone()),
                _ => None,
            })
            .unwrap_or_default();
        if &got == want {
            Ok(())
        } else {
            Err(got)
        }
    }
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

    let (status, injected, resp) = route(&state, seq, &method, &path, &headers, &body, &user).await;
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
    if !state.cfg.latency.is_zero() {
        tokio::time::sleep(state.cfg.latency).await;
    }
    if injected == Some(Injected::Hang) {
        tokio::time::sleep(state.cfg.hang_for).await;
    }
    Ok(resp)
}

async fn route(
    state: &State,
    seq: u64,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &Value,
    user: &str,
) -> (u16, Option<Injected>, Response<Full<Bytes>>) {
    // Accept both `/v1/x` and `/x` so a base URL with or without `/v1` works.
    let p = path.strip_prefix("/v1").unwrap_or(path);
    if method == "GET" && p == "/models" {
        let b = json!({"object": "list", "data": [{"id": state.cfg.model, "object": "model"}]});
        return (200, None, json_response(200, b.to_string()));
    }
    if method != "POST" || !matches!(p, "/chat/completions" | "/messages" | "/embeddings") {
        let b = json!({"error": {"message": format!("no route {method} {path}")}});
        return (404, None, json_response(404, b.to_string()));
    }
    match p {
        "/chat/completions" => state.chat.fetch_add(1, Ordering::SeqCst),
        "/messages" => state.messages.fetch_add(1, Ordering::SeqCst),
        _ => state.embeddings.fetch_add(1, Ordering::SeqCst),
    };
    let anthropic = p == "/messages";
    if let Err(got) = state.key_ok(headers) {
        let b = json!({"error": {"message": format!("Incorrect API key provided: {got}"), "type": "invalid_request_error"}});
        return (401, None, json_response(401, b.to_string()));
    }
    if body.is_null() {
        let b = json!({"error": {"message": "request body is not JSON"}});
        return (400, None, json_response(400, b.to_string()));
    }
    let is_chat = p != "/embeddings";
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
        let reply = state.reply_for(user);
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
