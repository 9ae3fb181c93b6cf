//! ROUGE-L F1, compatible with Google's `rouge_score` and extended to CJK.
//!
//! # Tokenisation (the unit of comparison)
//! [`tokenize`] reproduces `rouge_score`'s default tokenizer (`tokenize.tokenize` with no
//! stemmer) on every text it can score:
//! 1. lower-case the whole text (Unicode lower-casing, as Python's `str.lower`);
//! 2. every character outside `[a-z0-9]` separates tokens;
//! 3. tokens are the remaining runs of `[a-z0-9]`; no stemming.
//!
//! `rouge_score` drops every other character, so it cannot score Chinese, Japanese or
//! Korean at all (any two Chinese instructions score 0). retort adds, without changing
//! a single `[a-z0-9]` token:
//! - **CJK characters** (Han, Hiragana, Katakana, Hangul) are one token each. Chinese
//!   has no spaces and single characters carry most of the meaning, so per-character
//!   LCS is the standard unit for Chinese ROUGE; it also needs no word segmenter.
//! - **Letters of other non-Latin scripts** (Cyrillic, Greek, Arabic, Hebrew, …) form
//!   word tokens of their own (runs of such letters), where `rouge_score` would see
//!   nothing.
//!
//! Accented Latin letters stay separators exactly as in `rouge_score` (`café` → `caf`),
//! so for any text without CJK or non-Latin letters, tokens — and therefore every score
//! and every novelty decision — are identical to the reference.
//!
//! # Score
//! [`rouge_l_f1`] is `rouge_score`'s `_score_lcs(target, prediction).fmeasure`:
//! `p = lcs/len(prediction)`, `r = lcs/len(target)`, `f = 2pr/(p+r)`, computed with the
//! same floating-point operations in the same order, so values agree bit for bit. It is
//! symmetric (it equals `2·lcs/(len(a)+len(b))`), and 0 when either side has no tokens.
//! The LCS length is computed with the bit-parallel algorithm of Allison–Dix / Hyyrö
//! (one pass over the second sequence, one machine word per 64 tokens of the first).

use std::collections::HashMap;

use crate::script::{script_of, Script};
use crate::util::FxBuild;

/// What a character contributes to a token.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `[a-z0-9]`: part of a rouge_score token.
    Ascii,
    /// A CJK character: a token of its own.
    Cjk,
    /// A letter of a non-Latin, non-CJK script: part of an extension word token.
    Other,
    /// Everything else separates tokens.
    Sep,
}

fn class(c: char) -> Class {
    if c.is_ascii() {
        return if c.is_ascii_lowercase() || c.is_ascii_digit() {
            Class::Ascii
        } else {
            Class::Sep
        };
    }
    match script_of(c) {
        Script::Han | Script::Kana | Script::Hangul => Class::Cjk,
        Script::Cyrillic | Script::Arabic | Script::OtherLetter => Class::Other,
        Script::Latin | Script::NotLetter => Class::Sep,
    }
}

/// Calls `emit` with each token of `text` (see the module docs for the rules).
pub(crate) fn for_each_token(text: &str, mut emit: impl FnMut(&str)) {
    let lowered;
    let s: &str = if text.is_ascii() {
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = text.to_ascii_lowercase();
            &lowered
        } else {
            text
        }
    } else {
        lowered = text.to_lowercase();
        &lowered
    };
    let mut start = 0usize;
    let mut run = Class::Sep;
    for (i, c) in s.char_indices() {
        let k = class(c);
        if k != run || k == Class::Cjk {
            if run == Class::Ascii || run == Class::Other {
                emit(&s[start..i]);
            }
            start = i;
            run = k;
        }
        if k == Class::Cjk {
            emit(&s[i..i + c.len_utf8()]);
            run = Class::Sep;
        }
    }
    if run == Class::Ascii || run == Class::Other {
        emit(&s[start..]);
    }
}

/// Tokens of `text` as ROUGE compares them: `rouge_score`'s tokens for English, one
/// token per CJK character, letter runs for other non-Latin scripts (module docs).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for_each_token(text, |t| out.push(t.to_string()));
    out
}

/// `rouge_score`'s F-measure for an LCS of length `lcs` between a target of `m` tokens
/// and a prediction of `n` tokens, with the reference's operations and order.
#[inline]
pub(crate) fn f_measure(lcs: usize, m: usize, n: usize) -> f64 {
    if m == 0 || n == 0 {
        return 0.0;
    }
    let l = lcs as f64;
    let p = l / n as f64;
    let r = l / m as f64;
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

/// ROUGE-L F1 between two texts (`a` plays rouge_score's target, `b` its prediction;
/// the value is the same either way). In `[0, 1]`; 1 for texts with equal token
/// sequences, 0 when either has no tokens or they share none.
pub fn rouge_l_f1(a: &str, b: &str) -> f64 {
    let mut ids: HashMap<String, u32, FxBuild> = HashMap::default();
    let mut intern = |t: &str| -> u32 {
        if let Some(&id) = ids.get(t) {
            return id;
        }
        let id = ids.len() as u32;
        ids.insert(t.to_string(), id);
        id
    };
    let mut ta = Vec::new();
    for_each_token(a, |t| ta.push(intern(t)));
    let mut tb = Vec::new();
    for_each_token(b, |t| tb.push(intern(t)));
    let lcs = lcs_len(&ta, &tb);
    f_measure(lcs, ta.len(), tb.len())
}

/// A sequence prepared for repeated bit-parallel LCS against other sequences: one bit
/// mask per distinct token marking where it occurs.
pub(crate) struct LcsPattern {
    len: usize,
    words: usize,
    slots: HashMap<u32, u32, FxBuild>,
    masks: Vec<u64>,
    last_mask: u64,
}

impl LcsPattern {
    /// Prepare `a`. Tokens equal to `u32::MAX` never match anything.
    pub(crate) fn new(a: &[u32]) -> Self {
        let len = a.len();
        let words = len.div_ceil(64).max(1);
        let mut slots: HashMap<u32, u32, FxBuild> = HashMap::default();
        let mut masks: Vec<u64> = Vec::new();
        for (i, &t) in a.iter().enumerate() {
            if t == u32::MAX {
                continue;
            }
            let next = slots.len() as u32;
            let s = *slots.entry(t).or_insert(next) as usize;
            if s * words >= masks.len() {
                masks.resize((s + 1) * words, 0);
            }
            masks[s * words + i / 64] |= 1u64 << (i % 64);
        }
        let rem = len % 64;
        let last_mask = if rem == 0 { !0u64 } else { (1u64 << rem) - 1 };
        LcsPattern {
            len,
            words,
            slots,
            masks,
            last_mask,
        }
    }

    /// Length of the prepared sequence.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// LCS length between the prepared sequence and `b` (Hyyrö 2004:
    /// `V ← (V + (V & M[c])) | (V & ¬M[c])`; the LCS is the number of zero bits).
    pub(crate) fn lcs(&self, b: &[u32]) -> usize {
        if self.len == 0 || b.is_empty() {
            return 0;
        }
        if self.words == 1 {
            let mut v = !0u64;
            for t in b {
                if let Some(&s) = self.slots.get(t) {
                    let m = self.masks[s as usize];
                    let u = v & m;
                    v = v.wrapping_add(u) | (v & !m);
                }
            }
            return (!v & self.last_mask).count_ones() as usize;
        }
        let w = self.words;
        let mut v = vec![!0u64; w];
        for t in b {
            if let Some(&s) = self.slots.get(t) {
                let m = &self.masks[s as usize * w..(s as usize + 1) * w];
                let mut carry = 0u64;
                for (vk, &mk) in v.iter_mut().zip(m) {
                    let x = *vk;
                    let u = x & mk;
                    let (s1, c1) = x.overflowing_add(u);
                    let (s2, c2) = s1.overflowing_add(carry);
                    carry = (c1 | c2) as u64;
                    *vk = s2 | (x & !mk);
                }
            }
        }
        let mut zeros = 0usize;
        for (k, vk) in v.iter().enumerate() {
            let mask = if k + 1 == w { self.last_mask } else { !0u64 };
            zeros += (!vk & mask).count_ones() as usize;
        }
        zeros
    }
}

/// LCS length of two token-id sequences.
pub(crate) fn lcs_len(a: &[u32], b: &[u32]) -> usize {
    // The pattern costs one mask per distinct token of its side; the scan costs one step
    // per token of the other side. Put the shorter sequence in the masks.
    if a.len() <= b.len() {
        LcsPattern::new(a).lcs(b)
    } else {
        LcsPattern::new(b).lcs(a)
    }
}

#[cfg(test)]
pub(crate) fn lcs_dp(a: &[u32], b: &[u32]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn english_tokens_follow_rouge_score() {
        assert_eq!(
            tokenize("Write a Haiku about 3 cats -- quickly!"),
            vec!["write", "a", "haiku", "about", "3", "cats", "quickly"]
        );
        assert_eq!(tokenize("don't stop"), vec!["don", "t", "stop"]);
        // Accented Latin letters separate tokens, as in rouge_score.
        assert_eq!(tokenize("Café au lait"), vec!["caf", "au", "lait"]);
        assert_eq!(tokenize("e-mail_address"), vec!["e", "mail", "address"]);
        assert!(tokenize("  ...  ").is_empty());
    }

    #[test]
    fn cjk_characters_are_tokens_and_mix_with_words() {
        assert_eq!(tokenize("写一首诗。"), vec!["写", "一", "首", "诗"]);
        assert_eq!(
            tokenize("用Python3写hello程序"),
            vec!["用", "python3", "写", "hello", "程", "序"]
        );
        assert_eq!(
            tokenize("カタカナとひらがな"),
            tokenize("カタカナとひらがな")
        );
        assert_eq!(tokenize("한국어 문장"), vec!["한", "국", "어", "문", "장"]);
        assert_eq!(
            tokenize("Привет, мир! hello"),
            vec!["привет", "мир", "hello"]
        );
        // A non-Latin letter run next to ASCII does not glue onto the ASCII token.
        assert_eq!(tokenize("abcжd"), vec!["abc", "ж", "d"]);
    }

    #[test]
    fn known_values() {
        assert_eq!(rouge_l_f1("the cat sat", "the cat sat"), 1.0);
        assert_eq!(rouge_l_f1("a b c d", "x y"), 0.0);
        assert_eq!(rouge_l_f1("", "x y"), 0.0);
        // lcs("a b c d", "a c d e") = 3 → 2·3/8
        assert!((rouge_l_f1("a b c d", "a c d e") - 0.75).abs() < 1e-12);
    }

    #[test]
    fn bit_parallel_handles_long_sequences() {
        let a: Vec<u32> = (0..300).map(|i| (i * 7 % 13) as u32).collect();
        let b: Vec<u32> = (0..200).map(|i| (i * 5 % 11) as u32).collect();
        assert_eq!(lcs_len(&a, &b), lcs_dp(&a, &b));
        assert_eq!(LcsPattern::new(&a).lcs(&b), lcs_dp(&a, &b));
        assert_eq!(LcsPattern::new(&b).lcs(&a), lcs_dp(&a, &b));
    }

    proptest! {
        #[test]
        fn lcs_matches_dynamic_programming(
            a in proptest::collection::vec(0u32..6, 0..150),
            b in proptest::collection::vec(0u32..6, 0..150),
        ) {
            let want = lcs_dp(&a, &b);
            prop_assert_eq!(LcsPattern::new(&a).lcs(&b), want);
            prop_assert_eq!(LcsPattern::new(&b).lcs(&a), want);
        }
    }
}
