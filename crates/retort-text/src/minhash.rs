//! MinHash signatures and LSH banding for near-duplicate detection.
//!
//! # Shingles
//! Text is normalised ([`crate::normalize::normalize`]: NFKC, case fold) and cut into
//! units: every CJK character is a unit, every other alphanumeric run is a word unit
//! (punctuation and spacing are ignored). When CJK characters are at least as many as
//! the other words, the text is CJK and its shingles are **character n-grams**
//! (`char_ngram`, default 5) over the units; otherwise they are **word n-grams**
//! (`word_ngram`, default 3). A text shorter than n units is one shingle. Each shingle is
//! hashed to 64 bits with a hash written in this crate (FNV-1a + SplitMix64), so
//! signatures are stable across platforms and Rust versions.
//!
//! # Signatures and banding
//! Permutation `i` is `h ↦ mix64(h ⊕ sᵢ)` with `sᵢ` drawn from the seed (SplitMix64
//! is a bijection, so each is a pseudo-random permutation of the 64-bit space); the
//! signature keeps the minimum per permutation, and the fraction of equal positions
//! estimates the Jaccard similarity of the shingle sets. [`near_duplicates`] splits the
//! signature into `bands` bands of `rows = num_perm / bands` values; texts equal on any
//! whole band are candidates (a pair with Jaccard `s` becomes a candidate with
//! probability `1 − (1 − s^rows)^bands`), and every candidate pair is then verified by
//! the **exact** Jaccard of its shingle sets, so reported pairs never fall below the
//! threshold (precision is exact; recall is governed by the banding).

use std::collections::HashMap;

use rayon::prelude::*;

use crate::normalize::normalize;
use crate::script::units;
use crate::util::{hash_bytes, mix64, FxBuild};

/// Seed used by the free function [`near_duplicates`].
pub const DEFAULT_SEED: u64 = 0x0005_EED0_F4E7_0471;

/// Builds MinHash signatures with a fixed set of permutations.
#[derive(Clone, Debug)]
pub struct MinHasher {
    seeds: Vec<u64>,
    word_ngram: usize,
    char_ngram: usize,
}

impl MinHasher {
    /// `num_perm` permutations drawn from `seed`; word 3-grams and CJK character 5-grams.
    pub fn new(num_perm: usize, seed: u64) -> Self {
        let mut state = seed;
        let seeds = (0..num_perm)
            .map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                mix64(state)
            })
            .collect();
        MinHasher {
            seeds,
            word_ngram: 3,
            char_ngram: 5,
        }
    }

    /// Use word n-grams of `n` (≥ 1) for spaced-script text.
    pub fn with_word_ngram(mut self, n: usize) -> Self {
        self.word_ngram = n.max(1);
        self
    }

    /// Use character n-grams of `n` (≥ 1) for CJK text.
    pub fn with_char_ngram(mut self, n: usize) -> Self {
        self.char_ngram = n.max(1);
        self
    }

    /// Number of permutations (signature length).
    pub fn num_perm(&self) -> usize {
        self.seeds.len()
    }

    /// The sorted, distinct shingle hashes of `text` (empty when it has no units).
    pub fn shingles(&self, text: &str) -> Vec<u64> {
        let (u, cjk) = units(&normalize(text));
        if u.is_empty() {
            return Vec::new();
        }
        let n = if cjk >= u.len() - cjk {
            self.char_ngram
        } else {
            self.word_ngram
        };
        let hash = |w: &[String]| {
            let mut buf = Vec::with_capacity(w.iter().map(|s| s.len() + 1).sum());
            for s in w {
                buf.extend_from_slice(s.as_bytes());
                buf.push(0x1f);
            }
            hash_bytes(&buf)
        };
        let mut out: Vec<u64> = if u.len() <= n {
            vec![hash(&u)]
        } else {
            u.windows(n).map(hash).collect()
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Signature of a shingle set; all `u64::MAX` for an empty set.
    pub fn signature_of_shingles(&self, shingles: &[u64]) -> Vec<u64> {
        let mut sig = vec![u64::MAX; self.seeds.len()];
        for &h in shingles {
            for (s, &seed) in sig.iter_mut().zip(&self.seeds) {
                let v = mix64(h ^ seed);
                if v < *s {
                    *s = v;
                }
            }
        }
        sig
    }

    /// MinHash signature of `text` (`num_perm` values).
    pub fn signature(&self, text: &str) -> Vec<u64> {
        self.signature_of_shingles(&self.shingles(text))
    }

    /// Near-duplicate pairs `(i, j, jaccard)` with `i < j`, sorted, whose exact shingle
    /// Jaccard is at least `threshold`, found by LSH banding (module docs). Texts without
    /// any unit are never reported (exact dedup handles them).
    ///
    /// # Panics
    /// When `bands` is 0 or greater than `num_perm`.
    pub fn near_duplicates(
        &self,
        texts: &[String],
        bands: usize,
        threshold: f64,
    ) -> Vec<(usize, usize, f64)> {
        assert!(
            bands >= 1 && bands <= self.num_perm(),
            "bands must be between 1 and num_perm ({}), got {bands}",
            self.num_perm()
        );
        let rows = self.num_perm() / bands;
        let shingles: Vec<Vec<u64>> = texts.par_iter().map(|t| self.shingles(t)).collect();
        let sigs: Vec<Vec<u64>> = shingles
            .par_iter()
            .map(|s| self.signature_of_shingles(s))
            .collect();
        let mut pairs: Vec<(u32, u32)> = (0..bands)
            .into_par_iter()
            .flat_map_iter(|b| {
                let mut buckets: HashMap<u64, Vec<u32>, FxBuild> = HashMap::default();
                for (i, sig) in sigs.iter().enumerate() {
                    if shingles[i].is_empty() {
                        continue;
                    }
                    let mut h = b as u64;
                    for &v in &sig[b * rows..(b + 1) * rows] {
                        h = mix64(h ^ v);
                    }
                    buckets.entry(h).or_default().push(i as u32);
                }
                let mut out = Vec::new();
                for members in buckets.into_values() {
                    for x in 0..members.len() {
                        for y in x + 1..members.len() {
                            out.push((members[x], members[y]));
                        }
                    }
                }
                out.into_iter()
            })
            .collect();
        pairs.par_sort_unstable();
        pairs.dedup();
        pairs
            .into_par_iter()
            .filter_map(|(i, j)| {
                let s = jaccard(&shingles[i as usize], &shingles[j as usize]);
                (s >= threshold).then_some((i as usize, j as usize, s))
            })
            .collect()
    }
}

/// Exact Jaccard similarity of two sorted, distinct hash sets (0 when both are empty).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// Jaccard estimated from two signatures: the fraction of equal positions.
pub fn estimate_jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// [`MinHasher::near_duplicates`] with `MinHasher::new(num_perm, DEFAULT_SEED)`.
///
/// # Panics
/// When `bands` is 0 or greater than `num_perm`.
pub fn near_duplicates(
    texts: &[String],
    num_perm: usize,
    bands: usize,
    threshold: f64,
) -> Vec<(usize, usize, f64)> {
    MinHasher::new(num_perm, DEFAULT_SEED).near_duplicates(texts, bands, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_estimates_jaccard() {
        let h = MinHasher::new(256, 7);
        let a = "the quick brown fox jumps over the lazy dog near the quiet river bank today";
        let b = "the quick brown fox jumps over the lazy cat near the quiet river bank today";
        let exact = jaccard(&h.shingles(a), &h.shingles(b));
        let est = estimate_jaccard(&h.signature(a), &h.signature(b));
        assert!((exact - est).abs() < 0.12, "exact {exact} est {est}");
        assert_eq!(h.signature(a), h.signature(&a.to_uppercase()));
    }

    #[test]
    fn cjk_uses_character_ngrams() {
        let h = MinHasher::new(64, 1);
        // 6 CJK characters → 2 character 5-grams.
        assert_eq!(h.shingles("今天天气很好").len(), 2);
        assert_eq!(h.with_char_ngram(2).shingles("今天天气很好").len(), 5);
        assert!(MinHasher::new(8, 1).shingles(" ,. ").is_empty());
    }
}
