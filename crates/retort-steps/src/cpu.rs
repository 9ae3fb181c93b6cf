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
        // A panic on a rayon `spawn` aborts the process; caught here, it is raised again
        // in the awaiting task, where tokio turns it into that step's failure and the
        // rest of the run (and its committed work) carries on.
        self.pool.spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        });
        match rx.await.expect("the CPU pool dropped a task") {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// The underlying pool, for `install`-style parallel iterators inside `run`.
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic in CPU work reaches the awaiting task (a JoinError there), not a process
    /// abort: before, rayon's `spawn` aborted the whole run.
    #[tokio::test]
    async fn a_panic_in_cpu_work_fails_the_task_not_the_process() {
        let cpu = Cpu::new(1);
        let c = cpu.clone();
        let r = tokio::spawn(async move { c.run(|| -> u32 { panic!("boom") }).await }).await;
        assert!(r.unwrap_err().is_panic());
        assert_eq!(cpu.run(|| 7).await, 7, "the pool still works");
    }
}
