use async_trait::async_trait;
use retort_core::{Message, ToolCall};
use serde::{Deserialize, Serialize};

/// A chat completion request, provider-neutral. Everything that changes the answer is
/// here, so a hash of it (plus provider and model) is a sound cache key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    /// JSON schema (OpenAI `response_format`) for endpoints that support structured output.
    pub response_format: Option<serde_json::Value>,
    /// Which of k samples this is; part of the cache key so k samples are k answers.
    pub sample_index: u32,
    /// How hard a reasoning model should think (`low`, `medium`, `high`): OpenAI's
    /// `reasoning_effort`, passed through by OpenAI-compatible servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// A budget for the reasoning trace, in tokens: Anthropic's extended thinking
    /// (`thinking.budget_tokens`, which turns it on). OpenAI-compatible servers take
    /// `reasoning_effort` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_reasoning_tokens: Option<u32>,
    /// Functions the model may call, as OpenAI-format tool definitions
    /// (`{"type": "function", "function": {"name", "description", "parameters"}}`).
    /// Skipped when empty so requests without tools keep their cache keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// OpenAI `tool_choice` (`"auto"`, `"required"`, `"none"`, or one function), passed
    /// through as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
}

/// The JSON Schema a request's `response_format` asks for: OpenAI's
/// `{"type": "json_schema", "json_schema": {"schema": …}}`, `json_object` (any object),
/// or a bare schema; `None` for `{"type": "text"}`. Backends that enforce a schema in
/// their own form (Anthropic's tool input, llama.cpp's grammar) read it here.
pub fn requested_schema(
    response_format: &serde_json::Value,
) -> Result<Option<serde_json::Value>, TeacherError> {
    match response_format.get("type").and_then(|t| t.as_str()) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(serde_json::json!({"type": "object"}))),
        Some("json_schema") => response_format
            .get("json_schema")
            .and_then(|j| j.get("schema"))
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                TeacherError::Other("response_format json_schema has no schema".to_string())
            }),
        _ => Ok(Some(response_format.clone())),
    }
}

/// Why a completion stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    Stop,
    Length,
    /// The model stopped to call tools (OpenAI `tool_calls`, Anthropic `tool_use`).
    ToolCalls,
    Other,
}

/// Token usage as the endpoint reported it (or the local model counted it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// A completed chat answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub content: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// Model id the endpoint reported.
    pub model: String,
    /// True when the answer came from the response cache (no request was made).
    #[serde(default)]
    pub cached: bool,
    /// The reasoning trace, wherever the server put it (`reasoning_content`, `reasoning`,
    /// Anthropic `thinking` blocks, or `<think>…</think>` before the answer), never part
    /// of `content`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The functions the model called (arguments as the JSON text it wrote).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
}

impl ChatResponse {
    /// Moves a `<think>…</think>` trace at the start of `content` into `reasoning` (R1
    /// distills, Qwen3, and the embedded teacher write it inline). A trace whose opening
    /// tag was part of the prompt (chat templates that end with `<think>`) is recognised
    /// by a lone `</think>`; an unclosed trace cut by `max_tokens` is all reasoning and
    /// leaves an empty answer. A reply that already carried a separate trace is left alone.
    pub fn split_think(&mut self) {
        if self.reasoning.is_some() {
            return;
        }
        const OPEN: &str = "<think>";
        const CLOSE: &str = "</think>";
        let body = self.content.trim_start();
        let (opened, rest) = match body.strip_prefix(OPEN) {
            Some(rest) => (true, rest),
            None => (false, body),
        };
        match rest.find(CLOSE) {
            Some(end) if opened || !rest[..end].contains(OPEN) => {
                let reasoning = rest[..end].trim().to_string();
                let answer = rest[end + CLOSE.len()..].trim_start().to_string();
                self.reasoning = Some(reasoning);
                self.content = answer;
            }
            None if opened => {
                self.reasoning = Some(rest.trim().to_string());
                self.content = String::new();
            }
            _ => {}
        }
    }
}

/// What went wrong with a request. `class()` names it for the failures table and
/// `is_retriable()` decides whether the client tries again.
#[derive(Clone, Debug, thiserror::Error)]
pub enum TeacherError {
    /// The endpoint answered with an HTTP error status.
    #[error("HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        /// Server-requested wait (Retry-After / retry-after-ms), in milliseconds.
        retry_after_ms: Option<u64>,
    },
    /// Connection refused/reset, DNS, TLS.
    #[error("connection error: {0}")]
    Connect(String),
    /// No answer within the configured timeout.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The body arrived but was not a usable answer (invalid JSON, no choices, empty).
    #[error("unusable response: {0}")]
    BadResponse(String),
    /// The answer was cut by `max_tokens` and the step needs a complete answer.
    #[error("answer truncated at max_tokens")]
    Truncated,
    /// The run's budget is spent; no new requests are sent.
    #[error("budget of ${0:.4} reached")]
    Budget(f64),
    /// The teacher cannot serve at all (it could not start).
    #[error("circuit breaker open: {0}")]
    CircuitOpen(String),
    /// The endpoint has been unreachable for longer than `max_outage_secs`: the
    /// breaker's probes kept failing.
    #[error("{0}")]
    Outage(String),
    /// Local model or configuration problem.
    #[error("{0}")]
    Other(String),
}

impl TeacherError {
    /// Short class for the failures table.
    pub fn class(&self) -> &'static str {
        match self {
            TeacherError::Http { status: 429, .. } => "http_429",
            TeacherError::Http { status, .. } if *status >= 500 => "http_5xx",
            TeacherError::Http { .. } => "http_4xx",
            TeacherError::Connect(_) => "connect",
            TeacherError::Timeout(_) => "timeout",
            TeacherError::BadResponse(_) => "bad_response",
            TeacherError::Truncated => "truncated",
            TeacherError::Budget(_) => "budget",
            TeacherError::CircuitOpen(_) => "circuit_open",
            TeacherError::Outage(_) => "outage",
            TeacherError::Other(_) => "other",
        }
    }

    /// HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            TeacherError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 429, 5xx, timeouts, connection errors and unusable bodies are worth retrying;
    /// 400/401/403/404, budget and an open breaker are not.
    pub fn is_retriable(&self) -> bool {
        match self {
            TeacherError::Http { status, .. } => *status == 429 || *status >= 500,
            TeacherError::Connect(_) | TeacherError::Timeout(_) => true,
            TeacherError::BadResponse(_) => true,
            TeacherError::Truncated => false,
            TeacherError::Budget(_)
            | TeacherError::CircuitOpen(_)
            | TeacherError::Outage(_)
            | TeacherError::Other(_) => false,
        }
    }

    /// Faults of the moment rather than of the request: connection errors, timeouts,
    /// 5xx and 429. After the client's retries they leave the record pending (the next
    /// run asks again); they are never a record's final outcome.
    pub fn is_transient(&self) -> bool {
        match self {
            TeacherError::Http { status, .. } => *status == 429 || *status >= 500,
            TeacherError::Connect(_) | TeacherError::Timeout(_) => true,
            _ => false,
        }
    }

    /// Faults of the endpoint's health, which the circuit breaker counts: it did not
    /// answer (connection, timeout) or answered 5xx. A 429, a 4xx or an unusable body
    /// means the server is up; such faults belong to the quota or the request.
    pub fn is_endpoint_fault(&self) -> bool {
        match self {
            TeacherError::Http { status, .. } => *status >= 500,
            TeacherError::Connect(_) | TeacherError::Timeout(_) => true,
            _ => false,
        }
    }

    /// Errors that stop the whole step rather than one record: budget reached, an
    /// endpoint down past `max_outage_secs`, a teacher that cannot start, and
    /// credentials the endpoint refuses (401/403 would fail every record alike).
    pub fn is_fatal_for_step(&self) -> bool {
        matches!(
            self,
            TeacherError::Budget(_) | TeacherError::CircuitOpen(_) | TeacherError::Outage(_)
        ) || matches!(
            self,
            TeacherError::Http {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// Sends one request to one model endpoint, with no retries, limits or cache.
/// Implemented by the HTTP providers and by the embedded llama.cpp model.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Provider name (`openai`, `anthropic`, `local`), part of the cache key.
    fn provider(&self) -> &str;
    /// Model id, part of the cache key.
    fn model(&self) -> &str;
    /// For a pool of several endpoints: how many are taking traffic now (not cooling
    /// down). `None` for a single endpoint or a local model. The client's circuit breaker
    /// counts a pool's failures only once no endpoint is live, because a failing endpoint
    /// in a pool is cooled down while the others carry on.
    fn live_endpoints(&self) -> Option<usize> {
        None
    }
    /// Send one chat request.
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, TeacherError>;

    /// Send one chat request and keep the body exactly as received, for the response
    /// cache: storing the raw body means a parser fix never throws away paid answers.
    /// The default serialises the parsed answer (for backends with no wire format).
    async fn chat_raw(&self, req: &ChatRequest) -> Result<RawChat, TeacherError> {
        let response = self.chat(req).await?;
        let raw = serde_json::to_string(&response)
            .map_err(|e| TeacherError::Other(format!("cannot serialise answer: {e}")))?;
        Ok(RawChat {
            response,
            raw,
            rate: None,
        })
    }

    /// Parses a body stored by [`Backend::chat_raw`] (a cache hit). Must accept what
    /// `chat_raw` of the same backend returned.
    fn parse_raw(&self, raw: &str) -> Result<ChatResponse, TeacherError> {
        serde_json::from_str(raw)
            .map_err(|e| TeacherError::BadResponse(format!("cached answer unreadable: {e}")))
    }
}

/// An answer plus the body it was parsed from.
#[derive(Clone, Debug, PartialEq)]
pub struct RawChat {
    /// The parsed answer.
    pub response: ChatResponse,
    /// The response body as the server sent it (what the cache stores).
    pub raw: String,
    /// The quota the server reported in rate-limit headers, if any.
    pub rate: Option<crate::ratelimit::RateHeaders>,
}

/// What steps call: a backend wrapped with limits, retries, cache and accounting.
#[async_trait]
pub trait Teacher: Send + Sync {
    /// Teacher name from the pipeline file.
    fn name(&self) -> &str;
    /// Model id.
    fn model(&self) -> &str;
    /// One chat completion. `step` attributes tokens and cost to a step in the manifest.
    async fn chat(&self, step: &str, req: ChatRequest) -> Result<ChatResponse, TeacherError>;
}

/// Turns texts into vectors: the embedded MiniLM or an embeddings endpoint.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Model id (part of the embedding cache key).
    fn model(&self) -> &str;
    /// Vector dimension.
    fn dim(&self) -> usize;
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(content: &str) -> (String, Option<String>) {
        let mut r = ChatResponse {
            content: content.into(),
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            model: "m".into(),
            cached: false,
            reasoning: None,
            tool_calls: Vec::new(),
        };
        r.split_think();
        (r.content, r.reasoning)
    }

    #[test]
    fn an_inline_trace_moves_out_of_the_answer() {
        assert_eq!(
            split("<think>\n2 and 2 make 4.\n</think>\n\nThe answer is 4."),
            ("The answer is 4.".into(), Some("2 and 2 make 4.".into()))
        );
        // The template opened the tag in the prompt (Qwen3, R1 distills).
        assert_eq!(
            split("2 and 2 make 4.</think>The answer is 4."),
            ("The answer is 4.".into(), Some("2 and 2 make 4.".into()))
        );
        // Cut during the trace: all reasoning, no answer.
        assert_eq!(
            split("<think>still thinking"),
            (String::new(), Some("still thinking".into()))
        );
        // An empty trace is a value (the model chose not to think).
        assert_eq!(
            split("<think></think>Hi."),
            ("Hi.".into(), Some(String::new()))
        );
    }

    #[test]
    fn answers_without_a_leading_trace_are_left_alone() {
        for s in [
            "The answer is 4.",
            "Use <think> tags like <think>this</think>.",
            "",
        ] {
            assert_eq!(split(s), (s.to_string(), None), "{s}");
        }
        // A separate trace from the server wins; the content is not searched.
        let mut r = ChatResponse {
            content: "<think>x</think>y".into(),
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            model: "m".into(),
            cached: false,
            reasoning: Some("server".into()),
            tool_calls: Vec::new(),
        };
        r.split_think();
        assert_eq!(r.content, "<think>x</think>y");
    }
}
