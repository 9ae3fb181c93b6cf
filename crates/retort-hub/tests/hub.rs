//! retort-hub's card and push through its library API, on a run directory written
//! through the run-directory contract (manifest, step state, committed parts, exports
//! written by retort_store's exporter), against the local Hub stand-in — and the
//! stand-in against the official `huggingface_hub` client. The binary-level tests on
//! shipped pipelines are in crates/retort/tests/hub.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use retort_core::Record;
use retort_hub::standin::{store::Entry, Standin, StandinConfig};
use retort_hub::{push, Card, CardOptions, PushOptions};
use retort_store::{
    ExportFormat, Exporter, Manifest, RunDir, StepFileState, StepReport, MANIFEST_VERSION,
};
use retort_teacher::Secret;

const TOKEN: &str = "hf_libSECRETtoken9876543210abc";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut r = Record {
                id: format!("r{i}"),
                instruction: Some(format!("Task {i}: explain item {i} <b>bold</b>")),
                input: Some(if i % 3 == 0 {
                    format!("input {i}")
                } else {
                    String::new()
                }),
                output: Some(format!(
                    "Answer {i} with quite a few words {}",
                    i * 7919 % 104729
                )),
                ..Default::default()
            };
            r.labels.insert(
                "language".into(),
                if i % 4 == 0 { "zh" } else { "en" }.into(),
            );
            if i == 5 {
                r.labels.insert("language".into(), "und".into());
            }
            r
        })
        .collect()
}

/// A finished run: `rows` (n records) → exports `big` (data/big.parquet) and `small`
/// (first 10 rows, data/small.jsonl). `license` is optional.
fn fake_run(dir: &Path, n: usize, license: Option<&str>) {
    let rd = RunDir::new(dir);
    let recs = records(n);
    std::fs::create_dir_all(rd.step("rows").dir()).unwrap();
    retort_store::write_records_atomic(&rd.step("rows").part(0), &recs).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    for (id, path, rs) in [
        ("big", "data/big.parquet", &recs[..]),
        ("small", "data/small.jsonl", &recs[..n.min(10)]),
    ] {
        let mut e = Exporter::create(&dir.join(path), ExportFormat::Alpaca).unwrap();
        e.write(rs).unwrap();
        e.finish().unwrap();
        std::fs::create_dir_all(rd.step(id).dir()).unwrap();
        let st = StepFileState {
            done: true,
            rows: 0,
            rows_in: rs.len() as u64,
            outputs: vec![PathBuf::from(path)],
            ..Default::default()
        };
        std::fs::write(rd.step(id).state(), serde_json::to_vec(&st).unwrap()).unwrap();
    }
    let mut pipeline = serde_json::json!({
        "name": "libtest",
        "description": "Rows for the library tests.",
        "teachers": {"gen": {"provider": "openai", "model": "gen-model", "api_key_env": "X"}},
        "step": [
            {"id": "rows", "kind": "load", "path": "rows.jsonl"},
            {"id": "big", "kind": "export", "after": ["rows"], "format": "alpaca", "path": "data/big.parquet"},
            {"id": "small", "kind": "export", "after": "rows", "format": "alpaca", "paths": ["data/small.jsonl"]}
        ]
    });
    if let Some(l) = license {
        pipeline["license"] = l.into();
    }
    let step = |id: &str, kind: &str, rows_in: u64, rows_out: u64| StepReport {
        id: id.into(),
        kind: kind.into(),
        status: "done".into(),
        rows_in,
        rows_out,
        ..Default::default()
    };
    let m = Manifest {
        schema_version: MANIFEST_VERSION,
        name: "libtest".into(),
        retort_version: "0.1.0".into(),
        pipeline_file: "p.toml".into(),
        command: None,
        pipeline_hash: "abc123".into(),
        pipeline,
        status: "complete".into(),
        resumed: false,
        started_at: "2026-12-02T00:00:00Z".into(),
        finished_at: Some("2026-12-02T00:01:00Z".into()),
        steps: vec![
            step("rows", "load", n as u64, n as u64),
            step("big", "export", n as u64, 0),
            step("small", "export", n.min(10) as u64, 0),
        ],
        failures: 0,
        rejections: 0,
        teachers: Default::default(),
        outputs: vec![],
    };
    std::fs::write(rd.manifest(), serde_json::to_vec_pretty(&m).unwrap()).unwrap();
}

fn front(readme: &str) -> serde_yaml::Value {
    let rest = readme.strip_prefix("---\n").unwrap();
    serde_yaml::from_str(&rest[..rest.find("\n---\n").unwrap()]).unwrap()
}

#[test]
fn the_card_declares_configs_features_languages_and_loads_with_datasets() {
    let tmp = tempfile::tempdir().unwrap();
    fake_run(tmp.path(), 50, Some("cc-by-4.0"));
    let (path, card) = retort_hub::write_card(tmp.path(), None, &CardOptions::default()).unwrap();
    assert!(!card.license_missing);
    let readme = std::fs::read_to_string(&path).unwrap();
    let f = front(&readme);
    assert_eq!(f["license"].as_str(), Some("cc-by-4.0"));
    assert_eq!(
        f["language"],
        serde_yaml::from_str::<serde_yaml::Value>("[en, zh]").unwrap()
    );
    // One file format per repository (datasets picks one builder for all configs): the
    // JSONL export is uploaded beside the Parquet one but is not a config.
    assert_eq!(f["configs"].as_sequence().unwrap().len(), 1);
    assert_eq!(f["configs"][0]["config_name"].as_str(), Some("big"));
    assert!(
        readme.contains(
            "| `small` | `train` | `data/small.jsonl` | `alpaca` (jsonl) | 10 | not a config"
        ),
        "{readme}"
    );
    assert_eq!(
        f["dataset_info"][0]["splits"][0]["num_examples"].as_u64(),
        Some(50)
    );
    assert!(
        readme.contains("also labelled, not declared: `und`"),
        "{readme}"
    );
    assert!(
        readme.contains("| `gen` | declared, not called | openai | `gen-model` |"),
        "{readme}"
    );
    assert!(
        !readme.contains("<b>"),
        "HTML in the data stays escaped: {readme}"
    );

    let o = Command::new("python3")
        .arg(repo_root().join("tests/consumer/check_card.py"))
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(got["big"]["train"], 50);
    assert!(got.get("small").is_none());
}

#[test]
fn without_a_license_the_card_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    fake_run(tmp.path(), 5, None);
    let card = Card::build(tmp.path(), &CardOptions::default()).unwrap();
    assert!(card.license_missing);
    let text = card.render();
    assert!(front(&text).get("license").is_none());
    assert!(text.contains("**No license declared.**"));
}

/// Captures every log line (all targets, debug) while `f` runs.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let b2 = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || b2.clone())
        .finish();
    let out = tracing::subscriber::with_default(sub, f);
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    (out, text)
}

struct Hub {
    rt: tokio::runtime::Runtime,
    s: Standin,
}

fn hub(root: &Path, threshold: u64, multipart: Option<u64>) -> Hub {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = StandinConfig::new(root, TOKEN);
    cfg.lfs_threshold = threshold;
    cfg.multipart_chunk = multipart;
    let s = rt.block_on(Standin::start(cfg)).unwrap();
    Hub { rt, s }
}

fn opts(h: &Hub, repo: &str, token: &str) -> PushOptions {
    PushOptions {
        repo: repo.into(),
        endpoint: h.s.url(),
        token: Secret::new(token),
        token_env: "HF_TOKEN".into(),
        private: false,
        message: None,
        revision: None,
        include_report: false,
        include_pipeline: false,
    }
}

fn tree(h: &Hub, repo: &str, rev: &str) -> BTreeMap<String, Entry> {
    h.s.store()
        .head("dataset", repo, rev)
        .unwrap()
        .unwrap()
        .tree
}

fn no_token_in_files(dir: &Path, token: &str) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            no_token_in_files(&p, token);
        } else {
            let b = std::fs::read(&p).unwrap();
            assert!(
                !b.windows(token.len()).any(|w| w == token.as_bytes()),
                "token in {}",
                p.display()
            );
        }
    }
}

#[test]
fn push_creates_then_commits_once_per_push_lfs_for_large_files_and_no_op_when_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    fake_run(&run, 20_000, Some("mit"));
    let big = std::fs::metadata(run.join("data/big.parquet"))
        .unwrap()
        .len();
    let threshold = 64 * 1024;
    assert!(big > threshold, "{big}");
    let h = hub(&tmp.path().join("hub"), threshold, None);

    let (out, logs) = logged(|| {
        h.rt.block_on(push(&run, &opts(&h, "acme/lib", TOKEN)))
            .unwrap()
    });
    assert!(
        !logs.contains(TOKEN) && !format!("{out:?}").contains(TOKEN),
        "{logs}"
    );
    assert!(out.created_repo && out.commit_oid.is_some());
    assert_eq!(out.lfs_files, ["data/big.parquet"]);
    assert_eq!(out.regular_files, ["README.md", "data/small.jsonl"]);
    let hist = h.s.store().history("dataset", "acme/lib", "main").unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(Some(hist[0].oid.clone()), out.commit_oid);
    let t = tree(&h, "acme/lib", "main");
    assert!(t["data/big.parquet"].lfs && !t["README.md"].lfs);
    assert_eq!(h.s.hits("lfs_put"), 1);
    assert_eq!(
        h.s.store()
            .read("dataset", "acme/lib", "main", "data/big.parquet")
            .unwrap(),
        std::fs::read(run.join("data/big.parquet")).unwrap()
    );

    // Unchanged: no commit, nothing uploaded.
    let out =
        h.rt.block_on(push(&run, &opts(&h, "acme/lib", TOKEN)))
            .unwrap();
    assert!(out.commit_oid.is_none() && !out.created_repo);
    assert_eq!(out.unchanged.len(), 3);
    assert_eq!(
        h.s.store()
            .history("dataset", "acme/lib", "main")
            .unwrap()
            .len(),
        2
    );

    // One more file: exactly one commit, the big file not sent again.
    let mut o = opts(&h, "acme/lib", TOKEN);
    o.include_pipeline = true;
    o.message = Some("Add the pipeline".into());
    let out = h.rt.block_on(push(&run, &o)).unwrap();
    assert_eq!(out.regular_files, ["retort/pipeline.toml"]);
    let hist = h.s.store().history("dataset", "acme/lib", "main").unwrap();
    assert_eq!(hist.len(), 3);
    assert_eq!(hist[0].summary, "Add the pipeline");
    assert_eq!(h.s.hits("lfs_put"), 1);

    // A branch.
    let mut o = opts(&h, "acme/lib", TOKEN);
    o.revision = Some("v2".into());
    o.include_pipeline = true;
    std::fs::write(run.join("report.html"), "<p>r</p>").unwrap();
    o.include_report = true;
    let out = h.rt.block_on(push(&run, &o)).unwrap();
    assert!(out.created_branch);
    assert_eq!(
        h.s.store()
            .history("dataset", "acme/lib", "v2")
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        h.s.store()
            .history("dataset", "acme/lib", "main")
            .unwrap()
            .len(),
        3
    );
    no_token_in_files(tmp.path(), TOKEN);
}

#[test]
fn an_interrupted_lfs_upload_resumes_without_sending_stored_objects_again() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    fake_run(&run, 20_000, Some("mit"));
    let h = hub(&tmp.path().join("hub"), 64 * 1024, None);
    // The object reached the Hub but the commit never happened (the push was cut).
    let big = std::fs::read(run.join("data/big.parquet")).unwrap();
    let oid = retort_hub::gitoid::sha256_hex(&big);
    let p = h.s.store().object(true, &oid);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &big).unwrap();
    let out =
        h.rt.block_on(push(&run, &opts(&h, "acme/resume", TOKEN)))
            .unwrap();
    assert_eq!(out.lfs_already_stored, ["data/big.parquet"]);
    assert_eq!(h.s.hits("lfs_put"), 0);
    assert!(tree(&h, "acme/resume", "main")["data/big.parquet"].lfs);
}

#[test]
fn multipart_uploads_when_offered() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    fake_run(&run, 20_000, Some("mit"));
    let chunk = 40_000;
    let h = hub(&tmp.path().join("hub"), 64 * 1024, Some(chunk));
    h.rt.block_on(push(&run, &opts(&h, "acme/mp", TOKEN)))
        .unwrap();
    let big = std::fs::read(run.join("data/big.parquet")).unwrap();
    assert_eq!(h.s.hits("lfs_part"), (big.len() as u64).div_ceil(chunk));
    assert_eq!(h.s.hits("lfs_complete"), 1);
    assert_eq!(
        h.s.store()
            .read("dataset", "acme/mp", "main", "data/big.parquet")
            .unwrap(),
        big
    );
}

#[test]
fn a_wrong_token_is_a_clear_error_without_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    fake_run(&run, 10, None);
    let h = hub(&tmp.path().join("hub"), 64 * 1024, None);
    let wrong = "hf_WRONGlibTOKENneverPRINTED";
    let (r, logs) = logged(|| h.rt.block_on(push(&run, &opts(&h, "acme/x", wrong))));
    let e = r.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 401")
            && e.contains("$HF_TOKEN was refused")
            && e.contains("/settings/tokens"),
        "{e}"
    );
    assert!(!e.contains(wrong) && !logs.contains(wrong), "{e}\n{logs}");
    assert!(h.s.store().repo("dataset", "acme/x").unwrap().is_none());
}

#[test]
fn the_official_client_and_push_store_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    fake_run(&run, 20_000, Some("mit"));
    // Two stand-ins, so each upload stores its own LFS object.
    let h = hub(&tmp.path().join("hub-py"), 64 * 1024, None);
    let h2 = hub(&tmp.path().join("hub-rt"), 64 * 1024, None);
    // The folder a push uploads: the card plus the exports at their paths.
    let folder = tmp.path().join("folder");
    std::fs::create_dir_all(folder.join("data")).unwrap();
    retort_hub::write_card(
        &run,
        Some(&folder.join("README.md")),
        &CardOptions::default(),
    )
    .unwrap();
    for p in ["data/big.parquet", "data/small.jsonl"] {
        std::fs::copy(run.join(p), folder.join(p)).unwrap();
    }
    let py = |repo: &str| {
        Command::new("python3")
            .arg(repo_root().join("tests/consumer/hub_upload.py"))
            .arg(repo)
            .arg(&folder)
            .env("HF_ENDPOINT", h.s.url())
            .env("HUB_TEST_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let o = py("acme/data");
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success(),
        "the official client failed against the stand-in: {t}"
    );
    assert!(!t.contains(TOKEN));
    assert_eq!(
        h.s.hits("lfs_put"),
        1,
        "the official client took the LFS path"
    );
    assert_eq!(h.s.hits("lfs_verify"), 1);
    h2.rt
        .block_on(push(&run, &opts(&h2, "acme/data", TOKEN)))
        .unwrap();
    assert_eq!(h2.s.hits("lfs_put"), 1);
    assert_eq!(
        tree(&h, "acme/data", "main"),
        tree(&h2, "acme/data", "main")
    );
    assert!(tree(&h, "acme/data", "main")["data/big.parquet"].lfs);
    // The client's second upload of the same folder is no commit, like push's.
    let o = py("acme/data");
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        h.s.store()
            .history("dataset", "acme/data", "main")
            .unwrap()
            .len(),
        2
    );
}
