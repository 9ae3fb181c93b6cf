//! Caps on what one page draws or lists, so the page of a huge run still opens quickly
//! in a browser.

/// At most this many points are drawn on the map; above it an even sample is drawn and
/// the page says so (an SVG with more circles makes browsers sluggish).
pub const MAX_MAP_POINTS: usize = 20_000;
/// At most this many removed duplicates are listed; the counts per mode cover all.
pub const MAX_DUPLICATE_ROWS: usize = 2_000;
/// Representative examples are shown for at most this many clusters (the largest).
pub const MAX_EXAMPLE_CLUSTERS: usize = 50;
/// Representative examples shown per cluster.
pub const EXAMPLES_PER_CLUSTER: usize = 3;
/// Clusters named in the map legend (the largest); the rest are summed up in one line.
pub const MAX_LEGEND_CLUSTERS: usize = 40;
