//! The request log: one entry per request, kept so tests can check rate limits, retries
//! and that no secret was sent where it should not be.

use std::time::Instant;

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
