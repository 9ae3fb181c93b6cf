//! The quota a server reports in its rate-limit headers, and the pacer that holds new
//! requests while that quota is spent, so the client slows down *before* a 429.
//!
//! Read: OpenAI's (and vLLM/LiteLLM/OpenRouter-style proxies')
//! `x-ratelimit-remaining-requests`, `x-ratelimit-remaining-tokens`,
//! `x-ratelimit-reset-requests`, `x-ratelimit-reset-tokens` (durations such as `1s`,
//! `6m0s`, `250ms`), and Anthropic's `anthropic-ratelimit-{requests,tokens}-remaining`
//! and `-reset` (an RFC 3339 time). curator paces on the same headers.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

/// What one response said about the quota. Absent headers are `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    /// Requests left in the current window.
    pub remaining_requests: Option<u64>,
    /// Tokens left in the current window.
    pub remaining_tokens: Option<u64>,
    /// Time until the request quota is full again.
    pub reset_requests: Option<Duration>,
    /// Time until the token quota is full again.
    pub reset_tokens: Option<Duration>,
}

impl RateHeaders {
    /// Reads the headers; `None` when the response carried none of them.
    pub fn from_headers(h: &HeaderMap) -> Option<RateHeaders> {
        // Most servers send none of them: one pass over the few names a response has
        // spares eight lookups, each parsing its name, on every answer.
        let quota = |k: &reqwest::header::HeaderName| {
            let k = k.as_str();
            k.starts_with("x-ratelimit-") || k.starts_with("anthropic-ratelimit-")
        };
        if !h.keys().any(quota) {
            return None;
        }
        let num = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|x| x.is_finite() && *x >= 0.0)
                .map(|x| x as u64)
        };
        let when = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| parse_reset(s.trim()))
        };
        let r = RateHeaders {
            remaining_requests: num("x-ratelimit-remaining-requests")
                .or_else(|| num("anthropic-ratelimit-requests-remaining")),
            remaining_tokens: num("x-ratelimit-remaining-tokens")
                .or_else(|| num("anthropic-ratelimit-tokens-remaining")),
            reset_requests: when("x-ratelimit-reset-requests")
                .or_else(|| when("anthropic-ratelimit-requests-reset")),
            reset_tokens: when("x-ratelimit-reset-tokens")
                .or_else(|| when("anthropic-ratelimit-tokens-reset")),
        };
        (r != RateHeaders::default()).then_some(r)
    }
}

/// A reset value: a Go-style duration (`1s`, `6m0s`, `1h2m3.5s`, `250ms`), a bare
/// number of seconds, or an RFC 3339 time (Anthropic), as a wait from now.
pub fn parse_reset(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    if s.contains('T') {
        let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
        let ms = (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
        return Some(Duration::from_millis(ms.max(0) as u64));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[u..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Holds new requests while the server's reported quota is spent.
#[derive(Debug, Default)]
pub struct Pacer {
    until: Mutex<Option<Instant>>,
}

/// Longest pause one header may impose: a wrong or far-future reset must not stall a
/// run; a real long reset shows up again on the next answer.
const MAX_PAUSE: Duration = Duration::from_secs(60);

impl Pacer {
    /// Takes in what an answer said. `in_flight` requests already sent will also count
    /// against the quota, so the pause starts when what is left no longer covers them.
    pub fn observe(&self, h: &RateHeaders, in_flight: usize, tokens_per_request: u64) {
        let now = Instant::now();
        let mut pause: Option<Duration> = None;
        if let Some(left) = h.remaining_requests {
            if left <= in_flight as u64 {
                pause = Some(h.reset_requests.unwrap_or(Duration::from_secs(1)));
            }
        }
        if let Some(left) = h.remaining_tokens {
            if left < tokens_per_request.saturating_mul(in_flight.max(1) as u64) {
                let p = h.reset_tokens.unwrap_or(Duration::from_secs(1));
                pause = Some(pause.map_or(p, |q| q.max(p)));
            }
        }
        if let Some(p) = pause {
            let until = now + p.min(MAX_PAUSE);
            let mut u = self.until.lock().expect("pacer lock");
            if u.is_none_or(|t| t < until) {
                *u = Some(until);
                tracing::debug!("rate-limit headers: quota spent, pausing new requests {p:?}");
            }
        }
    }

    /// Waits while a reported quota is spent.
    pub async fn wait(&self) {
        let until = *self.until.lock().expect("pacer lock");
        if let Some(t) = until {
            if t > Instant::now() {
                tokio::time::sleep_until(t.into()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_forms() {
        assert_eq!(parse_reset("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_reset("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_reset("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(
            parse_reset("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_reset("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_reset("soon"), None);
        assert_eq!(parse_reset("5x"), None);
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
        let d = parse_reset(&later).unwrap();
        assert!(
            d > Duration::from_secs(28) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        assert_eq!(parse_reset("2000-01-01T00:00:00Z"), Some(Duration::ZERO));
    }

    #[test]
    fn headers_of_both_providers() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining-requests", "0".parse().unwrap());
        h.insert("x-ratelimit-reset-requests", "1.5s".parse().unwrap());
        let r = RateHeaders::from_headers(&h).unwrap();
        assert_eq!(r.remaining_requests, Some(0));
        assert_eq!(r.reset_requests, Some(Duration::from_millis(1500)));
        let mut a = HeaderMap::new();
        a.insert(
            "anthropic-ratelimit-tokens-remaining",
            "120".parse().unwrap(),
        );
        let r = RateHeaders::from_headers(&a).unwrap();
        assert_eq!(r.remaining_tokens, Some(120));
        assert!(RateHeaders::from_headers(&HeaderMap::new()).is_none());
    }

    #[tokio::test]
    async fn pacer_pauses_only_when_the_quota_is_spent() {
        let p = Pacer::default();
        let plenty = RateHeaders {
            remaining_requests: Some(100),
            reset_requests: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        p.observe(&plenty, 10, 100);
        let t = Instant::now();
        p.wait().await;
        assert!(t.elapsed() < Duration::from_millis(50));
        let spent = RateHeaders {
            remaining_requests: Some(3),
            reset_requests: Some(Duration::from_millis(200)),
            ..Default::default()
        };
        p.observe(&spent, 10, 100);
        let t = Instant::now();
        p.wait().await;
        assert!(
            t.elapsed() >= Duration::from_millis(190),
            "{:?}",
            t.elapsed()
        );
    }
}
