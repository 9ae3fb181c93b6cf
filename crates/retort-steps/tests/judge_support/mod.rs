//! An in-process scripted judge for the score/judge/pair tests.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retort_core::{Candidate, Record};
use retort_steps::testing::test_ctx;
use retort_steps::StepCtx;
use retort_teacher::{ChatRequest, ChatResponse, FinishReason, Teacher, TeacherError, Usage};

type Rule = Box<dyn Fn(&str) -> Result<String, TeacherError> + Send + Sync>;

/// Answers from a queue first, then from a rule over the prompt text. Keeps every
/// request it saw.
pub struct ScriptedTeacher {
    queue: Mutex<VecDeque<Result<String, TeacherError>>>,
    rule: Option<Rule>,
    pub seen: Mutex<Vec<ChatRequest>>,
    /// How long each call takes, in microseconds (0: answers at once).
    delay_us: AtomicU64,
}

impl ScriptedTeacher {
    /// Replies served in order (use `concurrency = 1` so order is request order).
    pub fn queued(replies: Vec<Result<String, TeacherError>>) -> Arc<Self> {
        Arc::new(ScriptedTeacher {
            queue: Mutex::new(replies.into()),
            rule: None,
            seen: Mutex::new(vec![]),
            delay_us: AtomicU64::new(0),
        })
    }

    /// Replies computed from the prompt text.
    pub fn rule(
        f: impl Fn(&str) -> Result<String, TeacherError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(ScriptedTeacher {
            queue: Mutex::new(VecDeque::new()),
            rule: Some(Box::new(f)),
            seen: Mutex::new(vec![]),
            delay_us: AtomicU64::new(0),
        })
    }

    /// Make every call take `d`, so calls in flight together interleave.
    pub fn set_delay(&self, d: std::time::Duration) {
        self.delay_us.store(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

#[async_trait]
impl Teacher for ScriptedTeacher {
    fn name(&self) -> &str {
        "judge"
    }
    fn model(&self) -> &str {
        "scripted-judge"
    }
    async fn chat(&self, _step: &str, req: ChatRequest) -> Result<ChatResponse, TeacherError> {
        let prompt = req
            .messages
            .last()
            .map(|m| m.content.clone())
            .unwrap_or_default();
        self.seen.lock().unwrap().push(req);
        let delay = self.delay_us.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_micros(delay)).await;
        }
        let next = self.queue.lock().unwrap().pop_front();
        let content = match next {
            Some(r) => r?,
            None => match &self.rule {
                Some(f) => f(&prompt)?,
                None => return Err(TeacherError::Other("script exhausted".into())),
            },
        };
        Ok(ChatResponse {
            content,
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            model: "scripted-judge".into(),
            cached: false,
            reasoning: None,
            tool_calls: Vec::new(),
        })
    }
}

/// A step context whose only teacher is `t`, named `judge`.
pub fn ctx_with(t: Arc<ScriptedTeacher>) -> StepCtx {
    let mut teachers: BTreeMap<String, Arc<dyn Teacher>> = BTreeMap::new();
    teachers.insert("judge".into(), t);
    test_ctx("step", teachers, None)
}

/// An instruction/output record.
pub fn rec(id: &str, instruction: &str, output: Option<&str>) -> Record {
    Record {
        id: id.into(),
        instruction: Some(instruction.into()),
        output: output.map(String::from),
        ..Default::default()
    }
}

/// A record with candidate answers (teacher `t<i>`, model `m<i>`).
pub fn with_candidates(id: &str, instruction: &str, answers: &[&str]) -> Record {
    let mut r = rec(id, instruction, None);
    r.candidates = answers
        .iter()
        .enumerate()
        .map(|(i, a)| Candidate {
            teacher: format!("t{i}"),
            model: format!("m{i}"),
            sample: 0,
            content: a.to_string(),
            score: None,
            rationale: None,
            reasoning: None,
        })
        .collect();
    r
}
