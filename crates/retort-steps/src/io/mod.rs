//! Reading and writing: input files, trainer-format exports, the HTML report, samples.

pub mod export;
pub mod load;
pub mod report;
pub mod sample;
