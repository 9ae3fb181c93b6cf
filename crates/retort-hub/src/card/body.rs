//! The card's Markdown body, from the typed manifest: what the dataset is for, how it
//! was made (command, retort version, pipeline hash), the files, the teachers and
//! judges with their models, every step with rows in/out and rejections by reason,
//! failures by class, dedup results, judge calibration, tokens and cost, example rows,
//! the license, and the teachers' terms.
//!
//! Every value that comes from data or the pipeline is escaped for where it lands:
//! table cells cannot break the table or inject HTML, example rows sit in a code fence
//! longer than any backtick run inside them, with `<`, `>` and `&` as JSON escapes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use retort_store::Manifest;

use super::gather::Gathered;
use crate::exports::ExportConfig;
use crate::facts::PipelineFacts;
use crate::features::features;

/// Step kinds whose teacher acts as a judge.
const JUDGE_KINDS: &[&str] = &["judge", "score"];

/// Text for a table cell: no newlines, no `|`, no HTML.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            '`' => out.push('\''),
            c => out.push(c),
        }
    }
    out
}

/// Inline code of a value (backticks inside are replaced, HTML escaped).
fn code(s: &str) -> String {
    format!("`{}`", cell(s))
}

/// A JSON value shown safely: strings cut to `max` characters, `<>&` as `\u` escapes
/// (still valid JSON), in a fence longer than any backtick run in it.
pub fn example_block(v: &serde_json::Value, max: usize) -> String {
    let v = truncate(v, max);
    let json = serde_json::to_string_pretty(&v)
        .expect("a JSON value serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let longest = json.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}json\n{json}\n{fence}\n")
}

fn truncate(v: &serde_json::Value, max: usize) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) if s.chars().count() > max => {
            Value::String(format!("{}…", s.chars().take(max).collect::<String>()))
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| truncate(x, max)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), truncate(x, max)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn rejections(r: &BTreeMap<String, u64>) -> String {
    if r.is_empty() {
        return "—".into();
    }
    r.iter()
        .map(|(k, v)| format!("{}: {v}", cell(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The file the example rows come from: the default (first listed) config's first split.
pub fn examples_from(configs: &[ExportConfig]) -> String {
    configs
        .iter()
        .find(|c| c.listed)
        .and_then(|c| c.splits.first())
        .map(|s| s.repo_path.clone())
        .unwrap_or_default()
}

/// Builds the body.
pub fn body(m: &Manifest, facts: &PipelineFacts, configs: &[ExportConfig], g: &Gathered) -> String {
    let mut b = String::new();
    let w = &mut b;
    let _ = writeln!(w, "# {}\n", cell(&m.name));
    match &facts.description {
        Some(d) => {
            let _ = writeln!(w, "{}\n", d.trim());
        }
        None => {
            let _ = writeln!(
                w,
                "_This pipeline has no `description`; add `description = \"…\"` at the top of the pipeline file to say what the dataset is for._\n"
            );
        }
    }
    let _ = writeln!(
        w,
        "Synthetic data made with [retort](https://github.com/retort) {}: teacher models wrote it from seed tasks; every number below comes from the run's manifest.\n",
        code(&m.retort_version)
    );

    // How it was made.
    let _ = writeln!(w, "## How it was made\n");
    // The command as typed (older manifests did not keep it: then the pipeline file).
    let command = match &m.command {
        Some(c) => c.clone(),
        None => format!("retort run {}", m.pipeline_file),
    };
    let _ = writeln!(w, "```sh\n{}\n```\n", command.replace('`', "'"));
    let _ = writeln!(
        w,
        "- retort version: {}\n- resolved pipeline sha256: {} (the pipeline after every `--set` override; `retort push --include-pipeline` uploads it as `retort/pipeline.toml`)\n- seed: {}\n- status: {}{}\n- started {}, finished {}\n",
        code(&m.retort_version),
        code(&m.pipeline_hash),
        facts.seed.map(|s| s.to_string()).unwrap_or_else(|| "0 (default)".into()),
        code(&m.status),
        if m.resumed { " (resumed from earlier checkpoints)" } else { "" },
        cell(&m.started_at),
        m.finished_at.as_deref().map(cell).unwrap_or_else(|| "—".into()),
    );

    // Files.
    let _ = writeln!(w, "## Files\n");
    let _ = writeln!(
        w,
        "| config | split | file | format | rows | |\n|---|---|---|---|---|---|"
    );
    for c in configs {
        for s in &c.splits {
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} ({}) | {} | {} |",
                code(&c.name),
                code(&s.split),
                code(&s.repo_path),
                code(&c.format),
                c.container.name(),
                s.rows,
                if c.listed {
                    ""
                } else {
                    "not a config: the same rows as JSONL"
                }
            );
        }
    }
    if let Some(first) = configs.iter().find(|c| c.listed) {
        let _ = writeln!(
            w,
            "\nLoad one with `datasets.load_dataset(\"<this repo>\", \"{}\")`.",
            cell(&first.name)
        );
    }
    if configs.iter().any(|c| !c.listed) {
        let _ = writeln!(
            w,
            "\nThe JSONL files are uploaded beside the Parquet ones but are not configs: `datasets` reads one file format per repository."
        );
    }
    for c in configs.iter().filter(|c| c.listed) {
        match (&c.schema, c.container) {
            (Some(s), _) => {
                if let Err(e) = features(s) {
                    let _ = writeln!(
                        w,
                        "\nConfig {}: no features declared ({}).",
                        code(&c.name),
                        cell(&e)
                    );
                }
            }
            (None, _) => {
                let _ = writeln!(
                    w,
                    "\nConfig {} is JSONL: its features are whatever `datasets` infers from the rows (the Parquet configs declare theirs).",
                    code(&c.name)
                );
            }
        }
    }
    let _ = writeln!(w);

    // Teachers and judges.
    let _ = writeln!(w, "## Teachers and judges\n");
    let kind_of: BTreeMap<&str, &str> = m
        .steps
        .iter()
        .map(|s| (s.id.as_str(), s.kind.as_str()))
        .collect();
    let mut used: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for a in &m.teachers.steps {
        used.entry(a.teacher.as_str())
            .or_default()
            .insert(a.step.as_str());
    }
    if facts.teachers.is_empty() {
        let _ = writeln!(
            w,
            "No teacher model: every row comes from the seed files and teacher-free steps.\n"
        );
    } else {
        let _ = writeln!(
            w,
            "| teacher | role | provider | model | steps | calls | cache hits | prompt tokens | completion tokens | cost (USD) |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for (name, t) in &facts.teachers {
            let steps = used.get(name.as_str()).cloned().unwrap_or_default();
            let judge = steps
                .iter()
                .any(|s| kind_of.get(s).is_some_and(|k| JUDGE_KINDS.contains(k)));
            let writer = steps
                .iter()
                .any(|s| kind_of.get(s).is_none_or(|k| !JUDGE_KINDS.contains(k)));
            let role = match (writer, judge) {
                (true, true) => "teacher, judge",
                (false, true) => "judge",
                (true, false) => "teacher",
                (false, false) => "declared, not called",
            };
            let c = m.teachers.teachers.get(name).cloned().unwrap_or_default();
            let _ = writeln!(
                w,
                "| {} | {role} | {} | {} | {} | {} | {} | {} | {} | {:.4} |",
                code(name),
                cell(&t.provider),
                code(&t.model),
                steps.iter().map(|s| code(s)).collect::<Vec<_>>().join(", "),
                c.calls,
                c.cache_hits,
                c.prompt_tokens,
                c.completion_tokens,
                c.cost_usd
            );
        }
        let _ = writeln!(w);
    }
    if let Some(e) = &facts.embedder {
        let _ = writeln!(
            w,
            "Embedder: {} ({}).\n",
            code(e.model.as_deref().unwrap_or("the provider's default model")),
            cell(&e.provider)
        );
    }

    // Steps.
    let _ = writeln!(w, "## Steps\n");
    let _ = writeln!(
        w,
        "| step | kind | status | rows in | rows out | failures | rejected (by reason) |\n|---|---|---|---|---|---|---|"
    );
    for s in &m.steps {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} |",
            code(&s.id),
            code(&s.kind),
            cell(&s.status),
            s.rows_in,
            s.rows_out,
            s.failures,
            rejections(&s.rejected)
        );
    }
    let _ = writeln!(
        w,
        "\n{} rows were rejected in all (`rejections.parquet` in the run directory holds each with its reason).\n",
        m.rejections
    );

    // Failures.
    let _ = writeln!(w, "## Failures\n");
    if g.failures_by_class.is_empty() {
        let _ = writeln!(w, "No record failed.\n");
    } else {
        let _ = writeln!(
            w,
            "{} records could not be produced. By class: {}.\n",
            m.failures,
            g.failures_by_class
                .iter()
                .map(|(k, v)| format!("{}: {v}", code(k)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(w, "| step | class | records |\n|---|---|---|");
        for ((step, class), n) in &g.failures_by_step {
            let _ = writeln!(w, "| {} | {} | {n} |", code(step), code(class));
        }
        let _ = writeln!(w);
    }

    // Dedup.
    let _ = writeln!(w, "## Deduplication\n");
    let dedups: Vec<_> = m.steps.iter().filter(|s| s.kind == "dedup").collect();
    if dedups.is_empty() {
        let _ = writeln!(w, "The pipeline has no dedup step.\n");
    } else {
        for s in dedups {
            let removed = s.rows_in.saturating_sub(s.rows_out);
            let _ = write!(
                w,
                "- {}: {} rows in, {} kept, {removed} removed as duplicates",
                code(&s.id),
                s.rows_in,
                s.rows_out
            );
            if let Some(n) = g.duplicates.get(&s.id) {
                let _ = write!(w, " ({n} rows in its duplicates table, each beside the record it was merged into)");
            }
            if let Some(r) = s.metrics.get("recall") {
                let _ = write!(w, "; sampled recall {r:.3}");
            }
            let _ = writeln!(w);
        }
        let _ = writeln!(w);
    }

    // Calibration.
    let _ = writeln!(w, "## Judge calibration\n");
    let mut cal = Vec::new();
    for s in &m.steps {
        for (k, v) in &s.metrics {
            if k.starts_with("calibration") {
                cal.push(format!("- {} {}: {v}", code(&s.id), code(k)));
            }
        }
    }
    if cal.is_empty() {
        let _ = writeln!(
            w,
            "The manifest records no judge calibration for this run.\n"
        );
    } else {
        let _ = writeln!(w, "{}\n", cal.join("\n"));
    }

    // Tokens and cost.
    let t = &m.teachers.total;
    let _ = writeln!(w, "## Tokens and cost\n");
    let _ = writeln!(
        w,
        "{} teacher calls ({} from the response cache, {} requests sent, {} retries), {} prompt and {} completion tokens, ${:.4} spent{}.\n",
        t.calls,
        t.cache_hits,
        t.requests,
        t.retries,
        t.prompt_tokens,
        t.completion_tokens,
        m.teachers.spent_usd,
        match m.teachers.budget_usd {
            Some(b) => format!(" of a ${b:.2} budget{}", if m.teachers.budget_reached { " (reached)" } else { "" }),
            None => String::new(),
        }
    );

    // Examples.
    if !g.examples.is_empty() {
        let _ = writeln!(
            w,
            "## Examples\n\nThe first {} rows of {} (strings cut at 300 characters):\n",
            g.examples.len(),
            code(&examples_from(configs))
        );
        for e in &g.examples {
            let _ = writeln!(w, "{}", example_block(e, 300));
        }
    }

    // Languages.
    let _ = writeln!(w, "## Languages\n");
    if g.no_language_labels {
        let _ = writeln!(w, "No record carries a `language` label, so the card declares no language; add an `annotate` step to label them.\n");
    } else {
        let _ = writeln!(
            w,
            "From the records' `language` labels: {}{}.\n",
            if g.languages.is_empty() {
                "none recognised".to_string()
            } else {
                g.languages
                    .iter()
                    .map(|l| code(l))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if g.other_language_labels.is_empty() {
                String::new()
            } else {
                format!(
                    "; also labelled, not declared: {}",
                    g.other_language_labels
                        .iter()
                        .map(|l| code(l))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }

    // License and terms.
    let _ = writeln!(w, "## License\n");
    match &facts.license {
        Some(l) => {
            let _ = writeln!(w, "Declared by the pipeline: {}.\n", code(l));
        }
        None => {
            let _ = writeln!(w, "**No license declared.** The pipeline has no `license = \"…\"`, so this card states none; add one (e.g. `license = \"apache-2.0\"`) before sharing the data.\n");
        }
    }
    let _ = writeln!(
        w,
        "## Terms of use of the teachers\n\nThe rows were written by the teacher models listed above. Their providers' terms of use (and the models' licenses) apply to their outputs, including any limits on using them to train other models; check them before you train on or redistribute this data.\n"
    );
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_examples_cannot_break_out() {
        assert_eq!(cell("a|b\n<script>"), "a\\|b &lt;script&gt;");
        let v = serde_json::json!({"x": "```</code><script>alert(1)</script>"});
        let b = example_block(&v, 300);
        assert!(!b.contains("<script>"), "{b}");
        assert!(b.starts_with("````json\n"), "{b}");
        let back: serde_json::Value = serde_json::from_str(
            b.trim_start_matches("````json\n")
                .trim_end_matches("\n````\n"),
        )
        .unwrap();
        assert_eq!(back, v);
    }
}
