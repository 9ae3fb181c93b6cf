//! `novelty_filter`: Self-Instruct's ROUGE-L novelty filter as a step of its own, for
//! cleaning instruction sets users already have (`retort novelty` does the same on files:
//! [`super::novelty_files`]).
//!
//! Candidates are taken in input order; each one is compared with every instruction in
//! the pool — the optional `pool` file first, then every candidate accepted before it —
//! and rejected when its maximum ROUGE-L F1 is greater than `threshold` (Self-Instruct /
//! Alpaca semantics: a score equal to the threshold is kept). Accepted records gain
//! `scores.max_rouge_l`; rejected ones become `Rejection { reason: "rouge_l", detail:
//! "0.83 vs <id>" }`. Similarity is [`retort_text::rouge`] (rouge_score-identical on
//! English, per character on CJK) and the search is [`retort_text::novelty`]'s exact index,
//! run on the CPU pool.
//!
//! ```toml
//! [[step]]
//! id = "novel"
//! kind = "novelty_filter"
//! after = ["tasks"]
//! threshold = 0.7              # default
//! field = "instruction"        # or "prompt" (instruction + input, or first user turn)
//! pool = "seeds/en.jsonl"      # optional: JSONL/JSON/CSV/Parquet whose texts seed the pool
//! pool_column = "instruction"  # column of the pool file (default: same as `field`)
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Failure, Record, Rejection};
use retort_text::novelty::{NoveltyDecision, NoveltyIndex};
use serde::Deserialize;

use super::novelty_files::read_pool;
use crate::api::{Batch, OutputSink, StepCtx, StepError, TableStep};
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};

/// Candidates decided per commit: bounds the work lost to a crash and lets progress move.
const COMMIT_EVERY: usize = 5_000;

/// Which text of a record is compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// `instruction` only (Self-Instruct compares instructions, not inputs).
    #[default]
    Instruction,
    /// The prompt: instruction + input, or the first user turn of a chat.
    Prompt,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Instruction => "instruction",
            Field::Prompt => "prompt",
        }
    }

    fn text(self, r: &Record) -> Option<String> {
        let t = match self {
            Field::Instruction => r.instruction.clone()?,
            Field::Prompt => r.prompt_text(),
        };
        (!t.trim().is_empty()).then_some(t)
    }
}

/// Options of `kind = "novelty_filter"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoveltyFilterOptions {
    /// ROUGE-L F1 above which a candidate is rejected (default 0.7).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// `instruction` (default) or `prompt`.
    #[serde(default)]
    pub field: Field,
    /// File whose texts seed the pool (JSONL, JSON, CSV or Parquet), e.g. the seed tasks.
    pub pool: Option<String>,
    /// Column of the pool file holding the text (default: the `field` name).
    pub pool_column: Option<String>,
}

fn default_threshold() -> f64 {
    0.7
}

/// The runnable step.
pub struct NoveltyFilter {
    threshold: f64,
    field: Field,
    pool: Option<PathBuf>,
    pool_column: String,
}

/// Build `novelty_filter` from its options.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: NoveltyFilterOptions = parse_options(spec)?;
    let mut errors = vec![];
    if !(0.0..=1.0).contains(&o.threshold) {
        errors.push(format!(
            "`threshold` must be between 0 and 1 (got {}); Self-Instruct uses 0.7",
            o.threshold
        ));
    }
    let pool = o.pool.as_deref().map(|p| ctx.resolve(p));
    if let Some(p) = &pool {
        if !p.is_file() {
            errors.push(format!(
                "`pool` file {} does not exist; give a JSONL/JSON/CSV/Parquet file of instructions or remove `pool`",
                p.display()
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let step = NoveltyFilter {
        threshold: o.threshold,
        field: o.field,
        pool_column: o.pool_column.unwrap_or_else(|| o.field.name().to_string()),
        pool: pool.clone(),
    };
    let mut built = Built::new(
        Arc::new(step),
        format!(
            "records whose {} has ROUGE-L F1 <= {} against the pool{} and earlier records (adds scores.max_rouge_l); others rejected as `rouge_l`",
            o.field.name(),
            o.threshold,
            if pool.is_some() { " file" } else { "" }
        ),
    );
    built.files = pool.into_iter().collect();
    Ok(built)
}

/// Rejection detail: the score to two decimals and the id of the most similar item.
fn detail(d: &NoveltyDecision, ids: &[String]) -> String {
    match d.most_similar {
        Some(i) => format!("{:.2} vs {}", d.max_sim, ids[i]),
        None => format!("{:.2}", d.max_sim),
    }
}

crate::table_step!(NoveltyFilter);

#[async_trait]
impl TableStep for NoveltyFilter {
    async fn run_table(
        &self,
        ctx: &StepCtx,
        records: Vec<Record>,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        // On resume, the records accepted by earlier commits are part of the pool, in
        // the order they were accepted: rebuilding it gives the decisions of an
        // uninterrupted run.
        let previous = out.committed().await?;
        let pool_file = self.pool.clone();
        let column = self.pool_column.clone();
        let threshold = self.threshold;
        let field = self.field;
        let (mut index, mut ids) = ctx
            .cpu
            .run(move || -> Result<(NoveltyIndex, Vec<String>), StepError> {
                let mut index = NoveltyIndex::new(threshold);
                let mut ids = Vec::new();
                if let Some(p) = pool_file {
                    for (id, text) in read_pool(&p, &column)? {
                        index.add(&text);
                        ids.push(id);
                    }
                }
                for r in &previous {
                    if let Some(t) = field.text(r) {
                        index.add(&t);
                        ids.push(r.id.clone());
                    }
                }
                Ok((index, ids))
            })
            .await?;
        tracing::info!(
            step = %ctx.step_id,
            pool = index.len(),
            candidates = records.len(),
            "novelty filter started"
        );

        let mut rest = records.into_iter();
        loop {
            let chunk: Vec<Record> = rest.by_ref().take(COMMIT_EVERY).collect();
            if chunk.is_empty() {
                break;
            }
            let consumed = chunk.len() as u64;
            let mut batch = Batch {
                consumed,
                ..Default::default()
            };
            let mut texts = Vec::new();
            let mut kept = Vec::new();
            for r in chunk {
                match field.text(&r) {
                    Some(t) => {
                        texts.push(t);
                        kept.push(r);
                    }
                    None => batch.failures.push(Failure {
                        step: ctx.step_id.clone(),
                        record_id: r.id.clone(),
                        class: "bad_input".into(),
                        status: None,
                        message: format!(
                            "record has no {} text to compare (field = \"{}\")",
                            field.name(),
                            field.name()
                        ),
                        raw: serde_json::to_string(&r)
                            .expect("a record (string-keyed maps only) always serializes"),
                    }),
                }
            }
            let (idx, decisions, texts) = ctx
                .cpu
                .run(move || {
                    let d = index.check_and_add_all(&texts);
                    (index, d, texts)
                })
                .await;
            index = idx;
            for ((mut r, d), text) in kept.into_iter().zip(decisions).zip(texts) {
                if d.accepted {
                    ids.push(r.id.clone());
                    r.scores.insert("max_rouge_l".into(), d.max_sim);
                    batch.records.push(r);
                } else {
                    batch.rejections.push(Rejection {
                        step: ctx.step_id.clone(),
                        record_id: r.id.clone(),
                        reason: "rouge_l".into(),
                        detail: detail(&d, &ids),
                        text,
                    });
                }
            }
            ctx.stats.count_rejections(&batch.rejections);
            ctx.stats.add_done(consumed);
            out.commit(batch).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{inputs_from, test_ctx, MemSink};
    use std::collections::BTreeMap;

    fn rec(id: &str, instruction: &str) -> Record {
        Record {
            id: id.into(),
            instruction: Some(instruction.into()),
            ..Default::default()
        }
    }

    fn spec(options: &str) -> StepSpec {
        StepSpec {
            id: "novel".into(),
            kind: "novelty_filter".into(),
            after: vec!["tasks".into()],
            options: toml::from_str(options).unwrap(),
        }
    }

    #[tokio::test]
    async fn keeps_novel_records_and_rejects_repeats_with_the_pool_id() {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("seeds.jsonl");
        std::fs::write(
            &pool,
            "{\"id\":\"seed_1\",\"instruction\":\"Give three tips for staying healthy.\"}\n",
        )
        .unwrap();
        let ctx_b = BuildCtx {
            base_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let built = build(&spec("pool = \"seeds.jsonl\""), &ctx_b).unwrap();
        assert_eq!(built.files, vec![pool.clone()]);
        let rows = vec![
            rec("a", "Give three tips for staying healthy!"),
            rec("b", "Explain how vaccines train the immune system."),
            rec("c", "Explain how vaccines train the immune system please."),
            rec("d", "请写一首关于秋天的诗。"),
            rec("e", "写一首描写秋天的诗。"),
            Record {
                id: "f".into(),
                ..Default::default()
            },
        ];
        let ctx = test_ctx("novel", BTreeMap::new(), None);
        let mut sink = MemSink::default();
        built
            .step
            .run(&ctx, inputs_from(rows, 2), &mut sink)
            .await
            .unwrap();
        let kept: Vec<String> = sink.records().iter().map(|r| r.id.clone()).collect();
        assert_eq!(kept, vec!["b", "d"]);
        assert!(sink
            .records()
            .iter()
            .all(|r| r.scores.contains_key("max_rouge_l")));
        let rej = sink.rejections();
        let by_id: BTreeMap<_, _> = rej.iter().map(|r| (r.record_id.as_str(), r)).collect();
        assert_eq!(by_id["a"].reason, "rouge_l");
        assert_eq!(by_id["a"].detail, "1.00 vs seed_1");
        assert!(by_id["c"].detail.ends_with("vs b"), "{}", by_id["c"].detail);
        assert!(by_id["e"].detail.ends_with("vs d"), "{}", by_id["e"].detail);
        assert_eq!(sink.failures().len(), 1);
        assert_eq!(sink.failures()[0].class, "bad_input");
        assert_eq!(ctx.stats.rejected.lock().unwrap()["rouge_l"], 3);
    }

    #[tokio::test]
    async fn resumed_run_counts_earlier_accepted_records_in_the_pool() {
        let built = build(&spec(""), &BuildCtx::default()).unwrap();
        let ctx = test_ctx("novel", BTreeMap::new(), None);
        let mut sink = MemSink {
            previous: vec![rec("x", "Describe the water cycle in simple words.")],
            ..Default::default()
        };
        let rows = vec![rec("y", "Describe the water cycle in simple words")];
        built
            .step
            .run(&ctx, inputs_from(rows, 10), &mut sink)
            .await
            .unwrap();
        assert!(sink.records().is_empty());
        assert_eq!(sink.rejections()[0].detail, "1.00 vs x");
    }

    #[test]
    fn options_are_checked() {
        let e = build(&spec("threshold = 1.5"), &BuildCtx::default())
            .err()
            .unwrap();
        assert!(e[0].contains("threshold"), "{e:?}");
        let e = build(&spec("field = \"output\""), &BuildCtx::default())
            .err()
            .unwrap();
        assert!(e[0].contains("output"), "{e:?}");
        let e = build(&spec("treshold = 0.5"), &BuildCtx::default())
            .err()
            .unwrap();
        assert!(e[0].contains("treshold"), "{e:?}");
        let e = build(&spec("pool = \"missing.jsonl\""), &BuildCtx::default())
            .err()
            .unwrap();
        assert!(e[0].contains("missing.jsonl"), "{e:?}");
    }
}
