//! 2-D projections for the cluster map.
//!
//! PCA by subspace (block power) iteration: the report needs only the top two directions, so
//! there is no covariance matrix (`dim²`) and no eigensolver — each iteration is two passes
//! over the rows, parallel on rayon.

use rayon::prelude::*;

/// Power-iteration passes at most; convergence usually takes far fewer.
const MAX_ITER: usize = 200;
/// Stop when both directions move less than this (1 − |cos| between iterates).
const TOL: f64 = 1e-9;

/// Coordinates of every row on the data's top two principal components (mean-centred).
///
/// Deterministic: the start vectors are fixed, not random. Axis signs are fixed too (the
/// largest-magnitude loading of each component is made positive) so a re-run draws the
/// same picture, not a mirror image.
///
/// # Panics
/// If `dim == 0` or `vectors` is not a whole number of rows.
pub fn pca_2d(vectors: &[f32], dim: usize) -> Vec<[f32; 2]> {
    assert!(
        dim > 0 && vectors.len().is_multiple_of(dim),
        "vectors is not n × dim"
    );
    let n = vectors.len() / dim;
    if n == 0 {
        return Vec::new();
    }
    let mean = column_mean(vectors, dim);
    let comps = top_components(vectors, dim, &mean, 2);
    vectors
        .par_chunks_exact(dim)
        .map(|x| {
            let mut out = [0f32; 2];
            for (o, c) in out.iter_mut().zip(&comps) {
                *o = x
                    .iter()
                    .zip(&mean)
                    .zip(c)
                    .map(|((v, m), w)| (*v as f64 - m) * w)
                    .sum::<f64>() as f32;
            }
            out
        })
        .collect()
}

fn column_mean(vectors: &[f32], dim: usize) -> Vec<f64> {
    let n = vectors.len() / dim;
    let sum = vectors
        .par_chunks_exact(dim)
        .fold(
            || vec![0f64; dim],
            |mut acc, x| {
                acc.iter_mut().zip(x).for_each(|(a, v)| *a += *v as f64);
                acc
            },
        )
        .reduce(
            || vec![0f64; dim],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        );
    sum.into_iter().map(|s| s / n as f64).collect()
}

/// Top `m` principal directions (unit, orthogonal) by subspace iteration on the centred data.
fn top_components(vectors: &[f32], dim: usize, mean: &[f64], m: usize) -> Vec<Vec<f64>> {
    let m = m.min(dim);
    // Fixed, generic start vectors: deterministic, and not orthogonal to any real direction
    // except by a coincidence with probability zero.
    let mut basis: Vec<Vec<f64>> = (0..m)
        .map(|c| {
            (0..dim)
                .map(|j| (((j + 1) * (c + 3)) as f64 * 0.618_033_988_7).fract() - 0.5)
                .collect()
        })
        .collect();
    orthonormalise(&mut basis);
    for _ in 0..MAX_ITER {
        // next_c = Σ_x (x − μ) · ((x − μ)·basis_c), i.e. covariance × basis without forming it.
        let next = vectors
            .par_chunks_exact(dim)
            .fold(
                || vec![vec![0f64; dim]; m],
                |mut acc, x| {
                    for (a, b) in acc.iter_mut().zip(&basis) {
                        let proj: f64 = x
                            .iter()
                            .zip(mean)
                            .zip(b)
                            .map(|((v, mu), w)| (*v as f64 - mu) * w)
                            .sum();
                        a.iter_mut()
                            .zip(x.iter().zip(mean))
                            .for_each(|(s, (v, mu))| *s += proj * (*v as f64 - mu));
                    }
                    acc
                },
            )
            .reduce(
                || vec![vec![0f64; dim]; m],
                |mut a, b| {
                    for (x, y) in a.iter_mut().zip(&b) {
                        x.iter_mut().zip(y).for_each(|(p, q)| *p += q);
                    }
                    a
                },
            );
        let mut next = next;
        if next.iter().all(|v| v.iter().all(|x| *x == 0.0)) {
            // No variance at all (every row identical): any axes are as good as others.
            return basis;
        }
        orthonormalise(&mut next);
        let moved = next
            .iter()
            .zip(&basis)
            .map(|(a, b)| 1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>().abs())
            .fold(0f64, f64::max);
        basis = next;
        if moved < TOL {
            break;
        }
    }
    for b in &mut basis {
        let lead = b
            .iter()
            .copied()
            .fold(0f64, |acc, x| if x.abs() > acc.abs() { x } else { acc });
        if lead < 0.0 {
            b.iter_mut().for_each(|x| *x = -*x);
        }
    }
    basis
}

/// Gram–Schmidt in place; a vector that collapses to zero is left as zero.
fn orthonormalise(vs: &mut [Vec<f64>]) {
    for i in 0..vs.len() {
        for j in 0..i {
            let d: f64 = vs[i].iter().zip(&vs[j]).map(|(a, b)| a * b).sum();
            let vj = vs[j].clone();
            vs[i].iter_mut().zip(&vj).for_each(|(a, b)| *a -= d * b);
        }
        let norm = vs[i].iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            vs[i].iter_mut().for_each(|x| *x /= norm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn pca_of_points_on_a_plane_recovers_the_plane() {
        // A tilted plane through an offset in 12-d, plus noise far smaller than the plane's
        // extent: the projection must be an isometry of the plane (distances preserved).
        let dim = 12;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut u: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut w: Vec<f64> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut uw = vec![std::mem::take(&mut u), std::mem::take(&mut w)];
        orthonormalise(&mut uw);
        let offset: Vec<f64> = (0..dim).map(|j| j as f64 * 0.3).collect();
        let n = 2000;
        let mut coords = Vec::with_capacity(n);
        let mut v = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let (a, b): (f64, f64) = (rng.random_range(-5.0..5.0), rng.random_range(-2.0..2.0));
            coords.push((a, b));
            for j in 0..dim {
                let noise: f64 = rng.random_range(-1e-3..1e-3);
                v.push((offset[j] + a * uw[0][j] + b * uw[1][j] + noise) as f32);
            }
        }
        let p = pca_2d(&v, dim);
        assert_eq!(p.len(), n);
        for i in (0..n).step_by(37) {
            for j in (1..n).step_by(53) {
                let want = ((coords[i].0 - coords[j].0).powi(2)
                    + (coords[i].1 - coords[j].1).powi(2))
                .sqrt();
                let got = (((p[i][0] - p[j][0]) as f64).powi(2)
                    + ((p[i][1] - p[j][1]) as f64).powi(2))
                .sqrt();
                assert!(
                    (want - got).abs() < 1e-2,
                    "distance {want} projected to {got}"
                );
            }
        }
        // The first axis is the long one (spread ±5 against ±2).
        let var = |k: usize| p.iter().map(|q| (q[k] as f64).powi(2)).sum::<f64>() / n as f64;
        assert!(var(0) > 3.0 * var(1));
    }

    #[test]
    fn pca_is_deterministic_and_handles_degenerate_input() {
        let v: Vec<f32> = (0..300)
            .map(|i| ((i * 7919) % 113) as f32 / 113.0)
            .collect();
        assert_eq!(pca_2d(&v, 3), pca_2d(&v, 3));
        let same = vec![0.5f32; 40];
        assert!(pca_2d(&same, 4).iter().all(|q| q[0] == 0.0 && q[1] == 0.0));
        assert!(pca_2d(&[], 4).is_empty());
    }
}
