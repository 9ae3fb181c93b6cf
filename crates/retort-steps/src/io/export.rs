//! `export`: write the records in a format training tools read directly (TRL, HF
//! datasets, Alpaca, ShareGPT) as Parquet or JSONL, chosen by the file extension.
//!
//! Files are written under temp names and renamed into place only when complete, so a
//! crashed run never leaves a half-written dataset at the final path. A record that the
//! format cannot express (a DPO export of a record without a pair) is a failure row,
//! never silently dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::Failure;
use retort_store::{ExportFormat, Exporter};
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// Options of an `export` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportOptions {
    /// `messages`, `alpaca`, `sharegpt`, `dpo`, `dpo_conversational` or `records`.
    pub format: String,
    /// Output file, relative to the run directory (`.parquet` or `.jsonl`).
    #[serde(default)]
    pub path: Option<String>,
    /// Several output files (e.g. the same data as Parquet and JSONL).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Write one file per value of this label (e.g. `tier`): `sft.parquet` becomes
    /// `sft-easy.parquet`, `sft-hard.parquet`, …
    #[serde(default)]
    pub split_by: Option<String>,
}

/// Build an `export` step.
pub fn build(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: ExportOptions = parse_options(spec)?;
    let mut errs = Vec::new();
    let format = match ExportFormat::from_name(&o.format) {
        Ok(f) => Some(f),
        Err(_) => {
            errs.push(format!(
                "unknown export format `{}`; hint: use one of messages, alpaca, sharegpt, dpo, dpo_conversational, records",
                o.format
            ));
            None
        }
    };
    let mut paths: Vec<String> = o.path.iter().cloned().collect();
    paths.extend(o.paths.iter().cloned());
    if paths.is_empty() {
        errs.push("`export` needs `path`; hint: path = \"sft.parquet\"".into());
    }
    for p in &paths {
        if !(p.ends_with(".parquet") || p.ends_with(".jsonl")) {
            errs.push(format!("output `{p}` must end in .parquet or .jsonl"));
        }
        if std::path::Path::new(p).is_absolute() || p.contains("..") {
            errs.push(format!(
                "output `{p}` must be a relative path inside the run directory; hint: use --out to move the run directory"
            ));
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let format = format.expect("checked above");
    Ok(Built::new(
        Arc::new(Export {
            format,
            paths: paths.clone(),
            split_by: o.split_by.clone(),
        }),
        format!(
            "{} in {} format{}",
            paths.join(", "),
            format.name(),
            o.split_by
                .map(|s| format!(", one file per `{s}`"))
                .unwrap_or_default()
        ),
    ))
}

/// The `export` step.
pub struct Export {
    format: ExportFormat,
    paths: Vec<String>,
    split_by: Option<String>,
}

fn split_path(p: &str, value: &str) -> String {
    let safe: String = value
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match p.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}-{safe}.{ext}"),
        None => format!("{p}-{safe}"),
    }
}

#[async_trait]
impl Step for Export {
    fn batch_size(&self) -> usize {
        CPU_BATCH
    }

    fn shape(&self) -> Shape {
        // Streaming: rows are written to the temp files as upstream commits them, so the
        // export finishes right after its input instead of starting then. The files are
        // renamed into place only when complete, and the step commits once at the end, so
        // an interrupted export simply starts over.
        Shape::Streaming
    }

    async fn run(
        &self,
        ctx: &StepCtx,
        mut inputs: Inputs,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        // (split value or "") → one exporter per output path.
        let mut exporters: BTreeMap<String, Vec<Exporter>> = BTreeMap::new();
        let mut failures = Vec::new();
        let mut consumed = 0u64;
        while let Some(batch) = inputs.next_batch().await? {
            consumed += batch.len() as u64;
            let mut groups: BTreeMap<String, Vec<retort_core::Record>> = BTreeMap::new();
            for r in batch {
                let key = match &self.split_by {
                    None => String::new(),
                    Some(col) => match r.column(col) {
                        Some(retort_core::ColumnValue::Str(s)) => s.to_string(),
                        Some(retort_core::ColumnValue::Num(n)) => n.to_string(),
                        None => {
                            failures.push(Failure {
                                step: ctx.step_id.clone(),
                                record_id: r.id.clone(),
                                class: "export".into(),
                                status: None,
                                message: format!("record has no `{col}` to split by"),
                                raw: r.prompt_text(),
                            });
                            continue;
                        }
                    },
                };
                groups.entry(key).or_default().push(r);
            }
            for (key, records) in groups {
                if !exporters.contains_key(&key) {
                    let mut v = Vec::new();
                    for p in &self.paths {
                        let rel = if key.is_empty() {
                            p.clone()
                        } else {
                            split_path(p, &key)
                        };
                        let full: PathBuf = ctx.run_dir.join(&rel);
                        if let Some(parent) = full.parent() {
                            std::fs::create_dir_all(parent)
                                .map_err(StepError::io(parent.display().to_string()))?;
                        }
                        v.push(Exporter::create(&full, self.format)?);
                    }
                    exporters.insert(key.clone(), v);
                }
                let exps = exporters.remove(&key).expect("inserted above");
                let records = Arc::new(records);
                let (exps, res) = ctx
                    .cpu
                    .run(move || {
                        let mut exps = exps;
                        let mut skipped = Vec::new();
                        for (i, e) in exps.iter_mut().enumerate() {
                            match e.write(&records) {
                                Ok(s) if i == 0 => skipped = s,
                                Ok(_) => {}
                                Err(err) => return (exps, Err(err)),
                            }
                        }
                        (exps, Ok(skipped))
                    })
                    .await;
                exporters.insert(key, exps);
                for (id, reason) in res? {
                    failures.push(Failure {
                        step: ctx.step_id.clone(),
                        record_id: id,
                        class: "export".into(),
                        status: None,
                        message: reason,
                        raw: String::new(),
                    });
                }
            }
            ctx.stats.set_total(consumed);
            ctx.stats
                .done
                .store(consumed, std::sync::atomic::Ordering::Relaxed);
        }
        if exporters.is_empty() {
            // No input rows: still write empty, valid files so consumers find them.
            for p in &self.paths {
                let full = ctx.run_dir.join(p);
                exporters
                    .entry(String::new())
                    .or_default()
                    .push(Exporter::create(&full, self.format)?);
            }
        }
        for (key, exps) in exporters {
            for (e, p) in exps.into_iter().zip(&self.paths) {
                let rows = ctx.cpu.run(move || e.finish()).await?;
                let rel = if key.is_empty() {
                    p.clone()
                } else {
                    split_path(p, &key)
                };
                ctx.stats
                    .add_output(&ctx.run_dir.join(rel), Some(rows as u64));
            }
        }
        out.commit(Batch {
            failures,
            consumed,
            ..Default::default()
        })
        .await
    }
}
