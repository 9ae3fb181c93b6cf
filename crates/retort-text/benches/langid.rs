//! Language-identification comparison on the project's labelled set
//! (tests/data/lang_id.jsonl): accuracy per language, time per text and resident memory
//! of whatlang (all languages, and an allowlist) and lingua (retort's 12 languages, in
//! low- and high-accuracy mode). The numbers in docs/benchmarks.md ("Language
//! identification (#16)") come from it.
//!
//! Run one detector per process, so the memory figure is that detector's:
//! `cargo bench -p retort-text --bench langid -- whatlang` (then `lingua-low`,
//! `lingua-high`); add `-v` to list the misses. Times are from a shared 2-core machine:
//! indicative only.

use std::collections::BTreeMap;
use std::time::Instant;

use lingua::{Language, LanguageDetectorBuilder};

fn whatlang_code(l: whatlang::Lang) -> &'static str {
    use whatlang::Lang::*;
    match l {
        Eng => "en",
        Cmn => "zh",
        Spa => "es",
        Por => "pt",
        Fra => "fr",
        Deu => "de",
        Jpn => "ja",
        Rus => "ru",
        Ita => "it",
        Nld => "nl",
        Kor => "ko",
        Ara => "ar",
        _ => "other",
    }
}

fn lingua_code(l: Language) -> &'static str {
    retort_text::lang::SUPPORTED
        .iter()
        .find(|(_, x)| *x == l)
        .map(|(c, _)| *c)
        .unwrap_or("other")
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn report(name: &str, data: &[(String, String)], verbose: bool, f: &dyn Fn(&str) -> &'static str) {
    let start = Instant::now();
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut misses = vec![];
    let first_pass: Vec<&'static str> = data.iter().map(|(t, _)| f(t)).collect();
    let first = start.elapsed();
    for ((t, l), got) in data.iter().zip(&first_pass) {
        let e = per.entry(l.as_str()).or_default();
        e.1 += 1;
        if got == l {
            e.0 += 1;
        } else {
            misses.push(format!("    {l} read as {got}: {t}"));
        }
    }
    const PASSES: usize = 5;
    let t = Instant::now();
    for _ in 0..PASSES {
        for (text, _) in data {
            std::hint::black_box(f(text));
        }
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / (data.len() * PASSES) as f64;
    let ok: usize = per.values().map(|v| v.0).sum();
    let langs: Vec<String> = per
        .iter()
        .map(|(l, (a, n))| format!("{l} {a}/{n}"))
        .collect();
    println!(
        "| {name} | {ok}/{} = {:.1}% | {} | {us:.0} µs | {:.0} ms | {:.0} MB |",
        data.len(),
        100.0 * ok as f64 / data.len() as f64,
        langs.join(", "),
        first.as_secs_f64() * 1e3,
        rss_mb()
    );
    if verbose {
        for m in misses {
            println!("{m}");
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let verbose = args.iter().any(|a| a == "-v");
    let which: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "-v")
        .collect();
    let want = |w: &str| which.is_empty() || which.contains(&w);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lang_id.jsonl");
    let data: Vec<(String, String)> = std::fs::read_to_string(path)
        .expect("the labelled set")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSONL row");
            (
                v["text"].as_str().unwrap().into(),
                v["lang"].as_str().unwrap().into(),
            )
        })
        .collect();
    println!("| detector | accuracy | per language | time per text (5 passes) | first pass, incl. model load | RSS after |");
    println!("|---|---:|---|---:|---:|---:|");
    if want("whatlang") {
        report("whatlang 0.18, all 69 languages", &data, verbose, &|t| {
            whatlang::detect(t)
                .map(|i| whatlang_code(i.lang()))
                .unwrap_or("und")
        });
        use whatlang::Lang::*;
        let d = whatlang::Detector::with_allowlist(vec![
            Eng, Cmn, Spa, Por, Fra, Deu, Jpn, Rus, Ita, Nld, Kor, Ara,
        ]);
        report(
            "whatlang 0.18, allowlist of retort's 12",
            &data,
            verbose,
            &|t| {
                d.detect(t)
                    .map(|i| whatlang_code(i.lang()))
                    .unwrap_or("und")
            },
        );
    }
    let langs: Vec<Language> = retort_text::lang::SUPPORTED
        .iter()
        .map(|(_, l)| *l)
        .collect();
    if want("lingua-low") {
        let d = LanguageDetectorBuilder::from_languages(&langs)
            .with_low_accuracy_mode()
            .build();
        report(
            "lingua 1.8, 12 languages, low-accuracy mode",
            &data,
            verbose,
            &|t| d.detect_language_of(t).map(lingua_code).unwrap_or("und"),
        );
    }
    if want("lingua-high") {
        let d = LanguageDetectorBuilder::from_languages(&langs).build();
        report(
            "lingua 1.8, 12 languages, high-accuracy mode",
            &data,
            verbose,
            &|t| d.detect_language_of(t).map(lingua_code).unwrap_or("und"),
        );
    }
    if want("retort") {
        report(
            "retort_text::lang::identify (lingua high + code stripping)",
            &data,
            verbose,
            &|t| retort_text::lang::identify(t).code,
        );
    }
}
