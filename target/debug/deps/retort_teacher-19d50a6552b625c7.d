/work/main/target/debug/deps/retort_teacher-19d50a6552b625c7.d: crates/retort-teacher/src/lib.rs crates/retort-teacher/src/api.rs

/work/main/target/debug/deps/libretort_teacher-19d50a6552b625c7.rmeta: crates/retort-teacher/src/lib.rs crates/retort-teacher/src/api.rs

crates/retort-teacher/src/lib.rs:
crates/retort-teacher/src/api.rs:
