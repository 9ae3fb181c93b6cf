//! Fuzz tests of the row readers behind `load` (issue #13 item 7): random bytes and
//! corrupted valid files (byte flips, truncation, inserted and duplicated spans) in every
//! format — JSONL, JSON, CSV and Parquet (snappy, zstd and uncompressed, nested types) —
//! read through `read_rows` to the end. Opening or reading never panics or hangs; a bad
//! file or row is an `Err` whose message names the file.
//!
//! `RETORT_FUZZ_CASES` sets the cases per property (default 10,000); a long run:
//!
//! ```text
//! RETORT_FUZZ_CASES=1000000 cargo test --release -p retort-store --test fuzz
//! ```

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, RecordBatch,
    StringArray, StructArray,
};
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use proptest::prelude::*;
use proptest::sample::Index;
use retort_store::{read_rows, RowFormat};

#[path = "../../../tests/fuzz_config.rs"]
mod fuzz_config;
use fuzz_config::config;

const JSONL: &str = "{\"instruction\": \"Add\", \"instances\": [{\"input\": \"1 2\", \"output\": \"3\"}], \"n\": 1}\n\
{\"instruction\": \"写一首诗\", \"input\": \"\", \"output\": \"😀\\n\\u00e9\", \"score\": 7.5, \"ok\": true}\n\
\n\
{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\r\n\
{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}], \"big\": 18446744073709551615, \"neg\": -1e300}\n";

const JSON: &str = "[\n  {\"instruction\": \"Add\", \"output\": \"3\", \"tags\": [\"a\", \"b\"]},\n  {\"prompt\": \"p\", \"response\": \"r\", \"nested\": {\"x\": [1, [2, [3]]]}},\n  {\"text\": \"\\\"quoted\\\" \\\\ back\", \"n\": null}\n]\n";

const CSV: &str = "\u{feff}instruction,input,output\n\
Add,\"1, 2\",3\n\
\"multi\nline\",,\"say \"\"hi\"\"\"\n\
写一首诗,,😀\r\n\
short,row\n";

/// Valid Parquet files with the column types `load` meets: strings, integers, floats,
/// booleans, lists and structs, with nulls; one per compression.
fn parquet_files() -> Vec<Vec<u8>> {
    let tags = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), None, Some(3)]),
        None,
        Some(vec![]),
        Some(vec![Some(-7)]),
    ]);
    let meta = StructArray::from(vec![
        (
            Arc::new(Field::new("a", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![Some(1), None, Some(3), Some(4)])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("b", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec![
                Some("x"),
                Some("y"),
                None,
                Some("😀"),
            ])) as ArrayRef,
        ),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("instruction", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
        Field::new("x", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Int32, true))),
            true,
        ),
        Field::new(
            "meta",
            DataType::Struct(Fields::from(vec![
                Field::new("a", DataType::Int32, true),
                Field::new("b", DataType::Utf8, true),
            ])),
            true,
        ),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![
                Some("Add"),
                None,
                Some("写一首诗"),
                Some(""),
            ])),
            Arc::new(Int64Array::from(vec![
                Some(1),
                Some(i64::MIN),
                None,
                Some(i64::MAX),
            ])),
            Arc::new(Float64Array::from(vec![
                Some(0.5),
                None,
                Some(-0.0),
                Some(1e300),
            ])),
            Arc::new(BooleanArray::from(vec![
                Some(true),
                None,
                Some(false),
                Some(true),
            ])),
            Arc::new(tags),
            Arc::new(meta),
        ],
    )
    .unwrap();
    [
        Compression::SNAPPY,
        Compression::ZSTD(ZstdLevel::try_new(1).unwrap()),
        Compression::UNCOMPRESSED,
    ]
    .into_iter()
    .map(|c| {
        let props = WriterProperties::builder()
            .set_compression(c)
            .set_max_row_group_row_count(Some(2))
            .build();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema.clone(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        buf
    })
    .collect()
}

#[derive(Clone, Debug)]
enum Corruption {
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    /// Copy a span elsewhere (duplicated pages, repeated lines).
    Duplicate(Index, Index, Index),
    Delete(Index, Index),
}

fn corruption() -> impl Strategy<Value = Corruption> {
    let byte = prop_oneof![
        any::<u8>(),
        prop::sample::select(b"{}[]\",:\n\r\\0123456789-eE.\xff\x00".to_vec()),
    ];
    prop_oneof![
        4 => (any::<Index>(), byte).prop_map(|(i, b)| Corruption::Flip(i, b)),
        1 => any::<Index>().prop_map(Corruption::Truncate),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Corruption::Insert(i, b)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| Corruption::Duplicate(a, b, c)),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Corruption::Delete(a, b)),
    ]
}

fn corrupt(mut b: Vec<u8>, c: &Corruption) -> Vec<u8> {
    let n = b.len();
    match c {
        Corruption::Flip(i, v) => {
            if n > 0 {
                b[i.index(n)] = *v;
            }
        }
        Corruption::Truncate(i) => b.truncate(i.index(n + 1)),
        Corruption::Insert(i, v) => {
            let at = i.index(n + 1);
            b.splice(at..at, v.iter().copied());
        }
        Corruption::Duplicate(s, l, at) => {
            if n > 0 {
                let s = s.index(n);
                let e = s + l.index((n - s).min(256) + 1);
                let span = b[s..e].to_vec();
                let at = at.index(n + 1);
                b.splice(at..at, span);
            }
        }
        Corruption::Delete(s, l) => {
            if n > 0 {
                let s = s.index(n);
                let e = s + l.index((n - s).min(256) + 1);
                b.drain(s..e);
            }
        }
    }
    b
}

/// Write `bytes` as `name` and read every row; check errors are errors, not panics.
fn read_all(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    format: Option<RowFormat>,
) -> Result<(), TestCaseError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let shown = path.display().to_string();
    match read_rows(&path, format) {
        Ok(rows) => {
            let mut n = 0usize;
            for row in rows {
                n += 1;
                // A reader must end: no file here has more rows than bytes.
                prop_assert!(n <= bytes.len() + 1, "more rows than bytes");
                match row {
                    Ok(r) => prop_assert!(r.line >= 1),
                    Err(e) => {
                        let msg = e.to_string();
                        prop_assert!(!e.message.trim().is_empty(), "{:?}", e);
                        prop_assert!(msg.starts_with(&shown), "{}", msg);
                    }
                }
            }
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.trim().is_empty());
            prop_assert!(msg.contains(&shown), "{}", msg);
        }
    }
    Ok(())
}

thread_local! {
    static DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
    static PARQUET: Vec<Vec<u8>> = parquet_files();
}

const FORMATS: &[(&str, Option<RowFormat>)] = &[
    ("f.jsonl", None),
    ("f.json", None),
    ("f.csv", None),
    ("f.parquet", None),
    ("f.txt", Some(RowFormat::Jsonl)),
    ("f.txt", Some(RowFormat::Json)),
    ("f.txt", Some(RowFormat::Csv)),
    ("f.txt", Some(RowFormat::Parquet)),
    ("f.dat", None),
];

#[test]
fn valid_seed_files_read_cleanly() {
    DIR.with(|d| {
        for (name, bytes) in [
            ("ok.jsonl", JSONL.as_bytes().to_vec()),
            ("ok.json", JSON.as_bytes().to_vec()),
        ] {
            std::fs::write(d.path().join(name), &bytes).unwrap();
            let rows: Vec<_> = read_rows(&d.path().join(name), None).unwrap().collect();
            assert!(rows.iter().all(|r| r.is_ok()), "{name}: {rows:?}");
        }
        PARQUET.with(|files| {
            for f in files {
                std::fs::write(d.path().join("ok.parquet"), f).unwrap();
                let rows: Vec<_> = read_rows(&d.path().join("ok.parquet"), None)
                    .unwrap()
                    .collect();
                assert_eq!(rows.len(), 8);
                assert!(rows.iter().all(|r| r.is_ok()), "{rows:?}");
            }
        });
    });
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes in every format, by extension and by explicit format.
    #[test]
    fn fuzz_rows_random_bytes(
        bytes in prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..2_048),
            1 => prop::collection::vec(prop::sample::select(b"{}[]\",:\n\r\\ 0123456789aeE.-PAR1".to_vec()), 0..2_048),
            // Parquet's magic at both ends, garbage between.
            1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(|mut v| {
                let mut b = b"PAR1".to_vec();
                b.append(&mut v);
                b.extend_from_slice(b"PAR1");
                b
            }),
        ],
        format in any::<Index>(),
    ) {
        let (name, format) = FORMATS[format.index(FORMATS.len())];
        DIR.with(|d| read_all(d.path(), name, &bytes, format))?;
    }

    /// Valid files of every format with a few corruptions.
    #[test]
    fn fuzz_rows_corrupted_files(
        base in 0usize..6,
        corruptions in prop::collection::vec(corruption(), 1..4),
        by_extension in any::<bool>(),
    ) {
        let (name, format, bytes) = match base {
            0 => ("f.jsonl", RowFormat::Jsonl, JSONL.as_bytes().to_vec()),
            1 => ("f.json", RowFormat::Json, JSON.as_bytes().to_vec()),
            2 => ("f.csv", RowFormat::Csv, CSV.as_bytes().to_vec()),
            k => ("f.parquet", RowFormat::Parquet, PARQUET.with(|p| p[k - 3].clone())),
        };
        let bytes = corruptions.iter().fold(bytes, corrupt);
        DIR.with(|d| read_all(d.path(), name, &bytes, (!by_extension).then_some(format)))?;
    }
}
