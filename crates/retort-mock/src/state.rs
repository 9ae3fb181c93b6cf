//! What every connection task of one server shares: the config, the counters, the
//! request log, the scripted-error hit counts, the quota bucket and the line to the
//! serving task that takes the server down for an outage.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::config::MockConfig;
use crate::ratelimit::{Bucket, QuotaCheck};
use crate::request_log::RequestLog;

/// The shared state of one running server.
pub(crate) struct State {
    pub(crate) cfg: MockConfig,
    pub(crate) counter: AtomicU64,
    pub(crate) chat: AtomicU64,
    pub(crate) messages: AtomicU64,
    pub(crate) embeddings: AtomicU64,
    pub(crate) log: Mutex<Vec<RequestLog>>,
    pub(crate) rule_hits: Mutex<Vec<u64>>,
    /// Requests to the serving task: go down for a while.
    pub(crate) control: mpsc::UnboundedSender<Outage>,
    /// `outage_after` already fired.
    pub(crate) outage_fired: AtomicBool,
    /// Outages started so far.
    pub(crate) outages: AtomicU64,
    /// The `quota_rpm` bucket.
    pub(crate) bucket: Mutex<Bucket>,
}

/// A request to go down for `dur`; `ack` is told once the listener is closed and the
/// open connections are gone.
pub(crate) struct Outage {
    pub(crate) dur: Duration,
    pub(crate) ack: Option<oneshot::Sender<()>>,
}

impl State {
    /// Fresh counters and a full quota bucket; outages are asked for on `control`.
    pub(crate) fn new(cfg: MockConfig, control: mpsc::UnboundedSender<Outage>) -> State {
        let n_rules = cfg.error_rules.len();
        let tokens = cfg.quota_rpm.unwrap_or(0) as f64;
        State {
            cfg,
            counter: AtomicU64::new(0),
            chat: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            embeddings: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            rule_hits: Mutex::new(vec![0; n_rules]),
            control,
            outage_fired: AtomicBool::new(false),
            outages: AtomicU64::new(0),
            bucket: Mutex::new(Bucket::new(tokens)),
        }
    }

    /// Takes one request from the `quota_rpm` bucket, if there is a quota.
    pub(crate) fn take_quota(&self) -> Option<QuotaCheck> {
        let limit = self.cfg.quota_rpm?;
        let mut bucket = self.bucket.lock().expect("mock bucket poisoned");
        Some(bucket.take(limit))
    }

    /// Whether chat request number `index` starts the automatic outage (once).
    pub(crate) fn outage_due(&self, index: u64) -> bool {
        match self.cfg.outage_after {
            Some((n, dur)) if index >= n && !self.outage_fired.swap(true, Ordering::SeqCst) => {
                let _ = self.control.send(Outage { dur, ack: None });
                true
            }
            _ => false,
        }
    }
}
