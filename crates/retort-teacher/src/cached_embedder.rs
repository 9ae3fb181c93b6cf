//! An embedder whose vectors are kept in the run's response cache by model and text
//! hash, so a resumed or repeated run never computes one twice.

use std::sync::Arc;

use async_trait::async_trait;

use crate::api::{Embedder, TeacherError};
use crate::cache::ResponseCache;
use crate::key::text_hash;

/// Wraps `inner` with the cache. The cache only saves work: a failed read or write is a
/// warning, never an error of the embedding call.
pub struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    cache: Arc<ResponseCache>,
}

impl CachedEmbedder {
    /// `inner`, with vectors read from and written to `cache`.
    pub fn new(inner: Arc<dyn Embedder>, cache: Arc<ResponseCache>) -> CachedEmbedder {
        CachedEmbedder { inner, cache }
    }
}

#[async_trait]
impl Embedder for CachedEmbedder {
    fn model(&self) -> &str {
        self.inner.model()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        let model = self.model().to_string();
        let hashes: Vec<[u8; 32]> = texts.iter().map(|t| text_hash(t)).collect();
        let mut found = match self.cache.get_embeddings(&model, hashes.clone()).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(
                    "embedding cache read failed ({e}); computing every vector of this run"
                );
                vec![None; texts.len()]
            }
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|i| found[*i].is_none()).collect();
        if !missing.is_empty() {
            let todo: Vec<String> = missing.iter().map(|i| texts[*i].clone()).collect();
            let vecs = self.inner.embed(&todo).await?;
            if vecs.len() != todo.len() {
                return Err(TeacherError::BadResponse(format!(
                    "the embedder returned {} vectors for {} texts",
                    vecs.len(),
                    todo.len()
                )));
            }
            let items: Vec<([u8; 32], Vec<f32>)> = missing
                .iter()
                .zip(&vecs)
                .map(|(i, v)| (hashes[*i], v.clone()))
                .collect();
            if let Err(e) = self.cache.put_embeddings(&model, items) {
                tracing::warn!(
                    "embedding cache write failed ({e}); vectors are not kept for the next run"
                );
            }
            for (i, v) in missing.into_iter().zip(vecs) {
                found[i] = Some(v);
            }
        }
        Ok(found
            .into_iter()
            .map(|v| v.expect("filled above"))
            .collect())
    }
}
