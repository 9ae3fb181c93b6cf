/work/main/target/debug/deps/retort_core-d67d06a899992426.d: crates/retort-core/src/lib.rs crates/retort-core/src/record.rs

/work/main/target/debug/deps/libretort_core-d67d06a899992426.rmeta: crates/retort-core/src/lib.rs crates/retort-core/src/record.rs

crates/retort-core/src/lib.rs:
crates/retort-core/src/record.rs:
