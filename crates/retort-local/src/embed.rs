//! The embedded embedder: all-MiniLM-L6-v2 (a 6-layer BERT) run by candle on the CPU.
//!
//! Sentence-transformers semantics: tokens truncated at 256, mean pooling over real tokens
//! only, then L2 normalisation, giving 384-d unit vectors. Two things make it fast: texts
//! are sorted by token length before batching and every batch is padded only to its own
//! longest member (the shipped tokenizer.json pads everything to 128, which is mostly
//! padding for short sentences). The attention mask keeps padding out of every real token's
//! context and the pooling ignores it, so a text's vector does not depend on its batch.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use retort_teacher::{Embedder, TeacherError};
use tokenizers::{Tokenizer, TruncationParams};
use tokio::sync::oneshot;

/// Vector dimension of all-MiniLM-L6-v2.
pub const MINILM_DIM: usize = 384;

/// How the embedder batches its work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Texts per forward pass.
    pub batch_size: usize,
    /// Sort texts by token length before batching (less padding work). Vectors are the same
    /// either way; this exists so benchmarks can show the difference.
    pub sort_by_length: bool,
    /// Longest input in tokens (sentence-transformers uses 256 for this model).
    pub max_length: usize,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            batch_size: 128,
            sort_by_length: true,
            max_length: 256,
        }
    }
}

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file is missing or unreadable.
    #[error("{path}: {message}")]
    Files { path: PathBuf, message: String },
    /// The tokenizer rejected the input.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// candle failed (shape, allocation, ...).
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// The embedding thread is gone.
    #[error("embedding thread: {0}")]
    Thread(String),
}

impl From<EmbedError> for TeacherError {
    fn from(e: EmbedError) -> Self {
        TeacherError::Other(format!("local embedder: {e}"))
    }
}

/// The synchronous model: tokenizer plus BERT. `LocalEmbedder` owns one on its thread.
pub struct MiniLm {
    tokenizer: Tokenizer,
    model: BertModel,
    opts: EmbedOptions,
}

impl MiniLm {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, opts: EmbedOptions) -> Result<Self, EmbedError> {
        if opts.batch_size == 0 || opts.max_length < 2 || opts.max_length > 512 {
            return Err(EmbedError::Files {
                path: dir.to_path_buf(),
                message: format!(
                    "invalid options: batch_size {} must be > 0, max_length {} in 2..=512",
                    opts.batch_size, opts.max_length
                ),
            });
        }
        let file = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbedError::Files {
                    path: p,
                    message: "missing".to_string(),
                })
            }
        };
        let config_path = file("config.json")?;
        let tokenizer_path = file("tokenizer.json")?;
        let weights_path = file("model.safetensors")?;
        let files_err = |path: &Path, message: String| EmbedError::Files {
            path: path.to_path_buf(),
            message,
        };
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| files_err(&config_path, e.to_string()))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| files_err(&config_path, e.to_string()))?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| files_err(&tokenizer_path, e.to_string()))?;
        // Padding is done per sorted batch below, to that batch's longest text.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: opts.max_length,
                ..Default::default()
            }))
            .map_err(|e| files_err(&tokenizer_path, e.to_string()))?;
        // SAFETY: the file is memory-mapped read-only; retort never writes to a verified model.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&weights_path], DType::F32, &Device::Cpu)
        }
        .map_err(|e| files_err(&weights_path, e.to_string()))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| files_err(&weights_path, e.to_string()))?;
        Ok(MiniLm {
            tokenizer,
            model,
            opts,
        })
    }

    /// One unit vector per text, in order. CPU-heavy: call it off the async runtime.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        if self.opts.sort_by_length {
            order.sort_by_key(|&i| encodings[i].get_ids().len());
        }
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.opts.batch_size) {
            let ids: Vec<&[u32]> = chunk.iter().map(|&i| encodings[i].get_ids()).collect();
            let vectors = self.forward(&ids)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    fn forward(&self, ids: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = ids.len();
        let longest = ids.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let mut flat_ids = vec![0u32; batch * longest];
        let mut flat_mask = vec![0u32; batch * longest];
        for (row, t) in ids.iter().enumerate() {
            flat_ids[row * longest..row * longest + t.len()].copy_from_slice(t);
            flat_mask[row * longest..row * longest + t.len()].fill(1);
        }
        let dev = Device::Cpu;
        let input_ids = Tensor::from_vec(flat_ids, (batch, longest), &dev)?;
        let mask = Tensor::from_vec(flat_mask, (batch, longest), &dev)?;
        let token_types = input_ids.zeros_like()?;
        let hidden = self.model.forward(&input_ids, &token_types, Some(&mask))?;
        // Mean over real tokens only: padded positions have hidden states too, and averaging
        // them in would pull every short text toward the same "padding" direction.
        let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?;
        let counts = mask_f.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norm = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        let unit = mean.broadcast_div(&norm)?;
        Ok(unit.to_vec2::<f32>()?)
    }
}

type Reply = Result<Vec<Vec<f32>>, EmbedError>;

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Reply>,
}

/// The embedded MiniLM embedder (provider `local`): a [`MiniLm`] on its own thread, fed
/// through a channel so async callers never run the forward pass on a tokio worker.
pub struct LocalEmbedder {
    model_id: String,
    tx: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model_id", &self.model_id)
            .finish()
    }
}

impl LocalEmbedder {
    /// Loads the model directory (as fetched: `path_of(KnownModel::MiniLM, dir)`) with
    /// default options.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_with(dir, EmbedOptions::default())
    }

    /// Loads with explicit batching options.
    pub fn load_with(dir: &Path, opts: EmbedOptions) -> Result<Self, EmbedError> {
        let model = MiniLm::load(dir, opts)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let worker = std::thread::Builder::new()
            .name("retort-embed".to_string())
            .spawn(move || serve_jobs(&model, rx))
            .map_err(|e| EmbedError::Thread(e.to_string()))?;
        Ok(LocalEmbedder {
            model_id: crate::models::KnownModel::MiniLM.name().to_string(),
            tx: Some(tx),
            worker: Some(worker),
        })
    }

    /// Embeds on the embedder's thread and waits, for callers outside an async runtime.
    pub fn embed_blocking(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let rx = self.submit(texts)?;
        rx.blocking_recv()
            .map_err(|_| EmbedError::Thread("stopped before answering".to_string()))?
    }

    fn submit(&self, texts: Vec<String>) -> Result<oneshot::Receiver<Reply>, EmbedError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .as_ref()
            .ok_or_else(|| EmbedError::Thread("shut down".to_string()))?
            .send(Job { texts, reply })
            .map_err(|_| EmbedError::Thread("stopped".to_string()))?;
        Ok(rx)
    }
}

fn serve_jobs(model: &MiniLm, rx: Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        if job.reply.is_closed() {
            continue;
        }
        let texts: Vec<&str> = job.texts.iter().map(String::as_str).collect();
        let _ = job.reply.send(model.embed(&texts));
    }
}

impl Drop for LocalEmbedder {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        MINILM_DIM
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, TeacherError> {
        let rx = self.submit(texts.to_vec())?;
        let vectors = rx.await.map_err(|_| {
            TeacherError::Other("local embedder thread stopped before answering".to_string())
        })??;
        Ok(vectors)
    }
}
