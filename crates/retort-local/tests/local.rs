//! Real-model tests for the embedded teacher, embedder and server.
//!
//! They use SmolLM2-135M and all-MiniLM-L6-v2 from the models directory
//! (`$RETORT_MODELS_DIR` or `<cache>/retort/models`). When a model is missing the test fails
//! with the command that fetches it (`retort models fetch --only smollm2`, or before the CLI
//! exists `cargo run -p retort-local --example fetch -- smollm2 minilm`).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use retort_core::Message;
use retort_local::{
    models_dir, path_of, serve_on, EmbedOptions, KnownModel, LocalEmbedder, LocalOptions,
    LocalTeacher,
};
use retort_teacher::{Backend, ChatRequest, Embedder, FinishReason};
use serde_json::Value;

fn model(m: KnownModel) -> PathBuf {
    match path_of(m, &models_dir()) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

fn opts(parallel: usize) -> LocalOptions {
    LocalOptions {
        threads: 2,
        context_size: 1024,
        parallel,
    }
}

/// One teacher shared by tests that do not care what else is in flight.
fn shared_teacher() -> Arc<LocalTeacher> {
    static T: OnceLock<Arc<LocalTeacher>> = OnceLock::new();
    T.get_or_init(|| {
        Arc::new(LocalTeacher::load(&model(KnownModel::SmolLM2_135M), opts(4)).expect("load"))
    })
    .clone()
}

/// A teacher of the test's own, for tests that compare the answers of two calls: on the
/// shared teacher another test's request can join a call's batch, and llama.cpp's CPU
/// kernels round differently by batch shape (see the ignored batch-invariance test), so
/// the same request alone and batched may differ.
fn alone_teacher() -> Arc<LocalTeacher> {
    Arc::new(LocalTeacher::load(&model(KnownModel::SmolLM2_135M), opts(4)).expect("load"))
}

fn shared_embedder() -> Arc<LocalEmbedder> {
    static E: OnceLock<Arc<LocalEmbedder>> = OnceLock::new();
    E.get_or_init(|| Arc::new(LocalEmbedder::load(&model(KnownModel::MiniLM)).expect("load")))
        .clone()
}

fn greedy(prompt: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(prompt)],
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..Default::default()
    }
}

#[tokio::test]
async fn greedy_generation_is_deterministic_with_real_token_counts() {
    let t = alone_teacher();
    assert_eq!(t.provider(), "local");
    assert_eq!(t.model(), "smollm2-135m-instruct");
    let req = greedy("What is the capital of France? Answer in one sentence.", 32);
    let a = t.chat(&req).await.unwrap();
    let b = t.chat(&req).await.unwrap();
    assert_eq!(a.content, b.content);
    assert!(!a.content.trim().is_empty());
    assert!(a.content.contains("Paris"), "{:?}", a.content);
    assert!(a.usage.prompt_tokens > 10, "{:?}", a.usage);
    assert!(
        (1..=32).contains(&a.usage.completion_tokens),
        "{:?}",
        a.usage
    );
    assert_eq!(a.model, "smollm2-135m-instruct");
}

#[tokio::test]
async fn seeded_sampling_is_reproducible_and_seed_matters() {
    let t = alone_teacher();
    let req = |seed| ChatRequest {
        messages: vec![Message::user("Write a short poem about the sea.")],
        temperature: Some(1.0),
        top_p: Some(0.95),
        max_tokens: Some(24),
        seed: Some(seed),
        ..Default::default()
    };
    let a = t.chat(&req(42)).await.unwrap();
    let b = t.chat(&req(42)).await.unwrap();
    assert_eq!(a.content, b.content, "same seed, same answer");
    let mut any_different = false;
    for seed in 1..=4 {
        any_different |= t.chat(&req(seed)).await.unwrap().content != a.content;
    }
    assert!(any_different, "four other seeds all gave {:?}", a.content);
}

#[tokio::test]
async fn max_tokens_cuts_with_length() {
    let t = shared_teacher();
    let r = t
        .chat(&greedy(
            "Write a long story about a dragon and a knight.",
            5,
        ))
        .await
        .unwrap();
    assert_eq!(r.finish_reason, FinishReason::Length);
    assert_eq!(r.usage.completion_tokens, 5);
}

#[tokio::test]
async fn stop_string_ends_the_answer_before_it() {
    let t = alone_teacher();
    let prompt = "List the days of the week, one per line.";
    let full = t.chat(&greedy(prompt, 48)).await.unwrap().content;
    let chars: Vec<char> = full.chars().collect();
    assert!(
        chars.len() > 20,
        "answer too short to pick a stop: {full:?}"
    );
    let stop: String = chars[12..15].iter().collect();
    let cut = full.find(&stop).unwrap();
    let mut req = greedy(prompt, 48);
    req.stop = vec![stop.clone()];
    let r = t.chat(&req).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(r.content, full[..cut], "stop {stop:?}");
}

#[tokio::test]
#[ignore = "known gap: llama.cpp CPU kernels are not batch-invariant; one prompt diverges at a near-tie after ~25 tokens"]
async fn concurrent_greedy_requests_match_their_single_runs() {
    // A teacher of its own, so the single runs really are alone.
    let t = Arc::new(LocalTeacher::load(&model(KnownModel::SmolLM2_135M), opts(4)).unwrap());
    let prompts = [
        "Name three primary colors.",
        "What is 12 times 12? Explain briefly.",
        "Write a haiku about autumn leaves.",
        "Give one tip for writing clean Python code.",
    ];
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(t.chat(&greedy(p, 40)).await.unwrap());
    }
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let t = Arc::clone(&t);
            let req = greedy(p, 40);
            tokio::spawn(async move { t.chat(&req).await })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let together = h.await.unwrap().unwrap();
        assert_eq!(together.content, alone[i].content, "prompt {i}");
        assert_eq!(together.usage, alone[i].usage, "prompt {i}");
        assert_eq!(together.finish_reason, alone[i].finish_reason, "prompt {i}");
    }
}

#[tokio::test]
async fn concurrent_requests_all_complete_and_agree_on_their_start() {
    let t = Arc::new(LocalTeacher::load(&model(KnownModel::SmolLM2_135M), opts(4)).unwrap());
    let prompts = [
        "Name three primary colors.",
        "What is 12 times 12? Explain briefly.",
        "Write a haiku about autumn leaves.",
        "Give one tip for writing clean Python code.",
    ];
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(t.chat(&greedy(p, 24)).await.unwrap());
    }
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let t = Arc::clone(&t);
            let req = greedy(p, 24);
            tokio::spawn(async move { t.chat(&req).await })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let together = h.await.unwrap().unwrap();
        assert_eq!(together.usage.prompt_tokens, alone[i].usage.prompt_tokens);
        assert!(together.usage.completion_tokens <= 24);
        // Each sequence reads its own prompt: a mixed-up KV cache would change the first words.
        let head: String = alone[i].content.chars().take(16).collect();
        assert!(
            together.content.starts_with(&head),
            "prompt {i}: {:?} vs {:?}",
            together.content,
            alone[i].content
        );
    }
}

#[tokio::test]
async fn json_schema_response_format_yields_matching_json() {
    let t = shared_teacher();
    let mut req = greedy("How many legs does a spider have? Reply in JSON.", 40);
    req.response_format = Some(serde_json::json!({
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {
            "type": "object",
            "properties": {"legs": {"type": "integer"}},
            "required": ["legs"],
            "additionalProperties": false
        }}
    }));
    let r = t.chat(&req).await.unwrap();
    let v: Value =
        serde_json::from_str(&r.content).unwrap_or_else(|e| panic!("{e}: {:?}", r.content));
    assert!(v["legs"].is_i64(), "{v}");
}

/// The grammar checks the token the model picks and redraws under the full mask only
/// when it is rejected. Here every free pick is wrong (the model wants to greet, the
/// schema allows one made-up code), so this reply comes almost wholly from redraws.
#[tokio::test]
async fn a_reply_the_model_would_never_write_is_forced_by_redraws() {
    let t = shared_teacher();
    let mut req = greedy("Say hello to the user.", 40);
    req.response_format = Some(serde_json::json!({
        "type": "json_schema",
        "json_schema": {"name": "code", "schema": {
            "type": "object",
            "properties": {"code": {"type": "string", "enum": ["qzx-7"]}},
            "required": ["code"],
            "additionalProperties": false
        }}
    }));
    let r = t.chat(&req).await.unwrap();
    let v: Value =
        serde_json::from_str(&r.content).unwrap_or_else(|e| panic!("{e}: {:?}", r.content));
    assert_eq!(v, serde_json::json!({"code": "qzx-7"}), "{:?}", r.content);
}

#[tokio::test]
async fn oversized_prompt_is_refused_not_truncated() {
    let t = shared_teacher();
    let r = t.chat(&greedy(&"word ".repeat(3000), 8)).await;
    let e = r.unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[tokio::test]
async fn embedder_ranks_paraphrases_above_unrelated_pairs() {
    let e = shared_embedder();
    assert_eq!(e.dim(), 384);
    let pairs = [
        (
            "A man is playing a guitar.",
            "Someone is strumming a guitar.",
            "The stock market fell sharply today.",
        ),
        (
            "How do I reverse a linked list in Python?",
            "What is the way to invert a linked list using Python?",
            "Bananas are rich in potassium.",
        ),
        (
            "The cat sleeps on the sofa.",
            "A kitten is napping on the couch.",
            "Quarterly revenue exceeded forecasts.",
        ),
    ];
    for (a, para, other) in pairs {
        let v = e
            .embed(&[a.to_string(), para.to_string(), other.to_string()])
            .await
            .unwrap();
        for x in &v {
            assert_eq!(x.len(), 384);
            let norm: f32 = x.iter().map(|f| f * f).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "not unit length: {norm}");
        }
        let (p, u) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
        assert!(p > u + 0.3, "{a:?}: paraphrase {p} vs unrelated {u}");
        assert!(
            u < 0.3,
            "unrelated pair too similar ({u}); padding or pooling is wrong"
        );
    }
}

#[tokio::test]
async fn embedder_matches_reference_golden_vectors() {
    let golden: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/reference/minilm_golden.json"
    )))
    .unwrap();
    let sentences = golden["sentences"].as_array().unwrap();
    let texts: Vec<String> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    // All at once, so sorting and padding are exercised against the unpadded reference.
    let got = shared_embedder().embed(&texts).await.unwrap();
    for (s, v) in sentences.iter().zip(&got) {
        let want: Vec<f32> = s["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let worst = want
            .iter()
            .zip(v)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-3, "{}: max abs diff {worst}", s["text"]);
    }
}

#[tokio::test]
async fn padding_does_not_change_a_vector() {
    let e = shared_embedder();
    let short = "Short sentence.".to_string();
    let long = "This is a much longer sentence that goes on and on, ".repeat(12);
    let alone = e.embed(std::slice::from_ref(&short)).await.unwrap();
    let batched = e.embed(&[long, short]).await.unwrap();
    let worst = alone[0]
        .iter()
        .zip(&batched[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "padding changed the vector by {worst}");
}

#[test]
fn unsorted_batching_gives_the_same_vectors() {
    let dir = model(KnownModel::MiniLM);
    let sorted = retort_local::MiniLm::load(&dir, EmbedOptions::default()).unwrap();
    let unsorted = retort_local::MiniLm::load(
        &dir,
        EmbedOptions {
            batch_size: 3,
            sort_by_length: false,
            ..Default::default()
        },
    )
    .unwrap();
    let texts = [
        "one",
        "a somewhat longer sentence about nothing much",
        "two words",
        "the quick brown fox jumps over the lazy dog again and again",
        "x",
    ];
    let a = sorted.embed(&texts).unwrap();
    let b = unsorted.embed(&texts).unwrap();
    for (x, y) in a.iter().zip(&b) {
        let worst = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{worst}");
    }
}

#[tokio::test]
async fn server_speaks_the_openai_shape() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let teacher: Arc<dyn Backend> = shared_teacher();
    let embedder: Arc<dyn Embedder> = shared_embedder();
    let server = tokio::spawn(serve_on(listener, teacher, Some(embedder), async {
        let _ = stop_rx.await;
    }));
    let base = format!("http://{addr}/v1");
    let http = reqwest::Client::new();

    let models: Value = http
        .get(format!("{base}/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["smollm2-135m-instruct", "all-minilm-l6-v2"]);

    let body = serde_json::json!({
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": "Say hello."}],
        "temperature": 0,
        "max_tokens": 8,
        "stop": ["\n\n"],
    });
    let resp = http
        .post(format!("{base}/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert!(v["choices"][0]["message"]["content"].is_string());
    assert!(["stop", "length"].contains(&v["choices"][0]["finish_reason"].as_str().unwrap()));
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    assert!(u["completion_tokens"].as_u64().unwrap() <= 8);

    let emb: Value = http
        .post(format!("{base}/embeddings"))
        .json(&serde_json::json!({"model": "all-minilm-l6-v2", "input": ["a", "b c"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(emb["data"].as_array().unwrap().len(), 2);
    assert_eq!(emb["data"][1]["index"], 1);
    assert_eq!(emb["data"][0]["embedding"].as_array().unwrap().len(), 384);

    let bad = http
        .post(format!("{base}/chat/completions"))
        .json(&serde_json::json!({"messages": [{"role": "user", "content": "x"}], "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert!(err["error"]["message"].as_str().unwrap().contains("stream"));

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
