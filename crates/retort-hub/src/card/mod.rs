//! The dataset card: a `README.md` in the Hub's card format, written from the run
//! directory. The YAML front matter ([`front`]) tells the Hub and `datasets` what the
//! files are (configs, splits, features, size, language, license, tags); the body
//! ([`body`]) tells a reader how the data was made, from the typed manifest.
//!
//! Everything is read through the run-directory contract (`retort_store::Manifest`,
//! `StepFileState`, the Parquet readers); what the card needs beyond that is gathered
//! in [`gather`].

pub mod body;
pub mod front;
pub mod gather;

use std::path::{Path, PathBuf};

use retort_store::{Manifest, RunDir};

use crate::exports::{export_configs, ExportConfig};
use crate::facts::PipelineFacts;
use crate::HubError;

/// How a card is written.
#[derive(Clone, Debug)]
pub struct CardOptions {
    /// Example rows shown in the body (from the default config).
    pub examples: usize,
}

impl Default for CardOptions {
    fn default() -> Self {
        CardOptions { examples: 3 }
    }
}

/// A card, built and ready to render.
#[derive(Clone, Debug)]
pub struct Card {
    /// The front matter.
    pub front: front::FrontMatter,
    /// The Markdown body.
    pub body: String,
    /// The export configs it describes (the files a push uploads).
    pub configs: Vec<ExportConfig>,
    /// True when the pipeline declares no `license` (push warns).
    pub license_missing: bool,
}

impl Card {
    /// Builds the card of the run at `run_dir`.
    pub fn build(run_dir: &Path, opts: &CardOptions) -> Result<Card, HubError> {
        let manifest = Manifest::read(run_dir)?;
        let facts =
            PipelineFacts::from_manifest(&manifest.pipeline, &RunDir::new(run_dir).manifest())?;
        let configs = export_configs(run_dir, &manifest, &facts)?;
        if configs.is_empty() {
            return Err(HubError::Run(format!(
                "{} has no export step, so there is no dataset to describe; add an `export` step to the pipeline",
                run_dir.display()
            )));
        }
        let g = gather::gather(run_dir, &manifest, &facts, &configs, opts)?;
        let front = front::front_matter(&manifest, &facts, &configs, &g);
        let body = body::body(&manifest, &facts, &configs, &g);
        Ok(Card {
            license_missing: facts.license.is_none(),
            front,
            body,
            configs,
        })
    }

    /// The `README.md` text: `---`, the YAML front matter, `---`, the body.
    pub fn render(&self) -> String {
        let yaml = serde_yaml::to_string(&self.front)
            .expect("the front matter is plain strings, numbers and lists");
        format!("---\n{yaml}---\n\n{}", self.body)
    }
}

/// Writes the card of `run_dir` to `out` (default `RUN_DIR/README.md`) atomically;
/// returns where it went and the card.
pub fn write_card(
    run_dir: &Path,
    out: Option<&Path>,
    opts: &CardOptions,
) -> Result<(PathBuf, Card), HubError> {
    let card = Card::build(run_dir, opts)?;
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| run_dir.join("README.md"));
    retort_store::write_bytes_atomic(&out, card.render().as_bytes())?;
    Ok((out, card))
}
