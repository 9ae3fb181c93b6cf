//! What a push uploads, under which path in the repository: the card as `README.md`,
//! every export file at its path inside the run directory (the paths the card's
//! `configs` name), and on request the report (`report.html`) and the resolved
//! pipeline (`retort/pipeline.toml`). Nothing else of the run directory leaves it:
//! checkpoints, the cache and the manifest stay local.

use std::path::{Path, PathBuf};

use retort_store::{Manifest, RunDir};

use crate::card::Card;
use crate::HubError;

/// Where a file's bytes come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file on disk, streamed.
    File(PathBuf),
    /// Bytes built in memory (the card, the pipeline).
    Bytes(Vec<u8>),
}

/// One file of the commit.
#[derive(Clone, Debug)]
pub struct UploadFile {
    /// Path in the repository (`/`-separated).
    pub repo_path: String,
    /// Its bytes.
    pub source: Source,
}

/// The resolved pipeline's path in the repository.
pub const PIPELINE_PATH: &str = "retort/pipeline.toml";

/// The files a push of `run_dir` uploads.
pub fn upload_set(
    run_dir: &Path,
    card: &Card,
    include_report: bool,
    include_pipeline: bool,
) -> Result<Vec<UploadFile>, HubError> {
    let mut files = vec![UploadFile {
        repo_path: "README.md".into(),
        source: Source::Bytes(card.render().into_bytes()),
    }];
    for c in &card.configs {
        for s in &c.splits {
            files.push(UploadFile {
                repo_path: s.repo_path.clone(),
                source: Source::File(s.local.clone()),
            });
        }
    }
    let rd = RunDir::new(run_dir);
    if include_report {
        let report = rd.report();
        if !report.exists() {
            return Err(HubError::Usage(format!(
                "--include-report: {} does not exist; write it first with `retort report {}`",
                report.display(),
                run_dir.display()
            )));
        }
        files.push(UploadFile {
            repo_path: "report.html".into(),
            source: Source::File(report),
        });
    }
    if include_pipeline {
        let m = Manifest::read(run_dir)?;
        let text = toml::to_string(&m.pipeline).map_err(|e| {
            HubError::Run(format!(
                "{}: the resolved pipeline cannot be written as TOML ({e})",
                rd.manifest().display()
            ))
        })?;
        let head = format!(
            "# The resolved pipeline of run `{}` (retort {}, sha256 {}): the pipeline file\n# {} after every --set override.\n",
            m.name, m.retort_version, m.pipeline_hash, m.pipeline_file
        );
        files.push(UploadFile {
            repo_path: PIPELINE_PATH.into(),
            source: Source::Bytes(format!("{head}{text}").into_bytes()),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &files {
        if !seen.insert(f.repo_path.as_str()) {
            return Err(HubError::Run(format!(
                "two files would both be uploaded as `{}`; rename the export",
                f.repo_path
            )));
        }
    }
    Ok(files)
}
