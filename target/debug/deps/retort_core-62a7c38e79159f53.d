/work/main/target/debug/deps/retort_core-62a7c38e79159f53.d: crates/retort-core/src/lib.rs crates/retort-core/src/record.rs

/work/main/target/debug/deps/libretort_core-62a7c38e79159f53.rmeta: crates/retort-core/src/lib.rs crates/retort-core/src/record.rs

crates/retort-core/src/lib.rs:
crates/retort-core/src/record.rs:
