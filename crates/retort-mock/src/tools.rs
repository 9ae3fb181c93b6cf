//! What the mock does with a request that offers tools, when `call_tools` is on: it
//! calls one, with arguments that validate against the tool's parameter schema, as a
//! function-calling model would; once the conversation ends in a tool result it answers
//! in text. The tool is the first whose name the prompt mentions, else the first
//! offered, so tests can steer it from the prompt.

use serde_json::Value;

use crate::structured::instance;

/// A call the mock makes: the function's name and its arguments.
pub(crate) struct MockCall {
    pub(crate) name: String,
    pub(crate) arguments: Value,
}

/// The call to make for this request, or `None` (no tools offered, or the last turn is
/// a tool result, which the model now answers in text). Anthropic's structured-output
/// `output` tool is not a tool to call here.
pub(crate) fn call_for(body: &Value, user: &str) -> Option<MockCall> {
    let tools = body.get("tools")?.as_array()?;
    // (name, parameters) in either wire form.
    let offered: Vec<(&str, Value)> = tools
        .iter()
        .filter_map(|t| match t.get("function") {
            Some(f) => Some((
                f.get("name")?.as_str()?,
                f.get("parameters").cloned().unwrap_or(Value::Null),
            )),
            None => Some((
                t.get("name")?.as_str()?,
                t.get("input_schema").cloned().unwrap_or(Value::Null),
            )),
        })
        .filter(|(name, _)| *name != "output")
        .collect();
    if offered.is_empty() || answers_tool_result(body) {
        return None;
    }
    let (name, params) = offered
        .iter()
        .find(|(name, _)| user.contains(name))
        .unwrap_or(&offered[0]);
    Some(MockCall {
        name: name.to_string(),
        arguments: instance(params, user),
    })
}

/// Whether the conversation's last turn is a tool result (OpenAI `role: tool`, or an
/// Anthropic user turn of `tool_result` blocks).
fn answers_tool_result(body: &Value) -> bool {
    let Some(last) = body
        .get("messages")
        .and_then(|m| m.as_array())
        .and_then(|m| m.last())
    else {
        return false;
    };
    if last.get("role").and_then(|r| r.as_str()) == Some("tool") {
        return true;
    }
    last.get("content")
        .and_then(|c| c.as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
}
