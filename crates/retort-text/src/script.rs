//! Character classes shared by the tokenizers, filters and heuristics.
//!
//! Ranges are written out rather than taken from a Unicode-property crate: the set of
//! scripts retort cares about is small, and fixing the ranges here keeps tokenisation
//! (and therefore every ROUGE decision) stable across dependency upgrades.

/// Scripts the text algorithms distinguish.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Script {
    /// Chinese characters (also used in Japanese and, rarely, Korean).
    Han,
    /// Japanese Hiragana and Katakana (full- and half-width).
    Kana,
    /// Korean Hangul syllables and jamo.
    Hangul,
    /// Latin letters, including accented ones.
    Latin,
    /// Cyrillic letters.
    Cyrillic,
    /// Arabic letters.
    Arabic,
    /// Any other alphabetic character (Greek, Hebrew, Devanagari, Thai, …).
    OtherLetter,
    /// Digits, punctuation, symbols, whitespace.
    NotLetter,
}

/// The script of one character.
pub fn script_of(c: char) -> Script {
    let u = c as u32;
    if c.is_ascii() {
        return if c.is_ascii_alphabetic() {
            Script::Latin
        } else {
            Script::NotLetter
        };
    }
    if is_han(u) {
        Script::Han
    } else if is_kana(u) {
        Script::Kana
    } else if is_hangul(u) {
        Script::Hangul
    } else if !c.is_alphabetic() {
        Script::NotLetter
    } else if is_latin(u) {
        Script::Latin
    } else if (0x0400..=0x052F).contains(&u) || (0x1C80..=0x1C8F).contains(&u) {
        Script::Cyrillic
    } else if (0x0600..=0x06FF).contains(&u)
        || (0x0750..=0x077F).contains(&u)
        || (0x08A0..=0x08FF).contains(&u)
        || (0xFB50..=0xFDFF).contains(&u)
        || (0xFE70..=0xFEFF).contains(&u)
    {
        Script::Arabic
    } else {
        Script::OtherLetter
    }
}

fn is_han(u: u32) -> bool {
    (0x4E00..=0x9FFF).contains(&u)     // CJK Unified Ideographs
        || (0x3400..=0x4DBF).contains(&u)  // Extension A
        || (0x20000..=0x323AF).contains(&u) // Extensions B–H
        || (0xF900..=0xFAFF).contains(&u)  // Compatibility Ideographs
        || (0x2F800..=0x2FA1F).contains(&u) // Compatibility Supplement
        || u == 0x3005 // 々 iteration mark
        || u == 0x3007 // 〇
}

fn is_kana(u: u32) -> bool {
    (0x3041..=0x309F).contains(&u)      // Hiragana (letters, marks)
        || (0x30A0..=0x30FF).contains(&u)  // Katakana incl. ー
        || (0x31F0..=0x31FF).contains(&u)  // Katakana phonetic extensions
        || (0xFF66..=0xFF9F).contains(&u) // half-width Katakana
}

fn is_hangul(u: u32) -> bool {
    (0xAC00..=0xD7AF).contains(&u)      // syllables
        || (0x1100..=0x11FF).contains(&u)  // jamo
        || (0x3130..=0x318F).contains(&u)  // compatibility jamo
        || (0xA960..=0xA97F).contains(&u)
        || (0xD7B0..=0xD7FF).contains(&u)
        || (0xFFA0..=0xFFDC).contains(&u) // half-width Hangul
}

fn is_latin(u: u32) -> bool {
    (0x00C0..=0x024F).contains(&u)
        || (0x1E00..=0x1EFF).contains(&u)
        || (0x2C60..=0x2C7F).contains(&u)
        || (0xA720..=0xA7FF).contains(&u)
        || (0xAB30..=0xAB6F).contains(&u)
        || (0xFF21..=0xFF3A).contains(&u) // full-width A–Z
        || (0xFF41..=0xFF5A).contains(&u) // full-width a–z
        || (0x0250..=0x02AF).contains(&u) // IPA
        || (0x1D00..=0x1DBF).contains(&u)
}

/// Whether a character is written without spaces between words and therefore counts as
/// one unit on its own: Han, Hiragana, Katakana or Hangul.
///
/// Hangul is written with spaces between words, but its syllable blocks are the unit
/// that paraphrases share, so ROUGE and MinHash treat each syllable as a unit too.
pub fn is_cjk(c: char) -> bool {
    let u = c as u32;
    u >= 0x1100 && (is_han(u) || is_kana(u) || is_hangul(u))
}

/// Punctuation, ASCII or the common CJK/full-width/general forms (`，。！？、「」…—` …).
pub fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation();
    }
    let u = c as u32;
    (0x2010..=0x2027).contains(&u)       // dashes, quotes, bullets, ellipsis
        || (0x2030..=0x205E).contains(&u)  // per mille, primes, ‹›, ‼ …
        || (0x3001..=0x3003).contains(&u)  // 、。〃
        || (0x3008..=0x3011).contains(&u)  // 〈〉《》「」『』【】
        || (0x3014..=0x301F).contains(&u)  // 〔〕〖〗〘〙〚〛〜〝〞〟
        || u == 0x30FB // ・
        || (0xFF01..=0xFF0F).contains(&u)  // ！＂＃…／
        || (0xFF1A..=0xFF20).contains(&u)  // ：；＜＝＞？＠
        || (0xFF3B..=0xFF40).contains(&u)
        || (0xFF5B..=0xFF65).contains(&u)
        || matches!(u, 0x00A1 | 0x00A7 | 0x00AB | 0x00B6 | 0x00B7 | 0x00BB | 0x00BF)
}

/// Splits text into comparison units for MinHash, heuristics and length filters: each CJK
/// character is a unit; every other run of alphanumeric characters (any script) is a
/// lower-cased word. Also returns how many units were CJK characters.
pub(crate) fn units(text: &str) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut cjk = 0usize;
    let mut word = String::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
            cjk += 1;
        } else if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    (out, cjk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_scripts() {
        assert_eq!(script_of('a'), Script::Latin);
        assert_eq!(script_of('é'), Script::Latin);
        assert_eq!(script_of('中'), Script::Han);
        assert_eq!(script_of('の'), Script::Kana);
        assert_eq!(script_of('カ'), Script::Kana);
        assert_eq!(script_of('한'), Script::Hangul);
        assert_eq!(script_of('ж'), Script::Cyrillic);
        assert_eq!(script_of('ب'), Script::Arabic);
        assert_eq!(script_of('α'), Script::OtherLetter);
        assert_eq!(script_of('7'), Script::NotLetter);
        assert_eq!(script_of('，'), Script::NotLetter);
    }

    #[test]
    fn units_mix_words_and_cjk_chars() {
        let (u, cjk) = units("用Python写 a Sorting-function，谢谢");
        assert_eq!(
            u,
            vec!["用", "python", "写", "a", "sorting", "function", "谢", "谢"]
        );
        assert_eq!(cjk, 4);
    }

    #[test]
    fn cjk_punctuation_is_punctuation_not_cjk() {
        for c in ['，', '。', '「', '！', '？', '、', '…'] {
            assert!(is_punctuation(c), "{c}");
            assert!(!is_cjk(c), "{c}");
        }
    }
}
