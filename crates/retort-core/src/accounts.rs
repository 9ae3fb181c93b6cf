//! The teacher accounts a run reports: calls, cache hits, requests, tokens and dollars
//! per teacher and per step. The teacher client fills them; the manifest, the progress
//! display, the report and the dataset card read them. Plain data, no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counters for one (teacher, step), or a sum of them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Calls the step made (one per answer it asked for).
    pub calls: u64,
    /// Calls answered, from the cache or a request (what progress counts as done).
    #[serde(default)]
    pub answered: u64,
    /// Calls answered from the response cache (no request sent).
    pub cache_hits: u64,
    /// HTTP (or local model) requests actually sent, retries included.
    pub requests: u64,
    /// Of those, retries.
    pub retries: u64,
    /// Calls that finally failed: a failure row for a permanent fault, a pending
    /// record (retried by the next run) for a transient one.
    pub failures: u64,
    /// Prompt tokens of sent requests, as the server reported them.
    pub prompt_tokens: u64,
    /// Completion tokens of sent requests.
    pub completion_tokens: u64,
    /// Dollars spent, from the teacher's prices.
    pub cost_usd: f64,
}

impl Counters {
    /// Adds `o` to these counters.
    pub fn add(&mut self, o: &Counters) {
        self.calls += o.calls;
        self.answered += o.answered;
        self.cache_hits += o.cache_hits;
        self.requests += o.requests;
        self.retries += o.retries;
        self.failures += o.failures;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        self.cost_usd += o.cost_usd;
    }
}

/// One (teacher, step) row of the snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepAccount {
    /// Teacher name.
    pub teacher: String,
    /// Step id.
    pub step: String,
    /// Its counters.
    #[serde(flatten)]
    pub counters: Counters,
}

/// What the manifest and the progress bar show. Holds names and numbers only, never a
/// secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountingSnapshot {
    /// Per teacher and step, sorted.
    pub steps: Vec<StepAccount>,
    /// Per teacher.
    pub teachers: BTreeMap<String, Counters>,
    /// Everything.
    pub total: Counters,
    /// The budget, if one was set.
    pub budget_usd: Option<f64>,
    /// Dollars spent so far, including earlier invocations of a resumed run.
    pub spent_usd: f64,
    /// Whether the budget stopped new requests.
    pub budget_reached: bool,
}
