//! The exports of a run, as the card and the push see them: one config per export
//! file, its splits (one `train` split, or one per `split_by` value), each split's
//! file, row count and — for Parquet — its Arrow schema.
//!
//! Where the files are comes from the run directory's contract: each export step's
//! declared `path`/`paths` (from the manifest's resolved pipeline) and, for `split_by`,
//! the files its `state.json` lists. A file that is missing or unreadable is an error
//! naming it: a card must not describe data that is not there.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use retort_store::{Manifest, RunDir, StepFileState};

use crate::facts::{PipelineFacts, StepFacts};
use crate::HubError;

/// File container of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Container {
    /// `.parquet`.
    Parquet,
    /// `.jsonl`.
    Jsonl,
}

impl Container {
    fn of(path: &str) -> Option<Container> {
        match Path::new(path).extension()?.to_str()? {
            "parquet" => Some(Container::Parquet),
            "jsonl" => Some(Container::Jsonl),
            _ => None,
        }
    }
    /// `parquet` or `jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Container::Parquet => "parquet",
            Container::Jsonl => "jsonl",
        }
    }
}

/// One split's file.
#[derive(Clone, Debug)]
pub struct SplitFile {
    /// Split name (`train`, or the sanitised `split_by` value).
    pub split: String,
    /// Path inside the run directory and the Hub repository (`/`-separated).
    pub repo_path: String,
    /// The file on disk.
    pub local: PathBuf,
    /// Rows in the file.
    pub rows: u64,
    /// Bytes on disk.
    pub bytes: u64,
}

/// One export file (or the family of files one `split_by` path became): a config.
#[derive(Clone, Debug)]
pub struct ExportConfig {
    /// Config name on the Hub.
    pub name: String,
    /// The export step.
    pub step: String,
    /// Its format (`messages`, `dpo_conversational`, …).
    pub format: String,
    /// Parquet or JSONL.
    pub container: Container,
    /// The label the files are split by, if any.
    pub split_by: Option<String>,
    /// Splits in name order.
    pub splits: Vec<SplitFile>,
    /// Arrow schema (Parquet configs).
    pub schema: Option<SchemaRef>,
    /// Listed in the card's `configs`. `datasets` reads one file format per repository
    /// (it picks a single builder for every config), so when the run has Parquet
    /// exports its JSONL copies are uploaded beside them but are not configs.
    pub listed: bool,
}

impl ExportConfig {
    /// Rows over all splits.
    pub fn rows(&self) -> u64 {
        self.splits.iter().map(|s| s.rows).sum()
    }
}

/// Every export config of the run, in manifest step order. `run_dir` must hold a
/// finished run: an export step that is not done is an error.
pub fn export_configs(
    run_dir: &Path,
    manifest: &Manifest,
    facts: &PipelineFacts,
) -> Result<Vec<ExportConfig>, HubError> {
    let rd = RunDir::new(run_dir);
    let mut out = Vec::new();
    for s in manifest.steps.iter().filter(|s| s.kind == "export") {
        let step = facts.step(&s.id).ok_or_else(|| {
            HubError::Run(format!(
                "{}: step `{}` is in the manifest but not in its resolved pipeline; run the pipeline again to rewrite the manifest",
                rd.manifest().display(),
                s.id
            ))
        })?;
        let state = read_state(&rd, &s.id)?;
        let paths = step.export_paths();
        let mut used_names = BTreeSet::new();
        for (i, p) in paths.iter().enumerate() {
            let container = Container::of(p).ok_or_else(|| {
                HubError::Run(format!(
                    "step `{}`: export path `{p}` is neither .parquet nor .jsonl",
                    s.id
                ))
            })?;
            let mut name = if i == 0 {
                s.id.clone()
            } else {
                format!("{}_{}", s.id, container.name())
            };
            if !used_names.insert(name.clone()) {
                name = format!("{name}_{i}");
                used_names.insert(name.clone());
            }
            let splits = splits_of(&rd, step, p, &state)?;
            let schema = match container {
                Container::Parquet => Some(parquet_schema(&splits[0].local)?),
                Container::Jsonl => None,
            };
            out.push(ExportConfig {
                name,
                step: s.id.clone(),
                format: step.format.clone().unwrap_or_default(),
                container,
                split_by: step.split_by.clone(),
                splits,
                schema,
                listed: true,
            });
        }
    }
    if out.iter().any(|c| c.container == Container::Parquet) {
        for c in &mut out {
            c.listed = c.container == Container::Parquet;
        }
    }
    Ok(out)
}

fn read_state(rd: &RunDir, id: &str) -> Result<StepFileState, HubError> {
    let path = rd.step(id).state();
    let bytes = std::fs::read(&path).map_err(|e| {
        HubError::Run(format!(
            "{}: {e}; export step `{id}` has not run in this directory — run the pipeline to completion first",
            path.display()
        ))
    })?;
    let state: StepFileState = serde_json::from_slice(&bytes).map_err(|e| {
        HubError::Run(format!(
            "{} is not a step state this retort reads ({e}); run the pipeline again to rewrite it",
            path.display()
        ))
    })?;
    if !state.done {
        return Err(HubError::Run(format!(
            "export step `{id}` has not finished ({} says done = false); run the pipeline to completion first",
            path.display()
        )));
    }
    Ok(state)
}

/// The relative (to the run directory) form of a path a step state lists.
/// The run directory may be named differently now (relative, or moved) than when the
/// state was written, so an absolute path is also tried against its canonical form.
fn relative(rd: &RunDir, p: &Path) -> PathBuf {
    if let Ok(r) = p.strip_prefix(rd.root()) {
        return r.to_path_buf();
    }
    if p.is_absolute() {
        if let Ok(root) = rd.root().canonicalize() {
            if let Ok(r) = p.strip_prefix(&root) {
                return r.to_path_buf();
            }
        }
    }
    p.to_path_buf()
}

fn splits_of(
    rd: &RunDir,
    step: &StepFacts,
    declared: &str,
    state: &StepFileState,
) -> Result<Vec<SplitFile>, HubError> {
    let declared_path = Path::new(declared);
    if declared_path.is_absolute() || declared.split('/').any(|c| c == "..") {
        return Err(HubError::Run(format!(
            "step `{}`: export `{declared}` is outside the run directory; a card and a push describe files inside RUN_DIR, so give the export a relative path",
            step.id
        )));
    }
    let mut files: Vec<(String, String)> = Vec::new(); // (split, repo path)
    match &step.split_by {
        None => files.push(("train".into(), declared.to_string())),
        Some(_) => {
            let parent = declared_path.parent().unwrap_or(Path::new(""));
            let stem = declared_path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            let ext = declared_path
                .extension()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            for o in &state.outputs {
                let rel = relative(rd, o);
                if rel.parent().unwrap_or(Path::new("")) != parent
                    || rel.extension().and_then(|e| e.to_str()) != Some(ext)
                {
                    continue;
                }
                let Some(key) = rel
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.strip_prefix(stem))
                    .and_then(|s| s.strip_prefix('-'))
                else {
                    continue;
                };
                files.push((split_name(key), rel.to_string_lossy().replace('\\', "/")));
            }
            files.sort();
            if files.is_empty() {
                return Err(HubError::Run(format!(
                    "step `{}`: no file split from `{declared}` is listed in its state.json; run the pipeline again",
                    step.id
                )));
            }
            for w in files.windows(2) {
                if w[0].0 == w[1].0 {
                    return Err(HubError::Run(format!(
                        "step `{}`: files {} and {} both become split `{}`; rename the `{}` values so they differ in letters, digits or `_`",
                        step.id, w[0].1, w[1].1, w[0].0, step.split_by.as_deref().unwrap_or("")
                    )));
                }
            }
        }
    }
    files
        .into_iter()
        .map(|(split, repo_path)| {
            let local = rd.root().join(&repo_path);
            let bytes = std::fs::metadata(&local)
                .map_err(|e| {
                    HubError::Run(format!(
                        "{}: {e}; export step `{}` lists it but it is gone — run the pipeline again",
                        local.display(),
                        step.id
                    ))
                })?
                .len();
            let rows = count_rows(&local)?;
            Ok(SplitFile {
                split,
                repo_path,
                local,
                rows,
                bytes,
            })
        })
        .collect()
}

/// A `split_by` value as a Hub split name: letters, digits and `_` (`\w+`).
fn split_name(key: &str) -> String {
    let s: String = key
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "_".into()
    } else {
        s
    }
}

/// Rows of an export file: the Parquet footer's count, or the JSONL's rows (each one
/// parsed, so a damaged file is an error).
pub fn count_rows(path: &Path) -> Result<u64, HubError> {
    match Container::of(&path.to_string_lossy()) {
        Some(Container::Parquet) => Ok(retort_store::count_rows(path)?),
        _ => {
            let mut n = 0;
            for r in retort_store::read_rows(path, Some(retort_store::RowFormat::Jsonl))? {
                r.map_err(|e| HubError::Run(e.to_string()))?;
                n += 1;
            }
            Ok(n)
        }
    }
}

/// A Parquet file's Arrow schema.
pub fn parquet_schema(path: &Path) -> Result<SchemaRef, HubError> {
    let f = std::fs::File::open(path).map_err(HubError::io(path))?;
    let b =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| {
            HubError::Run(format!(
                "{}: not a readable Parquet file ({e})",
                path.display()
            ))
        })?;
    Ok(b.schema().clone())
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_values_become_hub_split_names() {
        assert_eq!(super::split_name("easy"), "easy");
        assert_eq!(super::split_name("very-hard 2"), "very_hard_2");
    }
}
