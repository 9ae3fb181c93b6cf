//! The removed-duplicates section: counts per dedup mode and each removed record beside
//! the twin it was merged into, with the side that was compared (`prompt`, `response`,
//! `prompt_response`, …, from the dedup step's `labels.dedup_text`).

use std::collections::HashMap;

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
    // The removed records in full carry the side compared and their own compared text
    // (the row's `removed_text` is the prompt, whatever the side).
    let full: HashMap<&str, &retort_core::Record> = input
        .duplicate_records
        .iter()
        .map(|r| (r.id.as_str(), r))
        .collect();
    out.push_str(r#"<div class="scroll"><table class="dups"><thead><tr><th>Mode</th><th>Side</th><th class="n">Similarity</th><th>Removed record</th><th>Kept twin</th></tr></thead><tbody>"#);
    for d in input.duplicates.iter().take(MAX_DUPLICATE_ROWS) {
        let rec = full.get(d.removed_id.as_str());
        let label = |k: &str| rec.and_then(|r| r.labels.get(k)).map(String::as_str);
        // Runs from before the label existed compared an unrecorded side: say so.
        let side = label("dedup_text").unwrap_or("unknown");
        let removed_text = label("duplicate_text").unwrap_or(&d.removed_text);
        w!(
            out,
            r#"<tr class="dup-row"><td><span class="chip m-{}">{}</span></td><td class="dside">{}</td><td class="n">{:.3}</td><td><code class="rid">{}</code><div class="dt">{}</div></td><td><code class="rid">{}</code><div class="dt">{}</div></td></tr>"#,
            d.mode,
            d.mode,
            esc(side),
            d.similarity,
            esc(&d.removed_id),
            esc(&truncate(removed_text, 320)),
            esc(&d.kept_id),
            esc(&truncate(&d.kept_text, 320))
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::DuplicateRow;

    /// Issue #16: an answer-side dedup showed the removed record's prompt beside the kept
    /// twin's answer, with nothing saying answers were compared.
    #[test]
    fn the_side_compared_and_its_text_are_shown() {
        let mut removed = retort_core::Record {
            id: "b".into(),
            instruction: Some("Write a sentence about a pet.".into()),
            output: Some("The cat sat on the mat.".into()),
            ..Default::default()
        };
        removed
            .labels
            .insert("dedup_text".into(), "response".into());
        removed
            .labels
            .insert("duplicate_text".into(), "The cat sat on the mat.".into());
        let row = |id: &str| DuplicateRow {
            removed_id: id.into(),
            removed_text: "Write a sentence about a pet.".into(),
            kept_id: "a".into(),
            kept_text: "The cat sat on the mat.".into(),
            similarity: 1.0,
            mode: DedupMode::Exact,
        };
        let input = ReportInput {
            duplicates: vec![row("b"), row("old")],
            duplicate_records: vec![removed],
            ..Default::default()
        };
        let mut html = String::new();
        duplicates_section(&mut html, &input);
        assert!(html.contains("<th>Side</th>"), "{html}");
        assert!(
            html.contains(r#"<td class="dside">response</td><td class="n">1.000</td><td><code class="rid">b</code><div class="dt">The cat sat on the mat.</div>"#),
            "{html}"
        );
        assert!(html.contains(r#"<td class="dside">unknown</td>"#), "{html}");
    }
}
