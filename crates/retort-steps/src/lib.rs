//! Step kinds. Each kind lives in its own file, grouped by family ([`io`], [`generate`],
//! [`assess`], [`select`]), parses its options from the pipeline file into a config
//! struct that rejects unknown keys, and implements [`Step`].
//! The runner (`retort-runner`) owns storage, checkpoints and resume; a step only sees
//! batches of records coming in ([`Inputs`]) and an [`OutputSink`] to commit to.

pub mod api;
pub mod assess;
pub mod calls;
pub mod cpu;
#[cfg(test)]
mod fuzz;
pub mod generate;
pub mod io;
pub mod registry;
pub mod select;
pub mod spec;
pub mod testing;
pub mod text_view;

pub use api::*;
pub use cpu::Cpu;
// Every kind by its own name too (`retort_steps::load`, `crate::score`): the families are
// folders for the reader, not a second name to learn.
pub use assess::{annotate, calibration, judge, judge_parse, pair, score, tiers};
pub use generate::{
    custom, evol_instruct, gen_common, respond, self_chat, self_instruct, structured, templates,
};
pub use io::{export, load, report, sample};
pub use select::{cluster, dedup, embed, filter, novelty_files, novelty_filter};
