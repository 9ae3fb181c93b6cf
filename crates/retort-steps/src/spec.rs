//! The vocabulary every step kind builds with: a step as the file wrote it
//! ([`StepSpec`]), what it may know of the rest of the pipeline ([`BuildCtx`]), what it
//! builds ([`Built`], with [`Estimate`]s for `retort plan`) and the strict option parser.

use std::path::PathBuf;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::api::Step;

/// A step as written in the pipeline file, before its kind parses the options.
#[derive(Clone, Debug)]
pub struct StepSpec {
    pub id: String,
    pub kind: String,
    /// Upstream step ids (`after` in the file).
    pub after: Vec<String>,
    /// Every other key of the `[[step]]` table.
    pub options: toml::Table,
}

/// What a kind needs to know about the rest of the pipeline to check its options.
#[derive(Clone, Debug, Default)]
pub struct BuildCtx {
    /// Directory of the pipeline file: relative paths resolve against it.
    pub base_dir: PathBuf,
    /// Declared teacher names.
    pub teachers: Vec<String>,
    /// Whether an `[embedder]` is declared.
    pub has_embedder: bool,
}

impl BuildCtx {
    /// Resolve a path from the pipeline file against its directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        }
    }

    /// Check a teacher reference; returns the problem text when it is unknown.
    pub fn check_teacher(&self, name: &str) -> Result<(), String> {
        if self.teachers.iter().any(|t| t == name) {
            Ok(())
        } else {
            Err(format!(
                "teacher `{name}` is not declared; add a [teachers.{name}] section or use one of: {}",
                if self.teachers.is_empty() {
                    "(none declared)".to_string()
                } else {
                    self.teachers.join(", ")
                }
            ))
        }
    }
}

/// Rough cost model of a step for `retort plan`.
#[derive(Clone, Debug, Default)]
pub struct Estimate {
    /// Teacher the calls go to.
    pub teacher: String,
    /// Calls per input record (e.g. 2 for a position-swapped pairwise judge), or …
    pub calls_per_input: f64,
    /// … a fixed number of calls regardless of input (generators with `max_calls`).
    pub fixed_calls: u64,
    /// Estimated prompt tokens per call.
    pub prompt_tokens: u64,
    /// `max_tokens` per call (upper bound of completion tokens).
    pub max_tokens: u64,
}

/// A step ready to run, with what `plan` and the config hash need to know.
pub struct Built {
    pub step: Arc<dyn Step>,
    /// One line for `retort plan`: what the step writes.
    pub writes: String,
    /// Files whose content defines the step's output (seeds, templates): their bytes go
    /// into the step's config hash, so editing a seed file re-runs the step.
    pub files: Vec<PathBuf>,
    /// Teacher calls, for `retort plan`'s cost estimate.
    pub estimates: Vec<Estimate>,
}

impl Built {
    /// A built step with no files and no teacher calls.
    pub fn new(step: Arc<dyn Step>, writes: impl Into<String>) -> Self {
        Built {
            step,
            writes: writes.into(),
            files: vec![],
            estimates: vec![],
        }
    }
}

/// Parse a step's options into its config struct (which should use
/// `#[serde(deny_unknown_fields)]`). The error names the offending key.
pub fn parse_options<T: DeserializeOwned>(spec: &StepSpec) -> Result<T, Vec<String>> {
    let v = toml::Value::Table(spec.options.clone());
    v.try_into::<T>().map_err(|e| {
        let msg = e.message().trim().to_string();
        vec![format!("options of kind `{}`: {msg}", spec.kind)]
    })
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The name in `known` closest to a mistyped `word`, when it is close enough to be
/// meant (a few edits, or one is a prefix of the other): the "did you mean" of unknown
/// kinds and unknown template variables.
pub fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|name| (distance(word, name), *name))
        .filter(|(d, name)| {
            *d <= 2.max(name.len() / 4) || name.starts_with(word) || word.starts_with(name)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}
