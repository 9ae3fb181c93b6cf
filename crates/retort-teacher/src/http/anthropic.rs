//! The Anthropic Messages API: `POST {base}/v1/messages`.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::pool::EndpointPool;
use super::{body_preview, finish, with_extra, ChatWire};
use crate::api::{Backend, ChatRequest, ChatResponse, FinishReason, RawChat, TeacherError, Usage};
use crate::config::TeacherConfig;
use retort_core::{Message, ToolCall};
use serde_json::json;

/// A turn as sent: text, or content blocks when it carries tool calls or results. A
/// stored reasoning trace is not sent back (Anthropic wants its own signed thinking
/// blocks, which retort does not keep).
#[derive(Serialize)]
struct AnthTurn<'a> {
    role: &'a str,
    content: serde_json::Value,
}

/// The request's turns in Anthropic's form: system turns left out (they go to `system`),
/// an assistant turn's tool calls as `tool_use` blocks, and `tool` turns as
/// `tool_result` blocks of one user turn (consecutive results share it, since the API
/// wants user and assistant turns to alternate).
fn anthropic_turns(messages: &[Message]) -> Result<Vec<AnthTurn<'_>>, TeacherError> {
    let mut out: Vec<AnthTurn<'_>> = Vec::new();
    for m in messages.iter().filter(|m| m.role != "system") {
        if m.role == "tool" {
            let block = json!({
                "type": "tool_result",
                "tool_use_id": m.tool_call_id.as_deref().ok_or_else(|| TeacherError::Other(
                    "a `tool` turn has no tool_call_id, which Anthropic needs to match it to its call".into(),
                ))?,
                "content": m.content,
            });
            match out.last_mut() {
                Some(AnthTurn {
                    role: "user",
                    content: serde_json::Value::Array(blocks),
                }) if blocks.iter().all(|b| b["type"] == "tool_result") => blocks.push(block),
                _ => out.push(AnthTurn {
                    role: "user",
                    content: json!([block]),
                }),
            }
            continue;
        }
        if m.tool_calls.is_empty() {
            out.push(AnthTurn {
                role: &m.role,
                content: json!(m.content),
            });
            continue;
        }
        let mut blocks = Vec::new();
        if !m.content.trim().is_empty() {
            blocks.push(json!({"type": "text", "text": m.content}));
        }
        for c in &m.tool_calls {
            let input: serde_json::Value = serde_json::from_str(&c.arguments).map_err(|e| {
                TeacherError::Other(format!(
                    "the arguments of a call to `{}` in the prompt are not JSON ({e}); Anthropic takes them as an object",
                    c.name
                ))
            })?;
            blocks.push(json!({
                "type": "tool_use",
                "id": c.id.as_deref().ok_or_else(|| TeacherError::Other(format!(
                    "a call to `{}` in the prompt has no id, which Anthropic needs", c.name
                )))?,
                "name": c.name,
                "input": input,
            }));
        }
        out.push(AnthTurn {
            role: &m.role,
            content: serde_json::Value::Array(blocks),
        });
    }
    Ok(out)
}

/// OpenAI-format tool definitions as Anthropic's `{name, description, input_schema}`.
fn anthropic_tools(tools: &[serde_json::Value]) -> Result<Vec<serde_json::Value>, TeacherError> {
    tools
        .iter()
        .map(|t| {
            let f = t.get("function").unwrap_or(t);
            let name = f.get("name").and_then(|n| n.as_str()).ok_or_else(|| {
                TeacherError::Other(format!("a tool definition has no function name: {t}"))
            })?;
            Ok(json!({
                "name": name,
                "description": f.get("description").cloned().unwrap_or(json!("")),
                "input_schema": f.get("parameters").cloned().unwrap_or(json!({"type": "object"})),
            }))
        })
        .collect()
}

/// OpenAI's `tool_choice` in Anthropic's words.
fn anthropic_tool_choice(choice: &serde_json::Value) -> Result<serde_json::Value, TeacherError> {
    Ok(match choice {
        serde_json::Value::String(s) if s == "auto" => json!({"type": "auto"}),
        serde_json::Value::String(s) if s == "required" => json!({"type": "any"}),
        serde_json::Value::String(s) if s == "none" => json!({"type": "none"}),
        other => match other.pointer("/function/name").and_then(|n| n.as_str()) {
            Some(name) => json!({"type": "tool", "name": name}),
            None => {
                return Err(TeacherError::Other(format!(
                    "tool_choice {other} has no Anthropic equivalent; use \"auto\", \"required\", \"none\" or {{\"type\": \"function\", \"function\": {{\"name\": …}}}}"
                )))
            }
        },
    })
}

#[derive(Serialize)]
struct AnthRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<AnthTurn<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    /// Extended thinking: `{"type": "enabled", "budget_tokens": N}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<serde_json::Value>,
    /// The request's tools, and for structured output one more: a tool whose input
    /// schema is the requested schema, which the model is made to call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<serde_json::Value>,
}

/// The tool a structured request makes the model call; its input is the answer.
const OUTPUT_TOOL: &str = "output";

#[derive(Deserialize)]
struct AnthResponse {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<AnthBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<AnthUsage>,
}

#[derive(Deserialize)]
struct AnthBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    /// A `thinking` block's trace.
    #[serde(default)]
    thinking: Option<String>,
    /// A `tool_use` block's id, name and input.
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct AnthUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// The Anthropic Messages API: `POST {base}/v1/messages`, system messages moved to the
/// `system` field. `response_format` is sent in the tool-use form (one `output` tool
/// whose input schema is the requested schema) and `max_reasoning_tokens` as extended
/// thinking. `seed` has no Anthropic equivalent and is not sent (it still keys the cache).
pub struct AnthropicBackend {
    cfg: TeacherConfig,
    wire: ChatWire,
}

impl AnthropicBackend {
    /// Builds the backend; reads the key from `api_key_env` now.
    pub fn new(cfg: &TeacherConfig) -> Result<AnthropicBackend, String> {
        let version = cfg.anthropic_version.as_deref().unwrap_or("2023-06-01");
        let version = HeaderValue::from_str(version)
            .map_err(|_| format!("anthropic_version {version:?} is not a header value"))?;
        let wire = ChatWire::new(
            cfg,
            |k| ("x-api-key", k.expose().to_string()),
            vec![(HeaderName::from_static("anthropic-version"), version)],
            "messages",
        )?;
        Ok(AnthropicBackend {
            cfg: cfg.clone(),
            wire,
        })
    }

    /// The endpoint pool.
    pub fn pool(&self) -> &Arc<EndpointPool> {
        &self.wire.pool
    }

    fn parse(&self, body: &[u8]) -> Result<ChatResponse, TeacherError> {
        let r: AnthResponse = serde_json::from_slice(body).map_err(|e| {
            TeacherError::BadResponse(format!(
                "invalid JSON ({e}); body starts {:?}",
                body_preview(body)
            ))
        })?;
        let tool_input = r
            .content
            .iter()
            .find(|b| b.kind == "tool_use" && b.name.as_deref() == Some(OUTPUT_TOOL))
            .and_then(|b| b.input.as_ref());
        // A structured answer is the output tool's input, as JSON text like any other
        // server's structured reply; otherwise the text blocks.
        let content: String = match tool_input {
            Some(input) => input.to_string(),
            None => r
                .content
                .iter()
                .filter(|b| b.kind == "text")
                .filter_map(|b| b.text.as_deref())
                .collect(),
        };
        let thinking: String = r
            .content
            .iter()
            .filter(|b| b.kind == "thinking")
            .filter_map(|b| b.thinking.as_deref())
            .collect::<Vec<_>>()
            .join("\n\n");
        let tool_calls: Vec<ToolCall> = r
            .content
            .iter()
            .filter(|b| b.kind == "tool_use" && b.name.as_deref() != Some(OUTPUT_TOOL))
            .map(|b| ToolCall {
                id: b.id.clone(),
                name: b.name.clone().unwrap_or_default(),
                arguments: b
                    .input
                    .as_ref()
                    .map_or_else(|| "{}".to_string(), |i| i.to_string()),
            })
            .collect();
        let finish_reason = finish(r.stop_reason.as_deref());
        if content.trim().is_empty()
            && tool_calls.is_empty()
            && finish_reason != FinishReason::Length
        {
            return Err(TeacherError::BadResponse(
                "answer has no text content".to_string(),
            ));
        }
        Ok(ChatResponse {
            usage: r
                .usage
                .map(|u| Usage {
                    prompt_tokens: u.input_tokens,
                    completion_tokens: u.output_tokens,
                })
                .unwrap_or_default(),
            content,
            finish_reason,
            model: r.model.unwrap_or_else(|| self.cfg.model.clone()),
            cached: false,
            reasoning: (!thinking.is_empty()).then_some(thinking),
            tool_calls,
        })
    }
}

#[async_trait]
impl Backend for AnthropicBackend {
    fn provider(&self) -> &str {
        "anthropic"
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
        let system: Vec<&str> = req
            .messages
            .iter()
            .filter(|m| m.role == "system")
            .map(|m| m.content.as_str())
            .collect();
        let schema = match &req.response_format {
            Some(f) => crate::api::requested_schema(f)?,
            None => None,
        };
        if schema.is_some() && !req.tools.is_empty() {
            return Err(TeacherError::Other(
                "Anthropic takes a schema in the tool-use form, so one request cannot ask for both a JSON schema and tools; drop one of them".into(),
            ));
        }
        let mut tools = anthropic_tools(&req.tools)?;
        let mut tool_choice = req
            .tool_choice
            .as_ref()
            .map(anthropic_tool_choice)
            .transpose()?;
        if let Some(schema) = &schema {
            tools.push(json!({
                "name": OUTPUT_TOOL,
                "description": "Give the answer as this tool's input.",
                "input_schema": schema,
            }));
            // Anthropic refuses a forced tool together with extended thinking; the
            // schema is still validated on the answer.
            tool_choice = Some(if req.max_reasoning_tokens.is_some() {
                json!({"type": "auto"})
            } else {
                json!({"type": "tool", "name": OUTPUT_TOOL})
            });
        }
        let wire = AnthRequest {
            model: &self.cfg.model,
            max_tokens: req.max_tokens.unwrap_or(1024),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: anthropic_turns(&req.messages)?,
            temperature: req.temperature,
            top_p: req.top_p,
            stop_sequences: &req.stop,
            thinking: req
                .max_reasoning_tokens
                .map(|budget| json!({"type": "enabled", "budget_tokens": budget})),
            tools,
            tool_choice,
        };
        let body = with_extra(&wire, &self.cfg.extra_body)?;
        self.wire.exchange(body, |bytes| self.parse(bytes)).await
    }
    fn parse_raw(&self, raw: &str) -> Result<ChatResponse, TeacherError> {
        self.parse(raw.as_bytes())
    }
}
