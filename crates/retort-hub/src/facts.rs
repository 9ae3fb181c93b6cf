//! The few facts a card needs from the resolved pipeline stored in the manifest
//! (`Manifest::pipeline`), read through a typed view rather than by string keys: the
//! pipeline-level `description` and `license`, each teacher's provider and model, and
//! each export step's format and paths. The view accepts every other key (it describes
//! a pipeline the compiler already checked), but a present key of the wrong type is an
//! error naming the manifest, never a silent default.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::HubError;

/// What the card reads from the resolved pipeline.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PipelineFacts {
    /// Pipeline-level `description`: what the dataset is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Pipeline-level `license`: an SPDX id or a Hub license id (`apache-2.0`, `mit`, …).
    #[serde(default)]
    pub license: Option<String>,
    /// Pipeline seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Teachers by name.
    #[serde(default)]
    pub teachers: BTreeMap<String, TeacherFacts>,
    /// The embedder, if declared.
    #[serde(default)]
    pub embedder: Option<EmbedderFacts>,
    /// Steps as written.
    #[serde(default)]
    pub step: Vec<StepFacts>,
}

/// One teacher: who serves it and which model.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct TeacherFacts {
    /// `openai`, `anthropic` or `local`.
    pub provider: String,
    /// Model id.
    #[serde(default)]
    pub model: String,
}

/// The embedder.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EmbedderFacts {
    /// `local` or `openai`.
    pub provider: String,
    /// Model id, when one is named.
    #[serde(default)]
    pub model: Option<String>,
}

/// One step's id, kind, inputs and the export options the card reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StepFacts {
    /// Step id.
    pub id: String,
    /// Step kind.
    pub kind: String,
    /// Input steps (`after = "a"` or `after = ["a", "b"]`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub after: Vec<String>,
    /// `export`: the format name.
    #[serde(default)]
    pub format: Option<String>,
    /// `export`: one output file.
    #[serde(default)]
    pub path: Option<String>,
    /// `export`: several output files.
    #[serde(default)]
    pub paths: Vec<String>,
    /// `export`: the label each file is split by.
    #[serde(default)]
    pub split_by: Option<String>,
}

/// A step id or a list of them, as the compiler accepts `after`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl StepFacts {
    /// An export's declared paths, `path` first.
    pub fn export_paths(&self) -> Vec<String> {
        self.path.iter().chain(&self.paths).cloned().collect()
    }
}

impl PipelineFacts {
    /// Reads the facts from a manifest's resolved pipeline. `manifest` names the file in
    /// the error.
    pub fn from_manifest(
        pipeline: &serde_json::Value,
        manifest: &Path,
    ) -> Result<PipelineFacts, HubError> {
        PipelineFacts::deserialize(pipeline).map_err(|e| {
            HubError::Run(format!(
                "{}: the resolved pipeline it holds cannot be read for the card ({e}); run the pipeline again with this retort to rewrite the manifest",
                manifest.display()
            ))
        })
    }

    /// A step by id.
    pub fn step(&self, id: &str) -> Option<&StepFacts> {
        self.step.iter().find(|s| s.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_facts_and_refuses_a_wrong_type() {
        let v = serde_json::json!({
            "name": "x", "description": "d", "license": "mit", "max_budget_usd": 3.0,
            "teachers": {"big": {"provider": "openai", "model": "m", "base_url": "u"}},
            "step": [{"id": "e", "kind": "export", "after": "x", "format": "messages", "paths": ["a.parquet"]}]
        });
        let f = PipelineFacts::from_manifest(&v, Path::new("m.json")).unwrap();
        assert_eq!(f.license.as_deref(), Some("mit"));
        assert_eq!(f.teachers["big"].model, "m");
        assert_eq!(f.step("e").unwrap().export_paths(), vec!["a.parquet"]);
        assert_eq!(f.step("e").unwrap().after, vec!["x"]);
        let bad = serde_json::json!({"license": 3});
        let e = PipelineFacts::from_manifest(&bad, Path::new("m.json"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m.json") && e.contains("expected a string"),
            "{e}"
        );
    }
}
