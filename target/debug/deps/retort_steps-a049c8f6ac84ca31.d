/work/main/target/debug/deps/retort_steps-a049c8f6ac84ca31.d: crates/retort-steps/src/lib.rs crates/retort-steps/src/api.rs crates/retort-steps/src/cpu.rs crates/retort-steps/src/registry.rs crates/retort-steps/src/testing.rs

/work/main/target/debug/deps/libretort_steps-a049c8f6ac84ca31.rmeta: crates/retort-steps/src/lib.rs crates/retort-steps/src/api.rs crates/retort-steps/src/cpu.rs crates/retort-steps/src/registry.rs crates/retort-steps/src/testing.rs

crates/retort-steps/src/lib.rs:
crates/retort-steps/src/api.rs:
crates/retort-steps/src/cpu.rs:
crates/retort-steps/src/registry.rs:
crates/retort-steps/src/testing.rs:
