//! Crash-safe file replacement: write to a temporary name in the destination directory,
//! fsync the file, rename it over the final name, fsync the directory. A reader (or a
//! resumed run) therefore sees either the old file, or nothing, or the complete new file
//! — never a half-written one.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::io_err;
use crate::StoreError;

/// Marker in temporary file names; see [`is_temp_file`].
const TEMP_MARK: &str = ".retort-tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary file that becomes `final_path` on [`TempFile::commit`] and is deleted if
/// dropped before that (an error or a panic half-way through a write).
#[derive(Debug)]
pub(crate) struct TempFile {
    final_path: PathBuf,
    temp_path: PathBuf,
    committed: bool,
}

impl TempFile {
    /// Create the temporary file next to `final_path` (same directory, so the rename is
    /// atomic on one filesystem).
    pub(crate) fn create(final_path: &Path) -> Result<(TempFile, File), StoreError> {
        let dir = parent_dir(final_path);
        let name = final_path
            .file_name()
            .ok_or_else(|| StoreError::Content {
                path: final_path.to_path_buf(),
                message: "not a file path".into(),
            })?
            .to_string_lossy();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp_path = dir.join(format!(".{name}{TEMP_MARK}{}-{n}", std::process::id()));
        let file = File::create(&temp_path).map_err(io_err(&temp_path))?;
        Ok((
            TempFile {
                final_path: final_path.to_path_buf(),
                temp_path,
                committed: false,
            },
            file,
        ))
    }

    /// The final destination.
    pub(crate) fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// fsync `file` (the temporary file's handle), rename it into place, fsync the
    /// directory so the rename itself survives a power loss.
    pub(crate) fn commit(mut self, file: File) -> Result<(), StoreError> {
        file.sync_all().map_err(io_err(&self.temp_path))?;
        drop(file);
        std::fs::rename(&self.temp_path, &self.final_path).map_err(io_err(&self.final_path))?;
        self.committed = true;
        let dir = parent_dir(&self.final_path);
        // Directory fsync is how POSIX makes a rename durable; some filesystems refuse to
        // open a directory for it, which is not an error worth failing a run over.
        if let Ok(d) = File::open(&dir) {
            d.sync_all().map_err(io_err(&dir))?;
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = std::fs::remove_file(&self.temp_path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.temp_path.display(), error = %e, "could not remove temporary file");
                }
            }
        }
    }
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Replace `path` with `bytes` crash-safely: a uniquely named temporary file (so two
/// writers never share one), fsync, rename, directory fsync.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    use std::io::Write;
    let (tmp, mut file) = TempFile::create(path)?;
    file.write_all(bytes).map_err(io_err(path))?;
    tmp.commit(file)
}

/// Whether `path` is a temporary file left by an interrupted atomic write (a SIGKILL
/// between create and commit). Such files are never valid output and may be deleted.
pub fn is_temp_file(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().contains(TEMP_MARK))
        .unwrap_or(false)
}

/// [`remove_temp_files`] in `dir` and every folder below it. Only safe while no other
/// process writes there (a run directory under its lock).
pub fn remove_temp_files_under(dir: &Path) -> Result<usize, StoreError> {
    let mut n = remove_temp_files(dir)?;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(n),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_type().map_err(io_err(&entry.path()))?.is_dir() {
            n += remove_temp_files_under(&entry.path())?;
        }
    }
    Ok(n)
}

/// Delete the temporary files an interrupted run left in `dir` (not recursive); returns
/// how many were removed. Call it before resuming into a directory.
pub fn remove_temp_files(dir: &Path) -> Result<usize, StoreError> {
    let mut n = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let p = entry.path();
        if is_temp_file(&p) && entry.file_type().map_err(io_err(&p))?.is_file() {
            std::fs::remove_file(&p).map_err(io_err(&p))?;
            n += 1;
        }
    }
    Ok(n)
}
