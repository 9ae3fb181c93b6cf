//! The instruction filters of Self-Instruct / Alpaca, extended to CJK.
//!
//! Alpaca's `generate_instruction.py` drops an instruction when it has ≤ 3 or > 150
//! words, contains a blacklisted keyword (as a whole word, case-insensitive), starts with
//! "Write a program", starts with ASCII punctuation, or starts with a non-ASCII character.
//! [`InstructionFilter::default`] applies the same rules with the same values, except:
//! - **CJK text** (more CJK characters than other words) is measured in characters —
//!   CJK characters plus the words of any other script in it — against
//!   `min_chars_cjk..=max_chars_cjk`, and checked against a Chinese keyword list by
//!   substring (Chinese has no word boundaries);
//! - the non-ASCII-start rule would drop every Chinese instruction, so it is off unless
//!   `ascii_start_only` is set (set it to reproduce Alpaca exactly on English);
//! - punctuation includes CJK and full-width punctuation (`，。？「` …).
//!
//! Each rule has a stable machine-readable reason used in `rejections.parquet`:
//! `too_short`, `too_long`, `keyword`, `banned_prefix`, `starts_with_punct`,
//! `non_ascii_start`.

use crate::script::{is_cjk, is_punctuation};

/// Alpaca's English keyword blacklist (things a text-only model cannot do).
pub const BLACKLIST_EN: &[&str] = &[
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
    "video",
    "audio",
    "music",
    "flowchart",
    "diagram",
];

/// The Chinese counterpart (images, photos, files, charts, links, video, audio, music,
/// flowcharts, maps, drawing, screenshots, attachments, URLs).
pub const BLACKLIST_ZH: &[&str] = &[
    "图像",
    "图片",
    "照片",
    "文件",
    "图表",
    "链接",
    "视频",
    "音频",
    "音乐",
    "流程图",
    "地图",
    "绘制",
    "画一幅",
    "画一张",
    "示意图",
    "截图",
    "附件",
    "网址",
];

/// Why [`InstructionFilter::check`] rejected an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterReject {
    /// `too_short`, `too_long`, `keyword`, `banned_prefix`, `starts_with_punct` or
    /// `non_ascii_start`.
    pub reason: &'static str,
    /// Human-readable detail, e.g. `3 words < 4` or `"diagram"`.
    pub detail: String,
}

/// Length, keyword and first-character rules for generated instructions.
#[derive(Clone, Debug, PartialEq)]
pub struct InstructionFilter {
    /// Fewest words for spaced-script text (Alpaca: more than 3, so 4).
    pub min_words: usize,
    /// Most words for spaced-script text (Alpaca: 150).
    pub max_words: usize,
    /// Fewest characters for CJK text (default 5).
    pub min_chars_cjk: usize,
    /// Most characters for CJK text (default 300).
    pub max_chars_cjk: usize,
    /// Keywords: ASCII ones match as whole words, case-insensitively (Python's `\b…\b`
    /// with `re.IGNORECASE`); others (CJK) match as substrings.
    pub blacklist: Vec<String>,
    /// Prefixes that reject (Alpaca: "Write a program"), compared case-sensitively as
    /// Alpaca does.
    pub banned_prefixes: Vec<String>,
    /// Reject instructions whose first character is not ASCII (Alpaca's rule; off by
    /// default because it rejects every CJK instruction).
    pub ascii_start_only: bool,
}

impl Default for InstructionFilter {
    fn default() -> Self {
        InstructionFilter {
            min_words: 4,
            max_words: 150,
            min_chars_cjk: 5,
            max_chars_cjk: 300,
            blacklist: BLACKLIST_EN
                .iter()
                .chain(BLACKLIST_ZH)
                .map(|s| s.to_string())
                .collect(),
            banned_prefixes: vec!["Write a program".to_string()],
            ascii_start_only: false,
        }
    }
}

fn reject(reason: &'static str, detail: String) -> Result<(), FilterReject> {
    Err(FilterReject { reason, detail })
}

/// Python's `\w` for `re` in Unicode mode: alphanumerics and underscore.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whole-word, case-insensitive search for an ASCII keyword.
fn contains_word(haystack_lower: &str, word_lower: &str) -> bool {
    let mut from = 0;
    while let Some(pos) = haystack_lower[from..].find(word_lower) {
        let start = from + pos;
        let end = start + word_lower.len();
        let before_ok = haystack_lower[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_word_char(c));
        let after_ok = haystack_lower[end..]
            .chars()
            .next()
            .is_none_or(|c| !is_word_char(c));
        if before_ok && after_ok {
            return true;
        }
        from = start
            + haystack_lower[start..]
                .chars()
                .next()
                .map_or(1, char::len_utf8);
    }
    false
}

/// How long an instruction is and in which unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Length {
    /// Whether CJK characters dominate (then `units` counts characters).
    pub cjk: bool,
    /// Words (whitespace-separated, as Python's `str.split()`) for spaced text; CJK
    /// characters plus the alphanumeric words around them for CJK text.
    pub units: usize,
}

/// The length of `text` in the unit the filter uses.
pub fn length(text: &str) -> Length {
    let cjk_chars = text.chars().filter(|&c| is_cjk(c)).count();
    if cjk_chars == 0 {
        return Length {
            cjk: false,
            units: text.split_whitespace().count(),
        };
    }
    let (units, cjk) = crate::script::units(text);
    let other_words = units.len() - cjk;
    if cjk >= other_words {
        Length {
            cjk: true,
            units: units.len(),
        }
    } else {
        Length {
            cjk: false,
            units: text.split_whitespace().count(),
        }
    }
}

impl InstructionFilter {
    /// Check one instruction (leading/trailing whitespace ignored, as Alpaca strips).
    /// Rules run in Alpaca's order: length, keywords, prefixes, first character.
    pub fn check(&self, instruction: &str) -> Result<(), FilterReject> {
        let inst = instruction.trim();
        let len = length(inst);
        let (min, max, unit) = if len.cjk {
            (self.min_chars_cjk, self.max_chars_cjk, "characters")
        } else {
            (self.min_words, self.max_words, "words")
        };
        if len.units < min {
            return reject("too_short", format!("{} {unit} < {min}", len.units));
        }
        if len.units > max {
            return reject("too_long", format!("{} {unit} > {max}", len.units));
        }
        let lower = inst.to_lowercase();
        for k in &self.blacklist {
            let kl = k.to_lowercase();
            let hit = if kl.is_ascii() {
                contains_word(&lower, &kl)
            } else {
                lower.contains(&kl)
            };
            if hit {
                return reject("keyword", format!("{k:?}"));
            }
        }
        for p in &self.banned_prefixes {
            if inst.starts_with(p.as_str()) {
                return reject("banned_prefix", format!("{p:?}"));
            }
        }
        let first = inst
            .chars()
            .next()
            .expect("non-empty after the length check");
        if is_punctuation(first) {
            return reject("starts_with_punct", format!("{first:?}"));
        }
        if self.ascii_start_only && !first.is_ascii() {
            return reject("non_ascii_start", format!("{first:?}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<&'static str> {
        InstructionFilter::default()
            .check(s)
            .err()
            .map(|r| r.reason)
    }

    #[test]
    fn each_reason_fires() {
        assert_eq!(reason("Summarise this text"), Some("too_short"));
        assert_eq!(reason(&"word ".repeat(151)), Some("too_long"));
        assert_eq!(
            reason("Describe the image below in detail"),
            Some("keyword")
        );
        assert_eq!(
            reason("Please Go To the website and report"),
            Some("keyword")
        );
        assert_eq!(
            reason("Write a program that sorts numbers"),
            Some("banned_prefix")
        );
        assert_eq!(
            reason("\"Explain why the sky is blue\""),
            Some("starts_with_punct")
        );
        assert_eq!(
            reason("。解释天空为什么是蓝色的"),
            Some("starts_with_punct")
        );
        assert_eq!(reason("请描述这张图片的内容"), Some("keyword"));
        assert_eq!(reason("写诗"), Some("too_short"));
        assert_eq!(reason(&"长".repeat(301)), Some("too_long"));
        let strict = InstructionFilter {
            ascii_start_only: true,
            ..Default::default()
        };
        assert_eq!(
            strict
                .check("Éxplain the French revolution briefly")
                .unwrap_err()
                .reason,
            "non_ascii_start"
        );
    }

    #[test]
    fn good_instructions_pass() {
        assert_eq!(reason("Give three tips for staying healthy."), None);
        assert_eq!(reason("解释为什么天空是蓝色的。"), None);
        assert_eq!(reason("用Python写一个快速排序函数"), None);
        // Whole words only: "filed", "mapping", "imagery" are not keywords.
        assert_eq!(reason("Explain how a tax return is filed"), None);
        assert_eq!(reason("Describe a mapping between two sets"), None);
        assert_eq!(reason("Write a story with vivid imagery"), None);
        // Alpaca compares the prefix case-sensitively.
        assert_eq!(reason("write a program that prints hello"), None);
    }

    #[test]
    fn length_units() {
        assert_eq!(
            length("Give three tips now"),
            Length {
                cjk: false,
                units: 4
            }
        );
        assert_eq!(
            length("写一首诗"),
            Length {
                cjk: true,
                units: 4
            }
        );
        assert_eq!(
            length("用Python写排序"),
            Length {
                cjk: true,
                units: 5
            }
        );
    }
}
