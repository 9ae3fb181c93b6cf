//! Which text of a record a step looks at (embed, dedup, cluster labels). One place, so
//! "the instruction" means the same thing in every step.

use retort_core::Record;
use serde::Deserialize;

/// A text view of a record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextView {
    /// `instruction` (or the first user turn for chats).
    Instruction,
    /// Instruction and input joined by a blank line (or the first user turn).
    #[default]
    Prompt,
    /// The first user turn of the chat view.
    FirstUser,
    /// The final answer.
    Response,
    /// The prompt and the final answer joined by a blank line: a pair is a duplicate only
    /// when both sides are.
    PromptResponse,
    /// Every turn of the chat view, `role: content` per line.
    Chat,
}

impl TextView {
    /// Every view, in the order the docs list them.
    pub const ALL: [TextView; 6] = [
        TextView::Instruction,
        TextView::Prompt,
        TextView::FirstUser,
        TextView::Response,
        TextView::PromptResponse,
        TextView::Chat,
    ];

    /// The option value that selects this view (`"prompt_response"`, …).
    pub fn name(self) -> &'static str {
        match self {
            TextView::Instruction => "instruction",
            TextView::Prompt => "prompt",
            TextView::FirstUser => "first_user",
            TextView::Response => "response",
            TextView::PromptResponse => "prompt_response",
            TextView::Chat => "chat",
        }
    }

    /// The view an option value names, if any.
    pub fn from_name(name: &str) -> Option<TextView> {
        TextView::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The text of `r` under this view ("" when the record has none).
    pub fn text(self, r: &Record) -> String {
        match self {
            TextView::Instruction => r.instruction.clone().unwrap_or_else(|| r.prompt_text()),
            TextView::Prompt => r.prompt_text(),
            TextView::FirstUser => r
                .chat()
                .into_iter()
                .find(|m| m.role == "user")
                .map(|m| m.content)
                .unwrap_or_default(),
            TextView::Response => r.response_text().unwrap_or_default(),
            TextView::PromptResponse => format!(
                "{}\n\n{}",
                r.prompt_text(),
                r.response_text().unwrap_or_default()
            ),
            TextView::Chat => r
                .chat()
                .iter()
                .map(|m| format!("{}: {}", m.role, m.content))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// The label the `embed` step writes on each record: the name of the [`TextView`] its
/// embedding was computed from, so `dedup` and `cluster` can tell what a vector stands for.
pub const EMBEDDING_TEXT_LABEL: &str = "embedding_text";

/// A sort key from score columns, higher is better: the record's values of `columns`
/// in order, missing values lowest.
pub fn score_key(r: &Record, columns: &[String]) -> Vec<f64> {
    columns
        .iter()
        .map(|c| match r.column(c) {
            Some(retort_core::ColumnValue::Num(v)) => v,
            _ => f64::NEG_INFINITY,
        })
        .collect()
}

/// Every record's embedding as one row-major matrix, and its dimension. A record without
/// an embedding, or with one of another size, is an error naming the step and record.
pub fn flatten_embeddings(
    records: &[Record],
    step: &str,
    kind: &str,
) -> Result<(Vec<f32>, usize), crate::api::StepError> {
    let dim = records
        .first()
        .and_then(|r| r.embedding.as_ref())
        .map(Vec::len)
        .unwrap_or(0);
    if let Some(r) = records
        .iter()
        .find(|r| dim == 0 || r.embedding.as_ref().map(Vec::len) != Some(dim))
    {
        return Err(crate::api::StepError::Config(format!(
            "step `{step}`: record `{}` has no embedding (or one of another size); add an `embed` step before `{kind}`",
            r.id
        )));
    }
    let mut flat = Vec::with_capacity(records.len() * dim);
    for r in records {
        flat.extend_from_slice(r.embedding.as_deref().unwrap_or_default());
    }
    Ok((flat, dim))
}
