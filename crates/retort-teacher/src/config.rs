//! Teacher and embedder configuration as written in the pipeline file
//! (`[teachers.<name>]` and `[embedder]`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// Which kind of server a teacher talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Any OpenAI-compatible server (OpenAI, vLLM, SGLang, TGI, llama.cpp server, Ollama…).
    Openai,
    /// The Anthropic Messages API.
    Anthropic,
    /// The embedded llama.cpp model (built by `retort-local`, not by this crate).
    Local,
}

impl Provider {
    /// Name as written in the pipeline file; also part of the response cache key.
    pub fn as_str(&self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Local => "local",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of an endpoint pool: several servers serving the same model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Base URL, like `base_url` (e.g. `http://10.0.0.5:8000/v1`).
    pub url: String,
    /// Relative share of requests sent here (default 1).
    #[serde(default = "one_f64")]
    pub weight: f64,
}

fn one_f64() -> f64 {
    1.0
}
fn default_in_flight() -> usize {
    64
}
fn default_retries() -> u32 {
    6
}
fn default_timeout() -> f64 {
    120.0
}
/// Short on purpose: an isolated 5xx or reset costs its request one extra round trip plus
/// a few milliseconds, instead of holding the end of a run for seconds (measured: 250 ms
/// doubled the run time of 20,000 calls with 5% injected 500s). A server in real trouble
/// trips the circuit breaker, and 429s without `Retry-After` back off from
/// [`RATE_LIMIT_BASE_MS`] instead. Envoy's default retry base is the same 25 ms.
fn default_retry_base_ms() -> u64 {
    25
}

/// Backoff base for a 429 that did not say how long to wait: being told to slow down
/// deserves a longer first pause than a lost connection.
pub const RATE_LIMIT_BASE_MS: u64 = 500;
fn default_retry_max_ms() -> u64 {
    30_000
}
fn default_max_retry_wait() -> f64 {
    300.0
}
/// Ten consecutive faults with no answer in between: with 20% of requests failing at
/// random that happens about once in ten million attempts, while a dead endpoint gets
/// there within one round of in-flight calls.
fn default_breaker_min() -> u32 {
    10
}
/// First pause before the breaker probes a down endpoint; doubles per failed probe up
/// to [`BREAKER_COOLDOWN_MAX_SECS`]. One second keeps a short restart cheap.
fn default_breaker_cooldown() -> f64 {
    1.0
}
/// Longest pause between two probes of a down endpoint, in seconds.
pub const BREAKER_COOLDOWN_MAX_SECS: f64 = 15.0;
/// Ten minutes: long enough for a server restart, a redeploy or a short network cut,
/// short enough that a dead endpoint does not hold a run for hours.
fn default_max_outage() -> f64 {
    600.0
}
fn default_cooldown() -> f64 {
    15.0
}
fn default_cooldown_after() -> u32 {
    3
}
/// 128: the embedded MiniLM's fastest forward-pass size on 2 cores (docs/benchmarks.md),
/// and far below any embeddings endpoint's per-request limit.
fn default_batch() -> usize {
    128
}

/// Serialises header names with every value replaced by `[redacted]`: a header may
/// carry a credential, and the manifest must never hold one.
fn redacted_map<S: Serializer>(m: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    let r: BTreeMap<&String, &str> = m.keys().map(|k| (k, "[redacted]")).collect();
    r.serialize(s)
}

/// `[teachers.<name>]`: one teacher model and how to talk to it.
///
/// Serialising it (for the manifest) writes header values as `[redacted]`; the key
/// itself is never in the config, only the name of the variable holding it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherConfig {
    /// `openai` (any OpenAI-compatible server), `anthropic` or `local` (embedded model).
    pub provider: Provider,
    /// Model id sent to the server (and part of the cache key).
    pub model: String,
    /// Server base URL, e.g. `http://127.0.0.1:8000/v1`. A URL with no path gets `/v1`
    /// appended. Required for `openai` unless `endpoints` is given; `anthropic`
    /// defaults to `https://api.anthropic.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Endpoint pool: several servers with the same model, requests spread by weight;
    /// a failing endpoint is cooled down while the others carry on.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// Name of the environment variable holding the API key (never the key itself).
    /// Unset means no auth header (local vLLM, Ollama…).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Extra HTTP headers sent with every request. Values never appear in logs or the manifest.
    #[serde(default, serialize_with = "redacted_map")]
    pub headers: BTreeMap<String, String>,
    /// Extra JSON fields merged into every request body (e.g. `{ top_k = 20 }` for
    /// vLLM). They change answers, so they are part of the cache key.
    #[serde(default)]
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Default sampling temperature when a step does not set one.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Default nucleus sampling `top_p` when a step does not set one.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Default `max_tokens` when a step does not set one (Anthropic requires one: 1024 if unset).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Requests per minute; never exceeded over any 60 s window. Unset: no limit.
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute (prompt estimated as chars/4 plus `max_tokens`, reconciled
    /// with reported usage). Unset: no limit.
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Most requests in flight at once. The client starts there; only sustained
    /// throttling (many 429s in the last seconds) shrinks its window, which grows back
    /// once the 429s stop (see the client docs).
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// Retries after the first attempt for 429, 5xx, timeouts, connection errors and
    /// unusable bodies. 400/401/403/404 are never retried.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Per-request timeout in seconds (fractions allowed).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// First backoff step in ms; attempt n waits a random time in [0, base·2ⁿ] (full jitter).
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// Upper bound of one backoff wait in ms (a server's Retry-After may ask for more).
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// Longest Retry-After honoured, in seconds; a longer ask is capped to this.
    #[serde(default = "default_max_retry_wait")]
    pub max_retry_wait_secs: f64,
    /// Price in $ per million prompt tokens, for live cost and `retort plan`.
    #[serde(default)]
    pub price_input_per_mtok: Option<f64>,
    /// Price in $ per million completion tokens.
    #[serde(default)]
    pub price_output_per_mtok: Option<f64>,
    /// Circuit breaker: consecutive endpoint faults (connection, timeout, 5xx; not 429,
    /// 4xx or unusable bodies) with no answer in between that open it. While open,
    /// calls wait instead of being sent; probes test the endpoint.
    #[serde(default = "default_breaker_min")]
    pub breaker_min_failures: u32,
    /// Circuit breaker: seconds before the first probe of a down endpoint (doubling
    /// per failed probe, at most 15 s).
    #[serde(default = "default_breaker_cooldown")]
    pub breaker_cooldown_secs: f64,
    /// How long calls wait out a down endpoint before the step stops with "the
    /// endpoint has been down for …; rerun to resume".
    #[serde(default = "default_max_outage")]
    pub max_outage_secs: f64,
    /// Endpoint pool: seconds a failing endpoint gets no traffic.
    #[serde(default = "default_cooldown")]
    pub endpoint_cooldown_secs: f64,
    /// Endpoint pool: consecutive failures (5xx, timeout, bad body) that cool an
    /// endpoint down; a refused connection cools it down at once.
    #[serde(default = "default_cooldown_after")]
    pub endpoint_failures_before_cooldown: u32,
    /// Anthropic `anthropic-version` header (default `2023-06-01`).
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// `local` only: path of the GGUF model file (default: the bundled model's cache path).
    #[serde(default)]
    pub model_path: Option<String>,
    /// `local` only: CPU threads for inference (default: all cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// `local` only: context window in tokens.
    #[serde(default)]
    pub context_size: Option<u32>,
    /// `local` only: sequences decoded in parallel.
    #[serde(default)]
    pub parallel: Option<usize>,
}

impl fmt::Debug for TeacherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeacherConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("endpoints", &self.endpoints)
            .field("api_key_env", &self.api_key_env)
            .field("headers", &crate::secret::redact_headers(&self.headers))
            .field("extra_body", &self.extra_body)
            .field("temperature", &self.temperature)
            .field("top_p", &self.top_p)
            .field("max_tokens", &self.max_tokens)
            .field("requests_per_minute", &self.requests_per_minute)
            .field("tokens_per_minute", &self.tokens_per_minute)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_retries", &self.max_retries)
            .field("timeout_secs", &self.timeout_secs)
            .finish_non_exhaustive()
    }
}

impl TeacherConfig {
    /// Fills a request's unset sampling parameters from this teacher's defaults. The
    /// client does it once, before the cache key is taken; backends send what they get.
    pub fn apply_defaults(&self, req: &mut crate::api::ChatRequest) {
        if req.temperature.is_none() {
            req.temperature = self.temperature;
        }
        if req.top_p.is_none() {
            req.top_p = self.top_p;
        }
        if req.max_tokens.is_none() {
            req.max_tokens = self.max_tokens;
        }
    }

    /// A config with every default, for the given provider and model (tests, code).
    pub fn new(provider: Provider, model: impl Into<String>) -> TeacherConfig {
        TeacherConfig {
            provider,
            model: model.into(),
            base_url: None,
            endpoints: Vec::new(),
            api_key_env: None,
            headers: BTreeMap::new(),
            extra_body: serde_json::Map::new(),
            temperature: None,
            top_p: None,
            max_tokens: None,
            requests_per_minute: None,
            tokens_per_minute: None,
            max_in_flight: default_in_flight(),
            max_retries: default_retries(),
            timeout_secs: default_timeout(),
            retry_base_ms: default_retry_base_ms(),
            retry_max_ms: default_retry_max_ms(),
            max_retry_wait_secs: default_max_retry_wait(),
            price_input_per_mtok: None,
            price_output_per_mtok: None,
            breaker_min_failures: default_breaker_min(),
            breaker_cooldown_secs: default_breaker_cooldown(),
            max_outage_secs: default_max_outage(),
            endpoint_cooldown_secs: default_cooldown(),
            endpoint_failures_before_cooldown: default_cooldown_after(),
            anthropic_version: None,
            model_path: None,
            threads: None,
            context_size: None,
            parallel: None,
        }
    }

    /// The endpoint pool: `endpoints` if given, else `base_url` (or the provider's
    /// default) with weight 1.
    pub fn endpoint_list(&self) -> Vec<EndpointConfig> {
        if !self.endpoints.is_empty() {
            return self.endpoints.clone();
        }
        let url = match (&self.base_url, self.provider) {
            (Some(u), _) => u.clone(),
            (None, Provider::Anthropic) => "https://api.anthropic.com".to_string(),
            (None, _) => return Vec::new(),
        };
        vec![EndpointConfig { url, weight: 1.0 }]
    }

    /// Every problem with this config, each with a hint; empty when it is usable.
    /// Checks that the API key variable is set, so a run fails before spending anything.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.model.trim().is_empty() {
            errs.push("model is empty (hint: model = \"Qwen/Qwen2.5-7B-Instruct\")".to_string());
        }
        match self.provider {
            Provider::Openai => {
                if self.base_url.is_none() && self.endpoints.is_empty() {
                    errs.push(
                        "provider \"openai\" needs base_url or endpoints (hint: base_url = \"http://127.0.0.1:8000/v1\", or \"https://api.openai.com/v1\")"
                            .to_string(),
                    );
                }
            }
            Provider::Anthropic => {}
            Provider::Local => {
                if self.base_url.is_some() || !self.endpoints.is_empty() {
                    errs.push("provider \"local\" runs the embedded model and takes no base_url/endpoints (hint: use provider = \"openai\" for a server)".to_string());
                }
            }
        }
        if self.base_url.is_some() && !self.endpoints.is_empty() {
            errs.push(
                "both base_url and endpoints are set (hint: list every server under endpoints)"
                    .to_string(),
            );
        }
        for e in self.endpoint_list() {
            if !(e.url.starts_with("http://") || e.url.starts_with("https://")) {
                errs.push(format!(
                    "endpoint {:?} is not an http(s) URL (hint: \"http://host:port/v1\")",
                    e.url
                ));
            }
            if !(e.weight.is_finite() && e.weight > 0.0) {
                errs.push(format!(
                    "endpoint {:?} has weight {} (hint: a positive number, default 1)",
                    e.url, e.weight
                ));
            }
        }
        if let Some(var) = &self.api_key_env {
            if self.provider == Provider::Local {
                errs.push("provider \"local\" needs no api_key_env (hint: remove it)".to_string());
            } else if let Err(e) = crate::secret::Secret::from_env(var) {
                errs.push(e);
            }
        } else if self.provider == Provider::Anthropic {
            errs.push(
                "provider \"anthropic\" needs api_key_env (hint: api_key_env = \"ANTHROPIC_API_KEY\")"
                    .to_string(),
            );
        }
        if self.max_in_flight == 0 {
            errs.push("max_in_flight = 0 would never send a request (hint: 64)".to_string());
        }
        if self.requests_per_minute == Some(0) {
            errs.push(
                "requests_per_minute = 0 would never send a request (hint: remove it for no limit)"
                    .to_string(),
            );
        }
        if self.tokens_per_minute == Some(0) {
            errs.push(
                "tokens_per_minute = 0 would never send a request (hint: remove it for no limit)"
                    .to_string(),
            );
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            errs.push(format!(
                "timeout_secs = {} (hint: a positive number of seconds, default 120)",
                self.timeout_secs
            ));
        }
        for (name, v, default) in [
            ("breaker_cooldown_secs", self.breaker_cooldown_secs, "1"),
            ("max_outage_secs", self.max_outage_secs, "600"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                errs.push(format!(
                    "{name} = {v} (hint: a positive number of seconds, default {default})"
                ));
            }
        }
        for (name, p) in [
            ("price_input_per_mtok", self.price_input_per_mtok),
            ("price_output_per_mtok", self.price_output_per_mtok),
        ] {
            if let Some(p) = p {
                if !(p.is_finite() && p >= 0.0) {
                    errs.push(format!("{name} = {p} (hint: $ per million tokens, ≥ 0)"));
                }
            }
        }
        for k in self.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                errs.push(format!("header name {k:?} is not a valid HTTP header name"));
            }
        }
        for k in ["model", "messages"] {
            if self.extra_body.contains_key(k) {
                errs.push(format!(
                    "extra_body sets {k:?}, which the client owns (hint: use the teacher's `model` field)"
                ));
            }
        }
        errs
    }
}

/// Which kind of embedder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderProvider {
    /// The embedded MiniLM model (built by `retort-local`).
    Local,
    /// An OpenAI-compatible `/v1/embeddings` endpoint.
    Openai,
}

/// `[embedder]`: how texts become vectors.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderConfig {
    /// `local` (embedded model, default) or `openai` (an embeddings endpoint).
    pub provider: EmbedderProvider,
    /// Model id (part of the embedding cache key). Default for `local`: the bundled model.
    #[serde(default)]
    pub model: Option<String>,
    /// Endpoint base URL for `openai`, e.g. `http://127.0.0.1:8080/v1`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key, if the endpoint needs one.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Texts per request (`openai`) or per forward pass (`local`).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Vector dimension, when known in advance (otherwise learnt from the first answer).
    #[serde(default)]
    pub dim: Option<usize>,
    /// Per-request timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// Retries for 429, 5xx, timeouts and connection errors.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
}

/// The embedded default embedder's model id and dimension (all-MiniLM-L6-v2).
pub const DEFAULT_EMBEDDER_MODEL: &str = "all-minilm-l6-v2";
/// See [`DEFAULT_EMBEDDER_MODEL`].
pub const DEFAULT_EMBEDDER_DIM: usize = 384;

impl EmbedderConfig {
    /// The model id vectors are cached under: `model`, else the embedded default's.
    pub fn model_id(&self) -> &str {
        self.model.as_deref().unwrap_or(DEFAULT_EMBEDDER_MODEL)
    }
    /// The vector dimension: `dim`, else the embedded default's.
    pub fn dim_or_default(&self) -> usize {
        self.dim.unwrap_or(DEFAULT_EMBEDDER_DIM)
    }
}

impl fmt::Debug for EmbedderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbedderConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("base_url", &self.base_url)
            .field("api_key_env", &self.api_key_env)
            .field("batch_size", &self.batch_size)
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl EmbedderConfig {
    /// A config with every default for the given provider.
    pub fn new(provider: EmbedderProvider) -> EmbedderConfig {
        EmbedderConfig {
            provider,
            model: None,
            base_url: None,
            api_key_env: None,
            batch_size: default_batch(),
            dim: None,
            timeout_secs: default_timeout(),
            max_retries: default_retries(),
        }
    }

    /// Every problem with this config, each with a hint.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.provider == EmbedderProvider::Openai {
            match &self.base_url {
                None => errs.push("embedder provider \"openai\" needs base_url (hint: base_url = \"http://127.0.0.1:8080/v1\")".to_string()),
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                    errs.push(format!("embedder base_url {u:?} is not an http(s) URL"))
                }
                Some(_) => {}
            }
            if self.model.as_deref().is_none_or(|m| m.trim().is_empty()) {
                errs.push("embedder provider \"openai\" needs model (hint: model = \"text-embedding-3-small\")".to_string());
            }
        }
        if let Some(var) = &self.api_key_env {
            if let Err(e) = crate::secret::Secret::from_env(var) {
                errs.push(e);
            }
        }
        if self.batch_size == 0 {
            errs.push("embedder batch_size = 0 (hint: 64)".to_string());
        }
        if !(self.timeout_secs.is_finite() && self.timeout_secs > 0.0) {
            errs.push(format!(
                "embedder timeout_secs = {} (hint: a positive number of seconds)",
                self.timeout_secs
            ));
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors() {
        let e = toml::from_str::<TeacherConfig>(
            "provider = \"openai\"\nmodel = \"m\"\nbase_url = \"http://x/v1\"\ntemprature = 0.3\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("temprature"), "{e}");
    }

    #[test]
    fn validate_lists_every_problem() {
        let mut c = TeacherConfig::new(Provider::Openai, "");
        c.api_key_env = Some("RETORT_SURELY_UNSET_KEY_VAR".into());
        c.max_in_flight = 0;
        let errs = c.validate();
        assert!(errs.iter().any(|e| e.contains("base_url")), "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.contains("RETORT_SURELY_UNSET_KEY_VAR")),
            "{errs:?}"
        );
        assert!(errs.iter().any(|e| e.contains("max_in_flight")), "{errs:?}");
        assert!(
            errs.iter().any(|e| e.contains("model is empty")),
            "{errs:?}"
        );
    }

    #[test]
    fn full_teacher_table_parses() {
        let c: TeacherConfig = toml::from_str(
            r#"
provider = "openai"
model = "Qwen/Qwen2.5-7B-Instruct"
endpoints = [{ url = "http://a:8000/v1", weight = 2 }, { url = "http://b:8000/v1" }]
headers = { "X-Org" = "abc" }
extra_body = { top_k = 20, chat_template_kwargs = { enable_thinking = false } }
requests_per_minute = 600
tokens_per_minute = 1_000_000
price_input_per_mtok = 0.5
"#,
        )
        .unwrap();
        assert_eq!(c.endpoint_list().len(), 2);
        assert_eq!(c.endpoint_list()[1].weight, 1.0);
        assert_eq!(c.extra_body["top_k"], 20);
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        let shown = format!("{c:?}");
        assert!(!shown.contains("abc"), "{shown}");
        let ser = serde_json::to_string(&c).unwrap();
        assert!(!ser.contains("abc"), "{ser}");
    }
}
