//! The step I/O adapters: what a step reads (an upstream's committed parts, followed as
//! they appear) and where it writes (its checkpoint folder), plus the watch messages
//! that tell a reader how far its upstream is.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{PositionSet, Record};
use retort_steps::{Batch, InputStream, OutputSink, Positioned, StepError};
use tokio::sync::watch;

use crate::handoff::Handoff;
use crate::rundir::{self, StepDir};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    Done,
    Failed,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Up {
    pub(crate) parts: usize,
    pub(crate) status: Status,
}

/// Input from one upstream step's committed parts, following them as they appear.
pub(crate) struct PartInput {
    pub(crate) dir: PathBuf,
    pub(crate) up: watch::Receiver<Up>,
    pub(crate) next_part: usize,
    pub(crate) reader: Option<retort_store::RecordReader>,
    /// Records of a part taken from the upstream's handoff, not yet handed on.
    pub(crate) held: std::vec::IntoIter<Record>,
    pub(crate) handoff: Arc<Handoff>,
    pub(crate) batch: usize,
    pub(crate) cursor: Arc<InputCursor>,
    pub(crate) upstream: String,
}

/// Input positions of one step, shared by its input streams (read one after another
/// in `after` order, so one counter numbers them all), and the positions committed
/// batches already finished.
pub(crate) struct InputCursor {
    pub(crate) next: AtomicU64,
    pub(crate) done: PositionSet,
}

impl InputCursor {
    /// Numbers `rows` and leaves out those a committed batch finished (resume); `None`
    /// when nothing is left to hand on.
    fn position(&self, rows: Vec<Record>) -> Option<Positioned> {
        let start = self.next.fetch_add(rows.len() as u64, Ordering::Relaxed);
        let end = start + rows.len() as u64;
        let mut p = Positioned::default();
        if self.done.is_empty()
            || !self
                .done
                .ranges()
                .iter()
                .any(|&(a, b)| a < end && start < b)
        {
            p.positions = (start..end).collect();
            p.records = rows;
        } else {
            for (pos, r) in (start..end).zip(rows) {
                if !self.done.contains(pos) {
                    p.positions.push(pos);
                    p.records.push(r);
                }
            }
        }
        (!p.records.is_empty()).then_some(p)
    }
}

#[async_trait]
impl InputStream for PartInput {
    async fn next_positioned(&mut self) -> Result<Option<Positioned>, StepError> {
        loop {
            if self.held.len() > 0 {
                let rows: Vec<Record> = self.held.by_ref().take(self.batch).collect();
                if let Some(p) = self.cursor.position(rows) {
                    return Ok(Some(p));
                }
                continue;
            }
            if let Some(mut r) = self.reader.take() {
                let (r2, next) = tokio::task::spawn_blocking(move || {
                    let n = r.next();
                    (r, n)
                })
                .await
                .map_err(|e| StepError::Internal(format!("reader task: {e}")))?;
                match next {
                    Some(Ok(rows)) => {
                        self.reader = Some(r2);
                        if let Some(p) = self.cursor.position(rows) {
                            return Ok(Some(p));
                        }
                        continue;
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => continue,
                }
            }
            let up = *self.up.borrow_and_update();
            if self.next_part < up.parts {
                let part = self.next_part;
                self.next_part += 1;
                if let Some(records) = self.handoff.take(part) {
                    self.held = records.into_iter();
                    continue;
                }
                let p = retort_store::StepPaths::at(&self.dir).part(part);
                self.reader = Some(
                    retort_store::RecordReader::open(&p, self.batch).map_err(StepError::from)?,
                );
                continue;
            }
            match up.status {
                Status::Done => return Ok(None),
                Status::Failed => return Err(StepError::Upstream(self.upstream.clone())),
                Status::Running => {
                    if self.up.changed().await.is_err() {
                        return Err(StepError::Internal(format!(
                            "upstream step `{}` stopped",
                            self.upstream
                        )));
                    }
                }
            }
        }
    }
}

/// Commits a step's batches to its folder and tells downstream steps.
pub(crate) struct DirSink {
    pub(crate) dir: Option<StepDir>,
    pub(crate) tx: Arc<watch::Sender<Up>>,
    pub(crate) handoff: Arc<Handoff>,
    pub(crate) failures: Arc<AtomicU64>,
    pub(crate) rows_out: Arc<AtomicU64>,
}

impl DirSink {
    async fn with_dir<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut StepDir) -> Result<T, StepError> + Send + 'static,
    ) -> Result<T, StepError> {
        let mut dir = self.dir.take().expect("step dir present");
        let (dir, res) = tokio::task::spawn_blocking(move || {
            let r = f(&mut dir);
            (dir, r)
        })
        .await
        .map_err(|e| StepError::Internal(format!("writer task: {e}")))?;
        self.dir = Some(dir);
        res
    }
}

#[async_trait]
impl OutputSink for DirSink {
    async fn commit(&mut self, batch: Batch) -> Result<(), StepError> {
        let nf = batch.failures.len() as u64;
        let nr = batch.records.len() as u64;
        let (parts, records) = self
            .with_dir(move |d| {
                d.commit(&batch)?;
                Ok((d.parts(), batch.records))
            })
            .await?;
        self.failures.fetch_add(nf, Ordering::Relaxed);
        self.rows_out.fetch_add(nr, Ordering::Relaxed);
        self.handoff.put(parts - 1, records);
        self.tx.send_modify(|u| u.parts = parts);
        Ok(())
    }
    async fn side_table(&mut self, name: &str, records: Vec<Record>) -> Result<(), StepError> {
        let name = name.to_string();
        self.with_dir(move |d| d.side_table(&name, &records)).await
    }
    async fn committed(&self) -> Result<Vec<Record>, StepError> {
        let dir = self.dir.as_ref().expect("step dir").dir().to_path_buf();
        tokio::task::spawn_blocking(move || rundir::read_step_records(&dir))
            .await
            .map_err(|e| StepError::Internal(format!("reader task: {e}")))?
    }
    fn consumed(&self) -> u64 {
        self.dir.as_ref().map(|d| d.consumed()).unwrap_or(0)
    }
    fn resume_state(&self) -> Option<serde_json::Value> {
        self.dir.as_ref().and_then(|d| d.resume_state())
    }
}

pub(crate) struct CountingInput {
    pub(crate) inner: PartInput,
    pub(crate) rows_in: Arc<AtomicU64>,
}

#[async_trait]
impl InputStream for CountingInput {
    async fn next_positioned(&mut self) -> Result<Option<Positioned>, StepError> {
        let b = self.inner.next_positioned().await?;
        if let Some(b) = &b {
            self.rows_in
                .fetch_add(b.records.len() as u64, Ordering::Relaxed);
        }
        Ok(b)
    }
}
