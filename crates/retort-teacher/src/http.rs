//! HTTP backends: OpenAI-compatible chat and embeddings, the Anthropic Messages API,
//! and the weighted endpoint pool they share.
//!
//! A backend sends exactly one request and classifies what went wrong; retries, limits
//! and the cache live in [`crate::Client`].

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use retort_core::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{
    Backend, ChatRequest, ChatResponse, Embedder, FinishReason, RawChat, TeacherError, Usage,
};
use crate::config::{EmbedderConfig, EndpointConfig, Provider, TeacherConfig};
use crate::ratelimit::RateHeaders;
use crate::secret::{Scrubber, Secret};

/// Builds the HTTP backend a teacher config asks for (`openai` or `anthropic`).
/// `local` is built by `retort-local`. Errors are user-facing messages with a hint.
pub fn http_backend(cfg: &TeacherConfig) -> Result<Arc<dyn Backend>, String> {
    match cfg.provider {
        Provider::Openai => Ok(Arc::new(OpenAiBackend::new(cfg)?)),
        Provider::Anthropic => Ok(Arc::new(AnthropicBackend::new(cfg)?)),
        Provider::Local => Err(
            "provider \"local\" is the embedded model, built by retort-local, not an HTTP backend"
                .to_string(),
        ),
    }
}

/// Joins a base URL and an API path. A base with no path (`http://host:8000`) gets
/// `/v1` first, so both `http://host:8000` and `http://host:8000/v1` work.
pub fn api_url(base: &str, tail: &str) -> String {
    let b = base.trim_end_matches('/');
    let after_scheme = b.split_once("://").map(|x| x.1).unwrap_or(b);
    if after_scheme.contains('/') {
        format!("{b}/{tail}")
    } else {
        format!("{b}/v1/{tail}")
    }
}

// ---------------------------------------------------------------------------------------
// Endpoint pool

/// How one attempt against an endpoint went, as far as the pool cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointOutcome {
    /// An answer (or a client-side 4xx, which is not the endpoint's fault; or a 429,
    /// which the client's in-flight window handles).
    Ok,
    /// 5xx, timeout or unusable body: cool down after a few in a row.
    Soft,
    /// Connection refused/reset: cool down at once.
    Hard,
}

impl EndpointOutcome {
    /// Classifies an attempt's result.
    pub fn of<T>(r: &Result<T, TeacherError>) -> EndpointOutcome {
        match r {
            Ok(_) => EndpointOutcome::Ok,
            Err(TeacherError::Connect(_)) => EndpointOutcome::Hard,
            Err(TeacherError::Http { status, .. }) if *status >= 500 => EndpointOutcome::Soft,
            Err(TeacherError::Timeout(_)) | Err(TeacherError::BadResponse(_)) => {
                EndpointOutcome::Soft
            }
            Err(_) => EndpointOutcome::Ok,
        }
    }
}

struct Endpoint {
    base: String,
    chat_url: String,
    weight: f64,
    cooldown_until_ms: AtomicU64,
    consecutive: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
}

/// Per-endpoint counters, for progress and the manifest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointStats {
    /// Base URL.
    pub url: String,
    /// Attempts sent there.
    pub requests: u64,
    /// Attempts that failed (5xx, timeout, connection, bad body).
    pub failures: u64,
    /// Whether it is cooling down now.
    pub cooling: bool,
}

/// Several servers serving one model: picks one per attempt by weight, skipping those
/// cooling down after failures, so one dead replica does not sink the run.
pub struct EndpointPool {
    eps: Vec<Endpoint>,
    epoch: Instant,
    cooldown: Duration,
    fail_threshold: u32,
    rr: AtomicUsize,
}

impl EndpointPool {
    /// A pool over the given endpoints; `tail` is the API path (e.g. `chat/completions`).
    pub fn new(
        endpoints: &[EndpointConfig],
        tail: &str,
        cooldown: Duration,
        fail_threshold: u32,
    ) -> Result<EndpointPool, String> {
        if endpoints.is_empty() {
            return Err(
                "no endpoint configured (hint: set base_url or endpoints = [{ url = \"…\" }])"
                    .to_string(),
            );
        }
        Ok(EndpointPool {
            eps: endpoints
                .iter()
                .map(|e| Endpoint {
                    base: e.url.clone(),
                    chat_url: api_url(&e.url, tail),
                    weight: if e.weight.is_finite() && e.weight > 0.0 {
                        e.weight
                    } else {
                        1.0
                    },
                    cooldown_until_ms: AtomicU64::new(0),
                    consecutive: AtomicU32::new(0),
                    requests: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                })
                .collect(),
            epoch: Instant::now(),
            cooldown,
            fail_threshold: fail_threshold.max(1),
            rr: AtomicUsize::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Index of the endpoint for the next attempt.
    pub fn pick(&self) -> usize {
        let n = self.eps.len();
        if n == 1 {
            return 0;
        }
        let now = self.now_ms();
        let live = |e: &Endpoint| e.cooldown_until_ms.load(Ordering::Relaxed) <= now;
        let total: f64 = self.eps.iter().filter(|e| live(e)).map(|e| e.weight).sum();
        if total <= 0.0 {
            // Everyone is cooling: spread over all rather than stall; a recovered
            // server is noticed sooner this way.
            return self.rr.fetch_add(1, Ordering::Relaxed) % n;
        }
        let mut x = rand::rng().random::<f64>() * total;
        let mut last = 0;
        for (i, e) in self.eps.iter().enumerate() {
            if !live(e) {
                continue;
            }
            last = i;
            if x < e.weight {
                return i;
            }
            x -= e.weight;
        }
        last
    }

    /// Endpoints not cooling down right now.
    pub fn live(&self) -> usize {
        let now = self.now_ms();
        self.eps
            .iter()
            .filter(|e| e.cooldown_until_ms.load(Ordering::Relaxed) <= now)
            .count()
    }

    /// Number of endpoints in the pool.
    pub fn len(&self) -> usize {
        self.eps.len()
    }

    /// Whether the pool is empty (never: construction needs one endpoint).
    pub fn is_empty(&self) -> bool {
        self.eps.is_empty()
    }

    /// Records how an attempt went.
    pub fn report(&self, i: usize, outcome: EndpointOutcome) {
        let e = &self.eps[i];
        e.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            EndpointOutcome::Ok => {
                e.consecutive.store(0, Ordering::Relaxed);
            }
            EndpointOutcome::Soft | EndpointOutcome::Hard => {
                e.failures.fetch_add(1, Ordering::Relaxed);
                let c = e.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                if self.eps.len() > 1
                    && (outcome == EndpointOutcome::Hard || c >= self.fail_threshold)
                {
                    let until = self.now_ms() + self.cooldown.as_millis() as u64;
                    e.cooldown_until_ms.store(until, Ordering::Relaxed);
                    e.consecutive.store(0, Ordering::Relaxed);
                    tracing::warn!(
                        endpoint = %e.base,
                        "endpoint failing; no traffic for {:?}",
                        self.cooldown
                    );
                }
            }
        }
    }

    /// Base URL of endpoint `i`.
    pub fn base(&self, i: usize) -> &str {
        &self.eps[i].base
    }

    fn url(&self, i: usize) -> &str {
        &self.eps[i].chat_url
    }

    /// Counters per endpoint.
    pub fn stats(&self) -> Vec<EndpointStats> {
        let now = self.now_ms();
        self.eps
            .iter()
            .map(|e| EndpointStats {
                url: e.base.clone(),
                requests: e.requests.load(Ordering::Relaxed),
                failures: e.failures.load(Ordering::Relaxed),
                cooling: e.cooldown_until_ms.load(Ordering::Relaxed) > now,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------
// Shared HTTP plumbing

/// Builds the header map; every value is marked sensitive so reqwest's own `Debug`
/// output shows it redacted.
fn header_map(
    cfg_headers: &std::collections::BTreeMap<String, String>,
    auth: Option<(&'static str, String)>,
) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (k, v) in cfg_headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("header name {k:?} is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(v)
            .map_err(|_| format!("header {k:?} has a value that is not valid in HTTP"))?;
        value.set_sensitive(true);
        h.insert(name, value);
    }
    if let Some((name, v)) = auth {
        let mut value = HeaderValue::from_str(&v)
            .map_err(|_| "the API key contains characters not valid in an HTTP header (hint: check for a stray newline or quote)".to_string())?;
        value.set_sensitive(true);
        h.insert(HeaderName::from_static(name), value);
    }
    Ok(h)
}

fn key_from(env: &Option<String>) -> Result<Option<Secret>, String> {
    env.as_deref().map(Secret::from_env).transpose()
}

/// Turns a reqwest failure into a [`TeacherError`], without the URL (which could
/// carry a query-string key) but with the endpoint's base for orientation.
fn classify_reqwest(e: reqwest::Error, base: &str, timeout_ms: u64) -> TeacherError {
    if e.is_timeout() {
        return TeacherError::Timeout(timeout_ms);
    }
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    let base = base.split('?').next().unwrap_or(base);
    let msg = msg.replace(base, "");
    TeacherError::Connect(format!("{base}: {msg}"))
}

/// Reads `retry-after-ms` (OpenAI) or `Retry-After` in seconds (fractions allowed).
/// An HTTP-date form is not parsed; the client then uses its own backoff.
pub fn parse_retry_after(h: &HeaderMap) -> Option<u64> {
    if let Some(ms) = h
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|x| x.is_finite() && *x >= 0.0)
    {
        return Some(ms.ceil() as u64);
    }
    h.get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|x| x.is_finite() && *x >= 0.0)
        .map(|s| (s * 1000.0).ceil() as u64)
}

/// The error message inside an error body (`{"error": {"message": …}}` and friends),
/// else the body's start (already scrubbed by [`send_json`]).
fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let e = v.get("error")?;
        match e {
            Value::String(s) => Some(s.clone()),
            _ => e
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string),
        }
    });
    let mut m = from_json.unwrap_or_else(|| text.into_owned());
    if m.len() > 300 {
        let mut cut = 300;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push('…');
    }
    m
}

/// Sends one request and returns its body, the boundary where the server's bytes enter
/// retort: the body and every error are passed through `secrets` here, before anything
/// parses, caches, logs or stores them. Response headers are read for their numbers
/// only (retry-after, rate limits) and never kept.
async fn send_json(
    http: &reqwest::Client,
    url: &str,
    base: &str,
    body: Vec<u8>,
    secrets: &Scrubber,
    timeout_ms: u64,
) -> Result<(bytes::Bytes, Option<RateHeaders>), TeacherError> {
    let scrub_err = |e: reqwest::Error| match classify_reqwest(e, base, timeout_ms) {
        TeacherError::Connect(m) => TeacherError::Connect(secrets.text(&m)),
        other => other,
    };
    let resp = http.post(url).body(body).send().await.map_err(scrub_err)?;
    let status = resp.status().as_u16();
    let retry_after_ms = parse_retry_after(resp.headers());
    let rate = RateHeaders::from_headers(resp.headers());
    let raw = resp.bytes().await.map_err(scrub_err)?;
    let body = match secrets.bytes(&raw) {
        std::borrow::Cow::Borrowed(_) => raw,
        std::borrow::Cow::Owned(clean) => bytes::Bytes::from(clean),
    };
    if !(200..300).contains(&status) {
        return Err(TeacherError::Http {
            status,
            message: error_message(&body),
            retry_after_ms,
        });
    }
    Ok((body, rate))
}

fn estimate_usage(req: &ChatRequest, content: &str) -> Usage {
    let p: usize = req.messages.iter().map(|m| m.content.chars().count()).sum();
    Usage {
        prompt_tokens: (p as u64).div_ceil(4),
        completion_tokens: (content.chars().count() as u64).div_ceil(4),
    }
}

fn body_preview(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
    s.replace('\n', " ")
}

// ---------------------------------------------------------------------------------------
// OpenAI-compatible

#[derive(Serialize)]
struct OaiRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
}

#[derive(Deserialize)]
struct OaiResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<OaiChoice>,
    #[serde(default)]
    usage: Option<OaiUsage>,
}

#[derive(Deserialize)]
struct OaiChoice {
    #[serde(default)]
    message: Option<OaiMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OaiMessage {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct OaiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// `response_format` as OpenAI wants it: passed through when it already has a
/// `type`, otherwise taken as a bare JSON schema and wrapped in `json_schema`.
fn response_format(v: &Value) -> Value {
    if v.get("type").and_then(|t| t.as_str()).is_some() && v.get("properties").is_none() {
        v.clone()
    } else {
        serde_json::json!({
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": v, "strict": true}
        })
    }
}

fn finish(s: Option<&str>) -> FinishReason {
    match s {
        Some("stop") | Some("eos") | Some("end_turn") | Some("stop_sequence") => FinishReason::Stop,
        Some("length") | Some("max_tokens") => FinishReason::Length,
        _ => FinishReason::Other,
    }
}

/// Merges `extra_body` into a serialised request; extra keys win, except that
/// validation forbids `model` and `messages` there.
fn with_extra<T: Serialize>(
    req: &T,
    extra: &serde_json::Map<String, Value>,
) -> Result<Vec<u8>, TeacherError> {
    let enc = |e: serde_json::Error| TeacherError::Other(format!("cannot encode request: {e}"));
    if extra.is_empty() {
        return serde_json::to_vec(req).map_err(enc);
    }
    let mut v = serde_json::to_value(req).map_err(enc)?;
    if let Value::Object(m) = &mut v {
        for (k, x) in extra {
            m.insert(k.clone(), x.clone());
        }
    }
    serde_json::to_vec(&v).map_err(enc)
}

/// Fills a request's unset sampling parameters from the teacher's defaults.
pub fn apply_defaults(cfg: &TeacherConfig, req: &mut ChatRequest) {
    if req.temperature.is_none() {
        req.temperature = cfg.temperature;
    }
    if req.top_p.is_none() {
        req.top_p = cfg.top_p;
    }
    if req.max_tokens.is_none() {
        req.max_tokens = cfg.max_tokens;
    }
}

/// Any OpenAI-compatible server: `POST {base}/chat/completions`.
pub struct OpenAiBackend {
    cfg: TeacherConfig,
    http: reqwest::Client,
    pool: Arc<EndpointPool>,
    secrets: Scrubber,
    timeout_ms: u64,
}

impl OpenAiBackend {
    /// Builds the backend; reads the key from `api_key_env` now, so a missing key is
    /// reported before the run starts.
    pub fn new(cfg: &TeacherConfig) -> Result<OpenAiBackend, String> {
        let key = key_from(&cfg.api_key_env)?;
        let timeout = Duration::from_secs_f64(cfg.timeout_secs.max(0.001));
        let headers = header_map(
            &cfg.headers,
            key.as_ref()
                .map(|k| ("authorization", format!("Bearer {}", k.expose()))),
        )?;
        let secrets = Scrubber::new(key.as_ref(), cfg.headers.values().map(String::as_str));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(cfg.max_in_flight.max(8))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let pool = EndpointPool::new(
            &cfg.endpoint_list(),
            "chat/completions",
            Duration::from_secs_f64(cfg.endpoint_cooldown_secs.max(0.0)),
            cfg.endpoint_failures_before_cooldown,
        )?;
        Ok(OpenAiBackend {
            cfg: cfg.clone(),
            http,
            pool: Arc::new(pool),
            secrets,
            timeout_ms: timeout.as_millis() as u64,
        })
    }

    /// The endpoint pool (for per-endpoint stats).
    pub fn pool(&self) -> &Arc<EndpointPool> {
        &self.pool
    }

    fn parse(&self, body: &[u8]) -> Result<ChatResponse, TeacherError> {
        parse_openai(body, &self.cfg.model)
    }
}

/// Parses an OpenAI chat completion body.
fn parse_openai(body: &[u8], model: &str) -> Result<ChatResponse, TeacherError> {
    let r: OaiResponse = serde_json::from_slice(body).map_err(|e| {
        TeacherError::BadResponse(format!(
            "invalid JSON ({e}); body starts {:?}",
            body_preview(body)
        ))
    })?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TeacherError::BadResponse("no choices in answer".to_string()))?;
    let content = choice
        .message
        .and_then(|m| m.content)
        .ok_or_else(|| TeacherError::BadResponse("choice has no message content".to_string()))?;
    let finish_reason = finish(choice.finish_reason.as_deref());
    if content.trim().is_empty() && finish_reason != FinishReason::Length {
        return Err(TeacherError::BadResponse("empty answer".to_string()));
    }
    let usage = r.usage.map(|u| Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
    });
    Ok(ChatResponse {
        usage: usage.unwrap_or_default(),
        content,
        finish_reason,
        model: r.model.unwrap_or_else(|| model.to_string()),
        cached: false,
    })
}

#[async_trait]
impl Backend for OpenAiBackend {
    fn provider(&self) -> &str {
        "openai"
    }
    fn live_endpoints(&self) -> Option<usize> {
        (self.pool.len() > 1).then(|| self.pool.live())
    }
    fn model(&self) -> &str {
        &self.cfg.model
    }
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, TeacherError> {
        Ok(self.chat_raw(req).await?.response)
    }
    async fn chat_raw(&self, req: &ChatRequest) -> Result<RawChat, TeacherError> {
        let mut req = req.clone();
        apply_defaults(&self.cfg, &mut req);
        let wire = OaiRequest {
            model: &self.cfg.model,
            messages: &req.messages,
            temperature: req.temperature,
            top_p: req.top_p,
            max_tokens: req.max_tokens,
            stop: &req.stop,
            seed: req.seed,
            response_format: req.response_format.as_ref().map(response_format),
        };
        let body = with_extra(&wire, &self.cfg.extra_body)?;
        let i = self.pool.pick();
        let result = async {
            let (bytes, rate) = send_json(
                &self.http,
                self.pool.url(i),
                self.pool.base(i),
                body,
                &self.secrets,
                self.timeout_ms,
            )
            .await?;
            let mut response = self.parse(&bytes)?;
            if response.usage == Usage::default() {
                // Some servers (older llama.cpp) report no usage; estimate so limits
                // and cost still move.
                response.usage = estimate_usage(&req, &response.content);
            }
            let raw = String::from_utf8(bytes.to_vec())
                .map_err(|_| TeacherError::BadResponse("answer is not UTF-8".to_string()))?;
            Ok(RawChat {
                response,
                raw,
                rate,
            })
        }
        .await;
        self.pool.report(i, EndpointOutcome::of(&result));
        result
    }
    fn parse_raw(&self, raw: &str) -> Result<ChatResponse, TeacherError> {
        self.parse(raw.as_bytes())
    }
}

// ---------------------------------------------------------------------------------------
// Anthropic

#[derive(Serialize)]
struct AnthRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<&'a Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

#[derive(Deserialize)]
struct AnthResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<AnthBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthUsage>,
}

#[derive(Deserialize)]
struct AnthBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct AnthUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// The Anthropic Messages API: `POST {base}/v1/messages`, system messages moved to the
/// `system` field. `seed` and `response_format` have no Anthropic equivalent and are
/// not sent (they still key the cache).
pub struct AnthropicBackend {
    cfg: TeacherConfig,
    http: reqwest::Client,
    pool: Arc<EndpointPool>,
    secrets: Scrubber,
    timeout_ms: u64,
}

impl AnthropicBackend {
    /// Builds the backend; reads the key from `api_key_env` now.
    pub fn new(cfg: &TeacherConfig) -> Result<AnthropicBackend, String> {
        let key = key_from(&cfg.api_key_env)?;
        let timeout = Duration::from_secs_f64(cfg.timeout_secs.max(0.001));
        let mut headers = header_map(
            &cfg.headers,
            key.as_ref().map(|k| ("x-api-key", k.expose().to_string())),
        )?;
        let secrets = Scrubber::new(key.as_ref(), cfg.headers.values().map(String::as_str));
        let version = cfg.anthropic_version.as_deref().unwrap_or("2023-06-01");
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_str(version)
                .map_err(|_| format!("anthropic_version {version:?} is not a header value"))?,
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(cfg.max_in_flight.max(8))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        let pool = EndpointPool::new(
            &cfg.endpoint_list(),
            "messages",
            Duration::from_secs_f64(cfg.endpoint_cooldown_secs.max(0.0)),
            cfg.endpoint_failures_before_cooldown,
        )?;
        Ok(AnthropicBackend {
            cfg: cfg.clone(),
            http,
            pool: Arc::new(pool),
            secrets,
            timeout_ms: timeout.as_millis() as u64,
        })
    }

    /// The endpoint pool.
    pub fn pool(&self) -> &Arc<EndpointPool> {
        &self.pool
    }

    fn parse(&self, body: &[u8]) -> Result<ChatResponse, TeacherError> {
        let r: AnthResponse = serde_json::from_slice(body).map_err(|e| {
            TeacherError::BadResponse(format!(
                "invalid JSON ({e}); body starts {:?}",
                body_preview(body)
            ))
        })?;
        let content: String = r
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect();
        let finish_reason = finish(r.stop_reason.as_deref());
        if content.trim().is_empty() && finish_reason != FinishReason::Length {
            return Err(TeacherError::BadResponse(
                "answer has no text content".to_string(),
            ));
        }
        Ok(ChatResponse {
            usage: r
                .usage
                .map(|u| Usage {
                    prompt_tokens: u.input_tokens,
                    completion_tokens: u.output_tokens,
                })
                .unwrap_or_default(),
            content,
            finish_reason,
            model: r.model.unwrap_or_else(|| self.cfg.model.clone()),
            cached: false,
        })
    }
}

#[async_trait]
impl Backend for AnthropicBackend {
    fn provider(&self) -> &str {
        "anthropic"
    }
    fn live_endpoints(&self) -> Option<usize> {
        (self.pool.len() > 1).then(|| self.pool.live())
    }
    fn model(&self) -> &str {
        &self.cfg.model
    }
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, TeacherError> {
        Ok(self.chat_raw(req).await?.response)
    }
    async fn chat_raw(&self, req: &ChatRequest) -> Result<RawChat, TeacherError> {
        let mut req = req.clone();
        apply_defaults(&self.cfg, &mut req);
        let system: Vec<&str> = req
            .messages
            .iter()
            .filter(|m| m.role == "system")
            .map(|m| m.content.as_str())
            .collect();
        let wire = AnthRequest {
            model: &self.cfg.model,
            max_tokens: req.max_tokens.unwrap_or(1024),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: req.messages.iter().filter(|m| m.role != "system").collect(),
            temperature: req.temperature,
            top_p: req.top_p,
            stop_sequences: &req.stop,
        };
        let body = with_extra(&wire, &self.cfg.extra_body)?;
        let i = self.pool.pick();
        let result = async {
            let (bytes, rate) = send_json(
                &self.http,
                self.pool.url(i),
                self.pool.base(i),
                body,
                &self.secrets,
                self.timeout_ms,
            )
            .await?;
            let response = self.parse(&bytes)?;
            let raw = String::from_utf8(bytes.to_vec())
                .map_err(|_| TeacherError::BadResponse("answer is not UTF-8".to_string()))?;
            Ok(RawChat {
                response,
                raw,
                rate,
            })
        }
        .await;
        self.pool.report(i, EndpointOutcome::of(&result));
        result
    }
    fn parse_raw(&self, raw: &str) -> Result<ChatResponse, TeacherError> {
        self.parse(raw.as_bytes())
    }
}

// ---------------------------------------------------------------------------------------
// Embeddings

#[derive(Deserialize)]
struct EmbResponse {
    data: Vec<EmbItem>,
}

#[derive(Deserialize)]
struct EmbItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// An OpenAI-compatible `/v1/embeddings` endpoint, batched by `batch_size`, with
/// retries (backoff with full jitter, honouring Retry-After) for retriable errors.
pub struct OpenAiEmbedder {
    model: String,
    http: reqwest::Client,
    url: String,
    base: String,
    secrets: Scrubber,
    batch_size: usize,
    max_retries: u32,
    timeout_ms: u64,
    dim: AtomicUsize,
}

impl OpenAiEmbedder {
    /// Builds the embedder from `[embedder]` (provider `openai`).
    pub fn new(cfg: &EmbedderConfig) -> Result<OpenAiEmbedder, String> {
        let base = cfg
            .base_url
            .clone()
            .ok_or("embedder provider \"openai\" needs base_url")?;
        let model = cfg
            .model
            .clone()
            .ok_or("embedder provider \"openai\" needs model")?;
        let key = key_from(&cfg.api_key_env)?;
        let timeout = Duration::from_secs_f64(cfg.timeout_secs.max(0.001));
        let headers = header_map(
            &Default::default(),
            key.as_ref()
                .map(|k| ("authorization", format!("Bearer {}", k.expose()))),
        )?;
        let secrets = Scrubber::new(key.as_ref(), std::iter::empty());
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(OpenAiEmbedder {
            model,
            http,
            url: api_url(&base, "embeddings"),
            base,
            secrets,
            batch_size: cfg.batch_size.max(1),
            max_retries: cfg.max_retries,
            timeout_ms: timeout.as_millis() as u64,
            dim: AtomicUsize::new(cfg.dim.unwrap_or(0)),
        })
    }

    async fn batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        let body = serde_json::to_vec(&serde_json::json!({"model": self.model, "input": texts}))
            .map_err(|e| TeacherError::Other(format!("cannot encode request: {e}")))?;
        let mut attempt = 0u32;
        loop {
            let r = send_json(
                &self.http,
                &self.url,
                &self.base,
                body.clone(),
                &self.secrets,
                self.timeout_ms,
            )
            .await
            .and_then(|(b, _)| self.parse(&b, texts.len()));
            match r {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && attempt < self.max_retries => {
                    let cap = 250u64.saturating_mul(1 << attempt.min(10)).min(30_000);
                    let mut wait = rand::rng().random_range(0..=cap);
                    if let TeacherError::Http {
                        retry_after_ms: Some(ra),
                        ..
                    } = &e
                    {
                        wait = wait.max(*ra);
                    }
                    tracing::debug!(
                        "embeddings attempt {attempt} failed ({e}); retry in {wait} ms"
                    );
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn parse(&self, body: &[u8], n: usize) -> Result<Vec<Vec<f32>>, TeacherError> {
        let r: EmbResponse = serde_json::from_slice(body).map_err(|e| {
            TeacherError::BadResponse(format!(
                "invalid embeddings JSON ({e}); body starts {:?}",
                body_preview(body)
            ))
        })?;
        if r.data.len() != n {
            return Err(TeacherError::BadResponse(format!(
                "asked for {n} embeddings, got {}",
                r.data.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
        for (pos, item) in r.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(pos);
            if i >= n || out[i].is_some() {
                return Err(TeacherError::BadResponse(format!(
                    "embedding index {i} out of range or repeated"
                )));
            }
            out[i] = Some(item.embedding);
        }
        let out: Vec<Vec<f32>> = out.into_iter().flatten().collect();
        let d = out.first().map(|v| v.len()).unwrap_or(0);
        if d == 0 || out.iter().any(|v| v.len() != d) {
            return Err(TeacherError::BadResponse(
                "embeddings of unequal or zero length".to_string(),
            ));
        }
        let known = self.dim.load(Ordering::Relaxed);
        if known != 0 && known != d {
            return Err(TeacherError::BadResponse(format!(
                "embedding dimension {d}, expected {known}"
            )));
        }
        self.dim.store(d, Ordering::Relaxed);
        Ok(out)
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.model
    }
    /// Configured `dim`, else the dimension of the last answer; 0 before the first
    /// call when not configured.
    fn dim(&self) -> usize {
        self.dim.load(Ordering::Relaxed)
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size) {
            out.extend(self.batch(chunk).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_and_without_v1() {
        assert_eq!(
            api_url("http://h:8000", "chat/completions"),
            "http://h:8000/v1/chat/completions"
        );
        assert_eq!(
            api_url("http://h:8000/v1/", "chat/completions"),
            "http://h:8000/v1/chat/completions"
        );
        assert_eq!(
            api_url("https://api.anthropic.com", "messages"),
            "https://api.anthropic.com/v1/messages"
        );
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(parse_retry_after(&h), Some(2000));
        h.insert("retry-after", HeaderValue::from_static("0.25"));
        assert_eq!(parse_retry_after(&h), Some(250));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(parse_retry_after(&h), Some(1500));
        let mut d = HeaderMap::new();
        d.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&d), None);
    }

    #[test]
    fn openai_body_classification() {
        let ok = br#"{"model":"m","choices":[{"message":{"content":"hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let r = parse_openai(ok, "x").unwrap();
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert_eq!(r.usage.prompt_tokens, 3);
        let e = parse_openai(br#"{"choices":[]}"#, "x").unwrap_err();
        assert_eq!(e.class(), "bad_response");
        let e = parse_openai(br#"{"choices":[{"message":{"con"#, "x").unwrap_err();
        assert!(e.to_string().contains("invalid JSON"), "{e}");
    }

    #[test]
    fn pool_skips_cooling_endpoint() {
        let eps = vec![
            EndpointConfig {
                url: "http://a/v1".into(),
                weight: 1.0,
            },
            EndpointConfig {
                url: "http://b/v1".into(),
                weight: 1.0,
            },
        ];
        let p = EndpointPool::new(&eps, "chat/completions", Duration::from_secs(60), 3).unwrap();
        p.report(0, EndpointOutcome::Hard);
        for _ in 0..100 {
            assert_eq!(p.pick(), 1);
        }
    }
}
