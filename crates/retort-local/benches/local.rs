//! Embedded-model benchmarks: `cargo bench -p retort-local`.
//!
//! 1. Raw llama-cpp-2 single-sequence greedy loop vs `LocalTeacher` single stream (same model,
//!    threads, prompt and token count) — want ≥ 90%.
//! 2. `LocalTeacher` aggregate tokens/s with 8 concurrent requests vs single stream — want ≥ 2.5×.
//! 3. MiniLM sentences/s on 2,000 short sentences, sorted vs unsorted batching (vectors equal).
//!
//! Uses Qwen2.5-Coder-0.5B when fetched, else SmolLM2-135M. `RETORT_BENCH_THREADS` (default 2).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use retort_core::Message;
use retort_local::{
    models_dir, path_of, EmbedOptions, KnownModel, LocalOptions, LocalTeacher, MiniLm,
};
use retort_teacher::{Backend, ChatRequest};

const GEN: u32 = 128;
const PROMPT: &str = "Write a Python function that parses a CSV file and returns the average of each numeric column. Explain each step.";

fn main() {
    let threads: usize = std::env::var("RETORT_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let dir = models_dir();
    let which = if path_of(KnownModel::Qwen25Coder05B, &dir).is_ok() {
        KnownModel::Qwen25Coder05B
    } else {
        KnownModel::SmolLM2_135M
    };
    let path = path_of(which, &dir).unwrap_or_else(|e| panic!("{e}"));
    println!("model {which}, threads {threads}, {GEN} generated tokens per request");

    // The teacher first: it owns llama.cpp's process-wide backend init.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let teacher = Arc::new(
        LocalTeacher::load(
            &path,
            LocalOptions {
                threads,
                context_size: 1024,
                parallel: 8,
            },
        )
        .unwrap(),
    );
    let req = |i: usize| ChatRequest {
        messages: vec![Message::user(format!("{PROMPT} (variant {i})"))],
        temperature: Some(0.0),
        max_tokens: Some(GEN),
        // Never stop early, so every run generates exactly GEN tokens.
        stop: vec![],
        ..Default::default()
    };
    // Warm-up.
    rt.block_on(teacher.chat(&ChatRequest {
        max_tokens: Some(8),
        ..req(0)
    }))
    .unwrap();

    // Raw loop: same prompt text as the teacher renders, same greedy sampling and token count.
    let raw_tps = raw_generation(&path, threads, &req(0).messages);

    let single_tps = {
        let mut best = 0f64;
        for _ in 0..2 {
            let t0 = Instant::now();
            let r = rt.block_on(teacher.chat(&req(0))).unwrap();
            best = best.max(r.usage.completion_tokens as f64 / t0.elapsed().as_secs_f64());
        }
        best
    };
    let concurrent_tps = {
        let t0 = Instant::now();
        let total: u64 = rt.block_on(async {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let t = Arc::clone(&teacher);
                    let r = req(i);
                    tokio::spawn(async move { t.chat(&r).await.unwrap().usage.completion_tokens })
                })
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.unwrap();
            }
            sum
        });
        total as f64 / t0.elapsed().as_secs_f64()
    };
    println!("raw llama-cpp-2 single sequence: {raw_tps:.1} tok/s");
    println!(
        "LocalTeacher single stream:      {single_tps:.1} tok/s ({:.0}% of raw)",
        100.0 * single_tps / raw_tps
    );
    println!(
        "LocalTeacher 8 concurrent:       {concurrent_tps:.1} tok/s aggregate ({:.2}x single)",
        concurrent_tps / single_tps
    );
    drop(teacher);

    // Embedder.
    let mdir = path_of(KnownModel::MiniLM, &dir).unwrap_or_else(|e| panic!("{e}"));
    let words = [
        "data", "model", "river", "green", "quickly", "engine", "music", "theory", "small", "city",
        "write", "python", "cloud", "table", "light",
    ];
    let sentences: Vec<String> = (0..2000)
        .map(|i| {
            let n = 4 + (i * 7) % 14;
            let s: Vec<&str> = (0..n)
                .map(|j| words[(i * 31 + j * 17) % words.len()])
                .collect();
            format!("{} {}.", i, s.join(" "))
        })
        .collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let sorted = MiniLm::load(&mdir, EmbedOptions::default()).unwrap();
    let unsorted = MiniLm::load(
        &mdir,
        EmbedOptions {
            sort_by_length: false,
            ..Default::default()
        },
    )
    .unwrap();
    sorted.embed(&refs[..64]).unwrap();
    let t0 = Instant::now();
    let a = sorted.embed(&refs).unwrap();
    let sorted_sps = refs.len() as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let b = unsorted.embed(&refs).unwrap();
    let unsorted_sps = refs.len() as f64 / t0.elapsed().as_secs_f64();
    let worst = a
        .iter()
        .zip(&b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0f32, f32::max);
    println!("MiniLM sorted batches (64):      {sorted_sps:.0} sentences/s");
    println!("MiniLM unsorted batches (64):    {unsorted_sps:.0} sentences/s (max |diff| vs sorted {worst:.2e})");
}

fn raw_generation(path: &std::path::Path, threads: usize, messages: &[Message]) -> f64 {
    // One llama.cpp backend per process; the teacher's is shared.
    let backend: &LlamaBackend = retort_local::llama::shared_backend().expect("backend");
    let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).unwrap();
    let tmpl = retort_local::ChatTemplate::from_model(&model).unwrap();
    let text = tmpl.render(messages).unwrap();
    let vocab = model.vocab();
    let tokens = vocab.tokenize(text.as_bytes(), false, true);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(1024))
        .with_n_threads(threads as i32)
        .with_n_threads_batch(threads as i32);
    let mut ctx = model.new_context(backend, params).unwrap();
    let mut best = 0f64;
    for _ in 0..2 {
        ctx.clear_kv_cache();
        // Timed like the teacher's request latency: prefill plus generation, EOG ends it.
        let t0 = Instant::now();
        let mut batch = LlamaBatch::new(512, 1);
        batch.add_sequence(&tokens, 0, false).unwrap();
        ctx.decode(&mut batch).unwrap();
        let mut sampler = LlamaSampler::greedy();
        let mut pos = tokens.len() as i32;
        let mut out = Vec::new();
        let mut n = 0u32;
        while n < GEN {
            let tok = sampler.sample(&ctx, batch.n_tokens() - 1);
            n += 1;
            if vocab.is_eog(tok) {
                break;
            }
            vocab.token_to_piece_into(tok, &mut out, false, None);
            if n == GEN {
                break;
            }
            batch.clear();
            batch.add(tok, pos, &[0], true).unwrap();
            pos += 1;
            ctx.decode(&mut batch).unwrap();
        }
        best = best.max(f64::from(n) / t0.elapsed().as_secs_f64());
    }
    best
}
