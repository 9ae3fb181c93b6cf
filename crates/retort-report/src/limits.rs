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

// The records explorer embeds every row's text in the page as JSON, so its size grows
// with the run. These caps bound it; `docs/pipelines.md` (5.9) gives the measured size of
// a 20,000-record report. Text lengths are UTF-8 bytes of the raw text (before JSON
// escaping), always cut at a character boundary.

/// Kept records listed in the explorer; above it the first ones are listed and the
/// page says how many there are (the run directory's Parquet holds them all).
pub const EXPLORER_MAX_RECORDS: usize = 50_000;
/// Rows listed in each of the explorer's other tables: removed duplicates, rejections
/// and failures.
pub const EXPLORER_MAX_SIDE_ROWS: usize = 5_000;
/// Any one text of a row (a prompt, an answer, a reasoning trace, a turn, a candidate, a
/// failure's raw text) is cut to at most this many bytes, marked as cut with its length.
pub const EXPLORER_FIELD_BYTES: usize = 8_000;
/// All texts of one row together: at most this many bytes. Prompt and answer are served
/// first, then reasoning, then candidates and the other turns.
pub const EXPLORER_ROW_BYTES: usize = 16_000;
/// All rows' texts together: each row's budget is this divided by the number of rows
/// (so a 20,000-record run gets about 1.4 kB per row), but never above
/// [`EXPLORER_ROW_BYTES`] nor below [`EXPLORER_MIN_ROW_BYTES`].
pub const EXPLORER_TOTAL_TEXT_BYTES: usize = 32_000_000;
/// The smallest text budget of one row, however many rows there are.
pub const EXPLORER_MIN_ROW_BYTES: usize = 1_000;
/// Labels listed per row (the rest are counted), each value cut to
/// [`EXPLORER_LABEL_BYTES`].
pub const EXPLORER_MAX_LABELS: usize = 24;
/// Bytes of one label value in the explorer.
pub const EXPLORER_LABEL_BYTES: usize = 200;
/// Score columns the explorer's table shows (`quality` and `difficulty` first, then
/// the others by name).
pub const EXPLORER_MAX_SCORE_COLUMNS: usize = 16;
