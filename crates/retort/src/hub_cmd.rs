//! `retort card` and `retort push`: read the token and endpoint from the environment,
//! call `retort_hub`, print what happened. The token is read into a `Secret` and never
//! printed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// `retort card RUN_DIR [--out FILE]`.
pub fn card(run_dir: &Path, out: Option<&Path>, examples: usize) -> anyhow::Result<ExitCode> {
    // Writing into the run directory makes this a writer: not beside a run.
    let _lock = match out {
        Some(_) => None,
        None => Some(retort_runner::rundir::RunLock::acquire(run_dir).map_err(anyhow::Error::msg)?),
    };
    let (path, card) = retort_hub::write_card(run_dir, out, &retort_hub::CardOptions { examples })?;
    let rows: u64 = card.configs.iter().map(|c| c.rows()).sum();
    println!(
        "card: {} ({} configs, {rows} rows{})",
        path.display(),
        card.configs.len(),
        if card.license_missing {
            "; no license declared"
        } else {
            ""
        }
    );
    if card.license_missing {
        tracing::warn!("the pipeline declares no `license`; the card says so. Add `license = \"…\"` to the pipeline file before sharing the data");
    }
    Ok(ExitCode::SUCCESS)
}

/// What `retort push` was asked (its command-line arguments).
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Dataset repository, ORG/NAME (created if needed).
    #[arg(long)]
    pub repo: String,
    /// Environment variable holding the token.
    #[arg(long, default_value = "HF_TOKEN")]
    pub token_env: String,
    /// Create the repository private.
    #[arg(long)]
    pub private: bool,
    /// Commit message.
    #[arg(long)]
    pub message: Option<String>,
    /// Branch to commit to, created from main when missing (default main).
    #[arg(long, alias = "branch")]
    pub revision: Option<String>,
    /// Also upload RUN_DIR/report.html.
    #[arg(long)]
    pub include_report: bool,
    /// Also upload the resolved pipeline as retort/pipeline.toml.
    #[arg(long)]
    pub include_pipeline: bool,
}

/// `retort push RUN_DIR --repo ORG/NAME`.
pub fn push(a: PushArgs) -> anyhow::Result<ExitCode> {
    let token = match std::env::var(&a.token_env) {
        Ok(v) if !v.trim().is_empty() => retort_teacher::Secret::new(v.trim()),
        _ => anyhow::bail!(
            "${} is not set: export {}=<a Hugging Face token with write access> (create one at <endpoint>/settings/tokens), or name another variable with --token-env",
            a.token_env,
            a.token_env
        ),
    };
    let endpoint = std::env::var("HF_ENDPOINT")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| retort_hub::push::DEFAULT_ENDPOINT.to_string());
    let opts = retort_hub::PushOptions {
        repo: a.repo,
        endpoint: endpoint.trim().to_string(),
        token,
        token_env: a.token_env,
        private: a.private,
        message: a.message,
        revision: a.revision,
        include_report: a.include_report,
        include_pipeline: a.include_pipeline,
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let out = rt.block_on(retort_hub::push(&a.run_dir, &opts))?;
    for w in &out.warnings {
        eprintln!("warning: {w}");
    }
    let prefix = format!(
        "{}/datasets/{}",
        opts.endpoint.trim_end_matches('/'),
        out.repo
    );
    if out.created_repo {
        println!(
            "created {prefix}{}",
            if opts.private { " (private)" } else { "" }
        );
    }
    if out.created_branch {
        println!("created branch {}", out.revision);
    }
    match &out.commit_oid {
        Some(oid) => println!(
            "pushed to {prefix} @ {}: commit {oid} — {} files inline, {} through LFS ({} already stored), {} unchanged",
            out.revision,
            out.regular_files.len(),
            out.lfs_files.len(),
            out.lfs_already_stored.len(),
            out.unchanged.len()
        ),
        None => println!(
            "nothing to push: {prefix} @ {} already has these {} files unchanged",
            out.revision,
            out.unchanged.len()
        ),
    }
    Ok(ExitCode::SUCCESS)
}
