//! The per-cluster view of the input, worked out once and shared by the map legend, the
//! clusters table and the examples, so they agree on order, sizes and means.

use std::collections::{BTreeMap, HashMap};

use crate::charts;
use crate::input::{ClusterInfo, ReportInput};

/// Score columns the report charts per cluster, when records carry them.
pub(crate) const SCORE_KEYS: [&str; 2] = ["quality", "difficulty"];

/// Per-cluster facts derived once and shared by the table, legend and examples.
pub(crate) struct View<'a> {
    /// Rows sorted by size (largest first), then id.
    pub(crate) clusters: Vec<ClusterRow<'a>>,
    /// Score keys present in the data, in [`SCORE_KEYS`] order, with shared bins.
    pub(crate) scores: Vec<(&'static str, charts::Bins)>,
    /// Record index by id, for representatives.
    pub(crate) by_id: HashMap<&'a str, usize>,
}

/// One cluster as the page shows it.
pub(crate) struct ClusterRow<'a> {
    /// `None` is the row for records without a cluster.
    pub(crate) id: Option<u32>,
    pub(crate) label: Option<&'a str>,
    pub(crate) size: u64,
    pub(crate) representatives: &'a [String],
    /// Indices of the cluster's records.
    pub(crate) members: Vec<usize>,
    pub(crate) means: BTreeMap<&'static str, f64>,
}

impl<'a> View<'a> {
    /// Groups the records by cluster and sorts the clusters, largest first.
    pub(crate) fn new(input: &'a ReportInput) -> View<'a> {
        let mut members: BTreeMap<Option<u32>, Vec<usize>> = BTreeMap::new();
        for (i, r) in input.records.iter().enumerate() {
            members.entry(r.cluster).or_default().push(i);
        }
        let mut rows: Vec<ClusterRow<'a>> = Vec::new();
        for c in &input.clusters {
            rows.push(ClusterRow {
                id: Some(c.id),
                label: c.label.as_deref(),
                size: c.size,
                representatives: &c.representatives,
                members: members.remove(&Some(c.id)).unwrap_or_default(),
                means: BTreeMap::new(),
            });
        }
        for (id, m) in members {
            rows.push(ClusterRow {
                id,
                label: None,
                size: m.len() as u64,
                representatives: &[],
                members: m,
                means: BTreeMap::new(),
            });
        }
        let scores: Vec<(&'static str, charts::Bins)> = SCORE_KEYS
            .iter()
            .filter_map(|&k| {
                charts::Bins::covering(
                    input
                        .records
                        .iter()
                        .filter_map(|r| r.scores.get(k).copied()),
                )
                .map(|b| (k, b))
            })
            .collect();
        let info: HashMap<u32, &ClusterInfo> = input.clusters.iter().map(|c| (c.id, c)).collect();
        for row in &mut rows {
            for &(k, _) in &scores {
                let given = row
                    .id
                    .and_then(|id| info.get(&id))
                    .and_then(|c| c.mean_scores.get(k))
                    .copied();
                let mean = given.or_else(|| {
                    mean(
                        row.members
                            .iter()
                            .filter_map(|&i| input.records[i].scores.get(k).copied()),
                    )
                });
                if let Some(m) = mean {
                    row.means.insert(k, m);
                }
            }
        }
        // Largest first; the unclustered row (id None) sorts after real clusters of equal size.
        rows.sort_by(|a, b| {
            b.size
                .cmp(&a.size)
                .then(a.id.is_none().cmp(&b.id.is_none()))
                .then(a.id.cmp(&b.id))
        });
        let by_id = input
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        View {
            clusters: rows,
            scores,
            by_id,
        }
    }

    /// The teacher-written label of cluster `id`, if it has one.
    pub(crate) fn label_of(&self, id: u32) -> Option<String> {
        self.clusters
            .iter()
            .find(|c| c.id == Some(id))
            .and_then(|c| c.label.map(str::to_string))
    }
}

/// Mean of the finite values; `None` when there is none.
pub(crate) fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (mut s, mut n) = (0.0, 0u64);
    for v in values.filter(|v| v.is_finite()) {
        s += v;
        n += 1;
    }
    (n > 0).then(|| s / n as f64)
}
