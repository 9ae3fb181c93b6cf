//! Integration tests that drive the `retort` binary on pipelines in temp dirs and read
//! the outputs back (Parquet through pyarrow, like a training script would).

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn spine_pipeline_exports_every_sft_format_readable_by_pyarrow() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::copy(repo_root().join("seeds/en.jsonl"), d.join("en.jsonl")).unwrap();
    write(
        d,
        "p.toml",
        r#"
name = "formats"
[[step]]
id = "seeds"
kind = "load"
path = "en.jsonl"
[[step]]
id = "some"
kind = "filter"
after = ["seeds"]
keep = "category == 'math' or category == 'code'"
[[step]]
id = "messages"
kind = "export"
after = ["some"]
format = "messages"
paths = ["out/messages.parquet", "out/messages.jsonl"]
[[step]]
id = "alpaca"
kind = "export"
after = ["some"]
format = "alpaca"
paths = ["out/alpaca.parquet", "out/alpaca.jsonl"]
[[step]]
id = "sharegpt"
kind = "export"
after = ["some"]
format = "sharegpt"
paths = ["out/sharegpt.parquet", "out/sharegpt.jsonl"]
"#,
    );
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let run_dir = d.join("run");
    for (fmt, stem) in [
        ("messages", "messages"),
        ("alpaca", "alpaca"),
        ("sharegpt", "sharegpt"),
    ] {
        for ext in ["parquet", "jsonl"] {
            pyarrow_check(fmt, &run_dir.join(format!("out/{stem}.{ext}")));
        }
    }
    // 12 code + 14 math seeds.
    let n = py(&format!(
        "import pyarrow.parquet as pq; t=pq.read_table('{}'); print(t.num_rows)",
        run_dir.join("out/messages.parquet").display()
    ));
    assert_eq!(n, "26");
    let m = manifest(&run_dir.join("manifest.json"));
    assert_eq!(m["status"], "complete");
    assert_eq!(m["rejections"], 171 - 26);
    let steps = m["steps"].as_array().unwrap();
    assert_eq!(steps[1]["rows_in"], 171);
    assert_eq!(steps[1]["rows_out"], 26);
    assert_eq!(steps[1]["rejected"]["filter"], 145);

    // Re-running the same command skips every finished step.
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let m = manifest(&run_dir.join("manifest.json"));
    assert_eq!(m["resumed"], true);
    for s in m["steps"].as_array().unwrap() {
        assert_eq!(s["status"], "skipped (unchanged)", "{s}");
    }

    // A changed step re-runs itself and everything downstream, not its upstream.
    let o = run(
        &[
            "run",
            "p.toml",
            "--out",
            "run",
            "--set",
            "step.some.keep=category == 'math'",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    let m = manifest(&run_dir.join("manifest.json"));
    let st = |id: &str| {
        m["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(st("seeds")["status"], "skipped (unchanged)");
    assert_eq!(st("some")["status"], "done");
    assert_eq!(st("some")["rows_out"], 14);
    assert_eq!(st("messages")["status"], "done");
}

#[test]
fn every_bad_input_is_reported_at_once_with_exit_2_and_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "bad.jinja", "Hello {% if x %} never closed\n");
    write(
        d,
        "p.toml",
        r#"name = "bad"
colour = "blue"

[[step]]
id = "seeds"
kind = "load"
path = "missing.jsonl"

[[step]]
id = "seeds"
kind = "filter"
after = ["seeds"]
keep = "x > 1"

[[step]]
id = "mystery"
kind = "frobnicate"

[[step]]
id = "f"
kind = "filter"
after = ["nowhere"]
keep = "x > 1"

[[step]]
id = "typo"
kind = "limit"
after = ["f"]
n = "ten"

[[step]]
id = "a"
kind = "filter"
after = ["b"]
keep = "x > 1"

[[step]]
id = "b"
kind = "filter"
after = ["a"]
keep = "x > 1"

[[step]]
id = "extra"
kind = "filter"
after = ["f"]
keep = "x > 1"
bogus_key = 3

[[step]]
id = "tpl"
kind = "self_instruct"
after = ["f"]
teacher = "ghost"
template = "bad.jinja"
"#,
    );
    let o = run(&["run", "p.toml", "--out", "run"], d);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    let expect = [
        ("p.toml:2", "unknown top-level key `colour`"),
        ("step `seeds`", "missing.jsonl does not exist"),
        ("step `seeds`", "duplicate step id"),
        ("step `mystery`", "unknown step kind `frobnicate`"),
        ("step `f`", "input `nowhere` is not a step"),
        ("step `typo`", "invalid type"),
        ("", "cycle"),
        ("step `extra`", "bogus_key"),
        ("step `tpl`", "ghost"),
        ("step `tpl`", "bad.jinja"),
    ];
    for (loc, msg) in expect {
        assert!(
            out.lines().any(|l| l.contains(loc) && l.contains(msg)),
            "missing `{loc}` … `{msg}` in:\n{out}"
        );
    }
    // Line numbers: the unknown key of `extra` is on its own line.
    let extra_line = std::fs::read_to_string(d.join("p.toml"))
        .unwrap()
        .lines()
        .position(|l| l.starts_with("bogus_key"))
        .unwrap()
        + 1;
    assert!(
        out.contains(&format!("p.toml:{extra_line}: step `extra`")),
        "{out}"
    );
    assert!(out.contains("hint:"), "{out}");
    assert!(
        !d.join("run").exists(),
        "a failed compile must write nothing"
    );

    let o = run(&["validate", "p.toml"], d);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bad_line_names_file_and_line_or_goes_to_failures_with_skip() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "in.jsonl",
        "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\": broken\n{\"instruction\":\"c\",\"output\":\"d\"}\n",
    );
    let p = r#"
name = "badline"
[[step]]
id = "l"
kind = "load"
path = "in.jsonl"
[[step]]
id = "e"
kind = "export"
after = ["l"]
format = "alpaca"
path = "out.parquet"
"#;
    write(d, "p.toml", p);
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("in.jsonl") && out.contains("line 2"), "{out}");
    assert!(out.contains("on_error"), "{out}");
    assert!(
        !d.join("run/out.parquet").exists(),
        "no output after a failed run"
    );
    let m = manifest(&d.join("run/manifest.json"));
    assert_eq!(m["status"], "failed");

    write(
        d,
        "p.toml",
        &p.replace(
            "path = \"in.jsonl\"",
            "path = \"in.jsonl\"\non_error = \"skip\"",
        ),
    );
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let got = py(&format!(
        "import pyarrow.parquet as pq; t=pq.read_table('{}').to_pylist(); print(len(t), t[0]['class'], 'broken' in t[0]['raw'], t[0]['step'])",
        d.join("run/failures.parquet").display()
    ));
    assert_eq!(got, "1 bad_input True l");
    let n = py(&format!(
        "import pyarrow.parquet as pq; print(pq.read_table('{}').num_rows)",
        d.join("run/out.parquet").display()
    ));
    assert_eq!(n, "2");
}

#[test]
fn sigkill_mid_step_then_rerun_gives_the_same_records_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    big_jsonl(&d.join("big.jsonl"), 400_000);
    write(
        d,
        "p.toml",
        r#"
name = "crash"
[[step]]
id = "l"
kind = "load"
path = "big.jsonl"
batch_size = 4000
[[step]]
id = "f"
kind = "filter"
after = ["l"]
keep = "score >= 3"
[[step]]
id = "e"
kind = "export"
after = ["f"]
format = "alpaca"
path = "out.parquet"
"#,
    );
    // Uninterrupted reference run.
    let o = run(&["run", "p.toml", "--out", "ref"], d);
    assert!(o.status.success(), "{}", text(&o));

    // Interrupted run: SIGKILL once the load step has committed a few parts but is
    // not finished.
    kill_mid_step(d, "crashed", "l", 3);
    assert!(!d.join("crashed/out.parquet").exists());

    let o = run(&["run", "p.toml", "--out", "crashed"], d);
    assert!(o.status.success(), "{}", text(&o));
    let m = manifest(&d.join("crashed/manifest.json"));
    assert_eq!(m["resumed"], true);
    let load = &m["steps"][0];
    assert!(
        load["resumed_rows"].as_u64().unwrap() >= 8000,
        "the load step should continue after its committed batches: {load}"
    );
    let cmp = py(&format!(
        "import pyarrow.parquet as pq\n\
a=pq.read_table('{}').column('instruction').to_pylist()\n\
b=pq.read_table('{}').column('instruction').to_pylist()\n\
print(len(a), len(b), len(set(b)), sorted(a)==sorted(b))",
        d.join("ref/out.parquet").display(),
        d.join("crashed/out.parquet").display()
    ));
    assert_eq!(cmp, "280000 280000 280000 True");
}

#[test]
fn limit_reads_the_first_rows_and_a_full_run_after_it_redoes_the_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    big_jsonl(&d.join("a.jsonl"), 7);
    big_jsonl(&d.join("b.jsonl"), 20);
    write(
        d,
        "p.toml",
        r#"
name = "trial"
[[step]]
id = "l"
kind = "load"
paths = ["a.jsonl", "b.jsonl"]
batch_size = 4
# Both files number their rows r0, r1, …
duplicate_ids = "renumber"
[[step]]
id = "e"
kind = "export"
after = ["l"]
format = "alpaca"
path = "out.jsonl"
"#,
    );
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    // 10 rows: all 7 of a.jsonl and the first 3 of b.jsonl, over batch boundaries.
    let o = run(&["run", "p.toml", "--limit", "10", "--out", "r"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(lines(&d.join("r/out.jsonl")), 10);
    let m = manifest(&d.join("r/manifest.json"));
    assert_eq!(m["pipeline"]["step"][0]["limit"], 10, "{m}");
    assert_eq!(m["steps"][0]["rows_out"], 10, "{m}");

    // Same directory without --limit: the load's configuration changed, so nothing of
    // the trial counts as done.
    let o = run(&["run", "p.toml", "--out", "r"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(lines(&d.join("r/out.jsonl")), 27);

    let plan = text(&run(&["plan", "p.toml", "--limit", "5"], d));
    assert!(plan.contains("the first 5 records"), "{plan}");
    assert!(
        plan.contains("rows:   ≤ 5\n"),
        "the estimate counts the limit: {plan}"
    );
    let o = run(&["run", "p.toml", "--limit", "0"], d);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn inspect_and_plan_describe_files_and_pipelines() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::copy(repo_root().join("seeds/en.jsonl"), d.join("en.jsonl")).unwrap();
    write(
        d,
        "p.toml",
        r#"
name = "insp"
[[step]]
id = "seeds"
kind = "load"
path = "en.jsonl"
[[step]]
id = "out"
kind = "export"
after = ["seeds"]
format = "alpaca"
path = "a.parquet"
"#,
    );
    let o = run(&["plan", "p.toml"], d);
    assert!(o.status.success(), "{}", text(&o));
    let plan = text(&o);
    assert!(plan.contains("seeds [load · source]"), "{plan}");
    assert!(plan.contains("out [export · streaming] ← seeds"), "{plan}");
    assert!(plan.contains("rows:   ≤ 171"), "{plan}");
    let o = run(&["run", "p.toml", "--out", "r"], d);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["inspect", "r/a.parquet", "--rows", "1"], d);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("171"), "{t}");
    assert!(t.contains("instruction"), "{t}");
}

/// A teacher + embedder pipeline against the mock OpenAI server: answers, scores,
/// embeddings, semantic dedup, clusters, report, export. Injected 500s must not lose a
/// record; a second run must make zero requests; the API key must appear nowhere.
#[test]
fn http_teacher_pipeline_is_cached_complete_and_never_leaks_the_key() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let canary = "sk-canary-7f3a9c1e5b";
    let server = rt
        .block_on(retort_mock::MockServer::start(retort_mock::MockConfig {
            require_key: Some(canary.to_string()),
            rate_500: 0.05,
            embedding_dim: 32,
            rules: vec![retort_mock::ReplyRule {
                pattern: regex::Regex::new(r"(?s)strict, fair reviewer").unwrap(),
                reply: r#"{"rationale": "clear and correct", "score": 7}"#.to_string(),
            }],
            ..Default::default()
        }))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let seeds: String = std::fs::read_to_string(repo_root().join("seeds/en.jsonl"))
        .unwrap()
        .lines()
        .take(40)
        .map(|l| format!("{l}\n"))
        .collect();
    write(d, "seeds.jsonl", &seeds);
    write(
        d,
        "p.toml",
        &format!(
            r#"
name = "http"
[teachers.api]
provider = "openai"
base_url = "{base}"
model = "mock-model"
api_key_env = "RETORT_TEST_KEY"
max_retries = 6
retry_base_ms = 5
retry_max_ms = 50
price_input_per_mtok = 1.0
price_output_per_mtok = 2.0

[embedder]
provider = "openai"
base_url = "{base}"
model = "mock-embed"
api_key_env = "RETORT_TEST_KEY"

[[step]]
id = "seeds"
kind = "load"
path = "seeds.jsonl"
[[step]]
id = "answers"
kind = "respond"
after = ["seeds"]
teacher = "api"
max_tokens = 128
[[step]]
id = "scored"
kind = "score"
after = ["answers"]
teacher = "api"
aspects = ["quality"]
[[step]]
id = "vec"
kind = "embed"
after = ["scored"]
[[step]]
id = "unique"
kind = "dedup"
after = ["vec"]
mode = "semantic"
threshold = 0.99
[[step]]
id = "clusters"
kind = "cluster"
after = ["unique"]
k = 3
[[step]]
id = "report"
kind = "report"
after = ["clusters"]
[[step]]
id = "sft"
kind = "export"
after = ["clusters"]
format = "messages"
path = "sft.parquet"
"#,
            base = server.base_url()
        ),
    );
    let run_once = || {
        retort()
            .args(["run", "p.toml", "--out", "run", "--log-format", "json"])
            .env("RETORT_TEST_KEY", canary)
            .env("RETORT_LOG", "debug")
            .current_dir(d)
            .output()
            .unwrap()
    };
    let o = run_once();
    let log1 = text(&o);
    assert!(o.status.success(), "{log1}");
    let first_requests = server.requests();
    assert!(first_requests >= 40 + 40, "{first_requests}");

    // No record lost: every seed is in the export or in failures.
    let got = py(&format!(
        "import pyarrow.parquet as pq\n\
ok=pq.read_table('{}').num_rows\n\
f=pq.read_table('{}').to_pylist()\n\
d=pq.read_table('{}').num_rows\n\
print(ok, len(f), d)",
        d.join("run/sft.parquet").display(),
        d.join("run/failures.parquet").display(),
        d.join("run/steps/unique/duplicates.parquet").display()
    ));
    let nums: Vec<usize> = got.split(' ').map(|x| x.parse().unwrap()).collect();
    assert_eq!(
        nums[0] + nums[1] + nums[2],
        40,
        "exported + failed + deduplicated: {got}"
    );
    let html = std::fs::read_to_string(d.join("run/report.html")).unwrap();
    // Regression: the page was rendered while the exports were still running and said so
    // for good; it is refreshed when the run ends.
    assert!(
        !html.contains(">running</span>") && !html.contains(">waiting</span>"),
        "the report shows the run as it ended"
    );
    assert!(
        html.contains(">complete</span>"),
        "run status in the report"
    );
    // Regression: the Teachers table's model cell was empty.
    assert!(
        html.contains("<td><code>mock-model</code></td>"),
        "the report names the teacher's model"
    );
    let m = manifest(&d.join("run/manifest.json"));
    assert!(
        m["teachers"]["total"]["cost_usd"].as_f64().unwrap() > 0.0,
        "{m}"
    );

    // Second run of the same command: everything from checkpoints, zero requests.
    let o = run_once();
    let log2 = text(&o);
    assert!(o.status.success(), "{log2}");
    assert_eq!(
        server.requests(),
        first_requests,
        "a repeated run must send nothing"
    );
    let m = manifest(&d.join("run/manifest.json"));
    assert_eq!(m["steps"][1]["status"], "skipped (unchanged)", "{m}");
    assert_eq!(
        m["steps"][1]["rows_in"], 40,
        "a skipped step reports the rows it took in"
    );

    // A fresh run re-executes every step but answers from the cache: still zero requests.
    let o = retort()
        .args(["run", "p.toml", "--out", "run", "--fresh"])
        .env("RETORT_TEST_KEY", canary)
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // --fresh removes the checkpoints but keeps cache.sqlite, so no request is repeated.
    assert_eq!(server.requests(), first_requests);

    // The key is nowhere: not in logs, not in any file of the run directory.
    assert!(!log1.contains(canary) && !log2.contains(canary));
    for entry in walk(&d.join("run")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
            "the API key leaked into {}",
            entry.display()
        );
    }
    // …while the mock did receive it (so the test would notice a missing key).
    assert!(server
        .log()
        .iter()
        .any(|r| r.header("authorization") == Some(&format!("Bearer {canary}"))));
}

/// `max_budget_usd` covers a run directory, not one invocation: re-running a run that
/// hit its budget must not spend it again.
#[test]
fn budget_spans_resumed_invocations() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(retort_mock::MockServer::start(Default::default()))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    big_jsonl(&d.join("seeds.jsonl"), 60);
    write(
        d,
        "p.toml",
        &format!(
            r#"
name = "budget"
max_budget_usd = 0.02
[teachers.api]
provider = "openai"
base_url = "{}"
model = "mock-model"
max_in_flight = 2
price_input_per_mtok = 1000.0
price_output_per_mtok = 1000.0
[[step]]
id = "seeds"
kind = "load"
path = "seeds.jsonl"
[[step]]
id = "answers"
kind = "respond"
after = ["seeds"]
teacher = "api"
"#,
            server.base_url()
        ),
    );
    let spent = || {
        manifest(&d.join("run/manifest.json"))["teachers"]["spent_usd"]
            .as_f64()
            .unwrap()
    };
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(
        !o.status.success(),
        "the budget should stop the run: {}",
        text(&o)
    );
    let first = server.requests();
    assert!(first > 0 && first < 60, "{first} requests");
    let spent1 = spent();
    assert!(spent1 >= 0.02, "spent {spent1}");

    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("budget"), "{}", text(&o));
    assert_eq!(
        server.requests(),
        first,
        "the resumed run spent the budget again"
    );
    assert!((spent() - spent1).abs() < 1e-9, "spend carried over");
}

/// Preference data end to end over HTTP: two teachers answer, a judge compares both
/// orders, `pair` builds chosen/rejected, and both TRL DPO formats load in pyarrow with
/// the expected columns and the better teacher always chosen.
#[test]
fn preference_pipeline_writes_trl_dpo_files_with_the_better_answer_chosen() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (strong, weak, judge) = rt.block_on(async {
        let strong = retort_mock::MockServer::start(retort_mock::MockConfig {
            reply_fn: Some(std::sync::Arc::new(|_: &str| {
                "GOOD: a complete, correct answer with an example.".to_string()
            })),
            // The model id the endpoint reports is what lands in chosen_model.
            model: "strong-model".into(),
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
        // A judge that prefers whichever side holds the GOOD answer, in either order.
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
    let seeds: String = std::fs::read_to_string(repo_root().join("seeds/en.jsonl"))
        .unwrap()
        .lines()
        .take(10)
        .map(|l| format!("{l}\n"))
        .collect();
    write(d, "seeds.jsonl", &seeds);
    let teacher = |name: &str, url: String| {
        format!("[teachers.{name}]\nprovider = \"openai\"\nbase_url = \"{url}\"\nmodel = \"{name}-model\"\n")
    };
    write(
        d,
        "p.toml",
        &format!(
            r#"name = "pref"
{}{}{}
[[step]]
id = "seeds"
kind = "load"
path = "seeds.jsonl"
[[step]]
id = "answers"
kind = "respond"
after = ["seeds"]
teachers = ["strong", "weak"]
[[step]]
id = "judged"
kind = "judge"
after = ["answers"]
teacher = "judge"
mode = "pairwise"
[[step]]
id = "pairs"
kind = "pair"
after = ["judged"]
[[step]]
id = "dpo"
kind = "export"
after = ["pairs"]
format = "dpo_conversational"
paths = ["dpo.parquet", "dpo.jsonl"]
[[step]]
id = "dpo_standard"
kind = "export"
after = ["pairs"]
format = "dpo"
path = "dpo_standard.parquet"
"#,
            teacher("strong", strong.base_url()),
            teacher("weak", weak.base_url()),
            teacher("judge", judge.base_url())
        ),
    );
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let run_dir = d.join("run");
    pyarrow_check("dpo_conversational", &run_dir.join("dpo.parquet"));
    pyarrow_check("dpo_conversational", &run_dir.join("dpo.jsonl"));
    pyarrow_check("dpo", &run_dir.join("dpo_standard.parquet"));
    let got = py(&format!(
        "import pyarrow.parquet as pq\n\
t=pq.read_table('{}').to_pylist()\n\
ok=all(r['chosen'][0]['role']=='assistant' and r['chosen'][0]['content'].startswith('GOOD') and r['rejected'][0]['content']=='meh' and r['chosen_model']=='strong-model' and r['margin']>0 and r['prompt'][0]['role']=='user' for r in t)\n\
s=pq.read_table('{}').to_pylist()\n\
ok2=all(isinstance(r['prompt'],str) and r['chosen'].startswith('GOOD') for r in s)\n\
print(len(t), len(s), ok, ok2, '' if ok else t[0])",
        run_dir.join("dpo.parquet").display(),
        run_dir.join("dpo_standard.parquet").display()
    ));
    assert_eq!(got, "10 10 True True");
    // Every prompt was judged in both orders: 2 calls per prompt.
    assert_eq!(judge.chat_requests(), 20);
}

// ------------------------------------------------------------------------------------
// The teacher-call engine through the binary: continuous calls, outages, transient
// faults left pending, --retry-failed, resume after completion-order commits.
// ------------------------------------------------------------------------------------

#[test]
fn a_server_down_for_seconds_mid_run_loses_nothing() {
    // The server stops answering (connections refused and reset) for 2 s after 300
    // requests. The old engine committed those records as `connect` failures, or its
    // breaker opened for good and stopped the step.
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        latency: Duration::from_millis(5),
        outage_after: Some((300, Duration::from_secs(2))),
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 1000, 32, "breaker_cooldown_secs = 0.2");
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mock.outages(), 1, "the outage happened");
    let rows = export_rows(&d.join("run/out.parquet"));
    assert!(rows.starts_with("1000 1000 "), "{rows}");
    assert_eq!(failure_classes(&d.join("run")), "[]");
}

#[test]
fn an_outage_past_max_outage_leaves_records_pending_and_the_same_command_finishes() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        latency: Duration::from_millis(5),
        outage_after: Some((300, Duration::from_secs(4))),
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(
        d,
        &mock.base_url(),
        1000,
        32,
        "breaker_cooldown_secs = 0.2\nmax_outage_secs = 1",
    );
    let t0 = Instant::now();
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(
        !o.status.success(),
        "the step stops while the server is down"
    );
    let out = text(&o);
    assert!(out.contains("has been down for"), "{out}");
    assert!(out.contains("run the same command again"), "{out}");
    // Nothing transient became a failure row; the manifest says so.
    assert_eq!(failure_classes(&d.join("run")), "[]");
    let m = manifest(&d.join("run/manifest.json"));
    assert_eq!(m["status"], "failed");
    // Wait for the server to come back (it accepts connections again), then the same
    // command finishes the job.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(t0.elapsed()));
    while std::net::TcpStream::connect(mock.addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the mock never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let rows = export_rows(&d.join("run/out.parquet"));
    assert!(rows.starts_with("1000 1000 "), "{rows}");
    assert_eq!(failure_classes(&d.join("run")), "[]");
}

#[test]
fn retry_failed_redoes_the_chosen_classes_only() {
    // Prompts 7 and 13 get unusable bodies for their first 3 attempts each (the client
    // tries an unusable body 3 times), so the first run records them as bad_response;
    // --retry-failed bad_response asks again and gets answers.
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        error_rules: vec![retort_mock::ErrorRule {
            pattern: regex::Regex::new(r"^Question (7|13):").unwrap(),
            times: 6,
            error: retort_mock::Injected::InvalidJson,
        }],
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 50, 4, "");
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(export_rows(&d.join("run/out.parquet")).starts_with("48 48 "));
    assert_eq!(failure_classes(&d.join("run")), "[('bad_response', 2)]");
    // Another class: nothing to redo, nothing asked.
    let before = mock.chat_requests();
    let o = run(
        &["run", "p.toml", "--out", "run", "--retry-failed", "parse"],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mock.chat_requests(), before);
    assert_eq!(failure_classes(&d.join("run")), "[('bad_response', 2)]");
    // The chosen class: exactly the two records are asked again.
    let o = run(
        &[
            "run",
            "p.toml",
            "--out",
            "run",
            "--retry-failed",
            "bad_response",
        ],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mock.chat_requests(), before + 2);
    assert!(export_rows(&d.join("run/out.parquet")).starts_with("50 50 "));
    assert_eq!(failure_classes(&d.join("run")), "[]");
}

#[test]
fn sigkill_during_completion_order_commits_then_rerun_equals_an_uninterrupted_run() {
    // Long-tailed latency makes records finish out of order, so the killed run's
    // commits have gaps; the rerun must fill exactly those.
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        latency_mean: Some(Duration::from_millis(20)),
        latency_sigma: 1.0,
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 4000, 64, "");
    let o = run(&["run", "p.toml", "--out", "ref"], d);
    assert!(o.status.success(), "{}", text(&o));
    let reference = export_rows(&d.join("ref/out.parquet"));
    assert!(reference.starts_with("4000 4000 "), "{reference}");

    let step_dir = kill_mid_step(d, "crashed", "answers", 2);
    // The committed positions are not a prefix: records finished out of order.
    let gaps = py(&format!(
        "import pyarrow.parquet as pq, json, glob\n\
done=set(x for p in glob.glob('{}/part-*.parquet') for a,b in json.loads(pq.read_metadata(p).metadata[b'retort.done']) for x in range(a,b))\n\
print(len(done)>0 and max(done)+1>len(done))",
        step_dir.display()
    ));
    assert_eq!(gaps, "True", "expected completion-order commits with gaps");
    let o = run(&["run", "p.toml", "--out", "crashed"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(export_rows(&d.join("crashed/out.parquet")), reference);
}

#[test]
fn one_slow_call_holds_only_its_own_slot() {
    // Prompt 0's request takes 2 s; the other 1,999 take 5 ms at 64 in flight. The old
    // engine committed per 1,024-record batch in input order, so the slow call held its
    // whole batch (and the next batch waited for it): part 0 came after 2 s with
    // record 0 and 1,023 others. Now the others are committed as they finish and the
    // slow record comes alone at the end.
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        latency: Duration::from_millis(5),
        hang_for: Duration::from_secs(2),
        error_rules: vec![retort_mock::ErrorRule {
            pattern: regex::Regex::new(r"^Question 0:").unwrap(),
            times: 1,
            error: retort_mock::Injected::Hang,
        }],
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 2000, 64, "timeout_secs = 10");
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let parts = py(&format!(
        "import pyarrow.parquet as pq, glob\n\
ps=sorted(glob.glob('{}/part-*.parquet'))\n\
ids=[pq.read_table(p).column('id').to_pylist() for p in ps]\n\
print(sum(len(i) for i in ids[:-1]), ids[-1])",
        d.join("run/steps/answers").display()
    ));
    assert_eq!(parts, "1999 ['p0']");
    assert!(export_rows(&d.join("run/out.parquet")).starts_with("2000 2000 "));
}
