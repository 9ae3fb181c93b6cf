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

// Imports only go down this list, never back up: structured, tools (uses structured), config, request_log and
// draw are leaves (config names structured's shape); ratelimit uses config; state holds a bucket and the log; replies and faults add
// their own `impl State` blocks (faults answers with `replies::json_response`); routes
// uses all of them; server uses routes.
mod config;
mod draw;
mod faults;
mod ratelimit;
mod replies;
mod request_log;
mod routes;
mod server;
mod state;
mod structured;
mod tools;

pub use config::{ErrorRule, Injected, MockConfig, ReplyFn, ReplyRule, RetryAfterStyle};
pub use draw::lognormal_delay;
pub use ratelimit::{go_duration, rfc3339};
pub use replies::mock_embedding;
pub use request_log::RequestLog;
pub use server::MockServer;
pub use structured::{instance as schema_instance, trace_for, ReasoningShape};
