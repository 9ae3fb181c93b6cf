//! The embedded teacher: a GGUF chat model run by llama.cpp on one dedicated OS thread.
//!
//! Async callers send requests over a channel and await a oneshot reply. The thread runs a
//! continuous-batching loop: every step decodes one llama batch holding the next token of
//! every generating sequence plus prompt chunks of newly admitted ones, each sequence with
//! its own KV-cache sequence id and its own sampler. Throughput therefore rises with the
//! number of requests in flight, up to `LocalOptions::parallel`.
//!
//! Size: ~730 lines of code plus tests. The continuous-batching loop owns the llama
//! context, the KV-cache sequence ids and the samplers together; splitting them would
//! expose llama.cpp handles across files that must not outlive the loop's thread.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::OnceLock;
use std::thread::JoinHandle;

use async_trait::async_trait;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use retort_core::Message;
use retort_teacher::{Backend, ChatRequest, ChatResponse, FinishReason, TeacherError, Usage};
use tokio::sync::oneshot;

use crate::models::KnownModel;

/// How the embedded teacher runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOptions {
    /// CPU threads llama.cpp uses for every decode.
    pub threads: usize,
    /// Tokens per sequence (prompt plus completion). A longer prompt is refused; a completion
    /// that reaches the limit ends with `FinishReason::Length`.
    pub context_size: u32,
    /// Most sequences decoded together; further requests wait for a free slot.
    pub parallel: usize,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            context_size: 2048,
            parallel: 8,
        }
    }
}

/// Why the model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The model file is not there.
    #[error("model file {0} does not exist")]
    NotFound(PathBuf),
    /// Options that cannot work (zero threads, zero slots, ...).
    #[error("invalid local teacher options: {0}")]
    Options(String),
    /// llama.cpp refused the file or could not allocate the context.
    #[error("llama.cpp could not load {path}: {message}")]
    Llama { path: PathBuf, message: String },
    /// The GGUF carries no usable chat template.
    #[error("chat template of {path}: {message}")]
    Template { path: PathBuf, message: String },
    /// The worker thread could not be started or died while loading.
    #[error("local model thread: {0}")]
    Thread(String),
}

/// llama.cpp's backend may be initialised only once per process; every teacher (and anything
/// else in the process that drives llama-cpp-2 directly, like the benchmark) shares this one.
pub fn shared_backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp logs every tensor at load; route it to tracing (debug) instead of stderr.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Most template instructions one render may run. A chat template is a program shipped
/// in the model file; real ones spend under a hundred instructions per message, so this
/// allows chats of 50,000+ messages while a runaway template (nested loops over large
/// ranges) fails in a fraction of a second instead of rendering forever.
const TEMPLATE_FUEL: u64 = 5_000_000;

/// Most bytes one rendered prompt may have: far beyond any model's context, and a bound
/// on the memory a runaway template's output can take.
const MAX_PROMPT_BYTES: usize = 16 << 20;

/// The render target: a buffer that refuses to grow past [`MAX_PROMPT_BYTES`].
struct PromptBuf(Vec<u8>);

impl std::io::Write for PromptBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + b.len() > MAX_PROMPT_BYTES {
            return Err(std::io::Error::other(format!(
                "the prompt would exceed {} MiB",
                MAX_PROMPT_BYTES >> 20
            )));
        }
        self.0.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A GGUF chat template rendered with minijinja, as transformers would render it.
#[derive(Debug)]
pub struct ChatTemplate {
    env: minijinja::Environment<'static>,
    bos: String,
    eos: String,
}

impl ChatTemplate {
    /// Compiles a Jinja chat template; `bos`/`eos` are the model's special token texts.
    pub fn new(source: &str, bos: &str, eos: &str) -> Result<Self, String> {
        let mut env = minijinja::Environment::new();
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| e.to_string())?;
        Ok(ChatTemplate {
            env,
            bos: bos.to_string(),
            eos: eos.to_string(),
        })
    }

    /// The template stored in a loaded GGUF model (`tokenizer.chat_template`).
    pub fn from_model(model: &LlamaModel) -> Result<Self, String> {
        let source = model
            .meta_val_str("tokenizer.chat_template")
            .map_err(|e| format!("no tokenizer.chat_template in the GGUF metadata ({e})"))?;
        let vocab = model.vocab();
        let piece = |t: LlamaToken| {
            String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
        };
        Self::new(&source, &piece(vocab.bos()), &piece(vocab.eos()))
    }

    /// The prompt for `messages`, ending with the opening of the assistant's turn.
    pub fn render(&self, messages: &[Message]) -> Result<String, String> {
        let tmpl = self.env.get_template("chat").map_err(|e| e.to_string())?;
        let messages: Vec<minijinja::Value> = messages
            .iter()
            .map(|m| {
                minijinja::Value::from_pairs([
                    ("role", m.role.as_str()),
                    ("content", m.content.as_str()),
                ])
            })
            .collect();
        let mut out = PromptBuf(Vec::new());
        tmpl.render_captured_to(
            minijinja::context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos.as_str(),
                eos_token => self.eos.as_str(),
            },
            &mut out,
        )
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            msg
        })?;
        // minijinja writes whole `str`s, so the bytes are UTF-8.
        String::from_utf8(out.0).map_err(|e| format!("the prompt is not UTF-8: {e}"))
    }
}

struct Job {
    req: ChatRequest,
    reply: oneshot::Sender<Result<ChatResponse, TeacherError>>,
}

/// The embedded llama.cpp teacher (provider `local`).
pub struct LocalTeacher {
    model_id: String,
    tx: Option<Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    context_size: u32,
}

impl std::fmt::Debug for LocalTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTeacher")
            .field("model_id", &self.model_id)
            .field("context_size", &self.context_size)
            .finish()
    }
}

impl LocalTeacher {
    /// Loads a GGUF chat model and starts its decoding thread. Blocks while the weights load
    /// (well under a second for the embedded models); from async code call it inside
    /// `spawn_blocking`. The model id is the known model's canonical name when the file is
    /// one of [`KnownModel`]'s, else the file stem; see [`LocalTeacher::with_model_id`].
    pub fn load(path: &Path, opts: LocalOptions) -> Result<Self, LoadError> {
        if !path.is_file() {
            return Err(LoadError::NotFound(path.to_path_buf()));
        }
        if opts.threads == 0 || opts.parallel == 0 || opts.context_size < 16 {
            return Err(LoadError::Options(format!(
                "threads ({}) and parallel ({}) must be > 0 and context_size ({}) >= 16",
                opts.threads, opts.parallel, opts.context_size
            )));
        }
        if opts.parallel > 64 {
            return Err(LoadError::Options(format!(
                "parallel ({}) must be <= 64",
                opts.parallel
            )));
        }
        let model_id = model_id_for(path);
        let (tx, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), LoadError>>(1);
        let owned_path = path.to_path_buf();
        let id = model_id.clone();
        let context_size = opts.context_size;
        let worker = std::thread::Builder::new()
            .name("retort-llama".to_string())
            .spawn(move || match Engine::load(&owned_path, &opts) {
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
                Ok(loaded) => {
                    // Model and context borrow each other, so both live on this stack.
                    let LoadedModel { model, template } = loaded;
                    let engine = Engine::new(&model, template, &opts, &owned_path, id);
                    match engine {
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                        Ok(mut engine) => {
                            let _ = ready_tx.send(Ok(()));
                            engine.run(rx);
                        }
                    };
                }
            })
            .map_err(|e| LoadError::Thread(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(LocalTeacher {
                model_id,
                tx: Some(tx),
                worker: Some(worker),
                context_size,
            }),
            Ok(Err(e)) => {
                let _ = worker.join();
                Err(e)
            }
            Err(_) => {
                let _ = worker.join();
                Err(LoadError::Thread(
                    "the model thread exited while loading".to_string(),
                ))
            }
        }
    }

    /// Overrides the model id reported in responses and used in cache keys.
    pub fn with_model_id(mut self, id: impl Into<String>) -> Self {
        self.model_id = id.into();
        self
    }

    /// Tokens per sequence (prompt plus completion).
    pub fn context_size(&self) -> u32 {
        self.context_size
    }
}

fn model_id_for(path: &Path) -> String {
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let dir = path.parent().unwrap_or(Path::new(""));
    KnownModel::ALL
        .into_iter()
        .find(|m| m.is_teacher() && m.location(dir) == path)
        .map(|m| m.name().to_string())
        .unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(file)
                .to_string()
        })
}

impl Drop for LocalTeacher {
    fn drop(&mut self) {
        // Closing the channel ends the thread once its in-flight sequences are gone.
        drop(self.tx.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[async_trait]
impl Backend for LocalTeacher {
    fn provider(&self) -> &str {
        "local"
    }

    fn model(&self) -> &str {
        &self.model_id
    }

    async fn chat(&self, req: &ChatRequest) -> Result<ChatResponse, TeacherError> {
        if !req.tools.is_empty() {
            // Not a silent fallback to plain text: a tool-calling step must know.
            return Err(TeacherError::Other(
                "the embedded teacher cannot call tools; offer `tools` to an OpenAI-compatible or Anthropic teacher".to_string(),
            ));
        }
        let (reply, rx) = oneshot::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| TeacherError::Other("local teacher is shut down".to_string()))?;
        tx.send(Job {
            req: req.clone(),
            reply,
        })
        .map_err(|_| TeacherError::Other("local model thread has stopped".to_string()))?;
        rx.await.map_err(|_| {
            TeacherError::Other("local model thread stopped before answering".to_string())
        })?
    }
}

struct LoadedModel {
    model: LlamaModel,
    template: ChatTemplate,
}

/// Per-request decoding state.
struct Seq {
    slot: i32,
    reply: oneshot::Sender<Result<ChatResponse, TeacherError>>,
    sampler: Sampler,
    prompt: Vec<LlamaToken>,
    /// Prompt tokens already in the KV cache.
    fed: usize,
    /// Next position in this sequence.
    pos: i32,
    /// Token sampled last step, to be decoded this step.
    next: Option<LlamaToken>,
    /// Index in the current batch whose logits belong to this sequence.
    logits_at: Option<i32>,
    out: Vec<u8>,
    completion_tokens: u32,
    max_tokens: u32,
    stop: Vec<Vec<u8>>,
}

/// A request's sampling chain and, under a `response_format`, the grammar it must obey.
///
/// The grammar is not a link in the chain: checked against every vocabulary entry it costs
/// more than the forward pass on a large vocabulary (Qwen's 151k tokens ran at 0.58 of free
/// speed that way). As llama.cpp's server does, the chain picks a token from the raw
/// logits first, the grammar checks that one token, and only if it is rejected is the whole
/// vocabulary masked and the token drawn again, so the output is still always grammatical.
struct Sampler {
    grammar: Option<LlamaSampler>,
    chain: LlamaSampler,
    /// Tokens the grammar turned down and that were drawn again, for the debug log.
    redrawn: u32,
}

impl Sampler {
    fn sample(&mut self, ctx: &LlamaContext<'_>, idx: i32) -> LlamaToken {
        let Some(grammar) = &mut self.grammar else {
            // Samples and accepts in one call.
            return self.chain.sample(ctx, idx);
        };
        let mut candidates = ctx.token_data_array_ith(idx);
        self.chain.apply(&mut candidates);
        let picked = candidates.selected_token();
        let allowed = picked.filter(|&tok| {
            let logit = ctx.get_logits_ith(idx)[tok.0 as usize];
            let mut one =
                LlamaTokenDataArray::new(vec![LlamaTokenData::new(tok, logit, 0.0)], false);
            grammar.apply(&mut one);
            one.data[0].logit() != f32::NEG_INFINITY
        });
        let tok = match allowed {
            Some(tok) => tok,
            None => {
                self.redrawn += 1;
                let mut candidates = ctx.token_data_array_ith(idx);
                grammar.apply(&mut candidates);
                self.chain.apply(&mut candidates);
                candidates
                    .selected_token()
                    .expect("the sampling chain ends in a selecting sampler")
            }
        };
        grammar.accept(tok);
        self.chain.accept(tok);
        tok
    }
}

struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: ChatTemplate,
    model_id: String,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    context_size: u32,
    parallel: usize,
    active: Vec<Seq>,
}

impl Engine<'_> {
    fn load(path: &Path, opts: &LocalOptions) -> Result<LoadedModel, LoadError> {
        let llama_err = |message: String| LoadError::Llama {
            path: path.to_path_buf(),
            message,
        };
        let backend = shared_backend().map_err(llama_err)?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| llama_err(e.to_string()))?;
        let _ = opts;
        let template = ChatTemplate::from_model(&model).map_err(|message| LoadError::Template {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(LoadedModel { model, template })
    }

    fn new<'m>(
        model: &'m LlamaModel,
        template: ChatTemplate,
        opts: &LocalOptions,
        path: &Path,
        model_id: String,
    ) -> Result<Engine<'m>, LoadError> {
        let llama_err = |message: String| LoadError::Llama {
            path: path.to_path_buf(),
            message,
        };
        let backend = shared_backend().map_err(llama_err)?;
        let threads = i32::try_from(opts.threads).map_err(|e| LoadError::Options(e.to_string()))?;
        let n_ctx = opts.context_size.saturating_mul(opts.parallel as u32);
        let n_batch = opts.context_size.clamp(512, 2048);
        // One unified KV cache shared by all sequences: llama.cpp then decodes the whole batch
        // in one ubatch (per-stream caches would split it by sequence), and since every
        // sequence is capped at `context_size` the `parallel` of them always fit.
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(n_batch)
            .with_n_ubatch(n_batch.min(512))
            .with_n_seq_max(opts.parallel as u32)
            .with_kv_unified(true)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model
            .new_context(backend, params)
            .map_err(|e| llama_err(e.to_string()))?;
        Ok(Engine {
            model,
            ctx,
            template,
            model_id,
            batch: LlamaBatch::new(n_batch as usize, 1),
            n_batch: n_batch as usize,
            context_size: opts.context_size,
            parallel: opts.parallel,
            active: Vec::new(),
        })
    }

    fn run(&mut self, rx: Receiver<Job>) {
        let mut open = true;
        loop {
            if self.active.is_empty() {
                if !open {
                    return;
                }
                match rx.recv() {
                    Ok(job) => self.admit(job),
                    Err(_) => return,
                }
            }
            while open && self.active.len() < self.parallel {
                match rx.try_recv() {
                    Ok(job) => self.admit(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => open = false,
                }
            }
            self.drop_cancelled();
            if !self.active.is_empty() {
                self.step();
            }
        }
    }

    fn free_slot(&self) -> i32 {
        (0..self.parallel as i32)
            .find(|s| self.active.iter().all(|q| q.slot != *s))
            .expect("admit is only called with a free slot")
    }

    fn admit(&mut self, job: Job) {
        let Job { req, reply } = job;
        match self.prepare(&req) {
            Err(e) => {
                let _ = reply.send(Err(e));
            }
            Ok((prompt, sampler)) => {
                let slot = self.free_slot();
                // A finished sequence's cells were freed when it ended; this is belt and braces.
                let _ = self.ctx.clear_kv_cache_seq(Some(slot as u32), None, None);
                let room = self.context_size - prompt.len() as u32;
                let max_tokens = req.max_tokens.map_or(room, |m| m.min(room));
                self.active.push(Seq {
                    slot,
                    reply,
                    sampler,
                    prompt,
                    fed: 0,
                    pos: 0,
                    next: None,
                    logits_at: None,
                    out: Vec::new(),
                    completion_tokens: 0,
                    max_tokens,
                    stop: req
                        .stop
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(|s| s.as_bytes().to_vec())
                        .collect(),
                });
                self.active.sort_by_key(|s| s.slot);
            }
        }
    }

    fn prepare(&self, req: &ChatRequest) -> Result<(Vec<LlamaToken>, Sampler), TeacherError> {
        if req.messages.is_empty() {
            return Err(TeacherError::Other(
                "chat request has no messages".to_string(),
            ));
        }
        let text = self
            .template
            .render(&req.messages)
            .map_err(|e| TeacherError::Other(format!("chat template: {e}")))?;
        let vocab = self.model.vocab();
        let mut prompt = vocab.tokenize(text.as_bytes(), false, true);
        if vocab.should_add_bos() && prompt.first() != Some(&vocab.bos()) {
            prompt.insert(0, vocab.bos());
        }
        if prompt.is_empty() {
            return Err(TeacherError::Other(
                "the rendered prompt is empty".to_string(),
            ));
        }
        if prompt.len() >= self.context_size as usize {
            return Err(TeacherError::Other(format!(
                "prompt of {} tokens does not fit the local context of {} tokens",
                prompt.len(),
                self.context_size
            )));
        }
        if req.max_tokens == Some(0) {
            return Err(TeacherError::Other(
                "max_tokens must be at least 1".to_string(),
            ));
        }
        Ok((prompt, self.sampler_for(req)?))
    }

    fn sampler_for(&self, req: &ChatRequest) -> Result<Sampler, TeacherError> {
        let grammar = match &req.response_format {
            Some(format) => match grammar_for(format)? {
                Some(grammar) => Some(
                    LlamaSampler::grammar(self.model, &grammar, "root").map_err(|e| {
                        TeacherError::Other(format!("response_format grammar: {e}"))
                    })?,
                ),
                None => None,
            },
            None => None,
        };
        let mut chain = Vec::new();
        // OpenAI's defaults: temperature 1, top_p 1.
        let temperature = req.temperature.unwrap_or(1.0);
        if temperature <= 0.0 {
            chain.push(LlamaSampler::greedy());
        } else {
            let top_p = req.top_p.unwrap_or(1.0);
            if top_p < 1.0 {
                chain.push(LlamaSampler::top_p(top_p, 1));
            }
            chain.push(LlamaSampler::temp(temperature));
            // No seed means a fresh draw, as with HTTP endpoints.
            let seed = req.seed.unwrap_or_else(random_seed);
            chain.push(LlamaSampler::dist((seed ^ (seed >> 32)) as u32));
        }
        Ok(Sampler {
            grammar,
            chain: LlamaSampler::chain_simple(chain),
            redrawn: 0,
        })
    }

    fn drop_cancelled(&mut self) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].reply.is_closed() {
                let seq = self.active.remove(i);
                let _ = self
                    .ctx
                    .clear_kv_cache_seq(Some(seq.slot as u32), None, None);
            } else {
                i += 1;
            }
        }
    }

    fn step(&mut self) {
        self.batch.clear();
        for seq in &mut self.active {
            seq.logits_at = None;
        }
        // Towards batch invariance: llama.cpp's CPU kernels pick code paths (and so round)
        // by how many tokens a call holds, so a prompt is prefilled in calls of its own, never
        // mixed with other prompts. Decode calls still differ in row count (1 alone, k when
        // batched), so greedy outputs can differ at near-ties between a request run alone and
        // batched (see the ignored test); padding lone decodes to two rows did not fix that
        // and cost single-stream speed, so it was dropped.
        if let Some(seq) = self.active.iter_mut().find(|s| s.fed < s.prompt.len()) {
            let n = (seq.prompt.len() - seq.fed).min(self.n_batch);
            for i in 0..n {
                let last = seq.fed + i + 1 == seq.prompt.len();
                self.batch
                    .add(seq.prompt[seq.fed + i], seq.pos, &[seq.slot], last)
                    .expect("chunk fits the batch");
                seq.pos += 1;
                if last {
                    seq.logits_at = Some(self.batch.n_tokens() - 1);
                }
            }
            seq.fed += n;
        } else {
            for seq in &mut self.active {
                if let Some(tok) = seq.next.take() {
                    self.batch
                        .add(tok, seq.pos, &[seq.slot], true)
                        .expect("batch sized for every slot");
                    seq.logits_at = Some(self.batch.n_tokens() - 1);
                    seq.pos += 1;
                }
            }
        }

        if let Err(e) = self.ctx.decode(&mut self.batch) {
            tracing::error!(error = %e, sequences = self.active.len(), "llama.cpp decode failed");
            for seq in std::mem::take(&mut self.active) {
                let _ = self
                    .ctx
                    .clear_kv_cache_seq(Some(seq.slot as u32), None, None);
                let _ = seq.reply.send(Err(TeacherError::Other(format!(
                    "llama.cpp decode failed: {e}"
                ))));
            }
            return;
        }

        let vocab = self.model.vocab();
        let mut finished = Vec::new();
        for (i, seq) in self.active.iter_mut().enumerate() {
            let Some(idx) = seq.logits_at else { continue };
            let tok = seq.sampler.sample(&self.ctx, idx);
            seq.completion_tokens += 1;
            let mut reason = None;
            if vocab.is_eog(tok) {
                reason = Some(FinishReason::Stop);
            } else {
                let before = seq.out.len();
                vocab.token_to_piece_into(tok, &mut seq.out, false, None);
                if let Some(cut) = find_stop(&seq.out, before, &seq.stop) {
                    seq.out.truncate(cut);
                    reason = Some(FinishReason::Stop);
                } else if seq.completion_tokens >= seq.max_tokens {
                    reason = Some(FinishReason::Length);
                } else {
                    seq.next = Some(tok);
                }
            }
            if let Some(r) = reason {
                finished.push((i, r));
            }
        }
        for (i, reason) in finished.into_iter().rev() {
            let seq = self.active.remove(i);
            let _ = self
                .ctx
                .clear_kv_cache_seq(Some(seq.slot as u32), None, None);
            if seq.sampler.grammar.is_some() {
                tracing::debug!(
                    tokens = seq.completion_tokens,
                    redrawn = seq.sampler.redrawn,
                    "grammar-constrained reply finished"
                );
            }
            let response = ChatResponse {
                content: String::from_utf8_lossy(&seq.out).into_owned(),
                finish_reason: reason,
                usage: Usage {
                    prompt_tokens: seq.prompt.len() as u64,
                    completion_tokens: u64::from(seq.completion_tokens),
                },
                model: self.model_id.clone(),
                cached: false,
                reasoning: None,
                tool_calls: Vec::new(),
            };
            let _ = seq.reply.send(Ok(response));
        }
    }
}

/// Earliest stop string that ends in the bytes appended since `before`; returns where to cut.
fn find_stop(out: &[u8], before: usize, stops: &[Vec<u8>]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|s| {
            let from = before.saturating_sub(s.len().saturating_sub(1));
            out[from..]
                .windows(s.len())
                .position(|w| w == s.as_slice())
                .map(|p| from + p)
        })
        .min()
}

/// A llama.cpp grammar for an OpenAI `response_format` (or a bare JSON schema).
fn grammar_for(format: &serde_json::Value) -> Result<Option<String>, TeacherError> {
    let Some(schema) = retort_teacher::requested_schema(format)? else {
        return Ok(None);
    };
    llama_cpp_2::json_schema_to_grammar(&schema.to_string())
        .map(Some)
        .map_err(|e| TeacherError::Other(format!("response_format schema: {e}")))
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_found_across_token_boundary() {
        let stops = vec![b"END".to_vec()];
        assert_eq!(find_stop(b"abcEN", 3, &stops), None);
        assert_eq!(find_stop(b"abcEND!", 5, &stops), Some(3));
        assert_eq!(
            find_stop(b"ENDabc", 4, &stops),
            None,
            "already checked earlier"
        );
    }

    #[test]
    fn earliest_stop_wins() {
        let stops = vec![b"yz".to_vec(), b"x".to_vec()];
        assert_eq!(find_stop(b"axyz", 0, &stops), Some(1));
    }

    #[test]
    fn template_renders_messages_and_generation_prompt() {
        let t = ChatTemplate::new(
            "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
            "<s>",
            "</s>",
        )
        .unwrap();
        let out = t
            .render(&[Message::system("be brief"), Message::user("hi")])
            .unwrap();
        assert_eq!(out, "<system>be brief<user>hi<assistant>");
    }

    #[test]
    fn runaway_template_output_is_an_error() {
        // Found while fuzzing: a loop around the messages made gigabytes of prompt (and
        // could run the process out of memory) before the fuel ran out.
        let t = ChatTemplate::new(
            "{% for i in range(100000) %}{{ 'a' * 1000 }}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let e = t.render(&[Message::user("hi")]).map(|p| p.len());
        assert!(e.as_ref().is_err_and(|e| e.contains("MiB")), "{e:?}");
    }

    #[test]
    fn runaway_template_is_an_error_not_a_hang() {
        // Found while fuzzing: a template is a program from the model file, and nested
        // loops (10^10 iterations here) rendered "forever" on every request.
        let t = ChatTemplate::new(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        let start = std::time::Instant::now();
        let e = t.render(&[Message::user("hi")]).unwrap_err();
        assert!(e.contains("fuel"), "{e}");
        assert!(start.elapsed().as_secs() < 10, "{:?}", start.elapsed());
    }

    #[test]
    fn json_schema_response_format_becomes_a_grammar() {
        let g = grammar_for(&serde_json::json!({
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}
        }))
        .unwrap()
        .unwrap();
        assert!(g.contains("root"), "{g}");
        assert_eq!(
            grammar_for(&serde_json::json!({"type": "text"})).unwrap(),
            None
        );
    }
}
