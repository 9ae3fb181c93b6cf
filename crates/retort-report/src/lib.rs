//! retort's HTML cluster report.
//!
//! [`render`] turns a [`ReportInput`] (kept records with their clusters and scores, 2-D
//! map coordinates, cluster summaries, removed duplicates and the run summary) into one
//! self-contained HTML document: inline CSS, inline SVG and one small inline script, no
//! network fetch of any kind, so the file can be mailed or opened offline.
//!
//! All record text is HTML-escaped wherever it lands (element text, SVG `<title>`,
//! attributes). As a second line of defence the page carries a Content-Security-Policy
//! that only allows its own script (by hash) and forbids every fetch, so even a bug in
//! escaping could not run a record's script or phone home.
//!
//! Rendering is CPU work (string building, and a PCA when no points are given): callers
//! on an async runtime should run it on the rayon bridge, not on a tokio worker.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use retort_core::Record;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod charts;
#[doc(hidden)]
pub mod demo;
mod html;
mod map;
pub mod run;

pub use html::{esc as escape_html, truncate};
pub use map::sample_evenly;

#[doc(hidden)]
pub use demo::demo_input;

/// At most this many points are drawn on the map; above it an even sample is drawn and
/// the page says so (an SVG with more circles makes browsers sluggish).
pub const MAX_MAP_POINTS: usize = 20_000;
/// At most this many removed duplicates are listed; the counts per mode cover all.
pub const MAX_DUPLICATE_ROWS: usize = 2_000;
/// Representative examples are shown for at most this many clusters (the largest).
pub const MAX_EXAMPLE_CLUSTERS: usize = 50;
/// Representative examples shown per cluster.
pub const EXAMPLES_PER_CLUSTER: usize = 3;
/// Clusters named in the map legend (the largest); the rest are summed up in one line.
pub const MAX_LEGEND_CLUSTERS: usize = 40;

/// Score columns the report charts per cluster, when records carry them.
const SCORE_KEYS: [&str; 2] = ["quality", "difficulty"];

/// Everything the report shows. Built by the CLI from a run directory; the report crate
/// itself reads no files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// Page title (and `<h1>`).
    pub title: String,
    /// The kept records, with `cluster`, `scores` and `labels` filled in by earlier steps.
    /// `embedding` is only needed when `points` is `None`.
    pub records: Vec<Record>,
    /// 2-D map coordinates, one per record in the same order. `None` projects the drawn
    /// records' embeddings with `retort_vector::layout::map_2d`; with neither, the map
    /// section says why it is empty.
    pub points: Option<Vec<[f32; 2]>>,
    /// How `points` were made, shown above the map (e.g. the `cluster` step's projection).
    #[serde(default)]
    pub points_note: Option<String>,
    /// One entry per cluster. Clusters that records name but this list lacks are still
    /// shown, with sizes counted from the records and no label.
    pub clusters: Vec<ClusterInfo>,
    /// Every removed duplicate with the record it was merged into.
    pub duplicates: Vec<DuplicateRow>,
    /// The run as a whole: status, steps, failures, rejections, tokens and cost.
    pub summary: RunSummaryView,
}

/// What the `cluster` step knows about one cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Cluster id, as in [`Record::cluster`].
    pub id: u32,
    /// Short teacher-written label, when the step asked for one.
    pub label: Option<String>,
    /// Number of kept records in the cluster.
    pub size: u64,
    /// Ids of the records nearest the centroid, nearest first.
    pub representatives: Vec<String>,
    /// Mean of each score column over the cluster (`quality`, `difficulty`, …). A score
    /// missing here is averaged from the cluster's records instead.
    pub mean_scores: BTreeMap<String, f64>,
}

/// How a duplicate was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupMode {
    /// Same text after normalisation (NFKC, case-fold, whitespace collapse).
    Exact,
    /// MinHash-LSH Jaccard over shingles.
    Near,
    /// Embedding cosine similarity.
    Semantic,
}

impl DedupMode {
    /// All modes, in the order the report lists them.
    pub const ALL: [DedupMode; 3] = [DedupMode::Exact, DedupMode::Near, DedupMode::Semantic];

    /// The lowercase name used in `duplicates.parquet` and pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            DedupMode::Exact => "exact",
            DedupMode::Near => "near",
            DedupMode::Semantic => "semantic",
        }
    }
}

impl fmt::Display for DedupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dedup mode name that is not `exact`, `near` or `semantic`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dedup mode {0:?} (expected exact, near or semantic)")]
pub struct UnknownDedupMode(pub String);

impl FromStr for DedupMode {
    type Err = UnknownDedupMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exact" => Ok(DedupMode::Exact),
            "near" => Ok(DedupMode::Near),
            "semantic" => Ok(DedupMode::Semantic),
            other => Err(UnknownDedupMode(other.to_string())),
        }
    }
}

/// One removed record beside the record it was merged into.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DuplicateRow {
    /// Id of the removed record.
    pub removed_id: String,
    /// Text the dedup step compared (prompt or chosen field) of the removed record.
    pub removed_text: String,
    /// Id of the kept twin (`duplicate_of`).
    pub kept_id: String,
    /// Text of the kept twin.
    pub kept_text: String,
    /// Similarity that linked them: 1.0 for exact, Jaccard estimate for near, cosine for
    /// semantic.
    pub similarity: f64,
    /// Which dedup mode removed it.
    pub mode: DedupMode,
}

/// The run summary, mirroring the run manifest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummaryView {
    /// Pipeline name.
    pub name: String,
    /// `running`, `complete`, `failed` or `interrupted`.
    pub status: String,
    /// RFC 3339 start time.
    pub started_at: Option<String>,
    /// RFC 3339 end time.
    pub finished_at: Option<String>,
    /// Wall-clock seconds of the run, when known.
    pub seconds: Option<f64>,
    /// sha256 of the resolved pipeline.
    pub pipeline_hash: Option<String>,
    /// Per step, in execution order.
    pub steps: Vec<StepRow>,
    /// Usage per teacher. Token and dollar totals come from here when it is not empty,
    /// else from the step rows.
    pub teachers: Vec<TeacherRow>,
    /// Rows of `failures.parquet` by error class (`http_429`, `parse`, …).
    pub failures_by_class: BTreeMap<String, u64>,
}

/// One step's line in the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// Step id from the pipeline file.
    pub id: String,
    /// Step kind (`self_instruct`, `dedup`, …).
    pub kind: String,
    /// `done`, `skipped (unchanged)`, `failed`, `running`, …
    pub status: String,
    /// Records the step read.
    pub rows_in: u64,
    /// Records the step wrote.
    pub rows_out: u64,
    /// Records the step could not produce (rows in `failures.parquet`).
    pub failures: u64,
    /// Records the step rejected on purpose, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Step metrics, e.g. dedup `recall`.
    pub metrics: BTreeMap<String, f64>,
    /// Prompt tokens the step's teacher calls sent.
    pub prompt_tokens: u64,
    /// Completion tokens the step's teacher calls received.
    pub completion_tokens: u64,
    /// Dollars the step spent.
    pub cost_usd: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The error that stopped the step, if it failed.
    pub error: Option<String>,
}

/// One teacher's usage over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TeacherRow {
    /// Teacher name from the pipeline file.
    pub name: String,
    /// Model id.
    pub model: Option<String>,
    /// Calls steps made.
    pub calls: u64,
    /// Calls answered from the response cache.
    pub cache_hits: u64,
    /// Requests actually sent, retries included.
    pub requests: u64,
    /// Of those, retries.
    pub retries: u64,
    /// Calls that finally failed.
    pub failures: u64,
    /// Prompt tokens sent.
    pub prompt_tokens: u64,
    /// Completion tokens received.
    pub completion_tokens: u64,
    /// Dollars spent.
    pub cost_usd: f64,
}

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("script.js");

use html::{esc, int, num, secs, usd, w};

/// Renders the report as one self-contained HTML document.
pub fn render(input: &ReportInput) -> String {
    let view = View::new(input);
    let mut out = String::with_capacity(64 * 1024 + input.records.len() * 400);
    let script_hash =
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT.as_bytes()));
    w!(
        &mut out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<meta name="generator" content="retort {}">
<title>{}</title>
<style>{STYLE}</style>
</head>
<body>
"#,
        env!("CARGO_PKG_VERSION"),
        esc(&input.title)
    );
    header(&mut out, input);
    out.push_str(r#"<main class="wrap">"#);
    summary(&mut out, input);
    map_section(&mut out, input, &view);
    clusters_section(&mut out, input, &view);
    examples_section(&mut out, input, &view);
    duplicates_section(&mut out, input);
    out.push_str("</main>\n");
    w!(
        &mut out,
        r#"<footer class="wrap">Generated by retort {}. This file is self-contained: it loads nothing from the network.</footer>"#,
        env!("CARGO_PKG_VERSION")
    );
    w!(&mut out, "\n<script>{SCRIPT}</script>\n</body>\n</html>\n");
    out
}

/// Per-cluster facts derived once and shared by the table, legend and examples.
struct View<'a> {
    /// Rows sorted by size (largest first), then id.
    clusters: Vec<ClusterRow<'a>>,
    /// Score keys present in the data, in [`SCORE_KEYS`] order, with shared bins.
    scores: Vec<(&'static str, charts::Bins)>,
    /// Record index by id, for representatives.
    by_id: HashMap<&'a str, usize>,
}

struct ClusterRow<'a> {
    /// `None` is the row for records without a cluster.
    id: Option<u32>,
    label: Option<&'a str>,
    size: u64,
    representatives: &'a [String],
    /// Indices of the cluster's records.
    members: Vec<usize>,
    means: BTreeMap<&'static str, f64>,
}

impl<'a> View<'a> {
    fn new(input: &'a ReportInput) -> View<'a> {
        let mut members: BTreeMap<Option<u32>, Vec<usize>> = BTreeMap::new();
        for (i, r) in input.records.iter().enumerate() {
            members.entry(r.cluster).or_default().push(i);
        }
        let mut rows: Vec<ClusterRow<'a>> = Vec::new();
        for c in &input.clusters {
            rows.push(ClusterRow {
                id: Some(c.id),
                label: c.label.as_deref(),
                size: c.size,
                representatives: &c.representatives,
                members: members.remove(&Some(c.id)).unwrap_or_default(),
                means: BTreeMap::new(),
            });
        }
        for (id, m) in members {
            rows.push(ClusterRow {
                id,
                label: None,
                size: m.len() as u64,
                representatives: &[],
                members: m,
                means: BTreeMap::new(),
            });
        }
        let scores: Vec<(&'static str, charts::Bins)> = SCORE_KEYS
            .iter()
            .filter_map(|&k| {
                charts::Bins::covering(
                    input
                        .records
                        .iter()
                        .filter_map(|r| r.scores.get(k).copied()),
                )
                .map(|b| (k, b))
            })
            .collect();
        let info: HashMap<u32, &ClusterInfo> = input.clusters.iter().map(|c| (c.id, c)).collect();
        for row in &mut rows {
            for &(k, _) in &scores {
                let given = row
                    .id
                    .and_then(|id| info.get(&id))
                    .and_then(|c| c.mean_scores.get(k))
                    .copied();
                let mean = given.or_else(|| {
                    mean(
                        row.members
                            .iter()
                            .filter_map(|&i| input.records[i].scores.get(k).copied()),
                    )
                });
                if let Some(m) = mean {
                    row.means.insert(k, m);
                }
            }
        }
        // Largest first; the unclustered row (id None) sorts after real clusters of equal size.
        rows.sort_by(|a, b| {
            b.size
                .cmp(&a.size)
                .then(a.id.is_none().cmp(&b.id.is_none()))
                .then(a.id.cmp(&b.id))
        });
        let by_id = input
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        View {
            clusters: rows,
            scores,
            by_id,
        }
    }

    fn label_of(&self, id: u32) -> Option<String> {
        self.clusters
            .iter()
            .find(|c| c.id == Some(id))
            .and_then(|c| c.label.map(str::to_string))
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0u64);
    for v in values.filter(|v| v.is_finite()) {
        s += v;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}

fn cluster_name(id: Option<u32>) -> String {
    id.map_or("unclustered".to_string(), |c| format!("cluster {c}"))
}

fn status_class(status: &str) -> &'static str {
    let s = status.to_ascii_lowercase();
    if s.starts_with("complete") || s.starts_with("done") || s.starts_with("ok") {
        "ok"
    } else if s.starts_with("fail") || s.starts_with("error") {
        "bad"
    } else if s.starts_with("skip") {
        "muted"
    } else {
        "warn"
    }
}

fn header(out: &mut String, input: &ReportInput) {
    let s = &input.summary;
    w!(
        out,
        r#"<header class="top"><div class="wrap"><h1>{}</h1><p class="sub">"#,
        esc(&input.title)
    );
    let mut bits: Vec<String> = Vec::new();
    if !s.name.is_empty() {
        bits.push(format!("pipeline <b>{}</b>", esc(&s.name)));
    }
    if !s.status.is_empty() {
        bits.push(format!(
            r#"<span class="badge {}">{}</span>"#,
            status_class(&s.status),
            esc(&s.status)
        ));
    }
    if let Some(t) = &s.started_at {
        bits.push(format!("started {}", esc(t)));
    }
    if let Some(t) = &s.finished_at {
        bits.push(format!("finished {}", esc(t)));
    }
    if let Some(h) = &s.pipeline_hash {
        bits.push(format!(
            r#"hash <code title="{}">{}</code>"#,
            esc(h),
            esc(&truncate(h, 12))
        ));
    }
    out.push_str(&bits.join(r#" <span class="dot">·</span> "#));
    out.push_str(
        r##"</p><nav><a href="#summary">Run summary</a><a href="#map">Map</a><a href="#clusters">Clusters</a><a href="#examples">Examples</a><a href="#duplicates">Duplicates</a></nav></div></header>
"##,
    );
}

fn stat(out: &mut String, key: &str, value: &str, sub: Option<&str>) {
    w!(
        out,
        r#"<div class="stat"><div class="k">{key}</div><div class="v">{value}</div>"#
    );
    if let Some(sub) = sub {
        w!(out, r#"<div class="s">{sub}</div>"#);
    }
    out.push_str("</div>");
}

fn summary(out: &mut String, input: &ReportInput) {
    let s = &input.summary;
    let failures: u64 = s.steps.iter().map(|r| r.failures).sum();
    let rejections: u64 = s
        .steps
        .iter()
        .map(|r| r.rejected.values().sum::<u64>())
        .sum();
    let (pt, ct, cost) = if s.teachers.is_empty() {
        s.steps.iter().fold((0, 0, 0.0), |a, r| {
            (
                a.0 + r.prompt_tokens,
                a.1 + r.completion_tokens,
                a.2 + r.cost_usd,
            )
        })
    } else {
        s.teachers.iter().fold((0, 0, 0.0), |a, r| {
            (
                a.0 + r.prompt_tokens,
                a.1 + r.completion_tokens,
                a.2 + r.cost_usd,
            )
        })
    };
    out.push_str(r#"<section id="summary"><h2>Run summary</h2><div class="stats">"#);
    let status = if s.status.is_empty() {
        "unknown"
    } else {
        s.status.as_str()
    };
    let took = s.seconds.map(|t| format!("wall time {}", secs(t)));
    stat(
        out,
        "Status",
        &format!(
            r#"<span class="badge big {}">{}</span>"#,
            status_class(status),
            esc(status)
        ),
        took.as_deref(),
    );
    stat(out, "Records", &int(input.records.len() as u64), None);
    stat(out, "Clusters", &int(input.clusters.len() as u64), None);
    stat(
        out,
        "Duplicates removed",
        &int(input.duplicates.len() as u64),
        None,
    );
    stat(out, "Failures", &int(failures), None);
    stat(out, "Rejections", &int(rejections), None);
    stat(
        out,
        "Tokens",
        &int(pt + ct),
        Some(&format!("{} prompt · {} completion", int(pt), int(ct))),
    );
    stat(out, "Cost", &usd(cost), None);
    out.push_str("</div>");

    if s.steps.is_empty() {
        out.push_str(r#"<p class="note">No step information was recorded for this run.</p>"#);
    } else {
        out.push_str(
            r#"<h3>Steps</h3><div class="scroll"><table class="steps"><thead><tr><th>Step</th><th>Kind</th><th>Status</th><th class="n">In</th><th class="n">Out</th><th class="n">Failures</th><th class="n">Rejected</th><th class="n">Tokens</th><th class="n">Cost</th><th class="n">Time</th><th>Metrics</th></tr></thead><tbody>"#,
        );
        for r in &s.steps {
            let rejected: u64 = r.rejected.values().sum();
            let metrics = r
                .metrics
                .iter()
                .map(|(k, v)| format!("{} {}", esc(k), num(*v)))
                .collect::<Vec<_>>()
                .join(", ");
            w!(
                out,
                r#"<tr class="step-row"><td><b>{}</b></td><td><code>{}</code></td><td><span class="badge {}">{}</span></td><td class="n">{}</td><td class="n">{}</td><td class="n{}">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="metrics">{}</td></tr>"#,
                esc(&r.id),
                esc(&r.kind),
                status_class(&r.status),
                esc(&r.status),
                int(r.rows_in),
                int(r.rows_out),
                if r.failures > 0 { " hot" } else { "" },
                int(r.failures),
                int(rejected),
                int(r.prompt_tokens + r.completion_tokens),
                usd(r.cost_usd),
                secs(r.seconds),
                metrics
            );
            if let Some(e) = &r.error {
                w!(
                    out,
                    r#"<tr class="err"><td colspan="11">{}</td></tr>"#,
                    esc(e)
                );
            }
        }
        out.push_str("</tbody></table></div>");
    }

    out.push_str(r#"<div class="cols">"#);
    let reasons: Vec<(&str, &str, u64)> = s
        .steps
        .iter()
        .flat_map(|r| {
            r.rejected
                .iter()
                .map(move |(k, v)| (r.id.as_str(), k.as_str(), *v))
        })
        .collect();
    out.push_str(r#"<div><h3>Rejections by reason</h3>"#);
    if reasons.is_empty() {
        out.push_str(r#"<p class="note">No record was rejected.</p>"#);
    } else {
        let max = reasons.iter().map(|r| r.2).max().unwrap_or(1).max(1);
        out.push_str(r#"<table class="reasons"><thead><tr><th>Step</th><th>Reason</th><th class="n">Count</th><th></th></tr></thead><tbody>"#);
        for (step, reason, n) in &reasons {
            w!(
                out,
                r#"<tr><td>{}</td><td><code>{}</code></td><td class="n">{}</td><td class="barcell"><div class="bar"><span style="width:{:.1}%;background:#d97706"></span></div></td></tr>"#,
                esc(step),
                esc(reason),
                int(*n),
                *n as f64 / max as f64 * 100.0
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</div><div><h3>Failures by class</h3>");
    if s.failures_by_class.is_empty() {
        if failures == 0 {
            out.push_str(r#"<p class="note">No record failed.</p>"#);
        } else {
            w!(
                out,
                r#"<p class="note">{} failures; their classes were not recorded.</p>"#,
                int(failures)
            );
        }
    } else {
        let max = s
            .failures_by_class
            .values()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1);
        out.push_str(r#"<table class="failures"><thead><tr><th>Class</th><th class="n">Count</th><th></th></tr></thead><tbody>"#);
        for (class, n) in &s.failures_by_class {
            w!(
                out,
                r#"<tr><td><code>{}</code></td><td class="n">{}</td><td class="barcell"><div class="bar"><span style="width:{:.1}%;background:#dc2626"></span></div></td></tr>"#,
                esc(class),
                int(*n),
                *n as f64 / max as f64 * 100.0
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</div></div>");

    if !s.teachers.is_empty() {
        out.push_str(
            r#"<h3>Teachers</h3><div class="scroll"><table class="teachers"><thead><tr><th>Teacher</th><th>Model</th><th class="n">Calls</th><th class="n">Cache hits</th><th class="n">Requests</th><th class="n">Retries</th><th class="n">Failures</th><th class="n">Prompt tokens</th><th class="n">Completion tokens</th><th class="n">Cost</th></tr></thead><tbody>"#,
        );
        for t in &s.teachers {
            w!(
                out,
                r#"<tr><td><b>{}</b></td><td><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                esc(&t.name),
                esc(t.model.as_deref().unwrap_or("")),
                int(t.calls),
                int(t.cache_hits),
                int(t.requests),
                int(t.retries),
                int(t.failures),
                int(t.prompt_tokens),
                int(t.completion_tokens),
                usd(t.cost_usd)
            );
        }
        out.push_str("</tbody></table></div>");
    }
    out.push_str("</section>\n");
}

fn map_section(out: &mut String, input: &ReportInput, view: &View<'_>) {
    out.push_str(r#"<section id="map"><h2>Map</h2>"#);
    match map::map_data(input) {
        Err(why) => {
            w!(out, r#"<p class="note warnnote">{}</p>"#, esc(&why));
        }
        Ok(data) => {
            out.push_str(r#"<p class="hint">Each dot is a record, coloured by cluster; nearby dots have similar embeddings. Hover a dot to read it, click to pin it, click a legend entry to highlight one cluster.</p>"#);
            for n in &data.notes {
                w!(out, r#"<p class="note">{}</p>"#, esc(n));
            }
            out.push_str(r#"<div class="mapbox">"#);
            map::svg(out, input, &data, &|id| view.label_of(id));
            out.push_str(r#"<aside class="side"><div class="legend"><h3>Clusters</h3>"#);
            for row in view.clusters.iter().take(MAX_LEGEND_CLUSTERS) {
                let c = row.id.map_or("none".to_string(), |c| c.to_string());
                w!(out, r#"<button type="button" data-c="{c}">"#);
                html::swatch(out, &map::colour(row.id));
                w!(out, r#"<span class="ln">{}"#, esc(&cluster_name(row.id)));
                if let Some(l) = row.label {
                    w!(out, r#" · <span class="lbl">{}</span>"#, esc(l));
                }
                w!(
                    out,
                    r#"</span><span class="cnt">{}</span></button>"#,
                    int(row.size)
                );
            }
            if view.clusters.len() > MAX_LEGEND_CLUSTERS {
                let rest = &view.clusters[MAX_LEGEND_CLUSTERS..];
                w!(
                    out,
                    r#"<p class="note">and {} smaller clusters ({} records)</p>"#,
                    rest.len(),
                    int(rest.iter().map(|r| r.size).sum())
                );
            }
            out.push_str(r#"</div><div class="detail-box"><h3>Record</h3><div id="map-detail" class="detail">Hover a dot to read the record here.</div></div></aside></div>"#);
        }
    }
    out.push_str("</section>\n");
}

fn clusters_section(out: &mut String, input: &ReportInput, view: &View<'_>) {
    out.push_str(r#"<section id="clusters"><h2>Clusters</h2>"#);
    if view.clusters.is_empty() {
        out.push_str(r#"<p class="note">No clusters: there are no records.</p></section>"#);
        return;
    }
    out.push_str(r#"<p class="hint">Sorted by size. Histograms share one axis per score (hover for the range); the dark tick marks the mean.</p>"#);
    let max = view
        .clusters
        .iter()
        .map(|c| c.size)
        .max()
        .unwrap_or(1)
        .max(1);
    let total: u64 = view.clusters.iter().map(|c| c.size).sum::<u64>().max(1);
    out.push_str(r#"<div class="scroll"><table class="clusters"><thead><tr><th>Cluster</th><th>Label</th><th class="n">Size</th><th class="sizecol"></th>"#);
    for (k, _) in &view.scores {
        w!(
            out,
            r#"<th class="n">Mean {k}</th><th>{k} distribution</th>"#
        );
    }
    out.push_str("</tr></thead><tbody>");
    for row in &view.clusters {
        let colour = map::colour(row.id);
        out.push_str(r#"<tr class="cl-row"><td class="nowrap">"#);
        html::swatch(out, &colour);
        w!(out, "{}</td>", esc(&cluster_name(row.id)));
        match row.label {
            Some(l) => w!(out, r#"<td class="lab">{}</td>"#, esc(l)),
            None => out.push_str(r#"<td class="lab muted">—</td>"#),
        }
        w!(
            out,
            r#"<td class="n">{} <span class="muted">({:.1}%)</span></td><td class="sizecol"><div class="bar"><span style="width:{:.1}%;background:{colour}"></span></div></td>"#,
            int(row.size),
            row.size as f64 / total as f64 * 100.0,
            row.size as f64 / max as f64 * 100.0
        );
        for (k, bins) in &view.scores {
            let m = row.means.get(k).copied();
            w!(
                out,
                r#"<td class="n">{}</td><td>"#,
                m.map_or("—".to_string(), num)
            );
            let counts = bins.counts(
                row.members
                    .iter()
                    .filter_map(|&i| input.records[i].scores.get(*k).copied()),
            );
            charts::histogram(out, bins, &counts, m, &colour, k);
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str(r#"</tbody><tfoot><tr><td class="nowrap"><b>all records</b></td><td></td>"#);
    w!(
        out,
        r#"<td class="n"><b>{}</b></td><td></td>"#,
        int(input.records.len() as u64)
    );
    for (k, bins) in &view.scores {
        let values = || {
            input
                .records
                .iter()
                .filter_map(|r| r.scores.get(*k).copied())
        };
        let m = mean(values());
        w!(
            out,
            r#"<td class="n"><b>{}</b></td><td>"#,
            m.map_or("—".to_string(), num)
        );
        charts::histogram(out, bins, &bins.counts(values()), m, "#57606a", k);
        out.push_str("</td>");
    }
    out.push_str("</tr></tfoot></table></div></section>\n");
}

fn examples_section(out: &mut String, input: &ReportInput, view: &View<'_>) {
    out.push_str(r#"<section id="examples"><h2>Representative examples</h2>"#);
    let shown: Vec<&ClusterRow<'_>> = view
        .clusters
        .iter()
        .filter(|c| c.id.is_some())
        .take(MAX_EXAMPLE_CLUSTERS)
        .collect();
    if shown.is_empty() {
        out.push_str(
            r#"<p class="note">No clusters, so no representative examples.</p></section>"#,
        );
        return;
    }
    let clustered = view.clusters.iter().filter(|c| c.id.is_some()).count();
    if clustered > shown.len() {
        w!(
            out,
            r#"<p class="note">Showing the {} largest of {} clusters.</p>"#,
            shown.len(),
            clustered
        );
    }
    out.push_str(r#"<p class="hint">The records nearest each cluster's centroid.</p>"#);
    for row in shown {
        let id = row.id.unwrap_or_default();
        w!(
            out,
            r#"<article class="cluster-card" id="cluster-{id}"><h3>"#
        );
        html::swatch(out, &map::colour(row.id));
        w!(out, "Cluster {id}");
        if let Some(l) = row.label {
            w!(out, r#" <span class="muted">— {}</span>"#, esc(l));
        }
        w!(
            out,
            r#" <span class="pill">{} records</span>"#,
            int(row.size)
        );
        for (k, _) in &view.scores {
            if let Some(m) = row.means.get(k) {
                w!(out, r#" <span class="pill">{k} {}</span>"#, num(*m));
            }
        }
        out.push_str(r#"</h3><div class="examples">"#);
        if row.representatives.is_empty() {
            out.push_str(r#"<p class="note">The cluster step recorded no representatives for this cluster.</p>"#);
        }
        for rep in row.representatives.iter().take(EXAMPLES_PER_CLUSTER) {
            match view.by_id.get(rep.as_str()) {
                None => w!(
                    out,
                    r#"<p class="note">Representative <code>{}</code> is not among the kept records.</p>"#,
                    esc(rep)
                ),
                Some(&i) => example(out, &input.records[i]),
            }
        }
        out.push_str("</div></article>");
    }
    out.push_str("</section>\n");
}

fn example(out: &mut String, r: &Record) {
    w!(
        out,
        r#"<div class="example"><div class="ex-meta"><code>{}</code>"#,
        esc(&r.id)
    );
    for (k, v) in &r.scores {
        if SCORE_KEYS.contains(&k.as_str()) {
            w!(out, r#" <span class="pill">{} {}</span>"#, esc(k), num(*v));
        }
    }
    if let Some(t) = &r.provenance.teacher {
        w!(out, r#" <span class="pill soft">{}</span>"#, esc(t));
    }
    out.push_str("</div>");
    let prompt = r.prompt_text();
    w!(
        out,
        r#"<div class="ex-k">Instruction</div><div class="ex-text">{}</div>"#,
        esc(&truncate(&prompt, 600))
    );
    let turns = r.messages.len();
    if turns > 2 {
        w!(
            out,
            r#"<div class="ex-k">Chat of {turns} turns; the final answer:</div>"#
        );
    } else {
        out.push_str(r#"<div class="ex-k">Output</div>"#);
    }
    match r.response_text() {
        Some(o) => w!(
            out,
            r#"<div class="ex-text out">{}</div>"#,
            esc(&truncate(&o, 700))
        ),
        None => out.push_str(r#"<div class="ex-text out muted">(no output)</div>"#),
    }
    out.push_str("</div>");
}

fn duplicates_section(out: &mut String, input: &ReportInput) {
    out.push_str(r#"<section id="duplicates"><h2>Removed duplicates</h2>"#);
    if input.duplicates.is_empty() {
        out.push_str(r#"<p class="note">No record was removed as a duplicate.</p></section>"#);
        return;
    }
    out.push_str(r#"<div class="chips">"#);
    for mode in DedupMode::ALL {
        let n = input.duplicates.iter().filter(|d| d.mode == mode).count();
        if n > 0 {
            w!(
                out,
                r#"<span class="chip m-{mode}">{mode} <b>{}</b></span>"#,
                int(n as u64)
            );
        }
    }
    out.push_str("</div>");
    if input.duplicates.len() > MAX_DUPLICATE_ROWS {
        w!(
            out,
            r#"<p class="note">Listing the first {} of {} removed records.</p>"#,
            int(MAX_DUPLICATE_ROWS as u64),
            int(input.duplicates.len() as u64)
        );
    }
    out.push_str(r#"<div class="scroll"><table class="dups"><thead><tr><th>Mode</th><th class="n">Similarity</th><th>Removed record</th><th>Kept twin</th></tr></thead><tbody>"#);
    for d in input.duplicates.iter().take(MAX_DUPLICATE_ROWS) {
        w!(
            out,
            r#"<tr class="dup-row"><td><span class="chip m-{}">{}</span></td><td class="n">{:.3}</td><td><code class="rid">{}</code><div class="dt">{}</div></td><td><code class="rid">{}</code><div class="dt">{}</div></td></tr>"#,
            d.mode,
            d.mode,
            d.similarity,
            esc(&d.removed_id),
            esc(&truncate(&d.removed_text, 320)),
            esc(&d.kept_id),
            esc(&truncate(&d.kept_text, 320))
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAYLOADS: [&str; 3] = [
        "<script>alert(1)</script>",
        "</script><script>alert(2)</script>",
        r#""><img src=x onerror=alert(1)>"#,
    ];

    fn hostile_input() -> ReportInput {
        let mut records = Vec::new();
        for (i, p) in PAYLOADS.iter().enumerate() {
            let mut r = Record {
                id: format!("evil-{i}{p}"),
                instruction: Some(format!("Explain {p} please")),
                output: Some(format!("Sure: {p}")),
                cluster: Some(0),
                ..Default::default()
            };
            r.scores.insert("quality".into(), 5.0);
            r.provenance.teacher = Some(p.to_string());
            records.push(r);
        }
        ReportInput {
            title: format!("Report {}", PAYLOADS[0]),
            points: Some(vec![[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]]),
            points_note: None,
            clusters: vec![ClusterInfo {
                id: 0,
                label: Some(PAYLOADS[2].into()),
                size: 3,
                representatives: records.iter().map(|r| r.id.clone()).collect(),
                mean_scores: BTreeMap::new(),
            }],
            duplicates: vec![DuplicateRow {
                removed_id: PAYLOADS[1].into(),
                removed_text: PAYLOADS[0].into(),
                kept_id: PAYLOADS[2].into(),
                kept_text: PAYLOADS[1].into(),
                similarity: 0.97,
                mode: DedupMode::Semantic,
            }],
            summary: RunSummaryView {
                name: PAYLOADS[0].into(),
                status: PAYLOADS[2].into(),
                steps: vec![StepRow {
                    id: PAYLOADS[0].into(),
                    kind: PAYLOADS[1].into(),
                    status: "done".into(),
                    rejected: [(PAYLOADS[2].to_string(), 1)].into(),
                    error: Some(PAYLOADS[0].into()),
                    ..Default::default()
                }],
                failures_by_class: [(PAYLOADS[1].to_string(), 2)].into(),
                ..Default::default()
            },
            records,
        }
    }

    #[test]
    fn record_text_never_becomes_markup() {
        let html = render(&hostile_input());
        // The page's own single script is the only one.
        assert_eq!(
            html.matches("<script").count(),
            1,
            "only the report's own script tag"
        );
        assert_eq!(html.matches("</script").count(), 1);
        assert!(!html.contains("<img"), "no img element from record text");
        assert!(
            !html.contains("alert(1)</"),
            "closing tags inside payloads are escaped"
        );
        // The hostile text is still there, readable, as escaped text.
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("&lt;/script&gt;&lt;script&gt;alert(2)"));
    }

    #[test]
    fn escaped_text_reaches_every_section() {
        let html = render(&hostile_input());
        let esc0 = "&lt;script&gt;alert(1)&lt;/script&gt;";
        for id in ["summary", "map", "clusters", "examples", "duplicates"] {
            let start = html
                .find(&format!(r#"<section id="{id}">"#))
                .unwrap_or_else(|| panic!("section {id}"));
            let end = start + html[start..].find("</section>").unwrap();
            let body = &html[start..end];
            assert!(
                !body.contains("<script"),
                "section {id} has a script element"
            );
            if id != "clusters" {
                assert!(
                    body.contains(esc0) || body.contains("&quot;&gt;&lt;img"),
                    "section {id} shows the record text escaped"
                );
            }
        }
        // Hover titles carry the escaped prompt.
        assert!(html.contains("<title>evil-0&lt;script&gt;"));
    }

    #[test]
    fn csp_hash_matches_the_inline_script() {
        let html = render(&ReportInput::default());
        let start = html.find("<script>").unwrap() + "<script>".len();
        let end = html[start..].find("</script>").unwrap() + start;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(&html.as_bytes()[start..end]));
        assert!(html.contains(&format!("script-src 'sha256-{hash}'")));
        assert!(
            html.contains("default-src 'none'"),
            "nothing may be fetched"
        );
    }

    #[test]
    fn map_over_the_cap_is_sampled_and_says_so() {
        let n = MAX_MAP_POINTS + 5_000;
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                id: format!("r{i}"),
                instruction: Some(format!("task {i}")),
                cluster: Some((i % 4) as u32),
                ..Default::default()
            })
            .collect();
        let points = (0..n).map(|i| [i as f32, (i % 97) as f32]).collect();
        let html = render(&ReportInput {
            records,
            points: Some(points),
            ..Default::default()
        });
        assert_eq!(
            html.matches(r#"<circle class="pt""#).count(),
            MAX_MAP_POINTS
        );
        assert!(html.contains("Showing 20,000 of 25,000 records, sampled evenly"));
        // Clusters not in the cluster list still get rows, sized from the records.
        assert_eq!(html.matches(r#"<tr class="cl-row""#).count(), 4);
        assert!(html.contains("6,250"));
    }

    /// `(cx, cy)` of every map point whose hover title starts with `prefix`.
    fn xys_of(html: &str, prefix: &str) -> Vec<(f32, f32)> {
        html.split(r#"<circle class="pt" cx=""#)
            .skip(1)
            .filter(|c| c.contains(&format!("<title>{prefix}")))
            .map(|c| {
                let cx = c[..c.find('"').unwrap()].parse().unwrap();
                let rest = &c[c.find(r#"cy=""#).unwrap() + 4..];
                (cx, rest[..rest.find('"').unwrap()].parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn missing_points_fall_back_to_a_map_of_embeddings() {
        // Two groups far apart, small wiggle inside each: on the map every point's nearest
        // drawn neighbour must come from its own group, whichever projection drew it (the
        // one that keeps more neighbours; here PCA, as the groups are lines), and the page
        // says which.
        let records: Vec<Record> = (0..30)
            .map(|i| Record {
                id: format!("{}{i}", if i < 15 { "a" } else { "b" }),
                embedding: Some(vec![
                    if i < 15 { 0.0 } else { 10.0 },
                    (i % 5) as f32 * 0.1,
                    1.0,
                ]),
                ..Default::default()
            })
            .collect();
        let html = render(&ReportInput {
            records,
            ..Default::default()
        });
        assert_eq!(html.matches(r#"<circle class="pt""#).count(), 30);
        assert!(
            html.contains("next to its nearest neighbours")
                || html.contains("first two principal components")
        );
        let (a, b) = (xys_of(&html, "a"), xys_of(&html, "b"));
        assert_eq!((a.len(), b.len()), (15, 15));
        let d2 = |p: (f32, f32), q: (f32, f32)| (p.0 - q.0).powi(2) + (p.1 - q.1).powi(2);
        for (own, other) in [(&a, &b), (&b, &a)] {
            for (i, &p) in own.iter().enumerate() {
                let near_own = own
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, &q)| d2(p, q))
                    .fold(f32::MAX, f32::min);
                let near_other = other.iter().map(|&q| d2(p, q)).fold(f32::MAX, f32::min);
                assert!(
                    near_own <= near_other,
                    "point {p:?} sits in the other group"
                );
            }
        }
    }

    #[test]
    fn empty_embeddings_are_explained_not_drawn() {
        let records = vec![Record {
            id: "e".into(),
            embedding: Some(vec![]),
            ..Default::default()
        }];
        let html = render(&ReportInput {
            records,
            ..Default::default()
        });
        assert!(html.contains("has an empty embedding"));
        assert!(!html.contains("<circle"));
    }

    #[test]
    fn a_map_that_cannot_be_drawn_is_explained() {
        let records = vec![Record {
            id: "a".into(),
            ..Default::default()
        }];
        let html = render(&ReportInput {
            records: records.clone(),
            ..Default::default()
        });
        assert!(html.contains("no embeddings were given"));
        let html = render(&ReportInput {
            records,
            points: Some(vec![[0.0, 0.0], [1.0, 1.0]]),
            ..Default::default()
        });
        assert!(html.contains("2 map points for 1 records"));
        assert!(!html.contains("<circle"));
    }

    #[test]
    fn dedup_modes_parse_strictly() {
        assert_eq!("near".parse::<DedupMode>(), Ok(DedupMode::Near));
        assert!("fuzzy".parse::<DedupMode>().is_err());
        assert_eq!(DedupMode::Semantic.to_string(), "semantic");
    }

    #[test]
    fn the_demo_renders_every_section_with_its_rows() {
        let input = demo_input(7);
        let html = render(&input);
        assert_eq!(
            html.matches(r#"<circle class="pt""#).count(),
            input.records.len()
        );
        assert_eq!(
            html.matches(r#"<tr class="cl-row""#).count(),
            input.clusters.len()
        );
        assert_eq!(
            html.matches(r#"<tr class="dup-row""#).count(),
            input.duplicates.len()
        );
        assert_eq!(
            html.matches(r#"<tr class="step-row""#).count(),
            input.summary.steps.len()
        );
        assert_eq!(
            html.matches(r#"<article class="cluster-card""#).count(),
            input.clusters.len()
        );
        // Same seed, same page.
        assert_eq!(html, render(&demo_input(7)));
    }
}
