//! The server's life: bind, accept, serve each connection with [`crate::routes`], go
//! down for an outage and come back on the same port, stop when asked or dropped.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use crate::config::MockConfig;
use crate::request_log::RequestLog;
use crate::routes::handle;
use crate::state::{Outage, State};

/// A running mock server. Dropping it stops accepting connections and closes the open
/// ones.
pub struct MockServer {
    /// Address it listens on (`127.0.0.1:<port>`).
    pub addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl MockServer {
    /// Binds `127.0.0.1:0` and serves in the background on the current tokio runtime.
    pub async fn start(cfg: MockConfig) -> std::io::Result<MockServer> {
        Self::start_on(cfg, "127.0.0.1:0".parse().expect("literal address")).await
    }

    /// Binds the given address (the binary uses it for a fixed port).
    pub async fn start_on(cfg: MockConfig, bind: SocketAddr) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (control, control_rx) = mpsc::unbounded_channel();
        let state = Arc::new(State::new(cfg, control));
        let (tx, rx) = watch::channel(false);
        tokio::spawn(serve(listener, addr, state.clone(), rx, control_rx));
        Ok(MockServer {
            addr,
            state,
            shutdown: tx,
        })
    }

    /// `http://127.0.0.1:<port>/v1`, the OpenAI-style base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:<port>`, the Anthropic-style base URL.
    pub fn root_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received on any path.
    pub fn requests(&self) -> u64 {
        self.state.counter.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/chat/completions`.
    pub fn chat_requests(&self) -> u64 {
        self.state.chat.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/messages`.
    pub fn messages_requests(&self) -> u64 {
        self.state.messages.load(Ordering::SeqCst)
    }

    /// Requests to `/v1/embeddings`.
    pub fn embedding_requests(&self) -> u64 {
        self.state.embeddings.load(Ordering::SeqCst)
    }

    /// A copy of the request log (empty when `record` is off).
    pub fn log(&self) -> Vec<RequestLog> {
        self.state.log.lock().expect("mock log poisoned").clone()
    }

    /// Outages started so far (by [`MockServer::outage`] or `outage_after`).
    pub fn outages(&self) -> u64 {
        self.state.outages.load(Ordering::SeqCst)
    }

    /// Goes down for `dur`, then serves again on the same address: the listener is
    /// closed (new connections are refused) and every open connection is dropped
    /// mid-request (the client sees a reset or an early EOF). Returns once the server
    /// is down; it comes back by itself. An outage asked for during another one is
    /// ignored.
    pub async fn outage(&self, dur: Duration) {
        let (ack, done) = oneshot::channel();
        if self
            .state
            .control
            .send(Outage {
                dur,
                ack: Some(ack),
            })
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Stops accepting and closes open connections; later requests see "connection refused".
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Resolves once shutdown was asked for (or the server handle is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|v| *v).await;
}

/// Serves until shutdown, going down and re-binding the same address on each outage.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
    mut control: mpsc::UnboundedReceiver<Outage>,
) {
    let mut listener = Some(listener);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => match rebind(addr, &mut stop).await {
                Some(l) => l,
                None => return,
            },
        };
        let Some(outage) = accept_loop(l, &state, &mut stop, &mut control).await else {
            return;
        };
        // The listener and every connection task are gone by now.
        state.outages.fetch_add(1, Ordering::SeqCst);
        tracing::info!("mock outage for {:?} on {addr}", outage.dur);
        if let Some(ack) = outage.ack {
            let _ = ack.send(());
        }
        tokio::select! {
            _ = tokio::time::sleep(outage.dur) => {}
            _ = stopped(&mut stop) => return,
        }
        // Outages asked for while down are void: tell their callers it already began.
        while let Ok(o) = control.try_recv() {
            if let Some(ack) = o.ack {
                let _ = ack.send(());
            }
        }
    }
}

/// Binds `addr` again after an outage. On unix tokio sets `SO_REUSEADDR`, so the
/// closed connections in TIME_WAIT do not block it; retries for ~10 s anyway in case
/// the port is briefly held, then gives up (the server stays down).
async fn rebind(addr: SocketAddr, stop: &mut watch::Receiver<bool>) -> Option<TcpListener> {
    for _ in 0..200 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(e) => tracing::warn!("mock re-bind of {addr} failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stopped(stop) => return None,
        }
    }
    tracing::error!("mock could not re-bind {addr}; staying down");
    None
}

/// Accepts and serves until shutdown (`None`) or an outage request (`Some`). Either
/// way the listener is dropped and every connection task aborted before it returns.
async fn accept_loop(
    listener: TcpListener,
    state: &Arc<State>,
    stop: &mut watch::Receiver<bool>,
    control: &mut mpsc::UnboundedReceiver<Outage>,
) -> Option<Outage> {
    let mut conns = JoinSet::new();
    let exit = loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            // Reap finished connections so the set stays small.
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            o = control.recv() => break o,
            _ = stopped(stop) => break None,
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("mock accept failed: {e}");
                // E.g. out of file descriptors: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = conn.await;
        });
    };
    drop(listener);
    // Aborting a task drops its connection (and the request it is serving) at once.
    conns.shutdown().await;
    exit
}

// Whole-server tests: each one talks HTTP to a running mock, whichever part it checks.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::is_bad_prompt;
    use serde_json::{json, Value};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A bare HTTP/1.1 answer: status, lower-case headers, body.
    struct Answer {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// POSTs `body` with `Connection: close` over a raw socket (the mock has no HTTP
    /// client dependency) and reads the whole answer.
    async fn post(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<Answer> {
        let mut s = TcpStream::connect(addr).await?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no complete answer")
        })?;
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Answer {
            status,
            headers,
            body: body.to_string(),
        })
    }

    fn chat(prompt: &str) -> String {
        json!({"model": "m", "messages": [{"role": "user", "content": prompt}]}).to_string()
    }

    async fn post_chat(addr: SocketAddr, prompt: &str) -> std::io::Result<Answer> {
        post(addr, "/v1/chat/completions", &chat(prompt)).await
    }

    #[tokio::test]
    async fn a_bad_prompt_is_bad_on_every_attempt() {
        let server = MockServer::start(MockConfig {
            rate_bad_prompt: 0.3,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut bad = 0;
        for i in 0..30 {
            let prompt = format!("question {i}");
            let mut seen = Vec::new();
            for _ in 0..3 {
                let a = post_chat(server.addr, &prompt).await.unwrap();
                assert_eq!(a.status, 200);
                seen.push(serde_json::from_str::<Value>(&a.body).is_err());
            }
            assert!(seen.iter().all(|b| *b == seen[0]), "{prompt}: {seen:?}");
            assert_eq!(seen[0], is_bad_prompt(&prompt, 7, 0.3));
            bad += usize::from(seen[0]);
        }
        assert!((3..=18).contains(&bad), "{bad} of 30 bad");
        let log = server.log();
        let labelled = log
            .iter()
            .filter(|l| l.injected == Some("bad_prompt"))
            .count();
        assert_eq!(labelled, bad * 3);
    }

    #[tokio::test]
    async fn outage_refuses_and_drops_then_recovers_on_the_same_port() {
        let server = MockServer::start(MockConfig {
            latency: Duration::from_millis(800),
            ..Default::default()
        })
        .await
        .unwrap();
        let addr = server.addr;
        let in_flight = tokio::spawn(async move { post_chat(addr, "slow").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        server.outage(Duration::from_millis(1000)).await;
        // The request that was being served is cut, not answered.
        let cut = tokio::time::timeout(Duration::from_millis(500), in_flight)
            .await
            .expect("in-flight request not dropped")
            .unwrap();
        assert!(cut.is_err(), "in-flight request was answered");
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "accepted while down"
        );
        // Back on the same port after the outage.
        let mut up = false;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_ok() {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "never came back");
        assert!(started.elapsed() >= Duration::from_millis(950));
        let a = post_chat(addr, "after").await.unwrap();
        assert_eq!(a.status, 200);
        assert!(a.body.contains("echo: after"));
        assert_eq!(server.outages(), 1);
    }

    #[tokio::test]
    async fn outage_after_fires_once() {
        let server = MockServer::start(MockConfig {
            outage_after: Some((2, Duration::from_millis(500))),
            ..Default::default()
        })
        .await
        .unwrap();
        let addr = server.addr;
        for i in 0..2 {
            assert_eq!(post_chat(addr, &format!("{i}")).await.unwrap().status, 200);
        }
        // The third starts the outage and is dropped.
        assert!(post_chat(addr, "third").await.is_err());
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "accepted while down"
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        for i in 0..5 {
            let a = post_chat(addr, &format!("later {i}")).await.unwrap();
            assert_eq!(a.status, 200);
        }
        assert_eq!(server.outages(), 1);
        assert_eq!(server.chat_requests(), 8);
    }

    #[tokio::test]
    async fn quota_headers_count_down_then_429() {
        let server = MockServer::start(MockConfig {
            quota_rpm: Some(3),
            anthropic_headers: true,
            ..Default::default()
        })
        .await
        .unwrap();
        for want in ["2", "1", "0"] {
            let a = post_chat(server.addr, "q").await.unwrap();
            assert_eq!(a.status, 200);
            assert_eq!(a.header("x-ratelimit-limit-requests"), Some("3"));
            assert_eq!(a.header("x-ratelimit-remaining-requests"), Some(want));
            assert!(a
                .header("x-ratelimit-reset-requests")
                .unwrap()
                .ends_with('s'));
        }
        let a = post_chat(server.addr, "q").await.unwrap();
        assert_eq!(a.status, 429);
        // One request refills in 60 / 3 = 20 s.
        assert_eq!(a.header("retry-after"), Some("20"));
        assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));
        let reset = a.header("x-ratelimit-reset-requests").unwrap();
        assert!(reset.starts_with("59.") || reset == "1m0s", "{reset}");
        assert!(a.header("anthropic-ratelimit-requests-limit").is_none());
        let log = server.log();
        assert_eq!(log.last().unwrap().injected, Some("quota"));

        // Anthropic names on /v1/messages, sharing the same (empty) bucket.
        let body = json!({"model": "m", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
        let a = post(server.addr, "/v1/messages", &body).await.unwrap();
        assert_eq!(a.status, 429);
        assert_eq!(a.header("anthropic-ratelimit-requests-limit"), Some("3"));
        assert_eq!(
            a.header("anthropic-ratelimit-requests-remaining"),
            Some("0")
        );
        let reset = a.header("anthropic-ratelimit-requests-reset").unwrap();
        let re = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
        assert!(re.is_match(reset), "{reset}");
        assert!(a.header("x-ratelimit-limit-requests").is_none());
    }
}
