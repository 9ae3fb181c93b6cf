//! Step kinds. Each kind lives in its own file, parses its options from the pipeline
//! file into a config struct that rejects unknown keys, and implements [`Step`].
//! The runner (`retort-runner`) owns storage, checkpoints and resume; a step only sees
//! batches of records coming in ([`Inputs`]) and an [`OutputSink`] to commit to.

pub mod api;
pub mod calls;
pub mod cluster;
pub mod cpu;
pub mod dedup;
pub mod embed;
pub mod evol_instruct;
pub mod export;
pub mod filter;
#[cfg(test)]
mod fuzz;
pub mod gen_common;
pub mod judge;
pub mod judge_parse;
pub mod load;
pub mod novelty_filter;
pub mod pair;
pub mod registry;
pub mod report;
pub mod respond;
pub mod sample;
pub mod score;
pub mod self_chat;
pub mod self_instruct;
pub mod spec;
pub mod templates;
pub mod testing;
pub mod text_view;
pub mod tiers;

pub use api::*;
pub use cpu::Cpu;
