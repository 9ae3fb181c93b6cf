//! The records explorer section: the controls and an empty table that the page's script
//! fills from the inert JSON data block ([`crate::explorer_data`]), a page of rows at a
//! time, with sorting, filters and rows that open to their full texts.

use crate::explorer_data::explorer_json;
use crate::html::{int, w};
use crate::input::ReportInput;
use crate::view::View;

/// Id of the `<script type="application/json">` element holding the explorer's data.
pub(crate) const DATA_ID: &str = "explorer-data";

/// The `#records` section and, after it, the data block.
pub(crate) fn explorer_section(out: &mut String, input: &ReportInput, view: &View<'_>) {
    out.push_str(r#"<section id="records"><h2>Records</h2>"#);
    out.push_str(r#"<p class="hint">Every kept record with its scores, labels, language, cluster and teacher; the records removed as duplicates beside their kept twins; rejections with their reasons; failures with their class and raw text. Click a column to sort, a row to open it.</p>"#);
    out.push_str(r#"<div class="rx-tabs" role="tablist">"#);
    let tabs = [
        ("kept", "Kept records", input.records.len() as u64),
        ("dups", "Removed duplicates", input.duplicates.len() as u64),
        (
            "rejects",
            "Rejections",
            input
                .summary
                .steps
                .iter()
                .map(|s| s.rejected.values().sum::<u64>())
                .sum::<u64>()
                .max(input.rejections.len() as u64),
        ),
        (
            "fails",
            "Failures",
            input
                .summary
                .failures_by_class
                .values()
                .sum::<u64>()
                .max(input.failures.len() as u64),
        ),
    ];
    for (key, name, n) in tabs {
        w!(
            out,
            r#"<button type="button" role="tab" data-view="{key}">{name} <b>{}</b></button>"#,
            int(n)
        );
    }
    out.push_str("</div>");
    out.push_str(concat!(
        r#"<div class="rx-filters">"#,
        r#"<label class="rx-q">Search <input type="search" id="rx-q" placeholder="words in id, prompt, answer, labels…" autocomplete="off"></label>"#,
        r#"<label><span id="rx-cat-name">Cluster</span> <select id="rx-cat"></select></label>"#,
        r#"<label id="rx-lang-box">Language <select id="rx-lang"></select></label>"#,
        r#"<label id="rx-score-box">Score <select id="rx-score"></select> <input type="number" step="any" id="rx-min" placeholder="min"> – <input type="number" step="any" id="rx-max" placeholder="max"></label>"#,
        r#"<button type="button" id="rx-reset">Reset</button>"#,
        r#"</div>"#,
        r#"<p class="rx-status" id="rx-status" aria-live="polite"></p>"#,
        r#"<div class="scroll"><table class="rx" id="rx-table"><thead></thead><tbody></tbody></table></div>"#,
        r#"<div class="rx-pager"><button type="button" id="rx-prev">‹ Previous</button><span id="rx-page"></span><button type="button" id="rx-next">Next ›</button><label>Rows per page <select id="rx-size"><option>25</option><option selected>50</option><option>100</option><option>250</option></select></label></div>"#,
        r#"<p class="note" id="rx-cutnote"></p>"#,
        r#"<noscript><p class="note">The records explorer needs JavaScript; the run directory's Parquet files hold the same records.</p></noscript>"#,
        "</section>\n",
    ));
    w!(
        out,
        r#"<script type="application/json" id="{DATA_ID}">{}</script>
"#,
        explorer_json(input, view)
    );
}
