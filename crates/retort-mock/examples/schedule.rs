//! The best wall any client can reach against the mock's lognormal latencies: requests
//! numbered in arrival order get the mock's own draws, and `C` slots each take the next
//! request the moment they free (a perfect continuous client with zero overhead).
//! `cargo run --release -p retort-mock --example schedule -- N C MEAN_MS SIGMA [SEED] [SKIP]`
//! (`SKIP`: requests the mock saw before the first chat request, e.g. readiness polls).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let get = |i: usize, d: f64| a.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (n, c, mean, sigma) = (
        get(0, 2000.0) as u64,
        get(1, 64.0) as usize,
        get(2, 500.0),
        get(3, 1.0),
    );
    let (seed, skip) = (get(4, 7.0) as u64, get(5, 0.0) as u64);
    let mean = Duration::from_secs_f64(mean / 1000.0);
    let mut free: BinaryHeap<Reverse<u64>> = (0..c).map(|_| Reverse(0)).collect();
    let (mut end, mut total, mut longest) = (0u64, 0u64, 0u64);
    for seq in skip..skip + n {
        let Reverse(t) = free.pop().expect("c > 0");
        let l = retort_mock::lognormal_delay(mean, sigma, seed, seq).as_micros() as u64;
        total += l;
        longest = longest.max(l);
        end = end.max(t + l);
        free.push(Reverse(t + l));
    }
    println!(
        "N={n} C={c}: best possible wall {:.1} s; N*mean/C {:.1} s; sum of draws / C {:.1} s; longest draw {:.1} s",
        end as f64 / 1e6,
        n as f64 * mean.as_secs_f64() / c as f64,
        total as f64 / 1e6 / c as f64,
        longest as f64 / 1e6
    );
}
