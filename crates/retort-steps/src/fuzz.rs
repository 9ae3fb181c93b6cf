//! Property/fuzz tests for every parser in this crate that reads untrusted text: judge
//! replies, self-instruct / Alpaca / classic blocks, self-chat transcripts, the filter
//! expression language, and the `load` step's row-to-record mapping.
//!
//! Each property runs `RETORT_FUZZ_CASES` cases (default 10,000), each under a 2 s
//! timeout (proptest runs the cases in a forked child, so a hang or a stack overflow is
//! reported with its input instead of killing the test binary). A long run:
//!
//! ```text
//! RETORT_FUZZ_CASES=1000000 cargo test --release -p retort-steps fuzz
//! ```
//!
//! The inputs are built from fragments that matter to these parsers (`{`, `"score":`,
//! `Instruction:`, `###`, `1.`, `[|Human|]`, `<noinput>`, CJK, emoji, `\r\n`, long runs,
//! deep nesting, `1e309`, `NaN`, …) mixed with arbitrary characters, so most cases reach
//! the interesting branches instead of bouncing off the first check.
//!
//! Size: test-only (`#[cfg(test)]`), one property per parser with its generators beside
//! it; splitting per parser would repeat the shared generators and runner settings.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use retort_core::Record;
use retort_teacher::FinishReason;
use serde_json::{Map, Value};

use crate::filter::{self, Expr, Op, Val};
use crate::gen_common as gc;
use crate::generate::replies::{
    self as rp, parse_alpaca, parse_classic_list, parse_instances, parse_yes_no, Instances,
    ALPACA_FIELDS,
};
use crate::judge_parse::{json_objects, parse_score, parse_verdict, Scale, Verdict};
use crate::self_chat::{baize_rules, split_transcript, user_turn};

#[path = "../../../tests/fuzz_config.rs"]
mod fuzz_config;
use fuzz_config::config;

// ------------------------------------------------------------------ adversarial text

const FRAGMENTS: &[&str] = &[
    // JSON and judge replies
    "{",
    "}",
    "[",
    "]",
    "[[",
    "]]",
    "\"",
    "\\",
    "\\\"",
    ":",
    ",",
    "\"score\":",
    "\"score\": ",
    "\"Rating\":",
    "\"overall_score\":",
    "\"rationale\": \"",
    "\"reason\":",
    "\"winner\":",
    "\"winner\": \"A\"",
    "\"verdict\": \"tie\"",
    "{\"score\": 7}",
    "{\"score\": \"7/10\"}",
    "{\"winner\": \"B\", \"rationale\": \"x\"}",
    "```json\n",
    "```",
    "Score: ",
    "score (1-10): ",
    "**Rating:** ",
    "rating is ",
    "underscore",
    "generating",
    "/10",
    " / ",
    "/",
    " out of ",
    "out of 10",
    "-",
    "~",
    ".",
    "7",
    "10",
    "0",
    "-0",
    "1e309",
    "-1e309",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "-1",
    ".5",
    "7.5",
    "1-10",
    "3/4/2024",
    "99999999999999999999999999",
    "18446744073709551616",
    "Winner: ",
    "**Verdict:** ",
    "Better response: ",
    "preferred",
    "[[A]]",
    "[[B]]",
    "[[C]]",
    "[[ 8 ]]",
    "tie",
    "a tie",
    "Response A",
    "Assistant B",
    "Output (b)",
    // block formats
    "Instruction:",
    "Input:",
    "Output:",
    "instruction：",
    "指令：",
    "输入：",
    "输出：",
    "4. Instruction: ",
    "**Instruction:**",
    "## Input:",
    "Class label:",
    "Class Label:",
    "Label:",
    "Sentence:",
    "类别标签：",
    "###",
    "---",
    "===",
    "Example 2",
    "Task 3:",
    "task 12.",
    "任务 2",
    "示例 1：",
    "1.",
    "2)",
    "3 .",
    "10、",
    "1：",
    "<noinput>",
    "<no input>",
    "<无输入>",
    "n/a",
    "none",
    "Yes",
    "yes.",
    "No",
    "no!",
    "是",
    "不是",
    "否",
    "Is it classification?",
    "Answer:",
    // self-chat
    "[|Human|]",
    "[|AI|]",
    "[Human]",
    "[AI]",
    "[|Human",
    "AI|]",
    "<end>",
    "User:",
    "user：",
    "用户：",
    // whitespace and line ends
    "\n",
    "\n",
    "\r\n",
    "\r",
    "\t",
    " ",
    "  ",
    "\n\n",
    // unicode
    "你好世界",
    "分类任务",
    "😀",
    "👍🏽",
    "👨‍👩‍👧",
    "\u{200b}",
    "\u{feff}",
    "\u{0}",
    "é",
    "e\u{0301}",
    "Ω",
    "ß",
    "İ",
    "\u{10FFFF}",
    "\u{202e}",
    // markdown
    "*",
    "**",
    "_",
    "#",
    "`",
    "'",
    "<",
    ">",
    "(",
    ")",
];

/// One piece of adversarial text.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => prop::sample::select(FRAGMENTS).prop_map(str::to_string),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|x| x.to_string()),
        1 => any::<f64>().prop_map(|x| format!("{x:e}")),
        1 => (0u32..200, 0u32..200).prop_map(|(a, b)| format!("{a}/{b}")),
        2 => "[a-zA-Z ]{1,12}",
        2 => prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        // Long lines and deep nesting: one fragment repeated.
        1 => (prop::sample::select(FRAGMENTS), 1usize..3_000)
            .prop_map(|(f, n)| f.repeat(n)),
    ]
}

/// Adversarial text: up to 48 fragments.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..48).prop_map(|v| v.concat())
}

/// Text without braces, so it cannot hold (or break) a JSON object.
fn prose() -> impl Strategy<Value = String> {
    text().prop_map(|t| t.replace(['{', '}'], ""))
}

/// A few lower-case words on one line: a field value no parser can mistake for markup.
fn words() -> impl Strategy<Value = String> {
    "[a-z]{1,8}( [a-z]{1,8}){0,5}"
}

fn finish() -> impl Strategy<Value = FinishReason> {
    prop::sample::select(vec![
        FinishReason::Stop,
        FinishReason::Length,
        FinishReason::Other,
    ])
}

fn scale() -> impl Strategy<Value = Scale> {
    prop_oneof![
        Just(Scale::TEN),
        Just(Scale { min: 1, max: 5 }),
        Just(Scale { min: 1, max: 6 }),
        Just(Scale { min: 0, max: 100 }),
        Just(Scale {
            min: i64::MIN,
            max: i64::MAX
        }),
        (-1_000i64..1_000, 1i64..1_000).prop_map(|(min, w)| Scale { min, max: min + w }),
        (any::<i64>(), any::<i64>())
            .prop_filter("min < max", |(a, b)| a != b)
            .prop_map(|(a, b)| Scale {
                min: a.min(b),
                max: a.max(b)
            }),
    ]
}

// ------------------------------------------------------------------ judge replies

proptest! {
    #![proptest_config(config())]

    /// Any reply: a score is on the scale, an error says what is wrong.
    #[test]
    fn fuzz_judge_score_any_reply(t in text(), s in scale()) {
        match parse_score(&t, s) {
            Ok(r) => {
                prop_assert!(s.contains(r.score), "score {} outside {s} for {t:?}", r.score);
                if let Some(rat) = &r.rationale {
                    prop_assert!(!rat.trim().is_empty());
                }
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                prop_assert!(matches!(e.class(), "parse" | "out_of_scale"));
            }
        }
    }

    /// A well-formed JSON object in prose without braces is always read, whatever its
    /// rationale holds (quotes, braces, escapes, other scores).
    #[test]
    fn fuzz_judge_score_json_object_wins(
        before in prose(),
        after in prose(),
        rationale in text(),
        s in scale(),
        pick in any::<prop::sample::Index>(),
        as_string in any::<bool>(),
    ) {
        let width = (s.max as i128 - s.min as i128) as u128;
        // Keep the number exactly representable in f64.
        let width = width.min(1 << 52);
        let n = (s.min as i128 + pick.index(width as usize + 1) as i128) as i64;
        let score = if as_string {
            Value::String(n.to_string())
        } else {
            Value::from(n)
        };
        let obj = serde_json::json!({"rationale": rationale, "score": score});
        let reply = format!("{before}{obj}{after}");
        let r = parse_score(&reply, s).map_err(|e| {
            TestCaseError::fail(format!("{e} for {reply:?}"))
        })?;
        prop_assert_eq!(r.score, n as f64);
        let want = rationale.trim();
        prop_assert_eq!(r.rationale.as_deref(), (!want.is_empty()).then_some(want));
    }

    /// Any reply: a verdict or an error that says what is wrong.
    #[test]
    fn fuzz_judge_verdict_any_reply(t in text()) {
        match parse_verdict(&t) {
            Ok(r) => {
                if let Some(rat) = &r.rationale {
                    prop_assert!(!rat.trim().is_empty());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// A JSON verdict in prose without braces is always read.
    #[test]
    fn fuzz_judge_verdict_json_object_wins(
        before in prose(),
        after in prose(),
        rationale in text(),
        v in prop::sample::select(vec![
            ("A", Verdict::A), ("B", Verdict::B), ("tie", Verdict::Tie),
            ("Response A", Verdict::A), ("b", Verdict::B), ("[[C]]", Verdict::Tie),
        ]),
    ) {
        let obj = serde_json::json!({"winner": v.0, "rationale": rationale});
        let reply = format!("{before}{obj}{after}");
        let r = parse_verdict(&reply).map_err(|e| {
            TestCaseError::fail(format!("{e} for {reply:?}"))
        })?;
        prop_assert_eq!(r.verdict, v.1);
    }

    /// Every object found is a real JSON object of the text; a serialised object is
    /// found whole.
    #[test]
    fn fuzz_json_objects(t in text(), obj in json_object(), before in prose(), after in prose()) {
        for m in json_objects(&t) {
            let s = Value::Object(m).to_string();
            prop_assert!(s.starts_with('{') && s.ends_with('}'), "{}", s);
        }
        let want = Value::Object(obj.clone()).to_string();
        let found = json_objects(&format!("{before}{want}{after}"));
        prop_assert_eq!(found, vec![obj]);
    }

    /// The linear brace matcher finds what rescanning from every `{` found.
    #[test]
    fn fuzz_json_objects_match_the_rescanning_reference(
        parts in prop::collection::vec(prop_oneof![
            3 => text(),
            1 => json_object().prop_map(|m| Value::Object(m).to_string()),
            1 => prop::sample::select(vec!["{", "}", "\"", "\\", "\\\"", "{\"a\":", "\"}"])
                .prop_map(str::to_string),
        ], 0..12),
    ) {
        // The reference is quadratic: keep its inputs short.
        let mut t = parts.concat();
        let cut = (0..=t.len().min(4_096)).rev().find(|&i| t.is_char_boundary(i)).unwrap_or(0);
        t.truncate(cut);
        prop_assert_eq!(json_objects(&t), json_objects_rescanning(&t));
    }
}

/// `json_objects` as first written: rescans from every `{` (quadratic), kept as the
/// reference the linear version must agree with.
fn json_objects_rescanning(text: &str) -> Vec<Map<String, Value>> {
    fn balanced_end(b: &[u8], start: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut in_str = false;
        let mut esc = false;
        for (k, &c) in b.iter().enumerate().skip(start) {
            if in_str {
                if esc {
                    esc = false;
                } else if c == b'\\' {
                    esc = true;
                } else if c == b'"' {
                    in_str = false;
                }
                continue;
            }
            match c {
                b'"' => in_str = true,
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(k);
                    }
                }
                _ => {}
            }
        }
        None
    }
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match balanced_end(b, i) {
            Some(end) => match serde_json::from_str::<Value>(&text[i..=end]) {
                Ok(Value::Object(m)) => {
                    out.push(m);
                    i = end + 1;
                }
                _ => i += 1,
            },
            None => i += 1,
        }
    }
    out
}

/// JSON values without floats (which serde_json does not round-trip exactly).
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        text().prop_map(Value::String),
        prop::sample::select(FRAGMENTS).prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FRAGMENTS), inner), 0..5).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(("\\PC{0,8}", json_value()), 0..6).prop_map(|kv| kv.into_iter().collect())
}

// ------------------------------------------------------------------ self-instruct blocks

fn block_style() -> impl Strategy<Value = (usize, usize)> {
    // (label spelling, separator)
    (0usize..4, 0usize..5)
}

/// Render Alpaca blocks the way models write them.
fn render_alpaca(blocks: &[(String, String, String)], (label, sep): (usize, usize)) -> String {
    let names: [[&str; 3]; 4] = [
        ["Instruction", "Input", "Output"],
        ["**Instruction:**", "**Input:**", "**Output:**"],
        ["指令", "输入", "输出"],
        ["INSTRUCTION", "input", "Output"],
    ];
    let sep = ["###\n", "", "\n", "---\n", "\r\n"][sep];
    let mut out = String::from("Here are the tasks you asked for:\n\n");
    for (i, (a, b, c)) in blocks.iter().enumerate() {
        let n = names[label];
        let colon = |s: &str| {
            if s.ends_with(":**") {
                String::new()
            } else if label == 2 {
                "：".to_string()
            } else {
                ":".to_string()
            }
        };
        out.push_str(&format!("{}. {}{} {a}\n", i + 1, n[0], colon(n[0])));
        out.push_str(&format!("{}. {}{} {b}\n", i + 1, n[1], colon(n[1])));
        out.push_str(&format!("{}. {}{} {c}\n", i + 1, n[2], colon(n[2])));
        out.push_str(sep);
    }
    out
}

proptest! {
    #![proptest_config(config())]

    /// Any reply: candidates have an instruction and an output; errors and rejections
    /// say why.
    #[test]
    fn fuzz_alpaca_any_reply(t in text(), f in finish()) {
        match parse_alpaca(&t, f) {
            Ok((cands, rejects)) => {
                for c in &cands {
                    prop_assert!(!c.instruction.is_empty());
                    prop_assert!(!c.output.is_empty());
                }
                for (reason, detail, _) in &rejects {
                    prop_assert!(!reason.is_empty() && !detail.is_empty());
                }
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }

    /// Blocks written in any of the usual spellings are read back exactly.
    #[test]
    fn fuzz_alpaca_blocks_round_trip(
        blocks in prop::collection::vec((words(), words(), words()), 1..8),
        style in block_style(),
    ) {
        let reply = render_alpaca(&blocks, style);
        let (cands, rejects) = parse_alpaca(&reply, FinishReason::Stop)
            .map_err(|e| TestCaseError::fail(format!("{e} for {reply:?}")))?;
        prop_assert!(rejects.is_empty(), "{rejects:?} for {reply:?}");
        prop_assert_eq!(cands.len(), blocks.len(), "{:?}", reply);
        for (c, (a, b, o)) in cands.iter().zip(&blocks) {
            prop_assert_eq!(&c.instruction, a);
            prop_assert_eq!(&c.input, if gc::is_no_input(b) { "" } else { b.as_str() });
            prop_assert_eq!(&c.output, o);
        }
        let (cands, rejects) = parse_alpaca(&reply, FinishReason::Length).unwrap();
        prop_assert_eq!(cands.len(), blocks.len() - 1);
        prop_assert_eq!(rejects[0].0, "truncated_last");
    }

    #[test]
    fn fuzz_field_blocks_any_text(t in text(), which in 0usize..3) {
        let fields = [ALPACA_FIELDS, &ALPACA_FIELDS[..1], &ALPACA_FIELDS[1..]][which];
        for b in rp::parse_field_blocks(&t, fields) {
            prop_assert_eq!(b.fields.len(), fields.len());
            for f in b.fields.iter().flatten() {
                prop_assert_eq!(f.trim(), f.as_str());
            }
        }
    }

    #[test]
    fn fuzz_classic_list_any_reply(t in text(), f in finish()) {
        match parse_classic_list(&t, f) {
            Ok((items, rejects)) => {
                prop_assert!(items.len() + rejects.len() >= 1);
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
        for item in rp::parse_numbered_list(&t) {
            prop_assert!(!item.is_empty());
            prop_assert_eq!(gc::collapse_ws(&item), item);
        }
    }

    /// A numbered list in the usual spellings is read back exactly.
    #[test]
    fn fuzz_numbered_list_round_trip(
        items in prop::collection::vec(words(), 1..12),
        style in 0usize..5,
    ) {
        let mut reply = String::from("Sure! Here are more tasks:\n");
        for (i, it) in items.iter().enumerate() {
            let n = i + 1;
            reply.push_str(&match style {
                0 => format!("{n}. {it}\n"),
                1 => format!("{n}) {it}\n"),
                2 => format!("Task {n}: {it}\n"),
                3 => format!("**{n}.** {it}\r\n"),
                _ => format!("{n}、{it}\n\n"),
            });
        }
        prop_assert_eq!(rp::parse_numbered_list(&reply), items);
    }

    #[test]
    fn fuzz_yes_no_and_labels(t in text(), labels in prop::collection::vec(fragment(), 0..4)) {
        let _ = parse_yes_no(&t);
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let s = rp::strip_leading_label(&t, &labels);
        prop_assert_eq!(s.trim(), s);
        prop_assert!(t.contains(s));
        prop_assert_eq!(parse_yes_no(&format!("Yes. {t}")), Some(true));
    }

    #[test]
    fn fuzz_instances_any_reply(
        t in text(),
        f in finish(),
        output_first in any::<bool>(),
        max in prop_oneof![0usize..8, Just(usize::MAX)],
    ) {
        match parse_instances(&t, f, output_first, max) {
            Ok(Instances::Kept(kept, rejects)) => {
                prop_assert!(!kept.is_empty() && kept.len() <= max);
                for (_, out) in &kept {
                    prop_assert!(!out.is_empty());
                }
                for (reason, detail, _) in &rejects {
                    prop_assert!(!reason.is_empty() && !detail.is_empty());
                }
            }
            Ok(Instances::Dropped(reason, detail, _)) => {
                prop_assert!(!reason.is_empty() && !detail.is_empty());
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }
}

// ------------------------------------------------------------------ self-chat

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_self_chat_any_transcript(
        t in text(),
        f in finish(),
        min_turns in prop_oneof![0usize..6, Just(usize::MAX)],
        max_turns in prop_oneof![0usize..6, Just(usize::MAX / 2), Just(usize::MAX)],
        end in prop_oneof![Just("<end>".to_string()), fragment()],
    ) {
        let turns = split_transcript(&t);
        for (_, text) in &turns {
            prop_assert_eq!(text.trim(), text.as_str());
        }
        match baize_rules(turns, f, min_turns, max_turns) {
            Ok(msgs) => {
                prop_assert!(msgs.len() >= 2 * min_turns.min(usize::MAX / 2));
                prop_assert!(msgs.iter().all(|m| !m.content.is_empty()));
            }
            Err((reason, detail)) => prop_assert!(!reason.is_empty() && !detail.is_empty()),
        }
        if let Some(u) = user_turn(&t, &end) {
            prop_assert!(!t.contains(end.as_str()));
            prop_assert_eq!(u.trim(), u.as_str());
        }
    }

    /// A transcript of alternating marked turns splits back into those turns.
    #[test]
    fn fuzz_self_chat_round_trip(
        turns in prop::collection::vec(words(), 1..12),
        short in any::<bool>(),
        sep in prop::sample::select(vec![" ", "\n", "\r\n", "\n\n"]),
    ) {
        let (h, a) = if short { ("[Human]", "[AI]") } else { ("[|Human|]", "[|AI|]") };
        let mut t = String::from("The conversation:");
        for (i, w) in turns.iter().enumerate() {
            t.push_str(sep);
            t.push_str(if i % 2 == 0 { h } else { a });
            t.push(' ');
            t.push_str(w);
        }
        let got = split_transcript(&t);
        let want: Vec<(bool, String)> =
            turns.iter().enumerate().map(|(i, w)| (i % 2 == 0, w.clone())).collect();
        prop_assert_eq!(&got, &want);
        let msgs = baize_rules(got, FinishReason::Stop, 1, usize::MAX).map_err(|e| {
            TestCaseError::fail(format!("{e:?}"))
        });
        if turns.len() >= 2 {
            prop_assert_eq!(msgs?.len(), turns.len() / 2 * 2);
        }
    }
}

// ------------------------------------------------------------------ filter expressions

const FILTER_FRAGMENTS: &[&str] = &[
    "(",
    ")",
    "((((",
    "))))",
    "'",
    "\"",
    "\\",
    "'a'",
    "\"en\"",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "!",
    "&&",
    "||",
    "&",
    "|",
    "and",
    "or",
    "not",
    "AND",
    "Or",
    "NOT",
    "contains",
    "startswith",
    "len(",
    "words(",
    "lower(",
    "has(",
    "foo(",
    "true",
    "false",
    "null",
    "quality",
    "scores.quality",
    "labels.language",
    "instruction",
    "output",
    "prompt",
    "response",
    "turns",
    "cluster",
    "id",
    "_x",
    "a..b",
    "质量",
    "😀",
    "1",
    "-1",
    "0.5",
    "1.",
    "1..2",
    "-",
    "1_000",
    "1e5",
    "1e309",
    "NaN",
    "-0",
    "99999999999999999999999",
    " ",
    "\t",
    "\n",
    "\u{a0}",
    ",",
    ".",
    "#",
];

fn filter_text() -> impl Strategy<Value = String> {
    let frag = prop_oneof![
        8 => prop::sample::select(FILTER_FRAGMENTS).prop_map(str::to_string),
        1 => any::<f64>().prop_map(|x| x.to_string()),
        1 => prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter),
        1 => (prop::sample::select(vec!["(", "not ", "len(", "-", "a and ", "x or "]), 1usize..2_000)
            .prop_map(|(f, n)| f.repeat(n)),
    ];
    let loose = prop::collection::vec((frag, prop::sample::select(vec!["", " "])), 0..32)
        .prop_map(|v| v.into_iter().map(|(a, b)| a + b).collect());
    // Well-formed but deep or long, around the parser's token limit.
    let deep = (0usize..4, 1usize..700).prop_map(|(shape, n)| match shape {
        0 => format!("{}quality{}", "(".repeat(n), ")".repeat(n)),
        1 => format!("{}x", "not ".repeat(n)),
        2 => format!("len({}x{}", "lower(".repeat(n / 2), ")".repeat(n / 2 + 1)),
        _ => format!("quality >= 1{}", " and has(x) or x != 'a'".repeat(n / 4)),
    });
    prop_oneof![8 => loose, 1 => deep]
}

const COLUMNS: &[&str] = &[
    "quality",
    "difficulty",
    "scores.quality",
    "labels.language",
    "language",
    "instruction",
    "input",
    "output",
    "prompt",
    "response",
    "id",
    "turns",
    "cluster",
    "step",
    "teacher",
    "missing",
    "_x.y",
    "质量",
];

fn column_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(COLUMNS).prop_map(str::to_string),
        1 => "[a-z_][a-z0-9_.]{0,8}".prop_filter("not a keyword", |s| {
            !["and", "or", "not", "true", "false", "null", "contains", "startswith"]
                .contains(&s.as_str())
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::Contains,
        Op::StartsWith,
    ])
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        prop_oneof![
            any::<f64>().prop_filter("finite", |x| x.is_finite()),
            (-100i32..100).prop_map(f64::from),
            Just(-0.0),
        ]
        .prop_map(Expr::Num),
        text().prop_map(Expr::Str),
        any::<bool>().prop_map(Expr::Bool),
        Just(Expr::Null),
        column_name().prop_map(Expr::Column),
        column_name().prop_map(Expr::Has),
    ];
    leaf.prop_recursive(6, 48, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| Expr::Len(Box::new(e))),
            inner.clone().prop_map(|e| Expr::Words(Box::new(e))),
            inner.clone().prop_map(|e| Expr::Lower(Box::new(e))),
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
            (inner.clone(), op(), inner).prop_map(|(a, o, b)| Expr::Cmp(
                Box::new(a),
                o,
                Box::new(b)
            )),
        ]
    })
}

/// The predicate source of an expression, fully parenthesised.
fn show(e: &Expr) -> String {
    match e {
        Expr::Num(n) => n.to_string(),
        Expr::Str(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Expr::Bool(b) => b.to_string(),
        Expr::Null => "null".into(),
        Expr::Column(c) => c.clone(),
        Expr::Len(x) => format!("len({})", show(x)),
        Expr::Words(x) => format!("words({})", show(x)),
        Expr::Lower(x) => format!("lower({})", show(x)),
        Expr::Has(c) => format!("has({c})"),
        Expr::Not(x) => format!("(not {})", show(x)),
        Expr::And(a, b) => format!("({} and {})", show(a), show(b)),
        Expr::Or(a, b) => format!("({} || {})", show(a), show(b)),
        Expr::Cmp(a, op, b) => {
            let op = match op {
                Op::Eq => "==",
                Op::Ne => "!=",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::Contains => "contains",
                Op::StartsWith => "startswith",
            };
            format!("({} {op} {})", show(a), show(b))
        }
    }
}

fn record() -> impl Strategy<Value = Record> {
    let num = prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-0.0),
        0.0f64..10.0
    ];
    (
        prop::option::of(text()),
        prop::option::of(text()),
        prop::option::of(text()),
        prop::collection::btree_map(column_name(), num, 0..4),
        prop::collection::btree_map(column_name(), text(), 0..4),
    )
        .prop_map(|(instruction, input, output, scores, labels)| Record {
            instruction,
            input,
            output,
            scores,
            labels,
            ..Default::default()
        })
}

proptest! {
    #![proptest_config(config())]

    /// Any predicate text: parsed, or an error naming the problem; a parsed predicate
    /// evaluates on any record.
    #[test]
    fn fuzz_filter_any_text(src in filter_text(), r in record()) {
        match filter::parse(&src) {
            Ok(e) => {
                let _ = eval_truthy(&e, &r);
            }
            Err(m) => prop_assert!(!m.is_empty()),
        }
    }

    /// Printing an expression and parsing it back gives the same expression.
    #[test]
    fn fuzz_filter_round_trip(e in expr(), r in record()) {
        let src = show(&e);
        let back = filter::parse(&src).map_err(|m| {
            TestCaseError::fail(format!("{m} for {src:?}"))
        })?;
        prop_assert_eq!(&back, &e, "{}", src);
        prop_assert_eq!(eval_truthy(&back, &r), eval_truthy(&e, &r));
    }
}

fn eval_truthy(e: &Expr, r: &Record) -> bool {
    match filter::eval(&Expr::Not(Box::new(e.clone())), r) {
        Val::Bool(b) => !b,
        other => panic!("not() gave {other:?}"),
    }
}

// ------------------------------------------------------------------ load: rows → records

const ROW_KEYS: &[&str] = &[
    "messages",
    "conversations",
    "instances",
    "instruction",
    "input",
    "output",
    "context",
    "response",
    "prompt",
    "completion",
    "topic",
    "question",
    "answer",
    "text",
    "id",
    "role",
    "content",
    "from",
    "value",
    "category",
    "",
    "😀",
];

/// A row value shaped like the records `load` maps: messages lists, instance lists,
/// strings, numbers (`1e309` is not JSON, so huge values come as huge integers).
fn row_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        text().prop_map(Value::String),
        prop::sample::select(FRAGMENTS).prop_map(|s| Value::String(s.to_string())),
        prop::sample::select(vec![
            "user",
            "assistant",
            "system",
            "human",
            "gpt",
            "bing",
            ""
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(ROW_KEYS), inner), 0..5).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

fn row_line() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec((prop::sample::select(ROW_KEYS), row_value()), 0..6)
            .prop_map(|kv| {
                let m: Map<String, Value> =
                    kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                Value::Object(m).to_string()
            }),
        1 => row_value().prop_map(|v| v.to_string()),
        1 => text(),
        1 => Just(String::new()),
        1 => Just("{\"instruction\": 1e309}".to_string()),
        1 => Just("\u{feff}{\"instruction\": \"x\"}".to_string()),
        1 => Just("{\"instruction\": \"  \"}".to_string()),
    ]
}

fn field_mapping() -> impl Strategy<Value = BTreeMap<String, String>> {
    let field = prop::sample::select(vec![
        "id",
        "instruction",
        "input",
        "output",
        "messages",
        "conversations",
    ]);
    let path = prop_oneof![
        prop::sample::select(vec![
            "instruction",
            "instances.0.input",
            "instances.0.output",
            "instances.99999999999999999999.x",
            "messages",
            "conversations",
            "a.b.c",
            "",
            ".",
            "..",
            "text",
            "prompt.0",
            "id",
        ])
        .prop_map(str::to_string),
        prop::collection::vec(prop::sample::select(ROW_KEYS), 1..4).prop_map(|v| v.join(".")),
    ];
    prop_oneof![
        3 => Just(BTreeMap::new()),
        1 => prop::collection::btree_map(field.prop_map(str::to_string), path, 1..4),
    ]
}

/// Runs a `load` step over `body` written to `path`; returns the records and failures,
/// or the step's error message.
fn run_load(
    rt: &tokio::runtime::Runtime,
    ctx: &crate::StepCtx,
    path: &Path,
    format: Option<&str>,
    fields: &BTreeMap<String, String>,
    skip: bool,
) -> Result<(Vec<Record>, usize), String> {
    let mut options = toml::Table::new();
    options.insert("path".into(), path.display().to_string().into());
    if let Some(f) = format {
        options.insert("format".into(), f.into());
    }
    options.insert("on_error".into(), if skip { "skip" } else { "fail" }.into());
    options.insert("batch_size".into(), 3.into());
    if !fields.is_empty() {
        let mut t = toml::Table::new();
        for (k, v) in fields {
            t.insert(k.clone(), v.clone().into());
        }
        options.insert("fields".into(), t.into());
    }
    let spec = crate::registry::StepSpec {
        id: "seeds".into(),
        kind: "load".into(),
        after: vec![],
        options,
    };
    let built = crate::registry::build(&spec, &crate::registry::BuildCtx::default())
        .map_err(|e| e.join("; "))?;
    let mut sink = crate::testing::MemSink::default();
    rt.block_on(built.step.run(ctx, crate::Inputs::none(), &mut sink))
        .map_err(|e| e.to_string())?;
    Ok((sink.records(), sink.failures().len()))
}

proptest! {
    #![proptest_config(config())]

    /// The `load` step over JSONL, JSON and CSV files of adversarial rows: every record
    /// has an id and an instruction or messages; a bad row is a failure (skip) or an
    /// error naming the step (fail), never a panic.
    #[test]
    fn fuzz_load_rows_to_records(
        lines in prop::collection::vec(row_line(), 0..12),
        fields in field_mapping(),
        skip in any::<bool>(),
        format in 0usize..4,
        line_end in prop::sample::select(vec!["\n", "\r\n"]),
    ) {
        thread_local! {
            static ENV: (tempfile::TempDir, tokio::runtime::Runtime, crate::StepCtx) = (
                tempfile::tempdir().unwrap(),
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
                crate::testing::test_ctx("seeds", BTreeMap::new(), None),
            );
        }
        ENV.with(|(dir, rt, ctx)| {
            let (name, format, body) = match format {
                0 => ("rows.jsonl", None, lines.join(line_end)),
                1 => (
                    "rows.json",
                    Some("json"),
                    format!("[{}]", lines.join(&format!(",{line_end}"))),
                ),
                2 => ("rows.json", None, lines.join(line_end)),
                _ => ("rows.csv", None, {
                    // Header from the first line's words, rows from the others.
                    let mut csv = String::from("instruction,input,output,id\n");
                    for l in &lines {
                        csv.push_str(l);
                        csv.push_str(line_end);
                    }
                    csv
                }),
            };
            let path = dir.path().join(name);
            std::fs::write(&path, &body).unwrap();
            match run_load(rt, ctx, &path, format, &fields, skip) {
                Ok((records, failures)) => {
                    prop_assert!(skip || failures == 0);
                    for r in &records {
                        prop_assert!(!r.id.is_empty());
                        prop_assert!(
                            r.instruction.as_deref().is_some_and(|s| !s.trim().is_empty())
                                || !r.messages.is_empty(),
                            "{r:?}"
                        );
                    }
                }
                Err(e) => prop_assert!(!e.is_empty()),
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}
