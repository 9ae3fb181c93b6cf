//! The endpoint pool: several servers with the same model, requests spread by weight,
//! a failing endpoint cooled down while the others carry on.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use super::api_url;
use crate::api::TeacherError;
use crate::config::EndpointConfig;

/// How one attempt against an endpoint went, as far as the pool cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointOutcome {
    /// An answer (or a client-side 4xx, which is not the endpoint's fault; or a 429,
    /// which the client's in-flight window handles).
    Ok,
    /// 5xx, timeout or unusable body: cool down after a few in a row.
    Soft,
    /// Connection refused/reset: cool down at once.
    Hard,
}

impl EndpointOutcome {
    /// Classifies an attempt's result.
    pub fn of<T>(r: &Result<T, TeacherError>) -> EndpointOutcome {
        match r {
            Ok(_) => EndpointOutcome::Ok,
            Err(TeacherError::Connect(_)) => EndpointOutcome::Hard,
            Err(TeacherError::Http { status, .. }) if *status >= 500 => EndpointOutcome::Soft,
            Err(TeacherError::Timeout(_)) | Err(TeacherError::BadResponse(_)) => {
                EndpointOutcome::Soft
            }
            Err(_) => EndpointOutcome::Ok,
        }
    }
}

struct Endpoint {
    base: String,
    /// Parsed once: reqwest would parse a string for every request.
    chat_url: reqwest::Url,
    weight: f64,
    cooldown_until_ms: AtomicU64,
    consecutive: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
}

/// Per-endpoint counters, for progress and the manifest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EndpointStats {
    /// Base URL.
    pub url: String,
    /// Attempts sent there.
    pub requests: u64,
    /// Attempts that failed (5xx, timeout, connection, bad body).
    pub failures: u64,
    /// Whether it is cooling down now.
    pub cooling: bool,
}

/// Several servers serving one model: picks one per attempt by weight, skipping those
/// cooling down after failures, so one dead replica does not sink the run.
pub struct EndpointPool {
    eps: Vec<Endpoint>,
    epoch: Instant,
    cooldown: Duration,
    fail_threshold: u32,
    rr: AtomicUsize,
}

impl EndpointPool {
    /// A pool over the given endpoints; `tail` is the API path (e.g. `chat/completions`).
    pub fn new(
        endpoints: &[EndpointConfig],
        tail: &str,
        cooldown: Duration,
        fail_threshold: u32,
    ) -> Result<EndpointPool, String> {
        if endpoints.is_empty() {
            return Err(
                "no endpoint configured (hint: set base_url or endpoints = [{ url = \"…\" }])"
                    .to_string(),
            );
        }
        let eps = endpoints
            .iter()
            .map(|e| {
                let chat_url = reqwest::Url::parse(&api_url(&e.url, tail)).map_err(|err| {
                    format!(
                        "endpoint {:?} does not parse as a URL ({err}) (hint: \"http://host:port/v1\")",
                        e.url
                    )
                })?;
                Ok(Endpoint {
                    base: e.url.clone(),
                    chat_url,
                    weight: if e.weight.is_finite() && e.weight > 0.0 {
                        e.weight
                    } else {
                        1.0
                    },
                    cooldown_until_ms: AtomicU64::new(0),
                    consecutive: AtomicU32::new(0),
                    requests: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(EndpointPool {
            eps,
            epoch: Instant::now(),
            cooldown,
            fail_threshold: fail_threshold.max(1),
            rr: AtomicUsize::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Index of the endpoint for the next attempt.
    pub fn pick(&self) -> usize {
        let n = self.eps.len();
        if n == 1 {
            return 0;
        }
        let now = self.now_ms();
        let live = |e: &Endpoint| e.cooldown_until_ms.load(Ordering::Relaxed) <= now;
        let total: f64 = self.eps.iter().filter(|e| live(e)).map(|e| e.weight).sum();
        if total <= 0.0 {
            // Everyone is cooling: spread over all rather than stall; a recovered
            // server is noticed sooner this way.
            return self.rr.fetch_add(1, Ordering::Relaxed) % n;
        }
        let mut x = rand::rng().random::<f64>() * total;
        let mut last = 0;
        for (i, e) in self.eps.iter().enumerate() {
            if !live(e) {
                continue;
            }
            last = i;
            if x < e.weight {
                return i;
            }
            x -= e.weight;
        }
        last
    }

    /// Endpoints not cooling down right now.
    pub fn live(&self) -> usize {
        let now = self.now_ms();
        self.eps
            .iter()
            .filter(|e| e.cooldown_until_ms.load(Ordering::Relaxed) <= now)
            .count()
    }

    /// Number of endpoints in the pool.
    pub fn len(&self) -> usize {
        self.eps.len()
    }

    /// Whether the pool is empty (never: construction needs one endpoint).
    pub fn is_empty(&self) -> bool {
        self.eps.is_empty()
    }

    /// Records how an attempt went.
    pub fn report(&self, i: usize, outcome: EndpointOutcome) {
        let e = &self.eps[i];
        e.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            EndpointOutcome::Ok => {
                e.consecutive.store(0, Ordering::Relaxed);
            }
            EndpointOutcome::Soft | EndpointOutcome::Hard => {
                e.failures.fetch_add(1, Ordering::Relaxed);
                let c = e.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
                if self.eps.len() > 1
                    && (outcome == EndpointOutcome::Hard || c >= self.fail_threshold)
                {
                    let until = self.now_ms() + self.cooldown.as_millis() as u64;
                    e.cooldown_until_ms.store(until, Ordering::Relaxed);
                    e.consecutive.store(0, Ordering::Relaxed);
                    tracing::warn!(
                        endpoint = %e.base,
                        "endpoint failing; no traffic for {:?}",
                        self.cooldown
                    );
                }
            }
        }
    }

    /// Base URL of endpoint `i`.
    pub fn base(&self, i: usize) -> &str {
        &self.eps[i].base
    }

    pub(crate) fn url(&self, i: usize) -> &reqwest::Url {
        &self.eps[i].chat_url
    }

    /// Counters per endpoint.
    pub fn stats(&self) -> Vec<EndpointStats> {
        let now = self.now_ms();
        self.eps
            .iter()
            .map(|e| EndpointStats {
                url: e.base.clone(),
                requests: e.requests.load(Ordering::Relaxed),
                failures: e.failures.load(Ordering::Relaxed),
                cooling: e.cooldown_until_ms.load(Ordering::Relaxed) > now,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn pool_skips_cooling_endpoint() {
        let eps = vec![
            EndpointConfig {
                url: "http://a/v1".into(),
                weight: 1.0,
            },
            EndpointConfig {
                url: "http://b/v1".into(),
                weight: 1.0,
            },
        ];
        let p = EndpointPool::new(&eps, "chat/completions", Duration::from_secs(60), 3).unwrap();
        p.report(0, EndpointOutcome::Hard);
        for _ in 0..100 {
            assert_eq!(p.pick(), 1);
        }
    }

    #[test]
    fn an_endpoint_that_does_not_parse_is_refused_before_any_call() {
        let eps = vec![EndpointConfig {
            url: "http://[::1/v1".into(),
            weight: 1.0,
        }];
        let e = EndpointPool::new(&eps, "chat/completions", Duration::from_secs(60), 3)
            .err()
            .expect("a malformed URL is an error");
        assert!(
            e.contains("\"http://[::1/v1\" does not parse as a URL"),
            "{e}"
        );
        let p = EndpointPool::new(
            &[EndpointConfig {
                url: "http://h:8000/v1/".into(),
                weight: 1.0,
            }],
            "chat/completions",
            Duration::from_secs(60),
            3,
        )
        .unwrap();
        assert_eq!(p.url(0).as_str(), "http://h:8000/v1/chat/completions");
    }
}
