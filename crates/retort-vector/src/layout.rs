//! A neighbourhood-preserving 2-D map of embeddings (UMAP-style force layout).
//!
//! PCA keeps the two directions of largest variance; with dozens of topics in 384
//! dimensions that squashes most clusters on top of each other. This layout instead keeps
//! each record next to its nearest neighbours:
//! 1. exact k-nearest neighbours by cosine in the full dimension (k = [`NEIGHBOURS`], or
//!    √n for small sets), symmetrised. Blocked SIMD dot products make that a few seconds
//!    for the 25,000 points the layout takes. (A 48-d random sketch used to stand in for
//!    the vectors: its cosine noise, ±0.14, is larger than the gap between a real text's
//!    neighbours and unrelated texts in MiniLM space, 0.2–0.3 against 0.1, and the
//!    quickstart map came out as a random scatter.)
//! 2. UMAP's optimisation (McInnes et al. 2018) with the Student-t similarity `1/(1 + d²)`
//!    (UMAP's curve with `a = b = 1`, as in LargeVis; the fitted `b ≈ 0.9` would cost two
//!    `powf` per force and made the layout three times slower for no visible difference):
//!    starting from the PCA coordinates, neighbours attract, random pairs repel (negative
//!    sampling), with a linearly decaying step, for [`EPOCHS`] epochs.
//!
//! Deterministic for a given seed (one sequential optimiser with a seeded generator), so a
//! re-run draws the same picture.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Neighbours per point in the graph the layout preserves.
pub const NEIGHBOURS: usize = 12;
/// Optimisation epochs (each visits every edge once).
pub const EPOCHS: usize = 200;
/// Negative (repelling) samples per attracting edge visit.
const NEGATIVES: usize = 4;
/// Largest point count the layout takes; its neighbour search is quadratic. Callers fall
/// back to PCA above it.
pub const MAX_POINTS: usize = 25_000;

/// 2-D coordinates that keep every row near its nearest neighbours (cosine), or `None`
/// when there are more than [`MAX_POINTS`] rows (use [`crate::project::pca_2d`] then).
///
/// # Panics
/// If `dim == 0` or `vectors` is not a whole number of rows.
pub fn neighbour_map(vectors: &[f32], dim: usize, seed: u64) -> Option<Vec<[f32; 2]>> {
    assert!(
        dim > 0 && vectors.len().is_multiple_of(dim),
        "vectors is not n × dim"
    );
    let n = vectors.len() / dim;
    if n > MAX_POINTS {
        return None;
    }
    let init = crate::project::pca_2d(vectors, dim);
    if n < 6 {
        // Too few points for a neighbourhood graph: PCA already shows every relation.
        return Some(init);
    }
    let knn = nearest(vectors, dim, graph_k(n));
    Some(layout(init, &knn, seed))
}

/// Neighbours per point: a small set gets fewer (about √n); with 12 of 17 points linked
/// to each other the graph says "everything is near everything" and the map loses its
/// groups.
fn graph_k(n: usize) -> usize {
    NEIGHBOURS.min((n as f64).sqrt() as usize).max(2)
}

fn layout(init: Vec<[f32; 2]>, knn: &[Vec<u32>], seed: u64) -> Vec<[f32; 2]> {
    let edges = symmetric_edges(knn);
    optimise(init, &edges, knn.len(), seed)
}

/// Share of the graph's neighbours that are also among a point's nearest on the map,
/// over an evenly spaced sample of at most 2,000 points.
fn kept(map: &[[f32; 2]], knn: &[Vec<u32>]) -> f64 {
    let n = map.len();
    let step = n.div_ceil(2000).max(1);
    let (kept, total) = (0..n)
        .step_by(step)
        .collect::<Vec<_>>()
        .par_iter()
        .map(|&i| {
            let k = knn[i].len();
            let mut near: Vec<(f32, u32)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let (dx, dy) = (map[i][0] - map[j][0], map[i][1] - map[j][1]);
                    (dx * dx + dy * dy, j as u32)
                })
                .collect();
            if k == 0 || near.is_empty() {
                return (0, 0);
            }
            near.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
            let hits = near[..k].iter().filter(|(_, j)| knn[i].contains(j)).count();
            (hits, k)
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    kept as f64 / total.max(1) as f64
}

/// Which projection drew a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// [`neighbour_map`].
    Neighbour,
    /// [`crate::project::pca_2d`]: above [`MAX_POINTS`] rows, under 6, or where it keeps
    /// more neighbours than the layout.
    Pca,
}

impl Projection {
    /// Short name, as stored in the `cluster` step's `map_projection` label.
    pub fn name(self) -> &'static str {
        match self {
            Projection::Neighbour => "neighbour",
            Projection::Pca => "pca",
        }
    }

    /// Parses [`Projection::name`].
    pub fn from_name(name: &str) -> Option<Projection> {
        match name {
            "neighbour" => Some(Projection::Neighbour),
            "pca" => Some(Projection::Pca),
            _ => None,
        }
    }

    /// One sentence for a reader of the map.
    pub fn describe(self) -> &'static str {
        match self {
            Projection::Neighbour => {
                "Coordinates keep each record next to its nearest neighbours by embedding \
                 (a UMAP-style layout): nearby points are similar texts; distances between \
                 far-apart groups mean little."
            }
            Projection::Pca => {
                "Coordinates are the first two principal components of the embeddings \
                 (they kept more of each record's nearest neighbours than the neighbour \
                 layout, or there are too many records for it), so separate topics may overlap."
            }
        }
    }
}

/// The best map this module can draw for `vectors`: the neighbour layout or PCA,
/// whichever keeps more of each point's nearest neighbours (PCA above [`MAX_POINTS`]
/// rows). On many distinct topics the layout wins by far; on a handful of weakly related
/// texts (a quickstart's 17 tasks, where a text's nearest neighbour is at cosine 0.2–0.3)
/// PCA keeps more, and a force layout would only scatter them.
pub fn map_2d(vectors: &[f32], dim: usize, seed: u64) -> (Vec<[f32; 2]>, Projection) {
    let n = vectors.len() / dim.max(1);
    let pca = crate::project::pca_2d(vectors, dim);
    if !(6..=MAX_POINTS).contains(&n) {
        return (pca, Projection::Pca);
    }
    let knn = nearest(vectors, dim, graph_k(n));
    let ours = layout(pca.clone(), &knn, seed);
    if kept(&ours, &knn) >= kept(&pca, &knn) {
        (ours, Projection::Neighbour)
    } else {
        (pca, Projection::Pca)
    }
}

/// Rows per block of the neighbour search: 128 × 25,000 dot products is 12.8 MB of
/// output per task.
const KNN_BLOCK: usize = 128;

/// Exact k nearest neighbours by cosine of every row, self excluded.
fn nearest(vectors: &[f32], dim: usize, k: usize) -> Vec<Vec<u32>> {
    let n = vectors.len() / dim;
    let k = k.min(n.saturating_sub(1));
    // Unit rows, so a dot product is a cosine: embeddings from an endpoint need not be
    // normalised, and the report draws whatever it is given.
    let unit: Vec<f32> = vectors
        .par_chunks_exact(dim)
        .flat_map_iter(|x| {
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            let s = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            x.iter().map(move |v| v * s)
        })
        .collect();
    let vectors = &unit[..];
    vectors
        .par_chunks(KNN_BLOCK * dim)
        .enumerate()
        .flat_map_iter(|(b, block)| {
            let rows = block.len() / dim;
            let mut dots = vec![0f32; rows * n];
            crate::kernel::dots(block, vectors, dim, &mut dots);
            (0..rows)
                .map(|r| {
                    let i = b * KNN_BLOCK + r;
                    // Kept sorted best-first; k is small, so insertion beats a heap.
                    let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
                    for (j, &d) in dots[r * n..(r + 1) * n].iter().enumerate() {
                        if j == i || (best.len() == k && d <= best[k - 1].0) {
                            continue;
                        }
                        let at = best.partition_point(|(e, _)| *e >= d);
                        best.insert(at, (d, j as u32));
                        best.truncate(k);
                    }
                    best.into_iter().map(|(_, j)| j).collect::<Vec<u32>>()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Undirected edge list of the k-NN graph, each edge once, in a fixed order.
fn symmetric_edges(knn: &[Vec<u32>]) -> Vec<(u32, u32)> {
    let mut edges: Vec<(u32, u32)> = knn
        .iter()
        .enumerate()
        .flat_map(|(i, ns)| {
            let i = i as u32;
            ns.iter().map(move |&j| (i.min(j), i.max(j)))
        })
        .collect();
    edges.sort_unstable();
    edges.dedup();
    edges
}

/// UMAP's stochastic layout: attraction along edges, repulsion from random points.
fn optimise(init: Vec<[f32; 2]>, edges: &[(u32, u32)], n: usize, seed: u64) -> Vec<[f32; 2]> {
    let mut y = scale_to(init, 10.0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1a70_u64);
    let clip = |g: f32| g.clamp(-4.0, 4.0);
    for epoch in 0..EPOCHS {
        let alpha = 1.0 - epoch as f32 / EPOCHS as f32;
        for &(i, j) in edges {
            let (i, j) = (i as usize, j as usize);
            let dx = y[i][0] - y[j][0];
            let dy = y[i][1] - y[j][1];
            let d2 = dx * dx + dy * dy;
            if d2 > 0.0 {
                let c = -2.0 / (1.0 + d2);
                let (gx, gy) = (clip(c * dx) * alpha, clip(c * dy) * alpha);
                y[i][0] += gx;
                y[i][1] += gy;
                y[j][0] -= gx;
                y[j][1] -= gy;
            }
            for _ in 0..NEGATIVES {
                let k = rng.random_range(0..n);
                if k == i {
                    continue;
                }
                let dx = y[i][0] - y[k][0];
                let dy = y[i][1] - y[k][1];
                let d2 = dx * dx + dy * dy;
                let c = 2.0 / ((0.001 + d2) * (1.0 + d2));
                y[i][0] += clip(c * dx) * alpha;
                y[i][1] += clip(c * dy) * alpha;
            }
        }
    }
    y
}

/// Centres the points and scales them so the larger coordinate spread is `half_width`.
fn scale_to(mut p: Vec<[f32; 2]>, half_width: f32) -> Vec<[f32; 2]> {
    let n = p.len().max(1) as f32;
    let mean = [
        p.iter().map(|q| q[0]).sum::<f32>() / n,
        p.iter().map(|q| q[1]).sum::<f32>() / n,
    ];
    let spread = p
        .iter()
        .map(|q| (q[0] - mean[0]).abs().max((q[1] - mean[1]).abs()))
        .fold(0f32, f32::max);
    let s = if spread > 0.0 {
        half_width / spread
    } else {
        1.0
    };
    for q in &mut p {
        q[0] = (q[0] - mean[0]) * s;
        q[1] = (q[1] - mean[1]) * s;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::clustered_vectors_labeled;

    /// Share of each point's `k` nearest neighbours in the map that are also among its `k`
    /// nearest by cosine in the original space.
    fn kept_neighbours(v: &[f32], dim: usize, map: &[[f32; 2]], k: usize) -> f64 {
        let n = map.len();
        let rows: Vec<&[f32]> = v.chunks_exact(dim).collect();
        let mut kept = 0usize;
        for i in (0..n).step_by(7) {
            let mut hi: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    (
                        -rows[i].iter().zip(rows[j]).map(|(a, b)| a * b).sum::<f32>(),
                        j,
                    )
                })
                .collect();
            hi.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut lo: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| {
                    let dx = map[i][0] - map[j][0];
                    let dy = map[i][1] - map[j][1];
                    (dx * dx + dy * dy, j)
                })
                .collect();
            lo.sort_by(|a, b| a.0.total_cmp(&b.0));
            let want: std::collections::HashSet<usize> = hi[..k].iter().map(|x| x.1).collect();
            kept += lo[..k].iter().filter(|x| want.contains(&x.1)).count();
        }
        kept as f64 / (n.div_ceil(7) * k) as f64
    }

    /// The point drawn nearest to point `i`.
    fn nearest_on_map(map: &[[f32; 2]], i: usize) -> usize {
        let d2 = |j: usize| (map[i][0] - map[j][0]).powi(2) + (map[i][1] - map[j][1]).powi(2);
        (0..map.len())
            .filter(|&j| j != i)
            .min_by(|&a, &b| d2(a).total_cmp(&d2(b)))
            .expect("at least two points")
    }

    #[test]
    fn keeps_neighbours_far_better_than_pca_on_many_clusters() {
        // 40 topics in 384-d: PCA's two axes cannot separate them, the layout must.
        let d = clustered_vectors_labeled(3000, 384, 40, 0, 0.95, 11);
        let map = neighbour_map(&d.vectors, 384, 5).expect("under the cap");
        let pca = crate::project::pca_2d(&d.vectors, 384);
        let ours = kept_neighbours(&d.vectors, 384, &map, 10);
        let base = kept_neighbours(&d.vectors, 384, &pca, 10);
        assert!(map.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
        // Inside a generated cluster the points are isotropic noise around its centre, so
        // their exact 10-NN order is arbitrary and no 2-D map keeps much of it; PCA keeps
        // almost none because it also piles the clusters on top of each other.
        assert!(
            ours > 3.0 * base && ours > 0.1,
            "neighbours kept: layout {ours:.3}, PCA {base:.3}"
        );
        // Same-cluster points land together: a point's nearest map neighbour shares its
        // cluster far more often than chance (1/40).
        let same = (0..d.vectors.len() / 384)
            .step_by(13)
            .filter(|&i| d.labels[i] == d.labels[nearest_on_map(&map, i)])
            .count() as f64
            / (3000f64 / 13.0).ceil();
        assert!(
            same > 0.8,
            "nearest map neighbour in the same cluster: {same:.3}"
        );
    }

    /// Regression: real embeddings are low-contrast (a MiniLM neighbour at cosine 0.2–0.3,
    /// unrelated texts at 0.1). A 48-d sketch's noise drowned that, and the quickstart's
    /// 17-record map kept none of its neighbours (3-NN overlap 0.08, below chance).
    #[test]
    fn keeps_groups_of_low_contrast_embeddings() {
        let (dim, groups, per) = (384, 6, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut gauss = || crate::gen::normal(&mut rng);
        let centres: Vec<Vec<f32>> = (0..groups)
            .map(|_| (0..dim).map(|_| gauss()).collect())
            .collect();
        let mut v = Vec::new();
        for c in &centres {
            for _ in 0..per {
                // Same-group cosine ≈ 0.2, cross-group ≈ 0.
                let x: Vec<f32> = c.iter().map(|&ci| 0.5 * ci + gauss()).collect();
                let norm = x.iter().map(|a| a * a).sum::<f32>().sqrt();
                v.extend(x.iter().map(|a| a / norm));
            }
        }
        let map = neighbour_map(&v, dim, 1).unwrap();
        let n = groups * per;
        let same = (0..n)
            .filter(|&i| i / per == nearest_on_map(&map, i) / per)
            .count();
        assert!(
            same * 10 >= n * 8,
            "nearest map neighbour in the same group for {same} of {n} points"
        );
    }

    /// `map_2d` keeps the layout where it helps and PCA where it does not.
    #[test]
    fn map_2d_picks_the_projection_that_keeps_more_neighbours() {
        let d = clustered_vectors_labeled(3000, 384, 40, 0, 0.95, 11);
        let (map, p) = map_2d(&d.vectors, 384, 5);
        assert_eq!(p, Projection::Neighbour);
        let knn = nearest(&d.vectors, 384, graph_k(3000));
        let pca = crate::project::pca_2d(&d.vectors, 384);
        assert!(kept(&map, &knn) > kept(&pca, &knn));
        // Points on a line in 8-d: PCA is exact, a force layout can only lose order.
        let line: Vec<f32> = (0..40)
            .flat_map(|i| {
                let t = i as f32 / 40.0;
                let v = [1.0, t, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
                let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                v.map(|a| a / norm)
            })
            .collect();
        let (got, p) = map_2d(&line, 8, 1);
        let knn = nearest(&line, 8, graph_k(40));
        let pca = crate::project::pca_2d(&line, 8);
        let layout_only = neighbour_map(&line, 8, 1).unwrap();
        if kept(&pca, &knn) > kept(&layout_only, &knn) {
            assert_eq!((p, got), (Projection::Pca, pca));
        } else {
            assert_eq!(p, Projection::Neighbour);
        }
    }

    #[test]
    fn deterministic_small_and_capped() {
        let d = clustered_vectors_labeled(400, 16, 4, 0, 0.95, 2);
        assert_eq!(
            neighbour_map(&d.vectors, 16, 9),
            neighbour_map(&d.vectors, 16, 9)
        );
        let few = &d.vectors[..16 * 5]; // under 6 points: PCA
        assert_eq!(
            neighbour_map(few, 16, 1).unwrap(),
            crate::project::pca_2d(few, 16)
        );
        let big = vec![0.1f32; (MAX_POINTS + 1) * 2];
        assert!(neighbour_map(&big, 2, 1).is_none());
    }
}
