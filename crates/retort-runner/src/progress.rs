//! Live progress: one bar per step, plus a teachers line. Hidden with `--quiet` and
//! when stderr is not a terminal.
//!
//! A teacher step's bar counts *records finished* (not rows read ahead), and its line
//! says calls answered of planned, calls/s and tokens/s over the last few seconds (not
//! since the start, which hides a stall), retries, pending records, and an ETA from the
//! recent rate. The teachers line shows each teacher's in-flight window and whether its
//! breaker holds calls, and dollars against `max_budget_usd`. The final frame is always
//! drawn.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use retort_teacher::{Accounting, AccountingSnapshot, ClientStats, Counters};

use crate::live::{Live, TICK};

/// Live state of every teacher client (name, stats), for the teachers line.
pub(crate) type ClientProbe = Arc<dyn Fn() -> Vec<(String, ClientStats)> + Send + Sync>;

/// How far back "recent" rates look.
const RECENT: Duration = Duration::from_secs(5);

/// Recent samples of one step's counters, for rates that follow the present.
#[derive(Default)]
pub(crate) struct Recent {
    samples: VecDeque<(Instant, u64, u64, u64)>,
}

impl Recent {
    /// Adds a sample (answered calls, tokens, records done) and returns the per-second
    /// rates of each over the window.
    pub(crate) fn rates(
        &mut self,
        now: Instant,
        calls: u64,
        tokens: u64,
        done: u64,
    ) -> (f64, f64, f64) {
        self.samples.push_back((now, calls, tokens, done));
        while self.samples.len() > 2 && now - self.samples[0].0 > RECENT {
            self.samples.pop_front();
        }
        let (t0, c0, k0, d0) = self.samples[0];
        let dt = (now - t0).as_secs_f64();
        if dt < 0.2 {
            return (0.0, 0.0, 0.0);
        }
        (
            (calls - c0) as f64 / dt,
            (tokens - k0) as f64 / dt,
            (done - d0) as f64 / dt,
        )
    }
}

/// What one bar shows.
#[derive(Debug, PartialEq)]
pub(crate) struct View {
    pub pos: u64,
    pub len: u64,
    pub msg: String,
}

/// A step's bar. `acct` is the sum of its teacher counters (None for steps that call
/// no teacher); `upstream` the rows its inputs have committed so far.
pub(crate) fn step_view(
    l: &Live,
    acct: Option<&Counters>,
    upstream: u64,
    recent: &mut Recent,
    now: Instant,
) -> View {
    let total = l.stats.total.load(Ordering::Relaxed);
    let done = l.stats.done.load(Ordering::Relaxed);
    let rows_out = l.rows_out.load(Ordering::Relaxed);
    let rows_in = l.rows_in.load(Ordering::Relaxed);
    let status = l.status.lock().unwrap().clone();
    let f = l.failures.load(Ordering::Relaxed);
    let failed = if f > 0 {
        format!(" · failed {f}")
    } else {
        String::new()
    };
    let Some(c) = acct.filter(|c| c.calls > 0) else {
        // Sources count rows read (total unknown); other steps count input rows against
        // what upstream has committed so far, or the step's own total when it set one.
        let (pos, len) = if total > 0 {
            (done, total)
        } else if l.after.is_empty() {
            (done, done)
        } else {
            (rows_in, upstream.max(rows_in))
        };
        let (_, _, rate) = recent.rates(now, 0, 0, pos);
        return View {
            pos,
            len,
            msg: format!("{status} · out {rows_out} · {rate:.0}/s{failed}"),
        };
    };
    // A teacher step: records finished (the pool counts each once it is committed or
    // failed), of what its inputs hold (resumed rows included) or its own total.
    let resumed = l.resumed_rows.load(Ordering::Relaxed);
    let finished = if l.stats.pool.load(Ordering::Relaxed) {
        done + l.stats.resumed_in.load(Ordering::Relaxed)
    } else if total > 0 {
        done
    } else {
        rows_in
    };
    let len = if total > 0 {
        total
    } else {
        upstream.max(finished)
    };
    let tok = c.prompt_tokens + c.completion_tokens;
    let (calls_s, tok_s, rec_s) = recent.rates(now, c.answered, tok, finished);
    let planned = if l.calls_per_input > 0.0 {
        ((len.saturating_sub(l.stats.resumed_in.load(Ordering::Relaxed))) as f64
            * l.calls_per_input)
            .round() as u64
            + l.fixed_calls
    } else {
        0
    };
    let eta = if rec_s > 0.0 && len > finished {
        let secs = (len - finished) as f64 / rec_s;
        format!(" · eta {}", human_secs(secs))
    } else {
        String::new()
    };
    let pending = l.stats.pending.load(Ordering::Relaxed);
    let requeued = l.stats.requeued.load(Ordering::Relaxed);
    let mut msg = format!(
        "{status} · calls {}{} · {calls_s:.0} calls/s · {} tok/s · retries {}",
        c.answered,
        if planned > 0 {
            format!("/{}", planned.max(c.answered))
        } else {
            String::new()
        },
        human(tok_s),
        c.retries,
    );
    if requeued > 0 || pending > 0 {
        msg.push_str(&format!(" · requeued {requeued} · pending {pending}"));
    }
    msg.push_str(&format!(" · out {rows_out}{failed}{eta}"));
    if resumed > 0 {
        msg.push_str(&format!(" · resumed {resumed}"));
    }
    View {
        pos: finished,
        len,
        msg,
    }
}

/// The teachers line.
pub(crate) fn teachers_view(
    snap: &AccountingSnapshot,
    clients: &[(String, ClientStats)],
) -> String {
    let t = &snap.total;
    let mut s = format!(
        "{} answered · {} cached · {} requests · {} retries · {} failed · {} in / {} out tokens · ${:.4}",
        t.answered,
        t.cache_hits,
        t.requests,
        t.retries,
        t.failures,
        t.prompt_tokens,
        t.completion_tokens,
        t.cost_usd
    );
    if let Some(b) = snap.budget_usd {
        s.push_str(&format!(" of ${b:.2}"));
    }
    for (name, c) in clients {
        s.push_str(&format!(
            " · {name}: {} in flight, window {}{}",
            c.in_flight,
            c.window,
            if c.breaker_open {
                " (endpoint down: waiting)"
            } else {
                ""
            }
        ));
    }
    s
}

fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if x >= 1e4 {
        format!("{:.0}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn human_secs(s: f64) -> String {
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Handle that stops the progress display.
pub struct Progress {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(
        live: Vec<Arc<Live>>,
        accounting: Arc<Accounting>,
        clients: ClientProbe,
        quiet: bool,
    ) -> Self {
        if quiet {
            return Progress {
                stop: None,
                task: None,
            };
        }
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>14.bold} {bar:28.cyan/blue} {human_pos:>9}/{human_len:9} {msg}",
        )
        .expect("valid template")
        .progress_chars("█▉▊▋▌▍▎▏ ");
        let bars: Vec<ProgressBar> = live
            .iter()
            .map(|l| {
                let b = mp.add(ProgressBar::new(0));
                b.set_style(style.clone());
                b.set_prefix(l.id.clone());
                b
            })
            .collect();
        let teacher_bar = mp.add(ProgressBar::new_spinner());
        teacher_bar.set_style(
            ProgressStyle::with_template("{prefix:>14.bold} {msg}").expect("valid template"),
        );
        teacher_bar.set_prefix("teachers");
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut recent: Vec<Recent> = live.iter().map(|_| Recent::default()).collect();
            loop {
                let stopping = matches!(
                    rx.try_recv(),
                    Ok(()) | Err(tokio::sync::oneshot::error::TryRecvError::Closed)
                );
                let now = Instant::now();
                let snap = accounting.snapshot();
                let out_of = |id: &str| {
                    live.iter()
                        .find(|l| l.id == id)
                        .map(|l| l.rows_out.load(Ordering::Relaxed))
                        .unwrap_or(0)
                };
                for ((l, b), r) in live.iter().zip(&bars).zip(recent.iter_mut()) {
                    let mut acct: Option<Counters> = None;
                    for sa in snap.steps.iter().filter(|sa| sa.step == l.id) {
                        let c = acct.get_or_insert_with(Counters::default);
                        c.calls += sa.counters.calls;
                        c.answered += sa.counters.answered;
                        c.retries += sa.counters.retries;
                        c.prompt_tokens += sa.counters.prompt_tokens;
                        c.completion_tokens += sa.counters.completion_tokens;
                    }
                    let upstream: u64 = l.after.iter().map(|a| out_of(a)).sum();
                    let v = step_view(l, acct.as_ref(), upstream, r, now);
                    b.set_length(v.len);
                    b.set_position(v.pos);
                    b.set_message(v.msg);
                }
                teacher_bar.set_message(teachers_view(&snap, &clients()));
                if stopping {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = &mut rx => {
                        // Draw the final frame once more with the end state.
                        let (tx2, rx2) = tokio::sync::oneshot::channel();
                        let _ = tx2.send(());
                        rx = rx2;
                    }
                }
            }
            for b in &bars {
                b.finish();
            }
            teacher_bar.finish();
        });
        Progress {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Draw the final frame and stop drawing.
    pub async fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_teacher_step_counts_answered_calls_not_rows_read() {
        // The case: 171 rows read ahead, 54 calls answered. The old bar said
        // `171/171 eta 0s`.
        let l = Live::for_test("answers", &["seeds"], 1.0);
        l.rows_in.store(171, Ordering::Relaxed);
        l.stats.pool.store(true, Ordering::Relaxed);
        let c = Counters {
            calls: 118,
            answered: 54,
            retries: 3,
            ..Default::default()
        };
        let mut r = Recent::default();
        let t0 = Instant::now();
        step_view(
            &l,
            Some(&Counters {
                answered: 0,
                ..c.clone()
            }),
            171,
            &mut r,
            t0,
        );
        l.stats.done.store(54, Ordering::Relaxed);
        let v = step_view(&l, Some(&c), 171, &mut r, t0 + Duration::from_secs(2));
        assert_eq!((v.pos, v.len), (54, 171));
        assert!(v.msg.contains("calls 54/171"), "{}", v.msg);
        assert!(v.msg.contains("27 calls/s"), "{}", v.msg);
        assert!(v.msg.contains("retries 3"), "{}", v.msg);
        assert!(v.msg.contains("eta"), "{}", v.msg);
    }

    #[test]
    fn rates_follow_the_present_not_the_start() {
        let mut r = Recent::default();
        let t0 = Instant::now();
        r.rates(t0, 0, 0, 0);
        r.rates(t0 + Duration::from_secs(5), 5000, 0, 0);
        // A stall: 10 more seconds with nothing answered.
        let (calls, _, _) = r.rates(t0 + Duration::from_secs(15), 5000, 0, 0);
        assert_eq!(calls, 0.0);
    }
}
