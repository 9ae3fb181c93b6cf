//! The supervised and prompt-only formats: `messages`, `alpaca`, `sharegpt`,
//! `prompt_completion[_conversational]` and `prompt_only[_conversational]`. Each is a
//! view of the record's chat (its `messages`, or the user/assistant turns built from
//! instruction/input/output); a record a view cannot express is refused with the reason
//! and, where there is one, the format that would hold it.

use std::borrow::Cow;

use retort_core::{Message, Record};

use super::columns::{Cell, Column, Kind, Row, Turn, TurnShape};
use super::options::{Answer, TurnRule};
use super::ExportFormat;
use crate::schema::tools_json;

/// `role`/`content` turns, with the rule's reasoning field.
pub(crate) fn chat_shape(rule: TurnRule) -> TurnShape {
    TurnShape {
        who: "role",
        text: "content",
        reasoning: rule.field(),
        tools: rule.tools,
    }
}

fn sharegpt_shape(rule: TurnRule) -> TurnShape {
    TurnShape {
        who: "from",
        text: "value",
        reasoning: rule.field(),
        // ShareGPT-with-tools spells calls and results as turns of their own.
        tools: false,
    }
}

/// The columns of a format of this family (without `id` and kept columns).
pub(crate) fn columns(format: ExportFormat, rule: TurnRule) -> Vec<Column> {
    let mut c = own_columns(format, rule);
    if rule.tools {
        // The definitions as JSON text: TRL's SFTTrainer `json.loads` a string `tools`,
        // and LLaMA-Factory's sharegpt `tools` column is one.
        c.push(Column::new("tools", Kind::OptStr));
    }
    c
}

fn own_columns(format: ExportFormat, rule: TurnRule) -> Vec<Column> {
    let chat = Kind::Turns(chat_shape(rule));
    match format {
        ExportFormat::Messages => vec![Column::new("messages", chat)],
        ExportFormat::Alpaca => vec![
            Column::new("instruction", Kind::Str),
            Column::new("input", Kind::Str),
            Column::new("output", Kind::Str),
        ],
        ExportFormat::ShareGpt => vec![Column::new(
            "conversations",
            Kind::Turns(sharegpt_shape(rule)),
        )],
        ExportFormat::PromptCompletion => vec![
            Column::new("prompt", Kind::Str),
            Column::new("completion", Kind::Str),
        ],
        ExportFormat::PromptCompletionConversational => {
            vec![Column::new("prompt", chat), Column::new("completion", chat)]
        }
        ExportFormat::PromptOnly => vec![Column::new("prompt", Kind::Str)],
        ExportFormat::PromptOnlyConversational => vec![Column::new("prompt", chat)],
        other => unreachable!("`{}` is not an SFT format", other.name()),
    }
}

/// The row of a format of this family, or why the record cannot be one.
pub(crate) fn row<'a>(
    format: ExportFormat,
    r: &'a Record,
    rule: TurnRule,
) -> Result<(Row<'a>, Answer), String> {
    rule.check_tools(r)?;
    let (mut row, answer) = own_row(format, r, rule)?;
    if rule.tools {
        row.push(Cell::Text(tools_json(&r.tools).map(Cow::Owned)));
    }
    Ok((row, answer))
}

fn own_row<'a>(
    format: ExportFormat,
    r: &'a Record,
    rule: TurnRule,
) -> Result<(Row<'a>, Answer), String> {
    Ok(match format {
        ExportFormat::Messages => (
            vec![Cell::Turns(turns(sft_chat(r)?, rule)?)],
            Answer::Response,
        ),
        ExportFormat::Alpaca => {
            let a = alpaca(r, rule)?;
            (
                vec![
                    Cell::str(a.instruction),
                    Cell::str(a.input),
                    Cell::Text(Some(a.output)),
                ],
                Answer::Response,
            )
        }
        ExportFormat::ShareGpt if rule.tools => (
            vec![Cell::Turns(sharegpt_tool_turns(&sft_chat(r)?, rule)?)],
            Answer::Response,
        ),
        ExportFormat::ShareGpt => {
            let c = sft_chat(r)?;
            let t = each_turn(c, |role| sharegpt_role(role).map(Some), rule)?;
            (vec![Cell::Turns(t)], Answer::Response)
        }
        ExportFormat::PromptCompletion => {
            let (prompt, completion) = split_answer(r)?;
            let p = single_user(&prompt, "prompt_completion_conversational")?;
            let c = rule.text(&completion[0])?;
            (
                vec![
                    Cell::string(p.to_string()),
                    Cell::Text(Some(Cow::Owned(c.into_owned()))),
                ],
                Answer::Response,
            )
        }
        ExportFormat::PromptCompletionConversational => {
            let (prompt, completion) = split_answer(r)?;
            (
                vec![
                    Cell::Turns(turns(prompt, rule)?),
                    Cell::Turns(turns(completion, rule)?),
                ],
                Answer::Response,
            )
        }
        ExportFormat::PromptOnly => {
            let p = prompt(r)?;
            let s = single_user(&p, "prompt_only_conversational")?.to_string();
            (vec![Cell::string(s)], Answer::None)
        }
        ExportFormat::PromptOnlyConversational => (
            vec![Cell::Turns(turns(Cow::Owned(prompt(r)?), rule)?)],
            Answer::None,
        ),
        other => unreachable!("`{}` is not an SFT format", other.name()),
    })
}

/// Messages as `role`/`content` turns, roles as written.
pub(crate) fn turns<'a>(msgs: Cow<'a, [Message]>, rule: TurnRule) -> Result<Vec<Turn<'a>>, String> {
    each_turn(msgs, |_| Ok(None), rule)
}

/// Messages as turns; `rename` gives a role's spelling in the format (`None`: as
/// written) or refuses it.
fn each_turn<'a>(
    msgs: Cow<'a, [Message]>,
    rename: impl Fn(&str) -> Result<Option<&'static str>, String>,
    rule: TurnRule,
) -> Result<Vec<Turn<'a>>, String> {
    match msgs {
        Cow::Borrowed(ms) => ms
            .iter()
            .map(|m| {
                let who = Cow::Borrowed(rename(&m.role)?.unwrap_or(m.role.as_str()));
                rule.turn(who, Cow::Borrowed(m))
            })
            .collect(),
        Cow::Owned(ms) => ms
            .into_iter()
            .map(|m| {
                let who = match rename(&m.role)? {
                    Some(s) => Cow::Borrowed(s),
                    None => Cow::Owned(m.role.clone()),
                };
                rule.turn(who, Cow::Owned(m))
            })
            .collect(),
    }
}

/// The chat view without cloning when the record already has messages.
fn chat(r: &Record) -> Cow<'_, [Message]> {
    if r.messages.is_empty() {
        Cow::Owned(r.chat())
    } else {
        Cow::Borrowed(&r.messages)
    }
}

fn sft_chat(r: &Record) -> Result<Cow<'_, [Message]>, String> {
    let c = chat(r);
    if c.is_empty() {
        return Err("record has no messages and no instruction/output".into());
    }
    if !c.iter().any(|m| m.role == "assistant") {
        return Err("record has no assistant turn, so there is no response to train on".into());
    }
    Ok(c)
}

/// Prompt turns and the one-message answer after them.
type Split<'a> = (Cow<'a, [Message]>, Cow<'a, [Message]>);

/// The chat split before its final assistant turn: (prompt turns, [answer]).
fn split_answer(r: &Record) -> Result<Split<'_>, String> {
    let c = sft_chat(r)?;
    let last = c.len() - 1;
    if c[last].role != "assistant" {
        return Err(format!(
            "the chat ends with a `{}` turn after its last answer; prompt-completion needs the answer last — export `messages` to train on every assistant turn",
            c[last].role
        ));
    }
    if last == 0 {
        return Err("the chat is a lone assistant turn with no prompt before it".into());
    }
    Ok(match c {
        Cow::Borrowed(s) => (Cow::Borrowed(&s[..last]), Cow::Borrowed(&s[last..])),
        Cow::Owned(mut v) => {
            let answer = v.split_off(last);
            (Cow::Owned(v), Cow::Owned(answer))
        }
    })
}

/// The record's prompt turns (the chat view without a final assistant turn).
fn prompt(r: &Record) -> Result<Vec<Message>, String> {
    let p = r.prompt_messages();
    if p.is_empty() {
        return Err("record has no prompt (no messages and no instruction)".into());
    }
    Ok(p)
}

/// The text of a prompt that is one user turn; `conversational` names the format that
/// holds any other prompt.
pub(crate) fn single_user<'m>(
    prompt: &'m [Message],
    conversational: &str,
) -> Result<&'m str, String> {
    match prompt {
        [only] if only.role == "user" => Ok(only.content.as_str()),
        turns => Err(format!(
            "prompt has {} turns (or a system turn); this standard format holds one prompt string — export `{conversational}` instead",
            turns.len()
        )),
    }
}

pub(crate) struct Alpaca<'a> {
    pub(crate) instruction: &'a str,
    pub(crate) input: &'a str,
    pub(crate) output: Cow<'a, str>,
}

fn alpaca(r: &Record, rule: TurnRule) -> Result<Alpaca<'_>, String> {
    if let Some(instruction) = r.instruction.as_deref() {
        let output = match r.output.as_deref() {
            Some(o) => Cow::Borrowed(o),
            None => rule.text(
                r.messages
                    .iter()
                    .rev()
                    .find(|m| m.role == "assistant")
                    .ok_or("record has an instruction but no output")?,
            )?,
        };
        return Ok(Alpaca {
            instruction,
            input: r.input.as_deref().unwrap_or(""),
            output,
        });
    }
    // A single user/assistant exchange is exactly an instruction and its output.
    match r.messages.as_slice() {
        [u, a] if u.role == "user" && a.role == "assistant" => Ok(Alpaca {
            instruction: &u.content,
            input: "",
            output: rule.text(a)?,
        }),
        [] => Err("record has no instruction and no messages".into()),
        m => Err(format!(
            "record has no instruction and its {} messages are not one user/assistant exchange (Alpaca cannot hold system prompts or several turns); export `messages` or `sharegpt` instead",
            m.len()
        )),
    }
}

/// ShareGPT-with-tools turns (LLaMA-Factory's `function_call`/`observation` roles): an
/// assistant turn that calls tools becomes one `function_call` turn whose value is the
/// call as JSON (`{"name", "arguments"}`, a list for several calls), a `tool` turn an
/// `observation`. The format has no place for text beside a call, nor for call ids.
fn sharegpt_tool_turns<'a>(msgs: &[Message], rule: TurnRule) -> Result<Vec<Turn<'a>>, String> {
    msgs.iter()
        .map(|m| {
            if m.tool_calls.is_empty() {
                let who = if m.role == "tool" {
                    "observation"
                } else {
                    sharegpt_role(&m.role)?
                };
                let plain = Message {
                    tool_call_id: None,
                    name: None,
                    ..m.clone()
                };
                return rule.turn(Cow::Borrowed(who), Cow::Owned(plain));
            }
            if !m.content.trim().is_empty() {
                return Err("an assistant turn has text beside its tool calls, which ShareGPT's `function_call` turn cannot hold; export `messages` with `tools = true` instead".into());
            }
            let calls = m
                .tool_calls
                .iter()
                .map(|c| {
                    let args: serde_json::Value =
                        serde_json::from_str(&c.arguments).map_err(|e| {
                            format!(
                                "the arguments of a call to `{}` are not valid JSON ({e}), so ShareGPT's `function_call` value cannot hold them",
                                c.name
                            )
                        })?;
                    Ok(serde_json::json!({"name": c.name, "arguments": args}))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let value = match calls.as_slice() {
                [one] => one.to_string(),
                _ => serde_json::Value::Array(calls).to_string(),
            };
            let call = Message {
                role: "function_call".into(),
                content: value,
                reasoning: m.reasoning.clone(),
                ..Default::default()
            };
            rule.turn(Cow::Borrowed("function_call"), Cow::Owned(call))
        })
        .collect()
}

fn sharegpt_role(role: &str) -> Result<&'static str, String> {
    match role {
        "system" => Ok("system"),
        "user" => Ok("human"),
        "assistant" => Ok("gpt"),
        other => Err(format!("role `{other}` has no ShareGPT equivalent")),
    }
}
