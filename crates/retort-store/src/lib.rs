//! Storage edge (being written).
