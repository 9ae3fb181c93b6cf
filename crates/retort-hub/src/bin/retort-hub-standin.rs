//! `retort-hub-standin`: the local Hugging Face Hub stand-in as a program, for trying
//! `retort push` (or the official client) without the network.
//!
//! ```sh
//! export HUB_TOKEN=$(head -c 16 /dev/urandom | xxd -p)
//! retort-hub-standin --root /tmp/hub --addr 127.0.0.1:8765 &
//! HF_ENDPOINT=http://127.0.0.1:8765 HF_TOKEN=$HUB_TOKEN retort push runs/quickstart --repo me/quickstart
//! ```
//!
//! Accepted tokens come from an environment variable (never the command line, which
//! other users of the machine can read).

use std::path::PathBuf;

use clap::Parser;
use retort_hub::standin::{Standin, StandinConfig};

/// A local Hugging Face Hub stand-in storing repositories on disk.
#[derive(Parser)]
#[command(name = "retort-hub-standin")]
struct Args {
    /// Where repositories are stored.
    #[arg(long)]
    root: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765")]
    addr: std::net::SocketAddr,
    /// Environment variable holding the accepted token(s), comma-separated.
    #[arg(long, default_value = "HUB_TOKEN")]
    token_env: String,
    /// Files of at least this many bytes are uploaded through LFS.
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    lfs_threshold: u64,
    /// Offer multipart LFS uploads in parts of this many bytes.
    #[arg(long)]
    multipart_chunk: Option<u64>,
}

fn main() -> std::process::ExitCode {
    let a = Args::parse();
    let tokens: Vec<String> = match std::env::var(&a.token_env) {
        Ok(v) => v
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        Err(_) => Vec::new(),
    };
    if tokens.is_empty() {
        eprintln!(
            "error: ${} holds no token; export {}=<a token> so clients can authenticate",
            a.token_env, a.token_env
        );
        return std::process::ExitCode::from(2);
    }
    let cfg = StandinConfig {
        root: a.root,
        tokens,
        user: "retort-tester".into(),
        lfs_threshold: a.lfs_threshold,
        multipart_chunk: a.multipart_chunk,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    rt.block_on(async {
        match Standin::start_on(cfg, a.addr).await {
            Ok(s) => {
                println!("listening on {}", s.url());
                let _ = tokio::signal::ctrl_c().await;
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: binding {}: {e}", a.addr);
                std::process::ExitCode::from(1)
            }
        }
    })
}
