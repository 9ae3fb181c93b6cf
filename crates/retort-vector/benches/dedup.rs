//! Semantic dedup and k-means benchmark on generated 384-d embeddings.
//!
//! ```text
//! cargo bench -p retort-vector --bench dedup -- 200000
//! cargo bench -p retort-vector --bench dedup -- 1000000
//! cargo bench -p retort-vector --bench dedup -- 200000 partitioned hnsw exact kmeans layout
//! ```
//! The first number is the row count; words pick what to run (default: partitioned + hnsw +
//! kmeans up to 200k rows, partitioned + kmeans above, since an HNSW build over 1M rows on
//! two cores takes far longer than the other runs together). Planted pairs are n/50
//! (4,000 at 200k, 20,000 at 1M); the generator has 1,000 topic clusters.
//!
//! Peak RSS is VmHWM from /proc/self/status, reset before each measured run by writing 5
//! to /proc/self/clear_refs, so each figure is that run's peak *including* the input
//! vectors (n × 384 × 4 bytes), which every method needs in memory.

use std::collections::HashSet;
use std::time::Instant;

use retort_vector::dedup::{estimate_recall, Method, SemanticDedup};
use retort_vector::gen::clustered_vectors;
use retort_vector::kmeans::KMeans;
use retort_vector::{kernel, union_find};

const DIM: usize = 384;
const TAU: f32 = 0.95;

fn vm_hwm_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn reset_hwm() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("note: cannot reset VmHWM ({e}); peaks are cumulative");
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = match args.first() {
        Some(a) => a
            .parse()
            .unwrap_or_else(|_| panic!("first argument must be a row count, got {a:?}")),
        None => 200_000,
    };
    let mut what: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    if what.is_empty() {
        what = if n <= 200_000 {
            vec!["partitioned", "hnsw", "kmeans"]
        } else {
            vec!["partitioned", "kmeans"]
        };
    }
    let planted_n = n / 50;
    println!(
        "n = {n}, dim = {DIM}, planted pairs = {planted_n}, tau = {TAU}, threads = {}, isa = {:?}",
        rayon::current_num_threads(),
        kernel::isa()
    );

    let t = Instant::now();
    let (vectors, planted) = clustered_vectors(n, DIM, 1000, planted_n, TAU, 42);
    println!(
        "generate: {:.1} s, rss {:.0} MB",
        t.elapsed().as_secs_f64(),
        vm_hwm_mb()
    );
    let planted_set: HashSet<(u32, u32)> = planted.iter().copied().collect();

    println!();
    println!("| method | settings | time (s) | pairs | groups | recall vs planted | recall vs exact (sample) | peak RSS (MB) |");
    println!("|---|---|---|---|---|---|---|---|");
    for w in &what {
        let (method, settings) = match *w {
            spec if spec.starts_with("partitioned") => {
                // `partitioned:k=1000:b=0.2:p=4` overrides partitions, boundary, max probes.
                let mut m = Method::partitioned();
                if let Method::Partitioned {
                    partitions,
                    boundary,
                    max_probes,
                    ..
                } = &mut m
                {
                    for kv in spec.split(':').skip(1) {
                        let (key, val) = kv
                            .split_once('=')
                            .unwrap_or_else(|| panic!("bad override {kv:?}"));
                        match key {
                            "k" => *partitions = Some(val.parse().expect("k=<usize>")),
                            "b" => *boundary = val.parse().expect("b=<f32>"),
                            "p" => *max_probes = val.parse().expect("p=<usize>"),
                            other => panic!("unknown override {other:?} (k, b, p)"),
                        }
                    }
                }
                let s = match &m {
                    Method::Partitioned {
                        partitions,
                        boundary,
                        max_probes,
                        ..
                    } => format!(
                        "k = {}, boundary {boundary}, max probes {max_probes}",
                        partitions.unwrap_or_else(|| retort_vector::dedup::auto_partitions(n))
                    ),
                    _ => unreachable!("Method::partitioned() builds Partitioned"),
                };
                (m, s)
            }
            "hnsw" => {
                let m = Method::hnsw();
                let s = match &m {
                    Method::Hnsw {
                        m,
                        ef_construction,
                        ef_search,
                    } => {
                        format!("M {m}, efC {ef_construction}, ef {ef_search}")
                    }
                    _ => unreachable!("Method::hnsw() builds Hnsw"),
                };
                (m, s)
            }
            "exact" => (Method::Exact, "all pairs".to_string()),
            "hnsw16" => (
                Method::Hnsw {
                    m: 16,
                    ef_construction: 100,
                    ef_search: 64,
                },
                "M 16, efC 100, ef 64".to_string(),
            ),
            "kmeans" | "layout" => continue,
            other => panic!(
                "unknown benchmark {other:?} (partitioned, hnsw, hnsw16, exact, kmeans, layout)"
            ),
        };
        reset_hwm();
        let dd = SemanticDedup {
            threshold: TAU,
            method,
        };
        let t = Instant::now();
        let pairs = dd.find_pairs(&vectors, DIM);
        let groups = union_find::groups(n, &pairs);
        let secs = t.elapsed().as_secs_f64();
        let rss = vm_hwm_mb();
        let found: HashSet<(u32, u32)> = pairs.iter().map(|&(a, b, _)| (a, b)).collect();
        let planted_recall =
            planted.iter().filter(|p| found.contains(p)).count() as f64 / planted.len() as f64;
        let sample = if n <= 200_000 { 2000 } else { 1000 };
        let est = estimate_recall(&vectors, DIM, TAU, &pairs, sample, 7);
        let est_s = match est.recall() {
            Some(r) => format!(
                "{r:.4} ({}/{} in {} rows)",
                est.found, est.true_pairs, est.sampled_rows
            ),
            None => format!("n/a (no duplicates in {} rows)", est.sampled_rows),
        };
        let extra = pairs
            .iter()
            .filter(|&&(a, b, _)| !planted_set.contains(&(a, b)))
            .count();
        println!(
            "| {w} | {settings} | {secs:.1} | {} ({extra} unplanted) | {} | {planted_recall:.4} | {est_s} | {rss:.0} |",
            pairs.len(),
            groups.len()
        );
    }

    if what.contains(&"kmeans") {
        reset_hwm();
        let km = KMeans::auto(n, 1000, 1);
        let t = Instant::now();
        let r = km.fit(&vectors, DIM);
        let secs = t.elapsed().as_secs_f64();
        let sizes = r.sizes(DIM);
        println!();
        println!(
            "kmeans k = 1000 ({:?}, {} iterations): {secs:.1} s, inertia {:.1}, cluster sizes {}..{}, peak RSS {:.0} MB",
            km.mini_batch.map_or("lloyd".to_string(), |b| format!("mini-batch {b}")),
            km.max_iter,
            r.inertia,
            sizes.iter().min().copied().unwrap_or(0),
            sizes.iter().max().copied().unwrap_or(0),
            vm_hwm_mb()
        );
    }

    if what.contains(&"layout") {
        // The report's map: at most 20,000 drawn points, as the cluster step draws them
        // (neighbour layout and PCA, the one keeping more neighbours wins).
        let m = n.min(20_000);
        let t = Instant::now();
        let (p, projection) = retort_vector::layout::map_2d(&vectors[..m * DIM], DIM, 1);
        println!();
        println!(
            "map of {m} points: {:.1} s ({} coordinates, {} projection)",
            t.elapsed().as_secs_f64(),
            p.len(),
            projection.name()
        );
    }
}
