//! What the report is given: plain, serialisable data built from a run directory (or
//! the demo), so rendering reads no files.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use retort_core::{Failure, Record, Rejection};
use serde::{Deserialize, Serialize};

/// Everything the report shows. Built by the CLI from a run directory; the report crate
/// itself reads no files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// Page title (and `<h1>`).
    pub title: String,
    /// The kept records, with `cluster`, `scores` and `labels` filled in by earlier steps.
    /// `embedding` is only needed when `points` is `None`.
    pub records: Vec<Record>,
    /// 2-D map coordinates, one per record in the same order. `None` projects the drawn
    /// records' embeddings with `retort_vector::layout::map_2d`; with neither, the map
    /// section says why it is empty.
    pub points: Option<Vec<[f32; 2]>>,
    /// How `points` were made, shown above the map (e.g. the `cluster` step's projection).
    #[serde(default)]
    pub points_note: Option<String>,
    /// One entry per cluster. Clusters that records name but this list lacks are still
    /// shown, with sizes counted from the records and no label.
    pub clusters: Vec<ClusterInfo>,
    /// Every removed duplicate with the record it was merged into.
    pub duplicates: Vec<DuplicateRow>,
    /// The run as a whole: status, steps, failures, rejections, tokens and cost.
    pub summary: RunSummaryView,
    /// The removed duplicates in full (the dedup steps' side tables), matched to
    /// `duplicates` by `removed_id`, so the records explorer shows their whole text.
    #[serde(default)]
    pub duplicate_records: Vec<Record>,
    /// Records steps rejected on purpose, with their reasons, for the records explorer
    /// (the run summary's counts cover every rejection, listed here or not).
    #[serde(default)]
    pub rejections: Vec<Rejection>,
    /// Records steps could not produce, with their class and raw text, for the records
    /// explorer.
    #[serde(default)]
    pub failures: Vec<Failure>,
}

/// What the `cluster` step knows about one cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// Cluster id, as in [`Record::cluster`].
    pub id: u32,
    /// Short teacher-written label, when the step asked for one.
    pub label: Option<String>,
    /// Number of kept records in the cluster.
    pub size: u64,
    /// Ids of the records nearest the centroid, nearest first.
    pub representatives: Vec<String>,
    /// Mean of each score column over the cluster (`quality`, `difficulty`, …). A score
    /// missing here is averaged from the cluster's records instead.
    pub mean_scores: BTreeMap<String, f64>,
}

/// How a duplicate was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupMode {
    /// Same text after normalisation (NFKC, case-fold, whitespace collapse).
    Exact,
    /// MinHash-LSH Jaccard over shingles.
    Near,
    /// Embedding cosine similarity.
    Semantic,
}

impl DedupMode {
    /// All modes, in the order the report lists them.
    pub const ALL: [DedupMode; 3] = [DedupMode::Exact, DedupMode::Near, DedupMode::Semantic];

    /// The lowercase name used in `duplicates.parquet` and pipeline files.
    pub fn as_str(self) -> &'static str {
        match self {
            DedupMode::Exact => "exact",
            DedupMode::Near => "near",
            DedupMode::Semantic => "semantic",
        }
    }
}

impl fmt::Display for DedupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A dedup mode name that is not `exact`, `near` or `semantic`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dedup mode {0:?} (expected exact, near or semantic)")]
pub struct UnknownDedupMode(pub String);

impl FromStr for DedupMode {
    type Err = UnknownDedupMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exact" => Ok(DedupMode::Exact),
            "near" => Ok(DedupMode::Near),
            "semantic" => Ok(DedupMode::Semantic),
            other => Err(UnknownDedupMode(other.to_string())),
        }
    }
}

/// One removed record beside the record it was merged into.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DuplicateRow {
    /// Id of the removed record.
    pub removed_id: String,
    /// Text the dedup step compared (prompt or chosen field) of the removed record.
    pub removed_text: String,
    /// Id of the kept twin (`duplicate_of`).
    pub kept_id: String,
    /// Text of the kept twin.
    pub kept_text: String,
    /// Similarity that linked them: 1.0 for exact, Jaccard estimate for near, cosine for
    /// semantic.
    pub similarity: f64,
    /// Which dedup mode removed it.
    pub mode: DedupMode,
}

/// The run summary, mirroring the run manifest.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunSummaryView {
    /// Pipeline name.
    pub name: String,
    /// `running`, `complete`, `failed` or `interrupted`.
    pub status: String,
    /// RFC 3339 start time.
    pub started_at: Option<String>,
    /// RFC 3339 end time.
    pub finished_at: Option<String>,
    /// Wall-clock seconds of the run, when known.
    pub seconds: Option<f64>,
    /// sha256 of the resolved pipeline.
    pub pipeline_hash: Option<String>,
    /// Per step, in execution order.
    pub steps: Vec<StepRow>,
    /// Usage per teacher. Token and dollar totals come from here when it is not empty,
    /// else from the step rows.
    pub teachers: Vec<TeacherRow>,
    /// Rows of `failures.parquet` by error class (`http_429`, `parse`, …).
    pub failures_by_class: BTreeMap<String, u64>,
}

/// One step's line in the summary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// Step id from the pipeline file.
    pub id: String,
    /// Step kind (`self_instruct`, `dedup`, …).
    pub kind: String,
    /// `done`, `skipped (unchanged)`, `failed`, `running`, …
    pub status: String,
    /// Records the step read.
    pub rows_in: u64,
    /// Records the step wrote.
    pub rows_out: u64,
    /// Records the step could not produce (rows in `failures.parquet`).
    pub failures: u64,
    /// Records the step rejected on purpose, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Step metrics, e.g. dedup `recall`.
    pub metrics: BTreeMap<String, f64>,
    /// Prompt tokens the step's teacher calls sent.
    pub prompt_tokens: u64,
    /// Completion tokens the step's teacher calls received.
    pub completion_tokens: u64,
    /// Dollars the step spent.
    pub cost_usd: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The error that stopped the step, if it failed.
    pub error: Option<String>,
    /// What the step warned about without stopping (a collapsed score column, a judge
    /// below its calibration bar, …).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One teacher's usage over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TeacherRow {
    /// Teacher name from the pipeline file.
    pub name: String,
    /// Model id.
    pub model: Option<String>,
    /// Calls steps made.
    pub calls: u64,
    /// Calls answered from the response cache.
    pub cache_hits: u64,
    /// Requests actually sent, retries included.
    pub requests: u64,
    /// Of those, retries.
    pub retries: u64,
    /// Calls that finally failed.
    pub failures: u64,
    /// Prompt tokens sent.
    pub prompt_tokens: u64,
    /// Completion tokens received.
    pub completion_tokens: u64,
    /// Dollars spent.
    pub cost_usd: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_modes_parse_strictly() {
        assert_eq!("near".parse::<DedupMode>(), Ok(DedupMode::Near));
        assert!("fuzzy".parse::<DedupMode>().is_err());
        assert_eq!(DedupMode::Semantic.to_string(), "semantic");
    }
}
