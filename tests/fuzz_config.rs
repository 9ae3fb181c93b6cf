//! The proptest settings every fuzz test of the workspace shares (included with
//! `#[path]` by each crate's fuzz tests, so there is one definition).

use proptest::test_runner::Config as ProptestConfig;

/// Cases per property: `RETORT_FUZZ_CASES` (default 10,000). A value that is not a
/// positive number stops the test with a message rather than running the default.
pub fn cases() -> u32 {
    match std::env::var("RETORT_FUZZ_CASES") {
        Err(_) => 10_000,
        Ok(v) => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => panic!("RETORT_FUZZ_CASES={v:?} is not a positive number of cases"),
        },
    }
}

/// No regression files; every case under a 2 s timeout (run in a forked child, so a
/// hang or a stack overflow is reported with its input).
pub fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        timeout: 2_000,
        ..ProptestConfig::default()
    }
}
