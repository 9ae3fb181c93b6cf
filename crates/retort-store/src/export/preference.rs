//! The preference formats, all views of `Record.pair` (built by the `pair` step) and the
//! record's prompt: paired with an explicit prompt (`dpo`, `dpo_conversational`),
//! unpaired (`kto`, `kto_conversational`: one row per side with a bool `label`), with
//! the prompt inside both sides (`implicit_preference[_conversational]`, for reward
//! models), and LLaMA-Factory's Alpaca-shaped ranking (`alpaca_ranking`).

use std::borrow::Cow;

use retort_core::{Message, Pair, Record};
use sha2::{Digest, Sha256};

use super::columns::{Cell, Column, Kind, Row};
use super::options::{Answer, TurnRule};
use super::sft::{chat_shape, single_user, turns};
use super::ExportFormat;

/// The judge's view of a pair that DPO-style formats carry for analysis (TRL ignores
/// them). `margin` is left out where a trainer would read it as a loss margin.
fn extra_columns(with_margin: bool) -> Vec<Column> {
    let mut v = vec![
        Column::new("prompt_id", Kind::Str),
        Column::new("chosen_model", Kind::Str),
        Column::new("rejected_model", Kind::Str),
        Column::new("chosen_score", Kind::F64),
        Column::new("rejected_score", Kind::F64),
    ];
    if with_margin {
        v.push(Column::new("margin", Kind::F64));
    }
    v.push(Column::new("rationale", Kind::OptStr));
    v
}

fn extra_cells<'a>(d: &Dpo<'a>, with_margin: bool) -> Vec<Cell<'a>> {
    let p = d.pair;
    let mut v = vec![
        Cell::string(d.prompt_id.clone()),
        Cell::str(&p.chosen_model),
        Cell::str(&p.rejected_model),
        Cell::Num(Some(p.chosen_score)),
        Cell::Num(Some(p.rejected_score)),
    ];
    if with_margin {
        v.push(Cell::Num(Some(p.margin)));
    }
    v.push(Cell::opt_str(p.rationale.as_deref()));
    v
}

/// The columns of a format of this family (without `id` and kept columns).
pub(crate) fn columns(format: ExportFormat, rule: TurnRule) -> Vec<Column> {
    let chat = Kind::Turns(chat_shape(rule));
    let mut v = match format {
        ExportFormat::Dpo => vec![
            Column::new("prompt", Kind::Str),
            Column::new("chosen", Kind::Str),
            Column::new("rejected", Kind::Str),
        ],
        ExportFormat::DpoConversational => vec![
            Column::new("prompt", chat),
            Column::new("chosen", chat),
            Column::new("rejected", chat),
        ],
        ExportFormat::Kto => vec![
            Column::new("prompt", Kind::Str),
            Column::new("completion", Kind::Str),
            Column::new("label", Kind::Bool),
            Column::new("prompt_id", Kind::Str),
        ],
        ExportFormat::KtoConversational => vec![
            Column::new("prompt", chat),
            Column::new("completion", chat),
            Column::new("label", Kind::Bool),
            Column::new("prompt_id", Kind::Str),
        ],
        ExportFormat::ImplicitPreference => vec![
            Column::new("chosen", Kind::Str),
            Column::new("rejected", Kind::Str),
        ],
        ExportFormat::ImplicitPreferenceConversational => {
            vec![Column::new("chosen", chat), Column::new("rejected", chat)]
        }
        ExportFormat::AlpacaRanking => vec![
            Column::new("instruction", Kind::Str),
            Column::new("input", Kind::Str),
            Column::new("chosen", Kind::Str),
            Column::new("rejected", Kind::Str),
        ],
        other => unreachable!("`{}` is not a preference format", other.name()),
    };
    match format {
        ExportFormat::Dpo | ExportFormat::DpoConversational => v.extend(extra_columns(true)),
        ExportFormat::ImplicitPreference | ExportFormat::ImplicitPreferenceConversational => {
            v.extend(extra_columns(false))
        }
        _ => {}
    }
    v
}

/// The rows of a format of this family (two for `kto`), or why the record cannot be
/// written.
pub(crate) fn rows<'a>(
    format: ExportFormat,
    r: &'a Record,
    rule: TurnRule,
) -> Result<Vec<(Row<'a>, Answer)>, String> {
    rule.check_tools(r)?;
    let d = dpo(r)?;
    let p = d.pair;
    Ok(match format {
        ExportFormat::Dpo => {
            let (pr, c, rj) = strings(&d, rule, "dpo_conversational")?;
            let mut row = vec![
                Cell::string(pr.into()),
                Cell::Text(Some(c)),
                Cell::Text(Some(rj)),
            ];
            row.extend(extra_cells(&d, true));
            vec![(row, Answer::Chosen)]
        }
        ExportFormat::DpoConversational => {
            let mut row = vec![
                Cell::Turns(turns(Cow::Owned(d.prompt.clone()), rule)?),
                Cell::Turns(turns(Cow::Borrowed(&p.chosen), rule)?),
                Cell::Turns(turns(Cow::Borrowed(&p.rejected), rule)?),
            ];
            row.extend(extra_cells(&d, true));
            vec![(row, Answer::Chosen)]
        }
        ExportFormat::Kto => {
            let (pr, c, rj) = strings(&d, rule, "kto_conversational")?;
            let side = |text, label| {
                vec![
                    Cell::string(pr.to_string()),
                    Cell::Text(Some(text)),
                    Cell::Bool(label),
                    Cell::string(d.prompt_id.clone()),
                ]
            };
            vec![
                (side(c, true), Answer::Chosen),
                (side(rj, false), Answer::Rejected),
            ]
        }
        ExportFormat::KtoConversational => {
            let prompt = turns(Cow::Owned(d.prompt.clone()), rule)?;
            let side = |msgs: &'a [Message], label| -> Result<Row<'a>, String> {
                Ok(vec![
                    Cell::Turns(prompt.clone()),
                    Cell::Turns(turns(Cow::Borrowed(msgs), rule)?),
                    Cell::Bool(label),
                    Cell::string(d.prompt_id.clone()),
                ])
            };
            vec![
                (side(&p.chosen, true)?, Answer::Chosen),
                (side(&p.rejected, false)?, Answer::Rejected),
            ]
        }
        ExportFormat::ImplicitPreference => {
            let (pr, c, rj) = strings(&d, rule, "implicit_preference_conversational")?;
            // A blank line between prompt and answer, as retort joins instruction and
            // input: TRL's `extract_prompt` then finds the prompt as the common prefix.
            let mut row = vec![
                Cell::string(format!("{pr}\n\n{c}")),
                Cell::string(format!("{pr}\n\n{rj}")),
            ];
            row.extend(extra_cells(&d, false));
            vec![(row, Answer::Chosen)]
        }
        ExportFormat::ImplicitPreferenceConversational => {
            let whole = |side: &[Message]| {
                let mut m = d.prompt.clone();
                m.extend_from_slice(side);
                turns(Cow::Owned(m), rule)
            };
            let mut row = vec![
                Cell::Turns(whole(&p.chosen)?),
                Cell::Turns(whole(&p.rejected)?),
            ];
            row.extend(extra_cells(&d, false));
            vec![(row, Answer::Chosen)]
        }
        ExportFormat::AlpacaRanking => {
            let (instruction, input) = match r.instruction.as_deref() {
                Some(i) => (i, r.input.as_deref().unwrap_or("")),
                None => (single_user(&d.prompt, "dpo_conversational")?, ""),
            };
            let c = one_answer(&p.chosen, "chosen", rule, "dpo_conversational")?;
            let rj = one_answer(&p.rejected, "rejected", rule, "dpo_conversational")?;
            vec![(
                vec![
                    Cell::string(instruction.to_string()),
                    Cell::string(input.to_string()),
                    Cell::Text(Some(c)),
                    Cell::Text(Some(rj)),
                ],
                Answer::Chosen,
            )]
        }
        other => unreachable!("`{}` is not a preference format", other.name()),
    })
}

struct Dpo<'a> {
    prompt: Vec<Message>,
    prompt_id: String,
    pair: &'a Pair,
}

fn dpo(r: &Record) -> Result<Dpo<'_>, String> {
    let pair = r
        .pair
        .as_ref()
        .ok_or("record has no preference pair (run a `pair` step before a preference export)")?;
    let prompt = r.prompt_messages();
    if prompt.is_empty() {
        return Err("record has a pair but no prompt (no messages and no instruction)".into());
    }
    if pair.chosen.is_empty() || pair.rejected.is_empty() {
        return Err("pair has an empty chosen or rejected answer".into());
    }
    let prompt_id = prompt_id(&prompt);
    Ok(Dpo {
        prompt,
        prompt_id,
        pair,
    })
}

/// sha256 hex of the prompt text: the user turn's content for a single-turn prompt (the
/// convention of UltraFeedback-style datasets), else the compact JSON of the turns.
pub fn prompt_id(prompt: &[Message]) -> String {
    let mut h = Sha256::new();
    match prompt {
        [only] if only.role == "user" => h.update(only.content.as_bytes()),
        turns => {
            // Only role and content: the id names the prompt, which a trace never is.
            let plain: Vec<(&str, &str)> = turns
                .iter()
                .map(|m| (m.role.as_str(), m.content.as_str()))
                .collect();
            h.update(compact_turns(&plain))
        }
    }
    hex::encode(h.finalize())
}

/// `[{"role":…,"content":…},…]` without spaces, the bytes `prompt_id` has always hashed.
fn compact_turns(turns: &[(&str, &str)]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct T<'a> {
        role: &'a str,
        content: &'a str,
    }
    let v: Vec<T<'_>> = turns
        .iter()
        .map(|(role, content)| T { role, content })
        .collect();
    serde_json::to_vec(&v).expect("serialising strings to memory cannot fail")
}

/// The standard (string) view: a single user prompt and one assistant message each.
fn strings<'d, 'a>(
    d: &'d Dpo<'a>,
    rule: TurnRule,
    conversational: &str,
) -> Result<(&'d str, Cow<'a, str>, Cow<'a, str>), String> {
    let prompt = single_user(&d.prompt, conversational)?;
    Ok((
        prompt,
        one_answer(&d.pair.chosen, "chosen", rule, conversational)?,
        one_answer(&d.pair.rejected, "rejected", rule, conversational)?,
    ))
}

fn one_answer<'a>(
    m: &'a [Message],
    which: &str,
    rule: TurnRule,
    conversational: &str,
) -> Result<Cow<'a, str>, String> {
    match m {
        [only] if only.role == "assistant" => rule.text(only),
        _ => Err(format!(
            "{which} is not a single assistant message; export `{conversational}` instead"
        )),
    }
}
