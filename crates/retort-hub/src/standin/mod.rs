//! A local stand-in for the Hugging Face Hub: exactly the endpoints `retort push` and
//! the official `huggingface_hub` client's `create_repo` / `upload_folder` /
//! `create_commit` use, storing repositories, commits and files on disk
//! ([`store`]), checking the bearer token on every Hub endpoint ([`routes`]).
//!
//! It exists so the push is tested without a network, and it is itself checked
//! against the official Python client: both upload the same folder and must store the
//! same files. Upload hrefs are one-time tickets, as pre-signed storage URLs are: they
//! carry no token. Regular-versus-LFS is decided by size (`lfs_threshold`), and LFS
//! objects larger than `multipart_chunk` (when set) are offered the multipart transfer.

pub mod routes;
pub mod store;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use store::Store;

/// How the stand-in behaves.
#[derive(Clone)]
pub struct StandinConfig {
    /// Where repositories are stored.
    pub root: PathBuf,
    /// Tokens accepted for writing (compared exactly).
    pub tokens: Vec<String>,
    /// The namespace a repository goes to when `organization` is absent.
    pub user: String,
    /// Files of at least this many bytes are answered `uploadMode: lfs`. The Hub's own
    /// rule also sends binary files and `.gitattributes` patterns to LFS; by size alone
    /// a test can choose which path each file takes.
    pub lfs_threshold: u64,
    /// LFS objects larger than this are offered the multipart transfer in parts of
    /// this size.
    pub multipart_chunk: Option<u64>,
}

impl std::fmt::Debug for StandinConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandinConfig")
            .field("root", &self.root)
            .field("tokens", &format_args!("[{} redacted]", self.tokens.len()))
            .field("user", &self.user)
            .field("lfs_threshold", &self.lfs_threshold)
            .field("multipart_chunk", &self.multipart_chunk)
            .finish()
    }
}

impl StandinConfig {
    /// A stand-in at `root` accepting `token`, with the Hub's 10 MB regular-file limit.
    pub fn new(root: impl Into<PathBuf>, token: impl Into<String>) -> StandinConfig {
        StandinConfig {
            root: root.into(),
            tokens: vec![token.into()],
            user: "retort-tester".into(),
            lfs_threshold: 10 * 1024 * 1024,
            multipart_chunk: None,
        }
    }
}

/// An LFS upload waiting for its bytes.
#[derive(Clone, Debug)]
pub(crate) struct Ticket {
    pub oid: String,
    pub size: u64,
}

/// Shared server state.
pub(crate) struct State {
    pub cfg: StandinConfig,
    pub store: Store,
    /// One writer at a time: commits read-modify-write the repository metadata.
    pub write: Mutex<()>,
    pub tickets: Mutex<HashMap<String, Ticket>>,
    pub next_ticket: std::sync::atomic::AtomicU64,
    pub base: String,
    /// Requests by route name, for tests.
    pub hits: Mutex<HashMap<&'static str, u64>>,
}

/// A running stand-in; dropping it stops the server.
pub struct Standin {
    /// Listening address.
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: watch::Sender<bool>,
}

impl Standin {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    pub async fn start(cfg: StandinConfig) -> std::io::Result<Standin> {
        Self::start_on(cfg, "127.0.0.1:0".parse().expect("literal address")).await
    }

    /// Binds `addr` and serves on the current tokio runtime.
    pub async fn start_on(cfg: StandinConfig, addr: SocketAddr) -> std::io::Result<Standin> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            store: Store::new(cfg.root.clone()),
            cfg,
            write: Mutex::new(()),
            tickets: Mutex::new(HashMap::new()),
            next_ticket: Default::default(),
            base: format!("http://{addr}"),
            hits: Mutex::new(HashMap::new()),
        });
        let (stop, mut rx) = watch::channel(false);
        let st = state.clone();
        let conn_rx = rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = rx.wait_for(|v| *v) => return,
                    acc = listener.accept() => {
                        let Ok((stream, _)) = acc else { continue };
                        let st = st.clone();
                        let mut rx2 = conn_rx.clone();
                        tokio::spawn(async move {
                            let svc = service_fn(move |req| routes::handle(st.clone(), req));
                            let conn = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc);
                            tokio::select! {
                                _ = conn => {}
                                _ = rx2.wait_for(|v| *v) => {}
                            }
                        });
                    }
                }
            }
        });
        Ok(Standin { addr, state, stop })
    }

    /// `http://127.0.0.1:<port>`: the value for `HF_ENDPOINT`.
    pub fn url(&self) -> String {
        self.state.base.clone()
    }

    /// The store the server writes.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Requests served by route (`create`, `preupload`, `lfs_batch`, `lfs_put`,
    /// `lfs_part`, `lfs_complete`, `lfs_verify`, `commit`, `branch`, `validate_yaml`,
    /// `info`, `unauthorized`).
    pub fn hits(&self, route: &str) -> u64 {
        self.state
            .hits
            .lock()
            .expect("hits lock")
            .get(route)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
