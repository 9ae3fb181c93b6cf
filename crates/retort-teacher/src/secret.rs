//! API keys as a type that cannot be printed.

use std::borrow::Cow;
use std::fmt;

/// A secret value (an API key). `Debug` and `Display` print `[redacted]`; there is no
/// `Serialize`, so it cannot end up in the manifest, the cache or a log by accident.
/// The only way to the value is [`Secret::expose`], used where the header is built.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value already in hand (tests; keys read elsewhere).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Reads the key from the named environment variable. The error names the
    /// variable, never a value.
    pub fn from_env(var: &str) -> Result<Secret, String> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Secret(v.trim().to_string())),
            Ok(_) => Err(format!(
                "environment variable {var} is empty (hint: export {var}=<your key>)"
            )),
            Err(_) => Err(format!(
                "environment variable {var} is not set (hint: export {var}=<your key>, or remove api_key_env for a server without auth)"
            )),
        }
    }

    /// The value, for building a request header. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Header names whose values are secrets whatever the provider (compared lower-case).
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "x-api-key",
    "api-key",
    "proxy-authorization",
    "cookie",
];

/// Whether a header's value must never be shown.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    SECRET_HEADERS.contains(&n.as_str()) || n.contains("key") || n.contains("token")
}

/// Headers as they may be logged: every value is `[redacted]`, since a user-supplied
/// header may carry a credential under any name.
pub fn redact_headers<'a>(
    headers: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<(String, &'static str)> {
    headers
        .into_iter()
        .map(|(k, _)| (k.clone(), "[redacted]"))
        .collect()
}

/// Values shorter than this are not scrubbed: no credential is that short, and
/// replacing a 3-byte header value such as `abc` would rewrite ordinary answers.
const MIN_SECRET_LEN: usize = 6;

/// Every secret one backend sends (its API key, every configured header value), in the
/// forms a server could echo them: verbatim and as a JSON string escapes them.
///
/// This is the one place secrets are removed from what comes back: the HTTP backends
/// pass every response body and every error through it the moment it arrives, before
/// anything parses, caches, logs or stores it, so failure rows, cache bodies, step
/// parts, exports, the manifest and messages never see a value.
#[derive(Clone, Default)]
pub struct Scrubber {
    needles: Vec<Vec<u8>>,
}

impl Scrubber {
    /// A scrubber for `key` and the given header values.
    pub fn new<'a>(
        key: Option<&'a Secret>,
        header_values: impl IntoIterator<Item = &'a str>,
    ) -> Scrubber {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        let values = key.map(Secret::expose).into_iter().chain(header_values);
        for v in values.filter(|v| v.len() >= MIN_SECRET_LEN) {
            needles.push(v.as_bytes().to_vec());
            // serde_json escapes `"` and `\\`; other encoders also escape `/`.
            let quoted = serde_json::to_string(v).unwrap_or_default();
            let inner = quoted
                .strip_prefix('"')
                .and_then(|q| q.strip_suffix('"'))
                .unwrap_or(v);
            needles.push(inner.as_bytes().to_vec());
            needles.push(inner.replace('/', "\\/").into_bytes());
        }
        // Longest first, so a value that contains another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Scrubber { needles }
    }

    /// `raw` with every secret replaced by `[redacted]`; borrowed when none occurs.
    pub fn bytes<'a>(&self, raw: &'a [u8]) -> Cow<'a, [u8]> {
        let mut out: Cow<'a, [u8]> = Cow::Borrowed(raw);
        for n in &self.needles {
            if memchr::memmem::find(&out, n).is_none() {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut rest: &[u8] = &out;
            while let Some(i) = memchr::memmem::find(rest, n) {
                next.extend_from_slice(&rest[..i]);
                next.extend_from_slice(b"[redacted]");
                rest = &rest[i + n.len()..];
            }
            next.extend_from_slice(rest);
            out = Cow::Owned(next);
        }
        out
    }

    /// `text` with every secret replaced by `[redacted]`.
    pub fn text(&self, text: &str) -> String {
        match self.bytes(text.as_bytes()) {
            Cow::Borrowed(_) => text.to_string(),
            // Needles are whole UTF-8 strings, so replacing them keeps the text valid.
            Cow::Owned(b) => String::from_utf8(b)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("sk-canary-123456");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "sk-canary-123456");
    }

    #[test]
    fn scrub_removes_an_echoed_key() {
        let k = Secret::new("sk-canary-123456");
        let s = Scrubber::new(Some(&k), std::iter::empty::<&str>());
        let msg = "Incorrect API key provided: sk-canary-123456. See docs.";
        assert_eq!(
            s.text(msg),
            "Incorrect API key provided: [redacted]. See docs."
        );
    }

    #[test]
    fn scrubber_covers_header_values_json_escapes_and_leaves_short_values() {
        let k = Secret::new("sk/canary\\\"x-123");
        let s = Scrubber::new(Some(&k), ["org-token-98765", "abc"]);
        // The key as JSON writes it inside a string: `/` may be `\/`, `\\` and `"` escaped.
        let body = br#"{"echo": "sk\/canary\\\"x-123", "raw": "sk/canary\\\"x-123"}"#;
        let got = String::from_utf8(s.bytes(body).into_owned()).unwrap();
        assert!(!got.contains("canary"), "{got}");
        assert_eq!(
            s.text("h=org-token-98765; abc stays"),
            "h=[redacted]; abc stays",
            "a 3-byte header value is not a credential and would rewrite ordinary text"
        );
        assert!(matches!(s.bytes(b"clean"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn missing_env_var_error_names_the_variable() {
        let e = Secret::from_env("RETORT_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(e.contains("RETORT_TEST_SURELY_UNSET_VAR"), "{e}");
    }
}
