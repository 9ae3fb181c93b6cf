//! `load`: read seed or dataset files (JSONL, JSON array, CSV, Parquet) into records.
//!
//! Field mapping turns any row shape into the record model. Without `fields`, the shape
//! is recognised from the keys: Self-Instruct seeds (`instruction` + `instances`),
//! Alpaca (`instruction`/`input`/`output`), Dolly (`instruction`/`context`/`response`),
//! OpenAI messages (`messages`), ShareGPT (`conversations`), OASST-like
//! (`prompt`/`response`), self-chat topics (`topic`). OpenAI messages keep their tool
//! calls, tool results and reasoning traces; ShareGPT-with-tools turns
//! (`function_call`, `observation`) become the same; `tools` (a list, or that list as
//! JSON text) and `candidates` are read into their fields. Every other field is kept:
//! strings and booleans as `labels`, numbers as `scores`, lists and objects as `labels`
//! holding their JSON text.
//!
//! Size: ~830 lines of code plus tests: the field mapping for every row shape retort
//! reads (Alpaca, ShareGPT, OpenAI messages with tool calls, preference pairs, Self-
//! Instruct seeds) is one rule table and one function per shape.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Candidate, Failure, Message, Provenance, Record, Rejection, ToolCall};
use retort_store::{read_rows, Row, RowFormat, RowIter};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// Options of a `load` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadOptions {
    /// One input file (relative to the pipeline file).
    #[serde(default)]
    pub path: Option<String>,
    /// Several input files, read in order.
    #[serde(default)]
    pub paths: Vec<String>,
    /// `jsonl`, `json`, `csv` or `parquet`; guessed from the extension when absent.
    #[serde(default)]
    pub format: Option<String>,
    /// Field mapping: record field (`id`, `instruction`, `input`, `output`, `messages`,
    /// `conversations`) → dotted path in the row (`instances.0.input`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// `fail` (default): a bad row stops the step with its file and line.
    /// `skip`: a bad row goes to failures.parquet with its raw text.
    #[serde(default = "default_on_error")]
    pub on_error: String,
    /// Rows per committed batch.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Read at most this many rows (across all files, bad rows included): a quick trial
    /// of a pipeline. `retort run --limit N` sets it on every `load` step.
    #[serde(default)]
    pub limit: Option<u64>,
    /// An input file with no rows: `warn` (default; a warning in the run summary) or
    /// `error` (the step fails naming the file).
    #[serde(default = "default_on_empty")]
    pub on_empty: String,
    /// A row whose id was already used (ids are unique in a run): `error` (default; the
    /// step fails naming both lines), `keep_first` (later rows are rejections with
    /// reason `duplicate_id`) or `renumber` (later rows get `<id>-2`, `<id>-3`, …).
    #[serde(default = "default_duplicate_ids")]
    pub duplicate_ids: String,
}

fn default_on_empty() -> String {
    "warn".into()
}
fn default_duplicate_ids() -> String {
    "error".into()
}

fn default_on_error() -> String {
    "fail".into()
}
fn default_batch() -> usize {
    16_384
}

const RECORD_FIELDS: &[&str] = &[
    "id",
    "instruction",
    "input",
    "output",
    "messages",
    "conversations",
    "tools",
    "candidates",
];

/// Build a `load` step.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: LoadOptions = parse_options(spec)?;
    let mut errs = Vec::new();
    let mut files: Vec<String> = o.path.iter().cloned().collect();
    files.extend(o.paths.iter().cloned());
    if files.is_empty() {
        errs.push("`load` needs `path` (or `paths`); hint: path = \"seeds/en.jsonl\"".to_string());
    }
    let format = match o.format.as_deref() {
        None => None,
        Some(f) => match RowFormat::from_name(f) {
            Some(f) => Some(f),
            None => {
                errs.push(format!(
                    "unknown format `{f}`; hint: use jsonl, json, csv or parquet"
                ));
                None
            }
        },
    };
    if o.on_empty != "warn" && o.on_empty != "error" {
        errs.push(format!(
            "`on_empty` must be \"warn\" or \"error\", got `{}`",
            o.on_empty
        ));
    }
    let duplicate_ids = match o.duplicate_ids.as_str() {
        "error" => DuplicateIds::Error,
        "keep_first" => DuplicateIds::KeepFirst,
        "renumber" => DuplicateIds::Renumber,
        other => {
            errs.push(format!(
                "`duplicate_ids` must be \"error\", \"keep_first\" or \"renumber\", got `{other}`"
            ));
            DuplicateIds::Error
        }
    };
    if o.on_error != "fail" && o.on_error != "skip" {
        errs.push(format!(
            "`on_error` must be \"fail\" or \"skip\", got `{}`",
            o.on_error
        ));
    }
    for k in o.fields.keys() {
        if !RECORD_FIELDS.contains(&k.as_str()) {
            errs.push(format!(
                "`fields.{k}` is not a record field; hint: map one of {}",
                RECORD_FIELDS.join(", ")
            ));
        }
    }
    let paths: Vec<PathBuf> = files.iter().map(|f| ctx.resolve(f)).collect();
    for p in &paths {
        if !p.is_file() {
            errs.push(format!(
                "input file {} does not exist; hint: paths are relative to the pipeline file's folder",
                p.display()
            ));
        }
    }
    if o.batch_size == 0 {
        errs.push("`batch_size` must be at least 1".into());
    }
    if o.limit == Some(0) {
        errs.push("`limit` must be at least 1; hint: remove it to read every row".into());
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let writes = match o.limit {
        Some(n) => format!("the first {n} records of {}", files.join(", ")),
        None => format!("records loaded from {}", files.join(", ")),
    };
    let mut b = Built::new(
        Arc::new(Load {
            paths: paths.clone(),
            format,
            fields: o.fields,
            skip_bad: o.on_error == "skip",
            batch: o.batch_size,
            limit: o.limit.unwrap_or(u64::MAX),
            empty_is_error: o.on_empty == "error",
            duplicate_ids,
        }),
        writes,
    );
    b.files = paths;
    Ok(b)
}

/// The `load` step.
pub struct Load {
    paths: Vec<PathBuf>,
    format: Option<RowFormat>,
    fields: BTreeMap<String, String>,
    skip_bad: bool,
    batch: usize,
    limit: u64,
    empty_is_error: bool,
    duplicate_ids: DuplicateIds,
}

/// What `duplicate_ids` says to do with a repeated id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DuplicateIds {
    Error,
    KeepFirst,
    Renumber,
}

/// The ids seen so far in this step (across its files), with where each was first seen,
/// and how many times each was renumbered.
#[derive(Default)]
struct Ids {
    first: std::collections::HashMap<String, At>,
    repeats: std::collections::HashMap<String, u64>,
}

/// Where a row is: file index and line.
type At = (usize, usize);

impl Ids {
    /// Registers `r`'s id (found at `at`). `Ok(true)`: keep the record (perhaps
    /// renumbered); `Ok(false)`: a rejected repeat; `Err`: the message naming both lines.
    fn admit(
        &mut self,
        r: &mut Record,
        at: At,
        policy: DuplicateIds,
        files: &[PathBuf],
    ) -> Result<bool, String> {
        let Some(&first) = self.first.get(&r.id) else {
            self.first.insert(r.id.clone(), at);
            return Ok(true);
        };
        match policy {
            DuplicateIds::Error => {
                let name = |(f, l): At| format!("{} line {l}", files[f].display());
                Err(format!(
                    "{}: id {:?} was already used at {}; ids must be unique (hint: fix the file, or set duplicate_ids = \"keep_first\" to keep the first and reject the rest, or \"renumber\" to give repeats new ids)",
                    name(at),
                    r.id,
                    name(first)
                ))
            }
            DuplicateIds::KeepFirst => Ok(false),
            DuplicateIds::Renumber => {
                let n = self.repeats.entry(r.id.clone()).or_insert(1);
                let new = loop {
                    *n += 1;
                    let candidate = format!("{}-{n}", r.id);
                    if !self.first.contains_key(&candidate) {
                        break candidate;
                    }
                };
                self.first.insert(new.clone(), at);
                r.id = new;
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl Step for Load {
    fn shape(&self) -> Shape {
        Shape::Source
    }

    async fn run(
        &self,
        ctx: &StepCtx,
        _inputs: Inputs,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        // Rows are counted across all files; on resume the first `consumed` are skipped
        // (read again all the same, so ids and renumbering replay exactly).
        // Committing a batch overlaps with reading the next one.
        let mut to_skip = out.consumed();
        let mut left = self.limit.saturating_sub(to_skip);
        let mut pending: Option<Batch> = None;
        let mut ids = Ids::default();
        let files = Arc::new(self.paths.clone());
        for (file, path) in self.paths.iter().enumerate() {
            if left == 0 {
                break;
            }
            let mut iter: RowIter =
                read_rows(path, self.format).map_err(|e| StepError::Config(e.to_string()))?;
            let mut rows_in_file = 0u64;
            while left > 0 {
                let n = (self.batch as u64).min(left) as usize;
                let skip = to_skip;
                let how = ReadHow {
                    fields: self.fields.clone(),
                    step: ctx.step_id.clone(),
                    skip_bad: self.skip_bad,
                    file,
                    files: files.clone(),
                    duplicate_ids: self.duplicate_ids,
                };
                let mut seen = std::mem::take(&mut ids);
                let read = ctx.cpu.run(move || {
                    let r = read_batch(&mut iter, n, skip, &how, &mut seen);
                    (iter, seen, r)
                });
                let commit = async {
                    match pending.take() {
                        Some(b) => out.commit(b).await,
                        None => Ok(()),
                    }
                };
                let ((it, seen, batch), committed) = tokio::join!(read, commit);
                committed?;
                iter = it;
                ids = seen;
                let (batch, skipped) = batch?;
                to_skip -= skipped;
                rows_in_file += skipped + batch.consumed;
                if batch.consumed == 0 && skipped == 0 {
                    break;
                }
                if batch.consumed > 0 {
                    left -= batch.consumed;
                    ctx.stats.add_done(batch.consumed);
                    ctx.stats.count_rejections(&batch.rejections);
                    pending = Some(batch);
                }
            }
            if rows_in_file == 0 && left > 0 {
                let msg = format!("{} has no rows", path.display());
                if self.empty_is_error {
                    return Err(StepError::Config(format!(
                        "step `{}`: {msg} (on_empty = \"error\"); hint: check the path, or set on_empty = \"warn\"",
                        ctx.step_id
                    )));
                }
                ctx.stats
                    .warn(format!("{msg}; the step went on without it"));
            }
        }
        if let Some(b) = pending {
            out.commit(b).await?;
        }
        Ok(())
    }
}

/// How [`read_batch`] maps rows: the step's options and which file it reads.
struct ReadHow {
    fields: BTreeMap<String, String>,
    step: String,
    skip_bad: bool,
    /// Index of the file in `files`.
    file: usize,
    files: Arc<Vec<PathBuf>>,
    duplicate_ids: DuplicateIds,
}

/// Read up to `n` rows into a batch, first skipping `skip` rows already committed
/// (whose ids are registered all the same).
fn read_batch(
    it: &mut RowIter,
    n: usize,
    skip: u64,
    how: &ReadHow,
    ids: &mut Ids,
) -> Result<(Batch, u64), StepError> {
    let step = how.step.as_str();
    // Generated ids are `<step>-<line>`; lines repeat across files, so later files
    // add their index.
    let prefix = match how.file {
        0 => how.step.clone(),
        k => format!("{step}-{k}"),
    };
    let fields = &how.fields;
    let mut skipped = 0;
    while skipped < skip {
        let Some(row) = it.next() else { break };
        // These rows were committed by the same options (another policy is another
        // config hash), so replaying them registers their ids and cannot fail; a bad
        // row among them was a failure row then and is nothing now.
        if let Ok(row) = row {
            if let Ok(mut r) = to_record(&row, fields, &prefix) {
                let _ = ids.admit(&mut r, (how.file, row.line), how.duplicate_ids, &how.files);
            }
        }
        skipped += 1;
    }
    let mut b = Batch::default();
    for row in it.by_ref() {
        b.consumed += 1;
        match row {
            Ok(row) => match to_record(&row, fields, &prefix) {
                Ok(mut r) => {
                    match ids.admit(&mut r, (how.file, row.line), how.duplicate_ids, &how.files) {
                        Ok(true) => b.records.push(r),
                        Ok(false) => b.rejections.push(Rejection {
                            step: step.to_string(),
                            record_id: r.id.clone(),
                            reason: "duplicate_id".into(),
                            detail: format!(
                                "line {} repeats an earlier id (duplicate_ids = \"keep_first\")",
                                row.line
                            ),
                            text: r.instruction.clone().unwrap_or_default(),
                        }),
                        Err(msg) => return Err(StepError::Config(format!("step `{step}`: {msg}"))),
                    }
                }
                Err(msg) => {
                    if !how.skip_bad {
                        return Err(StepError::Config(format!(
                            "step `{step}`: row at line {} {msg}; fix the file, add a `fields` mapping, or set on_error = \"skip\" to send such rows to failures.parquet",
                            row.line
                        )));
                    }
                    b.failures.push(Failure {
                        step: step.to_string(),
                        record_id: format!("{prefix}-{}", row.line),
                        class: "bad_input".into(),
                        status: None,
                        message: format!("line {}: {msg}", row.line),
                        raw: Value::Object(row.fields).to_string(),
                    });
                }
            },
            Err(e) => {
                if !how.skip_bad {
                    return Err(StepError::Config(format!(
                        "step `{step}`: {e}; fix the file or set on_error = \"skip\" to send bad rows to failures.parquet"
                    )));
                }
                b.failures.push(Failure {
                    step: step.to_string(),
                    record_id: format!("{prefix}-{}", e.line),
                    class: "bad_input".into(),
                    status: None,
                    message: e.to_string(),
                    raw: e.raw.clone(),
                });
            }
        }
        if b.consumed as usize >= n {
            break;
        }
    }
    Ok((b, skipped))
}

fn get_path<'a>(row: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut cur = row.get(parts.next()?)?;
    for p in parts {
        cur = match cur {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The default mapping for a recognised row shape.
fn auto_fields(row: &Map<String, Value>) -> BTreeMap<&'static str, &'static str> {
    let has = |k: &str| row.contains_key(k);
    let mut m = BTreeMap::new();
    if has("messages") {
        m.insert("messages", "messages");
    } else if has("conversations") {
        m.insert("conversations", "conversations");
    } else if has("instances") && has("instruction") {
        m.insert("instruction", "instruction");
        m.insert("input", "instances.0.input");
        m.insert("output", "instances.0.output");
    } else if has("instruction") {
        m.insert("instruction", "instruction");
        if has("input") {
            m.insert("input", "input");
        } else if has("context") {
            m.insert("input", "context");
        }
        if has("output") {
            m.insert("output", "output");
        } else if has("response") {
            m.insert("output", "response");
        }
    } else if has("prompt") {
        m.insert("instruction", "prompt");
        if has("response") {
            m.insert("output", "response");
        } else if has("completion") {
            m.insert("output", "completion");
        }
    } else if has("topic") {
        m.insert("instruction", "topic");
    } else if has("question") {
        m.insert("instruction", "question");
        if has("answer") {
            m.insert("output", "answer");
        }
    } else if has("text") {
        m.insert("instruction", "text");
    }
    if has("id") {
        m.insert("id", "id");
    }
    if has("tools") {
        m.insert("tools", "tools");
    }
    if has("candidates") {
        m.insert("candidates", "candidates");
    }
    m
}

fn parse_messages(v: &Value, sharegpt: bool) -> Result<Vec<Message>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| "has a messages field that is not a list".to_string())?;
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            if sharegpt {
                sharegpt_message(m)
            } else {
                openai_message(m)
            }
            .map_err(|e| format!("message {}: {e}", i + 1))
        })
        .collect()
}

/// An OpenAI-format message: `content` a string, a list of text parts, or null beside
/// `tool_calls`; `tool_call_id`/`name` on tool results; a reasoning trace from
/// `reasoning_content`, `reasoning` or `thinking` (the fields reasoning datasets use).
fn openai_message(m: &Value) -> Result<Message, String> {
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or("has no string `role`")?;
    let tool_calls = match m.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls
            .iter()
            .map(openai_call)
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("has `tool_calls` that is not a list".into()),
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(
                |p| match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => Ok(t.as_str()),
                    _ => Err(format!(
                        "has a content part retort cannot hold (only text parts): {p}"
                    )),
                },
            )
            .collect::<Result<String, String>>()?,
        None | Some(Value::Null) if !tool_calls.is_empty() => String::new(),
        _ => return Err("has no string `content`".into()),
    };
    let opt = |k: &str| -> Result<Option<String>, String> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("has `{k}` that is not a string: {other}")),
        }
    };
    let reasoning = reasoning_trace(opt)?;
    Ok(Message {
        role: role.to_string(),
        content,
        reasoning,
        tool_calls,
        tool_call_id: opt("tool_call_id")?,
        name: opt("name")?,
    })
}

/// `{"id"?, "type": "function", "function": {"name", "arguments"}}`; arguments as the
/// spec's JSON string, or an object (what HF chat-template datasets store), kept as
/// its JSON text.
fn openai_call(c: &Value) -> Result<ToolCall, String> {
    let f = c.get("function").unwrap_or(c);
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("has a tool call without a function name: {c}"))?;
    Ok(ToolCall {
        id: c.get("id").and_then(Value::as_str).map(str::to_string),
        name: name.to_string(),
        arguments: call_arguments(f.get("arguments"), name)?,
    })
}

fn call_arguments(v: Option<&Value>, name: &str) -> Result<String, String> {
    ToolCall::arguments_text(v).ok_or_else(|| {
        format!(
            "has a call to `{name}` whose arguments are neither a JSON string nor an object: {}",
            v.map(Value::to_string).unwrap_or_default()
        )
    })
}

/// A ShareGPT turn (`from`/`value`), with the tool roles of ShareGPT-with-tools
/// (LLaMA-Factory, glaive): `function_call` (the value is the call as JSON, or a list of
/// calls) becomes an assistant turn with tool calls, `observation` a `tool` turn.
fn sharegpt_message(m: &Value) -> Result<Message, String> {
    let from = m
        .get("from")
        .and_then(Value::as_str)
        .ok_or("has no string `from`")?;
    let value = m
        .get("value")
        .and_then(Value::as_str)
        .ok_or("has no string `value`")?;
    let role = match from {
        "human" | "user" => "user",
        "gpt" | "assistant" | "chatgpt" | "bing" | "bard" => "assistant",
        "system" => "system",
        "observation" | "tool" => "tool",
        "function_call" => {
            let v: Value = serde_json::from_str(value)
                .map_err(|e| format!("has a `function_call` turn whose value is not JSON ({e})"))?;
            let calls = match v {
                Value::Array(calls) => calls,
                one => vec![one],
            };
            let tool_calls = calls
                .iter()
                .map(|c| {
                    let name = c
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("has a `function_call` without a `name`: {c}"))?;
                    Ok(ToolCall {
                        id: None,
                        name: name.to_string(),
                        arguments: call_arguments(c.get("arguments"), name)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            return Ok(Message {
                role: "assistant".into(),
                tool_calls,
                ..Default::default()
            });
        }
        other => other,
    };
    Ok(Message::new(role, value))
}

/// Tool definitions: a list of objects, or that list as JSON text (LLaMA-Factory's and
/// TRL's string `tools` column), in the OpenAI form.
fn parse_tools(v: &Value) -> Result<Vec<Value>, String> {
    let list = match v {
        Value::String(s) if s.trim().is_empty() => return Ok(Vec::new()),
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|e| format!("has a `tools` string that is not JSON ({e})"))?,
        Value::Null => return Ok(Vec::new()),
        other => other.clone(),
    };
    match list {
        // The short form (`{name, description, parameters}`, LLaMA-Factory's) is kept in
        // the OpenAI form every record holds.
        Value::Array(items) if items.iter().all(Value::is_object) => Ok(items
            .into_iter()
            .map(|t| {
                if t.get("function").is_none() && t.get("name").is_some() {
                    serde_json::json!({"type": "function", "function": t})
                } else {
                    t
                }
            })
            .collect()),
        _ => Err("has `tools` that is not a list of tool definitions (objects)".into()),
    }
}

/// A turn's or candidate's reasoning trace: the first of `reasoning_content`,
/// `reasoning` and `thinking` (the fields reasoning datasets use) that `field` finds;
/// an empty trace is none.
fn reasoning_trace<E>(
    mut field: impl FnMut(&str) -> Result<Option<String>, E>,
) -> Result<Option<String>, E> {
    for key in ["reasoning_content", "reasoning", "thinking"] {
        if let Some(r) = field(key)? {
            return Ok(Some(r).filter(|r| !r.is_empty()));
        }
    }
    Ok(None)
}

/// Candidate answers: a list of strings, or of objects with `content` (and optionally
/// `teacher`, `model`, `sample`, `score`, `rationale`).
fn parse_candidates(v: &Value) -> Result<Vec<Candidate>, String> {
    let items = v.as_array().ok_or("has `candidates` that is not a list")?;
    items
        .iter()
        .enumerate()
        .map(|(i, c)| match c {
            Value::String(s) => Ok(Candidate {
                content: s.clone(),
                sample: i as u32,
                ..Default::default()
            }),
            Value::Object(o) => {
                let content = o
                    .get("content")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("has candidate {} without a string `content`", i + 1))?;
                let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
                Ok(Candidate {
                    teacher: s("teacher").unwrap_or_default(),
                    model: s("model").unwrap_or_default(),
                    sample: o
                        .get("sample")
                        .and_then(Value::as_u64)
                        .map_or(i as u32, |n| n as u32),
                    content: content.to_string(),
                    score: o.get("score").and_then(Value::as_f64),
                    rationale: s("rationale"),
                    reasoning: reasoning_trace(|k| Ok::<_, String>(s(k)))?,
                })
            }
            other => Err(format!(
                "has candidate {} that is neither a string nor an object: {other}",
                i + 1
            )),
        })
        .collect()
}

fn to_record(row: &Row, fields: &BTreeMap<String, String>, step: &str) -> Result<Record, String> {
    let auto;
    let map: Vec<(&str, &str)> = if fields.is_empty() {
        auto = auto_fields(&row.fields);
        auto.iter().map(|(k, v)| (*k, *v)).collect()
    } else {
        fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    };
    let mut r = Record::default();
    let mut used: Vec<&str> = Vec::new();
    for (field, path) in &map {
        used.push(path.split('.').next().unwrap_or(path));
        let v = get_path(&row.fields, path);
        match *field {
            "messages" | "conversations" => {
                let v = v.ok_or_else(|| format!("has no `{path}`"))?;
                r.messages = parse_messages(v, *field == "conversations")?;
            }
            "tools" => {
                if let Some(v) = v {
                    r.tools = parse_tools(v)?;
                }
            }
            "candidates" => {
                let v = v.ok_or_else(|| format!("has no `{path}`"))?;
                r.candidates = parse_candidates(v)?;
            }
            f => {
                let s = match v {
                    Some(v) => text(v)
                        .ok_or_else(|| format!("has a non-text value at `{path}` for {f}"))
                        .map(Some)?,
                    None if f == "input" => None,
                    None if f == "id" => None,
                    None => return Err(format!("has no `{path}` (mapped to {f})")),
                };
                match f {
                    "id" => r.id = s.unwrap_or_default(),
                    "instruction" => r.instruction = s,
                    "input" => r.input = s.filter(|x| !x.is_empty()),
                    "output" => r.output = s,
                    _ => {}
                }
            }
        }
    }
    if r.instruction.is_none() && r.messages.is_empty() {
        return Err("has no instruction or messages (no mapping matched its fields)".to_string());
    }
    if r.instruction
        .as_deref()
        .is_some_and(|s| s.trim().is_empty())
    {
        return Err("has an empty instruction".to_string());
    }
    if r.id.is_empty() {
        r.id = format!("{step}-{}", row.line);
    }
    for (k, v) in &row.fields {
        if used.contains(&k.as_str()) || k == "id" {
            continue;
        }
        match v {
            Value::String(s) => {
                r.labels.insert(k.clone(), s.clone());
            }
            Value::Bool(b) => {
                r.labels.insert(k.clone(), b.to_string());
            }
            Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    r.scores.insert(k.clone(), f);
                }
            }
            // A list or object no record field holds is kept whole, as its JSON text,
            // rather than dropped.
            Value::Array(_) | Value::Object(_) => {
                r.labels.insert(k.clone(), v.to_string());
            }
            Value::Null => {}
        }
    }
    r.provenance = Provenance {
        step: step.to_string(),
        seeds: vec![r.id.clone()],
        ..Default::default()
    };
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: Value) -> Row {
        Row {
            line: 3,
            fields: v.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn self_instruct_seed_maps_first_instance() {
        let r = to_record(
            &row(serde_json::json!({"id":"s1","name":"n","instruction":"Add","instances":[{"input":"1 2","output":"3"}],"is_classification":false,"category":"math"})),
            &BTreeMap::new(),
            "seeds",
        )
        .unwrap();
        assert_eq!(r.id, "s1");
        assert_eq!(r.instruction.as_deref(), Some("Add"));
        assert_eq!(r.input.as_deref(), Some("1 2"));
        assert_eq!(r.output.as_deref(), Some("3"));
        assert_eq!(r.labels["category"], "math");
        assert_eq!(r.labels["is_classification"], "false");
        assert_eq!(r.provenance.seeds, vec!["s1".to_string()]);
    }

    #[test]
    fn dolly_and_sharegpt_shapes() {
        let r = to_record(
            &row(serde_json::json!({"instruction":"Q","context":"","response":"A","category":"open_qa"})),
            &BTreeMap::new(),
            "d",
        )
        .unwrap();
        assert_eq!(r.input, None);
        assert_eq!(r.output.as_deref(), Some("A"));
        assert_eq!(r.id, "d-3");
        let r = to_record(
            &row(serde_json::json!({"conversations":[{"from":"human","value":"hi"},{"from":"gpt","value":"hello"}]})),
            &BTreeMap::new(),
            "d",
        )
        .unwrap();
        assert_eq!(r.messages[1], Message::assistant("hello"));
    }

    #[test]
    fn reasoning_traces_load_from_turns_and_candidates_under_each_name() {
        let r = to_record(
            &row(serde_json::json!({
                "messages": [
                    {"role": "user", "content": "2+2?"},
                    {"role": "assistant", "content": "4", "thinking": "add them"}
                ],
                "candidates": [
                    {"content": "4", "reasoning_content": "count up"},
                    {"content": "5", "reasoning": ""},
                    "4, plainly"
                ]
            })),
            &BTreeMap::new(),
            "d",
        )
        .unwrap();
        assert_eq!(r.messages[1].reasoning.as_deref(), Some("add them"));
        let traces: Vec<Option<&str>> = r
            .candidates
            .iter()
            .map(|c| c.reasoning.as_deref())
            .collect();
        assert_eq!(traces, [Some("count up"), None, None]);
        assert_eq!(
            r.candidates[0].turn().reasoning.as_deref(),
            Some("count up")
        );
    }

    #[test]
    fn explicit_mapping_reports_missing_field() {
        let mut f = BTreeMap::new();
        f.insert("instruction".to_string(), "question".to_string());
        let e = to_record(&row(serde_json::json!({"q":"x"})), &f, "d").unwrap_err();
        assert!(e.contains("question"), "{e}");
    }
}
