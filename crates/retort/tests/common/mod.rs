//! Helpers shared by the binary's integration tests: running `retort`, reading its
//! outputs back through pyarrow, and the mock-server pipelines the engine tests use.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn retort() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retort"));
    c.arg("--quiet");
    c
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn run(args: &[&str], dir: &Path) -> Output {
    retort().args(args).current_dir(dir).output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn pyarrow_check(format: &str, path: &Path) {
    let script = repo_root().join("tests/consumer/check_export.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(format)
        .arg(path)
        .output()
        .expect("python3 is needed for the consumer check (pip install pyarrow)");
    assert!(
        o.status.success(),
        "pyarrow rejected {} as {format}: {}",
        path.display(),
        text(&o)
    );
}

pub fn py(code: &str) -> String {
    let o = Command::new("python3")
        .arg("-c")
        .arg(code)
        .output()
        .unwrap();
    assert!(o.status.success(), "python failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

pub fn manifest(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// Runs `p.toml` into `out` and SIGKILLs it once step `step` has committed `parts`
/// parts but not finished; returns that step's folder.
pub fn kill_mid_step(d: &Path, out: &str, step: &str, parts: usize) -> PathBuf {
    let mut child = retort()
        .args(["run", "p.toml", "--out", out])
        .current_dir(d)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let step_dir = d.join(out).join("steps").join(step);
    wait_for_parts(&step_dir, parts);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let state = std::fs::read_to_string(step_dir.join("state.json")).unwrap();
    assert!(
        state.contains("\"done\": false"),
        "the kill should land mid-step: {state}"
    );
    step_dir
}

/// Waits (at most 60 s) until a step folder holds `n` committed part files.
pub fn wait_for_parts(step_dir: &Path, n: usize) {
    let start = Instant::now();
    loop {
        let parts = std::fs::read_dir(step_dir)
            .map(|r| {
                r.filter(|e| {
                    e.as_ref()
                        .map(|e| e.file_name().to_string_lossy().starts_with("part-"))
                        .unwrap_or(false)
                })
                .count()
            })
            .unwrap_or(0);
        if parts >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} never committed {n} parts",
            step_dir.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A JSONL of `n` Alpaca-shaped rows; every 3rd row has an input.
pub fn big_jsonl(path: &Path, n: usize) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..n {
        let input = if i % 3 == 0 {
            format!("input {i}")
        } else {
            String::new()
        };
        writeln!(
            f,
            r#"{{"id":"r{i}","instruction":"Task number {i}: explain item {i}","input":"{input}","output":"Answer {i} with some words","score":{}}}"#,
            i % 10
        )
        .unwrap();
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A mock server on its own runtime (kept alive by the returned handle).
pub fn start_mock(
    cfg: retort_mock::MockConfig,
) -> (tokio::runtime::Runtime, retort_mock::MockServer) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = rt.block_on(retort_mock::MockServer::start(cfg)).unwrap();
    (rt, mock)
}

/// `n` prompts and a load → respond → export pipeline against `base`, with extra
/// teacher keys.
pub fn respond_pipeline(d: &Path, base: &str, n: usize, concurrency: usize, teacher_extra: &str) {
    let rows: String = (0..n)
        .map(|i| {
            format!(
                "{{\"id\": \"p{i}\", \"instruction\": \"Question {i}: explain topic {}.\"}}\n",
                i % 97
            )
        })
        .collect();
    write(d, "prompts.jsonl", &rows);
    write(
        d,
        "p.toml",
        &format!(
            r#"
name = "engine"
[teachers.api]
provider = "openai"
base_url = "{base}"
model = "mock-model"
max_in_flight = {concurrency}
retry_base_ms = 5
retry_max_ms = 50
{teacher_extra}
[[step]]
id = "prompts"
kind = "load"
path = "prompts.jsonl"
[[step]]
id = "answers"
kind = "respond"
after = ["prompts"]
teacher = "api"
concurrency = {concurrency}
max_tokens = 64
[[step]]
id = "out"
kind = "export"
after = ["answers"]
format = "alpaca"
path = "out.parquet"
"#
        ),
    );
}

/// Sorted (id, output) pairs of an export, with the row count and distinct ids.
pub fn export_rows(path: &Path) -> String {
    py(&format!(
        "import pyarrow.parquet as pq, hashlib\n\
t=pq.read_table('{}').to_pylist()\n\
rows=sorted((r['instruction'], r['output']) for r in t)\n\
print(len(t), len(set(r['instruction'] for r in t)), hashlib.sha256(repr(rows).encode()).hexdigest()[:16])",
        path.display()
    ))
}

pub fn failure_classes(run_dir: &Path) -> String {
    py(&format!(
        "import pyarrow.parquet as pq, collections\n\
t=pq.read_table('{}').to_pylist()\n\
print(sorted(collections.Counter(r['class'] for r in t).items()))",
        run_dir.join("failures.parquet").display()
    ))
}
