//! What an export step may ask of a format beyond its own columns: which record fields
//! to carry as plain columns (`keep_columns`), whether to write `id`, how to write an
//! assistant turn's reasoning trace, and whether to write a LLaMA-Factory
//! `dataset_info.json` entry. Every rule about which option fits which format is here,
//! in [`ExportFormat::check`], so the step's compile check and the exporter agree.

use std::borrow::Cow;

use retort_core::{Message, Record};

use super::columns::{Cell, Column, Kind, ToolParts, Turn};
use super::ExportFormat;

/// Options of an export beyond its format; [`Default`] is what a bare
/// `format = "…"` writes.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportOptions {
    /// Write the `id` column (for formats that have one). Default true.
    pub include_id: bool,
    /// Record fields written as plain top-level columns after the format's own.
    pub keep_columns: Vec<KeepColumn>,
    /// How reasoning traces are written; `None` is the format's default (see
    /// [`Reasoning`]).
    pub reasoning: Option<Reasoning>,
    /// Write a LLaMA-Factory `dataset_info.json` entry next to the file; `None` is the
    /// format's default (on for `alpaca_ranking` only).
    pub dataset_info: Option<bool>,
    /// Write tool definitions (a `tools` column) and tool calls/results on the turns.
    /// Default false: a record that has them is then refused, never stripped.
    pub tools: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            include_id: true,
            keep_columns: Vec::new(),
            reasoning: None,
            dataset_info: None,
            tools: false,
        }
    }
}

/// How an export writes an assistant turn's reasoning trace ([`Message::reasoning`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reasoning {
    /// A nullable `reasoning_content` field on every turn (Qwen3 / DeepSeek-R1 chat
    /// templates, vLLM's reasoning parsers). The default of message-list formats.
    ReasoningContent,
    /// A nullable `thinking` field on every turn (the HF gpt-oss template and the
    /// `HuggingFaceH4/Multilingual-Thinking` style of dataset).
    Thinking,
    /// `<think>\n…\n</think>\n\n` prepended to the turn's content.
    Inline,
    /// Not written.
    Drop,
}

impl Reasoning {
    /// Every mode, in documentation order.
    pub const ALL: [Reasoning; 4] = [
        Reasoning::ReasoningContent,
        Reasoning::Thinking,
        Reasoning::Inline,
        Reasoning::Drop,
    ];

    /// The name used in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            Reasoning::ReasoningContent => "reasoning_content",
            Reasoning::Thinking => "thinking",
            Reasoning::Inline => "inline",
            Reasoning::Drop => "drop",
        }
    }

    /// Parse a mode name; the error lists the modes.
    pub fn from_name(name: &str) -> Result<Reasoning, String> {
        Reasoning::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown reasoning mode `{name}`; use one of: {}",
                    Reasoning::ALL.map(Reasoning::name).join(", ")
                )
            })
    }

    /// The struct field this mode writes, if it writes one.
    pub(crate) fn field(self) -> Option<&'static str> {
        match self {
            Reasoning::ReasoningContent => Some("reasoning_content"),
            Reasoning::Thinking => Some("thinking"),
            Reasoning::Inline | Reasoning::Drop => None,
        }
    }
}

/// What an exporter does with a turn's reasoning trace: a mode, or (for a string format
/// left at its default) refusing a record whose written turns carry a trace, so nothing
/// is lost without the pipeline saying so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReasoningRule {
    Mode(Reasoning),
    Refuse,
}

/// How an exporter writes one chat turn: its reasoning rule, and whether the format's
/// turns carry tool calls (`tools = true`). Without tools, a record with tool calls, tool
/// results or tool definitions is refused with the option that would keep them: the
/// calls are the training signal, never silently stripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TurnRule {
    pub(crate) reasoning: ReasoningRule,
    pub(crate) tools: bool,
}

impl TurnRule {
    /// The nullable reasoning field of turn structs, if any.
    pub(crate) fn field(self) -> Option<&'static str> {
        match self.reasoning {
            ReasoningRule::Mode(m) => m.field(),
            ReasoningRule::Refuse => None,
        }
    }

    /// A turn as written under this rule; `who` is the role as the format spells it.
    pub(crate) fn turn<'a>(
        self,
        who: Cow<'a, str>,
        m: Cow<'a, Message>,
    ) -> Result<Turn<'a>, String> {
        if !self.tools && (!m.tool_calls.is_empty() || m.tool_call_id.is_some()) {
            return Err(format!(
                "a `{who}` turn {}; set `tools = true` on the export (formats messages, sharegpt, prompt_completion_conversational, prompt_only_conversational write them)",
                if m.tool_calls.is_empty() { "is a tool result" } else { "calls tools" }
            ));
        }
        let (text, reasoning, tool) = match m {
            Cow::Borrowed(m) => (
                Cow::Borrowed(m.content.as_str()),
                m.reasoning.as_deref().map(Cow::Borrowed),
                ToolParts {
                    calls: Cow::Borrowed(m.tool_calls.as_slice()),
                    call_id: m.tool_call_id.as_deref().map(Cow::Borrowed),
                    name: m.name.as_deref().map(Cow::Borrowed),
                },
            ),
            Cow::Owned(m) => (
                Cow::Owned(m.content),
                m.reasoning.map(Cow::Owned),
                ToolParts {
                    calls: Cow::Owned(m.tool_calls),
                    call_id: m.tool_call_id.map(Cow::Owned),
                    name: m.name.map(Cow::Owned),
                },
            ),
        };
        let turn = |text, reasoning| Turn {
            who,
            text,
            reasoning,
            tool,
        };
        let Some(r) = reasoning else {
            return Ok(turn(text, None));
        };
        match self.reasoning {
            ReasoningRule::Mode(Reasoning::ReasoningContent | Reasoning::Thinking) => {
                Ok(turn(text, Some(r)))
            }
            // The spacing Qwen3's and DeepSeek-R1's templates render, so a tokenizer
            // that re-parses `<think>` splits it back exactly.
            ReasoningRule::Mode(Reasoning::Inline) => Ok(turn(
                Cow::Owned(format!("<think>\n{r}\n</think>\n\n{text}")),
                None,
            )),
            ReasoningRule::Mode(Reasoning::Drop) => Ok(turn(text, None)),
            ReasoningRule::Refuse => Err(format!(
                "a `{}` turn has a reasoning trace and this format holds plain strings; set `reasoning = \"inline\"` (as <think>…</think>) or `reasoning = \"drop\"` on the export, or use a conversational format",
                turn(text, None).who
            )),
        }
    }

    /// A message's text as a plain string under this rule.
    pub(crate) fn text<'a>(self, m: &'a Message) -> Result<Cow<'a, str>, String> {
        Ok(self
            .turn(Cow::Borrowed(m.role.as_str()), Cow::Borrowed(m))?
            .text)
    }

    /// Refuse a record whose tool definitions this rule would not write.
    pub(crate) fn check_tools(self, r: &Record) -> Result<(), String> {
        if !self.tools && !r.tools.is_empty() {
            return Err(format!(
                "the record offers {} tool definition(s); set `tools = true` on the export (formats messages, sharegpt, prompt_completion_conversational, prompt_only_conversational write them)",
                r.tools.len()
            ));
        }
        Ok(())
    }
}

/// Which side of a record a row's answer comes from; decides `model` in kept columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The record's response (SFT-shaped rows).
    Response,
    /// The pair's chosen answer (and paired rows).
    Chosen,
    /// The pair's rejected answer.
    Rejected,
    /// No answer (prompt-only rows).
    None,
}

/// A record field carried into an export as a plain top-level column (`keep_columns`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeepColumn {
    /// `scores[name]` as a nullable double.
    Score(String),
    /// `labels[name]` as a nullable string.
    Label(String),
    /// `cluster` as a nullable uint32.
    Cluster,
    /// Provenance `step`.
    Step,
    /// Provenance `teacher`.
    Teacher,
    /// Provenance `template`.
    Template,
    /// The model that wrote the row's answer, see `docs/formats.md`.
    Model,
}

/// Score names the built-in steps write (`score`, `judge` aspects); any other needs the
/// `scores.` prefix, since the type of a column must be known before any record is seen.
const KNOWN_SCORES: [&str; 2] = ["quality", "difficulty"];
/// Label names the built-in steps write (heuristics, `tiers`, `cluster`, taxonomies).
const KNOWN_LABELS: [&str; 4] = ["language", "category", "tier", "cluster_label"];
const FIELDS: [&str; 5] = ["cluster", "step", "teacher", "template", "model"];

impl KeepColumn {
    /// Parse a `keep_columns` entry: `scores.NAME`, `labels.NAME`, a record field
    /// (`cluster`, `step`, `teacher`, `template`, `model`) or a built-in score/label
    /// name. The error lists what is known.
    pub fn parse(name: &str) -> Result<KeepColumn, String> {
        if let Some(s) = name.strip_prefix("scores.") {
            return nonempty(s, name).map(|s| KeepColumn::Score(s.into()));
        }
        if let Some(s) = name.strip_prefix("labels.") {
            return nonempty(s, name).map(|s| KeepColumn::Label(s.into()));
        }
        Ok(match name {
            "cluster" => KeepColumn::Cluster,
            "step" => KeepColumn::Step,
            "teacher" => KeepColumn::Teacher,
            "template" => KeepColumn::Template,
            "model" => KeepColumn::Model,
            n if KNOWN_SCORES.contains(&n) => KeepColumn::Score(n.into()),
            n if KNOWN_LABELS.contains(&n) => KeepColumn::Label(n.into()),
            n => {
                return Err(format!(
                    "keep_columns: unknown column `{n}`; known are the fields {}, the scores {} and the labels {}; for a score or label another step or the loaded file adds, write `scores.{n}` (a number) or `labels.{n}` (a string)",
                    FIELDS.join(", "),
                    KNOWN_SCORES.join(", "),
                    KNOWN_LABELS.join(", ")
                ))
            }
        })
    }

    /// The output column's name (without a `scores.`/`labels.` prefix).
    pub fn column_name(&self) -> &str {
        match self {
            KeepColumn::Score(n) | KeepColumn::Label(n) => n,
            KeepColumn::Cluster => "cluster",
            KeepColumn::Step => "step",
            KeepColumn::Teacher => "teacher",
            KeepColumn::Template => "template",
            KeepColumn::Model => "model",
        }
    }

    pub(crate) fn column(&self) -> Column {
        let kind = match self {
            KeepColumn::Score(_) => Kind::OptF64,
            KeepColumn::Cluster => Kind::OptU32,
            _ => Kind::OptStr,
        };
        Column {
            name: Cow::Owned(self.column_name().to_string()),
            kind,
        }
    }

    pub(crate) fn cell<'a>(&self, r: &'a Record, answer: Answer) -> Cell<'a> {
        match self {
            KeepColumn::Score(n) => Cell::Num(r.scores.get(n).copied()),
            KeepColumn::Label(n) => Cell::opt_str(r.labels.get(n).map(String::as_str)),
            KeepColumn::Cluster => Cell::U32(r.cluster),
            KeepColumn::Step => Cell::str(&r.provenance.step),
            KeepColumn::Teacher => Cell::opt_str(r.provenance.teacher.as_deref()),
            KeepColumn::Template => Cell::opt_str(r.provenance.template.as_deref()),
            KeepColumn::Model => Cell::opt_str(answer_model(r, answer)),
        }
    }
}

fn nonempty<'a>(s: &'a str, whole: &str) -> Result<&'a str, String> {
    if s.is_empty() {
        Err(format!(
            "keep_columns: `{whole}` names no column; write e.g. `{whole}quality`"
        ))
    } else {
        Ok(s)
    }
}

/// The model behind a row's answer: the pair's side, or the candidate whose text is the
/// record's response (what `respond` with one teacher writes).
fn answer_model(r: &Record, answer: Answer) -> Option<&str> {
    match answer {
        Answer::Chosen => r.pair.as_ref().map(|p| p.chosen_model.as_str()),
        Answer::Rejected => r.pair.as_ref().map(|p| p.rejected_model.as_str()),
        Answer::Response => {
            let response = r.response_text()?;
            r.candidates
                .iter()
                .find(|c| c.content == response)
                .map(|c| c.model.as_str())
        }
        Answer::None => None,
    }
}

impl ExportFormat {
    /// Every problem with `o` for this format, each naming the option and what to do;
    /// empty when the options fit. [`super::Exporter::create_with`] refuses options that
    /// do not fit, so a pipeline should call this when it is compiled.
    pub fn check(self, o: &ExportOptions) -> Vec<String> {
        let mut errs = Vec::new();
        let name = self.name();
        if self == ExportFormat::Records {
            if !o.keep_columns.is_empty() {
                errs.push("keep_columns: the `records` format already holds every field; remove keep_columns".into());
            }
            if !o.include_id {
                errs.push("include_id = false: the `records` format always holds `id` (retort reads it back); remove include_id".into());
            }
        } else if !o.include_id && !self.has_id() {
            errs.push(format!(
                "include_id = false: the `{name}` format has no `id` column; remove include_id"
            ));
        }
        if let Some(mode) = o.reasoning {
            if !self.writes_turns() && mode.field().is_some() {
                errs.push(format!(
                    "reasoning = \"{}\": `{name}` holds plain strings, so there is no turn to put a `{}` field on; use \"inline\" or \"drop\", or a conversational format",
                    mode.name(),
                    mode.field().unwrap_or_default()
                ));
            }
            if self == ExportFormat::Records {
                errs.push("reasoning: the `records` format keeps reasoning in its own field; remove the option".into());
            }
        }
        if o.tools && !self.writes_tools() {
            errs.push(format!(
                "tools = true: `{name}` cannot hold tool calls; use one of {}",
                ExportFormat::ALL
                    .into_iter()
                    .filter(|f| f.writes_tools())
                    .map(ExportFormat::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if o.dataset_info == Some(true) && !self.has_dataset_info() {
            errs.push(format!(
                "dataset_info = true: LLaMA-Factory has no entry for `{name}`; it is written for {}",
                ExportFormat::ALL
                    .into_iter()
                    .filter(|f| f.has_dataset_info())
                    .map(ExportFormat::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if self != ExportFormat::Records {
            let own = self.own_columns(self.turn_rule(o));
            let mut seen: Vec<&str> = own.iter().map(|c| c.name.as_ref()).collect();
            if self.has_id() && o.include_id {
                seen.push("id");
            }
            for k in &o.keep_columns {
                let n = k.column_name();
                if seen.contains(&n) {
                    errs.push(format!(
                        "keep_columns: `{n}` is already a column of `{name}` (columns: {}); remove it from keep_columns",
                        seen.join(", ")
                    ));
                } else {
                    seen.push(n);
                }
            }
        }
        errs
    }

    /// The turn rule for these options.
    pub(crate) fn turn_rule(self, o: &ExportOptions) -> TurnRule {
        TurnRule {
            reasoning: match o.reasoning {
                Some(m) => ReasoningRule::Mode(m),
                None if self.writes_turns() => ReasoningRule::Mode(Reasoning::ReasoningContent),
                None => ReasoningRule::Refuse,
            },
            tools: o.tools && self.writes_tools(),
        }
    }

    /// Whether the format can write tool definitions and tool calls (`tools = true`).
    pub fn writes_tools(self) -> bool {
        matches!(
            self,
            ExportFormat::Messages
                | ExportFormat::ShareGpt
                | ExportFormat::PromptCompletionConversational
                | ExportFormat::PromptOnlyConversational
        )
    }

    /// Whether a dataset_info.json entry is written with these options.
    pub(crate) fn wants_dataset_info(self, o: &ExportOptions) -> bool {
        o.dataset_info
            .unwrap_or(self == ExportFormat::AlpacaRanking)
    }
}
