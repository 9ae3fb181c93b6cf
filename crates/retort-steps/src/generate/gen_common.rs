//! Shared machinery of the generation steps (`self_instruct`, `self_chat`,
//! `evol_instruct`, `respond`): seeded sampling, collecting records/failures/rejections,
//! templates, estimates and record text. The reply parsers live in
//! [`super::replies`]; teacher calls and their outcome rule in [`crate::calls`].

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
            ..Default::default()
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
            if let Some(f) = t.file() {
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

/// The sampling rules every k-samples step shares: at least one sample and one call in
/// flight, and a temperature above 0 when k > 1 (k greedy samples are one answer k
/// times). Returns the temperature to use (default 0.7).
pub fn check_samples(
    samples: u32,
    temperature: Option<f32>,
    concurrency: usize,
    errors: &mut Vec<String>,
) -> f32 {
    if samples == 0 {
        errors.push("`samples` must be at least 1".into());
    }
    let temperature = temperature.unwrap_or(0.7);
    if samples > 1 && temperature <= 0.0 {
        errors.push(format!(
            "`samples = {samples}` with temperature {temperature} asks for identical answers; raise `temperature`"
        ));
    }
    if concurrency == 0 {
        errors.push("`concurrency` must be at least 1".into());
    }
    temperature
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

#[cfg(test)]
mod tests {
    use super::*;
    // The shared block parsers' tests predate their move to `replies`.
    use crate::generate::replies::*;

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
