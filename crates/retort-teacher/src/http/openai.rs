//! Any OpenAI-compatible server: `POST {base}/chat/completions`.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pool::EndpointPool;
use super::{body_preview, estimate_usage, finish, with_extra, ChatWire};
use crate::api::{Backend, ChatRequest, ChatResponse, FinishReason, RawChat, TeacherError, Usage};
use crate::config::TeacherConfig;
use retort_core::{Message, ToolCall};

/// A turn as sent: role, content and the tool parts. A stored trace is never sent back
/// (DeepSeek rejects `reasoning_content` in input messages; no server needs it).
#[derive(Serialize)]
struct OaiTurn<'a> {
    role: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OaiCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct OaiCallOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: OaiFunctionOut<'a>,
}

#[derive(Serialize)]
struct OaiFunctionOut<'a> {
    name: &'a str,
    arguments: &'a str,
}

impl<'a> OaiTurn<'a> {
    fn of(m: &'a Message) -> OaiTurn<'a> {
        OaiTurn {
            role: &m.role,
            content: &m.content,
            tool_calls: m
                .tool_calls
                .iter()
                .map(|c| OaiCallOut {
                    id: c.id.as_deref(),
                    kind: "function",
                    function: OaiFunctionOut {
                        name: &c.name,
                        arguments: &c.arguments,
                    },
                })
                .collect(),
            tool_call_id: m.tool_call_id.as_deref(),
            name: m.name.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct OaiRequest<'a> {
    model: &'a str,
    messages: Vec<OaiTurn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    tools: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<&'a Value>,
}

#[derive(Deserialize)]
struct OaiResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<OaiChoice>,
    #[serde(default)]
    usage: Option<OaiUsage>,
}

#[derive(Deserialize)]
struct OaiChoice {
    #[serde(default)]
    message: Option<OaiMessage>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OaiMessage {
    #[serde(default)]
    content: Option<String>,
    /// vLLM's reasoning parsers and DeepSeek.
    #[serde(default)]
    reasoning_content: Option<String>,
    /// OpenRouter and others.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<OaiCallIn>>,
}

#[derive(Deserialize)]
struct OaiCallIn {
    #[serde(default)]
    id: Option<String>,
    function: OaiFunctionIn,
}

#[derive(Deserialize)]
struct OaiFunctionIn {
    name: String,
    /// A JSON string per the OpenAI spec; some servers (Ollama) send the object itself.
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct OaiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// `response_format` as OpenAI wants it: passed through when it already has a
/// `type`, otherwise taken as a bare JSON schema and wrapped in `json_schema`.
fn response_format(v: &Value) -> Value {
    if v.get("type").and_then(|t| t.as_str()).is_some() && v.get("properties").is_none() {
        v.clone()
    } else {
        serde_json::json!({
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": v, "strict": true}
        })
    }
}

/// Any OpenAI-compatible server: `POST {base}/chat/completions`.
pub struct OpenAiBackend {
    cfg: TeacherConfig,
    wire: ChatWire,
}

impl OpenAiBackend {
    /// Builds the backend; reads the key from `api_key_env` now, so a missing key is
    /// reported before the run starts.
    pub fn new(cfg: &TeacherConfig) -> Result<OpenAiBackend, String> {
        let wire = ChatWire::new(
            cfg,
            |k| ("authorization", format!("Bearer {}", k.expose())),
            vec![],
            "chat/completions",
        )?;
        Ok(OpenAiBackend {
            cfg: cfg.clone(),
            wire,
        })
    }

    /// The endpoint pool (for per-endpoint stats).
    pub fn pool(&self) -> &Arc<EndpointPool> {
        &self.wire.pool
    }

    fn parse(&self, body: &[u8]) -> Result<ChatResponse, TeacherError> {
        parse_openai(body, &self.cfg.model)
    }
}

/// Parses an OpenAI chat completion body.
pub(crate) fn parse_openai(body: &[u8], model: &str) -> Result<ChatResponse, TeacherError> {
    let r: OaiResponse = serde_json::from_slice(body).map_err(|e| {
        TeacherError::BadResponse(format!(
            "invalid JSON ({e}); body starts {:?}",
            body_preview(body)
        ))
    })?;
    let choice = r
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| TeacherError::BadResponse("no choices in answer".to_string()))?;
    let message = choice
        .message
        .ok_or_else(|| TeacherError::BadResponse("choice has no message".to_string()))?;
    let reasoning = message
        .reasoning_content
        .or(message.reasoning)
        .filter(|r| !r.is_empty());
    let tool_calls: Vec<ToolCall> = message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .map(|c| ToolCall {
            id: c.id,
            name: c.function.name,
            // An endpoint's odd value (a list, a number) is kept as its text, not lost.
            arguments: ToolCall::arguments_text(Some(&c.function.arguments))
                .unwrap_or_else(|| c.function.arguments.to_string()),
        })
        .collect();
    // A reasoning model cut during its trace, and a turn that only calls tools, answer
    // with `content: null`.
    let content = match (message.content, &reasoning) {
        (Some(c), _) => c,
        (None, _) if !tool_calls.is_empty() => String::new(),
        (None, Some(_)) => String::new(),
        (None, None) => {
            return Err(TeacherError::BadResponse(
                "choice has no message content".to_string(),
            ))
        }
    };
    let finish_reason = finish(choice.finish_reason.as_deref());
    if content.trim().is_empty() && tool_calls.is_empty() && finish_reason != FinishReason::Length {
        return Err(TeacherError::BadResponse("empty answer".to_string()));
    }
    let usage = r.usage.map(|u| Usage {
        prompt_tokens: u.prompt_tokens,
        completion_tokens: u.completion_tokens,
    });
    Ok(ChatResponse {
        usage: usage.unwrap_or_default(),
        content,
        finish_reason,
        model: r.model.unwrap_or_else(|| model.to_string()),
        cached: false,
        reasoning,
        tool_calls,
    })
}

#[async_trait]
impl Backend for OpenAiBackend {
    fn provider(&self) -> &str {
        "openai"
    }
    fn live_endpoints(&self) -> Option<usize> {
        self.wire.live_endpoints()
    }
    fn model(&self) -> &str {
        &self.cfg.model
    }
    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, TeacherError> {
        Ok(self.chat_raw(req).await?.response)
    }
    async fn chat_raw(&self, req: &ChatRequest) -> Result<RawChat, TeacherError> {
        let wire = OaiRequest {
            model: &self.cfg.model,
            messages: req.messages.iter().map(OaiTurn::of).collect(),
            temperature: req.temperature,
            top_p: req.top_p,
            max_tokens: req.max_tokens,
            stop: &req.stop,
            seed: req.seed,
            response_format: req.response_format.as_ref().map(response_format),
            reasoning_effort: req.reasoning_effort.as_deref(),
            tools: &req.tools,
            tool_choice: req.tool_choice.as_ref(),
        };
        let body = with_extra(&wire, &self.cfg.extra_body)?;
        self.wire
            .exchange(body, |bytes| {
                let mut response = self.parse(bytes)?;
                if response.usage == Usage::default() {
                    // Some servers (older llama.cpp) report no usage; estimate so limits
                    // and cost still move.
                    response.usage = estimate_usage(req, &response.content);
                }
                Ok(response)
            })
            .await
    }
    fn parse_raw(&self, raw: &str) -> Result<ChatResponse, TeacherError> {
        self.parse(raw.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn openai_body_classification() {
        let ok = br#"{"model":"m","choices":[{"message":{"content":"hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let r = parse_openai(ok, "x").unwrap();
        assert_eq!(r.finish_reason, FinishReason::Length);
        assert_eq!(r.usage.prompt_tokens, 3);
        let e = parse_openai(br#"{"choices":[]}"#, "x").unwrap_err();
        assert_eq!(e.class(), "bad_response");
        let e = parse_openai(br#"{"choices":[{"message":{"con"#, "x").unwrap_err();
        assert!(e.to_string().contains("invalid JSON"), "{e}");
    }

    #[test]
    fn tool_calls_are_read_with_null_content() {
        let body = br#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"type":"function","function":{"name":"now","arguments":{"tz":"UTC"}}}]},"finish_reason":"tool_calls"}]}"#;
        let r = parse_openai(body, "x").unwrap();
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(r.content, "");
        assert_eq!(r.tool_calls.len(), 2);
        assert_eq!(r.tool_calls[0].id.as_deref(), Some("call_1"));
        assert_eq!(r.tool_calls[0].arguments, r#"{"city":"Paris"}"#);
        // An object instead of the spec's string is kept as its JSON text.
        assert_eq!(r.tool_calls[1].arguments, r#"{"tz":"UTC"}"#);
    }

    #[test]
    fn reasoning_is_read_from_either_field() {
        let vllm = br#"{"choices":[{"message":{"content":"4","reasoning_content":"2+2"},"finish_reason":"stop"}]}"#;
        let r = parse_openai(vllm, "x").unwrap();
        assert_eq!(
            (r.content.as_str(), r.reasoning.as_deref()),
            ("4", Some("2+2"))
        );
        let router = br#"{"choices":[{"message":{"content":"4","reasoning":"2+2"},"finish_reason":"stop"}]}"#;
        assert_eq!(
            parse_openai(router, "x").unwrap().reasoning.as_deref(),
            Some("2+2")
        );
        // Cut while thinking: no content, a trace, finish = length.
        let cut = br#"{"choices":[{"message":{"content":null,"reasoning_content":"2+"},"finish_reason":"length"}]}"#;
        let r = parse_openai(cut, "x").unwrap();
        assert_eq!(
            (r.content.as_str(), r.finish_reason),
            ("", FinishReason::Length)
        );
    }
}
