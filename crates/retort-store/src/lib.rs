//! retort's storage edge: the Arrow schemas of records, failures and rejections; atomic
//! Parquet writing and streaming reading; a generic row reader for input files; export
//! to the formats training tools read (TRL, Alpaca, ShareGPT, OpenAI messages); and
//! file inspection.
//!
//! Nested chat data stays as Rust structs inside steps; this crate is the only place
//! where records become Arrow (see `docs/formats.md` for every schema).

#![warn(missing_docs)]

mod atomic;
mod build;
mod error;
pub mod export;
pub mod inspect;
pub mod parquet_io;
pub mod rows;
pub mod run_dir;
pub mod schema;
mod values;

pub use atomic::{is_temp_file, remove_temp_files, remove_temp_files_under, write_bytes_atomic};
pub use error::{BoxError, Position, RowError, StoreError};
pub use export::{
    prompt_id, Container, ExportFormat, ExportOptions, Exporter, KeepColumn, Reasoning, Skipped,
};
pub use inspect::inspect;
pub use parquet_io::{
    count_rows, read_failures, read_meta, read_records, read_rejections, write_failures_atomic,
    write_parquet_atomic, write_parquet_atomic_with_meta, write_records_atomic,
    write_records_atomic_with_meta, write_rejections_atomic, AtomicParquetWriter, ChunkReader,
    Packing, RecordReader,
};
pub use rows::{read_rows, Row, RowFormat, RowIter};
pub use run_dir::{Manifest, RunDir, StepFileState, StepPaths, StepReport, MANIFEST_VERSION};
pub use schema::{
    batch_to_failures, batch_to_records, batch_to_rejections, failure_schema, failures_to_batch,
    record_schema, records_to_batch, rejection_schema, rejections_to_batch,
};
