//! Behaviour of retort-text users rely on: agreement with rouge_score, exact novelty
//! decisions, CJK similarity, filters, MinHash recall/precision and exact dedup.

mod common;

use std::collections::HashSet;

use common::gen::{zh_instruction, InstructionGen};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retort_text::minhash::{near_duplicates, MinHasher};
use retort_text::normalize::{exact_key, normalize};
use retort_text::novelty::{NoveltyDecision, NoveltyIndex};
use retort_text::rouge::{rouge_l_f1, tokenize};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    pairs: Vec<RefPair>,
    novelty: RefNovelty,
}

#[derive(Deserialize)]
struct RefPair {
    a: String,
    b: String,
    tokens_a: Vec<String>,
    tokens_b: Vec<String>,
    f1: f64,
    f1_bits: u64,
}

#[derive(Deserialize)]
struct RefNovelty {
    threshold: f64,
    pool: Vec<String>,
    candidates: Vec<RefDecision>,
}

#[derive(Deserialize)]
struct RefDecision {
    text: String,
    max_sim: f64,
    max_sim_bits: u64,
    accepted: bool,
}

fn reference() -> Reference {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rouge_reference.json"
    );
    let text = std::fs::read_to_string(path).expect("reading the committed reference table");
    serde_json::from_str(&text).expect("parsing the reference table")
}

fn has_extension_chars(s: &str) -> bool {
    // Characters rouge_score drops but retort scores (CJK, non-Latin letters).
    tokenize(s).iter().any(|t| !t.is_ascii())
}

#[test]
fn rouge_l_agrees_with_rouge_score_bit_for_bit() {
    let r = reference();
    assert!(r.pairs.len() >= 50);
    let mut compared = 0;
    for p in &r.pairs {
        if has_extension_chars(&p.a) || has_extension_chars(&p.b) {
            // Mixed text: the ASCII tokens are rouge_score's, in order.
            let ascii: Vec<String> = tokenize(&p.a)
                .into_iter()
                .filter(|t| t.is_ascii())
                .collect();
            assert_eq!(ascii, p.tokens_a, "{:?}", p.a);
            continue;
        }
        assert_eq!(tokenize(&p.a), p.tokens_a, "tokens of {:?}", p.a);
        assert_eq!(tokenize(&p.b), p.tokens_b, "tokens of {:?}", p.b);
        let f = rouge_l_f1(&p.a, &p.b);
        assert_eq!(
            f.to_bits(),
            p.f1_bits,
            "{:?} vs {:?}: {f} != {}",
            p.a,
            p.b,
            p.f1
        );
        compared += 1;
    }
    assert!(compared >= 50, "only {compared} pairs compared");
}

#[test]
fn novelty_decisions_agree_with_alpaca_loop() {
    let r = reference().novelty;
    let mut idx = NoveltyIndex::new(r.threshold);
    for p in &r.pool {
        idx.add(p);
    }
    for c in &r.candidates {
        let d = idx.check_and_add(&c.text);
        assert_eq!(d.accepted, c.accepted, "{:?}", c.text);
        assert_eq!(
            d.max_sim.to_bits(),
            c.max_sim_bits,
            "{:?}: {} vs {}",
            c.text,
            d.max_sim,
            c.max_sim
        );
    }
    // The table exercises both outcomes.
    assert!(r.candidates.iter().any(|c| c.accepted));
    assert!(r.candidates.iter().any(|c| !c.accepted));
}

fn brute(pool: &[String], cand: &str, threshold: f64) -> NoveltyDecision {
    let mut best = (0.0f64, None);
    for (i, p) in pool.iter().enumerate() {
        let f = rouge_l_f1(cand, p);
        if f > best.0 {
            best = (f, Some(i));
        }
    }
    NoveltyDecision {
        accepted: best.0 <= threshold,
        max_sim: best.0,
        most_similar: best.1,
    }
}

#[test]
fn index_decisions_equal_brute_force_on_random_pools() {
    for seed in 0..4u64 {
        let mut g = InstructionGen::new(seed);
        let pool = g.pool(300);
        let cands = g.candidates(&pool, 300);
        for threshold in [0.5, 0.7] {
            let mut idx = NoveltyIndex::new(threshold);
            let mut shadow = Vec::new();
            for p in &pool {
                idx.add(p);
                shadow.push(p.clone());
            }
            let mut idx_batch = NoveltyIndex::new(threshold);
            for p in &pool {
                idx_batch.add(p);
            }
            let mut seq = Vec::new();
            for c in &cands {
                let want = brute(&shadow, c, threshold);
                let got = idx.check_and_add(c);
                assert_eq!(got, want, "seed {seed} candidate {c:?}");
                if got.accepted {
                    shadow.push(c.clone());
                }
                seq.push(got);
            }
            assert!(seq.iter().any(|d| !d.accepted) && seq.iter().any(|d| d.accepted));
            // The parallel batch path gives the sequential decisions.
            assert_eq!(idx_batch.check_and_add_all(&cands), seq, "seed {seed}");
            assert_eq!(idx_batch.len(), idx.len());
        }
    }
}

#[test]
fn index_equals_brute_force_on_tiny_vocabularies() {
    // Few distinct tokens: many ties and long repeated runs stress the bound and ties.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let words = ["a", "b", "c", "d", "e"];
    let text = |rng: &mut ChaCha8Rng| {
        let n = rng.random_range(0..90);
        (0..n)
            .map(|_| words[rng.random_range(0..5)])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let pool: Vec<String> = (0..200).map(|_| text(&mut rng)).collect();
    let mut idx = NoveltyIndex::new(0.7);
    for p in &pool {
        idx.add(p);
    }
    for _ in 0..200 {
        let c = text(&mut rng);
        assert_eq!(idx.check(&c), brute(&pool, &c, 0.7), "{c:?}");
        assert_eq!(idx.check(&c), idx.check_brute_force(&c));
    }
}

#[test]
fn chinese_paraphrases_score_high_and_unrelated_low() {
    let para = [
        ("请写一首关于秋天的诗。", "写一首描写秋天的诗。"),
        ("解释为什么天空是蓝色的。", "请解释天空为什么是蓝色的？"),
        ("给出三个保持健康的建议。", "请给出保持健康的三个建议"),
        ("用Python写一个快速排序函数", "用Python实现快速排序函数"),
    ];
    for (a, b) in para {
        let f = rouge_l_f1(a, b);
        assert!(f > 0.7, "{a} / {b}: {f}");
    }
    let unrelated = [
        ("请写一首关于秋天的诗。", "如何提高团队的工作效率？"),
        ("解释为什么天空是蓝色的。", "推荐五本适合儿童阅读的书籍"),
    ];
    for (a, b) in unrelated {
        let f = rouge_l_f1(a, b);
        assert!(f < 0.3, "{a} / {b}: {f}");
    }
    // rouge_score itself gives 0 to any Chinese pair; the index does not.
    let mut idx = NoveltyIndex::new(0.7);
    idx.add("请写一首关于秋天的诗。");
    let d = idx.check("写一首描写秋天的诗。");
    assert!(!d.accepted);
    assert_eq!(d.most_similar, Some(0));
    assert!(idx.check("如何提高团队的工作效率？").accepted);
}

#[test]
fn chinese_pool_decisions_equal_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let pool: Vec<String> = (0..200).map(|_| zh_instruction(&mut rng)).collect();
    let mut idx = NoveltyIndex::new(0.7);
    for p in &pool {
        idx.add(p);
    }
    let mut rejected = 0;
    for _ in 0..200 {
        let c = zh_instruction(&mut rng);
        let d = idx.check(&c);
        assert_eq!(d, brute(&pool, &c, 0.7), "{c}");
        rejected += usize::from(!d.accepted);
    }
    assert!(rejected > 0);
}

proptest! {
    #[test]
    fn rouge_l_properties(
        a in "[a-e ]{0,60}|[一二三四五六七八九 ]{0,40}",
        b in "[a-e ]{0,60}|[一二三四五六七八九 ]{0,40}",
    ) {
        let f = rouge_l_f1(&a, &b);
        prop_assert!((0.0..=1.0).contains(&f));
        prop_assert_eq!(f.to_bits(), rouge_l_f1(&b, &a).to_bits());
        if !tokenize(&a).is_empty() {
            prop_assert_eq!(rouge_l_f1(&a, &a), 1.0);
        }
    }

    #[test]
    fn disjoint_vocabularies_score_zero(
        a in "[a-m ]{0,60}",
        b in "[n-z ]{0,60}",
    ) {
        prop_assert_eq!(rouge_l_f1(&a, &b), 0.0);
    }
}

#[test]
fn minhash_finds_planted_near_duplicates() {
    let mut g = InstructionGen::new(11);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    // Long-ish distinct documents, and for 100 of them a lightly edited twin.
    let mut texts: Vec<String> = (0..1000)
        .map(|_| {
            (0..4)
                .map(|_| g.instruction())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let mut planted = HashSet::new();
    for k in 0..100 {
        let i = rng.random_range(0..1000);
        let twin = g.paraphrase(&texts[i]);
        planted.insert((i, 1000 + k));
        texts.push(twin);
    }
    let found = near_duplicates(&texts, 128, 32, 0.6);
    let hasher = MinHasher::new(128, retort_text::minhash::DEFAULT_SEED);
    let planted_above: HashSet<(usize, usize)> = planted
        .iter()
        .copied()
        .filter(|&(i, j)| {
            retort_text::minhash::jaccard(&hasher.shingles(&texts[i]), &hasher.shingles(&texts[j]))
                >= 0.6
        })
        .collect();
    assert!(
        planted_above.len() >= 80,
        "generator plants real near-duplicates"
    );
    let found_set: HashSet<(usize, usize)> = found.iter().map(|&(i, j, _)| (i, j)).collect();
    let hit = planted_above.intersection(&found_set).count();
    let recall = hit as f64 / planted_above.len() as f64;
    let precision_vs_planted =
        found_set.iter().filter(|p| planted.contains(p)).count() as f64 / found_set.len() as f64;
    assert!(recall >= 0.97, "recall {recall}");
    assert!(
        precision_vs_planted >= 0.9,
        "precision {precision_vs_planted}"
    );
    for &(i, j, s) in &found {
        assert!(i < j && s >= 0.6);
    }
}

#[test]
fn minhash_finds_chinese_near_duplicates() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut texts: Vec<String> = (0..300)
        .map(|_| (0..5).map(|_| zh_instruction(&mut rng)).collect::<String>())
        .collect();
    // Twin = same text with one character changed and punctuation altered.
    let twin = texts[7].replacen('请', "麻烦", 1).replace('。', "！");
    texts.push(twin);
    let found = near_duplicates(&texts, 128, 32, 0.6);
    assert!(
        found.iter().any(|&(i, j, _)| i == 7 && j == 300),
        "{found:?}"
    );
}

#[test]
fn exact_dedup_collapses_case_width_and_whitespace_variants() {
    let texts = [
        "Give three tips for staying healthy.",
        "give THREE tips for staying healthy.",
        "Ｇｉｖｅ three tips for staying healthy．",
        "Give three tips\n\tfor staying   healthy.",
        "Give three tips for staying healthy!",
        "请写一首诗。",
        "请写一首诗．",
        "请写 一首诗。",
    ];
    let keys: Vec<u128> = texts.iter().map(|t| exact_key(t)).collect();
    assert_eq!(keys[0], keys[1]);
    assert_eq!(keys[0], keys[2]);
    assert_eq!(keys[0], keys[3]);
    assert_ne!(keys[0], keys[4]);
    assert_ne!(
        keys[5], keys[6],
        "。 and ． are different punctuation after NFKC"
    );
    assert_ne!(
        keys[5], keys[7],
        "a space inside CJK text is kept (collapsed, not removed)"
    );
    assert_eq!(normalize(texts[3]), "give three tips for staying healthy.");
}
