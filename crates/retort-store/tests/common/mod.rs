//! Record fixtures shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use retort_core::{Candidate, Message, Pair, Provenance, Record};

/// A record with every field set, including CJK text, emoji and characters that need
/// JSON escaping.
pub fn full_record(i: usize) -> Record {
    Record {
        id: format!("rec-{i:04}"),
        instruction: Some(format!("把下面的句子翻译成英文 #{i}")),
        input: Some("我喜欢在雨天读书。\n\"quoted\" \\ tab\t🙂".into()),
        output: Some("I like reading on rainy days.".into()),
        messages: vec![
            Message::system("You are helpful."),
            Message::user("把下面的句子翻译成英文：我喜欢在雨天读书。"),
        ],
        // Tool calls are covered by their own tests: a record with them is refused by
        // every export without `tools = true`, which these shared records go through.
        tools: vec![],
        candidates: vec![
            Candidate {
                teacher: "big".into(),
                model: "Qwen/Qwen2.5-7B-Instruct".into(),
                sample: 0,
                content: "I like reading on rainy days.".into(),
                score: Some(8.5),
                rationale: Some("fluent".into()),
                reasoning: Some("Rain is the subject; the verb agrees.".into()),
            },
            Candidate {
                teacher: "local".into(),
                model: "qwen2.5-0.5b".into(),
                sample: 3,
                content: "I rain read.".into(),
                score: None,
                rationale: None,
                reasoning: None,
            },
        ],
        pair: Some(Pair {
            chosen: vec![Message::assistant("I like reading on rainy days.")],
            rejected: vec![Message::assistant("I rain read.")],
            chosen_model: "Qwen/Qwen2.5-7B-Instruct".into(),
            rejected_model: "qwen2.5-0.5b".into(),
            chosen_score: 8.5,
            rejected_score: 2.0,
            margin: 6.5,
            rationale: Some("the second answer is ungrammatical".into()),
        }),
        scores: BTreeMap::from([("difficulty".into(), 3.0), ("quality".into(), 8.25)]),
        labels: BTreeMap::from([
            ("language".into(), "zh".into()),
            ("category".into(), "翻译".into()),
        ]),
        embedding: Some(vec![0.25, -0.5, 1.0e-7, 0.0]),
        cluster: Some(u32::MAX),
        provenance: Provenance {
            step: "respond".into(),
            teacher: Some("big".into()),
            template: Some("templates/translate.j2".into()),
            parents: vec!["p1".into(), "p2".into()],
            seeds: vec!["seed_017".into()],
        },
    }
}

/// A record with only the required fields: every option `None`, every list empty.
pub fn bare_record(i: usize) -> Record {
    Record {
        id: format!("bare-{i}"),
        provenance: Provenance {
            step: "load".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// An Alpaca-shaped SFT record.
pub fn sft_record(i: usize) -> Record {
    Record {
        id: format!("sft-{i}"),
        instruction: Some(format!("Sort the numbers #{i}")),
        input: Some("3 1 2".into()),
        output: Some("1 2 3".into()),
        provenance: Provenance {
            step: "load".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A chat record with a multi-turn conversation, including a system turn.
pub fn chat_record(i: usize) -> Record {
    Record {
        id: format!("chat-{i}"),
        messages: vec![
            Message::system("Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello!"),
            Message::user("2+2?"),
            Message::assistant("4"),
        ],
        provenance: Provenance {
            step: "self_chat".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}
