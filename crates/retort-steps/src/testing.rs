//! In-memory inputs and outputs so a step can be unit-tested without the runner.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::Record;
use retort_teacher::{Embedder, Teacher};

use crate::api::*;
use crate::cpu::Cpu;

/// An input stream over records held in memory, served in batches of `batch` rows.
pub struct VecInput {
    rows: std::vec::IntoIter<Record>,
    batch: usize,
    next: u64,
}

impl VecInput {
    /// Serve `rows` in batches of `batch`.
    pub fn new(rows: Vec<Record>, batch: usize) -> Self {
        VecInput {
            rows: rows.into_iter(),
            batch: batch.max(1),
            next: 0,
        }
    }
}

#[async_trait]
impl InputStream for VecInput {
    async fn next_positioned(&mut self) -> Result<Option<Positioned>, StepError> {
        let records: Vec<Record> = self.rows.by_ref().take(self.batch).collect();
        if records.is_empty() {
            return Ok(None);
        }
        let positions = (self.next..self.next + records.len() as u64).collect();
        self.next += records.len() as u64;
        Ok(Some(Positioned { positions, records }))
    }
}

/// Inputs from one in-memory table.
pub fn inputs_from(rows: Vec<Record>, batch: usize) -> Inputs {
    Inputs {
        streams: vec![("input".into(), Box::new(VecInput::new(rows, batch)))],
    }
}

/// An output sink that keeps everything in memory.
#[derive(Default)]
pub struct MemSink {
    pub batches: Vec<Batch>,
    pub sides: BTreeMap<String, Vec<Record>>,
    pub previous: Vec<Record>,
    /// Resume state handed to the step (set it to simulate a resumed run).
    pub state: Option<serde_json::Value>,
}

impl MemSink {
    /// All committed records in order.
    pub fn records(&self) -> Vec<Record> {
        self.batches
            .iter()
            .flat_map(|b| b.records.clone())
            .collect()
    }
    /// All committed failures.
    pub fn failures(&self) -> Vec<retort_core::Failure> {
        self.batches
            .iter()
            .flat_map(|b| b.failures.clone())
            .collect()
    }
    /// All committed rejections.
    pub fn rejections(&self) -> Vec<retort_core::Rejection> {
        self.batches
            .iter()
            .flat_map(|b| b.rejections.clone())
            .collect()
    }
}

#[async_trait]
impl OutputSink for MemSink {
    async fn commit(&mut self, batch: Batch) -> Result<(), StepError> {
        self.batches.push(batch);
        Ok(())
    }
    async fn side_table(&mut self, name: &str, records: Vec<Record>) -> Result<(), StepError> {
        self.sides.insert(name.to_string(), records);
        Ok(())
    }
    async fn committed(&self) -> Result<Vec<Record>, StepError> {
        Ok(self.previous.clone())
    }
    fn consumed(&self) -> u64 {
        0
    }
    fn resume_state(&self) -> Option<serde_json::Value> {
        self.state.clone()
    }
}

/// A context for tests: given teachers and embedder, a temp-free base dir.
pub fn test_ctx(
    step_id: &str,
    teachers: BTreeMap<String, Arc<dyn Teacher>>,
    embedder: Option<Arc<dyn Embedder>>,
) -> StepCtx {
    StepCtx {
        step_id: step_id.to_string(),
        kind: "test".to_string(),
        base_dir: PathBuf::from("."),
        run_dir: std::env::temp_dir(),
        seed: 42,
        teachers,
        embedder,
        cpu: Cpu::new(2),
        stats: Arc::new(StepStats::default()),
        gate: None,
        stopping: Default::default(),
    }
}
