//! Behaviour of the storage edge that the runner and steps rely on.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};
use common::{bare_record, chat_record, full_record, sft_record};
use retort_core::{Failure, Message, Pair, Record, Rejection};
use retort_store::*;
use serde_json::json;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

fn mixed_records() -> Vec<Record> {
    let mut v = Vec::new();
    for i in 0..50 {
        v.push(full_record(i));
        v.push(bare_record(i));
        v.push(sft_record(i));
        v.push(chat_record(i));
    }
    // Empty strings are values, not nulls: they must come back as `Some("")`.
    let mut r = bare_record(999);
    r.instruction = Some(String::new());
    r.embedding = Some(vec![]);
    r.labels.insert(String::new(), String::new());
    r.pair = Some(Pair::default());
    v.push(r);
    // Reasoning traces: on a message, on both sides of a pair, and an empty one (a
    // value, not a null).
    let mut r = chat_record(1000);
    let mut answer = Message::assistant("4");
    answer.reasoning = Some("2 + 2: two pairs make four.".into());
    r.messages.push(answer.clone());
    let mut empty = Message::assistant("5");
    empty.reasoning = Some(String::new());
    r.pair = Some(Pair {
        chosen: vec![answer],
        rejected: vec![empty],
        ..Default::default()
    });
    v.push(r);
    // Tool calling: definitions on the record, a turn with two calls (one without an
    // id), the tool's result, and a call on the chosen side of a pair.
    let mut r = chat_record(1001);
    r.tools = vec![
        serde_json::json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}),
    ];
    let mut call = Message::assistant("");
    call.tool_calls = vec![
        retort_core::ToolCall {
            id: Some("call_1".into()),
            name: "get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        },
        retort_core::ToolCall {
            id: None,
            name: "get_weather".into(),
            arguments: "{}".into(),
        },
    ];
    let mut result = Message::new("tool", r#"{"temp": 3}"#);
    result.tool_call_id = Some("call_1".into());
    result.name = Some("get_weather".into());
    r.messages.extend([call.clone(), result]);
    r.pair = Some(Pair {
        chosen: vec![call],
        rejected: vec![Message::assistant("no")],
        ..Default::default()
    });
    v.push(r);
    v
}

/// `batch` with the list-of-struct column `name` cut to the first `keep` fields of its
/// items: what a file written before the later fields existed holds.
fn first_fields(batch: &RecordBatch, name: &str, keep: usize) -> RecordBatch {
    use arrow::array::StructArray;
    let i = batch.schema().index_of(name).unwrap();
    let list = batch
        .column(i)
        .as_any()
        .downcast_ref::<ListArray>()
        .unwrap();
    let items = list
        .values()
        .as_any()
        .downcast_ref::<StructArray>()
        .unwrap();
    let old_fields: arrow::datatypes::Fields = items.fields().iter().take(keep).cloned().collect();
    let old =
        StructArray::try_new(old_fields.clone(), items.columns()[..keep].to_vec(), None).unwrap();
    let field = Arc::new(Field::new("item", DataType::Struct(old_fields), false));
    let old_list =
        ListArray::try_new(field.clone(), list.offsets().clone(), Arc::new(old), None).unwrap();
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[i] = Field::new(name, DataType::List(field), false);
    let mut cols = batch.columns().to_vec();
    cols[i] = Arc::new(old_list);
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

/// A batch as retort wrote it before `reasoning`, the tool fields and the `tools`
/// column existed: 2-field message structs, candidates without `reasoning`, no `tools`.
fn without_reasoning(batch: &RecordBatch) -> RecordBatch {
    let batch = first_fields(batch, "messages", 2);
    let batch = first_fields(&batch, "candidates", 6);
    let t = batch.schema().index_of("tools").unwrap();
    let rest: Vec<usize> = (0..batch.num_columns()).filter(|&c| c != t).collect();
    batch.project(&rest).unwrap()
}

#[test]
fn records_written_before_reasoning_and_tools_existed_read_without_them() {
    let records = mixed_records();
    let old = without_reasoning(&records_to_batch(&records).unwrap());
    let back = batch_to_records(&old).unwrap();
    for (a, b) in records.iter().zip(&back) {
        let stripped: Vec<Message> = a
            .messages
            .iter()
            .map(|m| Message::new(m.role.clone(), m.content.clone()))
            .collect();
        assert_eq!(b.messages, stripped);
        assert_eq!(b.pair, a.pair);
        assert!(b.tools.is_empty());
        let stripped: Vec<_> = a
            .candidates
            .iter()
            .map(|c| retort_core::Candidate {
                reasoning: None,
                ..c.clone()
            })
            .collect();
        assert_eq!(b.candidates, stripped);
    }
    assert!(records
        .iter()
        .any(|r| r.candidates.iter().any(|c| c.reasoning.is_some())));
    assert!(records
        .iter()
        .any(|r| r.messages.iter().any(|m| m.reasoning.is_some())));
    assert!(records.iter().any(|r| !r.tools.is_empty()));
}

// ---------------------------------------------------------------- schema round trips

#[test]
fn record_batch_round_trip_is_exact() {
    let records = mixed_records();
    let batch = records_to_batch(&records).unwrap();
    assert_eq!(batch.schema(), record_schema());
    assert_eq!(batch.num_rows(), records.len());
    assert_eq!(batch_to_records(&batch).unwrap(), records);
}

#[test]
fn sliced_batches_round_trip() {
    let records = mixed_records();
    let batch = records_to_batch(&records).unwrap();
    let slice = batch.slice(7, 20);
    assert_eq!(batch_to_records(&slice).unwrap(), records[7..27].to_vec());
}

#[test]
fn empty_batch_round_trips() {
    let batch = records_to_batch(&[]).unwrap();
    assert_eq!(batch.num_rows(), 0);
    assert!(batch_to_records(&batch).unwrap().is_empty());
}

#[test]
fn failures_and_rejections_round_trip() {
    let failures = vec![
        Failure {
            step: "respond".into(),
            record_id: "r1".into(),
            class: "http_429".into(),
            status: Some(429),
            message: "rate limited".into(),
            raw: "{\"error\":\"slow down\"}".into(),
        },
        Failure {
            step: "load".into(),
            record_id: "seeds.jsonl:3".into(),
            class: "bad_input".into(),
            status: None,
            message: "invalid JSON".into(),
            raw: "{oops".into(),
        },
    ];
    let b = failures_to_batch(&failures).unwrap();
    assert_eq!(batch_to_failures(&b).unwrap(), failures);

    let rejections = vec![Rejection {
        step: "self_instruct".into(),
        record_id: "t9".into(),
        reason: "rouge_l".into(),
        detail: "0.82 vs seed_017".into(),
        text: "写一首诗".into(),
    }];
    let b = rejections_to_batch(&rejections).unwrap();
    assert_eq!(batch_to_rejections(&b).unwrap(), rejections);

    let d = tmp();
    let fp = d.path().join("failures.parquet");
    write_failures_atomic(&fp, &failures).unwrap();
    assert_eq!(read_failures(&fp).unwrap(), failures);
    let rp = d.path().join("rejections.parquet");
    write_rejections_atomic(&rp, &rejections).unwrap();
    assert_eq!(read_rejections(&rp).unwrap(), rejections);
}

#[test]
fn batch_missing_a_column_is_rejected_with_its_name() {
    let batch = records_to_batch(&[full_record(0)]).unwrap();
    let i = batch.schema().index_of("labels").unwrap();
    let mut b = batch.clone();
    b.remove_column(i);
    let err = batch_to_records(&b).unwrap_err().to_string();
    assert!(err.contains("`labels`"), "{err}");
}

// ---------------------------------------------------------------- Parquet files

#[test]
fn parquet_round_trip_with_metadata_and_counts() {
    let d = tmp();
    let p = d.path().join("part-0001.parquet");
    let records = mixed_records();
    let n = write_records_atomic_with_meta(&p, &records, &[("cursor", "41"), ("step", "respond")])
        .unwrap();
    assert_eq!(n, records.len() as u64);
    assert_eq!(count_rows(&p).unwrap(), records.len() as u64);
    assert_eq!(read_records(&p).unwrap(), records);
    let meta = read_meta(&p).unwrap();
    assert_eq!(meta.get("cursor").map(String::as_str), Some("41"));
    assert_eq!(meta.get("step").map(String::as_str), Some("respond"));
    assert!(!meta.contains_key("ARROW:schema"));
    // Only the final file remains: no temporary left next to it.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["part-0001.parquet"]);
}

#[test]
fn record_reader_streams_bounded_chunks_in_order() {
    let d = tmp();
    let p = d.path().join("r.parquet");
    let records: Vec<Record> = (0..20_000).map(sft_record).collect();
    write_records_atomic(&p, &records).unwrap();
    let mut got = Vec::new();
    let mut chunks = 0;
    for chunk in RecordReader::open(&p, 3000).unwrap() {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= 3000 && !chunk.is_empty());
        got.extend(chunk);
        chunks += 1;
    }
    assert!(chunks >= 7, "{chunks} chunks");
    assert_eq!(got, records);
}

#[test]
fn rewriting_replaces_the_file_atomically() {
    let d = tmp();
    let p = d.path().join("out.parquet");
    write_records_atomic(&p, &[full_record(1)]).unwrap();
    write_records_atomic(&p, &[full_record(2), full_record(3)]).unwrap();
    assert_eq!(
        read_records(&p).unwrap(),
        vec![full_record(2), full_record(3)]
    );
}

#[test]
fn unfinished_parquet_writer_leaves_nothing() {
    let d = tmp();
    let p = d.path().join("out.parquet");
    let mut w = AtomicParquetWriter::create(&p, record_schema(), &[]).unwrap();
    w.write(&records_to_batch(&[full_record(0)]).unwrap())
        .unwrap();
    drop(w);
    assert!(!p.exists());
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn stale_temp_files_are_recognised_and_removed() {
    let d = tmp();
    let p = d.path().join("out.parquet");
    let mut w = AtomicParquetWriter::create(&p, record_schema(), &[]).unwrap();
    w.write(&records_to_batch(&[full_record(0)]).unwrap())
        .unwrap();
    // Simulate SIGKILL: the destructor never runs.
    std::mem::forget(w);
    let leftovers: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(leftovers.len(), 1);
    assert!(is_temp_file(&leftovers[0]));
    assert!(!is_temp_file(&p));
    assert_eq!(remove_temp_files(d.path()).unwrap(), 1);
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn reading_a_foreign_parquet_as_records_names_file_and_column() {
    let d = tmp();
    let p = d.path().join("foreign.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch =
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))]).unwrap();
    write_parquet_atomic(&p, schema, &[batch]).unwrap();
    let err = read_records(&p).unwrap_err().to_string();
    assert!(err.contains("foreign.parquet"), "{err}");
    assert!(err.contains("`id`"), "{err}");
}

#[test]
fn missing_file_error_names_it() {
    let err = read_records(Path::new("/nonexistent/x.parquet"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/x.parquet"), "{err}");
}

// ---------------------------------------------------------------- row reader

fn write_file(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    p
}

#[test]
fn jsonl_rows_with_a_broken_line_name_file_and_line() {
    let d = tmp();
    let p = write_file(
        d.path(),
        "seeds.jsonl",
        "{\"a\":1}\n\n{\"a\":\"中文\"}\r\n{\"a\": oops}\n[1,2]\n{\"a\":3}",
    );
    let rows: Vec<_> = read_rows(&p, None).unwrap().collect();
    assert_eq!(rows.len(), 5);
    let ok: Vec<_> = rows.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok[0].line, 1);
    assert_eq!(ok[0].fields["a"], json!(1));
    assert_eq!(ok[1].line, 3, "blank lines count towards line numbers");
    assert_eq!(ok[1].fields["a"], json!("中文"));
    assert_eq!(ok[2].line, 6);
    let e = rows[2].as_ref().unwrap_err();
    assert_eq!(e.line, 4);
    assert_eq!(e.raw, "{\"a\": oops}");
    let msg = e.to_string();
    assert!(msg.contains("seeds.jsonl: line 4"), "{msg}");
    assert!(msg.contains("on_error = \"skip\""), "{msg}");
    let e = rows[3].as_ref().unwrap_err();
    assert_eq!(e.line, 5);
    assert!(
        e.message.contains("expected a JSON object"),
        "{}",
        e.message
    );
}

#[test]
fn jsonl_lines_longer_than_the_read_buffer() {
    let d = tmp();
    let long = "x".repeat(3 << 20);
    let body = format!("{{\"t\":\"{long}\"}}\n{{\"t\":\"short\"}}\n");
    let p = write_file(d.path(), "long.jsonl", &body);
    let rows: Vec<_> = read_rows(&p, None).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].fields["t"].as_str().unwrap().len(), 3 << 20);
    assert_eq!(rows[1].line, 2);
}

#[test]
fn csv_with_quoted_commas_and_newlines() {
    let d = tmp();
    let p = write_file(
        d.path(),
        "seeds.csv",
        "instruction,input,output\n\"Sort, ascending\",\"3,1,2\",\"1,2,3\"\n\"multi\nline\",,ok\nshort,row\n",
    );
    let rows: Vec<_> = read_rows(&p, None).unwrap().collect();
    assert_eq!(rows.len(), 3);
    let r0 = rows[0].as_ref().unwrap();
    assert_eq!(r0.line, 2);
    assert_eq!(r0.fields["instruction"], json!("Sort, ascending"));
    assert_eq!(r0.fields["input"], json!("3,1,2"));
    let r1 = rows[1].as_ref().unwrap();
    assert_eq!(r1.line, 3);
    assert_eq!(r1.fields["instruction"], json!("multi\nline"));
    assert_eq!(r1.fields["input"], json!(""));
    let e = rows[2].as_ref().unwrap_err();
    assert_eq!(e.line, 5, "the quoted newline makes this physical line 5");
    assert!(e.to_string().contains("seeds.csv: line 5"), "{e}");
    assert!(
        e.message.contains("2 fields but the header has 3"),
        "{}",
        e.message
    );
}

#[test]
fn json_array_rows_and_errors() {
    let d = tmp();
    let p = write_file(
        d.path(),
        "seeds.json",
        "[{\"q\":\"a\",\"n\":1.5},\n {\"q\":\"b\",\"tags\":[\"x\"]},\n 7]",
    );
    let rows: Vec<_> = read_rows(&p, None).unwrap().collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].as_ref().unwrap().fields["n"], json!(1.5));
    assert_eq!(rows[1].as_ref().unwrap().line, 2);
    assert_eq!(rows[1].as_ref().unwrap().fields["tags"], json!(["x"]));
    let e = rows[2].as_ref().unwrap_err();
    assert_eq!((e.line, e.position), (3, Position::Row));
    assert!(e.to_string().contains("seeds.json: row 3"), "{e}");

    let bad = write_file(d.path(), "bad.json", "[\n{\"q\":1},\n{\"q\":}\n]");
    let rows: Vec<_> = read_rows(&bad, None).unwrap().collect();
    assert_eq!(rows.len(), 1);
    let e = rows[0].as_ref().unwrap_err();
    assert_eq!((e.line, e.position), (3, Position::Line));
    assert_eq!(e.raw, "{\"q\":}");
}

#[test]
fn json_extension_holding_json_lines_is_read_as_jsonl() {
    let d = tmp();
    let p = write_file(d.path(), "seeds.json", "{\"a\":1}\n{\"a\":2}\n");
    let rows: Vec<_> = read_rows(&p, None).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].fields["a"], json!(2));
}

#[test]
fn arbitrary_parquet_rows() {
    let d = tmp();
    let p = d.path().join("any.parquet");
    let tags = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2)]),
        None,
        Some(vec![]),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("q", DataType::Utf8, true),
        Field::new("score", DataType::Float64, false),
        Field::new("tags", tags.data_type().clone(), true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![Some("a"), None, Some("日本語")])),
        Arc::new(Float64Array::from(vec![1.0, 2.5, -3.0])),
        Arc::new(tags),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).unwrap();
    write_parquet_atomic(&p, schema, &[batch]).unwrap();
    let rows: Vec<_> = read_rows(&p, None).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].line, 1);
    assert_eq!(
        serde_json::Value::Object(rows[0].fields.clone()),
        json!({"q":"a","score":1.0,"tags":[1,2]})
    );
    assert_eq!(rows[1].fields["q"], json!(null));
    assert_eq!(rows[1].fields["tags"], json!(null));
    assert_eq!(rows[2].fields["q"], json!("日本語"));
    assert_eq!(rows[2].fields["tags"], json!([]));
}

#[test]
fn parquet_nan_is_a_row_error_not_a_silent_null() {
    let d = tmp();
    let p = d.path().join("nan.parquet");
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, false)]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(Float64Array::from(vec![1.0, f64::NAN]))],
    )
    .unwrap();
    write_parquet_atomic(&p, schema, &[batch]).unwrap();
    let rows: Vec<_> = read_rows(&p, None).unwrap().collect();
    assert!(rows[0].is_ok());
    let e = rows[1].as_ref().unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("`x`"), "{}", e.message);
}

#[test]
fn unknown_extension_is_an_error_naming_the_file() {
    let err = read_rows(Path::new("seeds.txt"), None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("seeds.txt") && err.contains(".jsonl"), "{err}");
}

// ---------------------------------------------------------------- export

fn export_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn format_names_parse() {
    for f in ExportFormat::ALL {
        assert_eq!(ExportFormat::from_name(f.name()).unwrap(), f);
    }
    let err = ExportFormat::from_name("dpo-conv").unwrap_err().to_string();
    assert!(err.contains("dpo_conversational"), "{err}");
}

#[test]
fn dpo_export_skips_records_without_a_pair() {
    let d = tmp();
    let p = d.path().join("dpo.jsonl");
    let mut ex = Exporter::create(&p, ExportFormat::Dpo).unwrap();
    let skipped = ex
        .write(&[full_record(1), sft_record(2), chat_record(3)])
        .unwrap();
    assert_eq!(ex.finish().unwrap(), 0);
    let ids: Vec<_> = skipped.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["rec-0001", "sft-2", "chat-3"]);
    assert!(
        skipped[0].1.contains("dpo_conversational"),
        "{}",
        skipped[0].1
    );
    assert!(
        skipped[1].1.contains("no preference pair"),
        "{}",
        skipped[1].1
    );
    assert!(export_lines(&p).is_empty());
    // The final file exists (with no rows) once finished.
    assert!(p.exists());
}

fn no_reasoning() -> retort_store::ExportOptions {
    retort_store::ExportOptions {
        reasoning: Some(retort_store::Reasoning::Drop),
        ..Default::default()
    }
}

#[test]
fn dpo_standard_and_conversational_rows() {
    let d = tmp();
    let mut r = full_record(1);
    r.instruction = None;
    r.input = None;
    r.messages = vec![Message::user("把下面的句子翻译成英文")];
    let std_path = d.path().join("dpo.jsonl");
    let mut ex = Exporter::create(&std_path, ExportFormat::Dpo).unwrap();
    assert!(ex.write(std::slice::from_ref(&r)).unwrap().is_empty());
    ex.finish().unwrap();
    let row = &export_lines(&std_path)[0];
    let expected_id = retort_store::prompt_id(&r.messages);
    assert_eq!(
        row,
        &json!({
            "prompt": "把下面的句子翻译成英文",
            "chosen": "I like reading on rainy days.",
            "rejected": "I rain read.",
            "prompt_id": expected_id,
            "chosen_model": "Qwen/Qwen2.5-7B-Instruct",
            "rejected_model": "qwen2.5-0.5b",
            "chosen_score": 8.5,
            "rejected_score": 2.0,
            "margin": 6.5,
            "rationale": "the second answer is ungrammatical"
        })
    );
    // sha256("把下面的句子翻译成英文") — the UltraFeedback convention.
    assert_eq!(expected_id.len(), 64);

    let conv_path = d.path().join("dpo_conv.jsonl");
    // `drop`: the turns exactly as before reasoning existed (the default adds a null
    // `reasoning_content` to each; see the export unit tests).
    let mut ex =
        Exporter::create_with(&conv_path, ExportFormat::DpoConversational, &no_reasoning())
            .unwrap();
    // The full record (system + user prompt) is fine in the conversational format.
    assert!(ex.write(&[full_record(2)]).unwrap().is_empty());
    ex.finish().unwrap();
    let row = &export_lines(&conv_path)[0];
    assert_eq!(
        row["prompt"],
        json!([{"role":"system","content":"You are helpful."},{"role":"user","content":"把下面的句子翻译成英文：我喜欢在雨天读书。"}])
    );
    assert_eq!(
        row["chosen"],
        json!([{"role":"assistant","content":"I like reading on rainy days."}])
    );
    assert_eq!(row["margin"], json!(6.5));
}

#[test]
fn messages_alpaca_sharegpt_rows() {
    let d = tmp();
    let records = [sft_record(1), chat_record(2), bare_record(3)];

    let p = d.path().join("m.jsonl");
    let mut ex = Exporter::create_with(&p, ExportFormat::Messages, &no_reasoning()).unwrap();
    let skipped = ex.write(&records).unwrap();
    assert_eq!(ex.finish().unwrap(), 2);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, "bare-3");
    let rows = export_lines(&p);
    assert_eq!(
        rows[0],
        json!({"messages":[{"role":"user","content":"Sort the numbers #1\n\n3 1 2"},{"role":"assistant","content":"1 2 3"}],"id":"sft-1"})
    );
    assert_eq!(rows[1]["messages"].as_array().unwrap().len(), 5);

    let p = d.path().join("a.jsonl");
    let mut ex = Exporter::create(&p, ExportFormat::Alpaca).unwrap();
    let mut single = bare_record(4);
    single.messages = vec![Message::user("Hi"), Message::assistant("Hello")];
    let skipped = ex.write(&[sft_record(1), chat_record(2), single]).unwrap();
    ex.finish().unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, "chat-2");
    let rows = export_lines(&p);
    assert_eq!(
        rows,
        vec![
            json!({"instruction":"Sort the numbers #1","input":"3 1 2","output":"1 2 3"}),
            json!({"instruction":"Hi","input":"","output":"Hello"}),
        ]
    );

    let p = d.path().join("s.jsonl");
    let mut ex = Exporter::create(&p, ExportFormat::ShareGpt).unwrap();
    let mut tool = chat_record(5);
    tool.messages.push(Message::new("tool", "{}"));
    let skipped = ex.write(&[chat_record(2), tool]).unwrap();
    ex.finish().unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].1.contains("`tool`"), "{}", skipped[0].1);
    let rows = export_lines(&p);
    let froms: Vec<_> = rows[0]["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["from"].as_str().unwrap())
        .collect();
    assert_eq!(froms, ["system", "human", "gpt", "human", "gpt"]);
}

#[test]
fn records_export_parquet_round_trips_and_jsonl_matches_schema_keys() {
    let d = tmp();
    let records = mixed_records();
    let p = d.path().join("all.parquet");
    let mut ex = Exporter::create(&p, ExportFormat::Records).unwrap();
    for chunk in records.chunks(17) {
        assert!(ex.write(chunk).unwrap().is_empty());
    }
    assert_eq!(ex.finish().unwrap(), records.len() as u64);
    assert_eq!(read_records(&p).unwrap(), records);
    assert_eq!(read_meta(&p).unwrap()["retort.export_format"], "records");

    let j = d.path().join("all.jsonl");
    let mut ex = Exporter::create(&j, ExportFormat::Records).unwrap();
    ex.write(&records).unwrap();
    ex.finish().unwrap();
    let rows = export_lines(&j);
    let keys: Vec<_> = rows[0].as_object().unwrap().keys().cloned().collect();
    let mut schema_keys: Vec<_> = record_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    schema_keys.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, schema_keys);
    assert_eq!(
        rows[0]["scores"],
        json!([{"key":"difficulty","value":3.0},{"key":"quality","value":8.25}])
    );
    assert_eq!(rows[0]["cluster"], json!(u32::MAX));
}

#[test]
fn nan_score_cannot_go_to_jsonl_and_is_reported() {
    let d = tmp();
    let p = d.path().join("r.jsonl");
    let mut r = full_record(0);
    r.scores.insert("quality".into(), f64::NAN);
    let mut ex = Exporter::create(&p, ExportFormat::Records).unwrap();
    let skipped = ex.write(&[r, full_record(1)]).unwrap();
    assert_eq!(ex.finish().unwrap(), 1);
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].1.contains("scores.quality"), "{}", skipped[0].1);
    assert_eq!(export_lines(&p).len(), 1, "no half-written line");
}

#[test]
fn exporter_dropped_before_finish_leaves_no_file() {
    let d = tmp();
    for name in ["x.parquet", "x.jsonl"] {
        let p = d.path().join(name);
        let mut ex = Exporter::create(&p, ExportFormat::Messages).unwrap();
        ex.write(&[sft_record(1)]).unwrap();
        drop(ex);
        assert!(!p.exists(), "{name}");
    }
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn export_rejects_unknown_extension() {
    let d = tmp();
    let err = Exporter::create(&d.path().join("x.csv"), ExportFormat::Messages)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("x.csv") && err.contains(".parquet"), "{err}");
}

// ---------------------------------------------------------------- inspect

#[test]
fn inspect_parquet_and_jsonl() {
    let d = tmp();
    let p = d.path().join("r.parquet");
    let records: Vec<Record> = (0..10)
        .map(full_record)
        .chain((0..5).map(bare_record))
        .collect();
    write_records_atomic_with_meta(&p, &records, &[("cursor", "7")]).unwrap();
    let out = inspect(&p, 2).unwrap();
    assert!(out.contains("rows:       15"), "{out}");
    assert!(out.contains("cursor = 7"), "{out}");
    assert!(
        out.contains(
            "messages: list<struct<role: string, content: string, reasoning: string, tool_calls: list<struct<id: string, name: string, arguments: string>>, tool_call_id: string, name: string>> not null"
        ),
        "{out}"
    );
    // 5 of 15 records have no instruction.
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("instruction "))
        .unwrap();
    assert!(line.contains(" 5 "), "{line}");
    assert!(out.contains("\"id\": \"rec-0000\""), "{out}");
    assert!(out.contains("\"id\": \"rec-0001\""), "{out}");
    assert!(!out.contains("\"id\": \"rec-0002\""), "{out}");
    assert!(out.contains("pair.margin"), "{out}");

    let j = d.path().join("m.jsonl");
    let mut ex = Exporter::create(&j, ExportFormat::Messages).unwrap();
    ex.write(&[sft_record(1), chat_record(2)]).unwrap();
    ex.finish().unwrap();
    let out = inspect(&j, 1).unwrap();
    assert!(out.contains("rows:       2"), "{out}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("messages "))
        .unwrap();
    assert!(line.contains("items min 2 / mean 3.50 / max 5"), "{line}");

    let bad = write_file(d.path(), "bad.jsonl", "{\"a\":1}\n{\"a\":\n");
    let err = inspect(&bad, 1).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl: line 2"), "{err}");
}
