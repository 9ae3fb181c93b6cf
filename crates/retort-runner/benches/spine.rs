//! End-to-end spine benchmark: `load → filter → export` over a generated JSONL, through
//! the same compile + run path as `retort run` (checkpoints included).
//!
//! `cargo bench -p retort-runner --bench spine -- [ROWS]` (default 1,000,000). Prints rows/s
//! and the process's peak RSS (VmHWM).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use retort_runner::{Factory, RunOptions};
use retort_teacher::{Backend, Embedder, EmbedderConfig, TeacherConfig};

// Same allocator as the `retort` binary, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct NoTeachers;

impl Factory for NoTeachers {
    fn backend(&self, name: &str, _: &TeacherConfig) -> Result<Arc<dyn Backend>, String> {
        Err(format!(
            "the spine benchmark declares no teachers (asked for `{name}`)"
        ))
    }
    fn embedder(&self, _: &EmbedderConfig) -> Result<Arc<dyn Embedder>, String> {
        Err("the spine benchmark declares no embedder".into())
    }
}

fn vm_hwm_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let rows: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.jsonl");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        for i in 0..rows {
            let input = if i % 3 == 0 {
                format!("context for item {i}")
            } else {
                String::new()
            };
            writeln!(
                f,
                r#"{{"id":"r{i}","instruction":"Explain concept number {i} in two sentences","input":"{input}","output":"Concept {i} is explained here with a short answer.","quality":{},"category":"cat{}"}}"#,
                i % 10,
                i % 7
            )
            .unwrap();
        }
    }
    let size_mb = std::fs::metadata(&input).unwrap().len() as f64 / 1e6;
    std::fs::write(
        dir.path().join("p.toml"),
        r#"
name = "spine-bench"
[[step]]
id = "load"
kind = "load"
path = "input.jsonl"
[[step]]
id = "keep"
kind = "filter"
after = ["load"]
keep = "quality >= 3 and len(instruction) > 10"
[[step]]
id = "sft"
kind = "export"
after = ["keep"]
format = "messages"
path = "sft.parquet"
"#,
    )
    .unwrap();
    let rss_before = vm_hwm_mb();
    let t = Instant::now();
    let plan = retort_runner::compile(&dir.path().join("p.toml"), &[]).unwrap_or_else(|e| {
        panic!("{e:?}");
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let summary = rt
        .block_on(retort_runner::run(
            plan,
            RunOptions {
                out: Some(dir.path().join("run")),
                quiet: true,
                ..Default::default()
            },
            Arc::new(NoTeachers),
        ))
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let kept = summary.manifest.steps[1].rows_out;
    println!(
        "spine load→filter→export: {rows} rows ({size_mb:.0} MB JSONL), {kept} kept, {secs:.2} s, {:.0} rows/s, peak RSS {:.0} MB (before run {:.0} MB)",
        rows as f64 / secs,
        vm_hwm_mb(),
        rss_before
    );
}
