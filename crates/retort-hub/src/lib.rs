//! retort's way from a run directory to a shared dataset.
//!
//! - [`card`]: a Hub dataset card (`README.md`) written from the run directory's typed
//!   contract — the manifest, each step's state and the exports' Parquet schemas.
//! - [`push`]: `retort push`, an upload client that speaks the Hugging Face Hub's
//!   protocol as the official `huggingface_hub` client does (create repo, preupload,
//!   LFS batch and PUT, ndjson commit, branches).
//! - [`standin`]: a small local Hub that implements exactly those endpoints, storing
//!   repositories on disk, so the push is tested without a network.
//!
//! The token is a [`retort_teacher::Secret`]: it is only ever exposed where the
//! `Authorization` header is built.

pub mod card;
pub mod error;
pub mod exports;
pub mod facts;
pub mod features;
pub mod gitoid;
pub mod push;
pub mod standin;
pub mod upload_set;

pub use card::{write_card, Card, CardOptions};
pub use error::HubError;
pub use push::{push, PushOptions, PushOutcome};
