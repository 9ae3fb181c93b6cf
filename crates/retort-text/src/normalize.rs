//! Normalisation for exact deduplication.
//!
//! Two texts are exact duplicates when [`normalize`] maps them to the same string:
//! Unicode NFKC (full-width `ＡＢＣ１２３` → `ABC123`, ligatures, compatibility forms),
//! then case folding, then every run of whitespace collapsed to one space with the ends
//! trimmed. Case folding is Unicode lower-casing plus the two full-folding differences
//! that matter in practice (`ß` → `ss`, final `ς` → `σ`), so `STRASSE`/`straße` and
//! Greek word endings compare equal. NFKC runs again after folding because lower-casing
//! can produce decomposable sequences.

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

/// The normalised form of `text` (see the module docs).
pub fn normalize(text: &str) -> String {
    let nfkc: String = text.nfkc().collect();
    let mut folded = String::with_capacity(nfkc.len());
    for c in nfkc.chars() {
        match c {
            'ß' | 'ẞ' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            _ => folded.extend(c.to_lowercase()),
        }
    }
    let refolded: String = folded.nfkc().collect();
    let mut out = String::with_capacity(refolded.len());
    for w in refolded.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// A 128-bit key of the normalised text (the first 16 bytes of its SHA-256), for exact
/// dedup without keeping the strings. Stable across runs, platforms and versions.
pub fn exact_key(text: &str) -> u128 {
    let digest = Sha256::digest(normalize(text).as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_width_and_whitespace_variants_collide() {
        let variants = [
            "Write a poem about the sea.",
            "  write a POEM   about\tthe sea. ",
            "Ｗｒｉｔｅ ａ ｐｏｅｍ ａｂｏｕｔ ｔｈｅ ｓｅａ．",
            "WRITE A POEM\nABOUT THE SEA.",
            "write\u{00A0}a poem about the\u{3000}sea.",
        ];
        let k0 = exact_key(variants[0]);
        for v in &variants {
            assert_eq!(normalize(v), "write a poem about the sea.", "{v:?}");
            assert_eq!(exact_key(v), k0);
        }
        assert_ne!(
            exact_key("write a poem about the sea"),
            k0,
            "punctuation matters"
        );
        assert_eq!(normalize("STRASSE"), normalize("straße"));
        assert_eq!(normalize("写一首诗，"), "写一首诗,");
        assert_eq!(normalize("ｶﾀｶﾅ"), "カタカナ");
    }
}
