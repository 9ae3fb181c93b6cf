//! Why HNSW misses planted twins: builds an `hnsw_rs` graph the way `Method::Hnsw` does and
//! counts planted pairs that are not linked directly, how many of those involve rows no
//! other row links to, and how many the orphan repair (query from the orphan, exact among
//! orphans) recovers. The numbers behind the HNSW defaults in docs/benchmarks.md.
//!
//! ```text
//! cargo run --release -p retort-vector --example hnsw_probe -- ROWS M EF_CONSTRUCTION [ROWS_PER_CLUSTER]
//! cargo run --release -p retort-vector --example hnsw_probe -- 100000 16 100 1000
//! cargo run --release -p retort-vector --example hnsw_probe -- 100000 48 120 1000
//! ```
//! 100k rows at 1,000 rows per cluster has the 1M benchmark's cluster density in ~30 s.

use hnsw_rs::prelude::{Distance, Hnsw};
use retort_vector::gen::clustered_vectors;
use retort_vector::kernel;

struct UnitCosine;
impl Distance<f32> for UnitCosine {
    fn eval(&self, va: &[f32], vb: &[f32]) -> f32 {
        (1.0 - kernel::dot(va, vb)).max(0.0)
    }
}

fn arg(i: usize, default: Option<usize>) -> usize {
    std::env::args()
        .nth(i)
        .map(|s| s.parse().expect("arguments are integers"))
        .or(default)
        .expect("usage: hnsw_probe ROWS M EF_CONSTRUCTION [ROWS_PER_CLUSTER]")
}

fn main() {
    let (n, m, efc, per) = (arg(1, None), arg(2, None), arg(3, None), arg(4, Some(200)));
    let dim = 384;
    let (v, planted) = clustered_vectors(n, dim, (n / per).max(1), n / 50, 0.95, 42);
    let row = |i: usize| &v[i * dim..(i + 1) * dim];
    let t = std::time::Instant::now();
    let index: Hnsw<f32, UnitCosine> = Hnsw::new(m, n, 16, efc, UnitCosine);
    let data: Vec<(&[f32], usize)> = v.chunks_exact(dim).zip(0..n).collect();
    index.parallel_insert_slice(&data);
    let build = t.elapsed().as_secs_f64();
    let mut links: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut in_degree = vec![0u32; n];
    for p in index.get_point_indexation() {
        let hood = p.get_neighborhood_id();
        links[p.get_origin_id()] = hood[0].iter().map(|nb| nb.d_id).collect();
        for nb in &hood[0] {
            in_degree[nb.d_id] += 1;
        }
    }
    let orphans = in_degree.iter().filter(|&&d| d == 0).count();
    let finds = |from: usize, to: usize| {
        index
            .search(row(from), 10, 96)
            .iter()
            .any(|nb| nb.d_id == to)
    };
    let (mut unlinked, mut unrepaired) = (0, 0);
    for &(a, b) in &planted {
        let (a, b) = (a as usize, b as usize);
        if links[a].contains(&b) || links[b].contains(&a) {
            continue;
        }
        unlinked += 1;
        // Orphans are queried from, and compared exactly with each other.
        let repaired = match (in_degree[a] == 0, in_degree[b] == 0) {
            (true, true) => true,
            (true, false) => finds(a, b),
            (false, true) => finds(b, a),
            (false, false) => false,
        };
        if !repaired {
            unrepaired += 1;
        }
    }
    println!(
        "rows {n}, {per} per cluster, M {m}, efC {efc}: build {build:.1} s, rows without in-links {orphans} ({:.2}%), \
         planted pairs {}, not linked {unlinked}, still missed after orphan repair {unrepaired}",
        100.0 * orphans as f64 / n as f64,
        planted.len()
    );
}
