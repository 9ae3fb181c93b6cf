//! Judge calibration: before a `score` or `judge` step trusts its judge with the run's
//! records, it asks the same teacher, with the same template and settings, about a set
//! of prompts that each have one clearly good answer and one flawed one, and measures
//! how often the judge prefers the good one.
//!
//! ```toml
//! calibration = "auto"             # default; "off", or a path to your own set (JSONL)
//! min_calibration_accuracy = 0.8   # stop the step when the judge does worse
//! ```
//!
//! **The set.** The built-in set (`crates/retort-steps/data/calibration.jsonl`, written
//! for this project) holds 63 English and 42 Chinese items, each
//! `{"id", "lang", "prompt", "good", "bad", "flaw"}` with the flaw one of `wrong_fact`,
//! `wrong_language`, `off_topic`, `truncated`, `needless_refusal`, `unsafe_compliance`,
//! `ignored_constraint`. A file of your own uses the same fields (`lang` and `flaw` are
//! free text, used to group the results).
//!
//! **What is measured.** Pointwise (a `score` step's quality rubric, a pointwise
//! `judge`): both answers are rated; an item counts 1 when the good answer scores
//! higher, ½ on a tie, 0 when the flawed one wins or a reply cannot be read. Pairwise
//! (a pairwise `judge`): the pair is asked in both orders; each verdict counts 1 for the
//! good answer, ½ for a tie, 0 otherwise, and the item is the mean of its two. So a judge
//! that always answers "10", or always "A", comes out at exactly 0.5: chance. Reported as
//! step metrics in the manifest (and so in the report): `calibration_accuracy`, per flaw
//! `calibration_flaw_<flaw>`, per language `calibration_lang_<lang>`, the tie rate,
//! unreadable replies, calls and tokens, and for pairwise judges the first-position
//! preference (share of decided verdicts that chose A; 0.5 is unbiased) and
//! `calibration_swap_agreement` (both orders chose the good answer).
//!
//! **When it runs.** With a path, or `"on"`, before the step's first record. With `"auto"`
//! it runs once the step has started records worth [`AUTO_MIN_CALLS`] calls, so a small
//! run is not made to pay for it and a large one has spent at most that much before its
//! judge is checked. The calls go through the teacher like any other (cached, counted in
//! the step's tokens and cost); a rerun of the same command asks nothing new.
//!
//! Size: ~610 lines of code plus ~120 of tests: the set, the scoring rule and the
//! runner are one contract (a constant judge must land at chance), so they stay
//! together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use retort_core::Record;
use retort_teacher::Teacher;
use serde::{Deserialize, Serialize};

use crate::api::{StepCtx, StepError};
use crate::judge_parse::{parse_score, parse_verdict, read_reply, JudgeFormat, Scale, Verdict};

/// The built-in calibration set (JSONL).
pub const BUILTIN_SET: &str = include_str!("../../data/calibration.jsonl");

/// `calibration = "auto"` runs the set once a step has started records worth this many
/// judge calls: ~2× the set's own pointwise cost, so auto calibration never more than
/// doubles a run's judge calls and a run that scores thousands of records pays a few
/// percent.
pub const AUTO_MIN_CALLS: u64 = 400;

/// Below this accuracy a run that set no `min_calibration_accuracy` is warned.
pub const WARN_BELOW: f64 = 0.8;

/// The `calibration` option.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Mode {
    /// Once the step will make more than [`AUTO_MIN_CALLS`] calls.
    #[default]
    Auto,
    /// Never.
    Off,
    /// Always, with the built-in set.
    On,
    /// Always, with this set (resolved against the pipeline's directory).
    File(PathBuf),
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(match s.as_str() {
            "auto" => Mode::Auto,
            "off" => Mode::Off,
            "on" => Mode::On,
            _ => Mode::File(PathBuf::from(s)),
        })
    }
}

/// One calibration item: a prompt, a good answer and a flawed one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Unique id.
    pub id: String,
    /// Language of the prompt (`en`, `zh`, …).
    pub lang: String,
    /// The instruction.
    pub prompt: String,
    /// A clearly good answer.
    pub good: String,
    /// An answer with one flaw.
    pub bad: String,
    /// What is wrong with `bad`.
    pub flaw: String,
}

/// Parse a calibration set; errors name `source` and the line.
pub fn parse_set(text: &str, source: &str) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item: Item = serde_json::from_str(line).map_err(|e| {
            format!(
                "{source}:{}: not a calibration item ({e}); each line is {{\"id\", \"lang\", \"prompt\", \"good\", \"bad\", \"flaw\"}}",
                i + 1
            )
        })?;
        for (name, v) in [
            ("prompt", &item.prompt),
            ("good", &item.good),
            ("bad", &item.bad),
        ] {
            if v.trim().is_empty() {
                return Err(format!("{source}:{}: `{name}` is empty", i + 1));
            }
        }
        if !ids.insert(item.id.clone()) {
            return Err(format!(
                "{source}:{}: id `{}` appears twice",
                i + 1,
                item.id
            ));
        }
        items.push(item);
    }
    if items.is_empty() {
        return Err(format!("{source}: the calibration set has no items"));
    }
    Ok(items)
}

/// The set the option names: none for `off`, the built-in set for `auto`/`on`.
pub fn load(mode: &Mode, base_dir: &Path) -> Result<Option<Vec<Item>>, String> {
    match mode {
        Mode::Off => Ok(None),
        Mode::Auto | Mode::On => parse_set(BUILTIN_SET, "the built-in calibration set").map(Some),
        Mode::File(p) => {
            let path = base_dir.join(p);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "calibration = \"{}\": cannot read {} ({e}); give a JSONL calibration set, \"auto\", \"on\" or \"off\"",
                    p.display(),
                    path.display()
                )
            })?;
            parse_set(&text, &path.display().to_string()).map(Some)
        }
    }
}

/// Renders the pointwise prompts rating an answer to a record, one per rubric.
pub type PointwisePrompts<'a> =
    Box<dyn Fn(&Record, &str) -> Result<Vec<String>, StepError> + Send + Sync + 'a>;
/// Renders the pairwise prompt showing answer A, then answer B.
pub type PairwisePrompt<'a> =
    Box<dyn Fn(&Record, &str, &str) -> Result<String, StepError> + Send + Sync + 'a>;

/// How the step's judge is asked: the step renders its own templates.
pub enum Asker<'a> {
    /// Prompts that rate `answer` to the record's prompt, one per rubric; the answer's
    /// score is their mean.
    Pointwise {
        prompts: PointwisePrompts<'a>,
        scale: Scale,
    },
    /// The prompt comparing answer A with answer B.
    Pairwise { prompt: PairwisePrompt<'a> },
}

/// What the judge said about one item.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    /// Scores of the good and the flawed answer (`None`: a reply could not be read).
    Pointwise(Option<f64>, Option<f64>),
    /// Verdicts with the good answer as A, then with the flawed answer as A.
    Pairwise(Option<Verdict>, Option<Verdict>),
}

impl Outcome {
    /// The item's credit: 1 for preferring the good answer, ½ for a tie, 0 otherwise.
    fn credit(&self) -> f64 {
        match *self {
            Outcome::Pointwise(Some(g), Some(b)) => {
                if g > b {
                    1.0
                } else if g == b {
                    0.5
                } else {
                    0.0
                }
            }
            Outcome::Pointwise(..) => 0.0,
            Outcome::Pairwise(first, second) => {
                let v = |v: Option<Verdict>, good: Verdict| match v {
                    Some(Verdict::Tie) => 0.5,
                    Some(x) if x == good => 1.0,
                    _ => 0.0,
                };
                (v(first, Verdict::A) + v(second, Verdict::B)) / 2.0
            }
        }
    }
}

/// The calibration results.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Items asked.
    pub items: u64,
    /// Judge calls made (cached ones included).
    pub calls: u64,
    /// Tokens of those calls.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Mean credit over items (0.5 is chance).
    pub accuracy: f64,
    /// Share of ties: equal scores, or `tie` verdicts.
    pub tie_rate: f64,
    /// Share of replies that could not be read.
    pub unparsed: f64,
    /// Pairwise: share of decided verdicts that chose position A.
    pub first_position: Option<f64>,
    /// Pairwise: share of items where both orders chose the good answer.
    pub swap_agreement: Option<f64>,
    /// Accuracy per flaw.
    pub per_flaw: BTreeMap<String, f64>,
    /// Accuracy per language.
    pub per_lang: BTreeMap<String, f64>,
}

impl Report {
    /// Summarise outcomes (one per item, in item order).
    pub fn from_outcomes(items: &[Item], outcomes: &[Outcome]) -> Report {
        let n = outcomes.len().max(1) as f64;
        let mut r = Report {
            items: outcomes.len() as u64,
            ..Default::default()
        };
        let mut groups: [BTreeMap<String, (f64, f64)>; 2] = Default::default();
        let (mut ties, mut unread, mut replies) = (0.0, 0.0, 0.0f64);
        let (mut first, mut decided, mut agree) = (0.0, 0.0, 0.0);
        for (item, o) in items.iter().zip(outcomes) {
            let c = o.credit();
            r.accuracy += c;
            for (g, key) in groups.iter_mut().zip([&item.flaw, &item.lang]) {
                let e = g.entry(key.clone()).or_default();
                e.0 += c;
                e.1 += 1.0;
            }
            match *o {
                Outcome::Pointwise(g, b) => {
                    replies += 2.0;
                    unread += [g, b].iter().filter(|s| s.is_none()).count() as f64;
                    if g.is_some() && g == b {
                        ties += 1.0;
                    }
                }
                Outcome::Pairwise(v1, v2) => {
                    replies += 2.0;
                    for v in [v1, v2] {
                        match v {
                            None => unread += 1.0,
                            Some(Verdict::Tie) => ties += 0.5,
                            Some(x) => {
                                decided += 1.0;
                                if x == Verdict::A {
                                    first += 1.0;
                                }
                            }
                        }
                    }
                    if v1 == Some(Verdict::A) && v2 == Some(Verdict::B) {
                        agree += 1.0;
                    }
                }
            }
        }
        r.accuracy /= n;
        r.tie_rate = ties / n;
        r.unparsed = unread / replies.max(1.0);
        if matches!(outcomes.first(), Some(Outcome::Pairwise(..))) {
            r.first_position = (decided > 0.0).then(|| first / decided);
            r.swap_agreement = Some(agree / n);
        }
        let [flaws, langs] = groups;
        r.per_flaw = flaws.into_iter().map(|(k, (c, m))| (k, c / m)).collect();
        r.per_lang = langs.into_iter().map(|(k, (c, m))| (k, c / m)).collect();
        r
    }

    /// The step metrics this report is written as (see the module docs for names).
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut m = vec![
            ("calibration_items".to_string(), self.items as f64),
            ("calibration_calls".to_string(), self.calls as f64),
            (
                "calibration_tokens".to_string(),
                (self.prompt_tokens + self.completion_tokens) as f64,
            ),
            ("calibration_accuracy".to_string(), self.accuracy),
            ("calibration_tie_rate".to_string(), self.tie_rate),
            ("calibration_unparsed".to_string(), self.unparsed),
        ];
        if let Some(f) = self.first_position {
            m.push(("calibration_first_position".into(), f));
        }
        if let Some(a) = self.swap_agreement {
            m.push(("calibration_swap_agreement".into(), a));
        }
        for (k, v) in &self.per_flaw {
            m.push((format!("calibration_flaw_{}", metric_key(k)), *v));
        }
        for (k, v) in &self.per_lang {
            m.push((format!("calibration_lang_{}", metric_key(k)), *v));
        }
        m
    }

    /// One line for messages: accuracy and the weakest flaws.
    pub fn summary(&self) -> String {
        let mut worst: Vec<_> = self.per_flaw.iter().collect();
        worst.sort_by(|a, b| a.1.total_cmp(b.1));
        let worst: Vec<String> = worst
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        format!(
            "calibration accuracy {:.2} on {} items (0.5 is chance; ties {:.2}, unreadable replies {:.2}{}); weakest: {}",
            self.accuracy,
            self.items,
            self.tie_rate,
            self.unparsed,
            self.first_position
                .map(|f| format!(", first-position preference {f:.2}"))
                .unwrap_or_default(),
            worst.join(", ")
        )
    }
}

fn metric_key(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect()
}

/// The request settings of the step being calibrated.
#[derive(Clone, Debug)]
pub struct Settings {
    pub temperature: f32,
    pub max_tokens: u32,
    /// The structured judge's schema: sent, and held against every reply.
    pub format: Option<JudgeFormat>,
    pub concurrency: usize,
}

/// A record holding an item's prompt, as the step's templates expect one.
fn item_record(item: &Item) -> Record {
    Record {
        id: format!("calibration:{}", item.id),
        instruction: Some(item.prompt.clone()),
        ..Default::default()
    }
}

/// Ask the judge about every item. Transient and step-stopping faults are `Err`; a
/// permanent fault on one call counts as an unreadable reply.
pub async fn run(
    ctx: &StepCtx,
    teacher: &Arc<dyn Teacher>,
    asker: &Asker<'_>,
    items: &[Item],
    s: &Settings,
) -> Result<Report, StepError> {
    // Every request of every item, flattened; `spans[i]` is item i's range.
    let mut reqs = Vec::new();
    let mut spans = Vec::new();
    let req = |prompt: String| {
        crate::calls::judge_request(
            prompt,
            s.temperature,
            s.max_tokens,
            s.format.as_ref().map(|f| f.response_format.clone()),
        )
    };
    for item in items {
        let rec = item_record(item);
        let start = reqs.len();
        match asker {
            Asker::Pointwise { prompts, .. } => {
                for answer in [&item.good, &item.bad] {
                    reqs.extend(prompts(&rec, answer)?.into_iter().map(req));
                }
            }
            Asker::Pairwise { prompt } => {
                reqs.push(req(prompt(&rec, &item.good, &item.bad)?));
                reqs.push(req(prompt(&rec, &item.bad, &item.good)?));
            }
        }
        spans.push(start..reqs.len());
    }
    let calls = reqs.len() as u64;
    let answers = crate::calls::chat_all(ctx, teacher, reqs, s.concurrency).await?;
    let mut report_tokens = (0, 0);
    let replies: Vec<Option<String>> = answers
        .into_iter()
        .map(|a| {
            a.ok().map(|r| {
                report_tokens.0 += r.usage.prompt_tokens;
                report_tokens.1 += r.usage.completion_tokens;
                r.content
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = spans
        .into_iter()
        .map(|span| {
            let got = &replies[span];
            match asker {
                Asker::Pointwise { scale, .. } => {
                    let half = got.len() / 2;
                    let mean = |part: &[Option<String>]| {
                        let scores: Option<Vec<f64>> = part
                            .iter()
                            .map(|r| {
                                r.as_deref()
                                    .and_then(|t| {
                                        read_reply(t, s.format.as_ref(), |t| parse_score(t, *scale))
                                            .ok()
                                    })
                                    .map(|s| s.score)
                            })
                            .collect();
                        scores.map(|v| v.iter().sum::<f64>() / v.len() as f64)
                    };
                    Outcome::Pointwise(mean(&got[..half]), mean(&got[half..]))
                }
                Asker::Pairwise { .. } => {
                    let v = |r: &Option<String>| {
                        r.as_deref()
                            .and_then(|t| read_reply(t, s.format.as_ref(), parse_verdict).ok())
                            .map(|v| v.verdict)
                    };
                    Outcome::Pairwise(v(&got[0]), v(&got[1]))
                }
            }
        })
        .collect();
    let mut r = Report::from_outcomes(items, &outcomes);
    r.calls = calls;
    r.prompt_tokens = report_tokens.0;
    r.completion_tokens = report_tokens.1;
    Ok(r)
}

/// A step's calibration: the set, when it is due, and its one result.
pub struct Calibrator {
    mode: Mode,
    items: Option<Vec<Item>>,
    min_accuracy: Option<f64>,
    /// Judge calls one record costs (for `auto`).
    calls_per_record: f64,
    started: AtomicU64,
    /// Some record has taken on the calibration (used without a minimum, when the
    /// other records go on beside it instead of waiting).
    claimed: AtomicBool,
    /// `Ok(report)` once run; `Err(message)` when the judge fell below the minimum.
    result: tokio::sync::OnceCell<Result<Report, String>>,
}

impl Calibrator {
    /// From the step's options; `calls_per_record` is the step's judge calls per record.
    /// Errors (an unreadable set, a bad minimum) are for the step's build errors.
    pub fn new(
        mode: Mode,
        min_accuracy: Option<f64>,
        calls_per_record: f64,
        base_dir: &Path,
    ) -> Result<Self, String> {
        if let Some(m) = min_accuracy {
            if !(0.0..=1.0).contains(&m) {
                return Err(format!(
                    "`min_calibration_accuracy` is {m}; give a share between 0 and 1 (0.5 is chance), e.g. 0.8"
                ));
            }
            if mode == Mode::Off {
                return Err(
                    "`min_calibration_accuracy` is set but `calibration = \"off\"`: nothing would check it; remove one".into(),
                );
            }
        }
        let items = load(&mode, base_dir)?;
        Ok(Calibrator {
            mode,
            items,
            min_accuracy,
            calls_per_record,
            started: AtomicU64::new(0),
            claimed: AtomicBool::new(false),
            result: tokio::sync::OnceCell::new(),
        })
    }

    /// Off: no set, nothing to do.
    pub fn off() -> Self {
        Calibrator {
            mode: Mode::Off,
            items: None,
            min_accuracy: None,
            calls_per_record: 1.0,
            started: AtomicU64::new(0),
            claimed: AtomicBool::new(false),
            result: tokio::sync::OnceCell::new(),
        }
    }

    /// Called by the step for each record it starts: runs the calibration when it is
    /// due (once; concurrent records wait for it) and stops the step when the judge is
    /// below `min_calibration_accuracy`.
    pub async fn before_record<'a>(
        &self,
        ctx: &StepCtx,
        teacher: &Arc<dyn Teacher>,
        asker: impl FnOnce() -> Asker<'a>,
        settings: impl FnOnce() -> Settings,
    ) -> Result<(), StepError> {
        if self.items.is_none() {
            return Ok(());
        }
        let n = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        let due = match self.mode {
            Mode::Auto => {
                self.result.initialized()
                    || n as f64 * self.calls_per_record >= AUTO_MIN_CALLS as f64
            }
            _ => true,
        };
        if !due {
            return Ok(());
        }
        // Without a minimum nothing depends on the outcome before the step ends, so
        // one record runs the set while the others go on beside it: its calls share
        // the step's concurrency instead of holding every record back for the
        // calibration's latency tail (scripts/bench-calibration.sh measures the
        // cost; not yet run).
        if self.min_accuracy.is_none() && self.claimed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let r = self.run_once(ctx, teacher, asker, settings).await;
        if r.is_err() {
            // A transient fault: the record is retried, and so is the set.
            self.claimed.store(false, Ordering::Release);
        }
        r
    }

    /// Called by the step when it finishes: a step with `calibration = "on"` (or a set
    /// of its own) that had no record to rate still owes the user its calibration, which
    /// would otherwise be silently skipped.
    pub async fn at_finish<'a>(
        &self,
        ctx: &StepCtx,
        teacher: &Arc<dyn Teacher>,
        asker: impl FnOnce() -> Asker<'a>,
        settings: impl FnOnce() -> Settings,
    ) -> Result<(), StepError> {
        if self.items.is_none() || self.mode == Mode::Auto {
            return Ok(());
        }
        self.run_once(ctx, teacher, asker, settings).await
    }

    async fn run_once<'a>(
        &self,
        ctx: &StepCtx,
        teacher: &Arc<dyn Teacher>,
        asker: impl FnOnce() -> Asker<'a>,
        settings: impl FnOnce() -> Settings,
    ) -> Result<(), StepError> {
        let Some(items) = &self.items else {
            return Ok(());
        };
        let outcome = self
            .result
            .get_or_try_init(|| async {
                let report = run(ctx, teacher, &asker(), items, &settings()).await?;
                for (k, v) in report.metrics() {
                    ctx.stats.set_metric(&k, v);
                }
                tracing::info!(step = %ctx.step_id, "{}", report.summary());
                Ok::<_, StepError>(match self.min_accuracy {
                    Some(min) if report.accuracy < min => Err(format!(
                        "step `{}`: the judge failed its calibration: {} — below min_calibration_accuracy = {min}. The run's records were not scored by it; choose a stronger judge teacher or template, or lower `min_calibration_accuracy`",
                        ctx.step_id,
                        report.summary()
                    )),
                    None if report.accuracy < WARN_BELOW => {
                        ctx.stats.warn(format!(
                            "{} — below {WARN_BELOW}: its scores are weak evidence; set `min_calibration_accuracy` to stop such a judge before it scores",
                            report.summary()
                        ));
                        Ok(report)
                    }
                    _ => Ok(report),
                })
            })
            .await?;
        match outcome {
            Ok(_) => Ok(()),
            Err(message) => Err(StepError::Config(message.clone())),
        }
    }
}

/// Spearman's rank correlation (ties get their mean rank); `None` for fewer than three
/// points or a constant side.
pub fn spearman(xs: &[f64], ys: &[f64]) -> Option<f64> {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let mean = (i + j) as f64 / 2.0 + 1.0;
            for k in &idx[i..=j] {
                r[*k] = mean;
            }
            i = j + 1;
        }
        r
    }
    if xs.len() < 3 || xs.len() != ys.len() {
        return None;
    }
    let (rx, ry) = (ranks(xs), ranks(ys));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Item> {
        parse_set(BUILTIN_SET, "built-in").unwrap()
    }

    #[test]
    fn the_builtin_set_has_the_promised_shape() {
        let set = items();
        let count = |lang: &str| set.iter().filter(|i| i.lang == lang).count();
        assert!(count("en") >= 60, "{} English items", count("en"));
        assert!(count("zh") >= 40, "{} Chinese items", count("zh"));
        let flaws: std::collections::BTreeSet<&str> = set.iter().map(|i| i.flaw.as_str()).collect();
        assert_eq!(
            flaws.into_iter().collect::<Vec<_>>(),
            [
                "ignored_constraint",
                "needless_refusal",
                "off_topic",
                "truncated",
                "unsafe_compliance",
                "wrong_fact",
                "wrong_language"
            ]
        );
        for i in &set {
            assert_ne!(i.good.trim(), i.bad.trim(), "{}", i.id);
        }
    }

    #[test]
    fn the_builtin_set_is_in_the_languages_it_says() {
        // Good answers are in the prompt's language; a wrong_language flaw is not.
        use retort_text::lang::identify;
        let mut wrong = Vec::new();
        for i in items() {
            for (what, text) in [("prompt", &i.prompt), ("good", &i.good)] {
                // A bare "否" or a JSON object has no language to speak of: only a
                // confident identification can contradict the label.
                let got = identify(text);
                if got.code != i.lang && (got.is_confident() || what == "prompt") {
                    wrong.push(format!(
                        "{} {what}: {} ({:.2})",
                        i.id, got.code, got.confidence
                    ));
                }
            }
            if i.flaw == "wrong_language" && identify(&i.bad).code == i.lang {
                wrong.push(format!("{} bad answer is in {}", i.id, i.lang));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn constant_judges_come_out_at_chance() {
        let set = items();
        let always_ten = vec![Outcome::Pointwise(Some(10.0), Some(10.0)); set.len()];
        let r = Report::from_outcomes(&set, &always_ten);
        assert_eq!(r.accuracy, 0.5);
        assert_eq!(r.tie_rate, 1.0);
        assert!(r.per_flaw.values().all(|v| *v == 0.5));

        let always_a = vec![Outcome::Pairwise(Some(Verdict::A), Some(Verdict::A)); set.len()];
        let r = Report::from_outcomes(&set, &always_a);
        assert!((r.accuracy - 0.5).abs() < 1e-12, "{}", r.accuracy);
        assert_eq!(r.first_position, Some(1.0));
        assert_eq!(r.swap_agreement, Some(0.0));
        assert_eq!(r.tie_rate, 0.0);
    }

    #[test]
    fn a_judge_that_prefers_the_good_answer_scores_one_and_misses_count_zero() {
        let set = items();
        let right = vec![Outcome::Pairwise(Some(Verdict::A), Some(Verdict::B)); set.len()];
        let r = Report::from_outcomes(&set, &right);
        assert_eq!(r.accuracy, 1.0);
        assert_eq!(r.first_position, Some(0.5));
        assert_eq!(r.swap_agreement, Some(1.0));
        let mut mixed = vec![Outcome::Pointwise(Some(8.0), Some(3.0)); set.len()];
        mixed[0] = Outcome::Pointwise(None, Some(3.0));
        mixed[1] = Outcome::Pointwise(Some(2.0), Some(3.0));
        let r = Report::from_outcomes(&set, &mixed);
        let n = set.len() as f64;
        assert!((r.accuracy - (n - 2.0) / n).abs() < 1e-12);
        assert!((r.unparsed - 1.0 / (2.0 * n)).abs() < 1e-12);
    }

    #[test]
    fn sets_of_your_own_are_checked_with_file_and_line() {
        let e = parse_set("{\"id\":\"a\",\"lang\":\"en\",\"prompt\":\"p\",\"good\":\"g\",\"bad\":\"b\",\"flaw\":\"x\"}\n{\"id\":\"a\"}", "my.jsonl").unwrap_err();
        assert!(e.starts_with("my.jsonl:2:"), "{e}");
        let ok = "{\"id\":\"a\",\"lang\":\"en\",\"prompt\":\"p\",\"good\":\"g\",\"bad\":\"b\",\"flaw\":\"x\"}\n";
        let e = parse_set(&format!("{ok}{ok}"), "my.jsonl").unwrap_err();
        assert!(e.contains("appears twice"), "{e}");
        let e = Calibrator::new(Mode::Off, Some(0.8), 1.0, Path::new("."))
            .err()
            .unwrap();
        assert!(e.contains("nothing would check it"), "{e}");
        let e = Calibrator::new(Mode::File("nope.jsonl".into()), None, 1.0, Path::new("."))
            .err()
            .unwrap();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn spearman_sees_rank_agreement() {
        assert_eq!(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 30.0, 40.0]),
            Some(1.0)
        );
        assert_eq!(
            spearman(&[1.0, 2.0, 3.0, 4.0], &[4.0, 3.0, 2.0, 1.0]),
            Some(-1.0)
        );
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!(r > 0.9 && r < 1.0, "{r}");
    }
}
