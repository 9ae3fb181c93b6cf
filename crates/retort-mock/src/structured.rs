//! What the mock does with reasoning and structured-output requests: the reasoning shape
//! it answers in, and a JSON instance of a requested schema when it honours
//! `response_format` (OpenAI) or the `output` tool (Anthropic), as a server that
//! enforces the schema would. A mock that ignores schemas answers in plain text, so the
//! client's own validation is what stands between a bad reply and a record.

use serde_json::{json, Map, Value};

/// Where the mock puts an answer's reasoning trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasoningShape {
    /// `message.reasoning_content` (vLLM reasoning parsers, DeepSeek).
    ReasoningContent,
    /// `message.reasoning` (OpenRouter-style).
    Reasoning,
    /// `<think>…</think>` before the answer in `content` (R1 distills, Qwen3).
    Think,
}

impl ReasoningShape {
    /// Parses `reasoning_content`, `reasoning` or `think`.
    pub fn parse(s: &str) -> Option<ReasoningShape> {
        match s {
            "reasoning_content" => Some(ReasoningShape::ReasoningContent),
            "reasoning" => Some(ReasoningShape::Reasoning),
            "think" => Some(ReasoningShape::Think),
            _ => None,
        }
    }
}

/// The trace the mock "thought" for a prompt: deterministic, so tests can expect it.
pub fn trace_for(user: &str) -> String {
    let head: String = user.chars().take(60).collect();
    format!("Reasoning about: {head}")
}

/// The JSON Schema a request asks for, if any: OpenAI `response_format.json_schema.schema`
/// (or a `json_object` request, as an empty schema), or the input schema of Anthropic's
/// `output` tool.
pub(crate) fn requested_schema(body: &Value) -> Option<Value> {
    if let Some(rf) = body.get("response_format") {
        return match rf.get("type").and_then(|t| t.as_str()) {
            Some("json_schema") => rf.get("json_schema").and_then(|j| j.get("schema")).cloned(),
            Some("json_object") => Some(json!({"type": "object"})),
            _ => None,
        };
    }
    body.get("tools")?
        .as_array()?
        .iter()
        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("output"))
        .and_then(|t| t.get("input_schema"))
        .cloned()
}

/// A value that validates against `schema` (the subset structured outputs use: objects
/// with properties, arrays, enums, strings, numbers with bounds, booleans, `anyOf`),
/// with strings derived from the prompt so different prompts get different answers.
pub fn instance(schema: &Value, user: &str) -> Value {
    instance_at(schema, user, "value", 0)
}

fn instance_at(schema: &Value, user: &str, name: &str, depth: usize) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(|e| e.as_array())
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
        {
            return instance_at(first, user, name, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str())
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (k, s) in props {
                    out.insert(k.clone(), instance_at(s, user, k, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema
                .get("minItems")
                .and_then(|n| n.as_u64())
                .unwrap_or(1)
                .max(1);
            let item = schema.get("items").cloned().unwrap_or(json!({}));
            Value::Array(
                (0..n)
                    .map(|i| instance_at(&item, user, &format!("{name} {}", i + 1), depth + 1))
                    .collect(),
            )
        }
        "integer" => {
            let lo = schema.get("minimum").and_then(|v| v.as_i64()).unwrap_or(1);
            json!(lo)
        }
        "number" => {
            let lo = schema
                .get("minimum")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.5);
            json!(lo)
        }
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => {
            let head: String = user.chars().take(40).collect();
            let mut s = format!("{name} for {head}");
            if let Some(max) = schema.get("maxLength").and_then(|m| m.as_u64()) {
                s = s.chars().take(max as usize).collect();
            }
            let min = schema
                .get("minLength")
                .and_then(|m| m.as_u64())
                .unwrap_or(0) as usize;
            while s.chars().count() < min {
                s.push('.');
            }
            Value::String(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "question": {"type": "string", "minLength": 3},
                "difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
                "topic": {"enum": ["math", "code"]},
                "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            },
            "required": ["question", "difficulty", "topic", "tags"],
        });
        let v = instance(&schema, "What is 2+2?");
        assert_eq!(v["difficulty"], 1);
        assert_eq!(v["topic"], "math");
        assert_eq!(v["tags"].as_array().unwrap().len(), 2);
        assert!(v["question"].as_str().unwrap().contains("What is 2+2?"));
    }

    #[test]
    fn the_requested_schema_is_found_in_either_api() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let openai = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "o", "schema": s}}});
        assert_eq!(requested_schema(&openai), Some(s.clone()));
        let anthropic = json!({"tools": [{"name": "output", "input_schema": s}]});
        assert_eq!(requested_schema(&anthropic), Some(s));
        assert_eq!(requested_schema(&json!({"messages": []})), None);
    }
}
