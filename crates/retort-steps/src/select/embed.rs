//! `embed`: a vector per record from the pipeline's embedder (the embedded MiniLM or an
//! embeddings endpoint), stored in `Record.embedding`, with the name of the text view it
//! was computed from in `labels.embedding_text` (semantic `dedup` checks it). The
//! runner's embedder caches vectors by text hash, so a resumed or repeated run does not
//! recompute them.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Failure, Record};
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};
use crate::text_view::{TextView, EMBEDDING_TEXT_LABEL};

/// Options of an `embed` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedOptions {
    /// Which text to embed: `instruction`, `prompt` (instruction + input, default),
    /// `first_user`, `response`, `prompt_response` or `chat`.
    #[serde(default)]
    pub text: TextView,
    /// Texts per embedder call.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
}

fn default_batch() -> usize {
    256
}

/// Build an `embed` step.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: EmbedOptions = parse_options(spec)?;
    if !ctx.has_embedder {
        return Err(vec![
            "`embed` needs an [embedder] section; hint: add [embedder] with provider = \"local\""
                .into(),
        ]);
    }
    if o.batch_size == 0 {
        return Err(vec!["`batch_size` must be at least 1".into()]);
    }
    Ok(Built::new(
        Arc::new(Embed { o: o.clone() }),
        format!(
            "records with an embedding of their {} text (labels.{EMBEDDING_TEXT_LABEL})",
            o.text.name()
        ),
    ))
}

/// The `embed` step.
pub struct Embed {
    o: EmbedOptions,
}

#[async_trait]
impl MapStep for Embed {
    async fn map(&self, ctx: &StepCtx, batch: Vec<Record>) -> Result<Batch, StepError> {
        let embedder = ctx.embedder()?;
        let mut out = Batch::default();
        for chunk in batch.chunks(self.o.batch_size) {
            let texts: Vec<String> = chunk.iter().map(|r| self.o.text.text(r)).collect();
            match embedder.embed(&texts).await {
                Ok(vecs) if vecs.len() == chunk.len() => {
                    for (r, v) in chunk.iter().zip(vecs) {
                        let mut r = r.clone();
                        r.embedding = Some(v);
                        r.labels
                            .insert(EMBEDDING_TEXT_LABEL.into(), self.o.text.name().into());
                        out.records.push(r);
                    }
                }
                Ok(vecs) => {
                    return Err(StepError::Teacher(
                        retort_teacher::TeacherError::BadResponse(format!(
                            "step `{}`: the embedder returned {} vectors for {} texts",
                            ctx.step_id,
                            vecs.len(),
                            chunk.len()
                        )),
                    ))
                }
                Err(e) => {
                    // A transient fault stops the step (uncommitted; a rerun embeds
                    // again) instead of recording the chunk as failed.
                    let e = crate::calls::classify(e)?;
                    for (r, t) in chunk.iter().zip(texts) {
                        out.failures.push(Failure {
                            step: ctx.step_id.clone(),
                            record_id: r.id.clone(),
                            class: e.class().into(),
                            status: e.status(),
                            message: e.to_string(),
                            raw: t,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

crate::map_step!(Embed);
