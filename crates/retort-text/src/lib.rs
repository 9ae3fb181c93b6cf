//! retort's text algorithms: pure CPU, no async, no I/O.
//!
//! - [`rouge`]: ROUGE-L F1 compatible with Google's `rouge_score`, CJK-aware.
//! - [`novelty`]: the Self-Instruct/Alpaca novelty filter as an exact, indexed pool.
//! - [`filters`]: Alpaca's instruction filters (length, keywords, first character), CJK-aware.
//! - [`normalize`]: normalisation and keys for exact dedup.
//! - [`minhash`]: MinHash signatures and LSH banding for near-duplicate detection.
//! - [`heuristics`]: cheap per-record columns (lengths, language and `lang_mismatch`,
//!   repetition, refusals, leaked template markers).
//! - [`lang`]: language identification (ISO 639-1 code and confidence, or `und`).
//! - [`lang_request`]: whether an instruction asks for a translation or a language.

pub mod filters;
pub mod heuristics;
pub mod lang;
pub mod lang_request;
pub mod minhash;
pub mod normalize;
pub mod novelty;
pub mod rouge;
pub mod script;
mod util;

pub use filters::{FilterReject, InstructionFilter};
pub use novelty::{NoveltyDecision, NoveltyIndex};
