//! An OpenAI-compatible HTTP server over any [`Backend`] and [`Embedder`], so other tools can
//! use the embedded models and retort's own HTTP teacher can be tested end to end against a
//! real model. Routes: `GET /v1/models`, `POST /v1/chat/completions` (non-streaming, `n` = 1)
//! and `POST /v1/embeddings`. Errors use OpenAI's `{"error": {...}}` shape.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use retort_core::Message;
use retort_teacher::{Backend, ChatRequest, Embedder, FinishReason, TeacherError};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Largest request body accepted.
const MAX_BODY: usize = 16 << 20;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding or accepting failed.
    #[error("{addr}: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

struct State {
    teacher: Arc<dyn Backend>,
    embedder: Option<Arc<dyn Embedder>>,
    next_id: AtomicU64,
}

/// Binds `addr` and serves until `shutdown` completes; in-flight requests then finish before
/// this returns.
pub async fn serve(
    addr: SocketAddr,
    teacher: Arc<dyn Backend>,
    embedder: Option<Arc<dyn Embedder>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io {
            addr: addr.to_string(),
            source,
        })?;
    serve_on(listener, teacher, embedder, shutdown).await
}

/// Like [`serve`] on an already bound listener (bind port 0 to let the OS choose, then read
/// `local_addr()` before handing it over).
pub async fn serve_on(
    listener: TcpListener,
    teacher: Arc<dyn Backend>,
    embedder: Option<Arc<dyn Embedder>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let local = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    tracing::info!(addr = %local, model = teacher.model(), "serving OpenAI-compatible API");
    let state = Arc::new(State {
        teacher,
        embedder,
        next_id: AtomicU64::new(1),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Per-connection failures (e.g. the peer reset) must not stop the server.
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                let mut stop = stop_rx.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(Arc::clone(&state), req));
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        res = conn.as_mut() => {
                            if let Err(e) = res {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                        }
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let response = match (method, path.as_str()) {
        (Method::GET, "/v1/models") => models(&state),
        (Method::POST, "/v1/chat/completions") => match read_json(req).await {
            Ok(body) => chat(&state, body).await,
            Err(r) => r,
        },
        (Method::POST, "/v1/embeddings") => match read_json(req).await {
            Ok(body) => embeddings(&state, body).await,
            Err(r) => r,
        },
        (_, "/v1/models" | "/v1/chat/completions" | "/v1/embeddings") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method not allowed",
        ),
        _ => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            &format!("no route {path}"),
        ),
    };
    Ok(response)
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response parts are valid")
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({"error": {"message": message, "type": kind, "code": status.as_u16()}}),
    )
}

async fn read_json(req: Request<Incoming>) -> Result<Value, Response<Full<Bytes>>> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                &format!("reading body: {e}"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("body is not JSON: {e}"),
        )
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn models(state: &State) -> Response<Full<Bytes>> {
    let mut data = vec![json!({
        "id": state.teacher.model(),
        "object": "model",
        "created": 0,
        "owned_by": "retort",
    })];
    if let Some(e) = &state.embedder {
        data.push(json!({"id": e.model(), "object": "model", "created": 0, "owned_by": "retort"}));
    }
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

#[derive(Deserialize)]
struct ChatBody {
    messages: Vec<WireMessage>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    stop: Option<StopField>,
    seed: Option<u64>,
    n: Option<u32>,
    #[serde(default)]
    stream: bool,
    response_format: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StopField {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    content: Content,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
}

impl Content {
    fn into_text(self) -> Result<String, String> {
        match self {
            Content::Text(t) => Ok(t),
            Content::Parts(parts) => {
                let mut out = String::new();
                for p in parts {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => out.push_str(&t),
                        (kind, _) => return Err(format!("unsupported content part `{kind}`")),
                    }
                }
                Ok(out)
            }
        }
    }
}

fn bad_request(message: &str) -> Response<Full<Bytes>> {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
}

fn teacher_error(e: &TeacherError) -> Response<Full<Bytes>> {
    let status = match e {
        TeacherError::Http { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        TeacherError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.class(), &e.to_string())
}

async fn chat(state: &State, body: Value) -> Response<Full<Bytes>> {
    let body: ChatBody = match serde_json::from_value(body) {
        Ok(b) => b,
        Err(e) => return bad_request(&format!("invalid chat request: {e}")),
    };
    if body.stream {
        return bad_request("stream=true is not supported by this server");
    }
    if body.n.is_some_and(|n| n != 1) {
        return bad_request("only n=1 is supported");
    }
    let mut messages = Vec::with_capacity(body.messages.len());
    for m in body.messages {
        match m.content.into_text() {
            Ok(text) => messages.push(Message::new(m.role, text)),
            Err(e) => return bad_request(&e),
        }
    }
    let req = ChatRequest {
        messages,
        temperature: body.temperature,
        top_p: body.top_p,
        max_tokens: body.max_completion_tokens.or(body.max_tokens),
        stop: match body.stop {
            None => Vec::new(),
            Some(StopField::One(s)) => vec![s],
            Some(StopField::Many(v)) => v,
        },
        seed: body.seed,
        response_format: body.response_format,
        sample_index: 0,
        ..Default::default()
    };
    match state.teacher.chat(&req).await {
        Err(e) => teacher_error(&e),
        Ok(resp) => {
            let id = state.next_id.fetch_add(1, Ordering::Relaxed);
            let finish = match resp.finish_reason {
                FinishReason::Stop => "stop",
                FinishReason::Length => "length",
                FinishReason::ToolCalls => "tool_calls",
                FinishReason::Other => "other",
            };
            json_response(
                StatusCode::OK,
                &json!({
                    "id": format!("chatcmpl-retort-{id}"),
                    "object": "chat.completion",
                    "created": unix_now(),
                    "model": resp.model,
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": resp.content},
                        "finish_reason": finish,
                    }],
                    "usage": {
                        "prompt_tokens": resp.usage.prompt_tokens,
                        "completion_tokens": resp.usage.completion_tokens,
                        "total_tokens": resp.usage.prompt_tokens + resp.usage.completion_tokens,
                    },
                }),
            )
        }
    }
}

#[derive(Deserialize)]
struct EmbedBody {
    input: EmbedInput,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

async fn embeddings(state: &State, body: Value) -> Response<Full<Bytes>> {
    let Some(embedder) = &state.embedder else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "this server has no embedder",
        );
    };
    let body: EmbedBody = match serde_json::from_value(body) {
        Ok(b) => b,
        Err(e) => {
            return bad_request(&format!(
                "invalid embeddings request (input must be a string or an array of strings): {e}"
            ))
        }
    };
    let texts = match body.input {
        EmbedInput::One(s) => vec![s],
        EmbedInput::Many(v) => v,
    };
    match embedder.embed(&texts).await {
        Err(e) => teacher_error(&e),
        Ok(vectors) => {
            let data: Vec<Value> = vectors
                .into_iter()
                .enumerate()
                .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
                .collect();
            // The Embedder trait reports no token counts; zeros keep OpenAI clients parsing.
            json_response(
                StatusCode::OK,
                &json!({
                    "object": "list",
                    "data": data,
                    "model": embedder.model(),
                    "usage": {"prompt_tokens": 0, "total_tokens": 0},
                }),
            )
        }
    }
}
