//! Seeded generator of clustered unit vectors with planted near-duplicate pairs.
//!
//! Tests and the benchmark need data shaped like sentence embeddings: uneven topic clusters,
//! an anisotropic spectrum (a few directions carry most of the variance, as in real
//! embedding models), distinct texts well below any dedup threshold, and a known set of
//! near-duplicates. The near-duplicate offset is drawn from the same anisotropic
//! distribution as the data, so it points along the directions partitions are cut on —
//! the hard case for partition-based search, not an easy isotropic wobble.
//!
//! Output depends only on the arguments: rows are generated in fixed-size chunks each with
//! its own seeded stream, so the thread count does not change a single bit.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Generated data with the ground truth the generator planted.
#[derive(Debug, Clone)]
pub struct ClusteredData {
    /// Row-major, `n × dim`, every row L2-normalised.
    pub vectors: Vec<f32>,
    /// Planted near-duplicate pairs `(i, j)` with `i < j`, sorted.
    pub pairs: Vec<(u32, u32)>,
    /// The generating cluster of each row (a planted duplicate inherits its source's cluster).
    pub labels: Vec<u32>,
}

/// Rows per independently seeded chunk; fixed so output does not depend on parallelism.
const CHUNK: usize = 1024;

/// Decay of the per-dimension scale, `(j + 1)^-ALPHA`: enough anisotropy to look like an
/// embedding model, not so much that distinct texts collide above 0.9.
const ALPHA: f32 = 0.25;

/// Clustered, L2-normalised vectors with `planted_pairs` near-duplicate pairs whose cosine is
/// drawn uniformly from `[min_cos + 0.001, 0.995]`.
///
/// The 0.001 keeps planted pairs clear of a threshold set exactly at `min_cos`, so rounding
/// differences between search methods cannot decide whether a planted pair counts. Distinct
/// rows sit at cosine about 0.4–0.6 within a cluster and near 0 across clusters, almost never
/// above 0.85.
///
/// # Panics
/// If `dim == 0`, `n_clusters == 0`, `2 * planted_pairs > n`, `n > u32::MAX` or
/// `min_cos` is not in `[0, 0.99)`.
pub fn clustered_vectors(
    n: usize,
    dim: usize,
    n_clusters: usize,
    planted_pairs: usize,
    min_cos: f32,
    seed: u64,
) -> (Vec<f32>, Vec<(u32, u32)>) {
    let d = clustered_vectors_labeled(n, dim, n_clusters, planted_pairs, min_cos, seed);
    (d.vectors, d.pairs)
}

/// [`clustered_vectors`] plus each row's generating cluster, for scoring clustering.
///
/// # Panics
/// As [`clustered_vectors`].
pub fn clustered_vectors_labeled(
    n: usize,
    dim: usize,
    n_clusters: usize,
    planted_pairs: usize,
    min_cos: f32,
    seed: u64,
) -> ClusteredData {
    assert!(
        dim > 0 && n_clusters > 0,
        "dim and n_clusters must be positive"
    );
    assert!(2 * planted_pairs <= n, "2 × planted_pairs exceeds n");
    assert!(n <= u32::MAX as usize, "n exceeds u32 indices");
    assert!(
        (0.0..0.99).contains(&min_cos),
        "min_cos must be in [0, 0.99)"
    );

    let scale: Vec<f32> = (0..dim).map(|j| (j as f32 + 1.0).powf(-ALPHA)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Cluster centres and uneven (log-normal) cluster weights, like topics in a real corpus.
    let mut centres = vec![0f32; n_clusters * dim];
    for c in centres.chunks_exact_mut(dim) {
        anisotropic(&mut rng, &scale, c);
    }
    let weights: Vec<f64> = (0..n_clusters)
        .map(|_| (0.7 * normal(&mut rng) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let cdf: Vec<f64> = weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        })
        .collect();

    let mut vectors = vec![0f32; n * dim];
    let mut labels = vec![0u32; n];
    vectors
        .par_chunks_mut(CHUNK * dim)
        .zip(labels.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(ci, (rows, labs))| {
            let mut rng = ChaCha8Rng::seed_from_u64(
                seed ^ 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(ci as u64 + 1),
            );
            let mut noise = vec![0f32; dim];
            for (row, lab) in rows.chunks_exact_mut(dim).zip(labs.iter_mut()) {
                let u: f64 = rng.random();
                let c = cdf.partition_point(|&p| p < u).min(n_clusters - 1);
                *lab = c as u32;
                let centre = &centres[c * dim..(c + 1) * dim];
                anisotropic(&mut rng, &scale, &mut noise);
                // cos(row, centre) in [0.6, 0.8]: same-topic rows then meet at ≈0.4–0.65.
                let cos_c: f32 = rng.random_range(0.6..0.8);
                blend(centre, &mut noise, cos_c, row);
            }
        });

    // Planted pairs: distinct rows, the second overwritten by a perturbed copy of the first.
    let mut idx: Vec<u32> = (0..n as u32).collect();
    for t in 0..2 * planted_pairs {
        let j = rng.random_range(t..n);
        idx.swap(t, j);
    }
    let mut noise = vec![0f32; dim];
    let mut copy = vec![0f32; dim];
    let mut pairs = Vec::with_capacity(planted_pairs);
    for t in 0..planted_pairs {
        let (src, dst) = (idx[2 * t] as usize, idx[2 * t + 1] as usize);
        anisotropic(&mut rng, &scale, &mut noise);
        let cos: f32 = rng.random_range(min_cos + 0.001..0.995);
        let source = vectors[src * dim..(src + 1) * dim].to_vec();
        blend(&source, &mut noise, cos, &mut copy);
        vectors[dst * dim..(dst + 1) * dim].copy_from_slice(&copy);
        labels[dst] = labels[src];
        pairs.push((src.min(dst) as u32, src.max(dst) as u32));
    }
    pairs.sort_unstable();
    ClusteredData {
        vectors,
        pairs,
        labels,
    }
}

/// Standard normal by Box–Muller (rand 0.9 ships no normal distribution without rand_distr).
pub(crate) fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::MIN_POSITIVE..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// A unit vector drawn from a Gaussian with per-dimension scale `scale`.
fn anisotropic(rng: &mut impl Rng, scale: &[f32], out: &mut [f32]) {
    for (o, s) in out.iter_mut().zip(scale) {
        *o = normal(rng) * s;
    }
    normalise(out);
}

/// `out = cos·base + sin·(dir ⟂ base)`, so `cos(out, base) = cos` exactly (up to rounding)
/// for a unit `base`. `dir` is clobbered.
fn blend(base: &[f32], dir: &mut [f32], cos: f32, out: &mut [f32]) {
    let along: f32 = base.iter().zip(dir.iter()).map(|(a, b)| a * b).sum();
    for (d, b) in dir.iter_mut().zip(base) {
        *d -= along * b;
    }
    normalise(dir);
    let sin = (1.0 - cos * cos).max(0.0).sqrt();
    for ((o, b), d) in out.iter_mut().zip(base).zip(dir.iter()) {
        *o = cos * b + sin * d;
    }
    normalise(out);
}

/// Scales `v` to unit length (left alone if zero, which the generator never produces).
pub(crate) fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::dot;

    #[test]
    fn same_seed_same_data_and_planted_pairs_are_near_duplicates() {
        let (dim, n) = (64, 3000);
        let (v1, p1) = clustered_vectors(n, dim, 20, 50, 0.95, 7);
        let (v2, p2) = clustered_vectors(n, dim, 20, 50, 0.95, 7);
        assert_eq!(v1, v2);
        assert_eq!(p1, p2);
        let (v3, _) = clustered_vectors(n, dim, 20, 50, 0.95, 8);
        assert_ne!(v1, v3);
        assert_eq!(p1.len(), 50);
        for &(a, b) in &p1 {
            assert!(a < b);
            let c = dot(
                &v1[a as usize * dim..][..dim],
                &v1[b as usize * dim..][..dim],
            );
            assert!((0.95..=1.0).contains(&c), "planted pair cosine {c}");
        }
        for row in v1.chunks_exact(dim) {
            let norm = dot(row, row);
            assert!((norm - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn distinct_rows_stay_well_below_the_dedup_threshold() {
        let dim = 384;
        let d = clustered_vectors_labeled(4000, dim, 10, 40, 0.95, 3);
        let planted: std::collections::HashSet<(u32, u32)> = d.pairs.iter().copied().collect();
        let (mut above_08, mut above_09, mut total) = (0usize, 0usize, 0usize);
        for i in 0..4000usize {
            for j in (i + 1)..4000 {
                if planted.contains(&(i as u32, j as u32)) {
                    continue;
                }
                let c = dot(&d.vectors[i * dim..][..dim], &d.vectors[j * dim..][..dim]);
                total += 1;
                above_08 += (c > 0.8) as usize;
                above_09 += (c > 0.9) as usize;
            }
        }
        assert_eq!(above_09, 0, "distinct rows above 0.9");
        assert!(
            (above_08 as f64) < 1e-4 * total as f64,
            "{above_08} of {total} above 0.8"
        );
    }
}
