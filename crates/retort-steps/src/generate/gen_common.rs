//! Shared machinery of the generation steps (`self_instruct`, `self_chat`,
//! `evol_instruct`, `respond`): seeded sampling, collecting records/failures/rejections,
//! and the text parsers every prompt format here shares (labelled field blocks,
//! numbered lists). Teacher calls and their outcome rule live in [`crate::calls`].

use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use retort_core::{Failure, Message, Record, Rejection};
use retort_teacher::ChatRequest;

use crate::api::{Batch, StepError};
use crate::spec::{BuildCtx, Estimate};
use crate::templates::Template;

/// Default number of teacher calls in flight per step. The client still enforces the
/// teacher's own limits (`max_in_flight`, requests/tokens per minute) on top.
pub const DEFAULT_CONCURRENCY: usize = 16;

pub(crate) fn default_concurrency() -> usize {
    DEFAULT_CONCURRENCY
}

/// Sampling settings of one kind of call. Steps keep these as plain option fields
/// (serde's `flatten` does not work with `deny_unknown_fields`) and build one of these.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
}

impl Sampling {
    /// A request for `messages` with this sampling and a derived seed.
    pub fn request(&self, messages: Vec<Message>, seed: u64, sample_index: u32) -> ChatRequest {
        ChatRequest {
            messages,
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            stop: vec![],
            seed: Some(seed),
            response_format: None,
            sample_index,
        }
    }
}

/// SplitMix64 finaliser: spreads a counter into a well-mixed 64-bit value.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed derived from the step seed and a path of integers (call index, round, sample…).
/// The same run makes the same requests, so re-runs hit the response cache.
pub fn derive_seed(base: u64, parts: &[u64]) -> u64 {
    parts.iter().fold(mix(base), |acc, p| mix(acc ^ mix(*p)))
}

/// A stable 64-bit number for a string (record ids), for [`derive_seed`].
pub fn str_seed(s: &str) -> u64 {
    // FNV-1a: stable across Rust versions, unlike `DefaultHasher`.
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A seeded RNG for demo sampling and method choice.
pub fn rng(base: u64, parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(derive_seed(base, parts))
}

/// Records, failures and rejections produced while handling one unit of work; merged
/// in input order into the step's batch.
#[derive(Debug, Default)]
pub struct Outcome {
    pub records: Vec<Record>,
    pub failures: Vec<Failure>,
    pub rejections: Vec<Rejection>,
}

impl Outcome {
    /// Append another outcome.
    pub fn merge(&mut self, o: Outcome) {
        self.records.extend(o.records);
        self.failures.extend(o.failures);
        self.rejections.extend(o.rejections);
    }

    /// Record a rejection with its reason.
    pub fn reject(
        &mut self,
        step: &str,
        record_id: &str,
        reason: &str,
        detail: impl Into<String>,
        text: impl Into<String>,
    ) {
        self.rejections.push(Rejection {
            step: step.to_string(),
            record_id: record_id.to_string(),
            reason: reason.to_string(),
            detail: detail.into(),
            text: text.into(),
        });
    }

    /// Record a failure that is not a teacher error (parse, bad input, truncated …).
    pub fn fail(
        &mut self,
        step: &str,
        record_id: &str,
        class: &str,
        message: impl Into<String>,
        raw: impl Into<String>,
    ) {
        self.failures.push(Failure {
            step: step.to_string(),
            record_id: record_id.to_string(),
            class: class.to_string(),
            status: None,
            message: message.into(),
            raw: raw.into(),
        });
    }

    /// The batch to commit (the caller sets `consumed` / `state`).
    pub fn into_batch(self) -> Batch {
        Batch {
            records: self.records,
            failures: self.failures,
            rejections: self.rejections,
            consumed: 0,
            done: None,
            origins: None,
            state: None,
        }
    }
}

/// Render a prompt template; the result is trimmed so a template's header comment and
/// trailing newlines never reach the teacher. A render error (a variable the template
/// needs but the step does not provide) stops the step: it would fail for every record.
pub fn render<S: serde::Serialize>(t: &Template, vars: S) -> Result<String, StepError> {
    t.render(vars)
        .map(|s| s.trim().to_string())
        .map_err(StepError::Config)
}

/// Load a template named in options (built-in name or file) and remember its file.
pub fn load_template(
    spec: &str,
    option: &str,
    ctx: &BuildCtx,
    files: &mut Vec<std::path::PathBuf>,
    errors: &mut Vec<String>,
) -> Option<Arc<Template>> {
    match Template::load(spec, &ctx.base_dir) {
        Ok(t) => {
            if let Some(f) = t.file(&ctx.base_dir) {
                files.push(f);
            }
            Some(Arc::new(t))
        }
        Err(e) => {
            errors.push(format!("`{option}`: {e}"));
            None
        }
    }
}

/// Check a teacher name, collecting the problem.
pub fn check_teacher(ctx: &BuildCtx, option: &str, name: &str, errors: &mut Vec<String>) {
    if let Err(e) = ctx.check_teacher(name) {
        errors.push(format!("`{option}`: {e}"));
    }
}

/// Rough prompt size of a template for `retort plan`: ~4 bytes per token plus room for
/// the variables.
pub fn prompt_tokens_estimate(t: &Template, extra_tokens: u64) -> u64 {
    (t.source().len() as u64 / 4).saturating_add(extra_tokens)
}

/// An estimate entry.
pub fn estimate(teacher: &str, per_input: f64, fixed: u64, prompt: u64, s: Sampling) -> Estimate {
    Estimate {
        teacher: teacher.to_string(),
        calls_per_input: per_input,
        fixed_calls: fixed,
        prompt_tokens: prompt,
        max_tokens: s.max_tokens.unwrap_or(1024) as u64,
    }
}

/// Rejected unless the given option is in `0..=1`.
pub fn check_unit(name: &str, v: f64, errors: &mut Vec<String>) {
    if !(0.0..=1.0).contains(&v) || v.is_nan() {
        errors.push(format!("`{name}` must be between 0 and 1 (got {v})"));
    }
}

/// Which string a generation step reads from an input record: `field = "topic"` etc.
/// Recognises the text fields and any label.
pub fn record_field(r: &Record, field: &str) -> Option<String> {
    let v = match field {
        "instruction" => r.instruction.clone(),
        "input" => r.input.clone(),
        "output" => r.output.clone(),
        "prompt" => Some(r.prompt_text()),
        _ => r
            .labels
            .get(field.strip_prefix("labels.").unwrap_or(field))
            .cloned(),
    };
    v.filter(|s| !s.trim().is_empty())
}

/// Seed ids at the root of `r`'s derivation: its own seeds, or itself when it is a root
/// (a loaded seed record has no seeds of its own).
pub fn root_seeds(r: &Record) -> Vec<String> {
    if r.provenance.seeds.is_empty() {
        vec![r.id.clone()]
    } else {
        r.provenance.seeds.clone()
    }
}

/// Collapse runs of whitespace to one space and trim (Self-Instruct's `re.sub(r"\s+", " ")`).
pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The key of the exact-repeat check: whitespace-collapsed and lower-cased.
pub fn dup_key(s: &str) -> String {
    collapse_ws(s).to_lowercase()
}

/// Whether an `input` field means "no input" (Alpaca's `<noinput>` and common variants).
pub fn is_no_input(s: &str) -> bool {
    let t = s
        .trim()
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '`');
    let l = t.to_lowercase();
    matches!(
        l.as_str(),
        "" | "<noinput>"
            | "<no input>"
            | "<no_input>"
            | "noinput"
            | "none"
            | "n/a"
            | "<none>"
            | "<无输入>"
            | "无"
            | "无输入"
    )
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_blocks_alpaca_numbered_with_separators() {
        let text = "Sure! Here are the tasks.\n4. Instruction: Sort the numbers.\n4. Input:\n3, 1, 2\n4. Output:\n1, 2, 3\n###\n5. Instruction: Name a colour.\n5. Input:\n<noinput>\n5. Output:\nBlue.\n";
        let b = parse_field_blocks(text, ALPACA_FIELDS);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].get(0), Some("Sort the numbers."));
        assert_eq!(b[0].get(1), Some("3, 1, 2"));
        assert_eq!(b[0].get(2), Some("1, 2, 3"));
        assert!(is_no_input(b[1].get(1).unwrap()));
        assert_eq!(b[1].get(2), Some("Blue."));
    }

    #[test]
    fn field_blocks_without_separators_split_at_instruction() {
        let text =
            "**Instruction:** A\n**Output:** x\nline two\nInstruction: B\nInput: i\nOutput: y";
        let b = parse_field_blocks(text, ALPACA_FIELDS);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].get(1), None);
        assert_eq!(b[0].get(2), Some("x\nline two"));
        assert_eq!(b[1].get(0), Some("B"));
    }

    #[test]
    fn field_blocks_chinese_labels() {
        let b = parse_field_blocks(
            "指令：把句子翻译成英文。\n输入：你好\n输出：Hello",
            ALPACA_FIELDS,
        );
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].get(2), Some("Hello"));
    }

    #[test]
    fn numbered_list_with_continuations_and_task_prefix() {
        let items = parse_numbered_list("Here you go:\n9. Write a haiku\nabout rain.\n10) Explain tides.\nTask 11: Sum 2 and 3.");
        assert_eq!(
            items,
            vec![
                "Write a haiku about rain.",
                "Explain tides.",
                "Sum 2 and 3."
            ]
        );
        assert!(parse_numbered_list("no numbers here").is_empty());
    }

    #[test]
    fn separators() {
        assert!(is_separator("###"));
        assert!(is_separator("Example 2:"));
        assert!(is_separator("---"));
        assert!(!is_separator("Task 3: do something"));
        assert!(!is_separator("# Heading"));
    }

    #[test]
    fn stopwords_rule() {
        assert!(only_stopwords("The, and... of?!"));
        assert!(only_stopwords("这是的。"));
        assert!(!only_stopwords("The cat"));
        assert!(!only_stopwords("猫"));
    }

    #[test]
    fn seeds_are_stable_and_distinct() {
        assert_eq!(derive_seed(42, &[1, 2]), derive_seed(42, &[1, 2]));
        assert_ne!(derive_seed(42, &[1, 2]), derive_seed(42, &[2, 1]));
        assert_ne!(derive_seed(42, &[1]), derive_seed(43, &[1]));
        assert_eq!(str_seed("a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn leading_label_stripped() {
        assert_eq!(
            strip_leading_label("#Rewritten Prompt#: Do X", &["#Rewritten Prompt#"]),
            "Do X"
        );
        assert_eq!(strip_leading_label("Do X", &["#Rewritten Prompt#"]), "Do X");
    }

    #[test]
    fn prompt_estimate_saturates() {
        // Found by the compile fuzz tests: a huge option (`max_turns`) overflowed the sum.
        let t = Template::load("alpaca_generate", std::path::Path::new(".")).unwrap();
        assert_eq!(prompt_tokens_estimate(&t, u64::MAX), u64::MAX);
    }
}
