//! The record model every retort step reads and writes.
//!
//! Steps keep nested chat data as the Rust structs defined here; conversion to Arrow
//! happens only at the storage edge (`retort-store`). This crate does no I/O.

pub mod accounts;
mod positions;
mod record;

pub use positions::PositionSet;

pub use record::{
    content_id, Candidate, ColumnValue, Failure, Message, Pair, Provenance, Record, Rejection,
    ToolCall,
};
