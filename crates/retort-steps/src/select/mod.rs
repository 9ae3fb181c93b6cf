//! Steps that keep, embed, deduplicate and cluster records.

pub mod cluster;
pub mod dedup;
pub mod embed;
pub mod filter;
pub mod novelty_files;
pub mod novelty_filter;
