//! What the mock does, fixed at start: the misbehaviours it can inject and the scripted
//! replies and errors. Plain data, so the binary and tests build it without a runtime.

use std::sync::Arc;
use std::time::Duration;

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
    /// with this mean and `latency_sigma` (see [`lognormal_delay`](crate::lognormal_delay)).
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
    /// (that many came before it), run [`MockServer::outage`](crate::MockServer::outage)
    /// for the duration.
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
    /// Answer with a reasoning trace in this shape (Anthropic answers carry a `thinking`
    /// block whenever this is set or the request enables thinking).
    pub reasoning: Option<crate::structured::ReasoningShape>,
    /// Answer structured-output requests with a schema-valid JSON instance, as a server
    /// that enforces `response_format` does. Off: the schema is ignored and the reply is
    /// the usual text, as many servers do with an unknown option.
    pub honour_schema: bool,
    /// Answer a request that offers `tools` by calling one (see the `tools` module),
    /// and in text once the last turn is the tool's result.
    pub call_tools: bool,
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
            reasoning: None,
            honour_schema: true,
            call_tools: false,
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
