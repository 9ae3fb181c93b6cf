//! The novelty filter on files (`retort novelty`): the same decisions as the
//! `novelty_filter` step, read from a pool file and a candidates file and written as one
//! JSON line per candidate. The step reads its optional pool through [`read_pool`] too.

use std::io::Write;
use std::path::Path;

use retort_text::novelty::NoveltyIndex;
use serde_json::{json, Value};

use crate::api::StepError;

/// Texts of a pool file with an id for each (`id` column when present, else
/// `<file name>:<line>`). A row without the text column is an error naming the line.
pub(crate) fn read_pool(path: &Path, column: &str) -> Result<Vec<(String, String)>, StepError> {
    let rows = retort_store::read_rows(path, None)
        .map_err(|e| StepError::Config(format!("pool file: {e}")))?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut out = Vec::new();
    for row in rows {
        let row = row.map_err(|e| StepError::Config(e.to_string()))?;
        let text = match row.fields.get(column) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(StepError::Config(format!(
                    "{}: line {}: `{column}` is not a string ({other})",
                    path.display(),
                    row.line
                )))
            }
            None => {
                return Err(StepError::Config(format!(
                    "{}: line {}: no `{column}` column; set the column to compare (`pool_column` in a pipeline, `--field` on the command line)",
                    path.display(),
                    row.line
                )))
            }
        };
        let id = match row.fields.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => format!("{file}:{}", row.line),
        };
        out.push((id, text));
    }
    Ok(out)
}

/// Counts from [`check_files`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoveltySummary {
    /// Texts in the pool file.
    pub pool: usize,
    /// Candidates read.
    pub candidates: usize,
    /// Candidates accepted (they joined the pool).
    pub accepted: usize,
    /// Candidates rejected as too similar.
    pub rejected: usize,
}

/// `retort novelty`: decide every row of `candidates` against `pool` (optional) and the
/// candidates accepted before it, and write one decision per candidate to `out`:
/// `{"id", "text", "accepted", "max_sim", "most_similar_id", "most_similar_text"}`
/// (`most_similar_*` null when nothing shares a token).
///
/// `field` names the text column in both files (e.g. `instruction`, `prompt`, `text`);
/// ids come from an `id` column when present, else `<file name>:<line>`. Inputs may be
/// JSONL, JSON, CSV or Parquet. Output: `.jsonl`/`.ndjson` (written atomically).
/// Parquet output is not available in this build (retort-steps does not link Arrow):
/// a `.parquet` `out` is a [`StepError::Config`] saying so. Blocking: call it from a
/// plain thread or `spawn_blocking`, not from an async task.
pub fn check_files(
    pool: Option<&Path>,
    candidates: &Path,
    threshold: f64,
    field: &str,
    out: &Path,
) -> Result<NoveltySummary, StepError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(StepError::Config(format!(
            "--threshold must be between 0 and 1 (got {threshold})"
        )));
    }
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jsonl" | "ndjson" => {}
        "parquet" | "pq" => {
            return Err(StepError::Config(format!(
                "{}: Parquet decisions are not supported yet; write .jsonl",
                out.display()
            )))
        }
        _ => {
            return Err(StepError::Config(format!(
                "{}: unknown output extension; use .jsonl",
                out.display()
            )))
        }
    }
    let mut index = NoveltyIndex::new(threshold);
    let mut ids = Vec::new();
    if let Some(p) = pool {
        for (id, text) in read_pool(p, field)? {
            index.add(&text);
            ids.push(id);
        }
    }
    let pool_n = index.len();
    let cands = read_pool(candidates, field)?;
    let texts: Vec<&str> = cands.iter().map(|(_, t)| t.as_str()).collect();
    let decisions = index.check_and_add_all(&texts);

    let tmp = out.with_extension(format!("{ext}.tmp-{}", std::process::id()));
    let io = |e: std::io::Error| StepError::io(out.display().to_string())(e);
    let mut summary = NoveltySummary {
        pool: pool_n,
        candidates: cands.len(),
        ..Default::default()
    };
    {
        let f = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = std::io::BufWriter::new(f);
        for ((id, text), d) in cands.iter().zip(&decisions) {
            if d.accepted {
                summary.accepted += 1;
                ids.push(id.clone());
            } else {
                summary.rejected += 1;
            }
            let line = json!({
                "id": id,
                "text": text,
                "accepted": d.accepted,
                "max_sim": d.max_sim,
                "most_similar_id": d.most_similar.map(|i| ids[i].clone()),
                "most_similar_text": d.most_similar.map(|i| index.text(i)),
            });
            serde_json::to_writer(&mut w, &line).map_err(|e| io(e.into()))?;
            w.write_all(b"\n").map_err(io)?;
        }
        let f = w.into_inner().map_err(|e| io(e.into_error()))?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, out).map_err(io)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_files_writes_one_decision_per_candidate() {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool.jsonl");
        let cands = dir.path().join("cands.jsonl");
        let out = dir.path().join("out.jsonl");
        std::fs::write(&pool, "{\"instruction\":\"Write a poem about the sea.\"}\n").unwrap();
        std::fs::write(
            &cands,
            "{\"id\":1,\"instruction\":\"Write a poem about the sea!\"}\n\
             {\"id\":2,\"instruction\":\"List five prime numbers.\"}\n\
             {\"id\":3,\"instruction\":\"List five prime numbers below 20.\"}\n",
        )
        .unwrap();
        let s = check_files(Some(&pool), &cands, 0.7, "instruction", &out).unwrap();
        assert_eq!(
            s,
            NoveltySummary {
                pool: 1,
                candidates: 3,
                accepted: 1,
                rejected: 2
            }
        );
        let lines: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["accepted"], false);
        assert_eq!(lines[0]["most_similar_id"], "pool.jsonl:1");
        assert_eq!(lines[0]["most_similar_text"], "Write a poem about the sea.");
        assert_eq!(lines[1]["accepted"], true);
        assert_eq!(lines[1]["most_similar_text"], Value::Null);
        assert_eq!(lines[2]["accepted"], false);
        assert_eq!(lines[2]["most_similar_id"], "2");
        let e = check_files(None, &cands, 0.7, "prompt", &out).unwrap_err();
        assert!(e.to_string().contains("no `prompt` column"), "{e}");
        let e = check_files(
            None,
            &cands,
            0.7,
            "instruction",
            &dir.path().join("o.parquet"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("Parquet"), "{e}");
    }
}
