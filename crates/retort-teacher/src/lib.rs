//! The one client every generation, scoring and judging step uses to talk to teacher
//! models, and the embedder interface.
//!
//! Layers: a [`Backend`] sends one request to one endpoint (HTTP OpenAI-compatible,
//! Anthropic, or the embedded llama.cpp model) and classifies what went wrong; the
//! [`Client`] wraps a backend with the response cache, rate limits (requests and tokens
//! per minute), an adaptive in-flight window, retries with backoff that honour
//! `Retry-After`, a circuit breaker and accounting, and is what steps see, as a
//! [`Teacher`].
//!
//! Wiring, in short:
//! ```no_run
//! # use std::sync::Arc;
//! # use retort_teacher::*;
//! # fn f(cfg: &TeacherConfig) -> Result<(), String> {
//! let cache = Arc::new(ResponseCache::open("runs/x/cache.sqlite").map_err(|e| e.to_string())?);
//! let shared = Arc::new(Shared::new(Some(cache), true, Arc::new(Accounting::new(Some(5.0)))));
//! let backend = http_backend(cfg)?;
//! let teacher: Arc<dyn Teacher> = Arc::new(Client::new("big", cfg, backend, shared));
//! # Ok(()) }
//! ```

mod accounting;
mod api;
mod cache;
mod cached_embedder;
mod client;
mod config;
mod http;
mod key;
mod ratelimit;
mod secret;

pub use accounting::{
    estimate_cost, Accounting, AccountingSnapshot, Budget, Counters, Ledger, StepAccount,
};
pub use api::*;
pub use cache::{CacheError, CachedResponse, ResponseCache};
pub use cached_embedder::CachedEmbedder;
pub use client::{estimate_tokens, CallOptions, Client, ClientStats, Shared};
pub use config::{
    EmbedderConfig, EmbedderProvider, EndpointConfig, Provider, TeacherConfig,
    DEFAULT_EMBEDDER_DIM, DEFAULT_EMBEDDER_MODEL,
};
pub use http::anthropic::AnthropicBackend;
pub use http::embeddings::OpenAiEmbedder;
pub use http::openai::OpenAiBackend;
pub use http::pool::{EndpointOutcome, EndpointPool, EndpointStats};
pub use http::{api_url, http_backend, parse_retry_after};
pub use key::{request_key, text_hash, CacheKey};
pub use ratelimit::{parse_reset, Pacer, RateHeaders};
pub use secret::{is_secret_header, redact_headers, Secret};
