//! The crate's error type. Every message names the file, endpoint or step concerned and
//! says what to do; none ever holds the token (the client never formats it).

use std::path::PathBuf;

/// What can go wrong writing a card or pushing a run.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The run directory could not be read through its contract.
    #[error("{0}")]
    Store(#[from] retort_store::StoreError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The run directory has something the card cannot describe.
    #[error("{0}")]
    Run(String),
    /// The command line or environment is unusable (no token, bad repo id).
    #[error("{0}")]
    Usage(String),
    /// The Hub refused a request or answered something unexpected.
    #[error("{0}")]
    Hub(String),
}

impl HubError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> HubError {
        let path = path.into();
        move |source| HubError::Io { path, source }
    }
}
