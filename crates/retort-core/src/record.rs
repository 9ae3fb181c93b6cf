use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One chat turn. `role` is `system`, `user`, `assistant` or `tool` (free text is kept
/// as given, so datasets with other roles survive a round trip).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    /// The answer itself: what scores, judges, filters and dedup read. Empty for an
    /// assistant turn that only calls tools.
    pub content: String,
    /// An assistant turn's reasoning trace, kept apart from `content` so nothing that
    /// grades the answer sees it (`reasoning_content`, `<think>…</think>`, Anthropic
    /// `thinking`, all land here). Exports choose how to write it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The function calls an assistant turn makes (OpenAI `tool_calls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// On a `tool` turn (a function's result): the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// On a `tool` turn: the name of the function whose result this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One function call an assistant turn makes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id (`call_…`), which the `tool` turn answering it repeats; `None` when
    /// the source had none (ShareGPT-with-tools rows carry no ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function's name.
    pub name: String,
    /// The arguments as JSON text, exactly as the model wrote them (the OpenAI wire
    /// form). Kept as text so a record never silently changes what the model said;
    /// steps that need them parsed check them where they are made.
    pub arguments: String,
}

impl ToolCall {
    /// The arguments of a call as JSON text, from the value a file or an endpoint gave:
    /// a JSON string is kept as written (OpenAI), an object is written out (Ollama and
    /// some datasets send objects), none or `null` is `{}`. Anything else is `None`: the
    /// caller decides whether that is an error.
    pub fn arguments_text(v: Option<&serde_json::Value>) -> Option<String> {
        match v {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(v @ serde_json::Value::Object(_)) => Some(v.to_string()),
            None | Some(serde_json::Value::Null) => Some("{}".to_string()),
            Some(_) => None,
        }
    }
}

impl Message {
    /// A message with the given role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            ..Default::default()
        }
    }
    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
}

/// One answer to a record's prompt, produced by a teacher (the `respond` step) and
/// optionally rated by a judge (the `judge` step).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Teacher name from the pipeline file.
    pub teacher: String,
    /// Model id the teacher reported.
    pub model: String,
    /// Sample index when a teacher answers k times.
    pub sample: u32,
    /// The answer text: what judges, pairing and dedup read.
    pub content: String,
    /// The reasoning trace the teacher sent beside the answer (never part of `content`);
    /// it rides on the assistant message when the answer becomes a chosen/rejected side
    /// or the record's output turn, where exports decide how to write it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// Judge score, once judged.
    pub score: Option<f64>,
    /// Judge rationale, once judged.
    pub rationale: Option<String>,
}

impl Candidate {
    /// This answer as an assistant turn, its reasoning trace beside the content.
    pub fn turn(&self) -> Message {
        Message {
            reasoning: self.reasoning.clone(),
            ..Message::assistant(self.content.clone())
        }
    }
}

/// A preference pair: the record's `messages` are the prompt, these are the two answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    pub chosen: Vec<Message>,
    pub rejected: Vec<Message>,
    pub chosen_model: String,
    pub rejected_model: String,
    pub chosen_score: f64,
    pub rejected_score: f64,
    pub margin: f64,
    pub rationale: Option<String>,
}

/// Where a record came from: which step and teacher made it, with which template, from
/// which parent records and seeds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Id of the step that produced the record.
    pub step: String,
    /// Teacher name, for records a teacher wrote.
    pub teacher: Option<String>,
    /// Template name or path, for records made from a prompt template.
    pub template: Option<String>,
    /// Ids of the records this one was derived from (empty for loaded seeds).
    pub parents: Vec<String>,
    /// Ids of the seed records at the root of the derivation.
    pub seeds: Vec<String>,
}

/// The one record type that flows between steps.
///
/// A record is chat-shaped (`messages`) and/or instruction-shaped
/// (`instruction`/`input`/`output`); the views convert between the two. Scores, labels,
/// candidates, a preference pair and an embedding are filled in by later steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Stable id, unique within a step's output.
    pub id: String,
    pub instruction: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    /// Chat turns. For a preference pair these are the prompt turns.
    pub messages: Vec<Message>,
    /// The functions the conversation may call: OpenAI-format tool definitions
    /// (`{"type": "function", "function": {"name", "description", "parameters"}}`), as
    /// loaded or as a `generate` step offered them. Empty for records without tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<serde_json::Value>,
    /// Candidate answers (from `respond`, rated by `judge`).
    pub candidates: Vec<Candidate>,
    /// Set by `pair`.
    pub pair: Option<Pair>,
    /// Numeric columns: judge scores (`quality`, `difficulty`), heuristics (`len_chars`, …).
    pub scores: BTreeMap<String, f64>,
    /// String columns: `language`, `category`, `tier`, `cluster_label`, loaded extras, …
    pub labels: BTreeMap<String, String>,
    /// Embedding vector (L2-normalised by the built-in embedder).
    pub embedding: Option<Vec<f32>>,
    /// Cluster id from the `cluster` step.
    pub cluster: Option<u32>,
    pub provenance: Provenance,
}

impl Record {
    /// The chat view: `messages` when present, else built from instruction/input/output
    /// (instruction and input joined by a blank line as the user turn, output as the
    /// assistant turn).
    pub fn chat(&self) -> Vec<Message> {
        if !self.messages.is_empty() {
            return self.messages.clone();
        }
        let mut out = Vec::new();
        if let Some(user) = self.prompt_text_from_fields() {
            out.push(Message::user(user));
        }
        if let Some(o) = &self.output {
            out.push(Message::assistant(o.clone()));
        }
        out
    }

    /// The prompt as chat turns: the chat view without its final assistant turn.
    pub fn prompt_messages(&self) -> Vec<Message> {
        let mut m = self.chat();
        if m.last().is_some_and(|m| m.role == "assistant") {
            m.pop();
        }
        m
    }

    /// The prompt as one string: instruction (+ input) or the first user turn.
    pub fn prompt_text(&self) -> String {
        if let Some(p) = self.prompt_text_from_fields() {
            return p;
        }
        self.messages
            .iter()
            .find(|m| m.role == "user")
            .map(|m| m.content.clone())
            .unwrap_or_default()
    }

    /// The final assistant answer: `output`, or the last assistant turn.
    pub fn response_text(&self) -> Option<String> {
        if let Some(o) = &self.output {
            return Some(o.clone());
        }
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "assistant")
            .map(|m| m.content.clone())
    }

    fn prompt_text_from_fields(&self) -> Option<String> {
        let ins = self.instruction.as_deref()?;
        Some(match self.input.as_deref() {
            Some(i) if !i.trim().is_empty() => format!("{ins}\n\n{i}"),
            _ => ins.to_string(),
        })
    }

    /// A column value for predicates and sort keys: `scores.*` then `labels.*` then the
    /// text fields. Returns `None` when the record has no such column.
    pub fn column(&self, name: &str) -> Option<ColumnValue<'_>> {
        let name = name
            .strip_prefix("scores.")
            .or_else(|| name.strip_prefix("labels."))
            .unwrap_or(name);
        if let Some(v) = self.scores.get(name) {
            return Some(ColumnValue::Num(*v));
        }
        if let Some(v) = self.labels.get(name) {
            return Some(ColumnValue::Str(v.as_str()));
        }
        match name {
            "id" => Some(ColumnValue::Str(&self.id)),
            "instruction" => self.instruction.as_deref().map(ColumnValue::Str),
            "input" => self.input.as_deref().map(ColumnValue::Str),
            "output" => self.output.as_deref().map(ColumnValue::Str),
            "turns" => Some(ColumnValue::Num(self.messages.len() as f64)),
            "cluster" => self.cluster.map(|c| ColumnValue::Num(c as f64)),
            "step" => Some(ColumnValue::Str(&self.provenance.step)),
            "teacher" => self.provenance.teacher.as_deref().map(ColumnValue::Str),
            _ => None,
        }
    }
}

/// A borrowed column value, see [`Record::column`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColumnValue<'a> {
    Num(f64),
    Str(&'a str),
}

/// A record a step could not produce. Written to `failures.parquet`; never dropped and
/// never replaced by a default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Step id.
    pub step: String,
    /// Id of the input record (or of the planned output) that failed.
    pub record_id: String,
    /// Error class: `http_429`, `http_5xx`, `timeout`, `parse`, `truncated`, `bad_input`, …
    pub class: String,
    /// Last HTTP status, when a request failed.
    pub status: Option<u16>,
    /// Human-readable reason.
    pub message: String,
    /// The raw input (a JSON line, a model reply) that could not be used.
    pub raw: String,
}

/// A candidate a filter rejected on purpose (novelty, keyword, length, …), kept with
/// its reason in `rejections.parquet` so nothing disappears without a trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rejection {
    pub step: String,
    pub record_id: String,
    /// Short machine-readable reason, e.g. `rouge_l`, `keyword`, `too_short`.
    pub reason: String,
    /// Detail, e.g. `0.82 vs seed_017`.
    pub detail: String,
    /// The rejected text.
    pub text: String,
}

/// A short stable id from content: the first 16 hex chars of sha256 over the parts.
pub fn content_id(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_view_joins_instruction_and_input() {
        let r = Record {
            instruction: Some("Sort".into()),
            input: Some("3 1 2".into()),
            output: Some("1 2 3".into()),
            ..Default::default()
        };
        let c = r.chat();
        assert_eq!(c[0], Message::user("Sort\n\n3 1 2"));
        assert_eq!(c[1], Message::assistant("1 2 3"));
        assert_eq!(r.prompt_messages().len(), 1);
        assert_eq!(r.response_text().as_deref(), Some("1 2 3"));
    }

    #[test]
    fn content_id_separates_parts() {
        assert_ne!(content_id(&["ab", "c"]), content_id(&["a", "bc"]));
        assert_eq!(content_id(&["x"]).len(), 16);
    }
}
