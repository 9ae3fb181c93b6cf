//! Requests, cache hits, failures, tokens and dollars per teacher and per step, and
//! the run's budget.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use retort_core::accounts::{AccountingSnapshot, Counters, StepAccount};

use crate::api::{TeacherError, Usage};
use crate::config::TeacherConfig;

/// Dollars are counted in nano-dollars so the hot path is a lock-free atomic add.
const NANO: f64 = 1e9;

/// Cost in $ of the given tokens at the teacher's prices (0 when no price is set).
/// `retort plan` calls it with estimated tokens before anything is spent.
pub fn estimate_cost(cfg: &TeacherConfig, prompt_tokens: u64, completion_tokens: u64) -> f64 {
    cfg.price_input_per_mtok.unwrap_or(0.0) * prompt_tokens as f64 / 1e6
        + cfg.price_output_per_mtok.unwrap_or(0.0) * completion_tokens as f64 / 1e6
}

#[derive(Default)]
struct Cell {
    calls: AtomicU64,
    answered: AtomicU64,
    cache_hits: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    cost_nano: AtomicU64,
}

impl Cell {
    fn read(&self) -> Counters {
        Counters {
            calls: self.calls.load(Ordering::Relaxed),
            answered: self.answered.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
            cost_usd: self.cost_nano.load(Ordering::Relaxed) as f64 / NANO,
        }
    }
}

/// Handle to one (teacher, step) counter cell; cheap to clone, lock-free to update.
#[derive(Clone)]
pub struct Ledger {
    cell: Arc<Cell>,
    spent_nano: Arc<AtomicU64>,
}

impl Ledger {
    /// One call started.
    pub fn call(&self) {
        self.cell.calls.fetch_add(1, Ordering::Relaxed);
    }
    /// A call was answered (from the cache or a request).
    pub fn answered(&self) {
        self.cell.answered.fetch_add(1, Ordering::Relaxed);
    }
    /// A call was answered from the cache.
    pub fn cache_hit(&self) {
        self.cell.cache_hits.fetch_add(1, Ordering::Relaxed);
    }
    /// A request was sent (`retry`: it is not the call's first).
    pub fn request(&self, retry: bool) {
        self.cell.requests.fetch_add(1, Ordering::Relaxed);
        if retry {
            self.cell.retries.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// A call finally failed.
    pub fn failure(&self) {
        self.cell.failures.fetch_add(1, Ordering::Relaxed);
    }
    /// Tokens and cost of an answered request.
    pub fn usage(&self, usage: Usage, cost_usd: f64) {
        self.cell
            .prompt_tokens
            .fetch_add(usage.prompt_tokens, Ordering::Relaxed);
        self.cell
            .completion_tokens
            .fetch_add(usage.completion_tokens, Ordering::Relaxed);
        let nano = (cost_usd.max(0.0) * NANO).round() as u64;
        self.cell.cost_nano.fetch_add(nano, Ordering::Relaxed);
        self.spent_nano.fetch_add(nano, Ordering::Relaxed);
    }
}

/// The run's spending limit, shared by every teacher.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// `max_budget_usd`: once spent, no new request is sent; in-flight ones finish.
    pub max_usd: f64,
}

/// Live counters for the whole run, shared by every teacher client.
pub struct Accounting {
    cells: RwLock<HashMap<(String, String), Arc<Cell>>>,
    spent_nano: Arc<AtomicU64>,
    budget: Option<Budget>,
    reached: AtomicBool,
}

impl Default for Accounting {
    fn default() -> Self {
        Accounting::new(None)
    }
}

impl Accounting {
    /// Empty counters; `max_budget_usd` stops new requests once spent.
    pub fn new(max_budget_usd: Option<f64>) -> Accounting {
        Accounting::resuming(max_budget_usd, 0.0)
    }

    /// Empty counters, with `spent_usd` already spent by earlier invocations of the same
    /// run: a resumed run continues the budget instead of starting it again from $0.
    pub fn resuming(max_budget_usd: Option<f64>, spent_usd: f64) -> Accounting {
        Accounting {
            cells: RwLock::new(HashMap::new()),
            spent_nano: Arc::new(AtomicU64::new(
                (spent_usd.max(0.0) * NANO).min(u64::MAX as f64) as u64,
            )),
            budget: max_budget_usd.map(|max_usd| Budget { max_usd }),
            reached: AtomicBool::new(false),
        }
    }

    /// The budget, if any.
    pub fn budget(&self) -> Option<Budget> {
        self.budget
    }

    /// Dollars spent so far, all teachers.
    pub fn spent_usd(&self) -> f64 {
        self.spent_nano.load(Ordering::Relaxed) as f64 / NANO
    }

    /// Checked before each request: `Err(Budget)` once the budget is spent.
    pub fn check_budget(&self) -> Result<(), TeacherError> {
        if let Some(b) = self.budget {
            if self.spent_usd() >= b.max_usd {
                if !self.reached.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "budget of ${:.4} reached (spent ${:.4}); no new requests will be sent",
                        b.max_usd,
                        self.spent_usd()
                    );
                }
                return Err(TeacherError::Budget(b.max_usd));
            }
        }
        Ok(())
    }

    /// The counter cell for (teacher, step), created on first use.
    pub fn ledger(&self, teacher: &str, step: &str) -> Ledger {
        let key = (teacher.to_string(), step.to_string());
        if let Some(c) = self.cells.read().expect("accounting lock").get(&key) {
            return Ledger {
                cell: c.clone(),
                spent_nano: self.spent_nano.clone(),
            };
        }
        let cell = self
            .cells
            .write()
            .expect("accounting lock")
            .entry(key)
            .or_default()
            .clone();
        Ledger {
            cell,
            spent_nano: self.spent_nano.clone(),
        }
    }

    /// Counters now, for the manifest and progress.
    pub fn snapshot(&self) -> AccountingSnapshot {
        let cells = self.cells.read().expect("accounting lock");
        let mut steps: Vec<StepAccount> = cells
            .iter()
            .map(|((t, s), c)| StepAccount {
                teacher: t.clone(),
                step: s.clone(),
                counters: c.read(),
            })
            .collect();
        steps.sort_by(|a, b| (&a.teacher, &a.step).cmp(&(&b.teacher, &b.step)));
        let mut teachers: BTreeMap<String, Counters> = BTreeMap::new();
        let mut total = Counters::default();
        for s in &steps {
            teachers
                .entry(s.teacher.clone())
                .or_default()
                .add(&s.counters);
            total.add(&s.counters);
        }
        AccountingSnapshot {
            steps,
            teachers,
            total,
            budget_usd: self.budget.map(|b| b.max_usd),
            spent_usd: self.spent_usd(),
            budget_reached: self.reached.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Provider;

    #[test]
    fn cost_from_prices() {
        let mut c = TeacherConfig::new(Provider::Openai, "m");
        assert_eq!(estimate_cost(&c, 1_000_000, 1_000_000), 0.0);
        c.price_input_per_mtok = Some(0.5);
        c.price_output_per_mtok = Some(2.0);
        let x = estimate_cost(&c, 2_000_000, 500_000);
        assert!((x - 2.0).abs() < 1e-9, "{x}");
    }

    #[test]
    fn resumed_accounting_counts_the_earlier_spend_against_the_budget() {
        let a = Accounting::resuming(Some(1.0), 0.75);
        assert!(a.check_budget().is_ok());
        assert!((a.snapshot().spent_usd - 0.75).abs() < 1e-9);
        let a = Accounting::resuming(Some(1.0), 1.0);
        assert!(matches!(a.check_budget(), Err(TeacherError::Budget(_))));
    }

    #[test]
    fn budget_stops_after_spend_and_snapshot_sums() {
        let a = Accounting::new(Some(0.01));
        let l = a.ledger("big", "respond");
        assert!(a.check_budget().is_ok());
        l.call();
        l.request(false);
        l.usage(
            Usage {
                prompt_tokens: 10,
                completion_tokens: 20,
            },
            0.006,
        );
        assert!(a.check_budget().is_ok());
        a.ledger("big", "score").usage(Usage::default(), 0.005);
        assert!(matches!(a.check_budget(), Err(TeacherError::Budget(_))));
        let s = a.snapshot();
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.teachers["big"].prompt_tokens, 10);
        assert!((s.total.cost_usd - 0.011).abs() < 1e-9);
        assert!(s.budget_reached);
    }
}
