//! An OpenAI-compatible `/v1/embeddings` endpoint.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use serde::Deserialize;

use super::{api_url, body_preview, header_map, key_from, send_json};
use crate::api::{Embedder, TeacherError};
use crate::config::EmbedderConfig;
use crate::secret::Scrubber;

#[derive(Deserialize)]
struct EmbResponse {
    data: Vec<EmbItem>,
}

#[derive(Deserialize)]
struct EmbItem {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// An OpenAI-compatible `/v1/embeddings` endpoint, batched by `batch_size`, with
/// retries (backoff with full jitter, honouring Retry-After) for retriable errors.
pub struct OpenAiEmbedder {
    model: String,
    http: reqwest::Client,
    url: reqwest::Url,
    base: String,
    secrets: Scrubber,
    batch_size: usize,
    max_retries: u32,
    timeout_ms: u64,
    dim: AtomicUsize,
}

impl OpenAiEmbedder {
    /// Builds the embedder from `[embedder]` (provider `openai`).
    pub fn new(cfg: &EmbedderConfig) -> Result<OpenAiEmbedder, String> {
        let base = cfg
            .base_url
            .clone()
            .ok_or("embedder provider \"openai\" needs base_url")?;
        let model = cfg
            .model
            .clone()
            .ok_or("embedder provider \"openai\" needs model")?;
        let key = key_from(&cfg.api_key_env)?;
        let timeout = Duration::from_secs_f64(cfg.timeout_secs.max(0.001));
        let headers = header_map(
            &Default::default(),
            key.as_ref()
                .map(|k| ("authorization", format!("Bearer {}", k.expose()))),
        )?;
        let secrets = Scrubber::new(key.as_ref(), std::iter::empty());
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build HTTP client: {e}"))?;
        Ok(OpenAiEmbedder {
            model,
            http,
            url: reqwest::Url::parse(&api_url(&base, "embeddings"))
                .map_err(|e| format!("embedder base_url {base:?} does not parse as a URL ({e})"))?,
            base,
            secrets,
            batch_size: cfg.batch_size.max(1),
            max_retries: cfg.max_retries,
            timeout_ms: timeout.as_millis() as u64,
            dim: AtomicUsize::new(cfg.dim.unwrap_or(0)),
        })
    }

    async fn batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        let body = serde_json::to_vec(&serde_json::json!({"model": self.model, "input": texts}))
            .map_err(|e| TeacherError::Other(format!("cannot encode request: {e}")))?;
        let mut attempt = 0u32;
        loop {
            let r = send_json(
                &self.http,
                &self.url,
                &self.base,
                body.clone(),
                &self.secrets,
                self.timeout_ms,
            )
            .await
            .and_then(|(b, _)| self.parse(&b, texts.len()));
            match r {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && attempt < self.max_retries => {
                    let cap = 250u64.saturating_mul(1 << attempt.min(10)).min(30_000);
                    let mut wait = rand::rng().random_range(0..=cap);
                    if let TeacherError::Http {
                        retry_after_ms: Some(ra),
                        ..
                    } = &e
                    {
                        wait = wait.max(*ra);
                    }
                    tracing::debug!(
                        "embeddings attempt {attempt} failed ({e}); retry in {wait} ms"
                    );
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn parse(&self, body: &[u8], n: usize) -> Result<Vec<Vec<f32>>, TeacherError> {
        let r: EmbResponse = serde_json::from_slice(body).map_err(|e| {
            TeacherError::BadResponse(format!(
                "invalid embeddings JSON ({e}); body starts {:?}",
                body_preview(body)
            ))
        })?;
        if r.data.len() != n {
            return Err(TeacherError::BadResponse(format!(
                "asked for {n} embeddings, got {}",
                r.data.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; n];
        for (pos, item) in r.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(pos);
            if i >= n || out[i].is_some() {
                return Err(TeacherError::BadResponse(format!(
                    "embedding index {i} out of range or repeated"
                )));
            }
            out[i] = Some(item.embedding);
        }
        let out: Vec<Vec<f32>> = out.into_iter().flatten().collect();
        let d = out.first().map(|v| v.len()).unwrap_or(0);
        if d == 0 || out.iter().any(|v| v.len() != d) {
            return Err(TeacherError::BadResponse(
                "embeddings of unequal or zero length".to_string(),
            ));
        }
        let known = self.dim.load(Ordering::Relaxed);
        if known != 0 && known != d {
            return Err(TeacherError::BadResponse(format!(
                "embedding dimension {d}, expected {known}"
            )));
        }
        self.dim.store(d, Ordering::Relaxed);
        Ok(out)
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.model
    }
    /// Configured `dim`, else the dimension of the last answer; 0 before the first
    /// call when not configured.
    fn dim(&self) -> usize {
        self.dim.load(Ordering::Relaxed)
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(self.batch_size) {
            out.extend(self.batch(chunk).await?);
        }
        Ok(out)
    }
}
