//! retort's vector algorithms: semantic dedup (partitioned exact search and HNSW), k-means,
//! 2-D projections and union-find.
//!
//! A pure CPU library: parallel work runs on rayon, never on an async runtime. Vectors are
//! passed as one row-major `&[f32]` plus a dimension, so a million 384-d embeddings are one
//! 1.5 GB allocation that every algorithm here borrows rather than copies.

pub mod dedup;
pub mod gen;
pub mod kernel;
pub mod kmeans;
pub mod layout;
pub mod project;
pub mod union_find;
