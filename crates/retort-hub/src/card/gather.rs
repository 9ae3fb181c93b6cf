//! What the card needs beyond the manifest, read from the run directory's files:
//! the language labels of the exported records, failures by class, each dedup step's
//! removed-duplicates table, and a few example rows.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use retort_store::{Manifest, RunDir};

use super::CardOptions;
use crate::exports::ExportConfig;
use crate::facts::PipelineFacts;
use crate::HubError;

/// The gathered facts.
#[derive(Clone, Debug, Default)]
pub struct Gathered {
    /// Language codes found in the exported records' `labels.language`, sorted.
    pub languages: Vec<String>,
    /// `labels.language` values that are not language codes (`und`, `unknown`, …).
    pub other_language_labels: Vec<String>,
    /// True when no exported record carries a `language` label at all.
    pub no_language_labels: bool,
    /// Failures (from `failures.parquet`) by class.
    pub failures_by_class: BTreeMap<String, u64>,
    /// Failures by (step, class).
    pub failures_by_step: BTreeMap<(String, String), u64>,
    /// Rows of each dedup step's `duplicates` table.
    pub duplicates: BTreeMap<String, u64>,
    /// Example rows of the default config (first split), as JSON objects.
    pub examples: Vec<serde_json::Value>,
}

/// Reads the gathered facts.
pub fn gather(
    run_dir: &Path,
    manifest: &Manifest,
    facts: &PipelineFacts,
    configs: &[ExportConfig],
    opts: &CardOptions,
) -> Result<Gathered, HubError> {
    let rd = RunDir::new(run_dir);
    let mut g = Gathered::default();

    // Languages: the records each export wrote are its input steps' committed records.
    let mut inputs = BTreeSet::new();
    for c in configs {
        if let Some(s) = facts.step(&c.step) {
            inputs.extend(s.after.iter().cloned());
        }
    }
    let mut langs = BTreeSet::new();
    let mut others = BTreeSet::new();
    let mut labelled = false;
    for id in &inputs {
        for r in rd.step(id).read_records()? {
            if let Some(l) = r.labels.get("language") {
                labelled = true;
                let l = l.trim();
                if is_language_code(l) {
                    langs.insert(l.to_ascii_lowercase());
                } else {
                    others.insert(l.to_string());
                }
            }
        }
    }
    g.languages = langs.into_iter().collect();
    g.other_language_labels = others.into_iter().collect();
    g.no_language_labels = !labelled;

    let failures = rd.failures();
    if failures.exists() {
        for f in retort_store::read_failures(&failures)? {
            *g.failures_by_class.entry(f.class.clone()).or_default() += 1;
            *g.failures_by_step.entry((f.step, f.class)).or_default() += 1;
        }
    } else if manifest.failures > 0 {
        return Err(HubError::Run(format!(
            "{} says the run had {} failures but {} is missing; run the pipeline again to gather them",
            rd.manifest().display(),
            manifest.failures,
            failures.display()
        )));
    }

    for s in manifest.steps.iter().filter(|s| s.kind == "dedup") {
        let side = rd.step(&s.id).side("duplicates");
        if side.exists() {
            g.duplicates
                .insert(s.id.clone(), retort_store::count_rows(&side)?);
        }
    }

    if let Some(first) = configs
        .iter()
        .find(|c| c.listed)
        .and_then(|c| c.splits.first())
    {
        for row in retort_store::read_rows(&first.local, None)?.take(opts.examples) {
            let row = row.map_err(|e| HubError::Run(e.to_string()))?;
            g.examples.push(serde_json::Value::Object(row.fields));
        }
    }
    Ok(g)
}

/// An ISO 639 code with optional subtags (`en`, `zh`, `pt-br`, `yue`), as the Hub's
/// `language` field takes them; `und` (undetermined) is not a language.
fn is_language_code(s: &str) -> bool {
    let mut parts = s.split(['-', '_']);
    let Some(primary) = parts.next() else {
        return false;
    };
    (2..=3).contains(&primary.len())
        && primary.chars().all(|c| c.is_ascii_alphabetic())
        && !primary.eq_ignore_ascii_case("und")
        && parts
            .all(|p| !p.is_empty() && p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn language_codes() {
        for ok in ["en", "zh", "pt-BR", "yue"] {
            assert!(super::is_language_code(ok), "{ok}");
        }
        for bad in ["und", "unknown", "", "e", "english"] {
            assert!(!super::is_language_code(bad), "{bad}");
        }
    }
}
