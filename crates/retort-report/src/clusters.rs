//! The per-cluster sections: the map with its legend, the clusters table with score
//! histograms, and the representative examples.

use retort_core::Record;

use crate::charts;
use crate::html::{self, esc, int, num, truncate, w};
use crate::input::ReportInput;
use crate::limits::{EXAMPLES_PER_CLUSTER, MAX_EXAMPLE_CLUSTERS, MAX_LEGEND_CLUSTERS};
use crate::map;
use crate::view::{mean, ClusterRow, View, SCORE_KEYS};

/// How the page names a cluster (the records without one are "unclustered").
fn cluster_name(id: Option<u32>) -> String {
    id.map_or("unclustered".to_string(), |c| format!("cluster {c}"))
}

/// The `#map` section, or the sentence saying why there is no map.
pub(crate) fn map_section(out: &mut String, input: &ReportInput, view: &View<'_>) {
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

/// The `#clusters` table, with a footer row over all records.
pub(crate) fn clusters_section(out: &mut String, input: &ReportInput, view: &View<'_>) {
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

/// The `#examples` section: the representatives of the largest clusters.
pub(crate) fn examples_section(out: &mut String, input: &ReportInput, view: &View<'_>) {
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

/// One record as an example card: id, scores, teacher, prompt and answer.
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
