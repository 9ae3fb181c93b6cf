//! Each step's live numbers, shared by the executor that updates them, the progress
//! display and the manifest that read them.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retort_steps::StepStats;

/// How long a progress tick lasts.
pub(crate) const TICK: Duration = Duration::from_millis(150);

/// Per-step live numbers shared with progress and the manifest.
pub(crate) struct Live {
    pub id: String,
    pub kind: String,
    /// Upstream step ids (for progress totals).
    pub after: Vec<String>,
    pub stats: Arc<StepStats>,
    pub rows_out: Arc<AtomicU64>,
    pub failures: Arc<AtomicU64>,
    pub rows_in: Arc<AtomicU64>,
    pub status: Mutex<String>,
    pub started: Mutex<Option<Instant>>,
    pub seconds: Mutex<f64>,
    pub resumed_rows: AtomicU64,
    pub error: Mutex<Option<String>>,
    /// Teacher calls per input row and fixed calls, from the step's plan estimate.
    pub calls_per_input: f64,
    pub fixed_calls: u64,
}

impl Live {
    pub(crate) fn new(
        id: &str,
        kind: &str,
        after: &[String],
        calls_per_input: f64,
        fixed_calls: u64,
    ) -> Live {
        Live {
            id: id.to_string(),
            kind: kind.to_string(),
            after: after.to_vec(),
            stats: Arc::new(StepStats::default()),
            rows_out: Arc::new(AtomicU64::new(0)),
            failures: Arc::new(AtomicU64::new(0)),
            rows_in: Arc::new(AtomicU64::new(0)),
            status: Mutex::new("pending".into()),
            started: Mutex::new(None),
            seconds: Mutex::new(0.0),
            resumed_rows: AtomicU64::new(0),
            error: Mutex::new(None),
            calls_per_input,
            fixed_calls,
        }
    }

    /// A step's live state for unit tests of progress and the manifest.
    #[cfg(test)]
    pub(crate) fn for_test(id: &str, after: &[&str], calls_per_input: f64) -> Live {
        let after: Vec<String> = after.iter().map(|s| s.to_string()).collect();
        Live::new(id, "test", &after, calls_per_input, 0)
    }
}
