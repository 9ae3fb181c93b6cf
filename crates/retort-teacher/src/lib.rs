//! The one client every generation, scoring and judging step uses to talk to teacher
//! models, and the embedder interface.
//!
//! Layers: a [`Backend`] sends one request to one endpoint (HTTP OpenAI-compatible,
//! Anthropic, or the embedded llama.cpp model) and classifies what went wrong; the
//! client wraps a backend with rate limits, retries, the response cache and accounting,
//! and is what steps see, as a [`Teacher`].

mod api;

pub use api::*;
