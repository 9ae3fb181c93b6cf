//! Steps that score, compare and pair records with judges, and the judge reply parser.

pub mod annotate;
pub mod calibration;
pub mod judge;
pub mod judge_parse;
pub mod pair;
pub mod score;
pub mod tiers;
