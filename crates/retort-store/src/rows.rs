//! Generic row reading for the `load` step: JSONL, JSON arrays, CSV and Parquet of any
//! schema, each row as a JSON object with its position in the file.
//!
//! JSONL, CSV and Parquet are streamed (memory does not grow with the file); a JSON array
//! is parsed whole, as the format requires. A bad row is an `Err` item naming the file and
//! line; iteration continues with the next row where the format allows it (JSONL, CSV),
//! so a caller can either stop at the first error or send bad rows to failures.
//!
//! Size: ~670 lines of code plus ~80 of tests: one row reader per file format behind
//! one interface, with the line/position bookkeeping errors name.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use serde_json::{Map, Value};

use crate::error::{io_err, pq_err};
use crate::error::{Position, RowError};
use crate::values::{self, Mode};
use crate::StoreError;

/// Input file formats the row reader understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// One JSON array of objects (`.json`).
    Json,
    /// Comma-separated values with a header line (`.csv`); every field is a string.
    Csv,
    /// Parquet of any schema (`.parquet`, `.pq`).
    Parquet,
}

impl RowFormat {
    /// The format named in a pipeline file: `jsonl`, `json`, `csv` or `parquet`.
    pub fn from_name(name: &str) -> Option<RowFormat> {
        match name.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(RowFormat::Jsonl),
            "json" => Some(RowFormat::Json),
            "csv" => Some(RowFormat::Csv),
            "parquet" => Some(RowFormat::Parquet),
            _ => None,
        }
    }

    /// The format implied by a file's extension. `.json` files are sniffed: many
    /// datasets named `.json` are really JSON Lines, so a file whose first non-blank
    /// byte is `{` is read as JSONL, one starting with `[` as a JSON array.
    pub fn from_path(path: &Path) -> Result<RowFormat, StoreError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "jsonl" | "ndjson" => Ok(RowFormat::Jsonl),
            "csv" => Ok(RowFormat::Csv),
            "parquet" | "pq" => Ok(RowFormat::Parquet),
            "json" => sniff_json(path),
            _ => Err(StoreError::UnknownExtension {
                path: path.to_path_buf(),
                expected: "use .jsonl, .json, .csv or .parquet, or set the format explicitly",
            }),
        }
    }
}

fn sniff_json(path: &Path) -> Result<RowFormat, StoreError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut buf = [0u8; 4096];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            // An empty file holds no rows either way.
            return Ok(RowFormat::Json);
        }
        let head = strip_bom(&buf[..n]);
        if let Some(b) = head.iter().find(|b| !b.is_ascii_whitespace()) {
            return Ok(if *b == b'{' {
                RowFormat::Jsonl
            } else {
                RowFormat::Json
            });
        }
    }
}

fn strip_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b)
}

/// One input row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line of the row in the file for JSONL and CSV (the CSV header is line 1),
    /// 1-based row number for JSON arrays and Parquet.
    pub line: usize,
    /// The row's fields. CSV fields are strings exactly as written.
    pub fields: Map<String, Value>,
}

/// Iterator over a file's rows; see [`read_rows`].
pub struct RowIter {
    inner: Inner,
}

enum Inner {
    Jsonl(JsonlIter),
    Json(std::iter::Enumerate<std::vec::IntoIter<Value>>, PathBuf),
    Csv(CsvIter),
    Parquet(ParquetRows),
    Done(Option<Box<RowError>>),
}

/// Open `path` for row reading. `format` overrides the guess from the extension.
pub fn read_rows(path: &Path, format: Option<RowFormat>) -> Result<RowIter, StoreError> {
    let format = match format {
        Some(f) => f,
        None => RowFormat::from_path(path)?,
    };
    let inner = match format {
        RowFormat::Jsonl => Inner::Jsonl(JsonlIter::open(path)?),
        RowFormat::Json => match read_json_array(path)? {
            Ok(items) => Inner::Json(items.into_iter().enumerate(), path.to_path_buf()),
            Err(e) => Inner::Done(Some(Box::new(e))),
        },
        RowFormat::Csv => Inner::Csv(CsvIter::open(path)?),
        RowFormat::Parquet => Inner::Parquet(ParquetRows::open(path)?),
    };
    Ok(RowIter { inner })
}

impl Iterator for RowIter {
    type Item = Result<Row, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Jsonl(it) => it.next(),
            Inner::Json(it, path) => {
                let (i, v) = it.next()?;
                Some(match v {
                    Value::Object(fields) => Ok(Row {
                        line: i + 1,
                        fields,
                    }),
                    other => Err(RowError {
                        path: path.clone(),
                        line: i + 1,
                        position: Position::Row,
                        message: format!("expected a JSON object, found {}", kind_of(&other)),
                        raw: other.to_string(),
                    }),
                })
            }
            Inner::Csv(it) => it.next(),
            Inner::Parquet(it) => it.next(),
            Inner::Done(e) => e.take().map(|e| Err(*e)),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------- JSON array

/// Parse a whole JSON array. The outer `Err` is an I/O error; the inner one a syntax
/// error, which is reported as a row error with the line serde_json found it on.
fn read_json_array(path: &Path) -> Result<Result<Vec<Value>, RowError>, StoreError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let body = strip_bom(&bytes);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Ok(Vec::new()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => Ok(Ok(items)),
        Ok(other) => Ok(Err(RowError {
            path: path.to_path_buf(),
            line: 1,
            position: Position::Line,
            message: format!(
                "expected a JSON array of objects, found {}; for one object per line use a .jsonl file or format = \"jsonl\"",
                kind_of(&other)
            ),
            raw: String::new(),
        })),
        Err(e) => {
            let raw = nth_line(body, e.line());
            Ok(Err(RowError {
                path: path.to_path_buf(),
                line: e.line(),
                position: Position::Line,
                message: format!("invalid JSON at column {}: {}", e.column(), strip_pos(&e)),
                raw,
            }))
        }
    }
}

fn nth_line(body: &[u8], line: usize) -> String {
    body.split(|b| *b == b'\n')
        .nth(line.saturating_sub(1))
        .map(|l| {
            String::from_utf8_lossy(l)
                .trim_end_matches('\r')
                .to_string()
        })
        .unwrap_or_default()
}

/// serde_json's message without its " at line L column C" suffix (we report position
/// ourselves, relative to the file rather than the parsed slice).
fn strip_pos(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

// ---------------------------------------------------------------- JSONL

/// Bytes read from the file per refill.
const JSONL_CHUNK: usize = 1 << 20;

struct JsonlIter {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`.
    pos: usize,
    /// End of valid data in `buf`.
    end: usize,
    eof: bool,
    line: usize,
    first: bool,
    failed: bool,
}

impl JsonlIter {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(io_err(path))?;
        Ok(JsonlIter {
            path: path.to_path_buf(),
            file,
            buf: vec![0; JSONL_CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            line: 0,
            first: true,
            failed: false,
        })
    }

    /// Move unconsumed bytes to the front and read more; grows the buffer when one line
    /// is longer than it.
    fn refill(&mut self) -> std::io::Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.end == self.buf.len() {
            let n = self.buf.len() * 2;
            self.buf.resize(n, 0);
        }
        loop {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The next line (without its terminator) as a range in `buf`, or `None` at EOF.
    fn next_line(&mut self) -> std::io::Result<Option<(usize, usize)>> {
        loop {
            if let Some(k) = memchr::memchr(b'\n', &self.buf[self.pos..self.end]) {
                let (s, e) = (self.pos, self.pos + k);
                self.pos = e + 1;
                return Ok(Some((s, e)));
            }
            if self.eof {
                if self.pos < self.end {
                    let (s, e) = (self.pos, self.end);
                    self.pos = self.end;
                    return Ok(Some((s, e)));
                }
                return Ok(None);
            }
            self.refill()?;
        }
    }

    fn next(&mut self) -> Option<Result<Row, RowError>> {
        if self.failed {
            return None;
        }
        loop {
            let (mut s, mut e) = match self.next_line() {
                Ok(Some(r)) => r,
                Ok(None) => return None,
                Err(err) => {
                    self.failed = true;
                    return Some(Err(RowError {
                        path: self.path.clone(),
                        line: self.line + 1,
                        position: Position::Line,
                        message: format!("read error: {err}"),
                        raw: String::new(),
                    }));
                }
            };
            self.line += 1;
            if self.first {
                self.first = false;
                if self.buf[s..e].starts_with(b"\xEF\xBB\xBF") {
                    s += 3;
                }
            }
            if e > s && self.buf[e - 1] == b'\r' {
                e -= 1;
            }
            let bytes = &self.buf[s..e];
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(self.parse(bytes));
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<Row, RowError> {
        let err = |message: String| RowError {
            path: self.path.clone(),
            line: self.line,
            position: Position::Line,
            message,
            raw: String::from_utf8_lossy(bytes).into_owned(),
        };
        // Parsing straight into a map is the fast path; only on failure do we parse
        // again to tell "not JSON" from "JSON but not an object".
        match serde_json::from_slice::<Map<String, Value>>(bytes) {
            Ok(fields) => Ok(Row {
                line: self.line,
                fields,
            }),
            Err(e) => match serde_json::from_slice::<Value>(bytes) {
                Ok(v) => Err(err(format!(
                    "expected a JSON object, found {}",
                    kind_of(&v)
                ))),
                Err(e2) if e2.is_data() || e2.is_syntax() || e2.is_eof() => Err(err(format!(
                    "invalid JSON at column {}: {}",
                    e2.column(),
                    strip_pos(&e2)
                ))),
                Err(_) => Err(err(format!("invalid JSON: {}", strip_pos(&e)))),
            },
        }
    }
}

// ---------------------------------------------------------------- CSV

struct CsvIter {
    path: PathBuf,
    reader: csv::Reader<File>,
    headers: Vec<String>,
    record: csv::ByteRecord,
    failed: bool,
}

impl CsvIter {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(io_err(path))?;
        // `flexible` lets us report a short or long record ourselves, with its content.
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(file);
        let headers = reader.byte_headers().map_err(|e| csv_file_err(path, e))?;
        let mut names = Vec::with_capacity(headers.len());
        for (i, h) in headers.iter().enumerate() {
            let name = std::str::from_utf8(h).map_err(|_| {
                StoreError::from(RowError {
                    path: path.to_path_buf(),
                    line: 1,
                    position: Position::Line,
                    message: format!("header column {} is not valid UTF-8", i + 1),
                    raw: String::from_utf8_lossy(h).into_owned(),
                })
            })?;
            let name = name.strip_prefix('\u{feff}').unwrap_or(name).to_string();
            if names.contains(&name) {
                return Err(RowError {
                    path: path.to_path_buf(),
                    line: 1,
                    position: Position::Line,
                    message: format!(
                        "header names column `{name}` twice; column names must be unique"
                    ),
                    raw: String::new(),
                }
                .into());
            }
            names.push(name);
        }
        Ok(CsvIter {
            path: path.to_path_buf(),
            reader,
            headers: names,
            record: csv::ByteRecord::new(),
            failed: false,
        })
    }

    fn next(&mut self) -> Option<Result<Row, RowError>> {
        if self.failed {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self
                    .record
                    .position()
                    .map(|p| p.line() as usize)
                    .unwrap_or(0);
                Some(self.row(line))
            }
            Err(e) => {
                // Only I/O errors reach here (flexible mode, byte records); the reader
                // cannot continue past them.
                self.failed = true;
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                Some(Err(RowError {
                    path: self.path.clone(),
                    line,
                    position: Position::Line,
                    message: format!("cannot read CSV: {e}"),
                    raw: String::new(),
                }))
            }
        }
    }

    fn raw(&self) -> String {
        self.record
            .iter()
            .map(String::from_utf8_lossy)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn row(&self, line: usize) -> Result<Row, RowError> {
        let err = |message: String| RowError {
            path: self.path.clone(),
            line,
            position: Position::Line,
            message,
            raw: self.raw(),
        };
        if self.record.len() != self.headers.len() {
            return Err(err(format!(
                "has {} fields but the header has {}; quote fields that contain commas",
                self.record.len(),
                self.headers.len()
            )));
        }
        let mut fields = Map::new();
        for (name, bytes) in self.headers.iter().zip(self.record.iter()) {
            let s = std::str::from_utf8(bytes)
                .map_err(|_| err(format!("field `{name}` is not valid UTF-8")))?;
            fields.insert(name.clone(), Value::String(s.to_string()));
        }
        Ok(Row { line, fields })
    }
}

fn csv_file_err(path: &Path, e: csv::Error) -> StoreError {
    StoreError::from(RowError {
        path: path.to_path_buf(),
        line: e.position().map(|p| p.line() as usize).unwrap_or(1),
        position: Position::Line,
        message: format!("cannot read the CSV header: {e}"),
        raw: String::new(),
    })
}

// ---------------------------------------------------------------- Parquet

struct ParquetRows {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    batch: Option<RecordBatch>,
    /// Next row within `batch`.
    i: usize,
    /// Rows yielded before `batch`.
    base: usize,
    failed: bool,
}

/// Call into the Parquet decoder, turning a panic into an error message. The `parquet`
/// crate asserts on some corrupt inputs (a negative column offset in the footer, a
/// dictionary-encoded page without a dictionary page) instead of returning an error;
/// inside `load`'s CPU pool such a panic would abort the whole process.
fn decoder_guard<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let why = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown error".into());
        format!("the file is corrupt (the Parquet decoder failed: {why})")
    })
}

/// The Parquet file as the decoder sees it: a `File` that is strict about its end.
struct ParquetFile {
    file: File,
    len: u64,
}

impl Length for ParquetFile {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for ParquetFile {
    type T = BufReader<NoReadPastEnd>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let mut f = self.file.try_clone()?;
        f.seek(SeekFrom::Start(start))?;
        Ok(BufReader::new(NoReadPastEnd(f)))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        // A corrupt footer can name any range; do not allocate for one the file lacks.
        if start
            .checked_add(length as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at offset {start} lie past the end of the file ({} bytes)",
                self.len
            )));
        }
        self.file.get_bytes(start, length)
    }
}

/// A reader that fails at the end of the file instead of returning no bytes. parquet's
/// Thrift decoder skips fields with an `io::copy` that stops quietly there, so a corrupt
/// page header declaring 2^31 elements made 2^31 reads at the end of the file (minutes)
/// before failing; the decoder reads exact lengths otherwise, so this changes nothing for
/// a sound file.
struct NoReadPastEnd(File);

impl Read for NoReadPastEnd {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            ));
        }
        Ok(n)
    }
}

impl ParquetRows {
    fn open(path: &Path) -> Result<Self, StoreError> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let file = ParquetFile { file, len };
        let reader = decoder_guard(|| {
            ParquetRecordBatchReaderBuilder::try_new(file)?
                .with_batch_size(4096)
                .build()
        })
        .map_err(|message| StoreError::Content {
            path: path.to_path_buf(),
            message,
        })?
        .map_err(pq_err(path))?;
        Ok(ParquetRows {
            path: path.to_path_buf(),
            reader,
            batch: None,
            i: 0,
            base: 0,
            failed: false,
        })
    }

    fn next(&mut self) -> Option<Result<Row, RowError>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(b) = &self.batch {
                if self.i < b.num_rows() {
                    let i = self.i;
                    self.i += 1;
                    return Some(self.row(b, i));
                }
                self.base += b.num_rows();
                self.batch = None;
                self.i = 0;
            }
            let next = match decoder_guard(|| self.reader.next()) {
                Ok(next) => next?.map_err(|e| e.to_string()),
                Err(panicked) => Err(panicked),
            };
            match next {
                Ok(b) => self.batch = Some(b),
                Err(e) => {
                    self.failed = true;
                    return Some(Err(RowError {
                        path: self.path.clone(),
                        line: self.base + 1,
                        position: Position::Row,
                        message: format!("cannot decode Parquet data: {e}"),
                        raw: String::new(),
                    }));
                }
            }
        }
    }

    fn row(&self, b: &RecordBatch, i: usize) -> Result<Row, RowError> {
        let line = self.base + i + 1;
        let mut fields = Map::new();
        for (f, col) in b.schema_ref().fields().iter().zip(b.columns()) {
            let v = values::value(col.as_ref(), i, Mode::Strict).map_err(|m| RowError {
                path: self.path.clone(),
                line,
                position: Position::Row,
                message: format!("column `{}`: {m}", f.name()),
                raw: String::new(),
            })?;
            fields.insert(f.name().clone(), v);
        }
        Ok(Row { line, fields })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;

    fn small_parquet() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("instruction", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("Add"), None, Some("写")])),
                Arc::new(Int64Array::from(vec![Some(1), Some(-2), None])),
            ],
        )
        .unwrap();
        let mut buf = Vec::new();
        let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        buf
    }

    #[test]
    fn corrupt_parquet_page_header_fails_fast() {
        // Found by the fuzz tests: these 8 bytes inserted before a page header declare a
        // Thrift field with ~800 million elements. parquet's decoder skips each with an
        // `io::copy` that stops quietly at the end of the file, so it made one read per
        // element at the end of the file (4 s here; up to 2^31 elements, minutes).
        let good = small_parquet();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        for at in 0..good.len() {
            let mut bytes = good.clone();
            bytes.splice(at..at, [0u8, 0, 251, 128, 128, 128, 3, 209]);
            std::fs::write(&path, &bytes).unwrap();
            let t = std::time::Instant::now();
            if let Ok(rows) = read_rows(&path, None) {
                rows.for_each(drop);
            }
            assert!(
                t.elapsed().as_millis() < 1_000,
                "at {at}: {:?}",
                t.elapsed()
            );
        }
    }

    #[test]
    fn corrupt_parquet_footer_is_an_error_not_a_panic() {
        // Found by the fuzz tests: one byte of the footer set to 0x01 made a column
        // chunk's offset negative, and the `parquet` crate asserts on that ("column start
        // and length should not be negative"), a panic that aborted `load`'s CPU pool.
        let good = small_parquet();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.parquet");
        let footer = good.len().saturating_sub(400);
        for at in footer..good.len() {
            for b in [0x01, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[at] = b;
                std::fs::write(&path, &bytes).unwrap();
                if let Ok(rows) = read_rows(&path, None) {
                    for r in rows {
                        if let Err(e) = r {
                            assert!(!e.message.is_empty());
                        }
                    }
                }
            }
        }
    }
}
