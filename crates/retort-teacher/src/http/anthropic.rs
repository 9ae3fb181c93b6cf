//! The Anthropic Messages API: `POST {base}/v1/messages`.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue};
use retort_core::Message;
use serde::{Deserialize, Serialize};

use super::pool::EndpointPool;
use super::{body_preview, finish, with_extra, ChatWire};
use crate::api::{Backend, ChatRequest, ChatResponse, FinishReason, RawChat, TeacherError, Usage};
use crate::config::TeacherConfig;

#[derive(Serialize)]
struct AnthRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<&'a Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

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
}

#[derive(Deserialize)]
struct AnthUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
}

/// The Anthropic Messages API: `POST {base}/v1/messages`, system messages moved to the
/// `system` field. `seed` and `response_format` have no Anthropic equivalent and are
/// not sent (they still key the cache).
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
        let content: String = r
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect();
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
        let wire = AnthRequest {
            model: &self.cfg.model,
            max_tokens: req.max_tokens.unwrap_or(1024),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            messages: req.messages.iter().filter(|m| m.role != "system").collect(),
            temperature: req.temperature,
            top_p: req.top_p,
            stop_sequences: &req.stop,
        };
        let body = with_extra(&wire, &self.cfg.extra_body)?;
        self.wire.exchange(body, |bytes| self.parse(bytes)).await
    }
    fn parse_raw(&self, raw: &str) -> Result<ChatResponse, TeacherError> {
        self.parse(raw.as_bytes())
    }
}
