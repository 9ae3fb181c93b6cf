//! Steps that make records with teachers, their shared rules and the built-in prompts.

pub mod custom;
pub mod evol_instruct;
pub mod gen_common;
pub mod replies;
pub mod respond;
pub mod self_chat;
pub mod self_instruct;
pub mod structured;
pub mod templates;
pub mod tools;
