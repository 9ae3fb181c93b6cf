//! The removed-duplicates section: counts per dedup mode and each removed record beside
//! the twin it was merged into.

use crate::html::{esc, int, truncate, w};
use crate::input::{DedupMode, ReportInput};
use crate::limits::MAX_DUPLICATE_ROWS;

/// The `#duplicates` section.
pub(crate) fn duplicates_section(out: &mut String, input: &ReportInput) {
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
