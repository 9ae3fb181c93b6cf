//! Unit tests of the formats and options, row by row as JSON (the Parquet writer is fed
//! the same cells; `tests/consumer.rs` reads both containers back in pyarrow and TRL).

use serde_json::{json, Value};

use super::*;
use retort_core::{Candidate, Message, Pair, Provenance};

fn pair_record(id: &str, prompt: Vec<Message>) -> Record {
    Record {
        id: id.into(),
        messages: prompt,
        pair: Some(Pair {
            chosen: vec![Message::assistant("Blue.")],
            rejected: vec![Message::assistant("Green.")],
            chosen_model: "big".into(),
            rejected_model: "small".into(),
            chosen_score: 9.0,
            rejected_score: 3.0,
            margin: 6.0,
            rationale: None,
        }),
        provenance: Provenance {
            step: "pair".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn sft() -> Record {
    Record {
        id: "s".into(),
        instruction: Some("Sort".into()),
        input: Some("3 1 2".into()),
        output: Some("1 2 3".into()),
        ..Default::default()
    }
}

fn chat() -> Record {
    Record {
        id: "c".into(),
        messages: vec![
            Message::system("Be brief."),
            Message::user("Hi"),
            Message::assistant("Hello!"),
            Message::user("2+2?"),
            Message::assistant("4"),
        ],
        ..Default::default()
    }
}

fn thought(content: &str, trace: &str) -> Message {
    let mut m = Message::assistant(content);
    m.reasoning = Some(trace.into());
    m
}

/// The JSON rows of one record, or the reason it is skipped.
fn rows(format: ExportFormat, o: &ExportOptions, r: &Record) -> Result<Vec<Value>, String> {
    let dir = tempfile::tempdir().unwrap();
    let ex = Exporter::create_with(&dir.path().join("x.jsonl"), format, o).unwrap();
    let rows = ex.record_rows(r)?;
    Ok(rows
        .iter()
        .map(|row| {
            let mut buf = Vec::new();
            columns::write_json_row(&ex.columns, row, &mut buf).unwrap();
            serde_json::from_slice(&buf).unwrap()
        })
        .collect())
}

fn drop() -> ExportOptions {
    ExportOptions {
        reasoning: Some(Reasoning::Drop),
        ..Default::default()
    }
}

fn one(format: ExportFormat, r: &Record) -> Value {
    let mut v = rows(format, &drop(), r).unwrap();
    assert_eq!(v.len(), 1);
    v.remove(0)
}

#[test]
fn prompt_completion_splits_before_the_last_answer() {
    assert_eq!(
        one(ExportFormat::PromptCompletion, &sft()),
        json!({"prompt": "Sort\n\n3 1 2", "completion": "1 2 3", "id": "s"})
    );
    let e = rows(ExportFormat::PromptCompletion, &drop(), &chat()).unwrap_err();
    assert!(e.contains("prompt_completion_conversational"), "{e}");
    let v = one(ExportFormat::PromptCompletionConversational, &chat());
    assert_eq!(v["prompt"].as_array().unwrap().len(), 4);
    assert_eq!(
        v["completion"],
        json!([{"role": "assistant", "content": "4"}])
    );
    let mut trailing = chat();
    trailing.messages.push(Message::user("and 3+3?"));
    let e = rows(
        ExportFormat::PromptCompletionConversational,
        &drop(),
        &trailing,
    )
    .unwrap_err();
    assert!(
        e.contains("ends with a `user` turn") && e.contains("`messages`"),
        "{e}"
    );
    let lone = Record {
        messages: vec![Message::assistant("hi")],
        ..Default::default()
    };
    let e = rows(ExportFormat::PromptCompletionConversational, &drop(), &lone).unwrap_err();
    assert!(e.contains("no prompt"), "{e}");
}

#[test]
fn prompt_only_drops_the_answer_and_keeps_the_turn_to_answer_last() {
    assert_eq!(
        one(ExportFormat::PromptOnly, &sft()),
        json!({"prompt": "Sort\n\n3 1 2", "id": "s"})
    );
    let v = one(ExportFormat::PromptOnlyConversational, &chat());
    let p = v["prompt"].as_array().unwrap();
    assert_eq!(p.len(), 4);
    assert_eq!(p[3], json!({"role": "user", "content": "2+2?"}));
    let e = rows(ExportFormat::PromptOnly, &drop(), &chat()).unwrap_err();
    assert!(e.contains("prompt_only_conversational"), "{e}");
    let e = rows(ExportFormat::PromptOnly, &drop(), &Record::default()).unwrap_err();
    assert!(e.contains("no prompt"), "{e}");
}

#[test]
fn kto_writes_one_true_and_one_false_row_per_pair() {
    let r = pair_record("p", vec![Message::user("Sky?")]);
    let v = rows(ExportFormat::Kto, &drop(), &r).unwrap();
    let pid = prompt_id(&r.messages);
    assert_eq!(
        v,
        vec![
            json!({"prompt": "Sky?", "completion": "Blue.", "label": true, "prompt_id": pid, "id": "p"}),
            json!({"prompt": "Sky?", "completion": "Green.", "label": false, "prompt_id": pid, "id": "p"}),
        ]
    );
    let sys = pair_record("q", vec![Message::system("S"), Message::user("Sky?")]);
    let e = rows(ExportFormat::Kto, &drop(), &sys).unwrap_err();
    assert!(e.contains("kto_conversational"), "{e}");
    let v = rows(ExportFormat::KtoConversational, &drop(), &sys).unwrap();
    assert_eq!(v[1]["prompt"].as_array().unwrap().len(), 2);
    assert_eq!(
        v[1]["completion"],
        json!([{"role": "assistant", "content": "Green."}])
    );
    assert_eq!(v[1]["label"], json!(false));
    let e = rows(ExportFormat::Kto, &drop(), &sft()).unwrap_err();
    assert!(e.contains("no preference pair"), "{e}");
}

#[test]
fn implicit_preference_holds_the_prompt_inside_both_sides_and_no_margin() {
    let r = pair_record("p", vec![Message::user("Sky?")]);
    let v = one(ExportFormat::ImplicitPreference, &r);
    assert_eq!(v["chosen"], json!("Sky?\n\nBlue."));
    assert_eq!(v["rejected"], json!("Sky?\n\nGreen."));
    // RewardTrainer would read a `margin` column as a loss margin.
    assert!(v.get("margin").is_none(), "{v}");
    assert_eq!(v["chosen_score"], json!(9.0));
    let sys = pair_record("q", vec![Message::system("S"), Message::user("Sky?")]);
    let v = one(ExportFormat::ImplicitPreferenceConversational, &sys);
    assert_eq!(
        v["chosen"],
        json!([{"role": "system", "content": "S"}, {"role": "user", "content": "Sky?"}, {"role": "assistant", "content": "Blue."}])
    );
    assert_eq!(
        v["rejected"].as_array().unwrap()[2]["content"],
        json!("Green.")
    );
}

#[test]
fn alpaca_ranking_takes_instruction_and_input_or_a_single_user_prompt() {
    let mut r = pair_record("p", vec![]);
    r.instruction = Some("Translate".into());
    r.input = Some("天空".into());
    assert_eq!(
        one(ExportFormat::AlpacaRanking, &r),
        json!({"instruction": "Translate", "input": "天空", "chosen": "Blue.", "rejected": "Green.", "id": "p"})
    );
    let u = pair_record("u", vec![Message::user("Sky?")]);
    assert_eq!(one(ExportFormat::AlpacaRanking, &u)["input"], json!(""));
    let sys = pair_record("q", vec![Message::system("S"), Message::user("Sky?")]);
    let e = rows(ExportFormat::AlpacaRanking, &drop(), &sys).unwrap_err();
    assert!(e.contains("dpo_conversational"), "{e}");
}

#[test]
fn kept_columns_are_typed_and_null_when_missing() {
    let mut r = pair_record("p", vec![Message::user("Sky?")]);
    r.scores.insert("quality".into(), 8.5);
    r.labels.insert("tier".into(), "hard".into());
    r.cluster = Some(7);
    let o = ExportOptions {
        keep_columns: [
            "quality",
            "difficulty",
            "tier",
            "cluster",
            "model",
            "step",
            "teacher",
        ]
        .iter()
        .map(|n| KeepColumn::parse(n).unwrap())
        .collect(),
        include_id: false,
        ..drop()
    };
    let v = rows(ExportFormat::Kto, &o, &r).unwrap();
    let extra = json!({"quality": 8.5, "difficulty": null, "tier": "hard", "cluster": 7, "step": "pair", "teacher": null});
    for (row, model) in v.iter().zip(["big", "small"]) {
        assert!(row.get("id").is_none(), "{row}");
        assert_eq!(row["model"], json!(model), "the side's model");
        for (k, want) in extra.as_object().unwrap() {
            assert_eq!(&row[k], want, "{k}");
        }
    }
    let schema = ExportFormat::Kto.schema_with(&o);
    let t = |n: &str| schema.field_with_name(n).unwrap().data_type().clone();
    use arrow::datatypes::DataType;
    assert_eq!(
        (t("quality"), t("tier"), t("cluster"), t("label")),
        (
            DataType::Float64,
            DataType::Utf8,
            DataType::UInt32,
            DataType::Boolean
        )
    );
    // An SFT row's model is the candidate that wrote its response.
    let mut s = sft();
    s.candidates = vec![
        Candidate {
            model: "other".into(),
            content: "3 2 1".into(),
            ..Default::default()
        },
        Candidate {
            model: "writer".into(),
            content: "1 2 3".into(),
            ..Default::default()
        },
    ];
    let o = ExportOptions {
        keep_columns: vec![KeepColumn::Model],
        ..drop()
    };
    assert_eq!(
        rows(ExportFormat::Messages, &o, &s).unwrap()[0]["model"],
        json!("writer")
    );
}

#[test]
fn kept_columns_fill_a_parquet_batch_with_nulls() {
    let o = ExportOptions {
        keep_columns: vec![KeepColumn::parse("quality").unwrap(), KeepColumn::Cluster],
        ..drop()
    };
    let mut with = sft();
    with.scores.insert("quality".into(), 2.0);
    with.cluster = Some(3);
    let dir = tempfile::tempdir().unwrap();
    let ex =
        Exporter::create_with(&dir.path().join("x.parquet"), ExportFormat::Alpaca, &o).unwrap();
    let mut b = BatchBuilder::new(&ex.columns, 2);
    for r in [&with, &sft()] {
        for row in ex.record_rows(r).unwrap() {
            b.push(row).unwrap();
        }
    }
    let batch = b.finish().unwrap();
    assert_eq!(batch.schema(), ExportFormat::Alpaca.schema_with(&o));
    use arrow::array::{Array, Float64Array, UInt32Array};
    let q = batch
        .column(3)
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap();
    assert_eq!((q.value(0), q.is_null(1)), (2.0, true));
    let c = batch
        .column(4)
        .as_any()
        .downcast_ref::<UInt32Array>()
        .unwrap();
    assert_eq!((c.value(0), c.is_null(1)), (3, true));
}

#[test]
fn reasoning_modes() {
    let mut r = chat();
    r.messages[4] = thought("4", "2+2 is 4.");
    let with = |m: Option<Reasoning>| ExportOptions {
        reasoning: m,
        ..Default::default()
    };
    let last =
        |o: &ExportOptions| rows(ExportFormat::Messages, o, &r).unwrap()[0]["messages"][4].clone();
    // Default: nothing lost, and every turn has the key (null) so JSON readers infer one
    // struct type for every column.
    assert_eq!(
        last(&with(None)),
        json!({"role": "assistant", "content": "4", "reasoning_content": "2+2 is 4."})
    );
    let v = rows(ExportFormat::Messages, &with(None), &r).unwrap();
    assert_eq!(v[0]["messages"][0]["reasoning_content"], Value::Null);
    assert_eq!(
        last(&with(Some(Reasoning::Thinking))),
        json!({"role": "assistant", "content": "4", "thinking": "2+2 is 4."})
    );
    assert_eq!(
        last(&with(Some(Reasoning::Inline))),
        json!({"role": "assistant", "content": "<think>\n2+2 is 4.\n</think>\n\n4"})
    );
    assert_eq!(
        last(&with(Some(Reasoning::Drop))),
        json!({"role": "assistant", "content": "4"})
    );
    let v = rows(ExportFormat::ShareGpt, &with(None), &r).unwrap();
    assert_eq!(
        v[0]["conversations"][4],
        json!({"from": "gpt", "value": "4", "reasoning_content": "2+2 is 4."})
    );
    // Plain-string formats refuse a trace unless told what to do with it.
    let mut p = pair_record("p", vec![Message::user("Sky?")]);
    p.pair.as_mut().unwrap().chosen = vec![thought("Blue.", "Rayleigh.")];
    let e = rows(ExportFormat::Dpo, &with(None), &p).unwrap_err();
    assert!(
        e.contains("reasoning = \"inline\"") && e.contains("reasoning = \"drop\""),
        "{e}"
    );
    let v = rows(ExportFormat::Dpo, &with(Some(Reasoning::Inline)), &p).unwrap();
    assert_eq!(
        v[0]["chosen"],
        json!("<think>\nRayleigh.\n</think>\n\nBlue.")
    );
    assert_eq!(
        rows(ExportFormat::Kto, &drop(), &p).unwrap()[0]["completion"],
        json!("Blue.")
    );
    // The id of a prompt does not depend on traces in it.
    let mut traced = chat().prompt_messages();
    traced[2].reasoning = Some("greeting".into());
    assert_eq!(prompt_id(&traced), prompt_id(&chat().prompt_messages()));
}

#[test]
fn options_that_do_not_fit_are_refused_with_what_to_do() {
    let keep = |n: &str| ExportOptions {
        keep_columns: vec![KeepColumn::parse(n).unwrap()],
        ..Default::default()
    };
    let e = ExportFormat::Records.check(&keep("quality"));
    assert!(e[0].contains("already holds every field"), "{e:?}");
    let e = ExportFormat::Messages.check(&keep("labels.id"));
    assert!(e[0].contains("`id` is already a column"), "{e:?}");
    assert!(ExportFormat::Messages
        .check(&ExportOptions {
            include_id: false,
            ..keep("labels.id")
        })
        .is_empty());
    let e = ExportFormat::Dpo.check(&ExportOptions {
        reasoning: Some(Reasoning::ReasoningContent),
        dataset_info: Some(true),
        ..Default::default()
    });
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[1].contains("alpaca, sharegpt, alpaca_ranking") || e[1].contains("messages"),
        "{e:?}"
    );
    let e = KeepColumn::parse("scores.").unwrap_err();
    assert!(e.contains("names no column"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let err = Exporter::create_with(
        &dir.path().join("a.jsonl"),
        ExportFormat::Alpaca,
        &ExportOptions {
            include_id: false,
            ..Default::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("a.jsonl") && err.contains("no `id` column"),
        "{err}"
    );
}

#[test]
fn dataset_info_entries_merge_into_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let info = dir.path().join("dataset_info.json");
    std::fs::write(&info, r#"{"mine": {"file_name": "mine.json"}}"#).unwrap();
    let r = pair_record("p", vec![Message::user("Sky?")]);
    for (name, f) in [
        ("prefs.parquet", ExportFormat::AlpacaRanking),
        ("sft.jsonl", ExportFormat::Alpaca),
    ] {
        let o = ExportOptions {
            // The ranking format writes its entry by default; alpaca when asked.
            dataset_info: (f == ExportFormat::Alpaca).then_some(true),
            ..Default::default()
        };
        let mut ex = Exporter::create_with(&dir.path().join(name), f, &o).unwrap();
        ex.write(&[r.clone(), sft()]).unwrap();
        ex.finish().unwrap();
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
    assert_eq!(v["mine"], json!({"file_name": "mine.json"}));
    assert_eq!(v["prefs"]["file_name"], json!("prefs.parquet"));
    assert_eq!(v["prefs"]["ranking"], json!(true));
    assert_eq!(v["prefs"]["columns"]["query"], json!("input"));
    assert_eq!(v["sft"]["columns"]["response"], json!("output"));
    // Not asked for: no entry.
    let mut ex = Exporter::create(&dir.path().join("m.jsonl"), ExportFormat::Messages).unwrap();
    ex.write(&[sft()]).unwrap();
    ex.finish().unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
    assert!(v.get("m").is_none());
    // A file that is not an object is not overwritten.
    std::fs::write(&info, "[]").unwrap();
    let mut ex =
        Exporter::create(&dir.path().join("r.jsonl"), ExportFormat::AlpacaRanking).unwrap();
    ex.write(&[r]).unwrap();
    let e = ex.finish().unwrap_err().to_string();
    assert!(
        e.contains("dataset_info.json") && e.contains("dataset_info = false"),
        "{e}"
    );
}
