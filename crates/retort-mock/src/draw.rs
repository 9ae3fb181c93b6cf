//! Deterministic draws: every "random" choice the mock makes is a hash of the seed and a
//! request number, so a failing test replays the same way.

use std::time::Duration;

/// splitmix64: a cheap, well-mixed hash for deterministic per-request draws.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform draw in [0, 1) from 53 bits of the hash of `x`.
pub(crate) fn unit(x: u64) -> f64 {
    (mix(x) >> 11) as f64 / (1u64 << 53) as f64
}

/// The delay of request `seq` under a lognormal with the given *mean* and `sigma`
/// (mu = ln(mean) - sigma²/2, so the draws average to `mean`). Deterministic: two
/// uniform hashes of `seed` and `seq` go through Box–Muller.
pub fn lognormal_delay(mean: Duration, sigma: f64, seed: u64, seq: u64) -> Duration {
    let mean_s = mean.as_secs_f64();
    if mean_s <= 0.0 {
        return Duration::ZERO;
    }
    let base = mix(seed ^ 0x6C6F_676E_6F72_6D61) ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // 1 - unit is in (0, 1], so the log is finite.
    let u1 = 1.0 - unit(base);
    let u2 = unit(base ^ 0xD1B5_4A32_D192_ED03);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    let mu = mean_s.ln() - sigma * sigma / 2.0;
    // Cap at a day so a silly sigma cannot overflow `Duration`.
    Duration::from_secs_f64((mu + sigma * z).exp().min(86_400.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_draws_average_to_the_mean() {
        let mean = Duration::from_millis(500);
        let mut xs: Vec<f64> = (0..2000)
            .map(|i| lognormal_delay(mean, 1.0, 7, i).as_secs_f64())
            .collect();
        let avg = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((avg - 0.5).abs() < 0.05, "mean {avg}");
        xs.sort_by(f64::total_cmp);
        // Median of a lognormal is exp(mu) = mean * exp(-sigma²/2) ≈ 0.303 s.
        let median = xs[1000];
        assert!((median - 0.303).abs() < 0.03, "median {median}");
        assert!(xs[1999] > 2.0, "no tail: max {}", xs[1999]);
        // Deterministic per request number, different across numbers.
        assert_eq!(
            lognormal_delay(mean, 1.0, 7, 42),
            lognormal_delay(mean, 1.0, 7, 42)
        );
        assert_ne!(
            lognormal_delay(mean, 1.0, 7, 42),
            lognormal_delay(mean, 1.0, 7, 43)
        );
        assert_eq!(lognormal_delay(mean, 0.0, 7, 5), mean);
    }
}
