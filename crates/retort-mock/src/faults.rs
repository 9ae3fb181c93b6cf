//! Fault injection: which requests misbehave (scripted errors first, then prompts that
//! are bad on every attempt, then the random shares) and what the misbehaviour looks
//! like on the wire.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::config::{Injected, RetryAfterStyle};
use crate::draw::unit;
use crate::replies::json_response;
use crate::state::State;

/// Whether `prompt` is one of the `rate` share of bad prompts under `seed`.
pub(crate) fn is_bad_prompt(prompt: &str, seed: u64, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    h.update(prompt.as_bytes());
    let h = h.finalize();
    let x = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    ((x >> 11) as f64 / (1u64 << 53) as f64) < rate
}

impl State {
    /// What request `seq` gets instead of a plain answer, if anything. Scripted errors
    /// count their hits, so this is called once per request.
    pub(crate) fn pick_injection(&self, seq: u64, user: &str, is_chat: bool) -> Option<Injected> {
        if !self.cfg.error_rules.is_empty() {
            let mut hits = self.rule_hits.lock().expect("mock rule hits poisoned");
            for (i, r) in self.cfg.error_rules.iter().enumerate() {
                if hits[i] < r.times && r.pattern.is_match(user) {
                    hits[i] += 1;
                    return Some(r.error);
                }
            }
        }
        let c = &self.cfg;
        if is_chat && is_bad_prompt(user, c.seed, c.rate_bad_prompt) {
            return Some(Injected::BadPrompt);
        }
        let u = unit(c.seed ^ seq.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let mut edge = 0.0;
        let table = [
            (
                c.rate_429,
                Injected::TooMany {
                    retry_after_ms: c.retry_after_ms,
                    style: c.retry_after_style,
                },
            ),
            (c.rate_500, Injected::ServerError),
            (c.rate_hang, Injected::Hang),
            (c.rate_truncated, Injected::TruncatedJson),
            (c.rate_invalid, Injected::InvalidJson),
            (if is_chat { c.rate_length } else { 0.0 }, Injected::Length),
        ];
        for (rate, inj) in table {
            edge += rate;
            if u < edge {
                return Some(inj);
            }
        }
        None
    }
}

/// The answer of an injected error that replaces the whole reply (429, 500, hang), with
/// the status to log (0 for a hang); `None` when the request gets a body after all.
pub(crate) fn error_reply(
    inj: Option<Injected>,
    anthropic: bool,
) -> Option<(u16, Response<Full<Bytes>>)> {
    match inj {
        Some(Injected::TooMany {
            retry_after_ms,
            style,
        }) => {
            let mut b = Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("content-type", "application/json");
            match style {
                RetryAfterStyle::Seconds => {
                    b = b.header("retry-after", format!("{}", retry_after_ms as f64 / 1000.0))
                }
                RetryAfterStyle::Millis => {
                    b = b.header("retry-after-ms", retry_after_ms.to_string())
                }
                RetryAfterStyle::None => {}
            }
            let msg = if anthropic {
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
            } else {
                json!({"error": {"message": "Rate limit reached", "type": "rate_limit_error"}})
            };
            let r = b
                .body(Full::new(Bytes::from(msg.to_string())))
                .expect("static response parts");
            Some((429, r))
        }
        Some(Injected::ServerError) => {
            let b = json!({"error": {"message": "injected server error"}});
            Some((500, json_response(500, b.to_string())))
        }
        Some(Injected::Hang) => Some((0, json_response(504, "{}".to_string()))),
        _ => None,
    }
}

/// The broken 200 body an injected fault puts in place of `full`, the well-formed one;
/// `None` when the body goes out as it is.
pub(crate) fn garbled(inj: Option<Injected>, full: &str) -> Option<String> {
    match inj {
        Some(Injected::TruncatedJson) => Some(full[..full.len() / 2].to_string()),
        Some(Injected::InvalidJson) => Some("<html>upstream returned garbage</html>".to_string()),
        Some(Injected::BadPrompt) => {
            Some("<html>this prompt always breaks the upstream</html>".to_string())
        }
        _ => None,
    }
}
