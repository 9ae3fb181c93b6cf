//! The Anthropic Messages API: `POST {base}/v1/messages`.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::pool::EndpointPool;
use super::{body_preview, finish, with_extra, ChatWire};
use crate::api::{Backend, ChatRequest, ChatResponse, FinishReason, RawChat, TeacherError, Usage};
use crate::config::TeacherConfig;

/// A turn as sent: a stored reasoning trace is not sent back (Anthropic wants its own
/// signed thinking blocks, which retort does not keep).
#[derive(Serialize)]
struct AnthTurn<'a> {
    role: &'a str,
    content: &'a str,
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
    /// Structured output, in the tool-use form: one tool whose input schema is the
    /// requested schema, which the model is made to call.
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
    /// A `tool_use` block's name and input.
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
        let finish_reason = finish(r.stop_reason.as_deref());
        if content.trim().is_empty() && finish_reason != FinishReason::Length {
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
        let wire = AnthRequest {
            model: &self.cfg.model,
            max_tokens: req.max_tokens.unwrap_or(1024),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: req
                .messages
                .iter()
                .filter(|m| m.role != "system")
                .map(|m| AnthTurn {
                    role: &m.role,
                    content: &m.content,
                })
                .collect(),
            temperature: req.temperature,
            top_p: req.top_p,
            stop_sequences: &req.stop,
            thinking: req
                .max_reasoning_tokens
                .map(|budget| serde_json::json!({"type": "enabled", "budget_tokens": budget})),
            tools: schema
                .iter()
                .map(|schema| {
                    serde_json::json!({
                        "name": OUTPUT_TOOL,
                        "description": "Give the answer as this tool's input.",
                        "input_schema": schema,
                    })
                })
                .collect(),
            // Anthropic refuses a forced tool together with extended thinking; the
            // schema is still validated on the answer.
            tool_choice: schema.as_ref().map(|_| {
                if req.max_reasoning_tokens.is_some() {
                    serde_json::json!({"type": "auto"})
                } else {
                    serde_json::json!({"type": "tool", "name": OUTPUT_TOOL})
                }
            }),
        };
        let body = with_extra(&wire, &self.cfg.extra_body)?;
        self.wire.exchange(body, |bytes| self.parse(bytes)).await
    }
    fn parse_raw(&self, raw: &str) -> Result<ChatResponse, TeacherError> {
        self.parse(raw.as_bytes())
    }
}
