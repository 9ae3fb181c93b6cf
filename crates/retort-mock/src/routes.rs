//! One request from bytes to answer: read it, log it, check the path, the key, the body
//! and the quota, then answer, misbehave or hang, after the configured latency.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use crate::config::Injected;
use crate::draw::lognormal_delay;
use crate::faults::{error_reply, garbled};
use crate::ratelimit::{add_quota_headers, quota_refusal};
use crate::replies::{anthropic_body, embeddings_body, json_response, last_user, openai_body};
use crate::request_log::RequestLog;
use crate::state::State;

/// The hyper service of every connection.
pub(crate) async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let seq = state.counter.fetch_add(1, Ordering::SeqCst);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body_bytes = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(json_response(
                400,
                json!({"error": e.to_string()}).to_string(),
            ))
        }
    };
    let at = Instant::now();
    let body: Value = serde_json::from_slice(&body_bytes).unwrap_or(Value::Null);
    let user = last_user(&body);

    let Routed {
        status,
        injected,
        resp,
        down,
    } = route(&state, seq, &method, &path, &headers, &body, &user);
    if state.cfg.record {
        state
            .log
            .lock()
            .expect("mock log poisoned")
            .push(RequestLog {
                seq,
                at,
                method,
                path,
                headers,
                body: String::from_utf8_lossy(&body_bytes).into_owned(),
                last_user: user,
                status,
                injected: injected.map(|i| i.label()),
            });
    }
    if down {
        // The outage this request started drops its connection; never answer it.
        std::future::pending::<()>().await;
    }
    // A quota refusal is the rate limiter answering, not the model: no delay.
    if injected != Some(Injected::Quota) {
        let delay = match state.cfg.latency_mean {
            Some(mean) => lognormal_delay(mean, state.cfg.latency_sigma, state.cfg.seed, seq),
            None => state.cfg.latency,
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    if injected == Some(Injected::Hang) {
        tokio::time::sleep(state.cfg.hang_for).await;
    }
    Ok(resp)
}

/// What [`route`] decided for one request.
struct Routed {
    /// Status logged (0 for a hang or a dropped request).
    status: u16,
    injected: Option<Injected>,
    resp: Response<Full<Bytes>>,
    /// This request started the automatic outage: it must not be answered.
    down: bool,
}

impl Routed {
    fn plain(status: u16, resp: Response<Full<Bytes>>) -> Routed {
        Routed {
            status,
            injected: None,
            resp,
            down: false,
        }
    }
}

/// Decides what one request gets, counting it and starting the automatic outage.
fn route(
    state: &State,
    seq: u64,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &Value,
    user: &str,
) -> Routed {
    // Accept both `/v1/x` and `/x` so a base URL with or without `/v1` works.
    let p = path.strip_prefix("/v1").unwrap_or(path);
    if method == "GET" && p == "/models" {
        let b = json!({"object": "list", "data": [{"id": state.cfg.model, "object": "model"}]});
        return Routed::plain(200, json_response(200, b.to_string()));
    }
    if method != "POST" || !matches!(p, "/chat/completions" | "/messages" | "/embeddings") {
        let b = json!({"error": {"message": format!("no route {method} {path}")}});
        return Routed::plain(404, json_response(404, b.to_string()));
    }
    match p {
        "/chat/completions" => {
            let index = state.chat.fetch_add(1, Ordering::SeqCst);
            if state.outage_due(index) {
                return Routed {
                    status: 0,
                    injected: None,
                    resp: json_response(503, "{}".to_string()),
                    down: true,
                };
            }
        }
        "/messages" => {
            state.messages.fetch_add(1, Ordering::SeqCst);
        }
        _ => {
            state.embeddings.fetch_add(1, Ordering::SeqCst);
        }
    };
    let anthropic = p == "/messages";
    if let Err(got) = state.key_ok(headers) {
        let b = json!({"error": {"message": format!("Incorrect API key provided: {got}"), "type": "invalid_request_error"}});
        return Routed::plain(401, json_response(401, b.to_string()));
    }
    if body.is_null() {
        let b = json!({"error": {"message": "request body is not JSON"}});
        return Routed::plain(400, json_response(400, b.to_string()));
    }
    let is_chat = p != "/embeddings";
    let echo = state.cfg.echo_auth.then(|| received_key(headers));
    if let Some(auth) = &echo {
        if is_chat && user.contains("LEAK-4XX") {
            let b = json!({"error": {"message": format!("bad request from key {auth}")}});
            let mut resp = json_response(400, b.to_string());
            add_echo_header(&mut resp, auth);
            return Routed::plain(400, resp);
        }
    }
    let quota = if is_chat { state.take_quota() } else { None };
    let (status, injected, mut resp) = match quota.as_ref().and_then(|q| q.refused) {
        Some(wait) => quota_refusal(wait, anthropic),
        None => answer(
            state,
            seq,
            p,
            body,
            user,
            is_chat,
            anthropic,
            echo.as_deref(),
        ),
    };
    if let Some(q) = &quota {
        add_quota_headers(&mut resp, q, anthropic, state.cfg.anthropic_headers);
    }
    if let Some(auth) = &echo {
        add_echo_header(&mut resp, auth);
    }
    Routed {
        status,
        injected,
        resp,
        down: false,
    }
}

/// `echo_auth`'s response header.
fn add_echo_header(resp: &mut Response<Full<Bytes>>, auth: &str) {
    if let Ok(v) = hyper::header::HeaderValue::from_str(auth) {
        resp.headers_mut().insert("x-echo-authorization", v);
    }
}

/// A request past the key, body and quota checks: injected misbehaviour or an answer.
/// `echo` is the received key when `echo_auth` is on.
#[allow(clippy::too_many_arguments)]
fn answer(
    state: &State,
    seq: u64,
    p: &str,
    body: &Value,
    user: &str,
    is_chat: bool,
    anthropic: bool,
    echo: Option<&str>,
) -> (u16, Option<Injected>, Response<Full<Bytes>>) {
    let inj = state.pick_injection(seq, user, is_chat);
    if let Some((status, resp)) = error_reply(inj, anthropic) {
        return (status, inj, resp);
    }
    let full = if p == "/embeddings" {
        embeddings_body(state, body)
    } else {
        let schema = crate::structured::requested_schema(body);
        let mut reply = state.reply_for(user, schema.as_ref());
        if let Some(auth) = echo {
            reply = reply.replace("{{AUTH}}", auth);
            if user.contains("LEAK-CONTENT") {
                reply.push_str(&format!(" (debug: key {auth})"));
            }
        }
        let length = inj == Some(Injected::Length);
        let thinks = state.cfg.reasoning.is_some()
            || (anthropic && body.get("thinking").is_some_and(|t| t["type"] == "enabled"));
        let trace = thinks.then(|| crate::structured::trace_for(user));
        let call = if state.cfg.call_tools {
            crate::tools::call_for(body, user)
        } else {
            None
        };
        if anthropic {
            let structured = schema.is_some() && state.cfg.honour_schema;
            anthropic_body(state, seq, body, reply, length, trace, structured, call)
        } else {
            openai_body(state, seq, body, reply, length, trace, call)
        }
    };
    let text = match garbled(inj, &full) {
        Some(broken) => broken,
        None if is_chat && user.contains("LEAK-HTML") && echo.is_some() => {
            format!(
                "<html>debug_auth: Bearer {}</html>",
                echo.unwrap_or_default()
            )
        }
        None => full,
    };
    (200, inj, json_response(200, text))
}

impl State {
    /// `Err` with the key received when `require_key` is set and the request lacks it.
    fn key_ok(&self, headers: &[(String, String)]) -> Result<(), String> {
        let Some(want) = &self.cfg.require_key else {
            return Ok(());
        };
        let got = received_key(headers);
        if &got == want {
            Ok(())
        } else {
            Err(got)
        }
    }
}

/// The key a request carried (`Authorization: Bearer …` or `x-api-key`), or "".
fn received_key(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .find_map(|(k, v)| match k.as_str() {
            "authorization" => Some(v.trim_start_matches("Bearer ").to_string()),
            "x-api-key" => Some(v.clone()),
            _ => None,
        })
        .unwrap_or_default()
}
