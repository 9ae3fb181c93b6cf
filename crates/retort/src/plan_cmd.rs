//! `retort plan`: the DAG as text, what each step writes, and a cost estimate.

use std::collections::BTreeMap;
use std::fmt::Write;

use retort_runner::Plan;
use retort_steps::Shape;

/// Rows a step may emit, as an upper bound: a source's line count, otherwise its inputs'
/// sum (steps filter or map; generators state their own target via fixed calls).
fn source_rows(plan: &Plan, id: &str) -> Option<u64> {
    let step = plan.step(id)?;
    let mut n = 0u64;
    for key in ["path", "paths"] {
        let files: Vec<String> = match step.spec.options.get(key) {
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec![],
        };
        for f in files {
            let p = plan.base_dir.join(&f);
            if f.ends_with(".parquet") {
                n += retort_store::count_rows(&p).ok()?;
            } else if f.ends_with(".jsonl") || f.ends_with(".csv") {
                n += count_lines(&p)?;
            } else {
                return None;
            }
        }
    }
    // `limit` (or `run --limit`) caps what a load step reads.
    match step.spec.options.get("limit").and_then(|v| v.as_integer()) {
        Some(l) if l >= 0 => Some(n.min(l as u64)),
        _ => Some(n),
    }
}

/// Newlines in a file, read in blocks so a multi-gigabyte input is not loaded whole.
fn count_lines(path: &std::path::Path) -> Option<u64> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).ok()?;
        if k == 0 {
            return Some(n);
        }
        n += buf[..k].iter().filter(|b| **b == b'\n').count() as u64;
    }
}

/// Render the plan.
pub fn render(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "pipeline `{}` ({} steps, seed {}) from {}",
        plan.name,
        plan.steps.len(),
        plan.seed,
        plan.source.path.display()
    );
    let _ = writeln!(s, "run directory: runs/{}/ (or --out)\n", plan.name);
    let mut rows: BTreeMap<String, Option<u64>> = BTreeMap::new();
    let mut total_cost = 0.0;
    let mut total_calls = 0.0;
    let mut unknown_cost = false;
    for st in &plan.steps {
        let est_rows = if st.shape == Shape::Source {
            source_rows(plan, &st.spec.id)
        } else {
            st.spec
                .after
                .iter()
                .map(|a| rows.get(a).copied().flatten())
                .sum::<Option<u64>>()
        };
        // Generators state their own size.
        let est_rows = match st.spec.options.get("target").and_then(|v| v.as_integer()) {
            Some(t) if t >= 0 => Some(t as u64),
            _ => est_rows,
        };
        rows.insert(st.spec.id.clone(), est_rows);
        let shape = match st.shape {
            Shape::Source => "source",
            Shape::Streaming => "streaming",
            Shape::WholeTable => "whole-table",
        };
        let inputs = if st.spec.after.is_empty() {
            String::new()
        } else {
            format!(" ← {}", st.spec.after.join(", "))
        };
        let _ = writeln!(
            s,
            "● {} [{} · {}]{}",
            st.spec.id, st.spec.kind, shape, inputs
        );
        let _ = writeln!(s, "    writes: {}", st.built.writes);
        if let Some(r) = est_rows {
            let _ = writeln!(s, "    rows:   ≤ {r}");
        }
        for e in &st.built.estimates {
            let rows_in: Option<u64> = if e.calls_per_input == 0.0 {
                Some(0)
            } else {
                st.spec
                    .after
                    .iter()
                    .map(|a| rows.get(a).copied().flatten())
                    .sum()
            };
            let calls = e.fixed_calls as f64 + e.calls_per_input * rows_in.unwrap_or(0) as f64;
            let ptok = calls * e.prompt_tokens as f64;
            let ctok = calls * e.max_tokens as f64;
            let cost = plan
                .teachers
                .get(&e.teacher)
                .map(|cfg| retort_teacher::estimate_cost(cfg, ptok as u64, ctok as u64));
            let priced = plan.teachers.get(&e.teacher).is_some_and(|c| {
                c.price_input_per_mtok.is_some() || c.price_output_per_mtok.is_some()
            });
            total_calls += calls;
            let cost_s = match cost {
                Some(c) if priced => {
                    total_cost += c;
                    format!("≤ ${c:.4}")
                }
                _ if plan
                    .teachers
                    .get(&e.teacher)
                    .is_some_and(|c| c.provider == retort_teacher::Provider::Local) =>
                {
                    "$0 (embedded)".to_string()
                }
                _ => {
                    unknown_cost = true;
                    "no price set".to_string()
                }
            };
            let _ = writeln!(
                s,
                "    teacher `{}`: ≤ {:.0} calls{}, ≤ {:.0} prompt + {:.0} completion tokens, {cost_s}",
                e.teacher,
                calls,
                if rows_in.is_none() && e.calls_per_input > 0.0 { " (+ per-row calls; input size unknown)" } else { "" },
                ptok,
                ctok
            );
        }
    }
    let _ = writeln!(
        s,
        "\nestimate: ≤ {total_calls:.0} teacher calls, ≤ ${total_cost:.4}{}",
        if unknown_cost {
            " (some teachers have no price_input_per_mtok/price_output_per_mtok)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "upper bounds: every row is assumed to survive every filter, every call to use max_tokens; cached answers cost nothing."
    );
    s
}
