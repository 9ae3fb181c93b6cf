//! `self_instruct`: grow seed tasks into many new instruction/input/output tasks.
//!
//! Two modes:
//! - **`alpaca`** (Stanford Alpaca): each call shows `demos` (3) seed tasks and asks for
//!   `num_tasks` (10) new ones as numbered `Instruction/Input/Output` blocks separated by
//!   `###`. When the answer stopped at `max_tokens` the last block is dropped
//!   (`truncated_last`), as Alpaca does.
//! - **`classic`** (Self-Instruct paper): each call shows 8 demo instructions (6 from the
//!   seeds, 2 from tasks generated so far, shuffled) and asks for more as a numbered list;
//!   each surviving instruction then goes through classification identification (a
//!   yes/no call) and instance generation (output-first for classification tasks, so
//!   labels stay balanced; input-first otherwise). Instances with `input == output` or an
//!   empty output are dropped, and a task whose instances give one input two different
//!   outputs is dropped (`conflicting_outputs`). One record is written per instance,
//!   with the task's id in `labels.task_id`.
//!
//! Both modes grow a pool (seeds + accepted tasks) until `target` tasks are accepted or
//! `max_calls` generation calls were made. Each candidate instruction passes, in order:
//! the length/keyword/prefix/first-character filters of `retort_text::filters`
//! (`too_short`, `too_long`, `keyword`, `banned_prefix`, `starts_with_punct`), an
//! exact-repeat check (`duplicate`), and ROUGE-L novelty against the whole pool
//! (`rouge_l` when the maximum F1 is above `threshold`; CJK text compared per
//! character). Accepted instructions join the pool at once, so later candidates of the
//! same round are compared against them too. Every rejection is kept with its reason.
//!
//! Up to `concurrency` generation calls are in flight at every moment; a slow call holds
//! only its own slot. Replies are screened in call order (so which candidate wins a
//! near-duplicate contest does not depend on timing), and finished calls are committed
//! in call order about every `concurrency` calls together with the call counter, so a
//! resumed run rebuilds the pool from the committed records and continues with the next
//! call index. Call `i` takes its demos from the pool as it stood when call
//! `i − 8·concurrency` finished (see `lag`), and demo sampling and request seeds derive
//! from the step seed and the call index, so a re-run sends the same requests (and hits
//! the response cache) whatever the timing.
//!
//! Size: ~720 lines of code plus tests, for two recipes (Alpaca and classic) that share
//! the pool, the filters and the commit state; the continuous growth loop is already
//! apart in `growth.rs` and the reply parsers in `generate/replies.rs`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::seq::{IndexedRandom, SliceRandom};
use retort_core::{content_id, Message, Provenance, Record};
use retort_teacher::{ChatResponse, Teacher};
use retort_text::{InstructionFilter, NoveltyIndex};
use serde::Deserialize;
use serde_json::json;

use crate::api::{Inputs, OutputSink, Shape, Step, StepCtx, StepError};
use crate::gen_common::{self as gc, Outcome, Sampling};
use crate::generate::replies::{
    parse_alpaca, parse_classic_list, parse_instances, parse_yes_no, Candidate, Instances,
};
use crate::spec::{parse_options, BuildCtx, Built, StepSpec};
use crate::templates::Template;

mod growth;
use growth::Growth;

/// Generation method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Stanford Alpaca: N tasks per call with instances.
    #[default]
    Alpaca,
    /// Self-Instruct paper: instructions, then classification, then instances.
    Classic,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Alpaca => "alpaca",
            Mode::Classic => "classic",
        }
    }
}

/// Options of `kind = "self_instruct"`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfInstructOptions {
    /// Teacher that writes the tasks.
    pub teacher: String,
    /// `alpaca` (default) or `classic`.
    #[serde(default)]
    pub mode: Mode,
    /// Stop once this many new tasks were accepted (default 100).
    #[serde(default = "default_target")]
    pub target: u64,
    /// Most generation calls (default: `target`). Classic mode's classification and
    /// instance calls are not counted here.
    pub max_calls: Option<u64>,
    /// ROUGE-L F1 above which a candidate is too similar to the pool (default 0.7).
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// New tasks asked for per call (default 10 for alpaca, 8 for classic).
    pub num_tasks: Option<usize>,
    /// Demo tasks shown per call (default 3 for alpaca, 8 for classic).
    pub demos: Option<usize>,
    /// Classic: how many of the demos come from generated tasks once there are some
    /// (default 2; the rest are seeds).
    pub machine_demos: Option<usize>,
    /// Language the tasks must be written in (e.g. `"Chinese"`); unset = English.
    pub language: Option<String>,
    /// Calls in flight (default 16); also the number of calls per round.
    #[serde(default = "gc::default_concurrency")]
    pub concurrency: usize,
    /// Sampling temperature of generation calls (default 1.0 alpaca, 0.7 classic).
    pub temperature: Option<f32>,
    /// Nucleus sampling of generation calls (default 1.0).
    pub top_p: Option<f32>,
    /// `max_tokens` of generation calls (default 3072 alpaca, 1024 classic).
    pub max_tokens: Option<u32>,
    /// Generation template (default `alpaca_generate` / `classic_instructions`).
    pub template: Option<String>,
    /// Classic: classification-identification template.
    pub classify_template: Option<String>,
    /// Classic: instance template for non-classification tasks.
    pub input_first_template: Option<String>,
    /// Classic: instance template for classification tasks.
    pub output_first_template: Option<String>,
    /// Classic: most instances kept per task (default 5).
    #[serde(default = "default_max_instances")]
    pub max_instances: usize,
    /// Fewest words of an instruction in spaced scripts (default 4, Alpaca's `> 3`).
    pub min_words: Option<usize>,
    /// Most words of an instruction in spaced scripts (default 150).
    pub max_words: Option<usize>,
    /// Fewest characters of a CJK instruction (default 5).
    pub min_chars_cjk: Option<usize>,
    /// Most characters of a CJK instruction (default 300).
    pub max_chars_cjk: Option<usize>,
    /// Keywords added to the built-in English and Chinese blacklists.
    #[serde(default)]
    pub extra_keywords: Vec<String>,
}

fn default_target() -> u64 {
    100
}
fn default_threshold() -> f64 {
    0.7
}
fn default_max_instances() -> usize {
    5
}

/// The runnable step.
pub struct SelfInstruct {
    o: SelfInstructOptions,
    num_tasks: usize,
    demos: usize,
    machine_demos: usize,
    max_calls: u64,
    gen: Sampling,
    aux: Sampling,
    filter: InstructionFilter,
    t_gen: Arc<Template>,
    /// Classic only: classify, input-first, output-first.
    t_classic: Option<[Arc<Template>; 3]>,
}

/// Build `self_instruct` from its options.
pub fn build(spec: &StepSpec, ctx: &BuildCtx) -> Result<Built, Vec<String>> {
    let o: SelfInstructOptions = parse_options(spec)?;
    let mut errors = vec![];
    let mut files = vec![];
    gc::check_teacher(ctx, "teacher", &o.teacher, &mut errors);
    gc::check_unit("threshold", o.threshold, &mut errors);
    if o.target == 0 {
        errors.push("`target` must be at least 1".into());
    }
    if o.concurrency == 0 {
        errors.push("`concurrency` must be at least 1".into());
    }
    let classic = o.mode == Mode::Classic;
    let num_tasks = o.num_tasks.unwrap_or(if classic { 8 } else { 10 });
    let demos = o.demos.unwrap_or(if classic { 8 } else { 3 });
    let machine_demos = o.machine_demos.unwrap_or(if classic { 2 } else { 0 });
    if num_tasks == 0 || demos == 0 {
        errors.push("`num_tasks` and `demos` must be at least 1".into());
    }
    if machine_demos > demos {
        errors.push(format!(
            "`machine_demos` ({machine_demos}) cannot exceed `demos` ({demos})"
        ));
    }
    if !classic && o.machine_demos.is_some() {
        errors.push(
            "`machine_demos` applies to mode = \"classic\" only (Alpaca shows seed tasks only)"
                .into(),
        );
    }
    if !classic
        && (o.classify_template.is_some()
            || o.input_first_template.is_some()
            || o.output_first_template.is_some())
    {
        errors.push("`classify_template`, `input_first_template` and `output_first_template` apply to mode = \"classic\" only".into());
    }
    let gen_default = if classic {
        "classic_instructions"
    } else {
        "alpaca_generate"
    };
    let t_gen = gc::load_template(
        o.template.as_deref().unwrap_or(gen_default),
        "template",
        ctx,
        &mut files,
        &mut errors,
    );
    let t_classic = if classic {
        let a = gc::load_template(
            o.classify_template
                .as_deref()
                .unwrap_or("classic_is_classification"),
            "classify_template",
            ctx,
            &mut files,
            &mut errors,
        );
        let b = gc::load_template(
            o.input_first_template
                .as_deref()
                .unwrap_or("classic_instances_input_first"),
            "input_first_template",
            ctx,
            &mut files,
            &mut errors,
        );
        let c = gc::load_template(
            o.output_first_template
                .as_deref()
                .unwrap_or("classic_instances_output_first"),
            "output_first_template",
            ctx,
            &mut files,
            &mut errors,
        );
        match (a, b, c) {
            (Some(a), Some(b), Some(c)) => Some([a, b, c]),
            _ => None,
        }
    } else {
        None
    };
    let (Some(t_gen), true) = (t_gen, errors.is_empty()) else {
        return Err(errors);
    };
    let mut filter = InstructionFilter::default();
    if let Some(v) = o.min_words {
        filter.min_words = v;
    }
    if let Some(v) = o.max_words {
        filter.max_words = v;
    }
    if let Some(v) = o.min_chars_cjk {
        filter.min_chars_cjk = v;
    }
    if let Some(v) = o.max_chars_cjk {
        filter.max_chars_cjk = v;
    }
    filter.blacklist.extend(o.extra_keywords.iter().cloned());
    let gen = Sampling {
        temperature: Some(o.temperature.unwrap_or(if classic { 0.7 } else { 1.0 })),
        top_p: Some(o.top_p.unwrap_or(1.0)),
        max_tokens: Some(o.max_tokens.unwrap_or(if classic { 1024 } else { 3072 })),
    };
    let aux = Sampling {
        temperature: Some(0.0),
        top_p: None,
        max_tokens: Some(1024),
    };
    let max_calls = o.max_calls.unwrap_or(o.target);
    let mut estimates = vec![gc::estimate(
        &o.teacher,
        0.0,
        max_calls,
        gc::prompt_tokens_estimate(&t_gen, (demos as u64).saturating_mul(80)),
        gen,
    )];
    if let Some([c, i, _]) = &t_classic {
        estimates.push(gc::estimate(
            &o.teacher,
            0.0,
            o.target,
            gc::prompt_tokens_estimate(c, 40),
            Sampling {
                max_tokens: Some(8),
                ..aux
            },
        ));
        estimates.push(gc::estimate(
            &o.teacher,
            0.0,
            o.target,
            gc::prompt_tokens_estimate(i, 40),
            aux,
        ));
    }
    let writes = format!(
        "up to {} new tasks ({} mode) as instruction/input/output",
        o.target,
        o.mode.as_str()
    );
    let step = SelfInstruct {
        num_tasks,
        demos,
        machine_demos,
        max_calls,
        gen,
        aux,
        filter,
        t_gen,
        t_classic,
        o,
    };
    let mut built = Built::new(Arc::new(step), writes);
    built.files = files;
    built.estimates = estimates;
    Ok(built)
}

/// A task in the pool (seed or generated).
#[derive(Clone, Debug)]
struct Task {
    id: String,
    instruction: String,
    input: String,
    output: String,
    /// Seed ids at the root of this task.
    seeds: Vec<String>,
}

/// A candidate's rejection before it reaches the pool.
type Reject = (String, &'static str, String, String);

/// The novelty pool with exact-repeat keys and item ids (for rejection details).
struct Pool {
    index: NoveltyIndex,
    keys: HashSet<String>,
    ids: Vec<String>,
}

impl Pool {
    fn new(threshold: f64) -> Self {
        Pool {
            index: NoveltyIndex::new(threshold),
            keys: HashSet::new(),
            ids: vec![],
        }
    }
    fn add(&mut self, id: &str, instruction: &str) {
        self.index.add(instruction);
        self.keys.insert(gc::dup_key(instruction));
        self.ids.push(id.to_string());
    }
}

/// Screen candidates in order: filters, exact repeats, room left, ROUGE-L novelty.
/// Accepted ones join the pool. Returns (accepted, rejections as (id, reason, detail, text)).
fn screen(
    pool: &mut Pool,
    filter: &InstructionFilter,
    cands: Vec<(usize, Candidate)>,
    mut room: u64,
) -> (Vec<(usize, Candidate)>, Vec<Reject>) {
    let mut accepted = vec![];
    let mut rejected = vec![];
    for (call, c) in cands {
        let id = content_id(&[&c.instruction, &c.input, &c.output]);
        if let Err(r) = filter.check(&c.instruction) {
            rejected.push((id, r.reason, r.detail, c.instruction));
            continue;
        }
        if pool.keys.contains(&gc::dup_key(&c.instruction)) {
            rejected.push((
                id,
                "duplicate",
                "same instruction already in the pool".into(),
                c.instruction,
            ));
            continue;
        }
        if room == 0 {
            rejected.push((
                id,
                "over_target",
                "target already reached this round".into(),
                c.instruction,
            ));
            continue;
        }
        let d = pool.index.check(&c.instruction);
        if !d.accepted {
            let other = d
                .most_similar
                .map(|i| pool.ids[i].clone())
                .unwrap_or_default();
            rejected.push((
                id,
                "rouge_l",
                format!("{:.3} > {} vs {other}", d.max_sim, pool.index.threshold()),
                c.instruction,
            ));
            continue;
        }
        pool.add(&id, &c.instruction);
        room -= 1;
        accepted.push((call, c));
    }
    (accepted, rejected)
}

fn task_from_record(r: &Record) -> Option<Task> {
    let instruction = r
        .instruction
        .clone()
        .or_else(|| {
            r.messages
                .iter()
                .find(|m| m.role == "user")
                .map(|m| m.content.clone())
        })
        .filter(|s| !s.trim().is_empty())?;
    Some(Task {
        id: r.id.clone(),
        instruction: instruction.trim().to_string(),
        input: r.input.clone().unwrap_or_default(),
        output: r.response_text().unwrap_or_default(),
        seeds: gc::root_seeds(r),
    })
}

/// One prepared generation call.
struct Call {
    index: u64,
    demos: Vec<Task>,
    prompt: String,
}

impl SelfInstruct {
    fn prepare(
        &self,
        ctx: &StepCtx,
        index: u64,
        seeds: &[Task],
        machine: &[Task],
    ) -> Result<Call, StepError> {
        let mut rng = gc::rng(ctx.seed, &[index]);
        let n_machine = self.machine_demos.min(machine.len());
        let n_human = (self.demos - n_machine).min(seeds.len());
        let mut demos: Vec<Task> = seeds
            .choose_multiple(&mut rng, n_human)
            .cloned()
            .chain(machine.choose_multiple(&mut rng, n_machine).cloned())
            .collect();
        demos.shuffle(&mut rng);
        let language = self.o.language.as_deref();
        let vars = match self.o.mode {
            Mode::Alpaca => json!({
                "demos": demos.iter().map(|d| json!({
                    "instruction": d.instruction, "input": d.input, "output": d.output,
                })).collect::<Vec<_>>(),
                "num_tasks": self.num_tasks,
                "start": demos.len() + 1,
                "language": language,
            }),
            Mode::Classic => json!({
                "demos": demos.iter().map(|d| gc::collapse_ws(&d.instruction).trim_end_matches(':').to_string()).collect::<Vec<_>>(),
                "num_tasks": self.num_tasks,
                "start": demos.len() + 1,
                "language": language,
            }),
        };
        let prompt = gc::render(&self.t_gen, vars)?;
        Ok(Call {
            index,
            demos,
            prompt,
        })
    }

    fn record(
        &self,
        ctx: &StepCtx,
        inst: &str,
        input: &str,
        output: &str,
        demos: &[Task],
        template: &str,
    ) -> Record {
        let mut labels = BTreeMap::new();
        labels.insert("mode".to_string(), self.o.mode.as_str().to_string());
        labels.insert(
            "language".to_string(),
            retort_text::heuristics::detect_language(inst).to_string(),
        );
        let mut seeds: Vec<String> = demos.iter().flat_map(|d| d.seeds.clone()).collect();
        seeds.sort();
        seeds.dedup();
        Record {
            id: content_id(&[inst, input, output]),
            instruction: Some(inst.to_string()),
            input: (!input.is_empty()).then(|| input.to_string()),
            output: Some(output.to_string()),
            labels,
            provenance: Provenance {
                step: ctx.step_id.clone(),
                teacher: Some(self.o.teacher.clone()),
                template: Some(template.to_string()),
                parents: demos.iter().map(|d| d.id.clone()).collect(),
                seeds,
            },
            ..Default::default()
        }
    }

    /// Classic mode: classification identification + instances for one instruction.
    async fn classic_task(
        &self,
        ctx: &StepCtx,
        teacher: &dyn Teacher,
        call: u64,
        ordinal: u64,
        instruction: String,
        demos: Vec<Task>,
    ) -> Result<Outcome, StepError> {
        let [t_cls, t_in, t_out] = self.t_classic.as_ref().expect("classic templates");
        let step = &ctx.step_id;
        let task_id = content_id(&[&instruction]);
        let mut out = Outcome::default();
        let language = self.o.language.as_deref();
        let p = gc::render(t_cls, json!({ "instruction": instruction }))?;
        let req = Sampling {
            max_tokens: Some(8),
            ..self.aux
        }
        .request(
            vec![Message::user(p)],
            gc::derive_seed(ctx.seed, &[call, ordinal, 1]),
            0,
        );
        let rid = format!("{task_id}#classify");
        let r = match crate::calls::chat(ctx, teacher, req, &rid).await? {
            Ok(r) => r,
            Err(f) => {
                out.failures.push(f);
                return Ok(out);
            }
        };
        let Some(is_cls) = parse_yes_no(&r.content) else {
            out.fail(
                step,
                &rid,
                "parse",
                "classification answer is neither yes nor no",
                r.content,
            );
            return Ok(out);
        };
        let (t, fields_name) = if is_cls {
            (t_out, "output_first")
        } else {
            (t_in, "input_first")
        };
        let p = gc::render(
            t,
            json!({
                "instruction": instruction,
                "max_instances": self.o.max_instances,
                "language": language,
            }),
        )?;
        let req = self.aux.request(
            vec![Message::user(p)],
            gc::derive_seed(ctx.seed, &[call, ordinal, 2]),
            0,
        );
        let rid = format!("{task_id}#instances");
        let r = match crate::calls::chat(ctx, teacher, req, &rid).await? {
            Ok(r) => r,
            Err(f) => {
                out.failures.push(f);
                return Ok(out);
            }
        };
        let parsed =
            match parse_instances(&r.content, r.finish_reason, is_cls, self.o.max_instances) {
                Ok(p) => p,
                Err(e) => {
                    out.fail(
                        step,
                        &rid,
                        "parse",
                        format!("{fields_name} instances: {e}"),
                        r.content,
                    );
                    return Ok(out);
                }
            };
        let (kept, rejects) = match parsed {
            Instances::Kept(k, r) => (k, r),
            Instances::Dropped(reason, detail, r) => {
                for (why, d, text) in r {
                    out.reject(step, &task_id, why, d, text);
                }
                out.reject(step, &task_id, reason, detail, instruction);
                return Ok(out);
            }
        };
        for (why, d, text) in rejects {
            out.reject(step, &task_id, why, d, text);
        }
        for (input, output) in kept {
            let mut rec = self.record(ctx, &instruction, &input, &output, &demos, &t.name);
            rec.labels
                .insert("is_classification".into(), is_cls.to_string());
            rec.labels.insert("task_id".into(), task_id.clone());
            rec.provenance.template = Some(format!("{} + {}", self.t_gen.name, t.name));
            out.records.push(rec);
        }
        Ok(out)
    }
}

#[async_trait]
impl Step for SelfInstruct {
    fn shape(&self) -> Shape {
        Shape::WholeTable
    }

    async fn run(
        &self,
        ctx: &StepCtx,
        inputs: Inputs,
        out: &mut dyn OutputSink,
    ) -> Result<(), StepError> {
        let teacher = ctx.teacher(&self.o.teacher)?;
        let step = ctx.step_id.clone();
        let rows = inputs.read_all().await?;
        let mut seeds = vec![];
        let mut bad_seeds = Outcome::default();
        for r in &rows {
            match task_from_record(r) {
                Some(t) => seeds.push(t),
                None => bad_seeds.fail(
                    &step,
                    &r.id,
                    "bad_input",
                    "seed record has no instruction (or user turn)",
                    serde_json::to_string(r).unwrap_or_default(),
                ),
            }
        }
        if seeds.is_empty() {
            return Err(StepError::Config(format!(
                "step `{step}`: self_instruct needs seed tasks with an `instruction`; its input has {} rows and none has one",
                rows.len()
            )));
        }
        let mut pool = Pool::new(self.o.threshold);
        for s in &seeds {
            pool.add(&s.id, &s.instruction);
        }
        // Resume: rebuild the pool from what an interrupted attempt committed.
        let mut machine: Vec<Task> = vec![];
        for r in out.committed().await? {
            if let Some(t) = task_from_record(&r) {
                if !pool.keys.contains(&gc::dup_key(&t.instruction)) {
                    pool.add(&t.id, &t.instruction);
                    machine.push(t);
                }
            }
        }
        let accepted = machine.len() as u64;
        let calls = out
            .resume_state()
            .and_then(|s| s.get("calls").and_then(|c| c.as_u64()))
            .unwrap_or(0);
        if accepted > 0 || calls > 0 {
            tracing::info!(step = %step, accepted, calls, "self_instruct resuming");
        }
        ctx.stats.set_total(self.o.target);
        ctx.stats.add_done(accepted.min(self.o.target));
        let mut run = Growth {
            step: self,
            ctx,
            teacher,
            seeds: &seeds,
            machine,
            pool: Some(pool),
            accepted,
            base: calls,
            len_at: VecDeque::from([(calls, 0)]),
            next_call: calls,
            screened: calls,
            done: calls,
            results: BTreeMap::new(),
            per_call: BTreeMap::new(),
            committed_calls: calls,
        };
        run.len_at[0].1 = run.machine.len();
        let calls = run.run(out, bad_seeds).await?;
        let accepted = run.accepted;
        ctx.stats.set_metric("calls", calls as f64);
        ctx.stats.set_metric("accepted", accepted as f64);
        if accepted < self.o.target {
            tracing::warn!(
                step = %step,
                accepted,
                target = self.o.target,
                calls,
                "self_instruct stopped at max_calls before reaching its target"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use retort_teacher::FinishReason;

    #[test]
    fn yes_no_answers() {
        assert_eq!(parse_yes_no("Yes"), Some(true));
        assert_eq!(parse_yes_no("no."), Some(false));
        assert_eq!(parse_yes_no("Is it classification? Yes"), Some(true));
        assert_eq!(parse_yes_no("是的，这是分类任务"), Some(true));
        assert_eq!(parse_yes_no("不是"), Some(false));
        assert_eq!(parse_yes_no("Maybe"), None);
        assert_eq!(parse_yes_no(""), None);
    }

    #[test]
    fn instances_keep_at_most_max_and_say_so() {
        let reply = "Class label: a\nInput: x\nClass label: b\nInput: y\nClass label: c\nInput: z";
        match parse_instances(reply, FinishReason::Stop, true, 2).unwrap() {
            Instances::Kept(k, r) => {
                assert_eq!(k, vec![("x".into(), "a".into()), ("y".into(), "b".into())]);
                assert_eq!(r[0].0, "too_many_instances");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_instances("nothing here", FinishReason::Stop, false, 5).is_err());
    }

    #[test]
    fn alpaca_length_drops_only_the_last_block() {
        let reply = "4. Instruction: A b c d\n4. Input:\n<noinput>\n4. Output:\nx\n###\n5. Instruction: E f g h\n5. Input:\n<noinput>\n5. Output:\ny";
        let (c, r) = parse_alpaca(reply, FinishReason::Stop).unwrap();
        assert_eq!((c.len(), r.len()), (2, 0));
        let (c, r) = parse_alpaca(reply, FinishReason::Length).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(r[0].0, "truncated_last");
        assert!(r[0].2.contains("E f g h"));
    }

    #[test]
    fn huge_demos_builds() {
        // Found by the compile fuzz tests: the plan estimate `demos * 80` overflowed.
        let spec = StepSpec {
            id: "tasks".into(),
            kind: "self_instruct".into(),
            after: vec!["seeds".into()],
            options: toml::from_str("teacher = \"t\"\ndemos = 9223372036854775807").unwrap(),
        };
        let ctx = BuildCtx {
            teachers: vec!["t".into()],
            ..Default::default()
        };
        assert!(build(&spec, &ctx).is_ok());
    }
}
