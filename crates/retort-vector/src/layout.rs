//! A neighbourhood-preserving 2-D map of embeddings (UMAP-style force layout).
//!
//! PCA keeps the two directions of largest variance; with dozens of topics in 384
//! dimensions that squashes most clusters on top of each other. This layout instead keeps
//! each record next to its nearest neighbours:
//! 1. a random Gaussian projection to [`SKETCH_DIM`] dimensions (Johnson–Lindenstrauss:
//!    cosine between unit vectors is kept to about ±0.1, far finer than the gap between a
//!    near neighbour and an unrelated record), so exact k-nearest-neighbour search over
//!    the 20,000 points a report draws takes seconds, not minutes;
//! 2. exact k-nearest neighbours in that sketch (k = [`NEIGHBOURS`], or √n for small
//!    sets), symmetrised;
//! 3. UMAP's optimisation (McInnes et al. 2018) with the Student-t similarity `1/(1 + d²)`
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

/// Dimensions of the random sketch used for neighbour search.
pub const SKETCH_DIM: usize = 48;
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
    // A small set gets fewer neighbours (about √n): with 12 of 17 points linked to each
    // other the graph says "everything is near everything" and the map loses its groups.
    let k = NEIGHBOURS.min((n as f64).sqrt() as usize).max(2);
    let sketch = sketch(vectors, dim, seed);
    let knn = nearest(&sketch, k);
    let edges = symmetric_edges(&knn);
    Some(optimise(init, &edges, n, seed))
}

/// Which projection drew a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// [`neighbour_map`].
    Neighbour,
    /// [`crate::project::pca_2d`] (above [`MAX_POINTS`] rows).
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
                 (too many records for the neighbour layout), so separate topics may overlap."
            }
        }
    }
}

/// The best map this module can draw for `vectors`: [`neighbour_map`] up to
/// [`MAX_POINTS`] rows, PCA above.
pub fn map_2d(vectors: &[f32], dim: usize, seed: u64) -> (Vec<[f32; 2]>, Projection) {
    match neighbour_map(vectors, dim, seed) {
        Some(p) => (p, Projection::Neighbour),
        None => (crate::project::pca_2d(vectors, dim), Projection::Pca),
    }
}

/// Rows projected onto `SKETCH_DIM` Gaussian directions and re-normalised to unit length,
/// so a dot product is a cosine.
fn sketch(vectors: &[f32], dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5ce7);
    // Box–Muller normals: rand_distr is not a dependency for one distribution.
    let mut normal = || {
        let u: f32 = rng.random_range(f32::EPSILON..1.0);
        let v: f32 = rng.random_range(0.0..1.0);
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    };
    let proj: Vec<f32> = (0..dim * SKETCH_DIM).map(|_| normal()).collect();
    vectors
        .par_chunks_exact(dim)
        .flat_map_iter(|x| {
            let mut s = [0f32; SKETCH_DIM];
            for (xj, row) in x.iter().zip(proj.chunks_exact(SKETCH_DIM)) {
                for (o, p) in s.iter_mut().zip(row) {
                    *o += xj * p;
                }
            }
            let norm = s.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                s.iter_mut().for_each(|v| *v /= norm);
            }
            s
        })
        .collect()
}

/// Exact k nearest neighbours (largest dot product) of every row, self excluded.
fn nearest(sketch: &[f32], k: usize) -> Vec<Vec<u32>> {
    let rows: Vec<&[f32]> = sketch.chunks_exact(SKETCH_DIM).collect();
    rows.par_iter()
        .enumerate()
        .map(|(i, x)| {
            // Kept sorted best-first; k is small, so insertion beats a heap.
            let mut best: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
            for (j, y) in rows.iter().enumerate() {
                if i == j {
                    continue;
                }
                let d = crate::kernel::dot(x, y);
                if best.len() == k && d <= best[k - 1].0 {
                    continue;
                }
                let at = best.partition_point(|(e, _)| *e >= d);
                best.insert(at, (d, j as u32));
                best.truncate(k);
            }
            best.into_iter().map(|(_, j)| j).collect()
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
            .filter(|&i| {
                let j = (0..map.len())
                    .filter(|&j| j != i)
                    .min_by(|&a, &b| {
                        let da = (map[i][0] - map[a][0]).powi(2) + (map[i][1] - map[a][1]).powi(2);
                        let db = (map[i][0] - map[b][0]).powi(2) + (map[i][1] - map[b][1]).powi(2);
                        da.total_cmp(&db)
                    })
                    .unwrap();
                d.labels[i] == d.labels[j]
            })
            .count() as f64
            / (3000f64 / 13.0).ceil();
        assert!(
            same > 0.8,
            "nearest map neighbour in the same cluster: {same:.3}"
        );
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
