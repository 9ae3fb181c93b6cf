/work/main/target/debug/deps/futures-7ce27f7b2b5a748b.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/futures-0.3.34/src/lib.rs

/work/main/target/debug/deps/libfutures-7ce27f7b2b5a748b.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/futures-0.3.34/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/futures-0.3.34/src/lib.rs:
