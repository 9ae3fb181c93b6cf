//! The one bridge from async code to the CPU pool: heavy work (ROUGE, HNSW, k-means,
//! Parquet encoding) runs on rayon, never on a tokio worker.

use std::sync::Arc;

/// Handle to the rayon pool. Cheap to clone.
#[derive(Clone)]
pub struct Cpu {
    pool: Arc<rayon::ThreadPool>,
}

impl Cpu {
    /// A pool with `threads` workers (0 = one per core).
    pub fn new(threads: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("retort-cpu-{i}"))
            .build()
            .expect("building the rayon pool");
        Cpu {
            pool: Arc::new(pool),
        }
    }

    /// Run `f` on the pool and await its result without blocking the async runtime.
    pub async fn run<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let _ = tx.send(f());
        });
        rx.await.expect("CPU task panicked")
    }

    /// The underlying pool, for `install`-style parallel iterators inside `run`.
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }
}
