//! A run directory you can trust (issue 13), through the binary: no secret reaches
//! anything retort writes or prints, one writer per run directory, checkpoints that are
//! verified before they are believed, a cache that never blocks, clean signals.

mod common;

use common::*;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const CANARY_KEY: &str = "sk-echo-canary-51d0c3a9e7";
const CANARY_HEADER: &str = "hdr-echo-canary-4455";

/// Replies in the shape each step kind's prompt asks for, every one carrying `{{AUTH}}`
/// (which the mock replaces with the key it received).
fn leaky_reply(counter: Arc<AtomicUsize>) -> retort_mock::ReplyFn {
    Arc::new(move |user: &str| {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        if user.contains("come up with a set of") {
            (0..3)
                .map(|i| {
                    let k = i + 1;
                    format!(
                        "{k}. Instruction: Describe invention number {n}{i} and who made it {{{{AUTH}}}}\n\
                         {k}. Input:\n<noinput>\n{k}. Output:\nIt was made long ago {{{{AUTH}}}}.\n###\n"
                    )
                })
                .collect()
        } else if user.contains("#The Given Prompt#") || user.contains("#Given Prompt#") {
            format!("Rewrite {n}: explain this in depth, with three examples {{{{AUTH}}}}.")
        } else if user.contains("[Human]") {
            "[Human] Tell me more about it {{AUTH}}\n[AI] Here is more {{AUTH}}.\n".to_string()
        } else if user.contains("compare the two responses") {
            r#"{"rationale": "A is clearer {{AUTH}}", "winner": "A"}"#.to_string()
        } else if user.contains("strict, fair reviewer") {
            r#"{"rationale": "fine {{AUTH}}", "score": 7}"#.to_string()
        } else if user.contains("Write a short label") {
            "Inventions {{AUTH}}".to_string()
        } else {
            format!("Answer {n} {{{{AUTH}}}}: {user}")
        }
    })
}

fn leak_pipeline(d: &Path, base: &str) {
    let seeds: String = [
        "How do tides work?",
        "Name three prime numbers.",
        "Why is the sky blue? LEAK-CONTENT",
        "Summarise the plot of Hamlet. LEAK-4XX",
        "Translate 'good morning' into French. LEAK-HTML",
        "Explain recursion to a child.",
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| {
        format!("{{\"id\": \"s{i}\", \"instruction\": \"{s}\", \"output\": \"A seed answer.\"}}\n")
    })
    .collect();
    write(d, "seeds.jsonl", &seeds);
    // The generators take demos from their input: keep the markers out of them, so the
    // 4xx and non-JSON echoes hit `respond` only.
    let clean: String = seeds
        .lines()
        .filter(|l| !l.contains("LEAK"))
        .map(|l| format!("{l}\n"))
        .collect();
    write(d, "clean.jsonl", &clean);
    write(
        d,
        "p.toml",
        &format!(
            r#"
name = "leak"
[teachers.api]
provider = "openai"
base_url = "{base}"
model = "mock-model"
api_key_env = "RETORT_TEST_ECHO_KEY"
headers = {{ "X-Extra-Token" = "{CANARY_HEADER}" }}
retry_base_ms = 5
retry_max_ms = 50
breaker_min_failures = 1000

[embedder]
provider = "openai"
base_url = "{base}"
model = "mock-embed"
api_key_env = "RETORT_TEST_ECHO_KEY"

[[step]]
id = "seeds"
kind = "load"
path = "seeds.jsonl"
[[step]]
id = "clean"
kind = "load"
path = "clean.jsonl"
[[step]]
id = "grown"
kind = "self_instruct"
after = ["clean"]
teacher = "api"
target = 4
max_calls = 4
num_tasks = 3
[[step]]
id = "evolved"
kind = "evol_instruct"
after = ["clean"]
teacher = "api"
answer_teacher = "api"
rounds = 1
[[step]]
id = "chats"
kind = "self_chat"
after = ["clean"]
teacher = "api"
max_turns = 2
[[step]]
id = "answers"
kind = "respond"
after = ["seeds"]
teacher = "api"
samples = 2
temperature = 0.7
[[step]]
id = "judged"
kind = "judge"
after = ["answers"]
teacher = "api"
mode = "pairwise"
[[step]]
id = "scored"
kind = "score"
after = ["judged"]
teacher = "api"
aspects = ["quality"]
[[step]]
id = "vec"
kind = "embed"
after = ["scored"]
[[step]]
id = "clusters"
kind = "cluster"
after = ["vec"]
k = 2
label_teacher = "api"
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
[[step]]
id = "chat_out"
kind = "export"
after = ["chats"]
format = "messages"
path = "chats.jsonl"
[[step]]
id = "evol_out"
kind = "export"
after = ["evolved"]
format = "alpaca"
path = "evolved.jsonl"
[[step]]
id = "grown_out"
kind = "export"
after = ["grown"]
format = "alpaca"
path = "grown.jsonl"
"#
        ),
    );
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Item 1: a server that reflects the key in a 4xx body, a 2xx non-JSON body, valid
/// answers of every teacher-calling step kind and a response header; with debug logs
/// on, no byte under the run directory (cache.sqlite included) and no byte of stdout or
/// stderr holds the key or the header value.
#[test]
fn a_key_echoed_by_the_server_reaches_no_file_and_no_log() {
    let counter = Arc::new(AtomicUsize::new(0));
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        echo_auth: true,
        reply_fn: Some(leaky_reply(counter)),
        embedding_dim: 16,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    leak_pipeline(d, &mock.base_url());
    let o = retort()
        .args(["run", "p.toml", "--out", "run"])
        .env("RETORT_TEST_ECHO_KEY", CANARY_KEY)
        .env("RETORT_LOG", "debug")
        .current_dir(d)
        .output()
        .unwrap();
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    // The server did echo it (else this test proves nothing)…
    assert!(mock.log().iter().any(|r| r.last_user.contains("LEAK-4XX")));
    // …and the two failure rows say what happened without the key.
    let classes = failure_classes(&d.join("run"));
    assert_eq!(classes, "[('bad_response', 2), ('http_4xx', 2)]");
    // …every teacher-calling kind ran…
    let m = manifest(&d.join("run/manifest.json"));
    for step in m["steps"].as_array().unwrap() {
        assert_eq!(step["status"], "done", "{step}");
        if step["kind"] != "report" && step["kind"] != "export" {
            assert!(step["rows_out"].as_u64().unwrap() > 0, "{step}");
        }
    }
    for secret in [CANARY_KEY, CANARY_HEADER] {
        assert!(!log.contains(secret), "a secret in the output: {log}");
        for f in walk(&d.join("run")) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!contains(&bytes, secret), "a secret in {}", f.display());
        }
    }
    // The echoes did reach the cache, scrubbed.
    let cache = std::fs::read(d.join("run/cache.sqlite")).unwrap();
    assert!(
        contains(&cache, "[redacted]"),
        "the echoes reached the cache"
    );
}

/// Item 2: a second `retort run` on a directory a run is writing fails at once with
/// exit 1, naming the holder's PID and `--out`; the first run pays for each prompt
/// once. Before the lock both ran: 2× the requests and mixed answers.
#[test]
fn a_second_run_on_the_same_directory_is_refused_and_nothing_is_paid_twice() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        latency: std::time::Duration::from_millis(20),
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 400, 8, "");
    let mut first = retort()
        .args(["run", "p.toml", "--out", "run"])
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_parts(&d.join("run/steps/answers"), 1);
    let started = std::time::Instant::now();
    let second = run(&["run", "p.toml", "--out", "run"], d);
    let msg = text(&second);
    assert_eq!(second.status.code(), Some(1), "{msg}");
    assert!(
        started.elapsed().as_secs() < 5,
        "refused at once, not after waiting"
    );
    assert!(msg.contains(&format!("pid {}", first.id())), "{msg}");
    assert!(msg.contains("--out"), "{msg}");
    // `retort report` into the directory is a writer too; inspect is a reader.
    let rep = run(&["report", "run"], d);
    assert_eq!(rep.status.code(), Some(1), "{}", text(&rep));
    assert!(first.wait().unwrap().success());
    assert_eq!(mock.chat_requests(), 400, "each prompt paid for once");
    let rows = export_rows(&d.join("run/out.parquet"));
    assert!(rows.starts_with("400 400 "), "{rows}");
    // The lock dies with its holder: the same command now runs (and skips everything).
    let again = run(&["run", "p.toml", "--out", "run"], d);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(mock.chat_requests(), 400);
}

/// Item 3: a finished step whose part file was deleted is recomputed (from the cache:
/// no new request) with a warning naming the file, instead of being read as empty — the
/// old code rewrote the export with 0 rows and exited 0.
#[test]
fn a_deleted_part_of_a_finished_step_is_recomputed_not_read_as_empty() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 2000, 32, "");
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let want = export_rows(&d.join("run/out.parquet"));
    assert!(want.starts_with("2000 2000 "), "{want}");
    let paid = mock.chat_requests();

    let part = d.join("run/steps/answers/part-00000.parquet");
    std::fs::remove_file(&part).unwrap();
    let o = run(&["run", "p.toml", "--out", "run"], d);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("part-00000.parquet is missing"), "{log}");
    assert_eq!(export_rows(&d.join("run/out.parquet")), want);
    assert_eq!(mock.chat_requests(), paid, "recomputed from the cache");

    // A deleted export is written again, not skipped as done.
    std::fs::remove_file(d.join("run/out.parquet")).unwrap();
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(export_rows(&d.join("run/out.parquet")), want);
}

/// Item 3: a truncated part of an interrupted step (a disk fault, a copy cut short) is
/// dropped with a warning and its records recomputed; the old code failed every resume
/// with "Corrupt footer … run the same command again".
#[test]
fn a_truncated_part_of_an_interrupted_step_is_recomputed_on_resume() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        latency: std::time::Duration::from_millis(2),
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 3000, 16, "");
    let step = kill_mid_step(d, "run", "answers", 2);
    let part = step.join("part-00000.parquet");
    let len = std::fs::metadata(&part).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&part).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let o = run(&["run", "p.toml", "--out", "run"], d);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("part-00000.parquet is unreadable"), "{log}");
    let rows = export_rows(&d.join("run/out.parquet"));
    assert!(rows.starts_with("3000 3000 "), "{rows}");
}

/// Item 3 for side tables: a deleted `duplicates.parquet` makes the dedup step run
/// again, so the report and card never lose the removed pairs.
#[test]
fn a_deleted_side_table_is_recomputed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let rows: String = (0..50)
        .map(|i| {
            format!(
                "{{\"id\": \"r{i}\", \"instruction\": \"Task {}\", \"output\": \"x\"}}\n",
                i % 20
            )
        })
        .collect();
    write(d, "rows.jsonl", &rows);
    write(
        d,
        "p.toml",
        r#"
name = "side"
[[step]]
id = "rows"
kind = "load"
path = "rows.jsonl"
[[step]]
id = "unique"
kind = "dedup"
after = ["rows"]
mode = "exact"
[[step]]
id = "out"
kind = "export"
after = ["unique"]
format = "alpaca"
path = "out.jsonl"
"#,
    );
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let side = d.join("run/steps/unique/duplicates.parquet");
    let before = std::fs::read(&side).unwrap();
    std::fs::remove_file(&side).unwrap();
    let o = run(&["run", "p.toml", "--out", "run"], d);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("duplicates.parquet is missing"), "{log}");
    let after = py(&format!(
        "import pyarrow.parquet as pq\nprint(pq.read_table('{}').num_rows)",
        side.display()
    ));
    assert_eq!(after, "30", "{} bytes before", before.len());
}

/// Item 4: a truncated `cache.sqlite` is moved aside with a warning and the run goes on
/// (the old code stopped every run with "database disk image is malformed", even with
/// `--no-cache`); `--no-cache` never opens the file.
#[test]
fn a_broken_cache_is_set_aside_and_no_cache_never_opens_it() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 3000, 32, "");
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    let want = export_rows(&d.join("run/out.parquet"));
    let cache = d.join("run/cache.sqlite");
    let len = std::fs::metadata(&cache).unwrap().len();
    assert!(len > 100_000, "{len}");
    let cut = |p: &Path| {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(len / 2).unwrap();
    };
    cut(&cache);
    let broken = std::fs::read(&cache).unwrap();

    // --no-cache: runs, and the broken file is exactly as it was (never opened).
    let o = run(
        &["run", "p.toml", "--out", "run", "--fresh", "--no-cache"],
        d,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::read(&cache).unwrap(), broken);
    assert_eq!(export_rows(&d.join("run/out.parquet")), want);

    // Without it: moved aside with a warning, the run goes on with an empty cache.
    let o = run(&["run", "p.toml", "--out", "run", "--fresh"], d);
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(log.contains("moved it aside to"), "{log}");
    let aside: Vec<_> = std::fs::read_dir(d.join("run"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("cache.sqlite.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "one moved-aside file");
    assert_eq!(export_rows(&d.join("run/out.parquet")), want);
}

/// Item 5: SIGTERM (what `kill`, a scheduler or `docker stop` send) and SIGHUP stop a
/// run like Ctrl-C: the calls under way are committed, the manifest says
/// `interrupted`, the failure tables are gathered, the exit code is 128 + the signal and
/// the message says how to resume; the resumed run equals an uninterrupted one and
/// leaves no temp file. The old code exited 143 silently with the manifest `running`.
#[test]
fn sigterm_and_sighup_stop_cleanly_and_the_same_command_resumes() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        latency: std::time::Duration::from_millis(20),
        rate_bad_prompt: 0.02,
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 3000, 16, "");
    let o = run(&["run", "p.toml", "--out", "reference"], d);
    assert!(o.status.success(), "{}", text(&o));
    let want = export_rows(&d.join("reference/out.parquet"));

    for (sig, code) in [("TERM", 143), ("HUP", 129)] {
        let out = format!("run-{sig}");
        // `--fresh` starts this run over; the command the message offers to resume it
        // must not, or it would throw away the progress it says is kept.
        let child = retort()
            .args(["run", "p.toml", "--out", &out, "--fresh"])
            .current_dir(d)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_parts(&d.join(&out).join("steps/answers"), 2);
        let sent = std::time::Instant::now();
        let k = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(k.success());
        let o = child.wait_with_output().unwrap();
        let log = text(&o);
        assert_eq!(o.status.code(), Some(code), "SIG{sig}: {log}");
        assert!(
            sent.elapsed().as_secs() < 8,
            "stopped within the grace period"
        );
        assert!(log.contains(&format!("interrupted by SIG{sig}")), "{log}");
        let again = log
            .lines()
            .find_map(|l| l.split_once("run the same command again to resume: "))
            .map(|(_, cmd)| cmd.trim().to_string())
            .unwrap_or_else(|| panic!("no resume command in {log}"));
        assert!(
            again.ends_with(&format!("run p.toml --out {out}")),
            "{again}"
        );
        let m = manifest(&d.join(&out).join("manifest.json"));
        assert_eq!(m["status"], "interrupted", "{m}");
        assert_eq!(m["steps"][1]["status"], "interrupted", "{m}");
        assert!(
            d.join(&out).join("failures.parquet").exists(),
            "failure tables gathered"
        );

        let o = run(&["run", "p.toml", "--out", &out], d);
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            export_rows(&d.join(&out).join("out.parquet")),
            want,
            "SIG{sig}"
        );
        let temps: Vec<_> = walk(&d.join(&out))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".retort-tmp-"))
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
    }
}

/// Item 5: an export's temp file left by a SIGKILL is removed when the run resumes.
#[test]
fn temp_files_of_a_killed_run_are_removed_on_resume() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        record: false,
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(d, &mock.base_url(), 50, 8, "");
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    // What a kill between an export's create and its rename leaves behind.
    let debris = d.join("run/.out.parquet.retort-tmp-99999-0");
    std::fs::write(&debris, b"half an export").unwrap();
    std::fs::remove_file(d.join("run/out.parquet")).unwrap();
    let o = run(&["run", "p.toml", "--out", "run"], d);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!debris.exists());
}

fn load_pipeline(d: &Path, load_extra: &str, files: &[&str]) {
    let paths: Vec<String> = files.iter().map(|f| format!("{f:?}")).collect();
    write(
        d,
        "p.toml",
        &format!(
            r#"
name = "inputs"
[[step]]
id = "rows"
kind = "load"
paths = [{}]
{load_extra}
[[step]]
id = "out"
kind = "export"
after = ["rows"]
format = "alpaca"
path = "out.jsonl"
"#,
            paths.join(", ")
        ),
    );
}

/// Item 6: an empty input file is a warning in the summary and the manifest, or an
/// error naming the file with `on_empty = "error"` (the old code finished with 0 rows
/// and no word).
#[test]
fn an_empty_input_file_is_a_warning_or_with_on_empty_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(d, "empty.jsonl", "");
    write(
        d,
        "one.jsonl",
        "{\"id\": \"a\", \"instruction\": \"Say hi.\"}\n",
    );
    load_pipeline(d, "", &["one.jsonl", "empty.jsonl"]);
    let o = retort()
        .args(["run", "p.toml", "--out", "run"])
        .current_dir(d)
        .output()
        .unwrap();
    let log = text(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        log.contains("warning: step `rows`:") && log.contains("empty.jsonl has no rows"),
        "{log}"
    );
    let m = manifest(&d.join("run/manifest.json"));
    assert!(
        m["steps"][0]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("empty.jsonl"),
        "{m}"
    );

    load_pipeline(d, "on_empty = \"error\"", &["one.jsonl", "empty.jsonl"]);
    let o = run(&["run", "p.toml", "--out", "run2"], d);
    let log = text(&o);
    assert_eq!(o.status.code(), Some(1), "{log}");
    assert!(
        log.contains("empty.jsonl has no rows (on_empty = \"error\")"),
        "{log}"
    );
}

/// Item 6: duplicate ids are an error naming both lines (the old code passed them
/// through though ids are documented unique), unless `duplicate_ids` says how to
/// resolve them; ids generated for rows without one never collide across files.
#[test]
fn duplicate_ids_are_an_error_naming_both_lines_unless_resolved() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "dups.jsonl",
        &["One.", "Two.", "Three.", "Four."]
            .iter()
            .zip(["a", "b", "a", "a"])
            .map(|(t, id)| {
                format!("{{\"id\": \"{id}\", \"instruction\": \"{t}\", \"output\": \"ok\"}}\n")
            })
            .collect::<String>(),
    );
    load_pipeline(d, "", &["dups.jsonl"]);
    let o = run(&["run", "p.toml", "--out", "r1"], d);
    let log = text(&o);
    assert_eq!(o.status.code(), Some(1), "{log}");
    assert!(
        log.contains("dups.jsonl line 3: id \"a\" was already used at")
            && log.contains("dups.jsonl line 1"),
        "{log}"
    );

    load_pipeline(d, "duplicate_ids = \"keep_first\"", &["dups.jsonl"]);
    let o = run(&["run", "p.toml", "--out", "r2"], d);
    assert!(o.status.success(), "{}", text(&o));
    let ids = py(&format!(
        "import json, pyarrow.parquet as pq\n\
print([json.loads(l)['instruction'] for l in open('{}')], sorted(r['reason'] for r in pq.read_table('{}').to_pylist()))",
        d.join("r2/out.jsonl").display(),
        d.join("r2/rejections.parquet").display()
    ));
    assert_eq!(ids, "['One.', 'Two.'] ['duplicate_id', 'duplicate_id']");

    load_pipeline(d, "duplicate_ids = \"renumber\"", &["dups.jsonl"]);
    let o = run(&["run", "p.toml", "--out", "r3"], d);
    assert!(o.status.success(), "{}", text(&o));
    let ids = py(&format!(
        "import pyarrow.parquet as pq\nprint(sorted(r['id'] for r in pq.read_table('{}').to_pylist()))",
        d.join("r3/steps/rows/part-00000.parquet").display()
    ));
    assert_eq!(ids, "['a', 'a-2', 'a-3', 'b']");

    // Rows without ids in two files: generated ids differ (they used to repeat).
    write(
        d,
        "x.jsonl",
        "{\"instruction\": \"X1.\"}\n{\"instruction\": \"X2.\"}\n",
    );
    write(d, "y.jsonl", "{\"instruction\": \"Y1.\"}\n");
    load_pipeline(d, "", &["x.jsonl", "y.jsonl"]);
    let o = run(&["run", "p.toml", "--out", "r4"], d);
    assert!(o.status.success(), "{}", text(&o));
}

/// Item 6: one typo inside a teacher table is one error (the old code added a false
/// "teacher not declared" for every step that uses it).
#[test]
fn a_typo_in_a_teacher_table_is_one_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    write(
        d,
        "seeds.jsonl",
        "{\"id\": \"a\", \"instruction\": \"Say hi.\"}\n",
    );
    write(
        d,
        "p.toml",
        r#"
name = "typo"
[teachers.big]
provider = "openai"
base_url = "http://127.0.0.1:9/v1"
model = "m"
max_in_flihgt = 4
[[step]]
id = "seeds"
kind = "load"
path = "seeds.jsonl"
[[step]]
id = "a"
kind = "respond"
after = ["seeds"]
teacher = "big"
[[step]]
id = "b"
kind = "score"
after = ["a"]
teacher = "big"
[[step]]
id = "c"
kind = "judge"
after = ["a"]
teacher = "big"
"#,
    );
    let o = run(&["validate", "p.toml"], d);
    let log = text(&o);
    assert_eq!(o.status.code(), Some(2), "{log}");
    assert_eq!(log.matches("error:").count(), 1, "{log}");
    assert!(log.contains("max_in_flihgt"), "{log}");
}

/// Item 6: when the manifest cannot be written at the end (a full disk), the step's
/// own error and the resume hint are still what the user reads; the old code showed
/// only the manifest's write error.
#[test]
fn a_failed_manifest_write_does_not_hide_the_step_error() {
    let (_rt, mock) = start_mock(retort_mock::MockConfig {
        latency: std::time::Duration::from_millis(20),
        record: false,
        // Down for good after 1,500 requests: past max_outage_secs the step stops.
        outage_after: Some((1500, std::time::Duration::from_secs(120))),
        ..Default::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    respond_pipeline(
        d,
        &mock.base_url(),
        3000,
        16,
        "max_outage_secs = 1\nbreaker_cooldown_secs = 0.2",
    );
    let child = retort()
        .args(["run", "p.toml", "--out", "run"])
        .current_dir(d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_parts(&d.join("run/steps/answers"), 1);
    // A directory (with a file in it) where manifest.json goes: renaming over it fails.
    let m = d.join("run/manifest.json");
    std::fs::remove_file(&m).unwrap();
    std::fs::create_dir(&m).unwrap();
    std::fs::write(m.join("x"), b"").unwrap();
    let o = child.wait_with_output().unwrap();
    let log = text(&o);
    assert_eq!(o.status.code(), Some(1), "{log}");
    assert!(log.contains("step `answers` failed"), "{log}");
    assert!(log.contains("manifest.json could not be written"), "{log}");
    assert!(
        log.contains("run the same command again to resume: "),
        "{log}"
    );
}
