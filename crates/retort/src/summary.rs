//! The table printed at the end of `retort run`.

use std::path::Path;

use retort_runner::Manifest;

/// Print rows in/out, failures and time per step, then teacher usage and outputs.
pub fn print(m: &Manifest, run_dir: &Path) {
    println!(
        "\n{:<18} {:<14} {:>9} {:>9} {:>8} {:>9} {:>8}  status",
        "step", "kind", "rows in", "rows out", "failed", "rejected", "secs"
    );
    for s in &m.steps {
        let rejected: u64 = s.rejected.values().sum();
        println!(
            "{:<18} {:<14} {:>9} {:>9} {:>8} {:>9} {:>8.1}  {}",
            s.id, s.kind, s.rows_in, s.rows_out, s.failures, rejected, s.seconds, s.status
        );
    }
    for s in &m.steps {
        let Some(acc) = s.metrics.get("calibration_accuracy") else {
            continue;
        };
        let n = |k: &str| s.metrics.get(k).copied().unwrap_or(0.0);
        println!(
            "calibration: step `{}`: judge accuracy {acc:.2} on {} items (0.5 is chance; ties {:.2}), {} judge calls, {} tokens",
            s.id,
            n("calibration_items"),
            n("calibration_tie_rate"),
            n("calibration_calls"),
            n("calibration_tokens")
        );
    }
    for s in &m.steps {
        for w in &s.warnings {
            println!("warning: step `{}`: {w}", s.id);
        }
    }
    let t = &m.teachers.total;
    if t.calls > 0 {
        println!(
            "\nteachers: {} calls ({} from cache, {} requests), {} prompt + {} completion tokens, ${:.4}",
            t.calls, t.cache_hits, t.requests, t.prompt_tokens, t.completion_tokens, t.cost_usd
        );
    }
    println!(
        "\nrun directory: {}  (manifest.json, failures.parquet: {} rows, rejections.parquet: {} rows)",
        run_dir.display(),
        m.failures,
        m.rejections
    );
    for o in &m.outputs {
        println!("output: {o}");
    }
}
