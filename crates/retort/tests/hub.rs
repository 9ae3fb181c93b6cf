//! The dataset card and `retort push`, through the binary: shipped pipelines run (the
//! teachers behind the mock server), `retort card` writes README.md, whose front matter
//! parses (serde_yaml here, PyYAML in tests/consumer/check_card.py) and whose configs
//! `datasets` loads with the counts the manifest has; `retort push` against the local
//! Hub stand-in (crates/retort-hub/src/standin), which is itself checked against the
//! official `huggingface_hub` client (tests/consumer/hub_upload.py).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use retort_hub::standin::{store::Entry, Standin, StandinConfig};
use retort_store::Manifest;

/// A shipped pipeline copied into `d/pipelines/` beside the seeds it reads.
fn shipped(d: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(d.join("pipelines")).unwrap();
    std::fs::create_dir_all(d.join("seeds")).unwrap();
    std::fs::copy(repo_root().join("seeds/en.jsonl"), d.join("seeds/en.jsonl")).unwrap();
    let p = d.join("pipelines").join(name);
    std::fs::copy(repo_root().join("pipelines").join(name), &p).unwrap();
    p
}

fn front_matter(readme: &str) -> serde_yaml::Value {
    let rest = readme.strip_prefix("---\n").expect("card starts with ---");
    let end = rest.find("\n---\n").expect("front matter closed by ---");
    serde_yaml::from_str(&rest[..end]).expect("front matter is YAML")
}

fn check_card_py(folder: &Path) -> serde_json::Value {
    let o = Command::new("python3")
        .arg(repo_root().join("tests/consumer/check_card.py"))
        .arg(folder)
        .output()
        .expect("python3 is needed (pip install pyyaml datasets pyarrow)");
    assert!(o.status.success(), "check_card.py: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn rows_out(m: &Manifest, id: &str) -> u64 {
    m.steps.iter().find(|s| s.id == id).unwrap().rows_out
}

#[test]
fn card_of_the_shipped_spine_demo_parses_and_loads_with_the_manifest_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    shipped(d, "spine-demo.toml");
    let o = run(
        &[
            "run",
            "pipelines/spine-demo.toml",
            "--out",
            "run",
            "--card",
            "--set",
            "description=Seed tasks with an input, as SFT chats.",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no license declared"), "{}", text(&o));
    let run_dir = d.join("run");
    let m = Manifest::read(&run_dir).unwrap();
    let readme = std::fs::read_to_string(run_dir.join("README.md")).unwrap();
    // The exact command, --set and all, so a reader can make the dataset again.
    // (the tests run the binary with --quiet)
    let typed = "retort --quiet run pipelines/spine-demo.toml --out run --card --set 'description=Seed tasks with an input, as SFT chats.'";
    assert_eq!(m.command.as_deref(), Some(typed));
    assert!(readme.contains(&format!("```sh\n{typed}\n```")), "{readme}");

    // Rust: the front matter parses and says what the run made.
    let f = front_matter(&readme);
    let names: Vec<&str> = f["configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| c["config_name"].as_str().unwrap())
        .collect();
    // sft.jsonl is uploaded but not a config: datasets reads one format per repository.
    assert_eq!(names, ["sft", "alpaca"]);
    assert_eq!(f["configs"][0]["default"].as_bool(), Some(true));
    assert_eq!(
        f["configs"][0]["data_files"][0]["path"].as_str(),
        Some("sft.parquet")
    );
    assert_eq!(
        f["configs"][0]["data_files"][0]["split"].as_str(),
        Some("train")
    );
    assert!(
        f.get("license").is_none(),
        "no license key when none is declared"
    );
    let tags: Vec<&str> = f["tags"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"synthetic") && tags.contains(&"retort") && tags.contains(&"sft"),
        "{tags:?}"
    );
    assert_eq!(f["size_categories"][0].as_str(), Some("n<1K"));
    let info = |name: &str| {
        f["dataset_info"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|i| i["config_name"].as_str() == Some(name))
            .unwrap()
            .clone()
    };
    let with_input = rows_out(&m, "with_input");
    let seeds = rows_out(&m, "seeds");
    assert!(
        with_input > 0 && with_input < seeds,
        "{with_input} of {seeds}"
    );
    assert_eq!(
        info("sft")["splits"][0]["num_examples"].as_u64(),
        Some(with_input)
    );
    assert_eq!(
        info("alpaca")["splits"][0]["num_examples"].as_u64(),
        Some(seeds)
    );
    assert_eq!(
        info("sft")["features"][0]["name"].as_str(),
        Some("messages")
    );
    // The body: description, command, steps with rejections, the missing license.
    assert!(
        readme.contains("Seed tasks with an input, as SFT chats."),
        "{readme}"
    );
    assert!(
        readme.contains("retort --quiet run pipelines/spine-demo.toml"),
        "{readme}"
    );
    assert!(
        readme.contains(&format!(
            "| `with_input` | `filter` | done | {seeds} | {with_input} | 0 | filter: {} |",
            seeds - with_input
        )),
        "{readme}"
    );
    assert!(readme.contains("**No license declared.**"), "{readme}");
    assert!(readme.contains("terms of use"), "{readme}");
    assert!(readme.contains("No teacher model"), "{readme}");

    // Python: PyYAML parses it, `datasets` loads every config with these counts.
    let got = check_card_py(&run_dir);
    assert_eq!(got["sft"]["train"].as_u64(), Some(with_input));
    assert!(got.get("sft_jsonl").is_none());
    assert_eq!(got["alpaca"]["train"].as_u64(), Some(seeds));
    assert_eq!(got["_front"]["pretty_name"], "spine-demo");

    // `retort card` writes the same card elsewhere.
    let o = run(&["card", "run", "--out", "card.md"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read_to_string(d.join("card.md")).unwrap(), readme);
}

#[test]
fn card_of_the_shipped_sft_pipeline_declares_tier_splits_and_loads() {
    // sft.toml's teacher and embedder behind the mock: self-instruct gets Alpaca blocks
    // of varied tasks, the scorer scores from 4 to 9.
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        reply_fn: Some(std::sync::Arc::new(move |prompt: &str| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if prompt.contains("Reply with a JSON object only") {
                return format!(r#"{{"rationale": "clear", "score": {}}}"#, 4 + i % 6);
            }
            const WORDS: &[&str] = &[
                "apples",
                "rivers",
                "magnets",
                "volcanoes",
                "poetry",
                "taxes",
                "gardens",
                "robots",
                "clouds",
                "bridges",
                "music",
                "chess",
                "bread",
                "glaciers",
                "comets",
                "markets",
                "violins",
                "deserts",
                "bees",
                "trains",
                "maps",
                "lanterns",
                "coral",
                "satellites",
                "cheese",
                "kites",
                "owls",
                "tides",
            ];
            const FORMS: &[&str] = &[
                "Write a haiku about {a}.",
                "List three surprising facts about {a} and {b}.",
                "Explain why {a} matter to people who study {b}.",
                "Compare {a} with {b} in two sentences.",
                "Give a short recipe that somehow uses {a}.",
                "Summarise the history of {a} for a child.",
                "Argue for or against banning {a} near {b}.",
            ];
            (0..5)
                .map(|k| {
                    let j = i * 5 + k;
                    let task = FORMS[j % FORMS.len()]
                        .replace("{a}", WORDS[j % WORDS.len()])
                        .replace("{b}", WORDS[(j / WORDS.len() + 7 * j + 3) % WORDS.len()]);
                    format!(
                        "Instruction: {task}\nInput: <noinput>\nOutput: Here is a careful answer about it, number {j}, long enough to keep.\n###\n"
                    )
                })
                .collect()
        })),
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = shipped(d, "sft.toml");
    let mut t = std::fs::read_to_string(&p).unwrap();
    t = t.replace("parallel = 4\n", "");
    t = t.replace(
        "provider = \"local\"\nmodel = \"qwen2.5-coder-0.5b-instruct\"",
        &format!(
            "provider = \"openai\"\nbase_url = \"{}\"\nmodel = \"mock-model\"",
            mock.base_url()
        ),
    );
    t = t.replace(
        "[embedder]\nprovider = \"local\"",
        &format!(
            "[embedder]\nprovider = \"openai\"\nbase_url = \"{}\"\nmodel = \"mock-embed\"",
            mock.base_url()
        ),
    );
    std::fs::write(&p, t).unwrap();
    let o = run(
        &[
            "run",
            "pipelines/sft.toml",
            "--out",
            "run",
            "--set",
            "license=apache-2.0",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["card", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let run_dir = d.join("run");
    let m = Manifest::read(&run_dir).unwrap();
    let readme = std::fs::read_to_string(run_dir.join("README.md")).unwrap();
    let f = front_matter(&readme);
    assert_eq!(f["license"].as_str(), Some("apache-2.0"));
    let tiered = rows_out(&m, "tiered");
    assert!(tiered > 0, "{readme}");
    let by_tier = f["configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["config_name"].as_str() == Some("sft_by_tier"))
        .expect("the split_by export is a config")
        .clone();
    let splits: Vec<&str> = by_tier["data_files"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|df| df["split"].as_str().unwrap())
        .collect();
    assert!(
        !splits.is_empty() && !splits.contains(&"train"),
        "{splits:?}"
    );
    // The teacher is both writer and judge, with its model; the dedup steps are there.
    assert!(
        readme.contains("| `gen` | teacher, judge | openai | `mock-model` |"),
        "{readme}"
    );
    assert!(
        readme.contains("- `exact`:") && readme.contains("- `unique`:"),
        "{readme}"
    );
    assert!(
        readme.contains("Declared by the pipeline: `apache-2.0`."),
        "{readme}"
    );

    let got = check_card_py(&run_dir);
    assert_eq!(got["sft"]["train"].as_u64(), Some(tiered));
    let tier_rows: u64 = got["sft_by_tier"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(tier_rows, tiered);
}

#[test]
fn card_of_the_shipped_preference_pipeline_names_teachers_judge_and_pairs() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (strong, weak, judge) = rt.block_on(async {
        let strong = retort_mock::MockServer::start(retort_mock::MockConfig {
            reply_fn: Some(std::sync::Arc::new(|_: &str| {
                "GOOD: a complete answer <script>alert(1)</script> with an example.".to_string()
            })),
            ..Default::default()
        })
        .await
        .unwrap();
        let weak = retort_mock::MockServer::start(retort_mock::MockConfig {
            reply_fn: Some(std::sync::Arc::new(|_: &str| "meh".to_string())),
            ..Default::default()
        })
        .await
        .unwrap();
        let judge = retort_mock::MockServer::start(retort_mock::MockConfig {
            reply_fn: Some(std::sync::Arc::new(|prompt: &str| {
                let a = prompt.find("[Response A]").unwrap_or(0);
                let b = prompt.find("[Response B]").unwrap_or(0);
                let good = prompt.find("GOOD:").unwrap_or(0);
                let winner = if good > a && good < b { "A" } else { "B" };
                format!(r#"{{"rationale": "one is complete", "winner": "{winner}"}}"#)
            })),
            ..Default::default()
        })
        .await
        .unwrap();
        (strong, weak, judge)
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let p = shipped(d, "preference.toml");
    let mut t = std::fs::read_to_string(&p)
        .unwrap()
        .replace("parallel = 4\n", "");
    for (name, url, model) in [
        ("strong", strong.base_url(), "qwen2.5-coder-0.5b-instruct"),
        ("weak", weak.base_url(), "smollm2-135m-instruct"),
        ("judge", judge.base_url(), "qwen2.5-coder-1.5b-instruct"),
    ] {
        t = t.replace(
            &format!("[teachers.{name}]\nprovider = \"local\"\nmodel = \"{model}\""),
            &format!("[teachers.{name}]\nprovider = \"openai\"\nbase_url = \"{url}\"\nmodel = \"{name}-model\""),
        );
    }
    std::fs::write(&p, t).unwrap();
    let o = run(
        &[
            "run",
            "pipelines/preference.toml",
            "--out",
            "run",
            "--card",
            "--set",
            "step.judged.mode=pairwise",
            "--set",
            "license=mit",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let run_dir = d.join("run");
    let m = Manifest::read(&run_dir).unwrap();
    let readme = std::fs::read_to_string(run_dir.join("README.md")).unwrap();
    let f = front_matter(&readme);
    assert_eq!(f["license"].as_str(), Some("mit"));
    let tags: Vec<&str> = f["tags"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        tags.contains(&"dpo") && tags.contains(&"preference"),
        "{tags:?}"
    );
    assert!(
        readme.contains("| `strong` | teacher | openai | `strong-model` |"),
        "{readme}"
    );
    assert!(
        readme.contains("| `weak` | teacher | openai | `weak-model` |"),
        "{readme}"
    );
    assert!(
        readme.contains("| `judge` | judge | openai | `judge-model` |"),
        "{readme}"
    );
    // Example rows are escaped: the teacher's <script> is inert in the card.
    assert!(!readme.contains("<script>"), "{readme}");
    assert!(readme.contains("\\u003cscript\\u003e"), "{readme}");
    let pairs = rows_out(&m, "pairs");
    assert!(pairs > 0);
    let got = check_card_py(&run_dir);
    assert_eq!(got["dpo"]["train"].as_u64(), Some(pairs));
    assert_eq!(got["dpo_standard"]["train"].as_u64(), Some(pairs));
}

// ------------------------------------------------------------------------------------
// retort push against the stand-in
// ------------------------------------------------------------------------------------

const TOKEN: &str = "hf_standinSECRETtoken0123456789";

/// A run with a big Parquet export (over the stand-in's LFS threshold) and a small one.
fn push_run(d: &Path) -> PathBuf {
    push_jsonl(&d.join("big.jsonl"), 4_000);
    write(
        d,
        "p.toml",
        r#"name = "pushme"
description = "Rows for the push tests."
license = "apache-2.0"
[[step]]
id = "rows"
kind = "load"
path = "big.jsonl"
[[step]]
id = "few"
kind = "filter"
after = ["rows"]
keep = "score == 9 and len(input) > 0"
[[step]]
id = "big"
kind = "export"
after = ["rows"]
format = "alpaca"
path = "data/big.parquet"
[[step]]
id = "small"
kind = "export"
after = ["few"]
format = "alpaca"
path = "data/small.jsonl"
"#,
    );
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    d.join("run")
}

/// Rows whose answers carry 64 pseudo-random hex digits each, so the Parquet export
/// cannot compress below the LFS threshold (4,000 rows ≈ 130 KB of entropy), while the
/// filtered JSONL (score 9 with an input: 1 row in 30) stays far under it.
fn push_jsonl(path: &Path, n: u64) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..n {
        let mut noise = String::new();
        for _ in 0..4 {
            // splitmix64: deterministic, and no two rows share their digits.
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            write!(noise, "{:016x}", z ^ (z >> 31)).unwrap();
        }
        let input = if i % 3 == 0 {
            format!("input {i}")
        } else {
            String::new()
        };
        writeln!(
            out,
            r#"{{"id":"r{i}","instruction":"Task number {i}","input":"{input}","output":"Answer {i}: {noise}","score":{}}}"#,
            i % 10
        )
        .unwrap();
    }
    std::fs::write(path, out).unwrap();
}

fn standin(
    root: &Path,
    threshold: u64,
    multipart: Option<u64>,
) -> (tokio::runtime::Runtime, Standin) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut cfg = StandinConfig::new(root, TOKEN);
    cfg.lfs_threshold = threshold;
    cfg.multipart_chunk = multipart;
    let s = rt.block_on(Standin::start(cfg)).unwrap();
    (rt, s)
}

fn push(d: &Path, endpoint: &str, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retort"));
    c.arg("push").args(args).current_dir(d);
    c.env("HF_ENDPOINT", endpoint).env("RETORT_LOG", "debug");
    c.env_remove("HF_TOKEN");
    if let Some(t) = token {
        c.env("HF_TOKEN", t);
    }
    c.output().unwrap()
}

fn tree(s: &Standin, repo: &str, rev: &str) -> BTreeMap<String, Entry> {
    s.store().head("dataset", repo, rev).unwrap().unwrap().tree
}

fn assert_no_token_anywhere(o: &Output, token: &str, dirs: &[&Path]) {
    assert!(
        !text(o).contains(token),
        "the token leaked into the output: {}",
        text(o)
    );
    // A refused push may leave no directory behind at all: nothing stored, nothing leaked.
    for d in dirs.iter().filter(|d| d.exists()) {
        for f in walk(d) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "the token is stored in {}",
                f.display()
            );
        }
    }
}

#[test]
fn push_creates_the_repo_then_each_push_is_one_commit_and_parquet_goes_through_lfs() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run_dir = push_run(d);
    let big = std::fs::metadata(run_dir.join("data/big.parquet"))
        .unwrap()
        .len();
    let threshold = 64 * 1024;
    assert!(big > threshold, "big.parquet is {big} bytes");
    let hub = tmp.path().join("hub");
    let (_rt, s) = standin(&hub, threshold, None);

    let o = push(
        d,
        &s.url(),
        Some(TOKEN),
        &["run", "--repo", "acme/pushme", "--private"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("created"), "{}", text(&o));
    assert_no_token_anywhere(&o, TOKEN, &[&hub, &run_dir]);
    let meta = s.store().repo("dataset", "acme/pushme").unwrap().unwrap();
    assert_eq!(meta.visibility, "private");
    let h = s.store().history("dataset", "acme/pushme", "main").unwrap();
    assert_eq!(h.len(), 2, "the initial commit and the push");
    assert!(h[0].summary.contains("pushme"), "{}", h[0].summary);
    let t = tree(&s, "acme/pushme", "main");
    let paths: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            ".gitattributes",
            "README.md",
            "data/big.parquet",
            "data/small.jsonl"
        ]
    );
    assert!(
        t["data/big.parquet"].lfs,
        "the large Parquet goes through LFS"
    );
    assert!(!t["data/small.jsonl"].lfs && !t["README.md"].lfs);
    assert_eq!(s.hits("lfs_put"), 1);
    assert_eq!(s.hits("lfs_verify"), 1);
    for p in ["data/big.parquet", "data/small.jsonl"] {
        assert_eq!(
            s.store().read("dataset", "acme/pushme", "main", p).unwrap(),
            std::fs::read(run_dir.join(p)).unwrap(),
            "{p}"
        );
    }
    let card = String::from_utf8(
        s.store()
            .read("dataset", "acme/pushme", "main", "README.md")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(front_matter(&card)["license"].as_str(), Some("apache-2.0"));

    // A second push with more files: exactly one new commit; the unchanged big file
    // is neither uploaded again nor part of the commit.
    std::fs::write(run_dir.join("report.html"), "<html>report</html>").unwrap();
    let o = push(
        d,
        &s.url(),
        Some(TOKEN),
        &[
            "run",
            "--repo",
            "acme/pushme",
            "--include-pipeline",
            "--include-report",
            "--message",
            "Add the pipeline",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("created "), "{}", text(&o));
    let h2 = s.store().history("dataset", "acme/pushme", "main").unwrap();
    assert_eq!(h2.len(), 3, "one new commit");
    assert_eq!(h2[0].summary, "Add the pipeline");
    assert_eq!(h2[1].oid, h[0].oid);
    assert_eq!(s.hits("lfs_put"), 1, "big.parquet was not uploaded again");
    let t2 = tree(&s, "acme/pushme", "main");
    assert_eq!(t2["data/big.parquet"], t["data/big.parquet"]);
    let pipeline = String::from_utf8(
        s.store()
            .read("dataset", "acme/pushme", "main", "retort/pipeline.toml")
            .unwrap(),
    )
    .unwrap();
    assert!(
        pipeline.contains("name = \"pushme\"") && pipeline.contains("license = \"apache-2.0\""),
        "{pipeline}"
    );
    assert!(t2.contains_key("report.html"));

    // The same push again changes nothing: no commit.
    let o = push(
        d,
        &s.url(),
        Some(TOKEN),
        &[
            "run",
            "--repo",
            "acme/pushme",
            "--include-pipeline",
            "--include-report",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("nothing to push"), "{}", text(&o));
    assert_eq!(
        s.store()
            .history("dataset", "acme/pushme", "main")
            .unwrap()
            .len(),
        3
    );

    // --branch: created from main, committed to; main untouched.
    std::fs::write(run_dir.join("report.html"), "<html>report v2</html>").unwrap();
    let o = push(
        d,
        &s.url(),
        Some(TOKEN),
        &[
            "run",
            "--repo",
            "acme/pushme",
            "--branch",
            "v2",
            "--include-report",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("created branch v2"), "{}", text(&o));
    assert_eq!(
        s.store()
            .history("dataset", "acme/pushme", "main")
            .unwrap()
            .len(),
        3
    );
    let hv2 = s.store().history("dataset", "acme/pushme", "v2").unwrap();
    assert_eq!(hv2.len(), 4);
    assert_eq!(
        s.store()
            .read("dataset", "acme/pushme", "v2", "report.html")
            .unwrap(),
        b"<html>report v2</html>"
    );
    assert_no_token_anywhere(&o, TOKEN, &[&hub, &run_dir]);
}

#[test]
fn push_with_a_wrong_or_missing_token_says_what_to_do_and_never_prints_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run_dir = push_run(d);
    let hub = tmp.path().join("hub");
    let (_rt, s) = standin(&hub, 64 * 1024, None);
    let wrong = "hf_WRONGtokenTHATmustNOTleak42";
    let o = push(d, &s.url(), Some(wrong), &["run", "--repo", "acme/x"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("HTTP 401"), "{t}");
    assert!(t.contains("$HF_TOKEN was refused"), "{t}");
    assert!(t.contains("/settings/tokens"), "{t}");
    assert_no_token_anywhere(&o, wrong, &[&hub, &run_dir]);
    assert!(s.store().repo("dataset", "acme/x").unwrap().is_none());

    let o = push(d, &s.url(), None, &["run", "--repo", "acme/x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("$HF_TOKEN is not set"), "{}", text(&o));

    // --token-env names another variable; its value is used and not printed.
    let mut c = Command::new(env!("CARGO_BIN_EXE_retort"));
    let o = c
        .args([
            "push",
            "run",
            "--repo",
            "acme/x",
            "--token-env",
            "MY_HUB_TOKEN",
        ])
        .current_dir(d)
        .env("HF_ENDPOINT", s.url())
        .env("MY_HUB_TOKEN", TOKEN)
        .env("RETORT_LOG", "debug")
        .env_remove("HF_TOKEN")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_no_token_anywhere(&o, TOKEN, &[&hub, &run_dir]);
}

#[test]
fn push_uses_multipart_when_the_hub_offers_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run_dir = push_run(d);
    let hub = tmp.path().join("hub");
    let chunk = 50_000;
    let (_rt, s) = standin(&hub, 64 * 1024, Some(chunk));
    let o = push(d, &s.url(), Some(TOKEN), &["run", "--repo", "acme/parts"]);
    assert!(o.status.success(), "{}", text(&o));
    let big = std::fs::read(run_dir.join("data/big.parquet")).unwrap();
    assert_eq!(s.hits("lfs_part"), (big.len() as u64).div_ceil(chunk));
    assert_eq!(s.hits("lfs_complete"), 1);
    assert_eq!(s.hits("lfs_put"), 0);
    assert_eq!(
        s.store()
            .read("dataset", "acme/parts", "main", "data/big.parquet")
            .unwrap(),
        big
    );
}

#[test]
fn the_standin_stores_what_the_official_client_stores_and_retort_push_matches_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let run_dir = push_run(d);
    let hub = tmp.path().join("hub");
    let (_rt, s) = standin(&hub, 64 * 1024, None);

    // The folder retort push uploads: the card and the exports at their paths.
    let o = run(&["card", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let folder = d.join("folder");
    for p in ["README.md", "data/big.parquet", "data/small.jsonl"] {
        std::fs::create_dir_all(folder.join(p).parent().unwrap()).unwrap();
        std::fs::copy(run_dir.join(p), folder.join(p)).unwrap();
    }
    let o = Command::new("python3")
        .arg(repo_root().join("tests/consumer/hub_upload.py"))
        .args(["acme/by-python"])
        .arg(&folder)
        .env("HF_ENDPOINT", s.url())
        .env("HUB_TEST_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the official client failed against the stand-in: {}",
        text(&o)
    );
    assert!(!text(&o).contains(TOKEN));
    assert_eq!(
        s.hits("lfs_put"),
        1,
        "the official client took the LFS path"
    );

    let o = push(
        d,
        &s.url(),
        Some(TOKEN),
        &["run", "--repo", "acme/by-retort"],
    );
    assert!(o.status.success(), "{}", text(&o));

    let py = tree(&s, "acme/by-python", "main");
    let rt = tree(&s, "acme/by-retort", "main");
    assert_eq!(py, rt, "same paths, same bytes, same LFS/regular split");
    assert!(py["data/big.parquet"].lfs);
    assert_eq!(
        s.store()
            .history("dataset", "acme/by-python", "main")
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        s.store()
            .history("dataset", "acme/by-retort", "main")
            .unwrap()
            .len(),
        2
    );

    // And the official client's second upload of an unchanged folder is no commit, as
    // retort's is: the stand-in reports the oids the client compares.
    let o = Command::new("python3")
        .arg(repo_root().join("tests/consumer/hub_upload.py"))
        .args(["acme/by-python"])
        .arg(&folder)
        .env("HF_ENDPOINT", s.url())
        .env("HUB_TEST_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        s.store()
            .history("dataset", "acme/by-python", "main")
            .unwrap()
            .len(),
        2
    );
}
