//! Teachers and the embedder as a run uses them: built on first use from the
//! [`Factory`] the caller supplies, so a pipeline that declares a big local model but
//! only runs cheap steps never loads it.

use std::sync::Arc;

use async_trait::async_trait;
use retort_teacher::{
    Backend, ChatRequest, ChatResponse, Client, Embedder, EmbedderConfig, Shared, Teacher,
    TeacherConfig, TeacherError,
};
use tokio::sync::OnceCell;

/// Builds the backends behind teachers and the embedder. The CLI supplies one that
/// knows the HTTP providers and the embedded models; tests supply their own.
pub trait Factory: Send + Sync {
    /// A backend for the named teacher.
    fn backend(&self, name: &str, cfg: &TeacherConfig) -> Result<Arc<dyn Backend>, String>;
    /// The embedder.
    fn embedder(&self, cfg: &EmbedderConfig) -> Result<Arc<dyn Embedder>, String>;
}

/// A teacher whose client is built on first use, so a pipeline that declares a big
/// local model but only runs cheap steps never loads it.
pub(crate) struct LazyTeacher {
    pub(crate) name: String,
    pub(crate) cfg: TeacherConfig,
    pub(crate) factory: Arc<dyn Factory>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) client: OnceCell<Result<Arc<Client>, String>>,
}

#[async_trait]
impl Teacher for LazyTeacher {
    fn name(&self) -> &str {
        &self.name
    }
    fn model(&self) -> &str {
        &self.cfg.model
    }
    async fn chat(&self, step: &str, req: ChatRequest) -> Result<ChatResponse, TeacherError> {
        let client = self
            .client
            .get_or_init(|| async {
                let backend = self.factory.backend(&self.name, &self.cfg)?;
                Ok(Arc::new(Client::new(
                    &self.name,
                    &self.cfg,
                    backend,
                    self.shared.clone(),
                )))
            })
            .await;
        match client {
            Ok(c) => c.chat(step, req).await,
            Err(e) => Err(TeacherError::CircuitOpen(format!(
                "teacher `{}` could not start: {e}",
                self.name
            ))),
        }
    }
}

/// The embedder, built on first use (the run wraps it in a
/// [`retort_teacher::CachedEmbedder`] so vectors are computed once per run directory).
pub(crate) struct LazyEmbedder {
    pub(crate) cfg: EmbedderConfig,
    pub(crate) factory: Arc<dyn Factory>,
    pub(crate) inner: OnceCell<Result<Arc<dyn Embedder>, String>>,
}

impl LazyEmbedder {
    async fn get(&self) -> Result<&Arc<dyn Embedder>, TeacherError> {
        self.inner
            .get_or_init(|| async { self.factory.embedder(&self.cfg) })
            .await
            .as_ref()
            .map_err(|e| TeacherError::CircuitOpen(format!("the embedder could not start: {e}")))
    }
}

#[async_trait]
impl Embedder for LazyEmbedder {
    fn model(&self) -> &str {
        self.cfg.model_id()
    }
    fn dim(&self) -> usize {
        self.cfg.dim_or_default()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        self.get().await?.embed(texts).await
    }
}
