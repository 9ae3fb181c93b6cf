//! Step kinds. Each kind lives in its own file, parses its options from the pipeline
//! file into a config struct that rejects unknown keys, and implements [`Step`].
//! The runner (`retort-runner`) owns storage, checkpoints and resume; a step only sees
//! batches of records coming in ([`Inputs`]) and an [`OutputSink`] to commit to.

pub mod api;
pub mod cpu;
pub mod export;
pub mod filter;
pub mod load;
pub mod sample;
pub mod self_instruct;
pub mod self_chat;
pub mod respond;
pub mod gen_common;
pub mod evol_instruct;
pub mod registry;
pub mod templates;
pub mod testing;

pub use api::*;
pub use cpu::Cpu;
