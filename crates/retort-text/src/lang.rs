//! Language identification: which language a text is written in, with a confidence.
//!
//! Backed by the `lingua` crate (high-accuracy mode) restricted to [`SUPPORTED`]; the
//! comparison with `whatlang` that chose it is in docs/benchmarks.md ("Language
//! identification (#16)"). The detector's models load once per process, on first use.
//!
//! What comes back:
//! - an ISO 639-1 code from [`SUPPORTED`] and lingua's relative confidence in it
//!   (0–1; the confidences of all supported languages sum to 1);
//! - [`UNDETERMINED`] (`"und"`, the ISO 639-2 code for "undetermined") with confidence 0
//!   when the text has fewer than [`MIN_LETTERS`] letters once code is removed (empty
//!   text, numbers, punctuation, a reply that is only a code block), or when no
//!   supported language fits (a script none of them uses, such as Greek or Thai).
//!
//! Code is not language: fenced blocks (```` ``` ```` / `~~~`) and inline `code` spans
//! are removed before identification, so a Python answer with Chinese prose reads as
//! Chinese, not English.
//!
//! A text in a language outside [`SUPPORTED`] but in a script one of them uses (Italian
//! and Dutch are in; Catalan or Polish are not) is labelled with the nearest supported
//! language, usually with a low confidence; [`LangId::is_confident`] is the guard
//! every consumer (e.g. `lang_mismatch`) uses.

use std::sync::OnceLock;

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

use crate::script::{script_of, Script};

/// The code for a text whose language could not be identified (ISO 639-2 "undetermined").
pub const UNDETERMINED: &str = "und";

/// Fewer letters than this (CJK characters count one each) and the text is
/// [`UNDETERMINED`]: "OK", "42", "?!" carry no language.
pub const MIN_LETTERS: usize = 3;

/// The confidence at or above which an identification is trusted (see
/// [`LangId::is_confident`]). lingua's values are relative over [`SUPPORTED`], so 0.5
/// means the top language is more likely than all the others together.
pub const CONFIDENT: f64 = 0.5;

/// Languages the detector chooses from, as ISO 639-1 codes, with lingua's names.
/// Each one is a Cargo feature of `lingua` (about 4–5 MB of models in the binary for an
/// alphabetic language, well under 1 MB for zh/ja/ko); adding one means adding the
/// feature in crates/retort-text/Cargo.toml and a row here.
pub const SUPPORTED: &[(&str, Language)] = &[
    ("en", Language::English),
    ("zh", Language::Chinese),
    ("es", Language::Spanish),
    ("pt", Language::Portuguese),
    ("fr", Language::French),
    ("de", Language::German),
    ("ja", Language::Japanese),
    ("ru", Language::Russian),
    ("it", Language::Italian),
    ("nl", Language::Dutch),
    ("ko", Language::Korean),
    ("ar", Language::Arabic),
];

/// An identification: the language code and how sure the detector is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LangId {
    /// ISO 639-1 code from [`SUPPORTED`], or [`UNDETERMINED`].
    pub code: &'static str,
    /// lingua's relative confidence in `code`, 0–1 (0 for [`UNDETERMINED`]).
    pub confidence: f64,
}

impl LangId {
    /// The undetermined result.
    pub const UNKNOWN: LangId = LangId {
        code: UNDETERMINED,
        confidence: 0.0,
    };

    /// Whether the identification can be acted on: a real language with confidence at
    /// least [`CONFIDENT`].
    pub fn is_confident(&self) -> bool {
        self.code != UNDETERMINED && self.confidence >= CONFIDENT
    }
}

fn detector() -> &'static LanguageDetector {
    static DETECTOR: OnceLock<LanguageDetector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let langs: Vec<Language> = SUPPORTED.iter().map(|(_, l)| *l).collect();
        LanguageDetectorBuilder::from_languages(&langs).build()
    })
}

fn code_of(l: Language) -> &'static str {
    SUPPORTED
        .iter()
        .find(|(_, x)| *x == l)
        .map(|(c, _)| *c)
        // The detector is built from SUPPORTED, so it cannot answer anything else.
        .expect("lingua answered a language it was not built with")
}

/// `text` with fenced code blocks and inline code spans removed (an unclosed fence
/// removes the rest of the text, as a Markdown renderer would show it as code).
pub fn strip_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        match fence {
            Some(f) => {
                if t.starts_with(f) {
                    fence = None;
                }
            }
            None if t.starts_with("```") => fence = Some("```"),
            None if t.starts_with("~~~") => fence = Some("~~~"),
            None => out.push_str(&strip_inline_code(line)),
        }
    }
    out
}

fn strip_inline_code(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(a) = rest.find('`') {
        match rest[a + 1..].find('`') {
            Some(b) => {
                out.push_str(&rest[..a]);
                out.push(' ');
                rest = &rest[a + 1 + b + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

fn letters(text: &str) -> usize {
    text.chars()
        .filter(|c| script_of(*c) != Script::NotLetter)
        .take(MIN_LETTERS)
        .count()
}

/// Identify the language of `text` (see the module docs for what can come back).
pub fn identify(text: &str) -> LangId {
    let prose = strip_code(text);
    if letters(&prose) < MIN_LETTERS {
        return LangId::UNKNOWN;
    }
    let values = detector().compute_language_confidence_values(prose);
    match values.first() {
        Some((l, c)) if *c > 0.0 => LangId {
            code: code_of(*l),
            confidence: *c,
        },
        _ => LangId::UNKNOWN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_confidence() {
        let en = identify("Give me three tips for staying focused while working from home.");
        assert_eq!(en.code, "en");
        assert!(en.is_confident(), "{en:?}");
        assert_eq!(identify("Eres un perro muy simpático y leal.").code, "es");
        assert_eq!(identify("Você pode me ajudar com isso?").code, "pt");
        assert_eq!(identify("解释为什么天空是蓝色的。").code, "zh");
        assert_eq!(identify("空が青いのはなぜですか。").code, "ja");
        assert_eq!(identify("하늘은 왜 파란가요?").code, "ko");
        assert_eq!(identify("Почему небо голубое?").code, "ru");
        assert_eq!(identify("لماذا السماء زرقاء؟").code, "ar");
    }

    #[test]
    fn undetermined() {
        for t in [
            "",
            "12345 !!!",
            "OK",
            "```python\nprint('hello world')\n```",
        ] {
            assert_eq!(identify(t), LangId::UNKNOWN, "{t:?}");
            assert!(!identify(t).is_confident());
        }
        // No supported language uses the Greek script.
        assert_eq!(identify("Γιατί ο ουρανός είναι μπλε;").code, UNDETERMINED);
    }

    #[test]
    fn code_is_not_prose() {
        let zh = "下面是一个快速排序的实现：\n```python\ndef quicksort(items):\n    return sorted(items)  # simple and readable\n```\n这个函数返回一个新的列表，原来的列表不会被修改。";
        assert_eq!(identify(zh).code, "zh");
        assert_eq!(
            strip_code("Use `len(x)` here.\n~~~\ncode\n~~~\nDone."),
            "Use   here.\nDone."
        );
        assert_eq!(strip_code("a `b"), "a `b");
    }
}
