//! Fetches embedded models without the CLI (for CI before tests, and for development):
//! `cargo run -p retort-local --example fetch -- smollm2 minilm` (no names: the defaults).

use retort_local::{fetch, models_dir, KnownModel};

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    let models: Vec<KnownModel> = if names.is_empty() {
        KnownModel::DEFAULTS.to_vec()
    } else {
        names
            .iter()
            .map(|n| {
                KnownModel::from_name(n).unwrap_or_else(|| {
                    let known: Vec<&str> = KnownModel::ALL.iter().map(|m| m.short_name()).collect();
                    eprintln!("unknown model {n:?}; known: {}", known.join(", "));
                    std::process::exit(2)
                })
            })
            .collect()
    };
    let dir = models_dir();
    eprintln!("models directory: {}", dir.display());
    if let Err(e) = fetch(&models, &dir, &|line| eprintln!("{line}")) {
        eprintln!("fetch failed: {e}");
        std::process::exit(1);
    }
}
