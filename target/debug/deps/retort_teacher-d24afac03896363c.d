/work/main/target/debug/deps/retort_teacher-d24afac03896363c.d: crates/retort-teacher/src/lib.rs crates/retort-teacher/src/api.rs

/work/main/target/debug/deps/libretort_teacher-d24afac03896363c.rmeta: crates/retort-teacher/src/lib.rs crates/retort-teacher/src/api.rs

crates/retort-teacher/src/lib.rs:
crates/retort-teacher/src/api.rs:
