//! Glue between pipeline configs and the backends: HTTP providers from
//! `retort-teacher`, embedded models from `retort-local`. Also the `models` and `serve`
//! commands, which are thin wrappers over `retort-local`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use retort_local::{KnownModel, LocalEmbedder, LocalOptions, LocalTeacher};
use retort_teacher::{
    Backend, Embedder, EmbedderConfig, EmbedderProvider, OpenAiEmbedder, Provider, TeacherConfig,
};

use crate::ModelsCmd;

/// The factory `retort run` uses.
pub struct CliFactory;

/// Resolve a local model by name (or `model_path`), with the fetch command on failure.
fn local_model_path(model: &str, model_path: Option<&str>) -> Result<PathBuf, String> {
    if let Some(p) = model_path {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("model_path {} does not exist", p.display()))
        };
    }
    let known = KnownModel::from_name(model).ok_or_else(|| {
        format!(
            "unknown local model `{model}`; known: {} (or set model_path to a GGUF file)",
            KnownModel::ALL
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    retort_local::path_of(known, &retort_local::models_dir()).map_err(|e| e.to_string())
}

impl retort_runner::Factory for CliFactory {
    fn backend(&self, name: &str, cfg: &TeacherConfig) -> Result<Arc<dyn Backend>, String> {
        match cfg.provider {
            Provider::Local => {
                let path = local_model_path(&cfg.model, cfg.model_path.as_deref())?;
                let mut opts = LocalOptions::default();
                if let Some(t) = cfg.threads {
                    opts.threads = t;
                }
                if let Some(c) = cfg.context_size {
                    opts.context_size = c;
                }
                if let Some(p) = cfg.parallel {
                    opts.parallel = p;
                }
                tracing::info!(teacher = name, model = %cfg.model, "loading the embedded teacher");
                let t = LocalTeacher::load(&path, opts)
                    .map_err(|e| format!("teacher `{name}`: {e}"))?
                    .with_model_id(cfg.model.clone());
                Ok(Arc::new(t))
            }
            _ => retort_teacher::http_backend(cfg).map_err(|e| format!("teacher `{name}`: {e}")),
        }
    }

    fn embedder(&self, cfg: &EmbedderConfig) -> Result<Arc<dyn Embedder>, String> {
        match cfg.provider {
            EmbedderProvider::Local => {
                if let Some(m) = cfg.model.as_deref() {
                    if KnownModel::from_name(m) != Some(KnownModel::MiniLM) {
                        return Err(format!(
                            "[embedder] provider \"local\" has only the bundled `{}` model, not `{m}`; \
                             remove `model` or use provider \"openai\" with an embeddings endpoint",
                            KnownModel::MiniLM.name()
                        ));
                    }
                }
                let dir = retort_local::path_of(KnownModel::MiniLM, &retort_local::models_dir())
                    .map_err(|e| e.to_string())?;
                let opts = retort_local::EmbedOptions {
                    batch_size: cfg.batch_size.max(1),
                    ..Default::default()
                };
                let e = LocalEmbedder::load_with(&dir, opts).map_err(|e| e.to_string())?;
                Ok(Arc::new(e))
            }
            _ => Ok(Arc::new(OpenAiEmbedder::new(cfg)?)),
        }
    }
}

/// `retort models …`
pub fn models(cmd: ModelsCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelsCmd::Fetch {
            with_large,
            only,
            dir,
        } => {
            let dir = dir.unwrap_or_else(retort_local::models_dir);
            let mut wanted: Vec<KnownModel> = if only.is_empty() {
                KnownModel::DEFAULTS.to_vec()
            } else {
                only.iter()
                    .map(|n| {
                        KnownModel::from_name(n).with_context(|| {
                            format!(
                                "unknown model `{n}`; known: {}",
                                KnownModel::ALL
                                    .iter()
                                    .map(|m| format!("{} ({})", m.name(), m.short_name()))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            if with_large && !wanted.contains(&KnownModel::Qwen25Coder15B) {
                wanted.push(KnownModel::Qwen25Coder15B);
            }
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating the models directory {}", dir.display()))?;
            retort_local::fetch(&wanted, &dir, &|m| eprintln!("{m}"))?;
            for m in &wanted {
                let p = retort_local::path_of(*m, &dir)?;
                println!("{:<30} {}", m.name(), p.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCmd::List { dir } => {
            let dir = dir.unwrap_or_else(retort_local::models_dir);
            println!("models directory: {}", dir.display());
            for m in KnownModel::ALL {
                let state = match retort_local::path_of(m, &dir) {
                    Ok(p) => format!("ready  {}", p.display()),
                    Err(_) => format!("absent (run `{}`)", m.fetch_command()),
                };
                println!("  {:<30} {:<10} {state}", m.name(), m.short_name());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `retort serve`
pub fn serve(
    addr: std::net::SocketAddr,
    model: &str,
    parallel: usize,
    threads: usize,
    embeddings: bool,
) -> anyhow::Result<ExitCode> {
    let path = local_model_path(model, None).map_err(anyhow::Error::msg)?;
    let teacher = LocalTeacher::load(
        &path,
        LocalOptions {
            threads,
            parallel,
            ..Default::default()
        },
    )?
    .with_model_id(model.to_string());
    let embedder: Option<Arc<dyn Embedder>> = if embeddings {
        let dir: &Path = &retort_local::path_of(KnownModel::MiniLM, &retort_local::models_dir())?;
        Some(Arc::new(LocalEmbedder::load(dir)?))
    } else {
        None
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        eprintln!("serving {model} on http://{addr}/v1 (Ctrl-C to stop)");
        retort_local::serve(addr, Arc::new(teacher), embedder, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}
