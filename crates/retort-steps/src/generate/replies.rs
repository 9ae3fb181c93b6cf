//! The parsers of the generation steps' replies: labelled field blocks (Alpaca's
//! `Instruction:/Input:/Output:`, classic instances), numbered lists, leading labels,
//! and Self-Instruct's four reply formats on top of them. Pure text in, values or a
//! reason out; fuzzed in `crate::fuzz`. The judges' parser is
//! [`crate::assess::judge_parse`].

use std::collections::HashMap;

use retort_teacher::FinishReason;

use super::gen_common::{self as gc, collapse_ws};

/// One labelled field of a block format, with the spellings a model may use.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// Spellings, compared case-insensitively (ASCII) at the start of a line.
    pub names: &'static [&'static str],
}

/// Alpaca's task fields.
pub const ALPACA_FIELDS: &[Field] = &[
    Field {
        names: &["Instruction", "指令"],
    },
    Field {
        names: &["Input", "输入"],
    },
    Field {
        names: &["Output", "输出"],
    },
];

/// One block of labelled fields, in the order of the field list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldBlock {
    /// Field values (trimmed), `None` when the block lacks the field.
    pub fields: Vec<Option<String>>,
    /// The block's lines as written, for rejection rows.
    pub raw: String,
}

impl FieldBlock {
    /// Field `i`, when present.
    pub fn get(&self, i: usize) -> Option<&str> {
        self.fields.get(i).and_then(|f| f.as_deref())
    }
}

/// Strip `*`, `#`, `_` and blanks that markdown-happy models wrap labels in.
fn strip_md(s: &str) -> &str {
    s.trim_start_matches(|c: char| c == '*' || c == '#' || c == '_' || c.is_whitespace())
}

/// Strip a leading list number (`4.`, `4)`, `4 .`) from a line start.
fn strip_number(s: &str) -> &str {
    let digits = s.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return s;
    }
    let rest = s[digits..].trim_start_matches(' ');
    match rest.chars().next() {
        Some('.') | Some(')') | Some('、') => {
            rest[rest.chars().next().unwrap().len_utf8()..].trim_start()
        }
        _ => s,
    }
}

/// If `line` starts a labelled field (`4. Instruction: …`, `**Input:** …`, `输出：…`),
/// the field's index and the rest of the line.
fn field_header<'a>(line: &'a str, fields: &[Field]) -> Option<(usize, &'a str)> {
    let s = strip_md(strip_number(strip_md(line)));
    for (i, f) in fields.iter().enumerate() {
        for name in f.names {
            let n = name.len();
            if s.len() >= n && s.is_char_boundary(n) && s[..n].eq_ignore_ascii_case(name) {
                let rest = s[n..].trim_start_matches(['*', ' ', '_']);
                if let Some(r) = rest.strip_prefix(':').or_else(|| rest.strip_prefix('：')) {
                    return Some((i, r.trim_start_matches(['*', '_']).trim_start()));
                }
            }
        }
    }
    None
}

/// Lines that separate blocks: `###`, `---`, `Example 2`, `Task 3:` with nothing after.
pub fn is_separator(line: &str) -> bool {
    let t = line.trim();
    if t.len() >= 2 && t.chars().all(|c| c == '#') {
        return true;
    }
    if t.len() >= 3 && (t.chars().all(|c| c == '-') || t.chars().all(|c| c == '=')) {
        return true;
    }
    let t = t.trim_matches(|c: char| c == '*' || c == '#').trim();
    for w in ["example", "task", "instance", "示例", "例子", "任务"] {
        if t.len() >= w.len() && t.is_char_boundary(w.len()) && t[..w.len()].eq_ignore_ascii_case(w)
        {
            let rest = t[w.len()..].trim();
            let rest = rest.trim_end_matches([':', '：', '.']);
            if !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()) {
                return true;
            }
        }
    }
    false
}

/// Parse labelled field blocks (`Instruction:`/`Input:`/`Output:` or
/// `Class label:`/`Input:` …). A block starts at the first field, at a separator line, or
/// when a field repeats; lines without a label continue the current field; text before
/// the first label (a chatty preamble) is ignored.
pub fn parse_field_blocks(text: &str, fields: &[Field]) -> Vec<FieldBlock> {
    let mut blocks = Vec::new();
    let mut cur: Option<FieldBlock> = None;
    let mut current_field = 0usize;
    let close = |cur: &mut Option<FieldBlock>, blocks: &mut Vec<FieldBlock>| {
        if let Some(mut b) = cur.take() {
            for f in b.fields.iter_mut().flatten() {
                *f = f.trim().to_string();
            }
            b.raw = b.raw.trim().to_string();
            blocks.push(b);
        }
    };
    for line in text.lines() {
        if is_separator(line) {
            close(&mut cur, &mut blocks);
            continue;
        }
        if let Some((fi, rest)) = field_header(line, fields) {
            let starts_new = match &cur {
                Some(b) => fi == 0 || b.fields[fi].is_some(),
                None => false,
            };
            if starts_new {
                close(&mut cur, &mut blocks);
            }
            let b = cur.get_or_insert_with(|| FieldBlock {
                fields: vec![None; fields.len()],
                raw: String::new(),
            });
            b.fields[fi] = Some(rest.to_string());
            b.raw.push_str(line);
            b.raw.push('\n');
            current_field = fi;
        } else if let Some(b) = cur.as_mut() {
            if let Some(f) = b.fields[current_field].as_mut() {
                f.push('\n');
                f.push_str(line);
            }
            b.raw.push_str(line);
            b.raw.push('\n');
        }
    }
    close(&mut cur, &mut blocks);
    blocks
}

/// Parse a numbered list (`1. …`, `2) …`, `Task 3: …`); unnumbered lines continue the
/// previous item; text before the first number is ignored. Items are whitespace-collapsed.
pub fn parse_numbered_list(text: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let s = strip_md(line);
        let s2 = {
            let lower_ok =
                s.len() >= 4 && s.is_char_boundary(4) && s[..4].eq_ignore_ascii_case("task");
            let after = if lower_ok { s[4..].trim_start() } else { s };
            let digits = after.bytes().take_while(|b| b.is_ascii_digit()).count();
            if digits > 0 {
                let rest = after[digits..].trim_start_matches(' ');
                let mut ch = rest.chars();
                match ch.next() {
                    Some('.') | Some(')') | Some(':') | Some('：') | Some('、') => {
                        Some(ch.as_str().trim_start_matches(['*', ' ']).to_string())
                    }
                    _ => None,
                }
            } else {
                None
            }
        };
        match s2 {
            Some(item) => {
                items.push(item);
                open = true;
            }
            None if open && !line.trim().is_empty() && !is_separator(line) => {
                let last = items.last_mut().expect("open implies an item");
                last.push(' ');
                last.push_str(line.trim());
            }
            None => {}
        }
    }
    items
        .into_iter()
        .map(|i| collapse_ws(&i))
        .filter(|i| !i.is_empty())
        .collect()
}

/// Strip an echoed answer label such as `#Rewritten Prompt#:` or `Output:` from the
/// start of a reply (models often repeat the label the prompt ended with).
pub fn strip_leading_label<'a>(text: &'a str, labels: &[&str]) -> &'a str {
    let t = text.trim();
    for l in labels {
        if t.len() >= l.len() && t.is_char_boundary(l.len()) && t[..l.len()].eq_ignore_ascii_case(l)
        {
            let rest = t[l.len()..].trim_start();
            let rest = rest
                .strip_prefix(':')
                .or_else(|| rest.strip_prefix('：'))
                .unwrap_or(rest);
            return rest.trim();
        }
    }
    t
}

/// Small English and Chinese stop-word list for the "only stop words" eliminator rule.
pub const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with",
    "is", "are", "was", "were", "be", "been", "it", "this", "that", "these", "those", "i", "you",
    "he", "she", "we", "they", "me", "my", "your", "our", "their", "so", "as", "not", "no", "yes",
    "ok", "okay", "do", "does", "did", "here", "there", "what", "which", "的", "了", "是", "在",
    "和", "与", "或", "也", "就", "都", "而", "及", "吗", "呢", "吧", "啊", "我", "你", "他", "她",
    "它", "我们", "你们", "他们", "这", "那", "这个", "那个", "好",
];

/// Whether `text` has no content word: only punctuation, symbols, digits-free stop words
/// and whitespace.
pub fn only_stopwords(text: &str) -> bool {
    let mut word = String::new();
    let flush = |w: &mut String| -> bool {
        let ok = w.is_empty() || STOP_WORDS.contains(&w.to_lowercase().as_str());
        w.clear();
        ok
    };
    for c in text.chars() {
        if retort_text::script::is_cjk(c) {
            if !flush(&mut word) {
                return false;
            }
            let s = c.to_string();
            if !STOP_WORDS.contains(&s.as_str()) {
                return false;
            }
        } else if c.is_alphanumeric() || c == '\'' {
            word.push(c);
        } else if !flush(&mut word) {
            return false;
        }
    }
    flush(&mut word)
}

// Self-Instruct's replies

/// A parsed candidate before screening.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Candidate {
    pub instruction: String,
    pub input: String,
    pub output: String,
}

/// A rejection found while parsing one reply: (reason, detail, the block's text).
pub(crate) type BlockReject = (&'static str, String, String);

/// Parse an Alpaca reply into candidates and per-block rejections. `Err` when the reply
/// has no task block at all (a failure with the raw reply).
pub(crate) fn parse_alpaca(
    reply: &str,
    finish: FinishReason,
) -> Result<(Vec<Candidate>, Vec<BlockReject>), String> {
    let mut blocks = parse_field_blocks(reply, ALPACA_FIELDS);
    if blocks.is_empty() {
        return Err("no `Instruction:`/`Input:`/`Output:` blocks in the reply".into());
    }
    let mut rejects = vec![];
    if finish == FinishReason::Length {
        let last = blocks.pop().expect("non-empty");
        rejects.push((
            "truncated_last",
            "the answer stopped at max_tokens; its last task may be cut".to_string(),
            last.raw,
        ));
    }
    let mut cands = vec![];
    for b in blocks {
        let instruction = b.get(0).map(gc::collapse_ws).unwrap_or_default();
        if instruction.is_empty() {
            rejects.push(("parse", "block without an instruction".into(), b.raw));
            continue;
        }
        let Some(output) = b.get(2) else {
            rejects.push(("parse", "block without an `Output:` field".into(), b.raw));
            continue;
        };
        if output.is_empty() {
            rejects.push(("empty_output", "the output is empty".into(), b.raw));
            continue;
        }
        let input = b.get(1).unwrap_or("");
        let input = if gc::is_no_input(input) { "" } else { input };
        cands.push(Candidate {
            instruction,
            input: input.to_string(),
            output: output.to_string(),
        });
    }
    Ok((cands, rejects))
}

/// Parse a classic instruction-generation reply: a numbered list; the last item is
/// dropped when the answer was cut.
pub(crate) fn parse_classic_list(
    reply: &str,
    finish: FinishReason,
) -> Result<(Vec<String>, Vec<BlockReject>), String> {
    let mut items = parse_numbered_list(reply);
    if items.is_empty() {
        return Err("no numbered list in the reply".into());
    }
    let mut rejects = vec![];
    if finish == FinishReason::Length {
        let last = items.pop().expect("non-empty");
        rejects.push((
            "truncated_last",
            "the answer stopped at max_tokens; its last task may be cut".to_string(),
            last,
        ));
    }
    let items = items
        .into_iter()
        .map(|i| i.trim_end_matches([':', '：']).trim().to_string())
        .collect();
    Ok((items, rejects))
}

/// Parse the classification-identification answer.
pub(crate) fn parse_yes_no(reply: &str) -> Option<bool> {
    let t = strip_leading_label(reply, &["Is it classification?", "Answer"]);
    let first: String = t
        .trim_start_matches(|c: char| !c.is_alphanumeric())
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    if first.starts_with("不是") || first.starts_with('否') {
        return Some(false);
    }
    if first.starts_with('是') {
        return Some(true);
    }
    match first.as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

const OUTPUT_FIRST_FIELDS: &[Field] = &[
    Field {
        names: &["Class label", "Class Label", "Label", "类别标签", "类别"],
    },
    Field {
        names: &["Input", "Sentence", "输入"],
    },
];
const INPUT_FIRST_FIELDS: &[Field] = &[
    Field {
        names: &["Input", "输入"],
    },
    Field {
        names: &["Output", "输出"],
    },
];

/// Instances of one classic task, after the instance rules.
#[derive(Debug, PartialEq)]
pub(crate) enum Instances {
    /// Kept (input, output) pairs and per-instance rejections (reason, detail, text).
    Kept(Vec<(String, String)>, Vec<BlockReject>),
    /// The whole task is dropped (reason, detail).
    Dropped(&'static str, String, Vec<BlockReject>),
}

/// Parse and check a classic instance reply.
pub(crate) fn parse_instances(
    reply: &str,
    finish: FinishReason,
    output_first: bool,
    max_instances: usize,
) -> Result<Instances, String> {
    let fields = if output_first {
        OUTPUT_FIRST_FIELDS
    } else {
        INPUT_FIRST_FIELDS
    };
    let mut blocks = parse_field_blocks(reply, fields);
    if blocks.is_empty() {
        return Err(if output_first {
            "no `Class label:`/`Input:` blocks in the reply".into()
        } else {
            "no `Input:`/`Output:` blocks in the reply".into()
        });
    }
    let mut rejects = vec![];
    if finish == FinishReason::Length {
        let last = blocks.pop().expect("non-empty");
        rejects.push((
            "truncated_last",
            "the answer stopped at max_tokens; its last instance may be cut".to_string(),
            last.raw,
        ));
    }
    let mut kept: Vec<(String, String)> = vec![];
    let mut by_input: HashMap<String, String> = HashMap::new();
    for b in blocks {
        let (input, output) = if output_first {
            (b.get(1).unwrap_or(""), b.get(0))
        } else {
            (b.get(0).unwrap_or(""), b.get(1))
        };
        let input = if gc::is_no_input(input) {
            ""
        } else {
            input.trim()
        };
        let output = output.unwrap_or("").trim();
        if output.is_empty() {
            rejects.push(("empty_output", "the output is empty".into(), b.raw));
            continue;
        }
        if !input.is_empty() && gc::dup_key(input) == gc::dup_key(output) {
            rejects.push((
                "input_equals_output",
                "the output repeats the input".into(),
                b.raw,
            ));
            continue;
        }
        let ik = gc::dup_key(input);
        if let Some(prev) = by_input.get(&ik) {
            if gc::dup_key(prev) == gc::dup_key(output) {
                rejects.push(("duplicate", "the same instance twice".into(), b.raw));
                continue;
            }
            return Ok(Instances::Dropped(
                "conflicting_outputs",
                format!("input {input:?} has outputs {prev:?} and {output:?}"),
                rejects,
            ));
        }
        by_input.insert(ik, output.to_string());
        if kept.len() >= max_instances {
            rejects.push((
                "too_many_instances",
                format!("more than {max_instances}"),
                b.raw,
            ));
            continue;
        }
        kept.push((input.to_string(), output.to_string()));
    }
    if kept.is_empty() {
        return Ok(Instances::Dropped(
            "no_instances",
            "no usable instance".into(),
            rejects,
        ));
    }
    Ok(Instances::Kept(kept, rejects))
}
