//! Atomic Parquet writing and streaming Parquet reading of records, failures and
//! rejections, with custom key-value metadata (the runner keeps resume cursors there).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use retort_core::{Failure, Record, Rejection};

use crate::atomic::TempFile;
use crate::error::{arrow_err, io_err, pq_err};
use crate::schema::{
    batch_to_failures, batch_to_records, batch_to_rejections, failure_schema, failures_to_batch,
    record_schema, records_to_batch, rejection_schema, rejections_to_batch,
};
use crate::StoreError;

/// Rows per row group: small enough that a reader holds one group in memory comfortably,
/// large enough for good compression and few footers.
const ROW_GROUP_ROWS: usize = 64 * 1024;
/// In-progress row-group size (bytes, Arrow estimate) at which the writer flushes early,
/// so records with long texts do not pile up a huge group in memory.
const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;
/// Records converted per Arrow batch by the slice writers.
const WRITE_CHUNK: usize = 8 * 1024;
/// Key under which Arrow stores its own schema in Parquet metadata; hidden from
/// [`read_meta`] because it is not user metadata.
const ARROW_SCHEMA_KEY: &str = "ARROW:schema";

/// Leaf column names whose values repeat across rows (roles, model and step names,
/// score keys): these keep Parquet dictionary encoding.
const DICTIONARY_LEAVES: &[&str] = &[
    "role",
    "key",
    "teacher",
    "model",
    "step",
    "template",
    "chosen_model",
    "rejected_model",
];

/// What a Parquet file is for, which decides how it is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// A file users keep and ship (exports): zstd level 1.
    Deliverable,
    /// A file the runner writes and reads back (step parts, failures, rejections):
    /// Snappy, cheaper to write and read, somewhat larger.
    Checkpoint,
}

fn writer_props(schema: &Schema, meta: &[(&str, &str)], packing: Packing) -> WriterProperties {
    let kv: Vec<KeyValue> = meta
        .iter()
        .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string()))
        .collect();
    let mut b = WriterProperties::builder()
        // zstd level 1 compresses text about as fast as snappy and ~30% smaller.
        .set_compression(match packing {
            // zstd level 1 compresses text about as fast as snappy and ~30% smaller.
            Packing::Deliverable => {
                Compression::ZSTD(ZstdLevel::try_new(1).expect("level 1 is valid"))
            }
            // Snappy needs no codec context per column chunk; zstd's (allocated by C,
            // outside the Rust allocator) were 5% of a million-row run.
            Packing::Checkpoint => Compression::SNAPPY,
        })
        // Texts and ids are nearly all distinct: dictionary-encoding them hashed every
        // value only to fall back to plain pages (9% of a million-row run). Only the
        // repeating columns keep it.
        .set_dictionary_enabled(false)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata((!kv.is_empty()).then_some(kv));
    if let Ok(desc) = ArrowSchemaConverter::new().convert(schema) {
        for col in desc.columns() {
            if DICTIONARY_LEAVES.contains(&col.name()) {
                b = b.set_column_dictionary_enabled(col.path().clone(), true);
            }
        }
    }
    b.build()
}

/// A Parquet file being written under a temporary name; it appears at its final path
/// only on [`AtomicParquetWriter::finish`]. Dropping it unfinished deletes the
/// temporary file and leaves the final path untouched.
pub struct AtomicParquetWriter {
    temp: TempFile,
    writer: ArrowWriter<File>,
    rows: u64,
}

impl AtomicParquetWriter {
    /// Start writing `path` with `schema` and custom key-value metadata, compressed as a
    /// deliverable (see [`Packing`]).
    pub fn create(
        path: &Path,
        schema: SchemaRef,
        meta: &[(&str, &str)],
    ) -> Result<Self, StoreError> {
        Self::create_packed(path, schema, meta, Packing::Deliverable)
    }

    /// [`AtomicParquetWriter::create`] with an explicit [`Packing`].
    pub fn create_packed(
        path: &Path,
        schema: SchemaRef,
        meta: &[(&str, &str)],
        packing: Packing,
    ) -> Result<Self, StoreError> {
        let (temp, file) = TempFile::create(path)?;
        let writer = ArrowWriter::try_new(
            file,
            schema.clone(),
            Some(writer_props(&schema, meta, packing)),
        )
        .map_err(pq_err(path))?;
        Ok(AtomicParquetWriter {
            temp,
            writer,
            rows: 0,
        })
    }

    /// Append a batch. Row groups are flushed as they fill, so memory stays bounded by
    /// one row group however much is written.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), StoreError> {
        let path = self.temp.final_path().to_path_buf();
        self.writer.write(batch).map_err(pq_err(&path))?;
        self.rows += batch.num_rows() as u64;
        if self.writer.in_progress_size() >= ROW_GROUP_BYTES {
            self.writer.flush().map_err(pq_err(&path))?;
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The path the file will have once finished.
    pub fn path(&self) -> &Path {
        self.temp.final_path()
    }

    /// Write the footer, fsync, and rename into place. Returns the number of rows.
    pub fn finish(self) -> Result<u64, StoreError> {
        let path = self.temp.final_path().to_path_buf();
        let file = self.writer.into_inner().map_err(pq_err(&path))?;
        self.temp.commit(file)?;
        Ok(self.rows)
    }
}

/// Write `batches` (all of `schema`) to `path` atomically. Returns the number of rows.
pub fn write_parquet_atomic(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
) -> Result<u64, StoreError> {
    write_parquet_atomic_with_meta(path, schema, batches, &[])
}

/// [`write_parquet_atomic`] with custom key-value metadata (read back by [`read_meta`]).
pub fn write_parquet_atomic_with_meta(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
    meta: &[(&str, &str)],
) -> Result<u64, StoreError> {
    let mut w = AtomicParquetWriter::create(path, schema, meta)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()
}

fn write_items_atomic<T>(
    path: &Path,
    schema: SchemaRef,
    items: &[T],
    meta: &[(&str, &str)],
    to_batch: fn(&[T]) -> Result<RecordBatch, StoreError>,
) -> Result<u64, StoreError> {
    let mut w = AtomicParquetWriter::create_packed(path, schema, meta, Packing::Checkpoint)?;
    for chunk in items.chunks(WRITE_CHUNK) {
        let batch = to_batch(chunk).map_err(|e| e.in_file(path))?;
        w.write(&batch)?;
    }
    w.finish()
}

/// Write records to `path` atomically (see [`write_parquet_atomic`]).
pub fn write_records_atomic(path: &Path, records: &[Record]) -> Result<u64, StoreError> {
    write_records_atomic_with_meta(path, records, &[])
}

/// Write records with custom key-value metadata, e.g. a resume cursor.
pub fn write_records_atomic_with_meta(
    path: &Path,
    records: &[Record],
    meta: &[(&str, &str)],
) -> Result<u64, StoreError> {
    write_items_atomic(path, record_schema(), records, meta, records_to_batch)
}

/// Write failures to `path` atomically.
pub fn write_failures_atomic(path: &Path, failures: &[Failure]) -> Result<u64, StoreError> {
    write_items_atomic(path, failure_schema(), failures, &[], failures_to_batch)
}

/// Write rejections to `path` atomically.
pub fn write_rejections_atomic(path: &Path, rejections: &[Rejection]) -> Result<u64, StoreError> {
    write_items_atomic(
        path,
        rejection_schema(),
        rejections,
        &[],
        rejections_to_batch,
    )
}

fn open_batches(path: &Path, batch_size: usize) -> Result<ParquetRecordBatchReader, StoreError> {
    let file = File::open(path).map_err(io_err(path))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(pq_err(path))?
        .with_batch_size(batch_size.max(1))
        .build()
        .map_err(pq_err(path))
}

/// Streams a Parquet file as chunks of `T`, one Arrow batch at a time, so memory is
/// bounded by the chunk size (plus one row group's pages), not by the file.
pub struct ChunkReader<T> {
    path: PathBuf,
    inner: ParquetRecordBatchReader,
    convert: fn(&RecordBatch) -> Result<Vec<T>, StoreError>,
    failed: bool,
}

/// Streaming reader of a records file: yields `Vec<Record>` chunks of at most the
/// requested size.
pub type RecordReader = ChunkReader<Record>;

impl RecordReader {
    /// Open a records file; chunks hold at most `chunk_size` records.
    pub fn open(path: &Path, chunk_size: usize) -> Result<Self, StoreError> {
        Ok(ChunkReader {
            path: path.to_path_buf(),
            inner: open_batches(path, chunk_size)?,
            convert: batch_to_records,
            failed: false,
        })
    }
}

impl ChunkReader<Failure> {
    /// Open a failures file; chunks hold at most `chunk_size` failures.
    pub fn open_failures(path: &Path, chunk_size: usize) -> Result<Self, StoreError> {
        Ok(ChunkReader {
            path: path.to_path_buf(),
            inner: open_batches(path, chunk_size)?,
            convert: batch_to_failures,
            failed: false,
        })
    }
}

impl<T> Iterator for ChunkReader<T> {
    type Item = Result<Vec<T>, StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = match self.inner.next()? {
            Ok(batch) => (self.convert)(&batch).map_err(|e| e.in_file(&self.path)),
            Err(e) => Err(arrow_err(&self.path)(e)),
        };
        // A decode error leaves the reader in an unknown position; stop rather than
        // yield rows that might skip or repeat.
        self.failed = item.is_err();
        Some(item)
    }
}

fn read_all<T>(
    path: &Path,
    convert: fn(&RecordBatch) -> Result<Vec<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for batch in open_batches(path, 8192)? {
        let batch = batch.map_err(arrow_err(path))?;
        out.extend(convert(&batch).map_err(|e| e.in_file(path))?);
    }
    Ok(out)
}

/// Read a whole records file.
pub fn read_records(path: &Path) -> Result<Vec<Record>, StoreError> {
    read_all(path, batch_to_records)
}

/// Read a whole failures file.
pub fn read_failures(path: &Path) -> Result<Vec<Failure>, StoreError> {
    read_all(path, batch_to_failures)
}

/// Read a whole rejections file.
pub fn read_rejections(path: &Path) -> Result<Vec<Rejection>, StoreError> {
    read_all(path, batch_to_rejections)
}

fn open_meta(path: &Path) -> Result<SerializedFileReader<File>, StoreError> {
    let file = File::open(path).map_err(io_err(path))?;
    SerializedFileReader::new(file).map_err(pq_err(path))
}

/// Number of rows of a Parquet file, from its footer (no data is read).
pub fn count_rows(path: &Path) -> Result<u64, StoreError> {
    let r = open_meta(path)?;
    let n = r.metadata().file_metadata().num_rows();
    u64::try_from(n).map_err(|_| StoreError::Content {
        path: path.to_path_buf(),
        message: format!("footer claims a negative row count ({n}); the file is corrupt"),
    })
}

/// The custom key-value metadata of a Parquet file (Arrow's own `ARROW:schema` entry
/// is left out). Keys without a value map to an empty string.
pub fn read_meta(path: &Path) -> Result<BTreeMap<String, String>, StoreError> {
    let r = open_meta(path)?;
    Ok(r.metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter(|kv| kv.key != ARROW_SCHEMA_KEY)
                .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default())
}
