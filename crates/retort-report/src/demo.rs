//! A seeded, realistic [`ReportInput`] for tests, screenshots and trying the page
//! without a run: eight topical clusters of instruction records laid out as blobs on the
//! map, 1–10 quality and difficulty scores, a few removed duplicates of every mode, a
//! Chinese cluster, a multi-turn chat, and one record whose text is an XSS payload.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use retort_core::{Candidate, Failure, Message, Provenance, Record, Rejection};

use crate::input::{
    ClusterInfo, DedupMode, DuplicateRow, ReportInput, RunSummaryView, StepRow, TeacherRow,
};

/// Id of the hostile record in [`demo_input`].
pub const MALICIOUS_ID: &str = "rec-xss-0001";

/// The hostile record's instruction. Its script would set the page title to `PWNED`,
/// append `<div id="xss-marker">` and tag `<body id="xss-img">`; the markers are built by
/// string concatenation so they only ever appear in a page if the payload *ran*.
pub const MALICIOUS_TEXT: &str = "<script>document.title='PWN'+'ED';var d=document.createElement('div');d.id='xss-'+'marker';document.body.appendChild(d)</script> Explain what this snippet does: \"><img src=x onerror=\"document.body.id='xss-'+'img'\"> and why </script> matters.";

struct Topic {
    label: Option<&'static str>,
    weight: f64,
    centre: [f64; 2],
    spread: [f64; 2],
    quality: f64,
    difficulty: f64,
    make: fn(&mut ChaCha8Rng) -> (String, Option<String>, String),
}

fn pick<'a>(rng: &mut ChaCha8Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller; 1 - u keeps ln away from 0.
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

fn topics() -> Vec<Topic> {
    vec![
        Topic {
            label: Some("Python utility functions"),
            weight: 1.6,
            centre: [-4.0, 2.5],
            spread: [1.1, 0.8],
            quality: 7.4,
            difficulty: 5.5,
            make: |r| {
                let what = pick(
                    r,
                    &[
                        "removes duplicate items from a list while keeping order",
                        "parses an ISO 8601 date string",
                        "counts word frequencies in a text file",
                        "flattens a nested list",
                        "checks whether a string is a palindrome",
                        "merges two sorted lists",
                        "computes the moving average of a sequence",
                    ],
                );
                let extra = pick(
                    r,
                    &[
                        "",
                        " Include type hints.",
                        " Add a docstring and two doctests.",
                        " Avoid external libraries.",
                    ],
                );
                (
                    format!("Write a Python function that {what}.{extra}"),
                    None,
                    format!("Here is a compact solution:\n\ndef solve(data):\n    \"\"\"{what}.\"\"\"\n    result = []\n    for item in data:\n        ...\n    return result\n\nIt runs in linear time and handles empty input."),
                )
            },
        },
        Topic {
            label: Some("Rate and distance word problems"),
            weight: 1.2,
            centre: [3.5, 3.2],
            spread: [0.9, 0.9],
            quality: 8.1,
            difficulty: 4.2,
            make: |r| {
                let a = r.random_range(40..400);
                let b = r.random_range(2..9);
                let who = pick(r, &["A train", "A cyclist", "A delivery van", "A ferry"]);
                (
                    format!("{who} travels {a} km in {b} hours. What is its average speed, and how far does it go in {} hours at that speed?", b + 2),
                    None,
                    format!("Average speed = {a} km ÷ {b} h = {:.1} km/h. In {} hours it covers {:.1} km.", a as f64 / b as f64, b + 2, a as f64 / b as f64 * (b + 2) as f64),
                )
            },
        },
        Topic {
            label: Some("English → Chinese translation"),
            weight: 1.0,
            centre: [0.5, -4.0],
            spread: [1.3, 0.6],
            quality: 6.8,
            difficulty: 3.6,
            make: |r| {
                let (en, zh) = *[
                    (
                        "The meeting has been moved to Thursday afternoon.",
                        "会议已改到星期四下午。",
                    ),
                    (
                        "Please keep the receipt for your records.",
                        "请保留收据以备查。",
                    ),
                    (
                        "The library closes early on public holidays.",
                        "图书馆在公共假日提前闭馆。",
                    ),
                    (
                        "Our flight was delayed because of fog.",
                        "我们的航班因大雾延误了。",
                    ),
                    (
                        "She has been learning the piano for ten years.",
                        "她学钢琴已经十年了。",
                    ),
                ]
                .get(r.random_range(0..5))
                .unwrap_or(&("", ""));
                (
                    format!("Translate into Simplified Chinese: \"{en}\""),
                    None,
                    zh.to_string(),
                )
            },
        },
        Topic {
            label: Some("Short poems about nature"),
            weight: 0.9,
            centre: [-5.0, -2.2],
            spread: [0.8, 1.2],
            quality: 6.2,
            difficulty: 3.1,
            make: |r| {
                let thing = pick(
                    r,
                    &[
                        "autumn rain",
                        "a mountain lake",
                        "the first snow",
                        "fireflies at dusk",
                        "a desert wind",
                    ],
                );
                let style = pick(
                    r,
                    &[
                        "a haiku",
                        "free verse",
                        "a limerick",
                        "a sonnet's first quatrain",
                    ],
                );
                (
                    format!("Write {style} about {thing}."),
                    None,
                    format!(
                        "Quiet over {thing},\nthe evening folds its hands —\nlight remembers us."
                    ),
                )
            },
        },
        Topic {
            label: Some("One-sentence summaries"),
            weight: 1.1,
            centre: [5.2, -1.5],
            spread: [0.7, 1.0],
            quality: 7.0,
            difficulty: 4.8,
            make: |r| {
                let topic = pick(
                    r,
                    &[
                        "coral reef bleaching",
                        "remote work productivity",
                        "urban heat islands",
                        "the history of the printing press",
                        "battery recycling",
                    ],
                );
                (
                    "Summarise the following paragraph in one sentence.".to_string(),
                    Some(format!("Recent studies on {topic} show a mixed picture: some effects are stronger than expected, others weaker, and researchers disagree about the causes. Several reports call for better long-term data before policy decisions are made.")),
                    format!("Research on {topic} is inconclusive, so experts want better long-term data before acting."),
                )
            },
        },
        Topic {
            label: Some("SQL aggregation queries"),
            weight: 0.8,
            centre: [-1.0, 5.2],
            spread: [1.0, 0.5],
            quality: 7.8,
            difficulty: 6.4,
            make: |r| {
                let (what, table) = *[
                    (
                        "the ten customers with the highest total order value",
                        "orders",
                    ),
                    ("monthly revenue for 2024", "invoices"),
                    ("the average rating per product category", "reviews"),
                    ("employees who earn more than their manager", "employees"),
                ]
                .get(r.random_range(0..4))
                .unwrap_or(&("", ""));
                (
                    format!("Write an SQL query that returns {what} from the table `{table}`."),
                    None,
                    format!("SELECT ...\nFROM {table}\nGROUP BY 1\nORDER BY 2 DESC\nLIMIT 10;"),
                )
            },
        },
        Topic {
            label: Some("Sleep and fitness advice"),
            weight: 0.7,
            centre: [1.2, 0.4],
            spread: [0.9, 0.9],
            quality: 5.6,
            difficulty: 2.4,
            make: |r| {
                let n = r.random_range(3..8);
                let goal = pick(
                    r,
                    &[
                        "sleeping better during exam season",
                        "starting to run at 40",
                        "staying active with a desk job",
                        "reducing evening screen time",
                    ],
                );
                (
                    format!("Give {n} practical tips for {goal}."),
                    None,
                    format!("1. Keep a fixed schedule.\n2. Start small and build up.\n3. Track progress weekly.\n… ({n} tips in total, each with a short reason.)"),
                )
            },
        },
        Topic {
            // No teacher-written label: the report must show the cluster without one.
            label: None,
            weight: 0.5,
            centre: [4.8, 6.0],
            spread: [0.6, 0.6],
            quality: 6.5,
            difficulty: 5.0,
            make: |r| {
                let who = pick(
                    r,
                    &[
                        "Ada Lovelace",
                        "Zheng He",
                        "Mansa Musa",
                        "Hypatia",
                        "Ibn Battuta",
                    ],
                );
                (
                    format!("Who was {who}, and why are they remembered today?"),
                    None,
                    format!("{who} is remembered for work that changed how later generations saw their field; the key facts are …"),
                )
            },
        },
    ]
}

/// Builds a realistic report input from a seed: 1,200 records plus the hostile one. The
/// same seed gives the same input.
pub fn demo_input(seed: u64) -> ReportInput {
    demo_input_sized(seed, 1_200)
}

/// [`demo_input`] with `n` generated records (plus the hostile one), for tests of big
/// runs.
pub fn demo_input_sized(seed: u64, n: usize) -> ReportInput {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let topics = topics();
    let total_weight: f64 = topics.iter().map(|t| t.weight).sum();
    let mut records = Vec::with_capacity(n + 1);
    let mut points = Vec::with_capacity(n + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); topics.len()];
    for i in 0..n {
        // Pick a topic in proportion to its weight.
        let mut u = rng.random::<f64>() * total_weight;
        let mut c = 0;
        while c + 1 < topics.len() && u >= topics[c].weight {
            u -= topics[c].weight;
            c += 1;
        }
        let t = &topics[c];
        let (instruction, input, output) = (t.make)(&mut rng);
        let mut scores = BTreeMap::new();
        let q = (t.quality + 1.4 * gauss(&mut rng)).round().clamp(1.0, 10.0);
        let d = (t.difficulty + 1.6 * gauss(&mut rng))
            .round()
            .clamp(1.0, 10.0);
        scores.insert("quality".to_string(), q);
        scores.insert("difficulty".to_string(), d);
        scores.insert("len_chars".to_string(), output.chars().count() as f64);
        let mut labels = BTreeMap::new();
        labels.insert(
            "language".to_string(),
            if c == 2 { "zh" } else { "en" }.to_string(),
        );
        let (dx, dy) = (gauss(&mut rng), gauss(&mut rng));
        points.push([
            (t.centre[0] + t.spread[0] * dx) as f32,
            (t.centre[1] + t.spread[1] * dy) as f32,
        ]);
        members[c].push(records.len());
        records.push(Record {
            id: format!("rec-{i:05}"),
            instruction: Some(instruction),
            input,
            output: Some(output),
            scores,
            labels,
            cluster: Some(c as u32),
            provenance: Provenance {
                step: "tasks".into(),
                teacher: Some(if i % 3 == 0 { "local" } else { "big" }.into()),
                template: Some("self_instruct/alpaca.j2".into()),
                parents: vec![],
                seeds: vec![format!("seed-{:03}", i % 171)],
            },
            ..Default::default()
        });
    }
    // One multi-turn chat record in the fitness cluster.
    if let Some(&first) = members[6].first() {
        let r = &mut records[first];
        r.instruction = None;
        r.input = None;
        r.output = None;
        r.messages = vec![
            Message::user("I keep waking up at 4 a.m. What can I change?"),
            Message::assistant("Do you drink coffee after lunch, and when do you go to bed?"),
            Message::user("Coffee at 3 p.m., bed around 10."),
            Message {
                role: "assistant".into(),
                content: "Move the last coffee before noon and keep the room cooler; early waking often follows caffeine and heat.".into(),
                reasoning: Some("Caffeine has a half-life of about five hours, so a 3 p.m. coffee is still active at bedtime; a warm room also fragments late sleep. Suggest the two cheapest changes first.".into()),
                ..Default::default()
            },
        ];
    }
    // Every 40th record was answered by two teachers and judged, as a DPO run would be.
    for (j, r) in records.iter_mut().enumerate().filter(|(j, _)| j % 40 == 5) {
        let answer = r.response_text().unwrap_or_default();
        r.candidates = vec![
            Candidate {
                teacher: "big".into(),
                model: "Qwen/Qwen2.5-7B-Instruct".into(),
                sample: 0,
                content: answer.clone(),
                score: Some(8.0 - (j % 3) as f64),
                rationale: Some("Correct and complete; follows the requested format.".into()),
                reasoning: None,
            },
            Candidate {
                teacher: "local".into(),
                model: "qwen2.5-0.5b-instruct".into(),
                sample: 0,
                content: format!(
                    "{} (shorter draft)",
                    answer.chars().take(60).collect::<String>()
                ),
                score: Some(4.0 + (j % 2) as f64),
                rationale: Some("Misses part of the question.".into()),
                reasoning: None,
            },
        ];
    }
    // The hostile record sits in cluster 0, is its first representative, and is the
    // kept twin of one duplicate, so its text reaches the map, examples and dedup table.
    let evil = records.len();
    let mut scores = BTreeMap::new();
    scores.insert("quality".to_string(), 2.0);
    scores.insert("difficulty".to_string(), 3.0);
    records.push(Record {
        id: MALICIOUS_ID.into(),
        instruction: Some(MALICIOUS_TEXT.into()),
        output: Some("It is an XSS attempt: </script><script>alert('also inert')</script>".into()),
        candidates: vec![Candidate {
            teacher: "big".into(),
            model: "</script><img src=x onerror=\"document.body.id='xss-'+'img'\">".into(),
            content: MALICIOUS_TEXT.into(),
            score: Some(1.0),
            ..Default::default()
        }],
        labels: [("category".to_string(), MALICIOUS_TEXT.to_string())].into(),
        scores,
        cluster: Some(0),
        provenance: Provenance {
            step: "tasks".into(),
            teacher: Some("big".into()),
            ..Default::default()
        },
        ..Default::default()
    });
    points.push([topics[0].centre[0] as f32, topics[0].centre[1] as f32]);
    members[0].push(evil);

    let clusters: Vec<ClusterInfo> = topics
        .iter()
        .enumerate()
        .map(|(c, t)| {
            let m = &members[c];
            // Representatives: the members nearest the blob centre.
            let mut by_dist: Vec<usize> = m.clone();
            let dist = |i: usize| {
                let p = points[i];
                (p[0] as f64 - t.centre[0]).powi(2) + (p[1] as f64 - t.centre[1]).powi(2)
            };
            by_dist.sort_by(|&a, &b| dist(a).total_cmp(&dist(b)));
            let representatives = by_dist
                .iter()
                .take(3)
                .map(|&i| records[i].id.clone())
                .collect();
            let mut mean_scores = BTreeMap::new();
            for k in ["quality", "difficulty"] {
                let s: f64 = m.iter().map(|&i| records[i].scores[k]).sum();
                mean_scores.insert(k.to_string(), s / m.len().max(1) as f64);
            }
            ClusterInfo {
                id: c as u32,
                label: t.label.map(str::to_string),
                size: m.len() as u64,
                representatives,
                mean_scores,
            }
        })
        .collect();

    let mut duplicates = Vec::new();
    let modes = [
        (DedupMode::Exact, 1.0),
        (DedupMode::Exact, 1.0),
        (DedupMode::Near, 0.91),
        (DedupMode::Near, 0.86),
        (DedupMode::Near, 0.83),
        (DedupMode::Semantic, 0.97),
        (DedupMode::Semantic, 0.962),
        (DedupMode::Semantic, 0.955),
        (DedupMode::Semantic, 0.951),
    ];
    for (j, (mode, sim)) in modes.iter().enumerate() {
        let c = j % topics.len();
        let kept = &records[members[c][j % members[c].len()]];
        let kept_text = kept.prompt_text();
        let removed_text = match mode {
            DedupMode::Exact => format!("  {}  ", kept_text.to_uppercase()),
            DedupMode::Near => format!("{} Please be concise.", kept_text),
            DedupMode::Semantic => {
                format!("Could you help with this: {}", kept_text.to_lowercase())
            }
        };
        duplicates.push(DuplicateRow {
            removed_id: format!("rec-dup-{j:03}"),
            removed_text,
            kept_id: kept.id.clone(),
            kept_text,
            similarity: *sim,
            mode: *mode,
        });
    }
    duplicates.push(DuplicateRow {
        removed_id: "rec-dup-xss".into(),
        removed_text: "<script>document.title='PWN'+'ED'</script> Explain what this snippet does"
            .into(),
        kept_id: MALICIOUS_ID.into(),
        kept_text: MALICIOUS_TEXT.into(),
        similarity: 0.958,
        mode: DedupMode::Semantic,
    });

    // The removed records in full, as the dedup side tables hold them.
    let duplicate_records: Vec<Record> = duplicates
        .iter()
        .map(|d| Record {
            id: d.removed_id.clone(),
            instruction: Some(d.removed_text.clone()),
            output: Some("A removed answer: the same task was already in the set.".into()),
            provenance: Provenance {
                step: "tasks".into(),
                teacher: Some("big".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .collect();
    let rejection = |j: usize, step: &str, reason: &str, detail: String, text: String| Rejection {
        step: step.into(),
        record_id: format!("cand-{j:04}"),
        reason: reason.into(),
        detail,
        text,
    };
    let mut rejections: Vec<Rejection> = (0..24)
        .map(|j| {
            let kept = &records[(j * 37) % records.len()];
            match j % 4 {
                0 | 1 => rejection(
                    j,
                    "tasks",
                    "rouge_l",
                    format!("{:.2} vs {}", 0.71 + j as f64 / 100.0, kept.id),
                    format!("{} Explain briefly.", kept.prompt_text()),
                ),
                2 => rejection(
                    j,
                    "tasks",
                    "keyword",
                    "contains `image`".into(),
                    "Draw an image of a sunset over the sea.".into(),
                ),
                _ => rejection(
                    j,
                    "tasks",
                    "too_short",
                    "3 words".into(),
                    "Sort a list.".into(),
                ),
            }
        })
        .collect();
    rejections.push(rejection(
        99,
        "kept",
        "quality<3",
        "quality 2".into(),
        MALICIOUS_TEXT.into(),
    ));
    let failure = |j: usize, class: &str, status: Option<u16>, message: &str, raw: &str| Failure {
        step: "tasks".into(),
        record_id: format!("plan-{j:04}"),
        class: class.into(),
        status,
        message: message.into(),
        raw: raw.into(),
    };
    let failures = vec![
        failure(1, "parse", None, "the reply is not a numbered task list (no `1.` line)", "Sure! Here are some ideas you might like: cooking, travel and more."),
        failure(2, "parse", None, "the reply is not a numbered task list (no `1.` line)", "I cannot help with that request."),
        failure(3, "truncated", None, "finish_reason = length after 1024 tokens", "1. Write a haiku about autumn\n2. Explain how a bicycle gear works\n3. Summarise the plot of"),
        failure(4, "http_429", Some(429), "rate limited 6 times; retries exhausted", ""),
        failure(5, "parse", None, "hostile reply kept as raw text", MALICIOUS_TEXT),
    ];

    let kept = records.len() as u64;
    let dups = duplicates.len() as u64;
    let step = |id: &str, kind: &str, rows_in: u64, rows_out: u64| StepRow {
        id: id.into(),
        kind: kind.into(),
        status: "done".into(),
        rows_in,
        rows_out,
        ..Default::default()
    };
    let mut steps = vec![
        step("seeds", "load", 171, 171),
        step("tasks", "self_instruct", 171, kept + dups + 9),
        step("scored", "score", kept + dups + 9, kept + dups + 6),
        step("embedded", "embed", kept + dups + 6, kept + dups + 6),
        step("deduped", "dedup", kept + dups + 6, kept + 6),
        step("kept", "filter", kept + 6, kept),
        step("clustered", "cluster", kept, kept),
        step("sft", "export", kept, kept),
    ];
    steps[0].seconds = 0.04;
    steps[1].seconds = 1_412.0;
    steps[1].failures = 9;
    steps[1].rejected = [
        ("rouge_l".to_string(), 312),
        ("keyword".to_string(), 41),
        ("too_short".to_string(), 17),
    ]
    .into();
    steps[1].prompt_tokens = 1_874_220;
    steps[1].completion_tokens = 912_408;
    steps[1].cost_usd = 0.8421;
    steps[2].seconds = 388.5;
    steps[2].failures = 3;
    steps[2].prompt_tokens = 1_120_932;
    steps[2].completion_tokens = 96_114;
    steps[2].cost_usd = 0.2735;
    // Illustrative calibration figures (the shape a `score` step writes; the measured
    // ones per model are in docs/benchmarks.md).
    steps[2].metrics = [
        ("calibration_items", 105.0),
        ("calibration_accuracy", 0.86),
        ("calibration_tie_rate", 0.07),
        ("calibration_unparsed", 0.0),
        ("calibration_flaw_wrong_fact", 0.73),
        ("calibration_flaw_wrong_language", 0.93),
        ("calibration_flaw_off_topic", 1.0),
        ("calibration_flaw_truncated", 0.8),
        ("calibration_flaw_needless_refusal", 0.93),
        ("calibration_flaw_unsafe_compliance", 0.67),
        ("calibration_flaw_ignored_constraint", 0.93),
        ("calibration_lang_en", 0.89),
        ("calibration_lang_zh", 0.82),
        ("scores_difficulty_top_share", 0.84),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into();
    steps[2].warnings = vec![
        "step `scored`: scores.difficulty has collapsed: 84% of 163 records got 8 — the judge does not tell them apart; try a stronger judge or another rubric".into(),
    ];
    steps[3].seconds = 21.7;
    steps[4].seconds = 2.9;
    steps[4].metrics = [
        ("recall".to_string(), 0.994),
        ("threshold".to_string(), 0.95),
    ]
    .into();
    steps[5].seconds = 0.02;
    steps[5].rejected = [("quality<3".to_string(), 6)].into();
    steps[6].seconds = 4.1;
    steps[6].metrics = [("k".to_string(), 8.0), ("inertia".to_string(), 212.47)].into();
    steps[7].seconds = 0.3;
    let teachers = vec![
        TeacherRow {
            name: "big".into(),
            model: Some("Qwen/Qwen2.5-7B-Instruct".into()),
            calls: 2_130,
            cache_hits: 214,
            requests: 1_951,
            retries: 35,
            failures: 12,
            prompt_tokens: 2_401_190,
            completion_tokens: 801_336,
            cost_usd: 1.1156,
        },
        TeacherRow {
            name: "local".into(),
            model: Some("qwen2.5-0.5b-instruct".into()),
            calls: 604,
            cache_hits: 0,
            requests: 604,
            retries: 0,
            failures: 0,
            prompt_tokens: 593_962,
            completion_tokens: 207_186,
            cost_usd: 0.0,
        },
    ];
    ReportInput {
        title: "sft-demo — cluster report".into(),
        records,
        points: Some(points),
        points_note: Some("Demo data: points are placed around made-up topic centres.".into()),
        clusters,
        duplicates,
        summary: RunSummaryView {
            name: "sft-demo".into(),
            status: "complete".into(),
            started_at: Some("2026-11-25T09:12:03Z".into()),
            finished_at: Some("2026-11-25T09:42:33Z".into()),
            seconds: Some(1_830.0),
            pipeline_hash: Some(
                "9f2c4e71b0a35d8e6c1f27a4b9d0e3f5a1c2b3d4e5f60718293a4b5c6d7e8f90".into(),
            ),
            steps,
            teachers,
            failures_by_class: [
                ("http_429".to_string(), 2),
                ("parse".to_string(), 7),
                ("truncated".to_string(), 3),
            ]
            .into(),
        },
        duplicate_records,
        rejections,
        failures,
    }
}
