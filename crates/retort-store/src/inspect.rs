//! `retort inspect`: a text summary of a Parquet or JSONL file — schema, row count,
//! per-column statistics and the first rows as pretty JSON.

use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{arrow_err, io_err, pq_err};
use crate::rows::{read_rows, RowFormat};
use crate::values::{self, Mode};
use crate::StoreError;

/// Describe `path` (`.parquet` or `.jsonl`): schema, row count, per-column statistics
/// (nulls; string lengths in characters; numeric min/mean/max; list lengths) and the
/// first `show_rows` rows as pretty-printed JSON. Reads the file once, streaming.
pub fn inspect(path: &Path, show_rows: usize) -> Result<String, StoreError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "parquet" | "pq" => inspect_parquet(path, show_rows),
        "jsonl" | "ndjson" => inspect_jsonl(path, show_rows),
        _ => Err(StoreError::UnknownExtension {
            path: path.to_path_buf(),
            expected: "inspect reads .parquet and .jsonl files",
        }),
    }
}

fn inspect_parquet(path: &Path, show_rows: usize) -> Result<String, StoreError> {
    let file = File::open(path).map_err(io_err(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(pq_err(path))?;
    let meta = builder.metadata().clone();
    let schema = builder.schema().clone();
    let reader = builder
        .with_batch_size(8192)
        .build()
        .map_err(pq_err(path))?;
    let mut header = String::new();
    let fm = meta.file_metadata();
    let _ = writeln!(header, "row groups: {}", meta.num_row_groups());
    if let Some(kvs) = fm.key_value_metadata() {
        for kv in kvs.iter().filter(|kv| kv.key != "ARROW:schema") {
            let _ = writeln!(
                header,
                "metadata:   {} = {}",
                kv.key,
                kv.value.as_deref().unwrap_or("")
            );
        }
    }
    let batches = reader.map(|b| b.map_err(arrow_err(path)));
    summarize(path, "parquet", &header, schema, batches, show_rows)
}

fn inspect_jsonl(path: &Path, show_rows: usize) -> Result<String, StoreError> {
    let open = || -> Result<BufReader<File>, StoreError> {
        Ok(BufReader::with_capacity(
            1 << 20,
            File::open(path).map_err(io_err(path))?,
        ))
    };
    let inferred = arrow::json::reader::infer_json_schema(open()?, None);
    let schema = match inferred {
        Ok((s, _)) => Arc::new(s),
        Err(e) => return Err(first_bad_line(path).unwrap_or_else(|| arrow_err(path)(e))),
    };
    let reader = arrow::json::ReaderBuilder::new(schema.clone())
        .with_batch_size(8192)
        .build(open()?)
        .map_err(arrow_err(path))?;
    let batches =
        reader.map(|b| b.map_err(|e| first_bad_line(path).unwrap_or_else(|| arrow_err(path)(e))));
    summarize(path, "jsonl", "", schema, batches, show_rows)
}

/// Arrow's JSON errors carry no line number; rescan with the row reader to name the line.
fn first_bad_line(path: &Path) -> Option<StoreError> {
    read_rows(path, Some(RowFormat::Jsonl))
        .ok()?
        .find_map(|r| r.err())
        .map(StoreError::from)
}

#[derive(Default)]
struct Stat {
    name: String,
    nulls: u64,
    /// Lengths (chars for strings, items for lists) or numeric values.
    n: u64,
    sum: f64,
    min: f64,
    max: f64,
    kind: Kind,
}

#[derive(Default, PartialEq)]
enum Kind {
    #[default]
    None,
    Str,
    Num,
    List,
    Bool,
}

impl Stat {
    fn add(&mut self, v: f64) {
        if self.n == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.n += 1;
        self.sum += v;
    }
    fn describe(&self) -> String {
        if self.n == 0 {
            return String::new();
        }
        let mean = self.sum / self.n as f64;
        match self.kind {
            Kind::Str => format!(
                "length min {} / mean {:.1} / max {}",
                self.min, mean, self.max
            ),
            Kind::List => format!(
                "items min {} / mean {:.2} / max {}",
                self.min, mean, self.max
            ),
            Kind::Num => format!("min {} / mean {:.4} / max {}", self.min, mean, self.max),
            Kind::Bool => format!("true {:.1}%", mean * 100.0),
            Kind::None => String::new(),
        }
    }
}

/// Walk `a` (and the fields of structs, as `parent.child`) adding to `stats`, which is
/// created on the first batch in a fixed order.
fn collect(a: &dyn Array, name: &str, stats: &mut Vec<Stat>, idx: &mut usize, first: bool) {
    if first {
        stats.push(Stat {
            name: name.to_string(),
            ..Default::default()
        });
    }
    let s = &mut stats[*idx];
    *idx += 1;
    s.nulls += a.null_count() as u64;
    let valid = |i: usize| a.is_valid(i);
    match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            s.kind = Kind::Str;
            let arr = cast(a, &DataType::Utf8).ok();
            if let Some(arr) = arr {
                let sa = arr.as_string::<i32>();
                for i in (0..sa.len()).filter(|i| valid(*i)) {
                    s.add(sa.value(i).chars().count() as f64);
                }
            }
        }
        DataType::List(_) => {
            s.kind = Kind::List;
            let l = a.as_list::<i32>();
            let o = l.value_offsets();
            for i in (0..l.len()).filter(|i| valid(*i)) {
                s.add((o[i + 1] - o[i]) as f64);
            }
        }
        DataType::LargeList(_) => {
            s.kind = Kind::List;
            let l = a.as_list::<i64>();
            let o = l.value_offsets();
            for i in (0..l.len()).filter(|i| valid(*i)) {
                s.add((o[i + 1] - o[i]) as f64);
            }
        }
        DataType::Boolean => {
            s.kind = Kind::Bool;
            let b = a.as_boolean();
            for i in (0..b.len()).filter(|i| valid(*i)) {
                s.add(if b.value(i) { 1.0 } else { 0.0 });
            }
        }
        DataType::Struct(fields) => {
            let st = a.as_struct();
            for (f, c) in fields.iter().zip(st.columns()) {
                collect(
                    c.as_ref(),
                    &format!("{name}.{}", f.name()),
                    stats,
                    idx,
                    first,
                );
            }
        }
        t if t.is_numeric() => {
            s.kind = Kind::Num;
            if let Ok(arr) = cast(a, &DataType::Float64) {
                let f = arr.as_primitive::<Float64Type>();
                for i in (0..f.len()).filter(|i| valid(*i)) {
                    let v = f.value(i);
                    if v.is_finite() {
                        s.add(v);
                    }
                }
            }
        }
        _ => {}
    }
}

fn summarize(
    path: &Path,
    format: &str,
    header: &str,
    schema: SchemaRef,
    batches: impl Iterator<Item = Result<RecordBatch, StoreError>>,
    show_rows: usize,
) -> Result<String, StoreError> {
    let mut stats: Vec<Stat> = Vec::new();
    let mut rows: u64 = 0;
    let mut shown: Vec<String> = Vec::new();
    let mut first = true;
    for batch in batches {
        let batch = batch?;
        let mut idx = 0;
        for (f, c) in schema.fields().iter().zip(batch.columns()) {
            collect(c.as_ref(), f.name(), &mut stats, &mut idx, first);
        }
        first = false;
        for i in 0..batch.num_rows() {
            if shown.len() >= show_rows {
                break;
            }
            let mut obj = serde_json::Map::new();
            for (f, c) in schema.fields().iter().zip(batch.columns()) {
                let v = values::value(c.as_ref(), i, Mode::Display).map_err(|m| {
                    StoreError::Content {
                        path: path.to_path_buf(),
                        message: format!("column `{}`: {m}", f.name()),
                    }
                })?;
                obj.insert(f.name().clone(), v);
            }
            shown.push(
                serde_json::to_string_pretty(&serde_json::Value::Object(obj))
                    .expect("a JSON value always serialises"),
            );
        }
        rows += batch.num_rows() as u64;
    }
    if first {
        // No batches at all: still list the columns.
        for f in schema.fields() {
            stats.push(Stat {
                name: f.name().clone(),
                ..Default::default()
            });
        }
    }

    let mut out = String::new();
    let _ = writeln!(out, "file:       {}", path.display());
    let _ = writeln!(out, "format:     {format}");
    let _ = writeln!(out, "rows:       {rows}");
    out.push_str(header);
    let _ = writeln!(out, "\nschema:");
    for f in schema.fields() {
        let _ = writeln!(
            out,
            "  {}: {}{}",
            f.name(),
            type_name(f.data_type()),
            if f.is_nullable() { "" } else { " not null" }
        );
    }
    let _ = writeln!(out, "\ncolumns:");
    let w = stats.iter().map(|s| s.name.len()).max().unwrap_or(6).max(6);
    let _ = writeln!(out, "  {:<w$}  {:>8}  stats", "column", "nulls");
    for s in &stats {
        let _ = writeln!(out, "  {:<w$}  {:>8}  {}", s.name, s.nulls, s.describe());
    }
    let _ = writeln!(out, "\nfirst {} rows:", shown.len());
    for r in &shown {
        let _ = writeln!(out, "{r}");
    }
    Ok(out)
}

/// A compact type name in pyarrow's spelling (`string`, `list<struct<role: string>>`).
pub(crate) fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "float".into(),
        DataType::Boolean => "bool".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string().to_lowercase(),
    }
}
