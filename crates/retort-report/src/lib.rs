//! retort's HTML cluster report.
//!
//! [`render`] turns a [`ReportInput`] (kept records with their clusters and scores, 2-D
//! map coordinates, cluster summaries, removed duplicates, rejections, failures and the
//! run summary) into one self-contained HTML document: inline CSS, inline SVG, one
//! inline script and one inert JSON data block for the records explorer, no network
//! fetch of any kind, so the file can be mailed or opened offline.
//!
//! All record text is HTML-escaped wherever it lands (element text, SVG `<title>`,
//! attributes); in the explorer's JSON block `<`, `>` and `&` are `\uXXXX` escapes, and
//! the script writes that data to the page only as `textContent`. As a second line of defence the page carries a Content-Security-Policy
//! that only allows its own script (by hash) and forbids every fetch, so even a bug in
//! escaping could not run a record's script or phone home.
//!
//! Rendering is CPU work (string building, and a PCA when no points are given): callers
//! on an async runtime should run it on the rayon bridge, not on a tokio worker.

// Leaves first: html and input use no other module; limits is plain constants; charts
// uses html; map uses html, input and limits; view uses charts and input; the sections
// (summary, clusters, duplicates) use those; page uses the sections. `run` and `demo`
// only build a `ReportInput`. explorer_data uses input, view and limits; explorer puts
// it in the page with its controls.
mod charts;
mod clusters;
#[doc(hidden)]
pub mod demo;
mod duplicates;
mod explorer;
mod explorer_data;
mod html;
mod input;
mod limits;
mod map;
mod page;
mod quality;
pub mod run;
mod summary;
mod view;

pub use html::{esc as escape_html, truncate};
pub use input::{
    ClusterInfo, DedupMode, DuplicateRow, ReportInput, RunSummaryView, StepRow, TeacherRow,
    UnknownDedupMode,
};
pub use limits::{
    EXAMPLES_PER_CLUSTER, EXPLORER_FIELD_BYTES, EXPLORER_LABEL_BYTES, EXPLORER_MAX_LABELS,
    EXPLORER_MAX_RECORDS, EXPLORER_MAX_SCORE_COLUMNS, EXPLORER_MAX_SIDE_ROWS,
    EXPLORER_MIN_ROW_BYTES, EXPLORER_ROW_BYTES, EXPLORER_TOTAL_TEXT_BYTES, MAX_DUPLICATE_ROWS,
    MAX_EXAMPLE_CLUSTERS, MAX_LEGEND_CLUSTERS, MAX_MAP_POINTS,
};
pub use map::sample_evenly;
pub use page::render;

#[doc(hidden)]
pub use demo::demo_input;
