//! Novelty-filter benchmark: per-candidate time of the exact ROUGE-L novelty check
//! against pools of 5,000, 20,000 and 100,000 generated instructions, and incremental growth
//! (Self-Instruct's loop: every accepted candidate joins the pool).
//!
//! Run: `cargo bench -p retort-text --bench novelty` (prints a Markdown table).
//! `NOVELTY_BENCH_BRUTE=1` also times brute force without the index
//! (`NoveltyIndex::check_brute_force`: tokenise + bit-parallel LCS per pair) on a few
//! candidates.
//! `NOVELTY_BENCH_DUMP=DIR` writes the 20,000 pool and its candidates as JSONL so
//! `tests/reference/rouge_bench.py` can time rouge_score on the very same data.

#[path = "../tests/common/gen.rs"]
mod gen;

use std::time::Instant;

use gen::InstructionGen;
use retort_text::novelty::NoveltyIndex;

fn main() {
    let brute = std::env::var("NOVELTY_BENCH_BRUTE").is_ok_and(|v| v == "1");
    println!("| pool | candidates | mode | ms / candidate | accepted | build pool (ms) |");
    println!("|---:|---:|---|---:|---:|---:|");
    for &pool_n in &[5_000usize, 20_000, 100_000] {
        let mut g = InstructionGen::new(42);
        let pool = g.pool(pool_n);
        let cands = g.candidates(&pool, 2_000);
        if pool_n == 20_000 {
            if let Ok(dir) = std::env::var("NOVELTY_BENCH_DUMP") {
                dump(&dir, &pool, &cands);
            }
        }

        let t = Instant::now();
        let mut idx = NoveltyIndex::new(0.7);
        for p in &pool {
            idx.add(p);
        }
        let build_ms = t.elapsed().as_secs_f64() * 1e3;

        // check only (pool fixed), sequential on one thread.
        let t = Instant::now();
        let mut acc = 0;
        for c in &cands {
            acc += usize::from(idx.check(c).accepted);
        }
        let per = t.elapsed().as_secs_f64() * 1e3 / cands.len() as f64;
        println!(
            "| {pool_n} | {} | check, 1 thread | {per:.4} | {acc} | {build_ms:.0} |",
            cands.len()
        );

        // Self-Instruct loop: check_and_add, sequential.
        let mut grow = NoveltyIndex::new(0.7);
        for p in &pool {
            grow.add(p);
        }
        let t = Instant::now();
        let mut acc = 0;
        for c in &cands {
            acc += usize::from(grow.check_and_add(c).accepted);
        }
        let per = t.elapsed().as_secs_f64() * 1e3 / cands.len() as f64;
        println!(
            "| {pool_n}→{} | {} | check_and_add, 1 thread | {per:.4} | {acc} | |",
            grow.len(),
            cands.len()
        );

        // Same loop through the rayon batch path (same decisions).
        let mut grow2 = NoveltyIndex::new(0.7);
        for p in &pool {
            grow2.add(p);
        }
        let t = Instant::now();
        let d = grow2.check_and_add_all(&cands);
        let per = t.elapsed().as_secs_f64() * 1e3 / cands.len() as f64;
        let acc2 = d.iter().filter(|d| d.accepted).count();
        assert_eq!(acc2, acc, "batch path must agree with the sequential loop");
        println!(
            "| {pool_n}→{} | {} | check_and_add_all, rayon ({} threads) | {per:.4} | {acc2} | |",
            grow2.len(),
            cands.len(),
            rayon::current_num_threads()
        );

        if brute {
            let n = 20;
            let t = Instant::now();
            for c in &cands[..n] {
                std::hint::black_box(idx.check_brute_force(c));
            }
            let per = t.elapsed().as_secs_f64() * 1e3 / n as f64;
            println!(
                "| {pool_n} | {n} | brute force (tokenise + bit-parallel LCS per pair, no index) | {per:.3} | | |"
            );
        }
    }

    // Growth from empty: a generator's whole run, reporting time per candidate as the
    // pool grows.
    let mut g = InstructionGen::new(7);
    let mut idx = NoveltyIndex::new(0.7);
    let mut pool_ref: Vec<String> = Vec::new();
    println!();
    println!("| growth from empty: pool size reached | candidates so far | ms / candidate in this stretch |");
    println!("|---:|---:|---:|");
    let mut seen = 0usize;
    for stretch in 0..6 {
        let n = 10_000;
        let cands = g.candidates(&pool_ref, n);
        let t = Instant::now();
        for c in &cands {
            if idx.check_and_add(c).accepted {
                pool_ref.push(c.clone());
            }
        }
        seen += n;
        let per = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        println!("| {} | {seen} | {per:.4} |", idx.len());
        let _ = stretch;
    }
}

fn dump(dir: &str, pool: &[String], cands: &[String]) {
    let dir = std::path::Path::new(dir);
    std::fs::create_dir_all(dir).expect("creating the dump directory");
    for (name, rows) in [("pool.jsonl", pool), ("candidates.jsonl", cands)] {
        let mut s = String::new();
        for r in rows {
            s.push_str(&format!("{{\"instruction\": {r:?}}}\n"));
        }
        std::fs::write(dir.join(name), s).expect("writing the dump");
    }
}
