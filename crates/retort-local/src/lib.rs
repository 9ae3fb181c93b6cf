//! Embedded defaults (being written).
