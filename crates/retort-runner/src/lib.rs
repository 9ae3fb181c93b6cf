//! retort's pipeline compiler and DAG runner.
//!
//! [`compile`] turns a pipeline file into a checked [`Plan`] (reporting every problem at
//! once); [`run`] executes it into a run directory with per-batch checkpoints, resume,
//! failures and rejections tables and a manifest.

pub mod compile;
mod error;
pub mod exec;
mod factory;
mod handoff;
mod io;
mod live;
pub mod manifest;
pub mod pipeline;
pub mod progress;
mod resume;
pub mod rundir;
pub mod signals;

pub use compile::{compile, compile_limited, Plan, PlannedStep};
pub use error::RunError;
pub use exec::{run, Factory, RunOptions, RunSummary};
pub use manifest::Manifest;
pub use pipeline::CompileError;
