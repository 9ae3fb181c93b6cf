//! `export`: write the records in a format training tools read directly (TRL, HF
//! datasets, Alpaca, ShareGPT) as Parquet or JSONL, chosen by the file extension.
//!
//! Files are written under temp names and renamed into place only when complete, so a
//! crashed run never leaves a half-written dataset at the final path. A record that the
//! format cannot express (a DPO export of a record without a pair) is a failure row,
//! never silently dropped. Which options fit which format is decided by
//! `retort_store::ExportFormat::check`, called here so a misfit stops the compile.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::Failure;
use retort_store::{ExportFormat, ExportOptions as StoreOptions, Exporter, KeepColumn, Reasoning};
use serde::Deserialize;

use crate::api::*;
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// Options of an `export` step.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportOptions {
    /// A name from `retort_store::ExportFormat::ALL` (`messages`, `dpo`, `kto`, …).
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
    /// Record fields written as plain columns: `quality`, `tier`, `cluster`, `model`,
    /// `scores.NAME`, `labels.NAME`, …
    #[serde(default)]
    pub keep_columns: Vec<String>,
    /// Write the `id` column (default true).
    #[serde(default = "yes")]
    pub include_id: bool,
    /// `reasoning_content`, `thinking`, `inline` or `drop`.
    #[serde(default)]
    pub reasoning: Option<String>,
    /// Write a LLaMA-Factory `dataset_info.json` entry beside each file.
    #[serde(default)]
    pub dataset_info: Option<bool>,
    /// Write tool definitions and tool calls (formats `messages`, `sharegpt`,
    /// `prompt_completion_conversational`, `prompt_only_conversational`). Without it a
    /// record that has them is a failure row, never written stripped.
    #[serde(default)]
    pub tools: bool,
}

fn yes() -> bool {
    true
}

/// Build an `export` step.
pub fn build(spec: &StepSpec, _ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: ExportOptions = parse_options(spec)?;
    let mut errs = Vec::new();
    let format = match ExportFormat::from_name(&o.format) {
        Ok(f) => Some(f),
        Err(_) => {
            errs.push(format!(
                "unknown export format `{}`; hint: use one of {}",
                o.format,
                ExportFormat::names()
            ));
            None
        }
    };
    let mut keep_columns = Vec::new();
    for k in &o.keep_columns {
        match KeepColumn::parse(k) {
            Ok(c) => keep_columns.push(c),
            Err(e) => errs.push(e),
        }
    }
    let reasoning = match o.reasoning.as_deref().map(Reasoning::from_name).transpose() {
        Ok(r) => r,
        Err(e) => {
            errs.push(e);
            None
        }
    };
    let options = StoreOptions {
        include_id: o.include_id,
        keep_columns,
        reasoning,
        dataset_info: o.dataset_info,
        tools: o.tools,
    };
    if let Some(f) = format {
        errs.extend(f.check(&options));
    }
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
            options,
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
    options: StoreOptions,
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
                        v.push(Exporter::create_with(&full, self.format, &self.options)?);
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
                    .push(Exporter::create_with(&full, self.format, &self.options)?);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &str) -> StepSpec {
        StepSpec {
            id: "out".into(),
            kind: "export".into(),
            after: vec!["load".into()],
            options: toml::from_str(options).expect("test options are TOML"),
        }
    }

    fn errors(options: &str) -> Vec<String> {
        match build(&spec(options), &BuildCtx::default()) {
            Ok(_) => vec![],
            Err(e) => e,
        }
    }

    #[test]
    fn every_option_problem_is_reported_at_once_with_what_exists() {
        let e = errors(
            r#"format = "alpaca"
               path = "a.jsonl"
               keep_columns = ["quality", "qualty", "labels.tier"]
               include_id = false
               reasoning = "thinking""#,
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].contains("unknown column `qualty`"), "{}", e[0]);
        assert!(e[0].contains("quality, difficulty"), "{}", e[0]);
        assert!(e[0].contains("scores.qualty"), "{}", e[0]);
        assert!(
            e[1].contains("include_id = false") && e[1].contains("no `id`"),
            "{}",
            e[1]
        );
        assert!(e[2].contains("reasoning = \"thinking\""), "{}", e[2]);
    }

    #[test]
    fn kept_column_clashing_with_the_format_and_bad_mode_are_errors() {
        let e = errors(
            r#"format = "kto"
               path = "k.parquet"
               keep_columns = ["labels.label"]
               reasoning = "verbose""#,
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].contains("unknown reasoning mode `verbose`"),
            "{}",
            e[0]
        );
        assert!(
            e[1].contains("`label` is already a column of `kto`"),
            "{}",
            e[1]
        );
    }

    #[test]
    fn unknown_format_lists_every_format() {
        let e = errors(
            r#"format = "orpo"
                          path = "x.jsonl""#,
        );
        assert!(
            e[0].contains("alpaca_ranking") && e[0].contains("prompt_only"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn good_options_build() {
        let e = errors(
            r#"format = "messages"
               path = "sft.parquet"
               keep_columns = ["quality", "tier", "cluster", "model", "scores.len"]
               include_id = false
               reasoning = "inline"
               dataset_info = true"#,
        );
        assert!(e.is_empty(), "{e:#?}");
    }
}
