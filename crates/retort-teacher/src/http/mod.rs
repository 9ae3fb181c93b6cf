//! HTTP backends: OpenAI-compatible chat ([`openai`]) and embeddings ([`embeddings`]),
//! the Anthropic Messages API ([`anthropic`]), the weighted endpoint pool they share
//! ([`pool`]), and here the plumbing every request goes through.
//!
//! A backend sends exactly one request and classifies what went wrong; retries, limits
//! and the cache live in [`crate::Client`].

pub mod anthropic;
pub mod embeddings;
pub mod openai;
pub mod pool;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use serde::Serialize;
use serde_json::Value;

use crate::api::{Backend, ChatRequest, ChatResponse, FinishReason, RawChat, TeacherError, Usage};
use crate::config::{Provider, TeacherConfig};
use crate::ratelimit::RateHeaders;
use crate::secret::{Scrubber, Secret};
use anthropic::AnthropicBackend;
use openai::OpenAiBackend;
use pool::{EndpointOutcome, EndpointPool};

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

/// Builds the header map; every value is marked sensitive so reqwest's own `Debug`
/// output shows it redacted.
pub(crate) fn header_map(
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

pub(crate) fn key_from(env: &Option<String>) -> Result<Option<Secret>, String> {
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
pub(crate) async fn send_json(
    http: &reqwest::Client,
    url: &reqwest::Url,
    base: &str,
    body: Vec<u8>,
    secrets: &Scrubber,
    timeout_ms: u64,
) -> Result<(bytes::Bytes, Option<RateHeaders>), TeacherError> {
    let scrub_err = |e: reqwest::Error| match classify_reqwest(e, base, timeout_ms) {
        TeacherError::Connect(m) => TeacherError::Connect(secrets.text(&m)),
        other => other,
    };
    let resp = http
        .post(url.clone())
        .body(body)
        .send()
        .await
        .map_err(scrub_err)?;
    let status = resp.status().as_u16();
    let success = (200..300).contains(&status);
    let retry_after_ms = if success {
        None
    } else {
        parse_retry_after(resp.headers())
    };
    let rate = RateHeaders::from_headers(resp.headers());
    let raw = resp.bytes().await.map_err(scrub_err)?;
    let body = match secrets.bytes(&raw) {
        std::borrow::Cow::Borrowed(_) => raw,
        std::borrow::Cow::Owned(clean) => bytes::Bytes::from(clean),
    };
    if !success {
        return Err(TeacherError::Http {
            status,
            message: error_message(&body),
            retry_after_ms,
        });
    }
    Ok((body, rate))
}

pub(crate) fn estimate_usage(req: &ChatRequest, content: &str) -> Usage {
    let p: usize = req.messages.iter().map(|m| m.content.chars().count()).sum();
    Usage {
        prompt_tokens: (p as u64).div_ceil(4),
        completion_tokens: (content.chars().count() as u64).div_ceil(4),
    }
}

pub(crate) fn body_preview(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
    s.replace('\n', " ")
}

pub(crate) fn finish(s: Option<&str>) -> FinishReason {
    match s {
        Some("stop") | Some("eos") | Some("end_turn") | Some("stop_sequence") => FinishReason::Stop,
        Some("length") | Some("max_tokens") => FinishReason::Length,
        Some("tool_calls") | Some("tool_use") | Some("function_call") => FinishReason::ToolCalls,
        _ => FinishReason::Other,
    }
}

/// Merges `extra_body` into a serialised request; extra keys win, except that
/// validation forbids `model` and `messages` there.
pub(crate) fn with_extra<T: Serialize>(
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

/// The HTTP side of a chat backend: the client with its auth headers, the endpoint
/// pool, the scrubber of its secrets and its timeout. OpenAI and Anthropic differ only
/// in the auth header, the path and the body shapes.
pub(crate) struct ChatWire {
    http: reqwest::Client,
    pub(crate) pool: Arc<EndpointPool>,
    secrets: Scrubber,
    timeout_ms: u64,
}

impl ChatWire {
    /// Reads the key from `api_key_env` now (a missing key is reported before the run
    /// starts); `auth` makes its header, `extra` adds provider headers; `tail` is the
    /// path after each endpoint's base.
    pub(crate) fn new(
        cfg: &TeacherConfig,
        auth: impl FnOnce(&Secret) -> (&'static str, String),
        extra: Vec<(HeaderName, HeaderValue)>,
        tail: &str,
    ) -> Result<ChatWire, String> {
        let key = key_from(&cfg.api_key_env)?;
        let timeout = Duration::from_secs_f64(cfg.timeout_secs.max(0.001));
        let mut headers = header_map(&cfg.headers, key.as_ref().map(auth))?;
        headers.extend(extra);
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
            tail,
            Duration::from_secs_f64(cfg.endpoint_cooldown_secs.max(0.0)),
            cfg.endpoint_failures_before_cooldown,
        )?;
        Ok(ChatWire {
            http,
            pool: Arc::new(pool),
            secrets,
            timeout_ms: timeout.as_millis() as u64,
        })
    }

    /// Endpoints not cooling down, when there is more than one (for progress).
    pub(crate) fn live_endpoints(&self) -> Option<usize> {
        (self.pool.len() > 1).then(|| self.pool.live())
    }

    /// One request to the next endpoint of the pool, its answer parsed by `parse`, and
    /// the endpoint's outcome reported to the pool.
    pub(crate) async fn exchange(
        &self,
        body: Vec<u8>,
        parse: impl FnOnce(&[u8]) -> Result<ChatResponse, TeacherError>,
    ) -> Result<RawChat, TeacherError> {
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
            let response = parse(&bytes)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};
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
}
