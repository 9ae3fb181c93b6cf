//! API keys as a type that cannot be printed.

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

    /// Replaces every occurrence of the secret in `text` with `[redacted]`: servers
    /// sometimes echo the key back in an error body ("Incorrect API key provided: …").
    pub fn scrub(&self, text: &str) -> String {
        if self.0.len() < 4 || !text.contains(&self.0) {
            return text.to_string();
        }
        text.replace(&self.0, "[redacted]")
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
        let s = Secret::new("sk-canary-123456");
        let msg = "Incorrect API key provided: sk-canary-123456. See docs.";
        assert_eq!(
            s.scrub(msg),
            "Incorrect API key provided: [redacted]. See docs."
        );
    }

    #[test]
    fn missing_env_var_error_names_the_variable() {
        let e = Secret::from_env("RETORT_TEST_SURELY_UNSET_VAR").unwrap_err();
        assert!(e.contains("RETORT_TEST_SURELY_UNSET_VAR"), "{e}");
    }
}
