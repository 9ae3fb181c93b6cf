//! Language identification on the project's labelled set (tests/data/lang_id.jsonl:
//! 40 short texts each in en, zh, es, pt, fr, de, ja, ru, written for retort; issue #16).
//! Target: at least 95% overall. Per-language accuracy is printed
//! (`cargo test -p retort-text --test lang_id -- --nocapture`).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Deserialize)]
struct Item {
    text: String,
    lang: String,
}

fn labelled_set() -> Vec<Item> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/lang_id.jsonl");
    let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    src.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1)))
        .collect()
}

#[test]
fn the_labelled_set_has_40_texts_in_each_of_8_languages() {
    let mut n: BTreeMap<String, usize> = BTreeMap::new();
    for it in labelled_set() {
        *n.entry(it.lang).or_default() += 1;
    }
    for l in ["en", "zh", "es", "pt", "fr", "de", "ja", "ru"] {
        assert!(n.get(l).copied().unwrap_or(0) >= 40, "{l}: {n:?}");
    }
}

#[test]
fn language_id_is_at_least_95_percent_accurate_on_the_labelled_set() {
    let set = labelled_set();
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for it in &set {
        let got = retort_text::lang::identify(&it.text);
        let e = per.entry(it.lang.as_str()).or_default();
        e.1 += 1;
        if got.code == it.lang {
            e.0 += 1;
        } else {
            wrong.push(format!(
                "  {} read as {} ({:.2}): {}",
                it.lang, got.code, got.confidence, it.text
            ));
        }
    }
    let ok: usize = per.values().map(|v| v.0).sum();
    let acc = ok as f64 / set.len() as f64;
    println!("language id: {ok}/{} = {:.1}%", set.len(), acc * 100.0);
    for (l, (a, n)) in &per {
        println!("  {l}: {a}/{n} = {:.1}%", *a as f64 * 100.0 / *n as f64);
    }
    for w in &wrong {
        println!("{w}");
    }
    assert!(
        acc >= 0.95,
        "accuracy {:.1}% is below the 95% target; misses:\n{}",
        acc * 100.0,
        wrong.join("\n")
    );
}
