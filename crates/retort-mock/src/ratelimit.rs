//! The `quota_rpm` requests-per-minute quota: its token bucket, the 429 of an empty
//! bucket, and the OpenAI / Anthropic rate-limit headers (with the Go-style durations and
//! RFC 3339 times those headers are written in).

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::json;

use crate::config::Injected;

/// Token bucket of the `quota_rpm` quota.
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
}

/// What the quota said about one request.
pub(crate) struct QuotaCheck {
    pub(crate) limit: u64,
    pub(crate) remaining: u64,
    /// Until the bucket is full again.
    pub(crate) reset: Duration,
    /// `Some(wait)` when the bucket was empty.
    pub(crate) refused: Option<Duration>,
}

impl Bucket {
    /// A bucket holding `tokens` requests now.
    pub(crate) fn new(tokens: f64) -> Bucket {
        Bucket {
            tokens,
            last: Instant::now(),
        }
    }

    /// Takes one request under a quota of `limit` per minute, refilled continuously.
    pub(crate) fn take(&mut self, limit: u64) -> QuotaCheck {
        let cap = limit as f64;
        let rate = cap / 60.0;
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * rate).min(cap);
        self.last = now;
        let refused = if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else if rate > 0.0 {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        } else {
            Some(Duration::from_secs(60))
        };
        let reset = if rate > 0.0 {
            Duration::from_secs_f64((cap - self.tokens) / rate)
        } else {
            Duration::ZERO
        };
        QuotaCheck {
            limit,
            remaining: self.tokens.floor() as u64,
            reset,
            refused,
        }
    }
}

/// The 429 of an empty quota bucket: `Retry-After` in whole seconds, rounded up.
pub(crate) fn quota_refusal(
    wait: Duration,
    anthropic: bool,
) -> (u16, Option<Injected>, Response<Full<Bytes>>) {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let msg = if anthropic {
        json!({"type": "error", "error": {"type": "rate_limit_error", "message": "request quota exceeded"}})
    } else {
        json!({"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}})
    };
    let r = Response::builder()
        .status(StatusCode::TOO_MANY_REQUESTS)
        .header("content-type", "application/json")
        .header("retry-after", secs.to_string())
        .body(Full::new(Bytes::from(msg.to_string())))
        .expect("static response parts");
    (429, Some(Injected::Quota), r)
}

/// OpenAI-style headers on chat completions; Anthropic-style on messages when asked.
pub(crate) fn add_quota_headers(
    resp: &mut Response<Full<Bytes>>,
    q: &QuotaCheck,
    anthropic: bool,
    anthropic_headers: bool,
) {
    let h = resp.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    if !anthropic {
        put("x-ratelimit-limit-requests", q.limit.to_string());
        put("x-ratelimit-remaining-requests", q.remaining.to_string());
        put("x-ratelimit-reset-requests", go_duration(q.reset));
    } else if anthropic_headers {
        // Round the reset time up so a client waiting for it finds the bucket full.
        let reset = SystemTime::now() + q.reset + Duration::from_millis(999);
        put("anthropic-ratelimit-requests-limit", q.limit.to_string());
        put(
            "anthropic-ratelimit-requests-remaining",
            q.remaining.to_string(),
        );
        put("anthropic-ratelimit-requests-reset", rfc3339(reset));
    }
}

/// A duration the way OpenAI's rate-limit headers write it (Go style): `250ms`, `1s`,
/// `1.5s`, `6m0s`, `1h2m3s`.
pub fn go_duration(d: Duration) -> String {
    fn trim(x: f64) -> String {
        let s = format!("{x:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
    if d.is_zero() {
        return "0s".to_string();
    }
    if d < Duration::from_secs(1) {
        return format!("{}ms", trim(d.as_secs_f64() * 1000.0));
    }
    let whole = d.as_secs();
    let (h, m) = (whole / 3600, whole % 3600 / 60);
    let s = trim((whole % 60) as f64 + f64::from(d.subsec_millis()) / 1000.0);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A time as RFC 3339 in UTC, whole seconds (`2026-11-25T12:00:00Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_formats() {
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_secs(1)), "1s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(360)), "6m0s");
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc3339(t(1_764_072_000)), "2025-11-25T12:00:00Z");
        assert_eq!(rfc3339(t(951_782_400 + 86_399)), "2000-02-29T23:59:59Z");
        assert_eq!(rfc3339(t(0)), "1970-01-01T00:00:00Z");
    }
}
