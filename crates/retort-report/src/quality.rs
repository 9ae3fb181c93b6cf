//! "Quality at a glance": what the steps warned about (collapsed score columns, judges
//! rating length, answers in another language, judges below their calibration bar) in
//! a flagged box; each judge's calibration results; the language mix of prompts and
//! answers; the spread of every score column with its most common value's share; and
//! the diversity of the kept prompts (distinct bigrams, entropy of cluster sizes).

use std::collections::BTreeMap;

use crate::html::{esc, int, num, w};
use crate::input::ReportInput;

/// A score column where one value covers more than this share is flagged (the same
/// line the `score` step warns at).
const COLLAPSE_SHARE: f64 = 0.8;

pub(crate) fn quality_section(out: &mut String, input: &ReportInput) {
    out.push_str(r#"<section id="quality"><h2>Quality at a glance</h2>"#);
    warnings(out, input);
    calibration(out, input);
    out.push_str(r#"<div class="cols">"#);
    languages(out, input);
    scores(out, input);
    diversity(out, input);
    out.push_str("</div></section>\n");
}

fn warnings(out: &mut String, input: &ReportInput) {
    let all: Vec<(&str, &str)> = input
        .summary
        .steps
        .iter()
        .flat_map(|s| s.warnings.iter().map(move |m| (s.id.as_str(), m.as_str())))
        .collect();
    if all.is_empty() {
        out.push_str(r#"<p class="note">No step raised a quality warning.</p>"#);
        return;
    }
    w!(
        out,
        r#"<div class="flagged"><b>{} warning{}</b><ul>"#,
        all.len(),
        if all.len() == 1 { "" } else { "s" }
    );
    for (step, m) in all {
        w!(out, "<li><code>{}</code> {}</li>", esc(step), esc(m));
    }
    out.push_str("</ul></div>");
}

fn calibration(out: &mut String, input: &ReportInput) {
    let judged: Vec<_> = input
        .summary
        .steps
        .iter()
        .filter(|s| s.metrics.contains_key("calibration_accuracy"))
        .collect();
    if judged.is_empty() {
        out.push_str(r#"<p class="note">No judge was calibrated in this run (<code>calibration = "on"</code> on a score or judge step checks it on the built-in set first).</p>"#);
        return;
    }
    out.push_str(r#"<h3>Judge calibration</h3><p class="note">How often each judge preferred the good answer of a pair whose other answer has one labelled flaw; 0.5 is chance.</p><div class="scroll"><table class="steps"><thead><tr><th>Step</th><th class="n">Items</th><th class="n">Accuracy</th><th class="n">Ties</th><th class="n">First position</th><th class="n">Unreadable</th><th>Per flaw</th><th>Per language</th></tr></thead><tbody>"#);
    for s in judged {
        let m = &s.metrics;
        let get = |k: &str| m.get(k).map(|v| num(*v)).unwrap_or_else(|| "—".into());
        let group = |prefix: &str| {
            m.iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|f| (f, *v)))
                .map(|(f, v)| {
                    let hot = if v < 0.75 { " hot" } else { "" };
                    format!(r#"<span class="pill{hot}">{} {}</span>"#, esc(f), num(v))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let acc = m["calibration_accuracy"];
        w!(
            out,
            r#"<tr><td><b>{}</b> <code>{}</code></td><td class="n">{}</td><td class="n{}">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td><td>{}</td></tr>"#,
            esc(&s.id),
            esc(&s.kind),
            get("calibration_items"),
            if acc < 0.8 { " hot" } else { "" },
            num(acc),
            get("calibration_tie_rate"),
            get("calibration_first_position"),
            get("calibration_unparsed"),
            group("calibration_flaw_"),
            group("calibration_lang_")
        );
    }
    out.push_str("</tbody></table></div>");
}

fn count_table(out: &mut String, title: &str, head: &str, rows: &[(String, u64)]) {
    w!(
        out,
        r#"<div><h3>{}</h3><table class="kv"><thead><tr><th>{}</th><th class="n">Records</th></tr></thead><tbody>"#,
        esc(title),
        esc(head)
    );
    for (k, n) in rows {
        w!(
            out,
            r#"<tr><td>{}</td><td class="n">{}</td></tr>"#,
            esc(k),
            int(*n)
        );
    }
    out.push_str("</tbody></table></div>");
}

fn languages(out: &mut String, input: &ReportInput) {
    let mut mix: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut mismatched = 0;
    for r in &input.records {
        let Some(p) = r.labels.get("language") else {
            continue;
        };
        let a = r
            .labels
            .get("response_language")
            .cloned()
            .unwrap_or("—".into());
        *mix.entry((p.clone(), a)).or_default() += 1;
        if r.scores.get("lang_mismatch") == Some(&1.0) {
            mismatched += 1;
        }
    }
    if mix.is_empty() {
        return;
    }
    let mut rows: Vec<(String, u64)> = mix
        .into_iter()
        .map(|((p, a), n)| (format!("{p} → {a}"), n))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows.push((
        "answer in another language (lang_mismatch)".into(),
        mismatched,
    ));
    count_table(out, "Languages", "Prompt → answer", &rows);
}

fn scores(out: &mut String, input: &ReportInput) {
    let mut cols: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for r in &input.records {
        for (k, v) in &r.scores {
            cols.entry(k.as_str()).or_default().push(*v);
        }
    }
    // Judge scores and lengths; the 0/1 heuristics say more in their own tables.
    cols.retain(|k, v| !(v.iter().all(|x| *x == 0.0 || *x == 1.0) || k.ends_with("_confidence")));
    if cols.is_empty() {
        return;
    }
    out.push_str(r#"<div><h3>Score columns</h3><table class="kv"><thead><tr><th>Column</th><th class="n">Min</th><th class="n">Median</th><th class="n">Max</th><th class="n">Top value share</th></tr></thead><tbody>"#);
    for (k, mut v) in cols {
        v.sort_by(f64::total_cmp);
        let mut top: BTreeMap<u64, usize> = BTreeMap::new();
        for x in &v {
            *top.entry(x.to_bits()).or_default() += 1;
        }
        let (bits, n) = top.into_iter().max_by_key(|(_, n)| *n).expect("not empty");
        let share = n as f64 / v.len() as f64;
        let flagged = share > COLLAPSE_SHARE && v.len() >= 20;
        w!(
            out,
            r#"<tr><td><code>{}</code></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n{}">{:.0}% are {}{}</td></tr>"#,
            esc(k),
            num(v[0]),
            num(v[v.len() / 2]),
            num(v[v.len() - 1]),
            if flagged { " hot" } else { "" },
            share * 100.0,
            num(f64::from_bits(bits)),
            if flagged { " — collapsed" } else { "" }
        );
    }
    out.push_str("</tbody></table></div>");
}

/// Distinct word bigrams over all bigrams of the prompts (distinct-2), and the entropy
/// of cluster sizes relative to its maximum (1 = evenly spread).
fn diversity(out: &mut String, input: &ReportInput) {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for r in &input.records {
        let p = r.prompt_text().to_lowercase();
        let words: Vec<&str> = p.split_whitespace().collect();
        for w in words.windows(2) {
            total += 1;
            seen.insert((w[0].to_string(), w[1].to_string()));
        }
    }
    let mut sizes: BTreeMap<u32, u64> = BTreeMap::new();
    for r in &input.records {
        if let Some(c) = r.cluster {
            *sizes.entry(c).or_default() += 1;
        }
    }
    let mut rows = vec![(
        "distinct-2 of prompts".to_string(),
        if total > 0 {
            num(seen.len() as f64 / total as f64)
        } else {
            "—".into()
        },
    )];
    if sizes.len() > 1 {
        let n: u64 = sizes.values().sum();
        let h: f64 = sizes
            .values()
            .map(|&c| {
                let p = c as f64 / n as f64;
                -p * p.ln()
            })
            .sum();
        rows.push((
            format!("cluster-size entropy ({} clusters)", sizes.len()),
            num(h / (sizes.len() as f64).ln()),
        ));
    }
    out.push_str(r#"<div><h3>Diversity</h3><table class="kv"><tbody>"#);
    for (k, v) in rows {
        w!(
            out,
            r#"<tr><td>{}</td><td class="n">{}</td></tr>"#,
            esc(&k),
            v
        );
    }
    out.push_str("</tbody></table></div>");
}
