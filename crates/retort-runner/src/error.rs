//! Why a run stopped short: the one error type `run` returns. Its own file so the
//! modules that raise it (exec, resume) do not import each other for it.

use retort_steps::StepError;

/// Why a run stopped short.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// One or more steps failed; the others' progress is committed.
    #[error("{message}")]
    Steps {
        /// Every error, where it happened and what to do next.
        message: String,
        /// The errors themselves, each with its kind and sources.
        errors: Vec<StepError>,
    },
    /// The run could not start (run directory, cache).
    #[error("{0}")]
    Setup(String),
    /// A stop signal ended the run; committed work is kept.
    #[error("{message}")]
    Interrupted {
        /// The signal.
        signal: crate::signals::Signal,
        /// What happened and how to resume.
        message: String,
    },
}
