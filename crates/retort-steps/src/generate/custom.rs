//! `generate`: the user's own prompt over any record fields, with a text or a typed
//! (JSON Schema) result written where the step says — curator's `prompt()`/`parse()`,
//! distilabel's TextGeneration/StructuredGeneration, DataDesigner's llm-text and
//! llm-structured columns, as one step kind.
//!
//! ```toml
//! [[step]]
//! id = "qa"
//! kind = "generate"
//! after = ["seeds"]
//! teacher = "big"
//! system = "You write exam questions."            # optional, a template too
//! prompt = "Write one question about: {{ instruction }}"   # or prompt_file = "x.jinja"
//! output = "json"                                 # or "text" (default)
//! schema = { type = "object", required = ["question", "answer"], properties = { question = { type = "string" }, answer = { type = "string" } } }
//! fields = { question = "instruction", answer = "output" }
//! ```
//!
//! Template variables: `id`, `instruction`, `input`, `output` (empty strings when unset),
//! `prompt` (the record's prompt text), `messages` (list of `{role, content}`), `labels`
//! and `scores` (maps), `candidates` (list of `{teacher, model, content, score}`),
//! `cluster`. An unknown variable is a compile error; a label a record lacks is that
//! record's `template` failure.
//!
//! Targets (`to` for text, the values of `fields` for JSON): `instruction`, `input`,
//! `output`, `labels.NAME`, `scores.NAME` (JSON numbers only), `assistant` (a new final
//! assistant turn, replacing one that was there) and `user` (a new user turn). A reply's
//! reasoning trace goes on the new assistant turn, or to `labels.reasoning` for the
//! other targets — never into a field that scores, judges, filters or dedup read.
//! `samples = k` writes k records per input (`<id>-s<i>` for k > 1). Calls go through
//! the call pool (continuous in-flight calls, failures as rows, cache, budget).
//!
//! Size: ~765 lines: the options of one step kind, their checks at compile time and its
//! call path; the typed-output and tool-call rules it uses live in `structured.rs` and
//! `tools.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Message, Record, ToolCall};
use retort_teacher::{ChatResponse, FinishReason};
use serde::Deserialize;
use serde_json::{json, Value};

use super::structured::{value_at, OutputSchema};
use super::tools::{ToolSet, ToolSource};
use crate::api::{Batch, MapStep, StepCtx, StepError};
use crate::gen_common::{self as gc, Outcome, Sampling};
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};
use crate::templates::Template;

/// Options of `kind = "generate"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateOptions {
    /// The teacher that answers.
    pub teacher: String,
    /// The prompt, a Jinja template written inline.
    pub prompt: Option<String>,
    /// The prompt, a `.jinja` file (relative to the pipeline file).
    pub prompt_file: Option<String>,
    /// A system prompt (a template too, over the same variables).
    pub system: Option<String>,
    /// `text` (default) or `json`.
    #[serde(default)]
    pub output: OutputKind,
    /// The JSON Schema of a `json` reply, inline.
    pub schema: Option<toml::Value>,
    /// The JSON Schema of a `json` reply, a `.json` file.
    pub schema_file: Option<String>,
    /// Where a text reply goes (default `output`); for `json` without `fields`, where the
    /// validated JSON text goes.
    pub to: Option<String>,
    /// JSON path in the reply → record field (`{ question = "instruction" }`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Replies per record (default 1).
    #[serde(default = "one")]
    pub samples: u32,
    /// Calls in flight (default 16).
    #[serde(default = "gc::default_concurrency")]
    pub concurrency: usize,
    /// Temperature (default 0.7; above 0 when `samples > 1`).
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// `max_tokens` per reply (default 1024).
    pub max_tokens: Option<u32>,
    /// Reasoning effort for reasoning models (`low`, `medium`, `high`).
    pub reasoning_effort: Option<String>,
    /// Budget of the reasoning trace in tokens (Anthropic extended thinking).
    pub max_reasoning_tokens: Option<u32>,
    /// Keep text replies cut at `max_tokens` (default false: a `truncated` failure).
    /// A cut JSON reply never validates.
    #[serde(default)]
    pub allow_truncated: bool,
    /// Functions the teacher may call: an array of OpenAI-format definitions, or
    /// `"record"` for each record's own `tools`. Calls are recorded on the new assistant
    /// turn (not executed) and checked against the function's `parameters`.
    pub tools: Option<toml::Value>,
    /// The definitions as a `.json` file (an array).
    pub tools_file: Option<String>,
    /// `auto` (the server's default), `required`, `none`, or a function's name.
    pub tool_choice: Option<String>,
}

/// The kind of reply `generate` asks for.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Free text.
    #[default]
    Text,
    /// A JSON value that validates against `schema`.
    Json,
}

fn one() -> u32 {
    1
}

/// Where a value goes in a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `instruction`.
    Instruction,
    /// `input`.
    Input,
    /// `output`.
    Output,
    /// `labels.NAME`.
    Label(String),
    /// `scores.NAME` (a number).
    Score(String),
    /// A new final assistant turn.
    Assistant,
    /// A new user turn.
    User,
}

impl Target {
    /// Parses a target name, or says which exist.
    pub fn parse(s: &str) -> Result<Target, String> {
        let named = |prefix: &str| {
            s.strip_prefix(prefix)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
        };
        Ok(match s {
            "instruction" => Target::Instruction,
            "input" => Target::Input,
            "output" => Target::Output,
            "assistant" => Target::Assistant,
            "user" => Target::User,
            _ => {
                if let Some(n) = named("labels.") {
                    Target::Label(n)
                } else if let Some(n) = named("scores.") {
                    Target::Score(n)
                } else {
                    return Err(format!(
                        "`{s}` is not a record field; use instruction, input, output, assistant, user, labels.NAME or scores.NAME"
                    ));
                }
            }
        })
    }
}

/// The top-level template variables a record provides.
const VARIABLES: &[&str] = &[
    "id",
    "instruction",
    "input",
    "output",
    "prompt",
    "messages",
    "labels",
    "scores",
    "candidates",
    "cluster",
];

/// Names minijinja itself provides, which `undeclared_variables` still lists.
const JINJA_GLOBALS: &[&str] = &["range", "dict", "namespace", "debug", "loop"];

/// The runnable step.
pub struct Generate {
    o: GenerateOptions,
    prompt: Arc<Template>,
    system: Option<Arc<Template>>,
    schema: Option<Arc<OutputSchema>>,
    /// Text target, or the target of the whole JSON text.
    to: Target,
    /// JSON path → target, for `json` replies.
    fields: Vec<(String, Target)>,
    sampling: Sampling,
    tools: Option<ToolSource>,
    tool_choice: Option<Value>,
}

/// Build `generate` from its options.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: GenerateOptions = parse_options(spec)?;
    let mut errors = vec![];
    let mut files = vec![];
    gc::check_teacher(ctx, "teacher", &o.teacher, &mut errors);
    let prompt = match (&o.prompt, &o.prompt_file) {
        (Some(_), Some(_)) => {
            errors.push("set either `prompt` or `prompt_file`, not both".into());
            None
        }
        (None, None) => {
            errors.push(
                "`prompt` is missing: write the prompt template inline (`prompt = \"… {{ instruction }} …\"`) or name a file (`prompt_file = \"prompts/x.jinja\"`)"
                    .into(),
            );
            None
        }
        (Some(src), None) => inline(&format!("{}.prompt", spec.id), src, "prompt", &mut errors),
        (None, Some(f)) => gc::load_template(f, "prompt_file", ctx, &mut files, &mut errors),
    };
    let system = o
        .system
        .as_deref()
        .and_then(|s| inline(&format!("{}.system", spec.id), s, "system", &mut errors));
    for (option, t) in [("prompt", &prompt), ("system", &system)] {
        if let Some(t) = t {
            check_variables(option, t, &mut errors);
        }
    }
    let schema = match o.output {
        OutputKind::Text => {
            if o.schema.is_some() || o.schema_file.is_some() {
                errors.push("`schema` needs `output = \"json\"`".into());
            }
            if !o.fields.is_empty() {
                errors.push("`fields` maps parts of a JSON reply; set `output = \"json\"` (and a `schema`), or use `to` for a text reply".into());
            }
            None
        }
        OutputKind::Json => {
            match OutputSchema::load(o.schema.as_ref(), o.schema_file.as_deref(), &ctx.base_dir) {
                Ok(s) => {
                    files.extend(s.file.clone());
                    Some(Arc::new(s))
                }
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        }
    };
    let tools = match ToolSource::load(o.tools.as_ref(), o.tools_file.as_deref(), &ctx.base_dir) {
        Ok((t, file)) => {
            files.extend(file);
            t
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let tool_choice = tool_choice(&o, tools.as_ref(), &mut errors);
    if tools.is_some() {
        if o.output == OutputKind::Json {
            errors.push("`tools` with `output = \"json\"`: a tool-calling turn is text and calls; drop one of them".into());
        }
        if o.to.as_deref().is_some_and(|t| t != "assistant") {
            errors.push(format!(
                "`tools`: the calls go on a new assistant turn, so `to` must be \"assistant\" (or left out), not {:?}",
                o.to.as_deref().unwrap_or_default()
            ));
        }
    }
    let default_to = if tools.is_some() {
        Target::Assistant
    } else {
        Target::Output
    };
    let to = match o.to.as_deref().map(Target::parse).unwrap_or(Ok(default_to)) {
        Ok(Target::Score(_)) => {
            errors.push(
                "`to`: a reply is text; a score comes from a JSON reply's number through `fields`"
                    .into(),
            );
            Target::Output
        }
        Ok(t) => t,
        Err(e) => {
            errors.push(format!("`to`: {e}"));
            Target::Output
        }
    };
    if o.to.is_some() && !o.fields.is_empty() {
        errors.push(
            "set either `to` (the whole reply) or `fields` (parts of a JSON reply), not both"
                .into(),
        );
    }
    let mut fields = vec![];
    let mut seen = BTreeSet::new();
    for (path, target) in &o.fields {
        let t = match Target::parse(target) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("`fields.{path}`: {e}"));
                continue;
            }
        };
        if !seen.insert(format!("{t:?}")) {
            errors.push(format!("`fields`: two paths write `{target}`"));
        }
        if let Some(s) = &schema {
            match s.type_at(path) {
                Ok(types) => {
                    let numeric = types.iter().any(|t| t == "number" || t == "integer");
                    let text = types.iter().any(|t| t == "string");
                    if matches!(t, Target::Score(_)) && !numeric {
                        errors.push(format!(
                            "`fields.{path}` goes to `{target}`, a score, but the schema gives it type {}; declare it `number` or `integer`",
                            shown(&types)
                        ));
                    } else if !matches!(t, Target::Score(_)) && !text {
                        errors.push(format!(
                            "`fields.{path}` goes to `{target}`, a text field, but the schema gives it type {}; declare it `string`",
                            shown(&types)
                        ));
                    }
                }
                Err(e) => errors.push(format!("`fields`: {e}")),
            }
        }
        fields.push((path.clone(), t));
    }
    let temperature = gc::check_samples(o.samples, o.temperature, o.concurrency, &mut errors);
    let (Some(prompt), true) = (prompt, errors.is_empty()) else {
        return Err(errors);
    };
    let sampling = Sampling {
        temperature: Some(temperature),
        top_p: o.top_p,
        max_tokens: Some(o.max_tokens.unwrap_or(1024)),
    };
    let estimate = gc::estimate(
        &o.teacher,
        o.samples as f64,
        0,
        gc::prompt_tokens_estimate(&prompt, 200),
        sampling,
    );
    let writes = match (&schema, fields.is_empty()) {
        (Some(_), false) => format!(
            "a JSON reply per record (schema-checked) into {}",
            o.fields.values().cloned().collect::<Vec<_>>().join(", ")
        ),
        (Some(_), true) => format!(
            "a JSON reply per record (schema-checked) into {}",
            o.to.as_deref().unwrap_or("output")
        ),
        (None, _) => format!(
            "a reply per record into {}",
            o.to.as_deref().unwrap_or("output")
        ),
    };
    let step = Generate {
        o,
        prompt,
        system,
        schema,
        to,
        fields,
        sampling,
        tools,
        tool_choice,
    };
    let mut built = Built::new(Arc::new(step), writes);
    built.files = files;
    built.estimates = vec![estimate];
    Ok(built)
}

/// `tool_choice` on the wire: the keywords as strings, a name as OpenAI's function form
/// (checked against fixed tools now, against a record's own when it is called).
fn tool_choice(
    o: &GenerateOptions,
    tools: Option<&ToolSource>,
    errors: &mut Vec<String>,
) -> Option<Value> {
    let choice = o.tool_choice.as_deref()?;
    if tools.is_none() {
        errors.push("`tool_choice` needs `tools`".into());
        return None;
    }
    if matches!(choice, "auto" | "required" | "none") {
        return Some(json!(choice));
    }
    if let Some(ToolSource::Fixed(set)) = tools {
        let names: Vec<&str> = set
            .definitions
            .iter()
            .filter_map(|d| d.pointer("/function/name").and_then(|n| n.as_str()))
            .collect();
        if !names.contains(&choice) {
            errors.push(format!(
                "`tool_choice = {choice:?}` is neither auto, required, none nor an offered tool ({})",
                names.join(", ")
            ));
        }
    }
    Some(json!({"type": "function", "function": {"name": choice}}))
}

fn shown(types: &[String]) -> String {
    if types.is_empty() {
        "(none)".into()
    } else {
        types.join(" | ")
    }
}

fn inline(name: &str, src: &str, option: &str, errors: &mut Vec<String>) -> Option<Arc<Template>> {
    match Template::inline(name, src) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            errors.push(format!("`{option}`: {e}"));
            None
        }
    }
}

fn check_variables(option: &str, t: &Template, errors: &mut Vec<String>) {
    match t.variables() {
        Ok(vars) => {
            for v in vars {
                if !VARIABLES.contains(&v.as_str()) && !JINJA_GLOBALS.contains(&v.as_str()) {
                    let hint = crate::spec::closest(&v, VARIABLES)
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    errors.push(format!(
                        "`{option}` uses `{v}`, which records do not have{hint}; the variables are: {}",
                        VARIABLES.join(", ")
                    ));
                }
            }
        }
        Err(e) => errors.push(format!("`{option}`: {e}")),
    }
}

/// A record as template variables.
fn variables(r: &Record) -> Value {
    let messages: Vec<Value> = r
        .messages
        .iter()
        .map(|m| json!({"role": m.role, "content": m.content}))
        .collect();
    let candidates: Vec<Value> = r
        .candidates
        .iter()
        .map(|c| json!({"teacher": c.teacher, "model": c.model, "content": c.content, "score": c.score}))
        .collect();
    json!({
        "id": r.id,
        "instruction": r.instruction.clone().unwrap_or_default(),
        "input": r.input.clone().unwrap_or_default(),
        "output": r.output.clone().unwrap_or_default(),
        "prompt": r.prompt_text(),
        "messages": messages,
        "labels": r.labels,
        "scores": r.scores,
        "candidates": candidates,
        "cluster": r.cluster,
    })
}

/// Writes one text value to a target; `reasoning` rides on a new assistant turn.
fn put_text(rec: &mut Record, target: &Target, text: String, reasoning: Option<String>) {
    put_turn(rec, target, text, reasoning, Vec::new())
}

/// [`put_text`] with the tool calls of a new assistant turn.
fn put_turn(
    rec: &mut Record,
    target: &Target,
    text: String,
    reasoning: Option<String>,
    tool_calls: Vec<ToolCall>,
) {
    match target {
        Target::Instruction => rec.instruction = Some(text),
        Target::Input => rec.input = Some(text),
        Target::Output => rec.output = Some(text),
        Target::Label(n) => {
            rec.labels.insert(n.clone(), text);
        }
        Target::Score(_) => unreachable!("build refuses text into a score"),
        Target::Assistant => {
            rec.messages = rec.prompt_messages();
            let mut m = Message::assistant(text);
            m.reasoning = reasoning;
            m.tool_calls = tool_calls;
            rec.messages.push(m);
        }
        Target::User => {
            rec.messages = rec.chat();
            rec.messages.push(Message::user(text));
        }
    }
}

impl Generate {
    /// The tools offered for `r` (`None` when the step offers none); a record without
    /// valid tools of its own under `tools = "record"` is an error for that record.
    /// `seen` holds the tool sets of the batch so far by their JSON text: function-calling
    /// datasets repeat a few tool sets over many rows, and each set compiles one
    /// validator per function.
    fn tools_for(
        &self,
        r: &Record,
        seen: &mut HashMap<String, Arc<ToolSet>>,
    ) -> Result<Option<Arc<ToolSet>>, String> {
        match &self.tools {
            None => Ok(None),
            Some(ToolSource::Fixed(set)) => Ok(Some(set.clone())),
            Some(ToolSource::Record) => {
                if r.tools.is_empty() {
                    return Err("`tools = \"record\"`, but this record has no tools".into());
                }
                let key = Value::Array(r.tools.clone()).to_string();
                if let Some(t) = seen.get(&key) {
                    return Ok(Some(t.clone()));
                }
                let t = ToolSet::new(Value::Array(r.tools.clone()))
                    .map(Arc::new)
                    .map_err(|e| format!("the record's tools: {e}"))?;
                seen.insert(key, t.clone());
                Ok(Some(t))
            }
        }
    }

    fn request_messages(&self, r: &Record) -> Result<Vec<Message>, String> {
        let vars = variables(r);
        let mut m = vec![];
        if let Some(s) = &self.system {
            let s = s.render(&vars)?;
            if !s.trim().is_empty() {
                m.push(Message::system(s.trim()));
            }
        }
        let p = self.prompt.render(&vars)?;
        if p.trim().is_empty() {
            return Err("the prompt rendered empty for this record".into());
        }
        m.push(Message::user(p.trim()));
        Ok(m)
    }

    /// The record a reply makes, or the failure class and message.
    fn apply(
        &self,
        r: &Record,
        a: ChatResponse,
        tools: Option<&ToolSet>,
    ) -> Result<Record, (&'static str, String, String)> {
        if a.finish_reason == FinishReason::Length
            && (self.schema.is_some() || !self.o.allow_truncated)
        {
            return Err((
                "truncated",
                "the reply stopped at max_tokens".into(),
                a.content,
            ));
        }
        let text = a.content.trim().to_string();
        if text.is_empty() && a.tool_calls.is_empty() {
            return Err((
                "empty",
                "the teacher returned an empty reply".into(),
                a.content,
            ));
        }
        let mut rec = r.clone();
        let reasoning = a.reasoning.filter(|t| !t.is_empty());
        if !a.tool_calls.is_empty() {
            let Some(tools) = tools else {
                return Err((
                    "tool_call",
                    "the teacher called tools although none were offered".into(),
                    serde_json::to_string(&a.tool_calls).unwrap_or_default(),
                ));
            };
            tools.check_calls(&a.tool_calls).map_err(|e| {
                (
                    "tool_call",
                    e,
                    serde_json::to_string(&a.tool_calls).unwrap_or_default(),
                )
            })?;
        }
        if let Some(t) = tools {
            // The definitions are part of the example: a model trained on it must see
            // what it could have called.
            rec.tools = t.definitions.clone();
        }
        let assistant_written = match &self.schema {
            None if !a.tool_calls.is_empty() => {
                put_turn(&mut rec, &self.to, text, reasoning.clone(), a.tool_calls);
                true
            }
            None => {
                put_text(&mut rec, &self.to, text, reasoning.clone());
                self.to == Target::Assistant
            }
            Some(schema) => {
                let v = schema
                    .parse_reply(&text)
                    .map_err(|e| ("schema", e, a.content.clone()))?;
                if self.fields.is_empty() {
                    put_text(&mut rec, &self.to, v.to_string(), reasoning.clone());
                    self.to == Target::Assistant
                } else {
                    let mut assistant = false;
                    for (path, target) in &self.fields {
                        let Some(x) = value_at(&v, path) else {
                            continue;
                        };
                        match (target, x) {
                            (Target::Score(n), Value::Number(num)) => {
                                let f = num.as_f64().ok_or_else(|| {
                                    (
                                        "schema",
                                        format!("`{path}` is not a finite number"),
                                        a.content.clone(),
                                    )
                                })?;
                                rec.scores.insert(n.clone(), f);
                            }
                            (Target::Score(_), other) => {
                                return Err((
                                    "schema",
                                    format!("`{path}` is {other}, not a number"),
                                    a.content.clone(),
                                ))
                            }
                            (t, Value::String(s)) => {
                                assistant |= *t == Target::Assistant;
                                put_text(&mut rec, t, s.clone(), reasoning.clone());
                            }
                            (_, other) => {
                                return Err((
                                    "schema",
                                    format!("`{path}` is {other}, not a string"),
                                    a.content.clone(),
                                ))
                            }
                        }
                    }
                    assistant
                }
            }
        };
        if !assistant_written {
            if let Some(t) = reasoning {
                rec.labels.insert("reasoning".into(), t);
            }
        }
        Ok(rec)
    }
}

/// One call to make: (record index, sample).
type Job = (usize, u32);

#[async_trait]
impl MapStep for Generate {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let step = ctx.step_id.clone();
        let mut out = Outcome::default();
        let mut prompts: Vec<Option<Vec<Message>>> = Vec::with_capacity(batch.len());
        let mut offered: Vec<Option<Arc<ToolSet>>> = Vec::with_capacity(batch.len());
        let mut jobs: Vec<Job> = vec![];
        let mut tool_sets = HashMap::new();
        for (i, r) in batch.iter().enumerate() {
            let prepared = self
                .tools_for(r, &mut tool_sets)
                .map_err(|e| ("tools", e))
                .and_then(|t| Ok((self.request_messages(r).map_err(|e| ("template", e))?, t)));
            match prepared {
                Ok((m, t)) => {
                    jobs.extend((0..self.o.samples).map(|s| (i, s)));
                    prompts.push(Some(m));
                    offered.push(t);
                }
                Err((class, e)) => {
                    out.fail(
                        &step,
                        &r.id,
                        class,
                        e,
                        serde_json::to_string(r).unwrap_or_default(),
                    );
                    prompts.push(None);
                    offered.push(None);
                }
            }
        }
        let teacher = ctx.teacher(&self.o.teacher)?;
        let k = self.o.samples;
        let rid = |i: usize, s: u32| {
            if k > 1 {
                format!("{}-s{s}", batch[i].id)
            } else {
                batch[i].id.clone()
            }
        };
        let answers = crate::calls::run_ordered(jobs, self.o.concurrency, |(i, s)| {
            let messages = prompts[i].clone().expect("jobs only for rendered prompts");
            let teacher = teacher.clone();
            let id = rid(i, s);
            let seed = gc::derive_seed(ctx.seed, &[gc::str_seed(&batch[i].id), s as u64]);
            let tools = offered[i].clone();
            async move {
                let mut req = self.sampling.request(messages, seed, s);
                req.response_format = self.schema.as_ref().map(|sc| sc.schema.clone());
                req.reasoning_effort = self.o.reasoning_effort.clone();
                req.max_reasoning_tokens = self.o.max_reasoning_tokens;
                if let Some(t) = &tools {
                    req.tools = t.definitions.clone();
                    req.tool_choice = self.tool_choice.clone();
                }
                let res = crate::calls::chat(ctx, teacher.as_ref(), req, &id).await?;
                Ok(((i, s), res))
            }
        })
        .await?;
        for ((i, s), res) in answers {
            let r = &batch[i];
            match res {
                Err(mut f) => {
                    f.raw = prompts[i]
                        .as_ref()
                        .and_then(|m| m.last())
                        .map(|m| m.content.clone())
                        .unwrap_or_default();
                    out.failures.push(f);
                }
                Ok(a) => match self.apply(r, a, offered[i].as_deref()) {
                    Ok(mut rec) => {
                        rec.id = rid(i, s);
                        rec.provenance.seeds = gc::root_seeds(r);
                        rec.provenance.parents = vec![r.id.clone()];
                        rec.provenance.step = step.clone();
                        rec.provenance.teacher = Some(self.o.teacher.clone());
                        rec.provenance.template = Some(self.prompt.name.clone());
                        out.records.push(rec);
                    }
                    Err((class, message, raw)) => out.fail(&step, &rid(i, s), class, message, raw),
                },
            }
        }
        Ok(out.into_batch())
    }
}

crate::call_step!(Generate, |s| s.o.concurrency);
