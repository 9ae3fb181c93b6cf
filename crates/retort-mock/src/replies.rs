//! Well-formed answers: the reply text (scripted rules, the reply function or the echo)
//! and the OpenAI, Anthropic and embeddings bodies around it, with rough token counts so
//! clients have usage to account.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::draw::mix;
use crate::state::State;
use crate::structured::ReasoningShape;
use crate::tools::MockCall;

/// An answer that says it is JSON; the injected faults keep the header while breaking
/// the body, as a misbehaving upstream does.
pub(crate) fn json_response(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static response parts")
}

/// About four characters a token, never zero.
fn rough_tokens(s: &str) -> u64 {
    (s.chars().count() as u64).div_ceil(4).max(1)
}

/// Deterministic unit vector from the text's hash, so equal texts get equal vectors.
pub fn mock_embedding(text: &str, dim: usize) -> Vec<f32> {
    let h = Sha256::digest(text.as_bytes());
    let mut seed = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    let mut v: Vec<f32> = (0..dim)
        .map(|_| {
            seed = mix(seed);
            ((seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// The last user message of a chat or messages request ("" when there is none).
pub(crate) fn last_user(body: &Value) -> String {
    body.get("messages")
        .and_then(|m| m.as_array())
        .and_then(|msgs| {
            msgs.iter()
                .rev()
                .find(|m| m.get("role").and_then(|r| r.as_str()) == Some("user"))
        })
        .and_then(|m| m.get("content"))
        .map(|c| match c {
            Value::String(s) => s.clone(),
            // Anthropic content blocks: concatenate the text parts.
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(|t| t.as_str()))
                .collect::<Vec<_>>()
                .join(""),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// Every prompt text of a request, for the prompt token count.
fn prompt_chars(body: &Value) -> String {
    let mut s = String::new();
    if let Some(sys) = body.get("system").and_then(|v| v.as_str()) {
        s.push_str(sys);
    }
    if let Some(msgs) = body.get("messages").and_then(|m| m.as_array()) {
        for m in msgs {
            if let Some(c) = m.get("content").and_then(|c| c.as_str()) {
                s.push_str(c);
            }
        }
    }
    s
}

impl State {
    /// The answer text for `user`: the first matching rule, else the reply function,
    /// else a schema-valid JSON instance when the request asks for `schema` and the mock
    /// honours schemas, else the echo.
    pub(crate) fn reply_for(&self, user: &str, schema: Option<&Value>) -> String {
        for r in &self.cfg.rules {
            if let Some(caps) = r.pattern.captures(user) {
                let mut out = String::new();
                caps.expand(&r.reply, &mut out);
                return out;
            }
        }
        // Scripted replies (rules, the reply function) win: a test that scripts a
        // judge's reply means that reply, schema or not.
        if let Some(f) = &self.cfg.reply_fn {
            return f(user);
        }
        match (schema, self.cfg.honour_schema) {
            (Some(s), true) => crate::structured::instance(s, user).to_string(),
            _ => format!("echo: {user}"),
        }
    }
}

/// The reply cut in half when the request gets `finish_reason = length`.
fn cut_reply(reply: String, length: bool) -> (String, bool) {
    if length {
        let half: String = reply.chars().take(reply.chars().count() / 2).collect();
        (half, true)
    } else {
        (reply, false)
    }
}

/// A `/v1/chat/completions` answer.
pub(crate) fn openai_body(
    state: &State,
    seq: u64,
    body: &Value,
    reply: String,
    length: bool,
    trace: Option<String>,
    call: Option<MockCall>,
) -> String {
    let (content, cut) = cut_reply(reply, length);
    let pt = rough_tokens(&prompt_chars(body));
    let ct = rough_tokens(&content) + trace.as_deref().map_or(0, rough_tokens);
    let mut message = json!({"role": "assistant", "content": content});
    let mut finish = if cut { "length" } else { "stop" };
    if let Some(c) = call {
        // A turn that only calls: null content, the arguments as JSON text.
        message["content"] = Value::Null;
        message["tool_calls"] = json!([{
            "id": format!("call_mock_{seq}"),
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments.to_string()},
        }]);
        finish = "tool_calls";
    }
    match (state.cfg.reasoning, trace) {
        (Some(ReasoningShape::ReasoningContent), Some(t)) => {
            message["reasoning_content"] = t.into()
        }
        (Some(ReasoningShape::Reasoning), Some(t)) => message["reasoning"] = t.into(),
        (Some(ReasoningShape::Think), Some(t)) => {
            message["content"] = format!("<think>\n{t}\n</think>\n\n{content}").into()
        }
        _ => {}
    }
    json!({
        "id": format!("chatcmpl-mock-{seq}"),
        "object": "chat.completion",
        "created": 0,
        "model": state.cfg.model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish,
        }],
        "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
    })
    .to_string()
}

/// A `/v1/messages` answer.
#[allow(clippy::too_many_arguments)]
pub(crate) fn anthropic_body(
    state: &State,
    seq: u64,
    body: &Value,
    reply: String,
    length: bool,
    trace: Option<String>,
    structured: bool,
    call: Option<MockCall>,
) -> String {
    let (content, cut) = cut_reply(reply, length);
    let pt = rough_tokens(&prompt_chars(body));
    let ct = rough_tokens(&content) + trace.as_deref().map_or(0, rough_tokens);
    let mut blocks = Vec::new();
    if let Some(t) = trace {
        blocks.push(json!({"type": "thinking", "thinking": t, "signature": "mock-signature"}));
    }
    // An honoured structured request is answered by calling the output tool with the
    // JSON as its input, as Claude does.
    match serde_json::from_str::<Value>(&content) {
        Ok(input) if structured && !cut => {
            blocks.push(json!({"type": "tool_use", "id": format!("toolu_mock_{seq}"), "name": "output", "input": input}))
        }
        _ => blocks.push(json!({"type": "text", "text": content})),
    }
    let mut stop = if cut { "max_tokens" } else { "end_turn" };
    if let Some(c) = call {
        blocks.retain(|b| b["type"] == "thinking");
        blocks.push(json!({"type": "tool_use", "id": format!("toolu_mock_{seq}"), "name": c.name, "input": c.arguments}));
        stop = "tool_use";
    }
    json!({
        "id": format!("msg_mock_{seq}"),
        "type": "message",
        "role": "assistant",
        "model": state.cfg.model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {"input_tokens": pt, "output_tokens": ct},
    })
    .to_string()
}

/// A `/v1/embeddings` answer: one [`mock_embedding`] per input.
pub(crate) fn embeddings_body(state: &State, body: &Value) -> String {
    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
        _ => Vec::new(),
    };
    let tokens: u64 = inputs.iter().map(|s| rough_tokens(s)).sum();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"object": "embedding", "index": i, "embedding": mock_embedding(t, state.cfg.embedding_dim)})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": state.cfg.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
    .to_string()
}
