//! `retort-mock`: run the mock OpenAI-compatible / Anthropic server by hand or for a
//! benchmark against another client (e.g. the peer scripts).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use retort_mock::{MockConfig, MockServer, ReplyRule, RetryAfterStyle};

/// Mock OpenAI-compatible and Anthropic server with injectable latency and errors.
#[derive(Parser, Debug)]
#[command(name = "retort-mock", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8089")]
    listen: SocketAddr,
    /// Delay before every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Draw each delay from a lognormal with this mean, in milliseconds (replaces
    /// `--latency-ms`).
    #[arg(long)]
    latency_mean_ms: Option<u64>,
    /// Sigma of the lognormal delay.
    #[arg(long, default_value_t = 1.0)]
    latency_sigma: f64,
    /// Share of requests answered 429.
    #[arg(long, default_value_t = 0.0)]
    rate_429: f64,
    /// Wait the 429s ask for, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    retry_after_ms: u64,
    /// Send the wait as `retry-after-ms` instead of `Retry-After` seconds.
    #[arg(long)]
    retry_after_millis_header: bool,
    /// Share of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    rate_500: f64,
    /// Share of requests that hang.
    #[arg(long, default_value_t = 0.0)]
    rate_hang: f64,
    /// How long a hung request hangs, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    hang_ms: u64,
    /// Share of answers with a cut JSON body.
    #[arg(long, default_value_t = 0.0)]
    rate_truncated: f64,
    /// Share of answers with a non-JSON body.
    #[arg(long, default_value_t = 0.0)]
    rate_invalid: f64,
    /// Share of answers with `finish_reason = length`.
    #[arg(long, default_value_t = 0.0)]
    rate_length: f64,
    /// Share of prompts answered with a non-JSON body on every attempt.
    #[arg(long, default_value_t = 0.0)]
    rate_bad_prompt: f64,
    /// Go down once when this many chat requests have arrived (see `--outage-secs`).
    #[arg(long, requires = "outage_secs")]
    outage_after_requests: Option<u64>,
    /// How long the outage lasts, in seconds.
    #[arg(long)]
    outage_secs: Option<f64>,
    /// Requests-per-minute quota with rate-limit headers; 429 when exhausted.
    #[arg(long)]
    quota_rpm: Option<u64>,
    /// With `--quota-rpm`, also send `anthropic-ratelimit-requests-*` on /v1/messages.
    #[arg(long)]
    anthropic_headers: bool,
    /// Scripted reply `REGEX=REPLY` (repeatable; first match wins).
    #[arg(long = "rule")]
    rules: Vec<String>,
    /// Model id to report.
    #[arg(long, default_value = "mock-model")]
    model: String,
    /// Embedding dimension.
    #[arg(long, default_value_t = 16)]
    embedding_dim: usize,
    /// Reflect the received key: an `x-echo-authorization` header on every answer, and
    /// in the body for prompts with LEAK-4XX / LEAK-HTML / LEAK-CONTENT (a secret-leak
    /// test server).
    #[arg(long)]
    echo_auth: bool,
    /// Answer with a reasoning trace: `reasoning_content`, `reasoning` or `think`
    /// (`<think>…</think>` before the answer).
    #[arg(long, value_parser = parse_shape)]
    reasoning: Option<retort_mock::ReasoningShape>,
    /// Ignore `response_format` / the output tool and answer in plain text, as a server
    /// without structured outputs does.
    #[arg(long)]
    ignore_schema: bool,
    /// Answer requests that offer `tools` by calling one (arguments valid for its
    /// parameter schema), and in text once the last turn is the tool's result.
    #[arg(long)]
    call_tools: bool,
    /// Random seed of the injection.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn parse_shape(s: &str) -> Result<retort_mock::ReasoningShape, String> {
    retort_mock::ReasoningShape::parse(s)
        .ok_or_else(|| format!("{s:?}: expected reasoning_content, reasoning or think"))
}

/// Ctrl-C, or (on unix) SIGTERM, so `kill PID` still prints the request count.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = Args::parse();
    let mut rules = Vec::new();
    for r in &a.rules {
        let (pat, reply) = r
            .split_once('=')
            .ok_or_else(|| format!("--rule {r:?}: expected REGEX=REPLY"))?;
        rules.push(ReplyRule {
            pattern: regex::Regex::new(pat)?,
            reply: reply.to_string(),
        });
    }
    let cfg = MockConfig {
        latency: Duration::from_millis(a.latency_ms),
        rate_429: a.rate_429,
        retry_after_ms: a.retry_after_ms,
        retry_after_style: if a.retry_after_millis_header {
            RetryAfterStyle::Millis
        } else {
            RetryAfterStyle::Seconds
        },
        rate_500: a.rate_500,
        rate_hang: a.rate_hang,
        hang_for: Duration::from_millis(a.hang_ms),
        latency_mean: a.latency_mean_ms.map(Duration::from_millis),
        latency_sigma: a.latency_sigma,
        rate_bad_prompt: a.rate_bad_prompt,
        outage_after: a
            .outage_after_requests
            .zip(a.outage_secs)
            .map(|(n, s)| (n, Duration::from_secs_f64(s))),
        quota_rpm: a.quota_rpm,
        anthropic_headers: a.anthropic_headers,
        rate_truncated: a.rate_truncated,
        rate_invalid: a.rate_invalid,
        rate_length: a.rate_length,
        rules,
        model: a.model,
        embedding_dim: a.embedding_dim,
        echo_auth: a.echo_auth,
        reasoning: a.reasoning,
        honour_schema: !a.ignore_schema,
        call_tools: a.call_tools,
        seed: a.seed,
        // A long manual run must not grow without bound.
        record: false,
        ..MockConfig::default()
    };
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let server = MockServer::start_on(cfg, a.listen).await?;
        println!("retort-mock listening on {}", server.base_url());
        stop_signal().await?;
        println!(
            "served {} requests ({} chat, {} messages, {} embeddings; {} outages)",
            server.requests(),
            server.chat_requests(),
            server.messages_requests(),
            server.embedding_requests(),
            server.outages()
        );
        Ok(())
    })
}
