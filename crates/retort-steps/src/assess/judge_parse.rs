//! One tolerant parser for every judge reply (`score` and both `judge` modes).
//!
//! Judges are asked for JSON, but small and local models wrap it in code fences, prepend
//! prose, write `Score: 7`, `7/10` or MT-Bench's `[[7]]`. This module accepts those shapes
//! and nothing looser: a reply with no score, with two different scores, or with a score
//! outside the scale is an error, never a default value (Deita's scorer returned 3.0 on
//! every error and silently flattened whole datasets).
//!
//! Order of trust: a JSON object with a `score`/`rating` key wins; otherwise every textual
//! score marker in the reply must agree; otherwise a reply that is only a number is read
//! as that number.
//!
//! Size: ~690 lines of code plus ~170 of tests: every accepted reply shape and every
//! refusal rule in one place, because the rules are only sound read together (two markers
//! that disagree are an error whichever parser found them).

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::generate::structured::OutputSchema;

/// An inclusive integer rating scale such as `1-10`, written `"MIN-MAX"` in pipeline files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scale {
    /// Lowest allowed score.
    pub min: i64,
    /// Highest allowed score.
    pub max: i64,
}

impl Scale {
    /// The default 1–10 scale.
    pub const TEN: Scale = Scale { min: 1, max: 10 };

    /// Parse `"1-10"`, `"1-6"` (Deita), `"1-5"` (PhasedSFT), `"0-100"`, …
    pub fn parse(s: &str) -> Result<Scale, String> {
        let bad = || {
            format!("scale `{s}` is not of the form \"MIN-MAX\" with integers MIN < MAX (e.g. \"1-10\")")
        };
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let min: i64 = a.trim().parse().map_err(|_| bad())?;
        let max: i64 = b.trim().parse().map_err(|_| bad())?;
        if min >= max {
            return Err(bad());
        }
        Ok(Scale { min, max })
    }

    /// Whether `x` lies on the scale (fractional scores between the ends are accepted).
    pub fn contains(&self, x: f64) -> bool {
        x.is_finite() && x >= self.min as f64 && x <= self.max as f64
    }

    /// JSON schema of the `{"rationale": "...", "score": n}` reply, in OpenAI's
    /// `response_format` shape. The rationale comes first so a model writing the object
    /// in order reasons before it commits to a number.
    pub fn response_format(&self) -> Value {
        serde_json::json!({
            "type": "json_schema",
            "json_schema": {
                "name": "score",
                "strict": true,
                "schema": {
                    "type": "object",
                    "properties": {
                        "rationale": {"type": "string"},
                        "score": {"type": "integer", "minimum": self.min, "maximum": self.max}
                    },
                    "required": ["rationale", "score"],
                    "additionalProperties": false
                }
            }
        })
    }
}

impl Default for Scale {
    fn default() -> Self {
        Scale::TEN
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

impl TryFrom<String> for Scale {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Scale::parse(&s)
    }
}

impl From<Scale> for String {
    fn from(s: Scale) -> String {
        s.to_string()
    }
}

/// JSON schema of the pairwise `{"rationale": "...", "winner": "A"|"B"|"tie"}` reply.
pub fn verdict_response_format() -> Value {
    serde_json::json!({
        "type": "json_schema",
        "json_schema": {
            "name": "verdict",
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "rationale": {"type": "string"},
                    "winner": {"type": "string", "enum": ["A", "B", "tie"]}
                },
                "required": ["rationale", "winner"],
                "additionalProperties": false
            }
        }
    })
}

/// What a structured judge (`structured = true`) sends and holds its replies to: the
/// `response_format` of every request and the schema inside it, checked by the same
/// validator as `generate`'s `output = "json"`. The tolerant readers below exist for
/// free-text replies; a reply to a request that carried a schema and does not match it
/// (prose, `Score: 7`, a missing `rationale`, a score off the scale) is a `schema`
/// failure, because a server that ignores `response_format` should be found out, not
/// quietly forgiven.
#[derive(Clone, Debug)]
pub struct JudgeFormat {
    /// Sent as the request's `response_format`.
    pub response_format: Value,
    schema: Arc<OutputSchema>,
}

impl JudgeFormat {
    /// The `{"rationale", "score"}` object on `scale`.
    pub fn score(scale: Scale) -> JudgeFormat {
        JudgeFormat::of(scale.response_format())
    }

    /// The pairwise `{"rationale", "winner"}` object.
    pub fn verdict() -> JudgeFormat {
        JudgeFormat::of(verdict_response_format())
    }

    fn of(response_format: Value) -> JudgeFormat {
        let schema = OutputSchema::from_value(response_format["json_schema"]["schema"].clone())
            .expect("the built-in judge schemas are valid JSON Schemas");
        JudgeFormat {
            response_format,
            schema: Arc::new(schema),
        }
    }
}

/// `read` applied to `reply`, after the reply has been held to `format`'s schema when the
/// request carried one.
pub fn read_reply<T>(
    reply: &str,
    format: Option<&JudgeFormat>,
    read: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    if let Some(f) = format {
        f.schema.parse_reply(reply).map_err(ParseError::Schema)?;
    }
    read(reply)
}

/// A parsed rating.
#[derive(Clone, Debug, PartialEq)]
pub struct ScoreReply {
    /// The score, inside the scale.
    pub score: f64,
    /// The judge's reasoning: the JSON `rationale` (or `reason`, `explanation`, …) field,
    /// or the whole reply when the score came from free text.
    pub rationale: Option<String>,
}

/// A pairwise verdict, in terms of the positions shown to the judge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    /// The response shown first is better.
    A,
    /// The response shown second is better.
    B,
    /// Neither is better.
    Tie,
}

/// A parsed pairwise verdict.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictReply {
    pub verdict: Verdict,
    pub rationale: Option<String>,
}

/// Why a reply could not be used. [`ParseError::class`] names it for the failures table.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParseError {
    /// Nothing in the reply reads as a score.
    #[error("no score found in the reply")]
    NoScore,
    /// The reply gives different scores in different places.
    #[error("the reply gives conflicting scores: {0:?}")]
    Ambiguous(Vec<f64>),
    /// The score is not on the scale the judge was asked to use.
    #[error("score {score} is outside the scale {scale}")]
    OutOfScale { score: f64, scale: Scale },
    /// A `n/d` score on another scale than the one asked for.
    #[error("score given as {score}/{denominator}, but the scale is {scale}")]
    WrongScale {
        score: f64,
        denominator: f64,
        scale: Scale,
    },
    /// Nothing in the reply reads as A, B or tie.
    #[error("no verdict (A, B or tie) found in the reply")]
    NoVerdict,
    /// The reply names different winners in different places.
    #[error("the reply gives conflicting verdicts: {0:?}")]
    AmbiguousVerdict(Vec<Verdict>),
    /// A structured reply that does not match the schema sent with the request.
    #[error("{0}")]
    Schema(String),
}

impl ParseError {
    /// `out_of_scale` for a score that was read but is not allowed, `schema` for a
    /// structured reply that breaks its schema, `parse` otherwise.
    pub fn class(&self) -> &'static str {
        match self {
            ParseError::OutOfScale { .. } | ParseError::WrongScale { .. } => "out_of_scale",
            ParseError::Schema(_) => "schema",
            _ => "parse",
        }
    }
}

const SCORE_KEYS: &[&str] = &["score", "rating", "overall_score", "final_score"];
const RATIONALE_KEYS: &[&str] = &[
    "rationale",
    "reason",
    "reasoning",
    "explanation",
    "justification",
    "feedback",
];
const VERDICT_KEYS: &[&str] = &[
    "winner",
    "verdict",
    "preferred",
    "better",
    "choice",
    "preference",
];

/// Every JSON object embedded in `text`, outermost first, in order of appearance. Code
/// fences and surrounding prose are skipped because only balanced `{…}` spans that parse
/// as JSON are returned.
pub fn json_objects(text: &str) -> Vec<Map<String, Value>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    if !b.contains(&b'{') {
        return out;
    }
    let close = closing_braces(b);
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match close[i + 1] {
            NO_CLOSE => i += 1,
            end => match serde_json::from_str::<Value>(&text[i..=end]) {
                Ok(Value::Object(m)) => {
                    out.push(m);
                    i = end + 1;
                }
                _ => i += 1,
            },
        }
    }
    out
}

const NO_CLOSE: usize = usize::MAX;

/// `close[p]`: the `}` that a scan starting at byte `p` outside a JSON string meets one
/// level below where it started (`NO_CLOSE` if none), honouring JSON strings and escapes.
/// For a `{` at `p - 1` that is its closing brace. Filled right to left in one pass, so
/// trying every `{` of a reply is linear, not quadratic, in its length.
fn closing_braces(b: &[u8]) -> Vec<usize> {
    let n = b.len();
    // The same scan from inside a string; index `n + 1` covers a trailing backslash.
    let mut code = vec![NO_CLOSE; n + 2];
    let mut in_str = vec![NO_CLOSE; n + 2];
    for p in (0..n).rev() {
        in_str[p] = match b[p] {
            // The escaped byte is skipped, whatever it is.
            b'\\' => in_str[p + 2],
            b'"' => code[p + 1],
            _ => in_str[p + 1],
        };
        code[p] = match b[p] {
            b'"' => in_str[p + 1],
            b'}' => p,
            // A nested object: continue after its closing brace.
            b'{' => match code[p + 1] {
                NO_CLOSE => NO_CLOSE,
                k => code[k + 1],
            },
            _ => code[p + 1],
        };
    }
    code
}

fn get_ci<'a>(m: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    for k in keys {
        if let Some((_, v)) = m.iter().find(|(mk, _)| mk.eq_ignore_ascii_case(k)) {
            return Some(v);
        }
    }
    None
}

fn rationale_of(m: &Map<String, Value>) -> Option<String> {
    get_ci(m, RATIONALE_KEYS)
        .and_then(|v| v.as_str())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A JSON score value: a number, or a string holding `7`, `7.5` or `7/10`.
fn json_score(v: &Value, scale: Scale) -> Option<Result<f64, ParseError>> {
    match v {
        Value::Number(n) => n.as_f64().map(Ok),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(x) = s.parse::<f64>() {
                return Some(Ok(x));
            }
            let (n, d) = s.split_once('/')?;
            let n: f64 = n.trim().parse().ok()?;
            let d: f64 = d.trim().parse().ok()?;
            Some(check_denominator(n, d, scale))
        }
        _ => None,
    }
}

fn check_denominator(n: f64, d: f64, scale: Scale) -> Result<f64, ParseError> {
    if d == scale.max as f64 {
        Ok(n)
    } else {
        Err(ParseError::WrongScale {
            score: n,
            denominator: d,
            scale,
        })
    }
}

fn distinct(mut xs: Vec<f64>) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    xs.retain(|x| !x.is_nan());
    for x in xs {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn check_scale(score: f64, scale: Scale) -> Result<f64, ParseError> {
    if scale.contains(score) {
        Ok(score)
    } else {
        Err(ParseError::OutOfScale { score, scale })
    }
}

/// Read a rating on `scale` from a judge reply. See the module docs for accepted shapes.
pub fn parse_score(text: &str, scale: Scale) -> Result<ScoreReply, ParseError> {
    // 1. JSON objects carrying a score key.
    let mut found = Vec::new();
    let mut rationale = None;
    for m in json_objects(text) {
        if let Some(v) = get_ci(&m, SCORE_KEYS) {
            if let Some(r) = json_score(v, scale) {
                found.push(r?);
                if rationale.is_none() {
                    rationale = rationale_of(&m);
                }
            }
        }
    }
    let found = distinct(found);
    match found.len() {
        1 => {
            return Ok(ScoreReply {
                score: check_scale(found[0], scale)?,
                rationale,
            })
        }
        n if n > 1 => return Err(ParseError::Ambiguous(found)),
        _ => {}
    }

    // 2. Textual markers: `Score: 7`, `**Rating:** 7`, `[[7]]`, `7/10`, `7 out of 10`.
    let mut found = text_scores(text, scale)?;
    found = distinct(found);
    let whole_reply = || {
        let t = text.trim();
        (!t.is_empty()).then(|| t.to_string())
    };
    match found.len() {
        1 => {
            return Ok(ScoreReply {
                score: check_scale(found[0], scale)?,
                rationale: whole_reply(),
            })
        }
        n if n > 1 => return Err(ParseError::Ambiguous(found)),
        _ => {}
    }

    // 3. A reply that is nothing but a number.
    // Markdown emphasis and quotes around the number, and a full stop after it (`**8**.`);
    // a leading `.` is kept so `.5` is not read as 5.
    let deco = |c: char| c.is_whitespace() || matches!(c, '*' | '`' | '"');
    let bare = text
        .trim_matches(deco)
        .trim_end_matches('.')
        .trim_matches(deco);
    if let Ok(x) = bare.parse::<f64>() {
        return Ok(ScoreReply {
            score: check_scale(x, scale)?,
            rationale: None,
        });
    }
    Err(ParseError::NoScore)
}

/// A number starting at byte `i`: optional `-`, digits, optional `.digits`. Returns the
/// value and the end index.
fn number_at(b: &[u8], i: usize) -> Option<(f64, usize)> {
    let mut j = i;
    if j < b.len() && b[j] == b'-' {
        j += 1;
    }
    let digits_start = j;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j == digits_start {
        return None;
    }
    if j + 1 < b.len() && b[j] == b'.' && b[j + 1].is_ascii_digit() {
        j += 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
    }
    let s = std::str::from_utf8(&b[i..j]).ok()?;
    s.parse().ok().map(|x| (x, j))
}

fn skip_spaces(b: &[u8], mut j: usize) -> usize {
    while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
        j += 1;
    }
    j
}

/// Scores read from textual markers. A number directly followed by `-digit` is a range
/// such as a restated rubric (`score (1-10): 7`) and is skipped, not taken as a score.
fn text_scores(text: &str, scale: Scale) -> Result<Vec<f64>, ParseError> {
    let lower = text.to_ascii_lowercase();
    let b = lower.as_bytes();
    let mut out = Vec::new();

    // `score`/`rating` followed by separators, then a number.
    for kw in ["score", "rating"] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(kw) {
            let start = from + pos;
            from = start + kw.len();
            // `generating 5 ideas` and `underscore` are not score markers.
            if start > 0 && b[start - 1].is_ascii_alphabetic() {
                continue;
            }
            let mut j = from;
            loop {
                let before = j;
                while j < b.len()
                    && matches!(
                        b[j],
                        b' ' | b'\t' | b'"' | b'\'' | b'*' | b':' | b'=' | b'[' | b'(' | b'_'
                    )
                {
                    j += 1;
                }
                if lower[j..].starts_with("is ") {
                    j += 3;
                }
                if j == before {
                    break;
                }
            }
            if let Some((x, end)) = number_at(b, j) {
                if is_range(b, end) {
                    continue;
                }
                // `Score: 7/10` is read once, by the n/d rule below, which also checks
                // the denominator.
                let after = skip_spaces(b, end);
                if after < b.len() && b[after] == b'/' {
                    continue;
                }
                out.push(x);
            }
        }
    }

    // MT-Bench's `[[7]]`.
    let mut from = 0;
    while let Some(pos) = lower[from..].find("[[") {
        let start = from + pos + 2;
        from = start;
        let j = skip_spaces(b, start);
        if let Some((x, end)) = number_at(b, j) {
            let end = skip_spaces(b, end);
            if lower[end..].starts_with("]]") {
                out.push(x);
            }
        }
    }

    // `7/10`, `7 / 10`, `7 out of 10`.
    let mut wrong = None;
    let mut i = 0;
    while i < b.len() {
        let at_number_start = (b[i].is_ascii_digit() || b[i] == b'-')
            && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.' || b[i - 1] == b'/'));
        if !at_number_start {
            i += 1;
            continue;
        }
        let Some((n, end)) = number_at(b, i) else {
            i += 1;
            continue;
        };
        let j = skip_spaces(b, end);
        let den_start = if j < b.len() && b[j] == b'/' {
            Some(skip_spaces(b, j + 1))
        } else if lower[j..].starts_with("out of ") {
            Some(skip_spaces(b, j + 7))
        } else {
            None
        };
        if let Some(ds) = den_start {
            if let Some((d, dend)) = number_at(b, ds) {
                // A date such as `3/4/2024` is not a score.
                let date = dend < b.len() && b[dend] == b'/';
                if !date {
                    match check_denominator(n, d, scale) {
                        Ok(x) => out.push(x),
                        Err(e) => {
                            if wrong.is_none() {
                                wrong = Some(e);
                            }
                        }
                    }
                }
                i = dend;
                continue;
            }
        }
        i = end.max(i + 1);
    }
    // A fraction on another scale only matters when it is the reply's only score: in
    // `Score: 8 … covers 2/3 of the steps` the `2/3` is prose.
    match wrong {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}

fn is_range(b: &[u8], end: usize) -> bool {
    let j = skip_spaces(b, end);
    j + 1 < b.len() && (b[j] == b'-' || b[j] == b'~') && {
        let k = skip_spaces(b, j + 1);
        k < b.len() && b[k].is_ascii_digit()
    }
}

/// Read a verdict token: `A`, `B`, `tie`, `Response A`, `Assistant B`, `[[C]]`-style tie,
/// `equal`, `draw`, `both`, `neither`.
fn verdict_token(s: &str) -> Option<Verdict> {
    let t: String = s
        .trim()
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_ascii_lowercase();
    let t = ["response ", "output ", "assistant ", "answer ", "option "]
        .iter()
        .find_map(|p| t.strip_prefix(p))
        .unwrap_or(&t)
        .trim()
        .to_string();
    match t.as_str() {
        "a" | "(a)" | "1" => Some(Verdict::A),
        "b" | "(b)" | "2" => Some(Verdict::B),
        "tie" | "c" | "equal" | "draw" | "both" | "neither" | "none" | "same" => Some(Verdict::Tie),
        _ => None,
    }
}

fn distinct_verdicts(xs: Vec<Verdict>) -> Vec<Verdict> {
    let mut out = Vec::new();
    for x in xs {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

/// Read a pairwise verdict: JSON `{"winner": "A"}` (also `verdict`, `preferred`, `better`),
/// MT-Bench's `[[A]]`/`[[B]]`/`[[C]]` (C = tie), `Winner: A`-style lines, or a reply that
/// is only `A`, `B` or `tie`.
pub fn parse_verdict(text: &str) -> Result<VerdictReply, ParseError> {
    let mut found = Vec::new();
    let mut rationale = None;
    for m in json_objects(text) {
        if let Some(Value::String(s)) = get_ci(&m, VERDICT_KEYS) {
            if let Some(v) = verdict_token(s) {
                found.push(v);
                if rationale.is_none() {
                    rationale = rationale_of(&m);
                }
            }
        }
    }
    let found = distinct_verdicts(found);
    match found.len() {
        1 => {
            return Ok(VerdictReply {
                verdict: found[0],
                rationale,
            })
        }
        n if n > 1 => return Err(ParseError::AmbiguousVerdict(found)),
        _ => {}
    }

    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    // `[[A]]`
    let mut from = 0;
    while let Some(pos) = lower[from..].find("[[") {
        let start = from + pos + 2;
        from = start;
        if let Some(close) = lower[start..].find("]]") {
            let inner = &lower[start..start + close];
            if inner.len() <= 12 {
                if let Some(v) = verdict_token(inner) {
                    found.push(v);
                }
            }
        }
    }
    // `Winner: A`, `**Verdict:** Response B`, `Better response: A`
    for kw in [
        "winner",
        "verdict",
        "preferred",
        "better response",
        "preference",
    ] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(kw) {
            let start = from + pos + kw.len();
            from = start;
            // Slicing the original text at the same offsets keeps the letter's case
            // (ASCII lower-casing does not move bytes).
            let rest = text[start..].trim_start_matches(|c: char| {
                matches!(
                    c,
                    ' ' | '\t' | '*' | ':' | '=' | '"' | '\'' | '[' | '(' | '-'
                )
            });
            if rest.len() == text[start..].len() {
                // No separator: `winners`, `preferred to`, … are prose, not a verdict.
                continue;
            }
            let mut words = rest.split_whitespace();
            let first = words.next().unwrap_or("");
            let first_clean = first.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            let letter = if ["response", "output", "assistant", "answer", "option"]
                .contains(&first_clean.to_ascii_lowercase().as_str())
            {
                words
                    .next()
                    .unwrap_or("")
                    .trim_matches(|c: char| !c.is_ascii_alphanumeric())
            } else {
                first_clean
            };
            // A lower-case `a` here is the article (`Verdict: a tie`), not a position.
            if letter == "a" || letter == "b" {
                continue;
            }
            if let Some(v) = verdict_token(letter) {
                found.push(v);
            }
        }
    }
    let found = distinct_verdicts(found);
    let whole_reply = || {
        let t = text.trim();
        (!t.is_empty()).then(|| t.to_string())
    };
    match found.len() {
        1 => {
            return Ok(VerdictReply {
                verdict: found[0],
                rationale: whole_reply(),
            })
        }
        n if n > 1 => return Err(ParseError::AmbiguousVerdict(found)),
        _ => {}
    }
    let bare = text.trim().trim_end_matches('.');
    if bare.len() <= 12 {
        if let Some(v) = verdict_token(bare) {
            return Ok(VerdictReply {
                verdict: v,
                rationale: None,
            });
        }
    }
    Err(ParseError::NoVerdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Result<f64, ParseError> {
        parse_score(text, Scale::TEN).map(|r| r.score)
    }

    #[test]
    fn scale_parses_and_rejects() {
        assert_eq!(Scale::parse("1-6").unwrap(), Scale { min: 1, max: 6 });
        assert_eq!(
            Scale::parse(" 0 - 100 ").unwrap(),
            Scale { min: 0, max: 100 }
        );
        assert!(Scale::parse("10-1").is_err());
        assert!(Scale::parse("ten").is_err());
        assert!(Scale::parse("5").is_err());
    }

    #[test]
    fn plain_json() {
        let r = parse_score(
            r#"{"score": 7, "rationale": "clear and correct"}"#,
            Scale::TEN,
        )
        .unwrap();
        assert_eq!(r.score, 7.0);
        assert_eq!(r.rationale.as_deref(), Some("clear and correct"));
    }

    #[test]
    fn json_in_code_fence_with_prose() {
        let t = "Here is my rating:\n```json\n{\n  \"rationale\": \"uses {braces} in text\",\n  \"score\": 8\n}\n```\nThanks!";
        let r = parse_score(t, Scale::TEN).unwrap();
        assert_eq!(r.score, 8.0);
        assert_eq!(r.rationale.as_deref(), Some("uses {braces} in text"));
    }

    #[test]
    fn json_score_as_string_or_fraction() {
        assert_eq!(s(r#"{"score": "6"}"#).unwrap(), 6.0);
        assert_eq!(s(r#"{"Score": "6/10", "reason": "ok"}"#).unwrap(), 6.0);
        assert_eq!(s(r#"{"rating": 4.5}"#).unwrap(), 4.5);
    }

    #[test]
    fn text_shapes() {
        assert_eq!(s("Score: 7").unwrap(), 7.0);
        assert_eq!(s("The answer is fine.\n**Score:** 9").unwrap(), 9.0);
        assert_eq!(s("I would give it 7/10.").unwrap(), 7.0);
        assert_eq!(s("Rating: [[3]]").unwrap(), 3.0);
        assert_eq!(s("Overall: 6 out of 10").unwrap(), 6.0);
        assert_eq!(s("score = 2").unwrap(), 2.0);
        assert_eq!(s("The score is 5.").unwrap(), 5.0);
        assert_eq!(s("Score: 7/10 — good").unwrap(), 7.0);
        assert_eq!(s("8").unwrap(), 8.0);
        assert_eq!(s("Score: 8. It covers 2/3 of the steps.").unwrap(), 8.0);
        assert_eq!(s("After generating 5 ideas... Score: 6").unwrap(), 6.0);
        assert_eq!(s("  **8**.\n").unwrap(), 8.0);
        assert_eq!(s(".5").unwrap_err().class(), "out_of_scale");
        // Broken JSON (single quotes) still has a readable score marker.
        assert_eq!(s("{'score': 4, 'rationale': 'meh'}").unwrap(), 4.0);
    }

    #[test]
    fn restated_rubric_range_is_not_a_score() {
        assert_eq!(
            s("Difficulty score (1-10): 7\nScore: 7").unwrap(),
            7.0,
            "the `1-10` range must not be read as a score"
        );
    }

    #[test]
    fn rejects_unreadable_replies() {
        assert_eq!(s("I cannot rate this."), Err(ParseError::NoScore));
        assert_eq!(s(""), Err(ParseError::NoScore));
        assert_eq!(s("It's great!"), Err(ParseError::NoScore));
        assert!(matches!(
            s("Score: 7. On reflection, Score: 9"),
            Err(ParseError::Ambiguous(_))
        ));
        assert!(matches!(
            s(r#"{"score": 3} {"score": 5}"#),
            Err(ParseError::Ambiguous(_))
        ));
    }

    #[test]
    fn rejects_out_of_scale() {
        let e = s(r#"{"score": 11}"#).unwrap_err();
        assert_eq!(e.class(), "out_of_scale");
        assert_eq!(s("Score: 0").unwrap_err().class(), "out_of_scale");
        assert_eq!(s("-1").unwrap_err().class(), "out_of_scale");
        let e = parse_score("4/5", Scale::TEN).unwrap_err();
        assert!(matches!(e, ParseError::WrongScale { .. }), "{e:?}");
        assert_eq!(
            parse_score("4/5", Scale { min: 1, max: 5 }).unwrap().score,
            4.0
        );
        assert_eq!(
            parse_score("Score: 6", Scale { min: 1, max: 5 })
                .unwrap_err()
                .class(),
            "out_of_scale"
        );
    }

    #[test]
    fn text_score_keeps_whole_reply_as_rationale() {
        let r = parse_score("Good structure.\nScore: 6", Scale::TEN).unwrap();
        assert_eq!(r.rationale.as_deref(), Some("Good structure.\nScore: 6"));
    }

    fn v(text: &str) -> Result<Verdict, ParseError> {
        parse_verdict(text).map(|r| r.verdict)
    }

    #[test]
    fn verdict_shapes() {
        assert_eq!(
            v(r#"{"winner": "A", "rationale": "x"}"#).unwrap(),
            Verdict::A
        );
        assert_eq!(
            v("```json\n{\"verdict\": \"Response B\"}\n```").unwrap(),
            Verdict::B
        );
        assert_eq!(v(r#"{"winner": "tie"}"#).unwrap(), Verdict::Tie);
        assert_eq!(v("[[A]]").unwrap(), Verdict::A);
        assert_eq!(v("Final verdict: [[C]]").unwrap(), Verdict::Tie);
        assert_eq!(v("Both are okay.\nWinner: B").unwrap(), Verdict::B);
        assert_eq!(v("**Better response:** Assistant A").unwrap(), Verdict::A);
        assert_eq!(v("B").unwrap(), Verdict::B);
        assert_eq!(v("Tie.").unwrap(), Verdict::Tie);
        let r = parse_verdict(r#"{"rationale": "more precise", "winner": "B"}"#).unwrap();
        assert_eq!(r.rationale.as_deref(), Some("more precise"));
    }

    #[test]
    fn verdict_rejects() {
        assert_eq!(v("Both have merits."), Err(ParseError::NoVerdict));
        assert_eq!(v("Verdict: a tie between them"), Err(ParseError::NoVerdict));
        assert_eq!(v("The winners are many"), Err(ParseError::NoVerdict));
        assert!(matches!(
            v("Winner: A ... actually [[B]]"),
            Err(ParseError::AmbiguousVerdict(_))
        ));
    }

    #[test]
    fn json_objects_skips_non_json_braces() {
        let objs = json_objects("set {a, b} then {\"x\": {\"y\": 1}} and {bad json}");
        assert_eq!(objs.len(), 1);
        assert!(objs[0].contains_key("x"));
    }

    #[test]
    fn unclosed_braces_take_linear_time() {
        // Found while fuzzing: every `{` rescanned the rest of the reply, so a
        // degenerate reply of 100,000 `{` took over 30 s (debug build) to read.
        for pat in ["{", "{\"", "{\"score\": 1,"] {
            let reply = pat.repeat(100_000 / pat.len());
            let t = std::time::Instant::now();
            assert!(json_objects(&reply).is_empty());
            let _ = parse_score(&reply, Scale::TEN);
            let _ = parse_verdict(&reply);
            assert!(t.elapsed().as_secs() < 5, "{pat:?}: {:?}", t.elapsed());
        }
        // Objects nested in an unclosed one are still found.
        let objs = json_objects("{ {\"score\": 7} { {\"s\": \"{\"} }");
        assert_eq!(objs.len(), 2, "{objs:?}");
    }
}
