//! `report` step: renders the run's HTML report ([`retort_report::run`] gathers the run
//! directory) from its input records, and refreshes it when the run ends.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use retort_report::run::{load_run, read_step, write_html};
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// Options of a `report` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportOptions {
    /// Output file, relative to the run directory.
    #[serde(default = "default_path")]
    pub path: String,
    /// Page title (default: the pipeline name).
    #[serde(default)]
    pub title: Option<String>,
}

fn default_path() -> String {
    "report.html".into()
}

/// Build a `report` step.
pub fn build(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: ReportOptions = parse_options(spec)?;
    if !o.path.ends_with(".html") || Path::new(&o.path).is_absolute() || o.path.contains("..") {
        return Err(vec![format!(
            "`path` must be a relative .html path inside the run directory, got `{}`",
            o.path
        )]);
    }
    Ok(Built::new(
        Arc::new(ReportStep {
            o: o.clone(),
            after: spec.after.clone(),
        }),
        format!(
            "{} (cluster map, scores, examples, removed duplicates, records explorer)",
            o.path
        ),
    ))
}

/// The `report` step: renders the page from its input records (clustered, with map
/// positions) plus every dedup step's removed duplicates found in the run directory.
pub struct ReportStep {
    o: ReportOptions,
    /// Input step ids, to re-read the records when the page is refreshed after the run.
    after: Vec<String>,
}

crate::table_step!(ReportStep);

#[async_trait]
impl TableStep for ReportStep {
    async fn run_table(
        &self,
        ctx: &StepCtx,
        records: Vec<retort_core::Record>,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        let n = records.len() as u64;
        let run_dir = ctx.run_dir.clone();
        let title = self.o.title.clone();
        let path = run_dir.join(&self.o.path);
        let html = ctx
            .cpu
            .run(move || -> Result<String, StepError> {
                let input = load_run(&run_dir, Some(records), title)?;
                Ok(retort_report::render(&input))
            })
            .await?;
        write_html(&path, &html)?;
        ctx.stats.add_output(&path, None);
        ctx.stats.add_done(n);
        out.commit(Batch {
            consumed: n,
            ..Default::default()
        })
        .await
    }

    fn after_run(&self, run_dir: &Path) -> Result<(), StepError> {
        let mut records = Vec::new();
        for id in &self.after {
            records.extend(read_step(run_dir, id)?);
        }
        let input = load_run(run_dir, Some(records), self.o.title.clone())?;
        write_html(&run_dir.join(&self.o.path), &retort_report::render(&input))
            .map_err(StepError::from)
    }
}
