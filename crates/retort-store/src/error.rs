//! The error types of the storage edge: [`StoreError`] and the row-level [`RowError`] it
//! wraps. Every variant that touches a file names it, so a message printed by the CLI
//! tells the user where to look.

use std::fmt;
use std::path::{Path, PathBuf};

/// Any error, as the source of one that says where it happened.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An error reading or writing retort data. Messages name the file when one is involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system error on a file or directory.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The Parquet library could not read or write a file.
    #[error("{}: parquet: {source}", path.display())]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// The underlying error.
        source: parquet::errors::ParquetError,
    },
    /// An Arrow operation on a file's data failed.
    #[error("{}: arrow: {source}", path.display())]
    Arrow {
        /// The file whose data was being converted.
        path: PathBuf,
        /// The underlying error.
        source: arrow::error::ArrowError,
    },
    /// A file's content does not have the expected shape (wrong column type, missing column).
    #[error("{}: {message}", path.display())]
    Content {
        /// The file.
        path: PathBuf,
        /// What is wrong and, where possible, what to do.
        message: String,
    },
    /// An in-memory batch does not match retort's schema, or a value cannot be stored
    /// (e.g. more than 2 GiB of text in one batch). Converted to [`StoreError::Content`]
    /// naming the file as soon as a file is involved.
    #[error("{0}")]
    Schema(String),
    /// A row of an input file could not be read.
    #[error(transparent)]
    Row(#[from] Box<RowError>),
    /// A run directory's manifest.json is missing, not JSON, or of a version this retort
    /// cannot read; the message names the file and says what to do.
    #[error("{message}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
        /// The underlying error, when there is one.
        source: Option<BoxError>,
    },
    /// The export format name is not one retort writes.
    #[error("unknown export format `{0}`; expected one of: {names}", names = crate::export::ExportFormat::names())]
    UnknownFormat(String),
    /// The file extension does not say which container to use.
    #[error("{}: cannot tell the file format from the extension; {expected}", path.display())]
    UnknownExtension {
        /// The file.
        path: PathBuf,
        /// Which extensions are understood.
        expected: &'static str,
    },
}

impl StoreError {
    /// Attach a file name to an error raised while converting that file's data.
    pub(crate) fn in_file(self, path: &Path) -> StoreError {
        match self {
            StoreError::Schema(message) => StoreError::Content {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        }
    }
}

/// Shorthands that build a path-carrying error from a library error.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn pq_err(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> StoreError + '_ {
    move |source| StoreError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn arrow_err(path: &Path) -> impl FnOnce(arrow::error::ArrowError) -> StoreError + '_ {
    move |source| StoreError::Arrow {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a [`RowError`]'s position is a line or a row number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// A 1-based line number (JSONL, CSV, and syntax errors in a JSON array).
    Line,
    /// A 1-based row number (JSON array elements, Parquet rows).
    Row,
}

/// A row that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// The input file.
    pub path: PathBuf,
    /// Where in the file (see [`RowError::position`]); 0 when the error is about the
    /// whole file (it cannot be opened).
    pub line: usize,
    /// Whether `line` counts lines or rows.
    pub position: Position,
    /// What is wrong.
    pub message: String,
    /// The offending input as text (the JSON line, the CSV record), for failures.parquet.
    pub raw: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.position {
            Position::Line => "line",
            Position::Row => "row",
        };
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}: {unit} {}: {}\n  hint: fix or remove that {unit}, or set on_error = \"skip\" on the load step to send bad rows to failures.parquet",
                self.path.display(),
                self.line,
                self.message
            )
        }
    }
}

impl std::error::Error for RowError {}

impl From<RowError> for StoreError {
    fn from(e: RowError) -> Self {
        StoreError::Row(Box::new(e))
    }
}
