//! Storage throughput on 1,000,000 small records / lines.
//!
//! Run: `cargo bench -p retort-store --bench io` (optionally `-- N` for another row
//! count). Prints rows/s for each path; numbers are recorded in docs/benchmarks.md.

use std::io::{BufWriter, Write};
use std::time::Instant;

use retort_core::{Provenance, Record};
use retort_store::{
    read_rows, records_to_batch, write_records_atomic, ExportFormat, Exporter, RecordReader,
};

fn record(i: usize) -> Record {
    Record {
        id: format!("{i:016x}"),
        instruction: Some(format!("Translate sentence number {i} into French.")),
        input: Some(String::new()),
        output: Some(format!("Traduisez la phrase numéro {i}.")),
        provenance: Provenance {
            step: "load".into(),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn report(what: &str, rows: usize, start: Instant) {
    let s = start.elapsed().as_secs_f64();
    println!(
        "{what:<46} {rows:>9} rows  {s:>7.3} s  {:>12.0} rows/s",
        rows as f64 / s
    );
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let records: Vec<Record> = (0..n).map(record).collect();

    let t = Instant::now();
    let mut rows = 0;
    for chunk in records.chunks(8192) {
        rows += records_to_batch(chunk).expect("batch").num_rows();
    }
    report("records_to_batch (8192/batch)", rows, t);

    let path = dir.path().join("records.parquet");
    let t = Instant::now();
    let written = write_records_atomic(&path, &records).expect("write");
    report(
        "records_to_batch + write parquet (zstd 1)",
        written as usize,
        t,
    );
    println!(
        "  file size: {:.1} MB",
        std::fs::metadata(&path).expect("stat").len() as f64 / 1e6
    );

    let t = Instant::now();
    let mut read = 0;
    for chunk in RecordReader::open(&path, 8192).expect("open") {
        read += chunk.expect("chunk").len();
    }
    report("read parquet + batch_to_records", read, t);
    assert_eq!(read, n);

    for (format, ext) in [
        (ExportFormat::Messages, "parquet"),
        (ExportFormat::Messages, "jsonl"),
        (ExportFormat::Alpaca, "jsonl"),
    ] {
        let p = dir.path().join(format!("export.{ext}"));
        let t = Instant::now();
        let mut ex = Exporter::create(&p, format).expect("create");
        for chunk in records.chunks(8192) {
            let skipped = ex.write(chunk).expect("write");
            assert!(skipped.is_empty());
        }
        let rows = ex.finish().expect("finish");
        report(
            &format!("export {} .{ext}", format.name()),
            rows as usize,
            t,
        );
    }
    drop(records);

    let jsonl = dir.path().join("seeds.jsonl");
    {
        let mut w = BufWriter::new(std::fs::File::create(&jsonl).expect("create"));
        for i in 0..n {
            writeln!(
                w,
                r#"{{"id":{i},"instruction":"Translate sentence number {i} into French.","input":"","output":"Traduisez la phrase numéro {i}."}}"#
            )
            .expect("write");
        }
        w.flush().expect("flush");
    }
    let size = std::fs::metadata(&jsonl).expect("stat").len();
    let t = Instant::now();
    let mut rows = 0;
    for row in read_rows(&jsonl, None).expect("open") {
        let row = row.expect("row");
        rows += usize::from(!row.fields.is_empty());
    }
    report("read_rows jsonl", rows, t);
    println!(
        "  {:.1} MB, {:.0} MB/s",
        size as f64 / 1e6,
        size as f64 / 1e6 / t.elapsed().as_secs_f64()
    );
    assert_eq!(rows, n);
}
