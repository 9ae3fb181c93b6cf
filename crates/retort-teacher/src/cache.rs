//! The response cache: every paid answer, kept in SQLite so a resumed or repeated run
//! makes zero repeated calls.
//!
//! One dedicated thread owns the connection and serves a queue of operations, so
//! async callers never block a tokio worker on SQLite, and writes are group-committed:
//! one transaction stays open for up to [`COMMIT_EVERY`] or [`BATCH`] writes, whichever
//! comes first. Answers arrive one by one at thousands per second, and committing each
//! drained handful wrote the same B-tree pages to the WAL over and over (a third of a
//! 20,000 req/s run). Reads go through the same queue and the same connection, so a
//! read always sees every earlier write, committed or not. One shortcut: a file that
//! held no answers when it was opened knows every key it has been given, and answers a
//! lookup of any other key itself (a first run's every lookup).
//!
//! Size: ~690 lines of code plus ~170 of tests: the SQLite store, its recovery from a
//! broken file, the connection thread and its queue act on one table. Keys are in
//! `key.rs`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::api::Usage;
use crate::key::CacheKey;

/// Something went wrong with the cache database.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CacheError {
    /// SQLite reported an error.
    #[error("response cache {path}: {message}")]
    Sqlite {
        /// Database file.
        path: String,
        /// What SQLite said.
        message: String,
    },
    /// The cache thread is gone (it panicked or the cache was closed).
    #[error("response cache is closed")]
    Closed,
}

/// A stored answer.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedResponse {
    /// The body exactly as the server sent it.
    pub raw: String,
    /// Usage the server reported with it.
    pub usage: Usage,
}

type Reply<T> = oneshot::Sender<Result<T, CacheError>>;

enum Op {
    Get(CacheKey, Reply<Option<CachedResponse>>),
    Put {
        key: CacheKey,
        provider: String,
        model: String,
        raw: String,
        usage: Usage,
    },
    GetEmb(String, Vec<[u8; 32]>, Reply<Vec<Option<Vec<f32>>>>),
    PutEmb(String, Vec<([u8; 32], Vec<f32>)>),
    Count(Reply<(u64, u64)>),
    Flush(Reply<()>),
}

impl Op {
    fn writes(&self) -> bool {
        matches!(self, Op::Put { .. } | Op::PutEmb(..))
    }
}

/// The SQLite response and embedding cache (WAL mode, bundled SQLite). Cheap to share
/// behind an `Arc` across any number of tasks and teachers.
pub struct ResponseCache {
    path: PathBuf,
    queue: Arc<Queue>,
    thread: Option<JoinHandle<()>>,
    write_error: Arc<Mutex<Option<CacheError>>>,
    /// Set by the first failed read: later reads answer "not cached" without asking,
    /// so a cache that breaks mid-run costs one warning, not one per request.
    read_broken: std::sync::atomic::AtomicBool,
    /// `Some` while the file held no answers when it was opened: then only keys this
    /// process stored can be found, so a lookup of any other key is a miss answered
    /// here, without a round trip to the cache thread (two thread wake-ups and an
    /// index probe). That is every lookup of a first run. Holds the first 8 bytes of each stored
    /// key (SHA-256, so uniform; a rare shared prefix only costs a real lookup) and is
    /// dropped, falling back to lookups, past [`WRITTEN_KEYS_MAX`].
    written: Mutex<Option<std::collections::HashSet<u64>>>,
}

/// Most keys [`ResponseCache`] tracks for an initially empty file (~16 MB at the cap).
const WRITTEN_KEYS_MAX: usize = 1 << 20;

fn key_prefix(key: &CacheKey) -> u64 {
    u64::from_le_bytes(key.0[..8].try_into().expect("8 bytes"))
}

// `responses` is a rowid table with a unique key index rather than WITHOUT ROWID keyed by
// the hash: bodies are then appended in arrival order and only the small index takes
// random inserts, instead of every commit rewriting scattered pages full of bodies.
// The page cache (32 MiB) holds that index for millions of answers.
const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 10000;
PRAGMA cache_size = -32768;
CREATE TABLE IF NOT EXISTS responses (
    key BLOB NOT NULL UNIQUE,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    raw TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    text_hash BLOB NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, text_hash)
) WITHOUT ROWID;
";

/// Below this size an opened cache gets SQLite's `quick_check` (milliseconds); above it
/// only its first rows are read, so opening a multi-gigabyte cache stays instant.
const QUICK_CHECK_MAX_BYTES: u64 = 64 << 20;

/// Reads enough of a just-opened cache to tell a broken file (truncated, overwritten)
/// from a good one before the run relies on it. Returns whether it holds no answers.
fn probe(conn: &Connection, path: &Path) -> Result<bool, rusqlite::Error> {
    let mut no_answers = false;
    for table in ["responses", "embeddings"] {
        let rows = conn.query_row(
            &format!("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)"),
            [],
            |r| r.get::<_, i64>(0),
        )?;
        if table == "responses" {
            no_answers = rows == 0;
        }
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size <= QUICK_CHECK_MAX_BYTES {
        let verdict: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
        if verdict != "ok" {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(verdict),
            ));
        }
    }
    Ok(no_answers)
}

/// Most writes in one transaction.
const BATCH: usize = 4096;

/// Longest a write waits in an open transaction before it is committed. A crash loses
/// at most this much of the newest answers (they are asked again on resume).
pub const COMMIT_EVERY: Duration = Duration::from_millis(50);

/// The queue between callers and the cache thread. A write needs no answer, so while a
/// transaction is open it is only appended, and the thread takes the writes in bulk when
/// the commit is due, [`BATCH`] of them wait, or an operation that waits for an answer
/// arrives. (A channel woke the thread for every answer stored: 28% of the context
/// switches of a 20,000-call run.)
#[derive(Default)]
struct Queue {
    state: Mutex<QueueState>,
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct QueueState {
    ops: Vec<Op>,
    /// How many of `ops` wait for an answer.
    answers_owed: usize,
    /// What the thread, if it waits, wants to be woken for.
    waiting: Waiting,
    /// No more operations are taken (the cache is dropped or its thread ended).
    closed: bool,
    /// Times the thread woke from waiting (what the queue is there to keep low).
    wakeups: u64,
}

#[derive(Default)]
enum Waiting {
    #[default]
    No,
    /// Anything: no transaction is open.
    AnyOp,
    /// Only an operation that waits for an answer, or a full batch: a transaction is
    /// open and its commit is due at a set time anyway.
    Answer,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // The state stays consistent under a panic (plain pushes and swaps).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, op: Op) -> Result<(), CacheError> {
        let mut st = self.lock();
        if st.closed {
            return Err(CacheError::Closed);
        }
        let owed = !op.writes();
        st.answers_owed += usize::from(owed);
        st.ops.push(op);
        let wake = match st.waiting {
            Waiting::No => false,
            Waiting::AnyOp => true,
            Waiting::Answer => owed || st.ops.len() >= BATCH,
        };
        if wake {
            st.waiting = Waiting::No;
            self.wake.notify_one();
        }
        Ok(())
    }

    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        self.wake.notify_one();
    }

    /// The thread's next operations: waits until there is something to do — with no
    /// transaction open (`open_since` `None`), any operation; with one open, an
    /// operation that waits for an answer, a full batch or the commit's time. `true`
    /// once the queue is closed: these are the last.
    fn take(&self, open_since: Option<Instant>) -> (Vec<Op>, bool) {
        let mut st = self.lock();
        loop {
            let due = open_since.map(|t| t + COMMIT_EVERY);
            let now = Instant::now();
            let ready = st.closed
                || st.answers_owed > 0
                || st.ops.len() >= BATCH
                || match due {
                    None => !st.ops.is_empty(),
                    Some(d) => now >= d,
                };
            if ready {
                st.answers_owed = 0;
                return (std::mem::take(&mut st.ops), st.closed);
            }
            st = match due {
                None => {
                    st.waiting = Waiting::AnyOp;
                    self.wake.wait(st).unwrap_or_else(|p| p.into_inner())
                }
                Some(d) => {
                    st.waiting = Waiting::Answer;
                    self.wake
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            st.waiting = Waiting::No;
            st.wakeups += 1;
        }
    }
}

/// Closes the queue when the cache thread ends, however it ends, and drops what is
/// queued: a caller waiting for an answer then gets [`CacheError::Closed`] instead of
/// waiting forever.
struct CloseOnExit<'a>(&'a Queue);

impl Drop for CloseOnExit<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.closed = true;
        st.ops.clear();
    }
}

impl ResponseCache {
    /// Opens (creating if needed) the cache at `path` and starts its thread.
    pub fn open(path: impl AsRef<Path>) -> Result<ResponseCache, CacheError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display().to_string();
        let err = |e: rusqlite::Error| CacheError::Sqlite {
            path: shown.clone(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| CacheError::Sqlite {
                path: shown.clone(),
                message: format!("cannot create directory: {e}"),
            })?;
        }
        let conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        let no_answers = probe(&conn, &path).map_err(err)?;
        let queue = Arc::new(Queue::default());
        let q = queue.clone();
        let write_error = Arc::new(Mutex::new(None));
        let we = write_error.clone();
        let thread = std::thread::Builder::new()
            .name("retort-cache".into())
            .spawn(move || serve(conn, &q, shown, we))
            .map_err(|e| CacheError::Sqlite {
                path: path.display().to_string(),
                message: format!("cannot start cache thread: {e}"),
            })?;
        Ok(ResponseCache {
            path,
            queue,
            thread: Some(thread),
            write_error,
            read_broken: Default::default(),
            written: Mutex::new(no_answers.then(Default::default)),
        })
    }

    /// Opens the cache like [`ResponseCache::open`]; a file that cannot be opened or
    /// read (truncated, not SQLite, a disk fault) is moved aside to
    /// `cache.sqlite.corrupt-<unix time>` and a new, empty cache takes its place — the
    /// cache only saves requests, so a broken one must never stop a run. Returns the
    /// warning to show when that happened.
    pub fn open_or_set_aside(
        path: impl AsRef<Path>,
    ) -> Result<(ResponseCache, Option<String>), CacheError> {
        let path = path.as_ref();
        let first = match ResponseCache::open(path) {
            Ok(c) => return Ok((c, None)),
            Err(e) => e,
        };
        let aside = path.with_file_name(format!(
            "{}.corrupt-{}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            now_secs()
        ));
        std::fs::rename(path, &aside).map_err(|e| CacheError::Sqlite {
            path: path.display().to_string(),
            message: format!(
                "{first}; moving it aside to {} failed too: {e}",
                aside.display()
            ),
        })?;
        // The WAL and shared-memory files belong to the old database.
        for ext in ["-wal", "-shm"] {
            let side = PathBuf::from(format!("{}{ext}", path.display()));
            if side.exists() {
                let _ = std::fs::rename(&side, format!("{}{ext}", aside.display()));
            }
        }
        let cache = ResponseCache::open(path)?;
        Ok((
            cache,
            Some(format!(
                "{first}; moved it aside to {} and started an empty cache (answers it held are asked again)",
                aside.display()
            )),
        ))
    }

    /// Database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn send(&self, op: Op) -> Result<(), CacheError> {
        self.queue.push(op)
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Op) -> Result<T, CacheError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| CacheError::Closed)?
    }

    /// Runs a read; after the first failure, every later read is a miss (`Ok(None)`
    /// or all-`None`) and only that first error is returned, for one warning.
    async fn read<T>(&self, miss: T, make: impl FnOnce(Reply<T>) -> Op) -> Result<T, CacheError> {
        use std::sync::atomic::Ordering;
        if self.read_broken.load(Ordering::Relaxed) {
            return Ok(miss);
        }
        let r = self.ask(make).await;
        if r.is_err() {
            self.read_broken.store(true, Ordering::Relaxed);
        }
        r
    }

    /// The stored answer for `key`, if any.
    pub async fn get(&self, key: &CacheKey) -> Result<Option<CachedResponse>, CacheError> {
        if let Some(keys) = self.written.lock().expect("written keys").as_ref() {
            if !keys.contains(&key_prefix(key)) {
                return Ok(None);
            }
        }
        let key = *key;
        self.read(None, |r| Op::Get(key, r)).await
    }

    /// Stores an answer. Returns once queued; it is committed within [`COMMIT_EVERY`], and
    /// [`ResponseCache::flush`] waits for that (and reports any write error).
    pub fn put(
        &self,
        key: &CacheKey,
        provider: &str,
        model: &str,
        raw: String,
        usage: Usage,
    ) -> Result<(), CacheError> {
        {
            let mut written = self.written.lock().expect("written keys");
            if let Some(keys) = written.as_mut() {
                if keys.len() >= WRITTEN_KEYS_MAX {
                    *written = None;
                } else {
                    keys.insert(key_prefix(key));
                }
            }
        }
        self.send(Op::Put {
            key: *key,
            provider: provider.to_string(),
            model: model.to_string(),
            raw,
            usage,
        })
    }

    /// The stored vector of one text hash under `model`.
    pub async fn get_embedding(
        &self,
        model: &str,
        text_hash: &[u8; 32],
    ) -> Result<Option<Vec<f32>>, CacheError> {
        let mut v = self.get_embeddings(model, vec![*text_hash]).await?;
        Ok(v.pop().flatten())
    }

    /// Stored vectors for many text hashes (one round trip), in order.
    pub async fn get_embeddings(
        &self,
        model: &str,
        hashes: Vec<[u8; 32]>,
    ) -> Result<Vec<Option<Vec<f32>>>, CacheError> {
        let model = model.to_string();
        let miss = vec![None; hashes.len()];
        self.read(miss, |r| Op::GetEmb(model, hashes, r)).await
    }

    /// Stores one vector.
    pub fn put_embedding(
        &self,
        model: &str,
        text_hash: &[u8; 32],
        vector: &[f32],
    ) -> Result<(), CacheError> {
        self.put_embeddings(model, vec![(*text_hash, vector.to_vec())])
    }

    /// Stores many vectors.
    pub fn put_embeddings(
        &self,
        model: &str,
        items: Vec<([u8; 32], Vec<f32>)>,
    ) -> Result<(), CacheError> {
        self.send(Op::PutEmb(model.to_string(), items))
    }

    /// Number of stored (responses, embeddings).
    pub async fn count(&self) -> Result<(u64, u64), CacheError> {
        self.ask(Op::Count).await
    }

    /// Waits until every queued write is committed; returns the first write error
    /// since the last flush, if any (writes are otherwise fire-and-forget).
    pub async fn flush(&self) -> Result<(), CacheError> {
        self.ask(Op::Flush).await?;
        match self.write_error.lock().expect("cache error slot").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for ResponseCache {
    fn drop(&mut self) {
        // Closing the queue lets the thread commit what is pending and exit.
        self.queue.close();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("response cache thread panicked; recent answers may be lost");
            }
        }
    }
}

fn f32s_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_to_f32s(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn serve(
    conn: Connection,
    queue: &Queue,
    path: String,
    write_error: Arc<Mutex<Option<CacheError>>>,
) {
    let err = |e: rusqlite::Error| CacheError::Sqlite {
        path: path.clone(),
        message: e.to_string(),
    };
    let note_write_error = |e: CacheError| {
        tracing::error!("{e}");
        let mut slot = write_error.lock().expect("cache error slot");
        if slot.is_none() {
            *slot = Some(e);
        }
    };
    let commit = |flushes: &mut Vec<Reply<()>>| {
        if let Err(e) = conn.execute_batch("COMMIT") {
            note_write_error(err(e));
            let _ = conn.execute_batch("ROLLBACK");
        }
        for f in flushes.drain(..) {
            let _ = f.send(Ok(()));
        }
    };
    // Open transaction: when it began and how many writes it holds.
    let mut open: Option<(Instant, usize)> = None;
    let mut flushes: Vec<Reply<()>> = Vec::new();
    let _close = CloseOnExit(queue);
    loop {
        let (ops, closed) = queue.take(open.map(|(since, _)| since));
        for op in ops {
            if op.writes() && open.is_none() {
                match conn.execute_batch("BEGIN IMMEDIATE") {
                    Ok(()) => open = Some((Instant::now(), 0)),
                    Err(e) => note_write_error(err(e)),
                }
            }
            if let (true, Some((_, n))) = (op.writes(), open.as_mut()) {
                *n += 1;
            }
            match op {
                Op::Get(key, reply) => {
                    let r = conn
                        .prepare_cached(
                            "SELECT raw, prompt_tokens, completion_tokens FROM responses WHERE key = ?1",
                        )
                        .and_then(|mut st| {
                            st.query_row(params![&key.0[..]], |row| {
                                Ok(CachedResponse {
                                    raw: row.get(0)?,
                                    usage: Usage {
                                        prompt_tokens: row.get::<_, i64>(1)? as u64,
                                        completion_tokens: row.get::<_, i64>(2)? as u64,
                                    },
                                })
                            })
                            .optional()
                        })
                        .map_err(err);
                    let _ = reply.send(r);
                }
                Op::Put {
                    key,
                    provider,
                    model,
                    raw,
                    usage,
                } => {
                    let r = conn
                        .prepare_cached(
                            "INSERT OR REPLACE INTO responses VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        )
                        .and_then(|mut st| {
                            st.execute(params![
                                &key.0[..],
                                provider,
                                model,
                                raw,
                                usage.prompt_tokens as i64,
                                usage.completion_tokens as i64,
                                now_secs()
                            ])
                        });
                    if let Err(e) = r {
                        note_write_error(err(e));
                    }
                }
                Op::GetEmb(model, hashes, reply) => {
                    let r = conn
                        .prepare_cached(
                            "SELECT vector FROM embeddings WHERE model = ?1 AND text_hash = ?2",
                        )
                        .and_then(|mut st| {
                            hashes
                                .iter()
                                .map(|h| {
                                    st.query_row(params![model, &h[..]], |row| {
                                        row.get::<_, Vec<u8>>(0)
                                    })
                                    .optional()
                                    .map(|o| o.and_then(|b| bytes_to_f32s(&b)))
                                })
                                .collect::<Result<Vec<_>, _>>()
                        })
                        .map_err(err);
                    let _ = reply.send(r);
                }
                Op::PutEmb(model, items) => {
                    let r = conn
                        .prepare_cached("INSERT OR REPLACE INTO embeddings VALUES (?1, ?2, ?3)")
                        .and_then(|mut st| {
                            for (h, v) in &items {
                                st.execute(params![model, &h[..], f32s_to_bytes(v)])?;
                            }
                            Ok(())
                        });
                    if let Err(e) = r {
                        note_write_error(err(e));
                    }
                }
                Op::Count(reply) => {
                    let r = conn
                        .query_row(
                            "SELECT (SELECT count(*) FROM responses), (SELECT count(*) FROM embeddings)",
                            [],
                            |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
                        )
                        .map_err(err);
                    let _ = reply.send(r);
                }
                Op::Flush(reply) => {
                    if open.is_some() {
                        flushes.push(reply);
                        commit(&mut flushes);
                        open = None;
                    } else {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            if open.is_some_and(|(since, n)| n >= BATCH || since.elapsed() >= COMMIT_EVERY) {
                commit(&mut flushes);
                open = None;
            }
        }
        // Woken for the commit's time with nothing new.
        if open.is_some_and(|(since, _)| since.elapsed() >= COMMIT_EVERY) {
            commit(&mut flushes);
            open = None;
        }
        if closed {
            break;
        }
    }
    // The queue is closed (the cache was dropped): commit what is pending.
    if open.is_some() {
        commit(&mut flushes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::tests::req;
    use crate::key::{request_key, text_hash};

    /// The key of question `i`, one sample, no extra body.
    fn key(i: usize) -> CacheKey {
        request_key(
            "openai",
            "m",
            &req(&format!("q{i}"), 0),
            &serde_json::Map::new(),
        )
    }

    #[tokio::test]
    async fn put_then_get_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.sqlite");
        let key = request_key("openai", "m", &req("hi", 0), &serde_json::Map::new());
        {
            let c = ResponseCache::open(&p).unwrap();
            assert_eq!(c.get(&key).await.unwrap(), None);
            let u = Usage {
                prompt_tokens: 3,
                completion_tokens: 5,
            };
            c.put(&key, "openai", "m", "{\"raw\":1}".into(), u).unwrap();
            c.put_embedding("e", &text_hash("x"), &[1.0, -2.5]).unwrap();
            c.flush().await.unwrap();
        }
        let c = ResponseCache::open(&p).unwrap();
        let got = c.get(&key).await.unwrap().unwrap();
        assert_eq!(got.raw, "{\"raw\":1}");
        assert_eq!(got.usage.completion_tokens, 5);
        assert_eq!(
            c.get_embedding("e", &text_hash("x")).await.unwrap(),
            Some(vec![1.0, -2.5])
        );
        assert_eq!(
            c.get_embedding("other", &text_hash("x")).await.unwrap(),
            None
        );
        assert_eq!(c.count().await.unwrap(), (1, 1));
    }

    #[tokio::test]
    async fn an_empty_cache_answers_misses_itself_and_still_finds_what_it_stored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.sqlite");
        let u = Usage::default();
        {
            let c = ResponseCache::open(&p).unwrap();
            assert!(c.written.lock().unwrap().is_some(), "opened empty");
            c.put(&key(0), "openai", "m", "a0".into(), u).unwrap();
            assert_eq!(c.get(&key(0)).await.unwrap().unwrap().raw, "a0");
            assert_eq!(c.get(&key(1)).await.unwrap(), None);
            // Past the cap the set is dropped and every lookup asks the file again,
            // including for the key that overflowed it.
            *c.written.lock().unwrap() = Some((0..WRITTEN_KEYS_MAX as u64).collect());
            c.put(&key(2), "openai", "m", "a2".into(), u).unwrap();
            assert!(c.written.lock().unwrap().is_none());
            assert_eq!(c.get(&key(2)).await.unwrap().unwrap().raw, "a2");
            assert_eq!(c.get(&key(0)).await.unwrap().unwrap().raw, "a0");
        }
        // Opened with answers in it: every lookup asks the file.
        let c = ResponseCache::open(&p).unwrap();
        assert!(c.written.lock().unwrap().is_none());
        assert_eq!(c.get(&key(0)).await.unwrap().unwrap().raw, "a0");
    }

    #[tokio::test]
    async fn stored_answers_do_not_wake_the_thread_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let c = ResponseCache::open(dir.path().join("c.sqlite")).unwrap();
        let keys: Vec<CacheKey> = (0..3000).map(key).collect();
        // The first write opens a transaction; the rest arrive while one is open, as
        // answers do during a run, and wait for its commit.
        let t = Instant::now();
        let before = c.queue.lock().wakeups;
        for (i, k) in keys.iter().enumerate() {
            c.put(k, "openai", "m", "a".into(), Usage::default())
                .unwrap();
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        c.flush().await.unwrap();
        let woke = c.queue.lock().wakeups - before;
        // Per commit: one wake for its time, one for the first write after it; and the flush.
        let commits = (t.elapsed().as_millis() / COMMIT_EVERY.as_millis()) as u64 + 1;
        assert!(
            woke <= 2 * commits + 2,
            "{woke} wake-ups for 3,000 writes and a flush over {commits} commit(s)"
        );
        assert_eq!(c.count().await.unwrap(), (3000, 0));
    }

    #[tokio::test]
    async fn group_commit_reads_own_writes_and_commits_on_drop_and_on_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.sqlite");
        let u = Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
        };
        let keys: Vec<CacheKey> = (0..5000).map(key).collect();
        {
            let c = ResponseCache::open(&p).unwrap();
            for (i, k) in keys.iter().enumerate() {
                c.put(k, "openai", "m", format!("a{i}"), u).unwrap();
            }
            // Still inside the open transaction: the same queue sees it.
            assert_eq!(c.get(&keys[4999]).await.unwrap().unwrap().raw, "a4999");
            // Replacing a key keeps one row.
            c.put(&keys[0], "openai", "m", "again".into(), u).unwrap();
            assert_eq!(c.count().await.unwrap(), (5000, 0));
            // Dropped without flush: pending writes are committed on close.
        }
        let c = ResponseCache::open(&p).unwrap();
        assert_eq!(c.count().await.unwrap(), (5000, 0));
        assert_eq!(c.get(&keys[0]).await.unwrap().unwrap().raw, "again");
        // A lone write becomes visible to another connection within COMMIT_EVERY.
        c.put(&keys[1], "openai", "m", "late".into(), u).unwrap();
        std::thread::sleep(COMMIT_EVERY * 4);
        let other = Connection::open(&p).unwrap();
        let raw: String = other
            .query_row(
                "SELECT raw FROM responses WHERE key = ?1",
                params![&keys[1].0[..]],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(raw, "late");
    }
}
