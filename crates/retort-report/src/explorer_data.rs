//! The records explorer's data: kept records, removed duplicates, rejections and
//! failures as one JSON document, embedded in the page as an inert
//! `<script type="application/json">` block that the page's own script reads with
//! `JSON.parse` and writes out only as `textContent`.
//!
//! The JSON is made safe to sit inside a `<script>` element by escaping `<`, `>` and `&`
//! (and U+2028/U+2029) as `\uXXXX` inside its strings, so no record text can close the
//! element or open a comment. Texts are cut to the budgets in [`crate::limits`] so the
//! page of a big run stays a size a browser opens quickly; a cut text carries its full
//! length so the page can say so.
//!
//! Shape (short keys keep a 20,000-row page small; `script.js` is the only reader):
//! `{scores: [name…], clusters: [[id, label|null, colour]…], budget, kept: {total, rows},
//! dups: {…}, rejects: {…}, fails: {…}}`. Every row has `x`, its texts in display order,
//! each `{h: heading, k: kind, t: text, n?: full length in characters when cut}`; `k` is
//! `p` (prompt), `a` (answer), `r` (reasoning), `s` (system), `t` (other turn), `c`
//! (candidate) or `m` (notes: rationale, failure message, raw text).

use std::collections::{BTreeSet, HashMap, HashSet};

use retort_core::{Message, Record};
use serde::Serialize;

use crate::html::num;
use crate::input::ReportInput;
use crate::limits::{
    EXPLORER_FIELD_BYTES, EXPLORER_LABEL_BYTES, EXPLORER_MAX_LABELS, EXPLORER_MAX_RECORDS,
    EXPLORER_MAX_SCORE_COLUMNS, EXPLORER_MAX_SIDE_ROWS, EXPLORER_MIN_ROW_BYTES, EXPLORER_ROW_BYTES,
    EXPLORER_TOTAL_TEXT_BYTES,
};
use crate::map::colour;
use crate::view::{View, SCORE_KEYS};

/// Score columns that place a record on the map rather than grade it.
const HIDDEN_SCORES: [&str; 2] = ["map_x", "map_y"];
/// Labels the explorer shows in their own columns (or that repeat a twin's text).
const HIDDEN_LABELS: [&str; 4] = [
    "language",
    "cluster_label",
    "duplicate_of_text",
    "map_projection",
];

#[derive(Serialize)]
struct Data<'a> {
    scores: Vec<&'a str>,
    /// `[id, label, colour]`, the colour as on the map.
    clusters: Vec<(u32, Option<String>, String)>,
    /// Per-row text budget in bytes, shown in the page's note.
    budget: usize,
    kept: Table<KeptRow<'a>>,
    dups: Table<DupRow<'a>>,
    rejects: Table<RejectRow<'a>>,
    fails: Table<FailRow<'a>>,
}

#[derive(Serialize)]
struct Table<T> {
    /// Rows in the run (may exceed `rows.len()` when capped).
    total: usize,
    rows: Vec<T>,
}

/// One text of a row, possibly cut.
#[derive(Serialize)]
struct Text {
    h: String,
    k: &'static str,
    t: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<usize>,
}

#[derive(Serialize)]
struct KeptRow<'a> {
    i: &'a str,
    c: Option<u32>,
    l: Option<&'a str>,
    t: Option<&'a str>,
    m: Option<&'a str>,
    /// Step that made the record.
    st: &'a str,
    /// One value per `Data::scores` column.
    s: Vec<Option<f64>>,
    b: Vec<(&'a str, String)>,
    x: Vec<Text>,
}

#[derive(Serialize)]
struct DupRow<'a> {
    i: &'a str,
    k: &'a str,
    d: &'static str,
    v: Option<f64>,
    x: Vec<Text>,
    /// The twin's text, only when the twin is not among the listed kept rows.
    y: Vec<Text>,
}

#[derive(Serialize)]
struct RejectRow<'a> {
    s: &'a str,
    i: &'a str,
    r: &'a str,
    d: String,
    x: Vec<Text>,
}

#[derive(Serialize)]
struct FailRow<'a> {
    s: &'a str,
    i: &'a str,
    c: &'a str,
    h: Option<u16>,
    x: Vec<Text>,
}

/// A text before the row budget is shared out: lower `prio` is served first.
struct Draft {
    h: String,
    k: &'static str,
    text: String,
    prio: u8,
}

fn draft(h: impl Into<String>, k: &'static str, text: &str, prio: u8) -> Draft {
    Draft {
        h: h.into(),
        k,
        text: text.to_string(),
        prio,
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary, ending it with `…` when
/// something was cut; the second value is the full length in characters when cut.
pub(crate) fn cut_bytes(s: &str, max: usize) -> (String, Option<usize>) {
    if s.len() <= max {
        return (s.to_string(), None);
    }
    if max <= '…'.len_utf8() {
        // No room for even one character and the mark: the page says it was cut.
        return (String::new(), Some(s.chars().count()));
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut t = s[..end].trim_end().to_string();
    t.push('…');
    (t, Some(s.chars().count()))
}

/// Shares `budget` bytes out over the drafts by priority (each at most
/// [`EXPLORER_FIELD_BYTES`]) and returns them in their original order.
fn share(drafts: Vec<Draft>, budget: usize) -> Vec<Text> {
    let mut order: Vec<usize> = (0..drafts.len()).collect();
    order.sort_by_key(|&i| drafts[i].prio);
    let mut left = budget;
    let mut out: Vec<Option<Text>> = drafts.iter().map(|_| None).collect();
    for i in order {
        let d = &drafts[i];
        let (t, n) = cut_bytes(&d.text, left.min(EXPLORER_FIELD_BYTES));
        left = left.saturating_sub(t.len());
        out[i] = Some(Text {
            h: d.h.clone(),
            k: d.k,
            t,
            n,
        });
    }
    out.into_iter().flatten().collect()
}

/// Turns of a chat, each with its reasoning before it.
fn turns(out: &mut Vec<Draft>, msgs: &[Message], answer_at: Option<usize>, label: &str) {
    let mut seen_user = false;
    for (n, m) in msgs.iter().enumerate() {
        let is_answer = answer_at == Some(n);
        let head = if label.is_empty() {
            format!("turn {} · {}", n + 1, m.role)
        } else {
            format!("{label} · {}", m.role)
        };
        if let Some(r) = m.reasoning.as_deref().filter(|r| !r.is_empty()) {
            out.push(draft(
                format!("{head} · reasoning"),
                "r",
                r,
                if is_answer { 2 } else { 4 },
            ));
        }
        let (k, prio) = match m.role.as_str() {
            "user" if !seen_user => {
                seen_user = true;
                ("p", 0)
            }
            "system" => ("s", 3),
            _ if is_answer => ("a", 1),
            _ => ("t", 3),
        };
        // A tool result says which function answered; a call-only turn has no content.
        let head = match m.name.as_deref().filter(|_| m.role == "tool") {
            Some(f) => format!("{head} · {f}"),
            None => head,
        };
        if !m.content.is_empty() || m.tool_calls.is_empty() {
            out.push(draft(head.clone(), k, &m.content, prio));
        }
        for call in &m.tool_calls {
            out.push(draft(
                format!("{head} · calls {}", call.name),
                "t",
                &call.arguments,
                prio.max(2),
            ));
        }
    }
}

/// The functions a record offers its model, by name, with their definitions.
fn tools_draft(tools: &[serde_json::Value]) -> Option<Draft> {
    if tools.is_empty() {
        return None;
    }
    let name = |t: &serde_json::Value| {
        t.pointer("/function/name")
            .or_else(|| t.get("name"))
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_string()
    };
    let names: Vec<String> = tools.iter().map(name).collect();
    let text = tools
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    Some(draft(
        format!("tools · {}", names.join(", ")),
        "m",
        &text,
        5,
    ))
}

/// A kept (or removed) record's texts in display order: the prompt (instruction and
/// input, or every turn), the answer, reasoning, candidates and a preference pair.
fn record_drafts(r: &Record) -> Vec<Draft> {
    let mut d = Vec::new();
    if r.messages.is_empty() {
        if let Some(i) = &r.instruction {
            d.push(draft("instruction", "p", i, 0));
        }
        if let Some(i) = r.input.as_deref().filter(|i| !i.trim().is_empty()) {
            d.push(draft("input", "p", i, 0));
        }
        if let Some(o) = &r.output {
            d.push(draft("answer", "a", o, 1));
        }
    } else {
        // The final assistant turn is the answer unless a pair holds the answers.
        let answer_at = match (&r.pair, r.messages.last()) {
            (None, Some(m)) if m.role == "assistant" => Some(r.messages.len() - 1),
            _ => None,
        };
        turns(&mut d, &r.messages, answer_at, "");
    }
    if let Some(p) = &r.pair {
        let at = |m: &[Message]| m.iter().rposition(|m| m.role == "assistant");
        turns(
            &mut d,
            &p.chosen,
            at(&p.chosen),
            &format!(
                "chosen · {} · score {}",
                p.chosen_model,
                num(p.chosen_score)
            ),
        );
        let rejected: Vec<Draft> = {
            let mut v = Vec::new();
            turns(
                &mut v,
                &p.rejected,
                None,
                &format!(
                    "rejected · {} · score {}",
                    p.rejected_model,
                    num(p.rejected_score)
                ),
            );
            v
        };
        d.extend(rejected.into_iter().map(|mut x| {
            x.prio = x.prio.max(2);
            x
        }));
        if let Some(why) = &p.rationale {
            d.push(draft(
                format!("pair rationale · margin {}", num(p.margin)),
                "m",
                why,
                5,
            ));
        }
    }
    d.extend(tools_draft(&r.tools));
    for (j, c) in r.candidates.iter().enumerate() {
        let mut h = format!("candidate {} · {}", j + 1, c.teacher);
        if !c.model.is_empty() {
            h.push_str(&format!(" ({})", c.model));
        }
        if c.sample > 0 {
            h.push_str(&format!(" · sample {}", c.sample));
        }
        if let Some(s) = c.score {
            h.push_str(&format!(" · score {}", num(s)));
        }
        if let Some(r) = c.reasoning.as_deref().filter(|r| !r.is_empty()) {
            d.push(draft(format!("candidate {} · reasoning", j + 1), "r", r, 5));
        }
        d.push(draft(h, "c", &c.content, 4));
        if let Some(why) = &c.rationale {
            d.push(draft(
                format!("candidate {} · rationale", j + 1),
                "m",
                why,
                5,
            ));
        }
    }
    d
}

/// A score rounded for display (four decimals), `None` when not finite.
fn score(x: f64) -> Option<f64> {
    x.is_finite().then(|| (x * 1e4).round() / 1e4)
}

/// The score columns of the listed records: `quality`, `difficulty` first, then the
/// others by name, at most [`EXPLORER_MAX_SCORE_COLUMNS`].
fn score_columns(records: &[Record]) -> Vec<&str> {
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for r in records {
        names.extend(
            r.scores
                .keys()
                .map(String::as_str)
                .filter(|k| !HIDDEN_SCORES.contains(k)),
        );
    }
    let mut cols: Vec<&str> = SCORE_KEYS
        .iter()
        .copied()
        .filter(|k| names.contains(k))
        .collect();
    cols.extend(names.into_iter().filter(|k| !SCORE_KEYS.contains(k)));
    cols.truncate(EXPLORER_MAX_SCORE_COLUMNS);
    cols
}

/// The explorer's JSON, already escaped to sit inside a `<script>` element.
pub(crate) fn explorer_json(input: &ReportInput, view: &View<'_>) -> String {
    let kept_n = input.records.len().min(EXPLORER_MAX_RECORDS);
    let kept = &input.records[..kept_n];
    let dups = &input.duplicates[..input.duplicates.len().min(EXPLORER_MAX_SIDE_ROWS)];
    let rejects = &input.rejections[..input.rejections.len().min(EXPLORER_MAX_SIDE_ROWS)];
    let fails = &input.failures[..input.failures.len().min(EXPLORER_MAX_SIDE_ROWS)];
    let rows = kept.len() + dups.len() + rejects.len() + fails.len();
    let budget =
        (EXPLORER_TOTAL_TEXT_BYTES / rows.max(1)).clamp(EXPLORER_MIN_ROW_BYTES, EXPLORER_ROW_BYTES);

    let models: HashMap<&str, &str> = input
        .summary
        .teachers
        .iter()
        .filter_map(|t| Some((t.name.as_str(), t.model.as_deref()?)))
        .collect();
    let scores = score_columns(kept);
    let kept_rows: Vec<KeptRow<'_>> = kept
        .iter()
        .map(|r| {
            let teacher = r.provenance.teacher.as_deref();
            let labels = r
                .labels
                .iter()
                .filter(|(k, _)| !HIDDEN_LABELS.contains(&k.as_str()))
                .take(EXPLORER_MAX_LABELS)
                .map(|(k, v)| (k.as_str(), cut_bytes(v, EXPLORER_LABEL_BYTES).0))
                .collect();
            KeptRow {
                i: &r.id,
                c: r.cluster,
                l: r.labels.get("language").map(String::as_str),
                t: teacher,
                m: teacher.and_then(|t| models.get(t).copied()),
                st: &r.provenance.step,
                s: scores
                    .iter()
                    .map(|k| r.scores.get(*k).copied().and_then(score))
                    .collect(),
                b: labels,
                x: share(record_drafts(r), budget),
            }
        })
        .collect();

    let listed: HashSet<&str> = kept.iter().map(|r| r.id.as_str()).collect();
    let removed: HashMap<&str, &Record> = input
        .duplicate_records
        .iter()
        .map(|r| (r.id.as_str(), r))
        .collect();
    let dup_rows = dups
        .iter()
        .map(|d| {
            let x = match removed.get(d.removed_id.as_str()) {
                Some(r) => share(record_drafts(r), budget),
                None => share(
                    vec![draft("compared text", "p", &d.removed_text, 0)],
                    budget,
                ),
            };
            let y = if listed.contains(d.kept_id.as_str()) {
                vec![]
            } else {
                share(vec![draft("compared text", "p", &d.kept_text, 0)], budget)
            };
            DupRow {
                i: &d.removed_id,
                k: &d.kept_id,
                d: d.mode.as_str(),
                v: score(d.similarity),
                x,
                y,
            }
        })
        .collect();
    let reject_rows = rejects
        .iter()
        .map(|r| RejectRow {
            s: &r.step,
            i: &r.record_id,
            r: &r.reason,
            d: cut_bytes(&r.detail, EXPLORER_LABEL_BYTES).0,
            x: share(vec![draft("rejected text", "p", &r.text, 0)], budget),
        })
        .collect();
    let fail_rows = fails
        .iter()
        .map(|f| FailRow {
            s: &f.step,
            i: &f.record_id,
            c: &f.class,
            h: f.status,
            x: share(
                vec![
                    draft("message", "m", &f.message, 0),
                    draft("raw text", "p", &f.raw, 1),
                ],
                budget,
            ),
        })
        .collect();

    let rejects_total = input
        .summary
        .steps
        .iter()
        .map(|s| s.rejected.values().sum::<u64>() as usize)
        .sum::<usize>()
        .max(input.rejections.len());
    let fails_total =
        (input.summary.failures_by_class.values().sum::<u64>() as usize).max(input.failures.len());
    let data = Data {
        scores,
        clusters: view
            .clusters
            .iter()
            .filter_map(|c| Some((c.id?, c.label.map(str::to_string), colour(c.id))))
            .collect(),
        budget,
        kept: Table {
            total: input.records.len(),
            rows: kept_rows,
        },
        dups: Table {
            total: input.duplicates.len(),
            rows: dup_rows,
        },
        rejects: Table {
            total: rejects_total,
            rows: reject_rows,
        },
        fails: Table {
            total: fails_total,
            rows: fail_rows,
        },
    };
    // Serialising plain strings, numbers and maps with string keys cannot fail.
    let json = serde_json::to_string(&data).expect("explorer data is plain JSON");
    script_safe(&json)
}

/// Escapes the characters that could end a `<script>` element or start a comment inside
/// it. In JSON they only occur inside strings, where `\uXXXX` means the same character.
pub(crate) fn script_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_bytes_keeps_characters_whole_and_reports_the_length() {
        assert_eq!(cut_bytes("short", 10), ("short".to_string(), None));
        let (t, n) = cut_bytes("你好世界你好", 10);
        assert!(t.len() <= 10, "{t} is {} bytes", t.len());
        assert_eq!(t, "你好…");
        assert_eq!(n, Some(6));
    }

    #[test]
    fn share_serves_the_prompt_and_answer_first() {
        let long = "x".repeat(5_000);
        let texts = share(
            vec![
                draft("candidate", "c", &long, 4),
                draft("prompt", "p", &long, 0),
                draft("answer", "a", &long, 1),
            ],
            8_000,
        );
        assert_eq!(
            texts.iter().map(|t| t.h.as_str()).collect::<Vec<_>>(),
            ["candidate", "prompt", "answer"],
            "display order is kept"
        );
        assert_eq!(texts[1].t.len(), 5_000);
        assert_eq!(texts[1].n, None);
        assert!(texts[2].n == Some(5_000) && texts[2].t.len() <= 3_000);
        assert_eq!(texts[0].n, Some(5_000));
        let total: usize = texts.iter().map(|t| t.t.len()).sum();
        assert!(total <= 8_000, "row budget exceeded: {total}");
    }

    #[test]
    fn script_safe_json_cannot_close_the_element() {
        let j = serde_json::to_string(&["</script><img src=x onerror=alert(1)>", "a&b\u{2028}"])
            .unwrap();
        let s = script_safe(&j);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: Vec<String> = serde_json::from_str(&s).unwrap();
        assert_eq!(back[0], "</script><img src=x onerror=alert(1)>");
        assert_eq!(back[1], "a&b\u{2028}");
    }

    /// Asserts a record's drafts, as (heading, kind, text), in display order.
    fn assert_shown(r: &Record, want: &[(&str, &str, &str)]) {
        let d = record_drafts(r);
        let got: Vec<(&str, &str, &str)> = d
            .iter()
            .map(|d| (d.h.as_str(), d.k, d.text.as_str()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn records_show_reasoning_candidates_and_pairs() {
        let mut r = Record {
            id: "r".into(),
            messages: vec![
                Message::system("be brief"),
                Message::user("why?"),
                Message {
                    role: "assistant".into(),
                    content: "because".into(),
                    reasoning: Some("let me think".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        r.candidates.push(retort_core::Candidate {
            teacher: "big".into(),
            model: "m7".into(),
            content: "cand".into(),
            score: Some(8.0),
            rationale: Some("good".into()),
            ..Default::default()
        });
        assert_shown(
            &r,
            &[
                ("turn 1 · system", "s", "be brief"),
                ("turn 2 · user", "p", "why?"),
                ("turn 3 · assistant · reasoning", "r", "let me think"),
                ("turn 3 · assistant", "a", "because"),
                ("candidate 1 · big (m7) · score 8", "c", "cand"),
                ("candidate 1 · rationale", "m", "good"),
            ],
        );
    }

    #[test]
    fn records_show_tools_calls_results_and_candidate_reasoning() {
        let call = |name: &str, args: &str| retort_core::ToolCall {
            id: Some("call_1".into()),
            name: name.into(),
            arguments: args.into(),
        };
        let mut r = Record {
            id: "r".into(),
            tools: vec![serde_json::json!({
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}}
            })],
            messages: vec![
                Message::user("weather in Oslo?"),
                Message {
                    role: "assistant".into(),
                    tool_calls: vec![call("get_weather", r#"{"city":"Oslo"}"#)],
                    ..Default::default()
                },
                Message {
                    role: "tool".into(),
                    content: "4 C, rain".into(),
                    tool_call_id: Some("call_1".into()),
                    name: Some("get_weather".into()),
                    ..Default::default()
                },
                Message::assistant("4 C and raining."),
            ],
            ..Default::default()
        };
        r.candidates.push(retort_core::Candidate {
            teacher: "big".into(),
            content: "cand".into(),
            reasoning: Some("check the units".into()),
            ..Default::default()
        });
        assert_shown(
            &r,
            &[
                ("turn 1 · user", "p", "weather in Oslo?"),
                (
                    "turn 2 · assistant · calls get_weather",
                    "t",
                    r#"{"city":"Oslo"}"#,
                ),
                ("turn 3 · tool · get_weather", "t", "4 C, rain"),
                ("turn 4 · assistant", "a", "4 C and raining."),
                (
                    "tools · get_weather",
                    "m",
                    r#"{"function":{"name":"get_weather","parameters":{"type":"object"}},"type":"function"}"#,
                ),
                ("candidate 1 · reasoning", "r", "check the units"),
                ("candidate 1 · big", "c", "cand"),
            ],
        );
    }
}
