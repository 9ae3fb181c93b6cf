//! k-means: k-means++ seeding, rayon-parallel assignment, full-batch (Lloyd) or mini-batch
//! updates, and centroid-nearest representatives.
//!
//! Assignment is the cost centre (`n × k × dim` multiply-adds per pass), so it runs through
//! the tiled dot kernel: squared distance is `‖x‖² + ‖c‖² − 2·x·c`, and the `‖x‖²` term does
//! not change which centroid wins, so only dots and centroid norms are needed.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::kernel;

/// k-means configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Number of clusters (clamped to the number of rows).
    pub k: usize,
    /// Lloyd: maximum full passes (stops earlier when no row changes cluster).
    /// Mini-batch: number of batches.
    pub max_iter: usize,
    /// Seed for initialisation and batch sampling; same seed, same result.
    pub seed: u64,
    /// `Some(b)`: mini-batch k-means (Sculley 2010) with `b` rows per batch, then one full
    /// assignment pass. `None`: full-batch Lloyd iterations.
    pub mini_batch: Option<usize>,
}

/// Outcome of [`KMeans::fit`].
#[derive(Debug, Clone)]
pub struct KMeansResult {
    /// Row-major `k × dim` centroids.
    pub centroids: Vec<f32>,
    /// Cluster of each row.
    pub assignments: Vec<u32>,
    /// Sum of squared Euclidean distances from each row to its centroid.
    pub inertia: f64,
}

impl KMeansResult {
    /// Number of clusters.
    pub fn k(&self, dim: usize) -> usize {
        self.centroids.len() / dim
    }

    /// Rows per cluster.
    pub fn sizes(&self, dim: usize) -> Vec<usize> {
        let mut s = vec![0usize; self.k(dim)];
        for &a in &self.assignments {
            s[a as usize] += 1;
        }
        s
    }
}

/// Rows beyond which [`KMeans::auto`] switches to mini-batch.
const MINI_BATCH_ABOVE: usize = 50_000;

/// Cap on rows used for k-means++ seeding: seeding is `k` sequential passes, so on large `n`
/// it runs on a sample (≥ 20 rows per cluster is plenty to place initial centres).
fn seeding_sample(n: usize, k: usize) -> usize {
    n.min((20 * k).max(10_000))
}

/// The rule used to pick `k` when the user does not: `k = round(√(n/2))`, clamped to
/// `[2, 1000]` (and to `n`).
///
/// √(n/2) is the classic rule of thumb; it gives 7 clusters for 100 rows, 71 for 10k,
/// 316 for 200k and the 1000 cap from 2M rows. The cap keeps a cluster report readable and
/// the clustering pass cheap; beyond it clusters stop being something a person inspects.
pub fn choose_k(n: usize) -> usize {
    if n < 2 {
        return n;
    }
    (((n as f64) / 2.0).sqrt().round() as usize)
        .clamp(2, 1000)
        .min(n)
}

impl KMeans {
    /// Sensible settings for `n` rows: Lloyd with up to 25 passes for small `n`; for more
    /// than 50k rows, mini-batch with 4,096-row batches (enough batches to see each
    /// centroid ~100 times) followed by a full assignment pass.
    pub fn auto(n: usize, k: usize, seed: u64) -> Self {
        if n > MINI_BATCH_ABOVE {
            let batch = 4096;
            KMeans {
                k,
                max_iter: (100 * k / batch).clamp(50, 300),
                seed,
                mini_batch: Some(batch),
            }
        } else {
            KMeans {
                k,
                max_iter: 25,
                seed,
                mini_batch: None,
            }
        }
    }

    /// Clusters the `n × dim` row-major `vectors`.
    ///
    /// # Panics
    /// If `dim == 0`, `vectors` is not a whole number of rows, there are no rows, `k == 0`
    /// or `n > u32::MAX`.
    pub fn fit(&self, vectors: &[f32], dim: usize) -> KMeansResult {
        assert!(
            dim > 0 && vectors.len().is_multiple_of(dim),
            "vectors is not n × dim"
        );
        let n = vectors.len() / dim;
        assert!(n > 0, "k-means of zero rows");
        assert!(self.k > 0, "k must be positive");
        assert!(n <= u32::MAX as usize, "n exceeds u32 indices");
        let k = self.k.min(n);
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);

        let sample = sample_rows(&mut rng, n, seeding_sample(n, k));
        let mut centroids = kmeans_pp(vectors, dim, &sample, k, &mut rng);

        match self.mini_batch {
            Some(b) => {
                let b = b.clamp(1, n);
                let mut counts = vec![0u64; k];
                for _ in 0..self.max_iter {
                    let batch = sample_rows(&mut rng, n, b);
                    let rows = gather(vectors, dim, &batch);
                    let (assign, _) = assign(&rows, &centroids, dim);
                    // Per-centre learning rate 1/count: each centre is the running mean of
                    // every row ever assigned to it, which converges as batches accumulate.
                    for (r, &c) in assign.iter().enumerate() {
                        let c = c as usize;
                        counts[c] += 1;
                        let eta = 1.0 / counts[c] as f32;
                        let x = &rows[r * dim..(r + 1) * dim];
                        for (m, v) in centroids[c * dim..(c + 1) * dim].iter_mut().zip(x) {
                            *m += eta * (v - *m);
                        }
                    }
                }
                let (mut assignments, mut inertia) = assign(vectors, &centroids, dim);
                // Mini-batch can strand a centre nobody is nearest to. One Lloyd step
                // re-seeds it on a row and lets it take its share; the report should not
                // show a cluster of zero records.
                let mut sizes = vec![0usize; k];
                assignments.iter().for_each(|&a| sizes[a as usize] += 1);
                if sizes.contains(&0) {
                    centroids = update(vectors, dim, &assignments, &centroids, &mut rng);
                    (assignments, inertia) = assign(vectors, &centroids, dim);
                }
                KMeansResult {
                    centroids,
                    assignments,
                    inertia,
                }
            }
            None => {
                let (mut assignments, mut inertia) = assign(vectors, &centroids, dim);
                for _ in 0..self.max_iter {
                    centroids = update(vectors, dim, &assignments, &centroids, &mut rng);
                    let (next, next_inertia) = assign(vectors, &centroids, dim);
                    let changed = next != assignments;
                    assignments = next;
                    inertia = next_inertia;
                    if !changed {
                        break;
                    }
                }
                KMeansResult {
                    centroids,
                    assignments,
                    inertia,
                }
            }
        }
    }
}

/// Up to `per_cluster` rows per cluster, nearest to their centroid first.
///
/// These are what a person reads to understand a cluster (and what a teacher labels).
/// Ties go to the lower row index.
pub fn representatives(
    vectors: &[f32],
    dim: usize,
    result: &KMeansResult,
    per_cluster: usize,
) -> Vec<Vec<u32>> {
    let k = result.k(dim);
    let mut members: Vec<Vec<(f32, u32)>> = vec![Vec::new(); k];
    for (i, &c) in result.assignments.iter().enumerate() {
        let x = &vectors[i * dim..(i + 1) * dim];
        let cen = &result.centroids[c as usize * dim..(c as usize + 1) * dim];
        let d2: f32 = x.iter().zip(cen).map(|(a, b)| (a - b) * (a - b)).sum();
        members[c as usize].push((d2, i as u32));
    }
    members
        .into_par_iter()
        .map(|mut m| {
            m.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            m.into_iter().take(per_cluster).map(|(_, i)| i).collect()
        })
        .collect()
}

/// Rows handed to the dot kernel per parallel task.
const ASSIGN_BLOCK: usize = 256;

/// Nearest centroid of every row and the total squared distance.
pub(crate) fn assign(vectors: &[f32], centroids: &[f32], dim: usize) -> (Vec<u32>, f64) {
    let k = centroids.len() / dim;
    let half_norms: Vec<f32> = centroids
        .chunks_exact(dim)
        .map(|c| 0.5 * kernel::dot(c, c))
        .collect();
    let parts: Vec<(Vec<u32>, f64)> = vectors
        .par_chunks(ASSIGN_BLOCK * dim)
        .map(|block| {
            let rows = block.len() / dim;
            let mut d = vec![0f32; rows * k];
            kernel::dots(block, centroids, dim, &mut d);
            let mut out = Vec::with_capacity(rows);
            let mut inertia = 0f64;
            for r in 0..rows {
                // argmax of x·c − ‖c‖²/2 is argmin of ‖x − c‖².
                let drow = &d[r * k..(r + 1) * k];
                let (mut best, mut best_s) = (0usize, f32::NEG_INFINITY);
                for (c, (&x, &h)) in drow.iter().zip(&half_norms).enumerate() {
                    let s = x - h;
                    if s > best_s {
                        best_s = s;
                        best = c;
                    }
                }
                let x = &block[r * dim..(r + 1) * dim];
                let xx = kernel::dot(x, x);
                inertia += (xx - 2.0 * best_s).max(0.0) as f64;
                out.push(best as u32);
            }
            (out, inertia)
        })
        .collect();
    let mut assignments = Vec::with_capacity(vectors.len() / dim);
    let mut inertia = 0f64;
    for (a, i) in parts {
        assignments.extend(a);
        inertia += i;
    }
    (assignments, inertia)
}

/// Means of the assigned rows; an emptied cluster is re-seeded on a random row so `k` stays
/// the number the caller asked for.
fn update(
    vectors: &[f32],
    dim: usize,
    assignments: &[u32],
    old: &[f32],
    rng: &mut impl Rng,
) -> Vec<f32> {
    let k = old.len() / dim;
    let (sums, counts) = vectors
        .par_chunks(ASSIGN_BLOCK * dim)
        .zip(assignments.par_chunks(ASSIGN_BLOCK))
        .fold(
            || (vec![0f64; k * dim], vec![0u64; k]),
            |(mut s, mut c), (block, asg)| {
                for (x, &a) in block.chunks_exact(dim).zip(asg) {
                    let a = a as usize;
                    c[a] += 1;
                    for (acc, v) in s[a * dim..(a + 1) * dim].iter_mut().zip(x) {
                        *acc += *v as f64;
                    }
                }
                (s, c)
            },
        )
        .reduce(
            || (vec![0f64; k * dim], vec![0u64; k]),
            |(mut s1, mut c1), (s2, c2)| {
                s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
                c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
                (s1, c1)
            },
        );
    let n = vectors.len() / dim;
    let mut out = vec![0f32; k * dim];
    for c in 0..k {
        let dst = &mut out[c * dim..(c + 1) * dim];
        if counts[c] == 0 {
            let r = rng.random_range(0..n);
            dst.copy_from_slice(&vectors[r * dim..(r + 1) * dim]);
        } else {
            let inv = 1.0 / counts[c] as f64;
            for (o, s) in dst.iter_mut().zip(&sums[c * dim..(c + 1) * dim]) {
                *o = (s * inv) as f32;
            }
        }
    }
    out
}

/// `m` distinct row indices chosen uniformly (all rows, in order, when `m >= n`).
pub(crate) fn sample_rows(rng: &mut impl Rng, n: usize, m: usize) -> Vec<u32> {
    if m >= n {
        return (0..n as u32).collect();
    }
    if m * 4 > n {
        let mut idx: Vec<u32> = (0..n as u32).collect();
        for t in 0..m {
            let j = rng.random_range(t..n);
            idx.swap(t, j);
        }
        idx.truncate(m);
        idx.sort_unstable();
        return idx;
    }
    let mut seen = std::collections::HashSet::with_capacity(m);
    while seen.len() < m {
        seen.insert(rng.random_range(0..n as u32));
    }
    let mut idx: Vec<u32> = seen.into_iter().collect();
    idx.sort_unstable();
    idx
}

/// Copies the listed rows into one contiguous block, for cache-friendly kernel calls.
pub(crate) fn gather(vectors: &[f32], dim: usize, rows: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * dim);
    for &r in rows {
        out.extend_from_slice(&vectors[r as usize * dim..(r as usize + 1) * dim]);
    }
    out
}

/// k-means++ seeding (Arthur & Vassilvitskii 2007) over the sampled rows.
fn kmeans_pp(
    vectors: &[f32],
    dim: usize,
    sample: &[u32],
    k: usize,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let rows = gather(vectors, dim, sample);
    let m = sample.len();
    let mut centroids = Vec::with_capacity(k * dim);
    let first = rng.random_range(0..m);
    centroids.extend_from_slice(&rows[first * dim..(first + 1) * dim]);
    let sq = |x: &[f32], c: &[f32]| -> f32 {
        let d = kernel::dot(x, x) + kernel::dot(c, c) - 2.0 * kernel::dot(x, c);
        d.max(0.0)
    };
    let mut d2: Vec<f32> = rows
        .par_chunks(dim)
        .map(|x| sq(x, &centroids[..dim]))
        .collect();
    for _ in 1..k {
        let total: f64 = d2.iter().map(|&v| v as f64).sum();
        let pick = if total <= 0.0 {
            // Every sampled row already coincides with a centre: any row will do.
            rng.random_range(0..m)
        } else {
            let mut target = rng.random::<f64>() * total;
            let mut chosen = m - 1;
            for (i, &v) in d2.iter().enumerate() {
                target -= v as f64;
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        let c = rows[pick * dim..(pick + 1) * dim].to_vec();
        d2.par_iter_mut()
            .zip(rows.par_chunks(dim))
            .for_each(|(d, x)| *d = d.min(sq(x, &c)));
        centroids.extend_from_slice(&c);
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::clustered_vectors_labeled;

    /// Fraction of rows whose found cluster's majority true label is their own label.
    fn purity(found: &[u32], truth: &[u32], k: usize) -> f64 {
        let mut counts: Vec<std::collections::HashMap<u32, usize>> = vec![Default::default(); k];
        for (&f, &t) in found.iter().zip(truth) {
            *counts[f as usize].entry(t).or_default() += 1;
        }
        let majority: usize = counts
            .iter()
            .map(|m| m.values().max().copied().unwrap_or(0))
            .sum();
        majority as f64 / found.len() as f64
    }

    #[test]
    fn lloyd_recovers_planted_clusters() {
        let dim = 64;
        let d = clustered_vectors_labeled(3000, dim, 8, 0, 0.95, 11);
        let r = KMeans::auto(3000, 8, 1).fit(&d.vectors, dim);
        assert_eq!(r.assignments.len(), 3000);
        let p = purity(&r.assignments, &d.labels, 8);
        assert!(p > 0.95, "purity {p}");
        // And the reverse direction: each true cluster lands mostly in one found cluster,
        // so purity is not bought by splitting everything into fragments.
        let back = purity(&d.labels, &r.assignments, 8);
        assert!(back > 0.9, "inverse purity {back}");
    }

    #[test]
    fn mini_batch_recovers_planted_clusters_and_is_deterministic() {
        let dim = 48;
        let d = clustered_vectors_labeled(20_000, dim, 12, 0, 0.95, 5);
        let km = KMeans {
            k: 12,
            max_iter: 60,
            seed: 9,
            mini_batch: Some(1024),
        };
        let r = km.fit(&d.vectors, dim);
        let p = purity(&r.assignments, &d.labels, 12);
        assert!(p > 0.95, "purity {p}");
        let again = km.fit(&d.vectors, dim);
        assert_eq!(r.assignments, again.assignments);
        assert_eq!(r.sizes(dim).iter().sum::<usize>(), 20_000);
    }

    #[test]
    fn representatives_are_the_rows_nearest_their_centroid() {
        let dim = 16;
        let d = clustered_vectors_labeled(2000, dim, 5, 0, 0.95, 2);
        let r = KMeans::auto(2000, 5, 3).fit(&d.vectors, dim);
        let reps = representatives(&d.vectors, dim, &r, 3);
        assert_eq!(reps.len(), 5);
        for (c, rep) in reps.iter().enumerate() {
            assert_eq!(rep.len(), 3);
            let cen = &r.centroids[c * dim..(c + 1) * dim];
            let dist = |i: u32| -> f32 {
                let x = &d.vectors[i as usize * dim..(i as usize + 1) * dim];
                x.iter().zip(cen).map(|(a, b)| (a - b) * (a - b)).sum()
            };
            let worst_rep = rep.iter().map(|&i| dist(i)).fold(0f32, f32::max);
            for (i, &a) in r.assignments.iter().enumerate() {
                if a as usize == c && !rep.contains(&(i as u32)) {
                    assert!(dist(i as u32) >= worst_rep);
                }
            }
        }
    }

    #[test]
    fn choose_k_follows_the_documented_rule() {
        assert_eq!(choose_k(0), 0);
        assert_eq!(choose_k(1), 1);
        assert_eq!(choose_k(100), 7);
        assert_eq!(choose_k(200_000), 316);
        assert_eq!(choose_k(10_000_000), 1000);
    }
}
