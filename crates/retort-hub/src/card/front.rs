//! The card's YAML front matter, as the Hub and `datasets` read it: `configs` (one per
//! export file, with `data_files` per split; the first is the default),
//! `dataset_info` (features from the Arrow schema and split sizes, Parquet configs),
//! `size_categories`, `language`, `task_categories`, `tags` and `license`.

use serde::Serialize;

use retort_store::Manifest;

use super::gather::Gathered;
use crate::exports::ExportConfig;
use crate::facts::PipelineFacts;
use crate::features::{features, Feature};

/// The front matter.
#[derive(Clone, Debug, Serialize)]
pub struct FrontMatter {
    /// The pipeline's `license`; absent when the pipeline declares none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    /// Language codes of the records.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub language: Vec<String>,
    /// Hub task categories.
    pub task_categories: Vec<String>,
    /// Tags: always `synthetic` and `retort`, plus the export formats' kinds.
    pub tags: Vec<String>,
    /// The Hub's size bucket of the largest config.
    pub size_categories: Vec<String>,
    /// Display name: the pipeline name.
    pub pretty_name: String,
    /// One per export file.
    pub configs: Vec<ConfigEntry>,
    /// Features and split sizes per Parquet config.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dataset_info: Vec<InfoEntry>,
}

/// One `configs` entry.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigEntry {
    /// Config name.
    pub config_name: String,
    /// True for the first config.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub default: bool,
    /// Its files by split.
    pub data_files: Vec<DataFile>,
}

/// One split's files.
#[derive(Clone, Debug, Serialize)]
pub struct DataFile {
    /// Split name.
    pub split: String,
    /// Path in the repository.
    pub path: String,
}

/// One `dataset_info` entry.
#[derive(Clone, Debug, Serialize)]
pub struct InfoEntry {
    /// Config name.
    pub config_name: String,
    /// Columns.
    pub features: Vec<Feature>,
    /// Splits and their sizes.
    pub splits: Vec<SplitInfo>,
}

/// A split's size.
#[derive(Clone, Debug, Serialize)]
pub struct SplitInfo {
    /// Split name.
    pub name: String,
    /// Bytes of the split's file on disk (`datasets` requires the field; its own value
    /// is the Arrow size in memory, which only loading would tell).
    pub num_bytes: u64,
    /// Rows.
    pub num_examples: u64,
}

/// The Hub's `size_categories` bucket for `n` rows.
pub fn size_category(n: u64) -> &'static str {
    match n {
        0..=999 => "n<1K",
        1_000..=9_999 => "1K<n<10K",
        10_000..=99_999 => "10K<n<100K",
        100_000..=999_999 => "100K<n<1M",
        1_000_000..=9_999_999 => "1M<n<10M",
        10_000_000..=99_999_999 => "10M<n<100M",
        100_000_000..=999_999_999 => "100M<n<1B",
        _ => "n>1B",
    }
}

/// Tags an export format adds (what a trainer looks for).
fn format_tags(format: &str) -> &'static [&'static str] {
    let f = format.strip_suffix("_conversational").unwrap_or(format);
    match f {
        "dpo" | "implicit_preference" | "alpaca_ranking" => &["dpo", "preference"],
        "kto" => &["kto", "preference"],
        "prompt_only" => &["prompt-only"],
        "messages" | "sharegpt" | "alpaca" | "prompt_completion" => &["sft"],
        _ => &[],
    }
}

/// Builds the front matter.
pub fn front_matter(
    manifest: &Manifest,
    facts: &PipelineFacts,
    configs: &[ExportConfig],
    g: &Gathered,
) -> FrontMatter {
    let configs: Vec<&ExportConfig> = configs.iter().filter(|c| c.listed).collect();
    let mut tags = vec!["synthetic".to_string(), "retort".to_string()];
    for c in &configs {
        for t in format_tags(&c.format) {
            if !tags.iter().any(|x| x == t) {
                tags.push(t.to_string());
            }
        }
    }
    let largest = configs.iter().map(|c| c.rows()).max().unwrap_or(0);
    FrontMatter {
        license: facts.license.clone(),
        language: g.languages.clone(),
        task_categories: vec!["text-generation".into()],
        tags,
        size_categories: vec![size_category(largest).into()],
        pretty_name: manifest.name.clone(),
        configs: configs
            .iter()
            .enumerate()
            .map(|(i, c)| ConfigEntry {
                config_name: c.name.clone(),
                default: i == 0,
                data_files: c
                    .splits
                    .iter()
                    .map(|s| DataFile {
                        split: s.split.clone(),
                        path: s.repo_path.clone(),
                    })
                    .collect(),
            })
            .collect(),
        dataset_info: configs
            .iter()
            .filter_map(|c| {
                let f = features(c.schema.as_ref()?).ok()?;
                Some(InfoEntry {
                    config_name: c.name.clone(),
                    features: f,
                    splits: c
                        .splits
                        .iter()
                        .map(|s| SplitInfo {
                            name: s.split.clone(),
                            num_bytes: s.bytes,
                            num_examples: s.rows,
                        })
                        .collect(),
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn size_buckets() {
        assert_eq!(super::size_category(0), "n<1K");
        assert_eq!(super::size_category(1000), "1K<n<10K");
        assert_eq!(super::size_category(250_000), "100K<n<1M");
    }
}
