//! Teacher client throughput benchmark against the in-process mock server.
//!
//! `cargo bench -p retort-teacher --bench client` runs every scenario, each in its own
//! child process (so peak RSS is per scenario), and prints a table. One scenario:
//! `cargo bench -p retort-teacher --bench client -- --scenario zero`.
//!
//! Knobs for experiments: `BENCH_RETRY_BASE_MS` overrides the teacher's `retry_base_ms`,
//! `BENCH_BUFFER` the number of calls the driver keeps open (default 2 × in flight).
//!
//! End to end means: prompt → client (limits, retries, cache lookup) → HTTP → mock →
//! answer stored in the SQLite response cache → row written to a Parquet file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, BooleanArray, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use retort_core::Message;
use retort_mock::{MockConfig, MockServer, RetryAfterStyle};
use retort_teacher::*;

// The `retort` binary runs on mimalloc; measure the client with the allocator it ships with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Scenario {
    name: &'static str,
    what: &'static str,
    n: usize,
    in_flight: usize,
    mock: fn() -> MockConfig,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "zero",
            what: "0 ms latency, 20,000 prompts, 256 in flight",
            n: 20_000,
            in_flight: 256,
            mock: || MockConfig::default(),
        },
        Scenario {
            name: "lat500",
            what: "500 ms latency, 5,120 prompts, 256 in flight (ideal 512 req/s)",
            n: 5_120,
            in_flight: 256,
            mock: || MockConfig {
                latency: Duration::from_millis(500),
                ..MockConfig::default()
            },
        },
        Scenario {
            name: "err500",
            what: "0 ms latency, 5% injected 500s, 20,000 prompts",
            n: 20_000,
            in_flight: 256,
            mock: || MockConfig {
                rate_500: 0.05,
                ..MockConfig::default()
            },
        },
        Scenario {
            name: "lat500_err500",
            what: "500 ms latency, 5% injected 500s, 5,120 prompts, 256 in flight",
            n: 5_120,
            in_flight: 256,
            mock: || MockConfig {
                latency: Duration::from_millis(500),
                rate_500: 0.05,
                ..MockConfig::default()
            },
        },
        Scenario {
            name: "lat500_long",
            what: "500 ms latency, 20,480 prompts, 256 in flight (ideal 40 s)",
            n: 20_480,
            in_flight: 256,
            mock: || MockConfig {
                latency: Duration::from_millis(500),
                ..MockConfig::default()
            },
        },
        Scenario {
            name: "lat500_err500_long",
            what: "500 ms latency, 5% injected 500s, 20,480 prompts, 256 in flight",
            n: 20_480,
            in_flight: 256,
            mock: || MockConfig {
                latency: Duration::from_millis(500),
                rate_500: 0.05,
                ..MockConfig::default()
            },
        },
        Scenario {
            name: "r429",
            what: "0 ms latency, 5% injected 429 (Retry-After 1 s), 20,000 prompts",
            n: 20_000,
            in_flight: 256,
            mock: || MockConfig {
                rate_429: 0.05,
                retry_after_ms: 1000,
                retry_after_style: RetryAfterStyle::Seconds,
                ..MockConfig::default()
            },
        },
        Scenario {
            name: "rss100k",
            what: "0 ms latency, 100,000 prompts (peak RSS)",
            n: 100_000,
            in_flight: 256,
            mock: || MockConfig::default(),
        },
    ]
}

fn vm_hwm_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

struct Rows {
    id: Vec<u64>,
    content: Vec<String>,
    tokens: Vec<u64>,
    cached: Vec<bool>,
}

impl Rows {
    fn new() -> Rows {
        Rows {
            id: Vec::new(),
            content: Vec::new(),
            tokens: Vec::new(),
            cached: Vec::new(),
        }
    }
    fn batch(&mut self, schema: &Arc<Schema>) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(UInt64Array::from(std::mem::take(&mut self.id))),
            Arc::new(StringArray::from(std::mem::take(&mut self.content))),
            Arc::new(UInt64Array::from(std::mem::take(&mut self.tokens))),
            Arc::new(BooleanArray::from(std::mem::take(&mut self.cached))),
        ];
        RecordBatch::try_new(schema.clone(), cols).expect("schema matches")
    }
}

struct Outcome {
    secs: f64,
    ok: usize,
    failed: usize,
    requests: u64,
    p50_clean_ms: f64,
}

/// Runs `n` prompts through the client into Parquet; returns timing and counts.
async fn pipeline(cl: Arc<Client>, n: usize, in_flight: usize, out: &std::path::Path) -> Outcome {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::UInt64, false),
        Field::new("content", DataType::Utf8, false),
        Field::new("tokens", DataType::UInt64, false),
        Field::new("cached", DataType::Boolean, false),
    ]));
    let file = std::fs::File::create(out).expect("create parquet");
    let mut writer = ArrowWriter::try_new(file, schema.clone(), None).expect("parquet writer");
    let mut rows = Rows::new();
    let (mut ok, mut failed) = (0usize, 0usize);
    let mut lat_ms: Vec<f32> = Vec::new();
    let t0 = Instant::now();
    let mut stream = futures::stream::iter(0..n)
        .map(|i| {
            let cl = cl.clone();
            async move {
                let r = ChatRequest {
                    messages: vec![Message::user(format!(
                        "Write one sentence about item number {i}."
                    ))],
                    max_tokens: Some(64),
                    ..Default::default()
                };
                let s = Instant::now();
                let a = cl.chat("bench", r).await;
                (i, a, s.elapsed())
            }
        })
        .buffer_unordered(
            std::env::var("BENCH_BUFFER")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(in_flight * 2),
        );
    while let Some((i, r, took)) = stream.next().await {
        match r {
            Ok(a) => {
                ok += 1;
                lat_ms.push(took.as_secs_f32() * 1000.0);
                rows.id.push(i as u64);
                rows.tokens
                    .push(a.usage.prompt_tokens + a.usage.completion_tokens);
                rows.content.push(a.content);
                rows.cached.push(a.cached);
                if rows.id.len() >= 8192 {
                    writer.write(&rows.batch(&schema)).expect("write parquet");
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("request {i} failed: {e}");
            }
        }
    }
    if !rows.id.is_empty() {
        writer.write(&rows.batch(&schema)).expect("write parquet");
    }
    writer.close().expect("close parquet");
    let secs = t0.elapsed().as_secs_f64();
    lat_ms.sort_by(|a, b| a.total_cmp(b));
    // Median latency of calls: shows whether calls not hit by an error were slowed.
    let p50 = lat_ms.get(lat_ms.len() / 2).copied().unwrap_or(f32::NAN) as f64;
    Outcome {
        secs,
        ok,
        failed,
        requests: 0,
        p50_clean_ms: p50,
    }
}

fn run_one(sc: &Scenario) {
    // The mock gets its own runtime thread, like a separate server process would.
    let (tx, rx) = std::sync::mpsc::channel();
    let mock_cfg = MockConfig {
        record: false,
        ..(sc.mock)()
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("mock runtime");
        rt.block_on(async move {
            let m = MockServer::start(mock_cfg).await.expect("mock start");
            tx.send(m.base_url()).expect("send addr");
            futures::future::pending::<()>().await;
        });
    });
    let base = rx.recv().expect("mock address");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = rt.block_on(async {
        let mut cfg = TeacherConfig::new(Provider::Openai, "mock-model");
        cfg.base_url = Some(base);
        cfg.max_in_flight = sc.in_flight;
        cfg.timeout_secs = 30.0;
        if let Ok(v) = std::env::var("BENCH_RETRY_BASE_MS") {
            cfg.retry_base_ms = v.parse().expect("BENCH_RETRY_BASE_MS");
        }
        let cache = Arc::new(ResponseCache::open(dir.path().join("cache.sqlite")).expect("cache"));
        let acc = Arc::new(Accounting::new(None));
        let shared = Arc::new(Shared::new(Some(cache.clone()), true, acc.clone()));
        let cl = Arc::new(Client::new(
            "bench",
            &cfg,
            http_backend(&cfg).expect("backend"),
            shared,
        ));
        let mut o = pipeline(
            cl.clone(),
            sc.n,
            sc.in_flight,
            &dir.path().join("out.parquet"),
        )
        .await;
        cache.flush().await.expect("cache flush");
        o.requests = acc.snapshot().total.requests;
        let hits = if sc.name == "zero" {
            let h = pipeline(cl, sc.n, sc.in_flight, &dir.path().join("again.parquet")).await;
            Some(h.ok as f64 / h.secs)
        } else {
            None
        };
        (o, hits)
    });
    let (o, hits) = out;
    let rate = o.ok as f64 / o.secs;
    println!(
        "RESULT\t{}\t{}\t{:.2}\t{:.0}\t{}\t{}\t{}\t{:.1}\t{:.0}\t{}",
        sc.name,
        sc.n,
        o.secs,
        rate,
        o.ok,
        o.failed,
        o.requests,
        o.p50_clean_ms,
        vm_hwm_mb(),
        hits.map(|h| format!("{h:.0}"))
            .unwrap_or_else(|| "-".into())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let all = scenarios();
    if let Some(p) = args.iter().position(|a| a == "--scenario") {
        let name = args.get(p + 1).expect("--scenario NAME");
        let sc = all
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no scenario {name}"));
        run_one(sc);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    println!("| scenario | prompts | time s | req/s | ok | failed | HTTP requests | p50 call ms | peak RSS MB | cache-hit pass req/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for sc in &all {
        let out = std::process::Command::new(&exe)
            .args(["--scenario", sc.name])
            .output()
            .expect("run scenario");
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find(|l| l.starts_with("RESULT\t")) {
            Some(line) => {
                let f: Vec<&str> = line.split('\t').collect();
                println!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    sc.what, f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10]
                );
            }
            None => println!(
                "| {} | scenario failed: {} |",
                sc.what,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ),
        }
    }
}
