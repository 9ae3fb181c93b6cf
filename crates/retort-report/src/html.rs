//! Escaping and number formatting shared by every section of the page.

use std::fmt::Write;

/// Escapes text for HTML element content and for double- or single-quoted attribute
/// values alike, so one function is safe wherever record text lands (element text, SVG
/// `<title>`, `data-*` attributes). `<` is always escaped, which also breaks any
/// `</script` or `</title` sequence a record might carry.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // NUL is a parse error in HTML and is replaced by U+FFFD anyway; make that explicit.
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Cuts `s` to at most `max` characters (not bytes, so CJK text is never split inside a
/// code point), appending `…` when something was cut.
pub fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((byte, _)) => {
            let mut t = s[..byte].trim_end().to_string();
            t.push('…');
            t
        }
    }
}

/// `1234567` → `1,234,567`.
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Dollars with enough digits that small test runs do not all show `$0.00`.
pub fn usd(x: f64) -> String {
    if x == 0.0 {
        "$0".to_string()
    } else if x.abs() < 1.0 {
        format!("${x:.4}")
    } else {
        format!("${x:.2}")
    }
}

/// Seconds as `850 ms`, `12.3 s`, `4 m 05 s` or `2 h 03 m`.
pub fn secs(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "—".to_string();
    }
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        let t = s.round() as u64;
        format!("{} m {:02} s", t / 60, t % 60)
    } else {
        let t = s.round() as u64;
        format!("{} h {:02} m", t / 3600, (t % 3600) / 60)
    }
}

/// A score or metric with two decimals, or fewer when the value is whole.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

/// Appends formatted text to a `String`; writing to a `String` cannot fail, so the
/// `fmt::Result` is dropped here once instead of at every call site.
macro_rules! w {
    ($dst:expr, $($arg:tt)*) => {{
        let _ = ::std::fmt::Write::write_fmt($dst, format_args!($($arg)*));
    }};
}
pub(crate) use w;

/// A `<span>` coloured swatch for legends and headings.
pub fn swatch(out: &mut String, colour: &str) {
    let _ = write!(
        out,
        r#"<span class="sw" style="background:{colour}"></span>"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_neutralises_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert(1)</script>"#),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(
            esc(r#""><img src=x onerror=alert(1)>"#),
            "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(esc("a'b&c"), "a&#39;b&amp;c");
        assert_eq!(
            esc("&amp;"),
            "&amp;amp;",
            "already-escaped text is escaped again"
        );
    }

    #[test]
    fn truncate_counts_chars_not_bytes() {
        assert_eq!(truncate("你好世界", 2), "你好…");
        assert_eq!(truncate("short", 10), "short");
        assert_eq!(truncate("exactly", 7), "exactly");
        assert_eq!(truncate("ab cd", 3), "ab…");
    }

    #[test]
    fn numbers_format_for_people() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1000), "1,000");
        assert_eq!(int(1234567), "1,234,567");
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.01234), "$0.0123");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(secs(0.25), "250 ms");
        assert_eq!(secs(75.0), "1 m 15 s");
        assert_eq!(secs(7380.0), "2 h 03 m");
        assert_eq!(num(7.0), "7");
        assert_eq!(num(7.256), "7.26");
    }
}
