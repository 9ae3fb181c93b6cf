//! The records explorer in headless Chromium: a view is opened through the URL fragment
//! (`#records?cat=3`, the same state the controls write), the DOM is dumped after the
//! page's script ran, and the rendered rows are checked against the input: a cluster
//! filter shows exactly that cluster's rows, text search and sorting pick and order the
//! right rows, hostile record text stays inert in every table and in opened rows, and a
//! 20,000-record run directory's report stays under its documented size and shows its
//! first page quickly.
//!
//! Needs Chromium (see `tests/chromium/mod.rs`). `RETORT_EXPLORER_SCREENSHOT=path.png`
//! keeps a screenshot of the explorer with a row open.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use retort_core::{Failure, Message, Record, Rejection};
use retort_report::demo::{demo_input_sized, MALICIOUS_ID, MALICIOUS_TEXT};
use retort_report::{demo_input, render, ReportInput};
use retort_store::{Manifest, RunDir, StepReport, MANIFEST_VERSION};

mod chromium;
use chromium::run_chromium_at;

/// The documented bound on a 20,000-record report (`docs/pipelines.md`, 5.9).
const MAX_20K_REPORT_BYTES: usize = 40_000_000;

/// Writes `html` to a temp dir and returns the DOM after scripts ran on `fragment`.
fn dom_at(dir: &Path, html: &str, fragment: &str) -> String {
    let page = dir.join("report.html");
    std::fs::write(&page, html).expect("write report");
    let out = run_chromium_at(&page, fragment, &["--dump-dom".to_string()]);
    let dom = String::from_utf8(out.stdout).expect("DOM is UTF-8");
    assert!(
        dom.contains(r#"data-report-ready="1""#) && dom.contains("data-explorer-ms="),
        "the report's script did not finish, so the checks below would prove nothing"
    );
    dom
}

/// One rendered explorer row: its `data-c` (kept view) and the first id in it.
struct Row {
    cluster: Option<String>,
    id: String,
    html: String,
}

fn rows(dom: &str) -> Vec<Row> {
    let tbody_start = dom
        .find(r#"<table class="rx" id="rx-table">"#)
        .expect("explorer table");
    let tbody_end = tbody_start + dom[tbody_start..].find("</table>").unwrap();
    let table = &dom[tbody_start..tbody_end];
    table
        .split(r#"<tr class="rx-row"#)
        .skip(1)
        .map(|chunk| {
            let attr = |name: &str| {
                let key = format!(r#"{name}=""#);
                let head = &chunk[..chunk.find('>').unwrap()];
                head.find(&key).map(|at| {
                    let v = &head[at + key.len()..];
                    v[..v.find('"').unwrap()].to_string()
                })
            };
            let code = r#"<code class="rid">"#;
            let at = chunk.find(code).expect("row has an id") + code.len();
            let id = chunk[at..at + chunk[at..].find("</code>").unwrap()].to_string();
            let end = chunk.find(r#"<tr class="rx-open"#).unwrap_or(chunk.len());
            Row {
                cluster: attr("data-c"),
                id,
                html: chunk[..end].to_string(),
            }
        })
        .collect()
}

/// The explorer's status line.
fn status(dom: &str) -> String {
    let key = r#"id="rx-status" aria-live="polite">"#;
    let at = dom.find(key).expect("status line") + key.len();
    dom[at..at + dom[at..].find("</p>").unwrap()].to_string()
}

#[test]
fn filtering_by_a_cluster_shows_exactly_that_clusters_rows() {
    let input = demo_input(42);
    let dir = tempfile::tempdir().unwrap();
    let html = render(&input);
    for cluster in [3u32, 0] {
        let want: BTreeSet<String> = input
            .records
            .iter()
            .filter(|r| r.cluster == Some(cluster))
            .map(|r| r.id.clone())
            .collect();
        assert!(want.len() > 50, "the cluster spans several pages");
        let dom = dom_at(
            dir.path(),
            &html,
            &format!("#records?cat={cluster}&size=2000"),
        );
        let got = rows(&dom);
        assert!(
            got.iter()
                .all(|r| r.cluster.as_deref() == Some(&cluster.to_string()[..])),
            "a row of another cluster is shown"
        );
        let ids: BTreeSet<String> = got.iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids.len(), got.len(), "a row is shown twice");
        assert_eq!(ids, want, "cluster {cluster}: rows differ from the input");
        assert!(
            status(&dom).contains(&format!("of {} matching kept records", want.len())),
            "{}",
            status(&dom)
        );
    }
    // Unfiltered, the first page holds 50 of every record.
    let dom = dom_at(dir.path(), &html, "");
    assert_eq!(rows(&dom).len(), 50);
    assert!(status(&dom).starts_with(&format!(
        "1–50 of {} matching kept records",
        thousands(input.records.len())
    )));
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Every text the explorer searches, lower-cased, as the page builds it.
fn searchable(r: &Record) -> String {
    let mut parts = vec![
        r.id.clone(),
        r.provenance.teacher.clone().unwrap_or_default(),
    ];
    parts.extend(r.labels.iter().flat_map(|(k, v)| [k.clone(), v.clone()]));
    parts.extend(r.instruction.clone());
    parts.extend(r.input.clone());
    parts.extend(r.output.clone());
    for m in &r.messages {
        parts.push(m.content.clone());
        parts.extend(m.reasoning.clone());
    }
    for c in &r.candidates {
        parts.push(c.content.clone());
        parts.extend(c.rationale.clone());
    }
    parts.join("\n").to_lowercase()
}

#[test]
fn text_search_and_score_range_pick_exactly_the_matching_rows() {
    let input = demo_input(42);
    let dir = tempfile::tempdir().unwrap();
    let html = render(&input);
    // Two words, both required; case does not matter.
    let want: BTreeSet<String> = input
        .records
        .iter()
        .filter(|r| {
            let s = searchable(r);
            s.contains("python") && s.contains("list")
        })
        .map(|r| r.id.clone())
        .collect();
    assert!(!want.is_empty() && want.len() < input.records.len() / 4);
    let dom = dom_at(dir.path(), &html, "#records?q=PYTHON%20List&size=250");
    let ids: BTreeSet<String> = rows(&dom).into_iter().map(|r| r.id).collect();
    assert_eq!(ids, want);

    // Quality between 8 and 9, English only.
    let want: BTreeSet<String> = input
        .records
        .iter()
        .filter(|r| {
            r.labels.get("language").map(String::as_str) == Some("en")
                && r.scores
                    .get("quality")
                    .is_some_and(|q| (8.0..=9.0).contains(q))
        })
        .map(|r| r.id.clone())
        .collect();
    assert!(want.len() > 20);
    let dom = dom_at(
        dir.path(),
        &html,
        "#records?score=quality&min=8&max=9&lang=en&size=2000",
    );
    let ids: BTreeSet<String> = rows(&dom).into_iter().map(|r| r.id).collect();
    assert_eq!(ids, want);
}

#[test]
fn sorting_by_a_score_orders_the_rows() {
    let input = demo_input(42);
    let dir = tempfile::tempdir().unwrap();
    let html = render(&input);
    for dir_name in ["desc", "asc"] {
        // Expected: by difficulty, ties in input order, as the page sorts.
        let mut order: Vec<usize> = (0..input.records.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (
                input.records[a].scores["difficulty"],
                input.records[b].scores["difficulty"],
            );
            let c = x.total_cmp(&y);
            let c = if dir_name == "desc" { c.reverse() } else { c };
            c.then(a.cmp(&b))
        });
        let want: Vec<String> = order
            .iter()
            .take(100)
            .map(|&i| input.records[i].id.clone())
            .collect();
        let dom = dom_at(
            dir.path(),
            &html,
            &format!("#records?sort=s:difficulty&dir={dir_name}&size=100"),
        );
        let got: Vec<String> = rows(&dom).into_iter().map(|r| r.id).collect();
        assert_eq!(got, want, "sorted {dir_name}");
        assert!(
            dom.contains(&format!(
                r#"class="n rx-sortable {dir_name}" data-sort="s:difficulty" aria-sort="{dir_name}ending""#
            )),
            "the sorted column is marked"
        );
    }
    // The last page of the sorted list is reachable too.
    let dom = dom_at(
        dir.path(),
        &html,
        "#records?sort=id&dir=asc&size=100&page=13",
    );
    let got = rows(&dom);
    assert_eq!(got.len(), input.records.len() - 1_200, "last page");
    assert_eq!(
        got[0].id, MALICIOUS_ID,
        "ids sort as strings: rec-x after rec-0…"
    );
}

#[test]
fn hostile_text_stays_inert_in_every_table_and_in_opened_rows() {
    let input = demo_input(42);
    let dir = tempfile::tempdir().unwrap();
    let html = render(&input);
    // Each view with its hostile row opened, so its full texts are on the page.
    let views = [
        (format!("#records?open={MALICIOUS_ID}"), MALICIOUS_ID),
        (
            "#records?view=dups&open=rec-dup-xss".to_string(),
            "rec-dup-xss",
        ),
        (
            "#records?view=rejects&open=cand-0099".to_string(),
            "cand-0099",
        ),
        (
            "#records?view=fails&open=plan-0005".to_string(),
            "plan-0005",
        ),
    ];
    for (fragment, id) in views {
        let dom = dom_at(dir.path(), &html, &fragment);
        assert!(!dom.contains("PWNED"), "{fragment}: a record's script ran");
        assert!(
            !dom.contains("xss-marker"),
            "{fragment}: a record's script ran"
        );
        assert!(
            !dom.contains("xss-img"),
            "{fragment}: an onerror handler ran"
        );
        assert!(
            !dom.contains("<img"),
            "{fragment}: record text became an <img>"
        );
        assert_eq!(
            dom.matches("<script").count(),
            2,
            "{fragment}: only the page's script and its data block"
        );
        let open = dom
            .find(r#"<tr class="rx-open">"#)
            .unwrap_or_else(|| panic!("{fragment}: no row was opened"));
        let detail = &dom[open..open + dom[open..].find("</tr>").unwrap()];
        assert!(
            detail.contains("&lt;script&gt;document.title='PWN'+'ED'"),
            "{fragment}: the hostile text is not shown as text in the opened row"
        );
        assert!(
            rows(&dom)
                .iter()
                .any(|r| r.id == id && r.html.starts_with(r#" open""#)),
            "{fragment}: row {id} is not the opened one"
        );
    }
    // The hostile label and candidate model are text too.
    let dom = dom_at(dir.path(), &html, &format!("#records?open={MALICIOUS_ID}"));
    assert!(dom.contains("&lt;/script&gt;&lt;img src=x onerror="));
    assert!(MALICIOUS_TEXT.contains("<img"));

    if let Some(keep) = std::env::var_os("RETORT_EXPLORER_SCREENSHOT") {
        let page = dir.path().join("report.html");
        let png = dir.path().join("explorer.png");
        run_chromium_at(
            &page,
            "#records?cat=6&open=rec-00008",
            &[
                format!("--screenshot={}", png.display()),
                // Tall enough for the whole page: a headless screenshot shows the top of
                // the page whatever the script scrolled to.
                "--window-size=1400,10000".to_string(),
            ],
        );
        std::fs::copy(&png, keep).expect("copy screenshot");
    }
}

/// Pads `text` with plain sentences to about `len` bytes.
fn padded(text: &str, len: usize) -> String {
    const FILL: &str =
        "This sentence stands for the rest of a longer answer, as teachers write them. ";
    let mut s = text.to_string();
    while s.len() < len {
        s.push_str(FILL);
    }
    s
}

/// A run directory of `n` kept records (clustered, with map positions), a dedup step
/// with `n / 20` removed duplicates, and rejections and failures, written through the
/// run-directory contract. Answers are 100–3,000 bytes; every fourth record is a chat
/// whose answer has a reasoning trace of 400–2,000 bytes.
fn big_run(dir: &Path, n: usize) -> ReportInput {
    let demo = demo_input_sized(7, n - 1);
    let run = RunDir::new(dir);
    let points = demo.points.clone().unwrap();
    let mut records = demo.records.clone();
    for (i, r) in records.iter_mut().enumerate() {
        r.scores.insert("map_x".into(), points[i][0] as f64);
        r.scores.insert("map_y".into(), points[i][1] as f64);
        r.provenance.step = "clustered".into();
        let answer = padded(
            &r.response_text().unwrap_or_default(),
            100 + (i * 7919) % 2_900,
        );
        if i % 4 == 1 && r.messages.is_empty() {
            r.messages = vec![
                Message::user(r.prompt_text()),
                Message {
                    role: "assistant".into(),
                    content: answer,
                    reasoning: Some(padded("First, what is asked? ", 400 + (i * 131) % 1_600)),
                    ..Default::default()
                },
            ];
            r.instruction = None;
            r.input = None;
            r.output = None;
        } else if r.messages.is_empty() {
            r.output = Some(answer);
        }
    }
    let write = |path: std::path::PathBuf, rs: &[Record]| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        retort_store::write_records_atomic(&path, rs).unwrap();
    };
    write(run.step("clustered").part(0), &records);
    let clusters: Vec<Record> = demo
        .clusters
        .iter()
        .map(|c| {
            let mut r = Record {
                id: format!("cluster-{}", c.id),
                cluster: Some(c.id),
                ..Default::default()
            };
            r.scores.insert("size".into(), c.size as f64);
            if let Some(l) = &c.label {
                r.labels.insert("cluster_label".into(), l.clone());
            }
            r.provenance.parents = c.representatives.clone();
            r
        })
        .collect();
    write(run.step("clustered").side("clusters"), &clusters);
    let dups: Vec<Record> = (0..n / 20)
        .map(|j| {
            let kept = &records[(j * 13) % records.len()];
            let mut r = Record {
                id: format!("dup-{j:05}"),
                instruction: Some(format!("{} Please answer.", kept.prompt_text())),
                output: Some(padded("A removed answer.", 600)),
                ..Default::default()
            };
            r.labels.insert(
                "dedup_mode".into(),
                ["exact", "near", "semantic"][j % 3].into(),
            );
            r.labels.insert("duplicate_of".into(), kept.id.clone());
            r.labels
                .insert("duplicate_of_text".into(), kept.prompt_text());
            r.scores
                .insert("similarity".into(), 0.9 + (j % 10) as f64 / 100.0);
            r
        })
        .collect();
    write(run.step("deduped").side("duplicates"), &dups);
    let rejections: Vec<Rejection> = (0..n / 10)
        .map(|j| Rejection {
            step: "tasks".into(),
            record_id: format!("cand-{j:05}"),
            reason: ["rouge_l", "keyword", "too_short"][j % 3].into(),
            detail: format!("0.{} vs seed-{:03}", 70 + j % 30, j % 171),
            text: records[(j * 7) % records.len()].prompt_text(),
        })
        .collect();
    std::fs::create_dir_all(run.step("tasks").dir()).unwrap();
    retort_store::write_rejections_atomic(&run.step("tasks").rejections(0), &rejections).unwrap();
    let failures: Vec<Failure> = (0..n / 100)
        .map(|j| Failure {
            step: "tasks".into(),
            record_id: format!("plan-{j:05}"),
            class: ["parse", "truncated"][j % 2].into(),
            message: "the reply is not a numbered task list".into(),
            raw: padded("Sure! Here are some ideas:", 800),
            ..Default::default()
        })
        .collect();
    retort_store::write_failures_atomic(&run.step("tasks").failures(0), &failures).unwrap();
    let step = |id: &str, kind: &str, rows_out: usize| StepReport {
        id: id.into(),
        kind: kind.into(),
        status: "done".into(),
        rows_in: rows_out as u64,
        rows_out: rows_out as u64,
        ..Default::default()
    };
    let mut tasks = step("tasks", "self_instruct", n + dups.len());
    tasks.failures = failures.len() as u64;
    tasks.rejected = [("rouge_l".to_string(), rejections.len() as u64)].into();
    let manifest = Manifest {
        schema_version: MANIFEST_VERSION,
        name: "big".into(),
        retort_version: "test".into(),
        pipeline_file: "big.toml".into(),
        command: None,
        pipeline_hash: "0".repeat(64),
        pipeline: serde_json::json!({"teachers": {"big": {"model": "Qwen/Qwen2.5-7B-Instruct"}}}),
        status: "complete".into(),
        resumed: false,
        started_at: "2026-12-02T10:00:00Z".into(),
        finished_at: Some("2026-12-02T11:00:00Z".into()),
        steps: vec![
            tasks,
            step("deduped", "dedup", n),
            step("clustered", "cluster", n),
            step("report", "report", 0),
        ],
        failures: failures.len() as u64,
        rejections: rejections.len() as u64,
        teachers: Default::default(),
        outputs: vec![],
    };
    std::fs::write(
        run.manifest(),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    demo
}

#[test]
fn a_20000_record_report_stays_small_and_opens_quickly() {
    let n = 20_000;
    let dir = tempfile::tempdir().unwrap();
    big_run(dir.path(), n);
    let input = retort_report::run::load_run(dir.path(), None, None).expect("load the run");
    assert_eq!(input.records.len(), n);
    assert_eq!(input.duplicates.len(), n / 20);
    assert_eq!(input.duplicate_records.len(), n / 20);
    assert_eq!(input.rejections.len(), n / 10);
    assert_eq!(input.failures.len(), n / 100);
    let html = render(&input);
    let size = html.len();
    let data_at = html.find(r#"id="explorer-data">"#).unwrap();
    let data_len = html[data_at..].find("</script>").unwrap();
    let rows = n + n / 20 + n / 10 + n / 100;
    eprintln!(
        "20,000-record report: {size} bytes in all, explorer data {data_len} bytes ({} bytes per row over {rows} rows)",
        data_len / rows
    );
    assert!(
        size < MAX_20K_REPORT_BYTES,
        "the report is {size} bytes, over the documented {MAX_20K_REPORT_BYTES}"
    );

    let started = Instant::now();
    let dom = dom_at(dir.path(), &html, "");
    let wall = started.elapsed();
    let key = r#"data-explorer-ms=""#;
    let at = dom.find(key).unwrap() + key.len();
    let ms: u64 = dom[at..at + dom[at..].find('"').unwrap()].parse().unwrap();
    eprintln!(
        "first page rendered {ms} ms after navigation start; chromium ran {:.1} s in all",
        wall.as_secs_f64()
    );
    assert!(ms < 10_000, "the first page took {ms} ms to render");
    assert_eq!(self::rows(&dom).len(), 50);
    assert!(status(&dom).starts_with("1–50 of 20,000 matching kept records"));
    // Texts over the row budget are cut and say so.
    assert!(dom.contains("Long texts are cut to keep this page small"));
}
