//! The run summary section: headline numbers, the steps table, rejections by reason,
//! failures by class and teacher usage.

use crate::html::{esc, int, num, secs, usd, w};
use crate::input::ReportInput;

/// The badge class of a step or run status (`ok`, `bad`, `muted` or `warn`), by prefix so
/// `done (resumed)` or `failed: …` still get their colour.
pub(crate) fn status_class(status: &str) -> &'static str {
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

/// One headline number with its label and an optional line under it.
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

/// The `#summary` section.
pub(crate) fn summary(out: &mut String, input: &ReportInput) {
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
