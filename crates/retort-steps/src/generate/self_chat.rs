//! `self_chat`: multi-turn conversations from topics or questions.
//!
//! - **`baize`**: one teacher writes the whole transcript from a topic, with `[Human]` and
//!   `[AI]` turns. The transcript is split at the markers; when the answer stopped at
//!   `max_tokens` the last (possibly cut) turn is dropped; turns must alternate strictly,
//!   starting with the human (`alternation`, `first_turn_not_human`); an empty turn is
//!   rejected (`empty_turn`); a trailing human turn without an answer is dropped; more
//!   than `max_turns` exchanges are cut to `max_turns`; fewer than `min_turns` are
//!   rejected (`too_few_turns`).
//! - **`dual`** (UltraChat): a user-simulator teacher and an assistant teacher (possibly
//!   different models) alternate. The user simulator gets one message: the conversation
//!   so far quoted as a transcript, then its instruction, so it always speaks as the user
//!   and never continues as the assistant. The assistant gets the real chat (optional
//!   system prompt, then user/assistant turns). The chat stops after `max_turns`
//!   exchanges or when the user simulator answers with `end_marker`.
//!
//! The topic is the record's `labels.topic` when present, else its prompt text (or the
//! field named by `field`). Output records carry `messages`, plus labels `mode`, `topic`,
//! `turns` and `language`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{content_id, Message, Provenance, Record};
use retort_teacher::FinishReason;
use serde::Deserialize;
use serde_json::json;

use crate::api::{Batch, MapStep, StepCtx, StepError};
use crate::gen_common::{self as gc, Outcome, Sampling};
use crate::generate::replies as rp;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};
use crate::templates::Template;

/// Conversation method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatMode {
    /// One teacher writes both sides.
    #[default]
    Baize,
    /// A user-simulator teacher and an assistant teacher alternate.
    Dual,
}

/// Options of `kind = "self_chat"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfChatOptions {
    /// Baize: the teacher writing the transcript. Dual: the assistant teacher.
    pub teacher: String,
    /// `baize` (default) or `dual`.
    #[serde(default)]
    pub mode: ChatMode,
    /// Dual: the user-simulator teacher (default: `teacher`).
    pub user_teacher: Option<String>,
    /// Input column holding the topic (`instruction`, `prompt`, a label name …).
    /// Default: `labels.topic` when present, else the prompt text.
    pub field: Option<String>,
    /// Dual: the topic text is the first user message as is, instead of letting the user
    /// simulator write an opening about it (default false).
    #[serde(default)]
    pub open_with_input: bool,
    /// Fewest user/assistant exchanges a conversation must have (default 1).
    #[serde(default = "one")]
    pub min_turns: usize,
    /// Most exchanges (default 4).
    #[serde(default = "four")]
    pub max_turns: usize,
    /// Dual: what the user simulator writes to end the chat (default `<end>`).
    #[serde(default = "default_end")]
    pub end_marker: String,
    /// Language of the conversations (e.g. `"Chinese"`); unset = the topic's.
    pub language: Option<String>,
    /// Conversations in flight (default 16).
    #[serde(default = "gc::default_concurrency")]
    pub concurrency: usize,
    /// Temperature (default 0.8).
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// `max_tokens` per call (default 2048 baize transcript, 1024 dual assistant turn).
    pub max_tokens: Option<u32>,
    /// Dual: `max_tokens` of user-simulator calls (default 256).
    pub user_max_tokens: Option<u32>,
    /// Baize: transcript template (default `baize_chat`). Dual: user-simulator template
    /// (default `dual_user`).
    pub template: Option<String>,
    /// Dual: assistant system-prompt template (default `dual_assistant_system`); an empty
    /// rendering sends no system message.
    pub system_template: Option<String>,
}

fn one() -> usize {
    1
}
fn four() -> usize {
    4
}
fn default_end() -> String {
    "<end>".into()
}

/// The runnable step.
pub struct SelfChat {
    o: SelfChatOptions,
    user_teacher: String,
    main: Sampling,
    user: Sampling,
    template: Arc<Template>,
    system: Option<Arc<Template>>,
}

/// Build `self_chat` from its options.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: SelfChatOptions = parse_options(spec)?;
    let mut errors = vec![];
    let mut files = vec![];
    gc::check_teacher(ctx, "teacher", &o.teacher, &mut errors);
    let dual = o.mode == ChatMode::Dual;
    if let Some(u) = &o.user_teacher {
        if !dual {
            errors.push("`user_teacher` applies to mode = \"dual\" only".into());
        }
        gc::check_teacher(ctx, "user_teacher", u, &mut errors);
    }
    if !dual && (o.system_template.is_some() || o.open_with_input || o.user_max_tokens.is_some()) {
        errors.push(
            "`system_template`, `open_with_input` and `user_max_tokens` apply to mode = \"dual\" only"
                .into(),
        );
    }
    if o.min_turns == 0 || o.max_turns < o.min_turns {
        errors.push(format!(
            "turn limits need 1 <= min_turns <= max_turns (got {} and {})",
            o.min_turns, o.max_turns
        ));
    }
    if o.end_marker.trim().is_empty() {
        errors.push("`end_marker` cannot be empty".into());
    }
    if o.concurrency == 0 {
        errors.push("`concurrency` must be at least 1".into());
    }
    let default_t = if dual { "dual_user" } else { "baize_chat" };
    let template = gc::load_template(
        o.template.as_deref().unwrap_or(default_t),
        "template",
        ctx,
        &mut files,
        &mut errors,
    );
    let system = if dual {
        gc::load_template(
            o.system_template
                .as_deref()
                .unwrap_or("dual_assistant_system"),
            "system_template",
            ctx,
            &mut files,
            &mut errors,
        )
    } else {
        None
    };
    let (Some(template), true) = (template, errors.is_empty()) else {
        return Err(errors);
    };
    let main = Sampling {
        temperature: Some(o.temperature.unwrap_or(0.8)),
        top_p: o.top_p,
        max_tokens: Some(o.max_tokens.unwrap_or(if dual { 1024 } else { 2048 })),
    };
    let user = Sampling {
        max_tokens: Some(o.user_max_tokens.unwrap_or(256)),
        ..main
    };
    let user_teacher = o.user_teacher.clone().unwrap_or_else(|| o.teacher.clone());
    let estimates = if dual {
        let turns = o.max_turns as f64;
        vec![
            gc::estimate(
                &o.teacher,
                turns,
                0,
                200u64.saturating_mul(o.max_turns as u64),
                main,
            ),
            gc::estimate(
                &user_teacher,
                if o.open_with_input {
                    turns - 1.0
                } else {
                    turns
                },
                0,
                gc::prompt_tokens_estimate(&template, 200u64.saturating_mul(o.max_turns as u64)),
                user,
            ),
        ]
    } else {
        vec![gc::estimate(
            &o.teacher,
            1.0,
            0,
            gc::prompt_tokens_estimate(&template, 30),
            main,
        )]
    };
    let writes = format!(
        "one {}-mode conversation per input ({}..={} exchanges) as messages",
        if dual { "dual" } else { "baize" },
        o.min_turns,
        o.max_turns
    );
    let step = SelfChat {
        user_teacher,
        main,
        user,
        template,
        system,
        o,
    };
    let mut built = Built::new(Arc::new(step), writes);
    built.files = files;
    built.estimates = estimates;
    Ok(built)
}

/// Markers of a Baize transcript: (text, is_human).
const MARKERS: &[(&str, bool)] = &[
    ("[|Human|]", true),
    ("[|AI|]", false),
    ("[Human]", true),
    ("[AI]", false),
];

/// Split a transcript at `[Human]`/`[AI]` markers into (is_human, text) turns; text
/// before the first marker is ignored.
pub(crate) fn split_transcript(text: &str) -> Vec<(bool, String)> {
    let mut turns = vec![];
    let mut rest = text;
    let mut current: Option<bool> = None;
    loop {
        let next = MARKERS
            .iter()
            .filter_map(|(m, h)| rest.find(m).map(|p| (p, *m, *h)))
            .min_by_key(|(p, m, _)| (*p, usize::MAX - m.len()));
        match next {
            Some((p, m, h)) => {
                if let Some(c) = current {
                    turns.push((c, rest[..p].trim().to_string()));
                }
                current = Some(h);
                rest = &rest[p + m.len()..];
            }
            None => {
                if let Some(c) = current {
                    turns.push((c, rest.trim().to_string()));
                }
                return turns;
            }
        }
    }
}

/// Apply Baize's rules to a parsed transcript. `Err((reason, detail))` is a rejection.
pub(crate) fn baize_rules(
    mut turns: Vec<(bool, String)>,
    finish: FinishReason,
    min_turns: usize,
    max_turns: usize,
) -> Result<Vec<Message>, (&'static str, String)> {
    if finish == FinishReason::Length {
        turns.pop();
    }
    if let Some((false, _)) = turns.first() {
        return Err((
            "first_turn_not_human",
            "the transcript starts with an [AI] turn".into(),
        ));
    }
    for (i, w) in turns.windows(2).enumerate() {
        if w[0].0 == w[1].0 {
            let who = if w[0].0 { "[Human]" } else { "[AI]" };
            return Err((
                "alternation",
                format!("turns {} and {} are both {who}", i + 1, i + 2),
            ));
        }
    }
    if let Some(i) = turns.iter().position(|(_, t)| t.is_empty()) {
        return Err(("empty_turn", format!("turn {} is empty", i + 1)));
    }
    if turns.last().is_some_and(|(h, _)| *h) {
        turns.pop();
    }
    turns.truncate(max_turns.saturating_mul(2));
    let exchanges = turns.len() / 2;
    if exchanges < min_turns {
        return Err((
            "too_few_turns",
            format!("{exchanges} exchanges < {min_turns}"),
        ));
    }
    Ok(turns
        .into_iter()
        .map(|(h, t)| {
            if h {
                Message::user(t)
            } else {
                Message::assistant(t)
            }
        })
        .collect())
}

/// Clean a user-simulator reply: a `User:` label echoed in front is removed. Returns
/// `None` when the user ends the chat (the reply contains the end marker).
pub(crate) fn user_turn(reply: &str, end_marker: &str) -> Option<String> {
    if reply.contains(end_marker) {
        return None;
    }
    let t = rp::strip_leading_label(reply, &["User", "用户", "[Human]"]);
    Some(t.trim_matches('"').trim().to_string())
}

fn transcript(m: &[Message]) -> String {
    serde_json::to_string(m).unwrap_or_default()
}

impl SelfChat {
    fn topic(&self, r: &Record) -> Option<String> {
        match &self.o.field {
            Some(f) => gc::record_field(r, f),
            None => gc::record_field(r, "topic").or_else(|| gc::record_field(r, "prompt")),
        }
    }

    fn output(&self, ctx: &StepCtx, r: &Record, topic: &str, messages: Vec<Message>) -> Record {
        let mut labels = BTreeMap::new();
        let mode = match self.o.mode {
            ChatMode::Baize => "baize",
            ChatMode::Dual => "dual",
        };
        labels.insert("mode".to_string(), mode.to_string());
        labels.insert("topic".to_string(), topic.to_string());
        labels.insert("turns".to_string(), (messages.len() / 2).to_string());
        labels.insert(
            "language".to_string(),
            retort_text::heuristics::detect_language(&messages[0].content).to_string(),
        );
        if self.o.mode == ChatMode::Dual {
            labels.insert("user_teacher".to_string(), self.user_teacher.clone());
        }
        Record {
            id: content_id(&[&r.id, &transcript(&messages)]),
            messages,
            labels,
            provenance: Provenance {
                step: ctx.step_id.clone(),
                teacher: Some(self.o.teacher.clone()),
                template: Some(match &self.system {
                    Some(s) => format!("{} + {}", self.template.name, s.name),
                    None => self.template.name.clone(),
                }),
                parents: vec![r.id.clone()],
                seeds: gc::root_seeds(r),
            },
            ..Default::default()
        }
    }

    async fn baize(&self, ctx: &StepCtx, r: Record, topic: String) -> Result<Outcome, StepError> {
        let mut out = Outcome::default();
        let step = &ctx.step_id;
        let teacher = ctx.teacher(&self.o.teacher)?;
        let prompt = gc::render(
            &self.template,
            json!({
                "topic": topic,
                "max_turns": self.o.max_turns,
                "language": self.o.language,
            }),
        )?;
        let req = self.main.request(
            vec![Message::user(prompt)],
            gc::derive_seed(ctx.seed, &[gc::str_seed(&r.id)]),
            0,
        );
        let reply = match crate::calls::chat(ctx, teacher.as_ref(), req, &r.id).await? {
            Ok(x) => x,
            Err(f) => {
                out.failures.push(f);
                return Ok(out);
            }
        };
        let turns = split_transcript(&reply.content);
        if turns.is_empty() {
            out.fail(
                step,
                &r.id,
                "parse",
                "no [Human]/[AI] turns in the reply",
                reply.content,
            );
            return Ok(out);
        }
        match baize_rules(
            turns,
            reply.finish_reason,
            self.o.min_turns,
            self.o.max_turns,
        ) {
            Ok(messages) => out.records.push(self.output(ctx, &r, &topic, messages)),
            Err((why, detail)) => out.reject(step, &r.id, why, detail, reply.content),
        }
        Ok(out)
    }

    async fn dual(&self, ctx: &StepCtx, r: Record, topic: String) -> Result<Outcome, StepError> {
        let mut out = Outcome::default();
        let step = &ctx.step_id;
        let assistant = ctx.teacher(&self.o.teacher)?;
        let user = ctx.teacher(&self.user_teacher)?;
        let rs = gc::str_seed(&r.id);
        let system = match &self.system {
            Some(t) => gc::render(t, json!({ "topic": topic, "language": self.o.language }))?,
            None => String::new(),
        };
        let mut history: Vec<Message> = vec![];
        if self.o.open_with_input {
            history.push(Message::user(topic.clone()));
        }
        let mut turn = 0u64;
        loop {
            if history.len().is_multiple_of(2) {
                // The user simulator's turn.
                let prompt = gc::render(
                    &self.template,
                    json!({
                        "topic": topic,
                        "history": history,
                        "end_marker": self.o.end_marker,
                        "language": self.o.language,
                    }),
                )?;
                let req = self.user.request(
                    vec![Message::user(prompt)],
                    gc::derive_seed(ctx.seed, &[rs, turn, 0]),
                    0,
                );
                let reply = match crate::calls::chat(ctx, user.as_ref(), req, &r.id).await? {
                    Ok(x) => x,
                    Err(mut f) => {
                        f.raw = transcript(&history);
                        out.failures.push(f);
                        return Ok(out);
                    }
                };
                if reply.finish_reason == FinishReason::Length {
                    out.fail(
                        step,
                        &r.id,
                        "truncated",
                        "the user simulator's message stopped at max_tokens",
                        reply.content,
                    );
                    return Ok(out);
                }
                match user_turn(&reply.content, &self.o.end_marker) {
                    None => break,
                    Some(t) if t.is_empty() => {
                        out.fail(
                            step,
                            &r.id,
                            "parse",
                            "the user simulator's message is empty",
                            reply.content,
                        );
                        return Ok(out);
                    }
                    Some(t) => history.push(Message::user(t)),
                }
            } else {
                // The assistant's turn.
                let mut messages = vec![];
                if !system.trim().is_empty() {
                    messages.push(Message::system(system.trim()));
                }
                messages.extend(history.iter().cloned());
                let req = self
                    .main
                    .request(messages, gc::derive_seed(ctx.seed, &[rs, turn, 1]), 0);
                let reply = match crate::calls::chat(ctx, assistant.as_ref(), req, &r.id).await? {
                    Ok(x) => x,
                    Err(mut f) => {
                        f.raw = transcript(&history);
                        out.failures.push(f);
                        return Ok(out);
                    }
                };
                if reply.finish_reason == FinishReason::Length {
                    out.fail(
                        step,
                        &r.id,
                        "truncated",
                        "the assistant's answer stopped at max_tokens",
                        reply.content,
                    );
                    return Ok(out);
                }
                let a = reply.content.trim();
                if a.is_empty() {
                    out.fail(
                        step,
                        &r.id,
                        "parse",
                        "the assistant's answer is empty",
                        transcript(&history),
                    );
                    return Ok(out);
                }
                history.push(Message::assistant(a));
                turn += 1;
                if history.len() / 2 >= self.o.max_turns {
                    break;
                }
            }
        }
        let exchanges = history.len() / 2;
        if exchanges < self.o.min_turns {
            out.reject(
                step,
                &r.id,
                "too_few_turns",
                format!(
                    "the user ended after {exchanges} exchanges < {}",
                    self.o.min_turns
                ),
                transcript(&history),
            );
            return Ok(out);
        }
        out.records.push(self.output(ctx, &r, &topic, history));
        Ok(out)
    }

    async fn one(&self, ctx: &StepCtx, r: Record) -> Result<Outcome, StepError> {
        let Some(topic) = self.topic(&r) else {
            let mut out = Outcome::default();
            out.fail(
                &ctx.step_id,
                &r.id,
                "bad_input",
                format!(
                    "no topic in the record (looked at {})",
                    self.o
                        .field
                        .as_deref()
                        .unwrap_or("labels.topic, then the prompt")
                ),
                serde_json::to_string(&r).unwrap_or_default(),
            );
            return Ok(out);
        };
        match self.o.mode {
            ChatMode::Baize => self.baize(ctx, r, topic).await,
            ChatMode::Dual => self.dual(ctx, r, topic).await,
        }
    }
}

#[async_trait]
impl MapStep for SelfChat {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let outs =
            crate::calls::run_ordered(batch, self.o.concurrency, |r| self.one(ctx, r)).await?;
        let mut all = Outcome::default();
        for o in outs {
            all.merge(o);
        }
        Ok(all.into_batch())
    }
}

crate::call_step!(SelfChat, |s| s.o.concurrency);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_markers_both_spellings() {
        let t = split_transcript("intro [|Human|] hi [|AI|] hello\n[Human] more? [AI] yes");
        assert_eq!(
            t,
            vec![
                (true, "hi".to_string()),
                (false, "hello".to_string()),
                (true, "more?".to_string()),
                (false, "yes".to_string())
            ]
        );
        assert!(split_transcript("no markers").is_empty());
    }

    #[test]
    fn user_turn_end_and_label() {
        assert_eq!(user_turn("User: Why?", "<end>").as_deref(), Some("Why?"));
        assert_eq!(user_turn("Thanks! <end>", "<end>"), None);
        assert_eq!(
            user_turn("\"Quoted?\"", "<end>").as_deref(),
            Some("Quoted?")
        );
    }

    #[test]
    fn stop_finish_keeps_last_turn() {
        let turns = vec![(true, "q".into()), (false, "a".into())];
        assert_eq!(
            baize_rules(turns.clone(), FinishReason::Stop, 1, 3)
                .unwrap()
                .len(),
            2
        );
        assert!(baize_rules(turns, FinishReason::Length, 1, 3).is_err());
    }

    #[test]
    fn huge_max_turns_builds() {
        // Found by the compile fuzz tests: the plan estimate `200 * max_turns` overflowed.
        let spec = StepSpec {
            id: "chat".into(),
            kind: "self_chat".into(),
            after: vec!["seeds".into()],
            options: toml::from_str(
                "teacher = \"t\"\nmode = \"dual\"\nmax_turns = 9223372036854775807",
            )
            .unwrap(),
        };
        let ctx = BuildCtx {
            teachers: vec!["t".into()],
            ..Default::default()
        };
        assert!(build(&spec, &ctx).is_ok());
    }

    #[test]
    fn huge_max_turns_does_not_overflow() {
        // Found by the fuzz tests: `max_turns * 2` overflowed for max_turns > usize::MAX / 2.
        let turns = vec![(true, "q".into()), (false, "a".into())];
        assert_eq!(
            baize_rules(turns, FinishReason::Stop, 1, usize::MAX)
                .unwrap()
                .len(),
            2
        );
    }
}
