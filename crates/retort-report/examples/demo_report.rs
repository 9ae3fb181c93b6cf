//! Writes the seeded demo report to a file, to look at the page without a run:
//! `cargo run -p retort-report --example demo_report -- /tmp/report.html [seed]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "report.html".to_string());
    let seed = match args.next() {
        Some(s) => s.parse::<u64>().unwrap_or_else(|e| {
            eprintln!("seed {s:?} is not a number: {e}");
            std::process::exit(2)
        }),
        None => 42,
    };
    let html = retort_report::render(&retort_report::demo_input(seed));
    if let Err(e) = std::fs::write(&path, html) {
        eprintln!("could not write {path}: {e}");
        std::process::exit(1);
    }
    println!("wrote {path}");
}
