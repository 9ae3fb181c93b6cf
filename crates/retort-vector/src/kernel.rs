//! Dot-product kernels: the one hot loop every algorithm in this crate spends its time in.
//!
//! Everything reduces to "dot every row of block A with every row of block B" over
//! row-major `f32` data. The workspace builds for baseline x86-64 (SSE2), so the fast paths
//! are compiled with `#[target_feature]` and picked at run time: AVX-512 where the CPU has it,
//! then AVX2+FMA, then a portable loop that the compiler can still vectorise.
//!
//! The tiled kernel computes a 4×4 block of dot products per pass over the dimension so each
//! loaded row feeds four FMAs instead of one; that is what keeps the loop compute-bound rather
//! than load-bound. Every path accumulates in 16 lanes and reduces the same way, so the
//! single-pair `dot` and the tiled `dots` agree to within a few ulps.

use std::sync::OnceLock;

/// Which instruction set the kernels use on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// 512-bit vectors with masked tails.
    Avx512,
    /// 256-bit vectors with fused multiply-add.
    Avx2Fma,
    /// Plain Rust, vectorised as far as the baseline target allows.
    Portable,
}

/// The instruction set chosen for this process (detected once).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2Fma;
            }
        }
        Isa::Portable
    })
}

/// Dot product of two equal-length slices.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of slices with different lengths");
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` only reports AVX-512 when the CPU supports it.
        Isa::Avx512 => unsafe { x86::dot_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` only reports AVX2+FMA when the CPU supports both.
        Isa::Avx2Fma => unsafe { x86::dot_avx2(a, b) },
        _ => portable::dot(a, b),
    }
}

/// Dots every row of `a` with every row of `b` (both row-major, `dim` columns) into `out`,
/// row-major `a_rows × b_rows`: `out[i * b_rows + j] = a_i · b_j`.
pub fn dots(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
    assert!(dim > 0, "dimension must be positive");
    assert_eq!(a.len() % dim, 0, "a is not a whole number of rows");
    assert_eq!(b.len() % dim, 0, "b is not a whole number of rows");
    let (na, nb) = (a.len() / dim, b.len() / dim);
    assert!(out.len() >= na * nb, "output buffer too small");
    match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` only reports AVX-512 when the CPU supports it.
        Isa::Avx512 => unsafe { x86::dots_avx512(a, b, dim, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa()` only reports AVX2+FMA when the CPU supports both.
        Isa::Avx2Fma => unsafe { x86::dots_avx2(a, b, dim, out) },
        _ => portable::dots(a, b, dim, out),
    }
}

/// Rows of `b` processed against one 4-row strip of `a` before moving on: 64 rows of 384-d
/// `f32` is 96 KiB, which stays in L2 while the strip of `a` stays in L1.
const B_BLOCK: usize = 64;

/// Shared tiling driver: full 4×4 tiles through `tile`, ragged edges through `one`.
#[inline(always)]
fn drive(
    a: &[f32],
    b: &[f32],
    dim: usize,
    out: &mut [f32],
    tile: impl Fn(&[f32], &[f32], usize, &mut [f32; 16]),
    one: impl Fn(&[f32], &[f32]) -> f32,
) {
    let (na, nb) = (a.len() / dim, b.len() / dim);
    fn row(m: &[f32], i: usize, dim: usize) -> &[f32] {
        &m[i * dim..(i + 1) * dim]
    }
    let mut acc = [0f32; 16];
    for jb in (0..nb).step_by(B_BLOCK) {
        let je = (jb + B_BLOCK).min(nb);
        let mut i = 0;
        while i < na {
            let ie = (i + 4).min(na);
            let mut j = jb;
            if ie - i == 4 {
                while j + 4 <= je {
                    tile(
                        &a[i * dim..ie * dim],
                        &b[j * dim..(j + 4) * dim],
                        dim,
                        &mut acc,
                    );
                    for r in 0..4 {
                        out[(i + r) * nb + j..(i + r) * nb + j + 4]
                            .copy_from_slice(&acc[r * 4..r * 4 + 4]);
                    }
                    j += 4;
                }
            }
            for ii in i..ie {
                for jj in j..je {
                    out[ii * nb + jj] = one(row(a, ii, dim), row(b, jj, dim));
                }
            }
            i = ie;
        }
    }
}

mod portable {
    /// Sixteen independent partial sums so the compiler may vectorise without reassociating.
    #[inline(always)]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0f32; 16];
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for l in 0..16 {
                acc[l] += x[l] * y[l];
            }
        }
        for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
            acc[l] += x * y;
        }
        acc.iter().sum()
    }

    #[inline(always)]
    pub fn tile(a: &[f32], b: &[f32], dim: usize, out: &mut [f32; 16]) {
        for r in 0..4 {
            for c in 0..4 {
                out[r * 4 + c] = dot(&a[r * dim..(r + 1) * dim], &b[c * dim..(c + 1) * dim]);
            }
        }
    }

    pub fn dots(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
        super::drive(a, b, dim, out, tile, dot);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = _mm512_setzero_ps();
        let mut k = 0;
        while k + 16 <= n {
            acc = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(k)), _mm512_loadu_ps(pb.add(k)), acc);
            k += 16;
        }
        if k < n {
            let m: __mmask16 = (1u32 << (n - k)) as u16 - 1;
            let x = _mm512_maskz_loadu_ps(m, pa.add(k));
            let y = _mm512_maskz_loadu_ps(m, pb.add(k));
            acc = _mm512_fmadd_ps(x, y, acc);
        }
        _mm512_reduce_add_ps(acc)
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn tile_avx512(a: &[f32], b: &[f32], dim: usize, out: &mut [f32; 16]) {
        debug_assert!(a.len() >= 4 * dim && b.len() >= 4 * dim);
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 16];
        let mut k = 0;
        while k < dim {
            // Full lanes except on the last, ragged step, where the mask zero-fills.
            let m: __mmask16 = if k + 16 <= dim {
                0xffff
            } else {
                ((1u32 << (dim - k)) - 1) as u16
            };
            let b0 = _mm512_maskz_loadu_ps(m, pb.add(k));
            let b1 = _mm512_maskz_loadu_ps(m, pb.add(dim + k));
            let b2 = _mm512_maskz_loadu_ps(m, pb.add(2 * dim + k));
            let b3 = _mm512_maskz_loadu_ps(m, pb.add(3 * dim + k));
            for r in 0..4 {
                let x = _mm512_maskz_loadu_ps(m, pa.add(r * dim + k));
                acc[r * 4] = _mm512_fmadd_ps(x, b0, acc[r * 4]);
                acc[r * 4 + 1] = _mm512_fmadd_ps(x, b1, acc[r * 4 + 1]);
                acc[r * 4 + 2] = _mm512_fmadd_ps(x, b2, acc[r * 4 + 2]);
                acc[r * 4 + 3] = _mm512_fmadd_ps(x, b3, acc[r * 4 + 3]);
            }
            k += 16;
        }
        _mm512_storeu_ps(out.as_mut_ptr(), reduce16(&acc));
    }

    /// Horizontal sums of 16 vectors into one vector (`out[i] = Σ acc[i]`) by a transposing
    /// add tree: 45 shuffles and adds instead of 16 separate reductions (~130), which
    /// otherwise cost a quarter of a 384-d tile.
    #[target_feature(enable = "avx512f")]
    unsafe fn reduce16(acc: &[__m512; 16]) -> __m512 {
        // Four vectors → one whose 128-bit lane L holds [Σ_L a, Σ_L b, Σ_L c, Σ_L d].
        let quad = |a: __m512, b: __m512, c: __m512, d: __m512| -> __m512 {
            let ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
            let cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
            _mm512_add_ps(
                _mm512_shuffle_ps::<0x44>(ab, cd),
                _mm512_shuffle_ps::<0xEE>(ab, cd),
            )
        };
        let g0 = quad(acc[0], acc[1], acc[2], acc[3]);
        let g1 = quad(acc[4], acc[5], acc[6], acc[7]);
        let g2 = quad(acc[8], acc[9], acc[10], acc[11]);
        let g3 = quad(acc[12], acc[13], acc[14], acc[15]);
        // Fold the four 128-bit lanes of each group together, keeping groups in order.
        let p01 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(g0, g1),
            _mm512_shuffle_f32x4::<0xEE>(g0, g1),
        );
        let p23 = _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x44>(g2, g3),
            _mm512_shuffle_f32x4::<0xEE>(g2, g3),
        );
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0x88>(p01, p23),
            _mm512_shuffle_f32x4::<0xDD>(p01, p23),
        )
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn dots_avx512(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
        super::drive(
            a,
            b,
            dim,
            out,
            |a, b, d, o| unsafe { tile_avx512(a, b, d, o) },
            |a, b| unsafe { dot_avx512(a, b) },
        );
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut a0 = _mm256_setzero_ps();
        let mut a1 = _mm256_setzero_ps();
        let mut k = 0;
        while k + 16 <= n {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(k)), _mm256_loadu_ps(pb.add(k)), a0);
            a1 = _mm256_fmadd_ps(
                _mm256_loadu_ps(pa.add(k + 8)),
                _mm256_loadu_ps(pb.add(k + 8)),
                a1,
            );
            k += 16;
        }
        let mut s = hsum256(_mm256_add_ps(a0, a1));
        while k < n {
            s += *pa.add(k) * *pb.add(k);
            k += 1;
        }
        s
    }

    /// 2×4 half-tile: 8 accumulators + 4 loaded rows + 1 fit in AVX2's 16 registers.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn half_tile_avx2(pa: *const f32, pb: *const f32, dim: usize, out: &mut [f32]) {
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut k = 0;
        while k + 8 <= dim {
            let b0 = _mm256_loadu_ps(pb.add(k));
            let b1 = _mm256_loadu_ps(pb.add(dim + k));
            let b2 = _mm256_loadu_ps(pb.add(2 * dim + k));
            let b3 = _mm256_loadu_ps(pb.add(3 * dim + k));
            for r in 0..2 {
                let x = _mm256_loadu_ps(pa.add(r * dim + k));
                acc[r * 4] = _mm256_fmadd_ps(x, b0, acc[r * 4]);
                acc[r * 4 + 1] = _mm256_fmadd_ps(x, b1, acc[r * 4 + 1]);
                acc[r * 4 + 2] = _mm256_fmadd_ps(x, b2, acc[r * 4 + 2]);
                acc[r * 4 + 3] = _mm256_fmadd_ps(x, b3, acc[r * 4 + 3]);
            }
            k += 8;
        }
        for (i, v) in acc.iter().enumerate() {
            let (r, c) = (i / 4, i % 4);
            let mut s = hsum256(*v);
            for kk in k..dim {
                s += *pa.add(r * dim + kk) * *pb.add(c * dim + kk);
            }
            out[i] = s;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_avx2(a: &[f32], b: &[f32], dim: usize, out: &mut [f32; 16]) {
        debug_assert!(a.len() >= 4 * dim && b.len() >= 4 * dim);
        half_tile_avx2(a.as_ptr(), b.as_ptr(), dim, &mut out[..8]);
        half_tile_avx2(a.as_ptr().add(2 * dim), b.as_ptr(), dim, &mut out[8..]);
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dots_avx2(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
        super::drive(
            a,
            b,
            dim,
            out,
            |a, b, d, o| unsafe { tile_avx2(a, b, d, o) },
            |a, b| unsafe { dot_avx2(a, b) },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x as f64) * (*y as f64))
            .sum::<f64>() as f32
    }

    #[test]
    fn every_path_matches_a_naive_dot_on_ragged_shapes() {
        // Odd dims and row counts exercise the masked tails and the edge (non-tile) path.
        for &dim in &[1usize, 7, 16, 33, 384] {
            let (na, nb) = (7usize, 70usize);
            let a: Vec<f32> = (0..na * dim)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let b: Vec<f32> = (0..nb * dim)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
                .collect();
            let mut out = vec![0f32; na * nb];
            dots(&a, &b, dim, &mut out);
            let mut port = vec![0f32; na * nb];
            portable::dots(&a, &b, dim, &mut port);
            for i in 0..na {
                for j in 0..nb {
                    let want = naive(&a[i * dim..(i + 1) * dim], &b[j * dim..(j + 1) * dim]);
                    let tol = 1e-4 * (dim as f32).sqrt().max(1.0);
                    assert!((out[i * nb + j] - want).abs() < tol, "dim {dim} ({i},{j})");
                    assert!((port[i * nb + j] - want).abs() < tol, "portable dim {dim}");
                    let single = dot(&a[i * dim..(i + 1) * dim], &b[j * dim..(j + 1) * dim]);
                    assert!((single - want).abs() < tol);
                }
            }
        }
    }
}
