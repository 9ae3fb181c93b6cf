//! Live progress: one bar per running step with rows, rate and ETA, plus teacher
//! tokens and cost. Hidden with `--quiet` and when stderr is not a terminal.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use retort_teacher::Accounting;

use crate::exec::{Live, TICK};

/// Handle that stops the progress display.
pub struct Progress {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(crate) fn start(live: Vec<Arc<Live>>, accounting: Arc<Accounting>, quiet: bool) -> Self {
        if quiet {
            return Progress {
                stop: None,
                task: None,
            };
        }
        let mp = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>14.bold} {bar:28.cyan/blue} {human_pos:>9}/{human_len:9} eta {eta:>4} {msg}",
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
        let started = std::time::Instant::now();
        let task = tokio::spawn(async move {
            loop {
                let out_of = |id: &str| {
                    live.iter()
                        .find(|l| l.id == id)
                        .map(|l| l.rows_out.load(Ordering::Relaxed))
                        .unwrap_or(0)
                };
                for (l, b) in live.iter().zip(&bars) {
                    let total = l.stats.total.load(Ordering::Relaxed);
                    let done = l.stats.done.load(Ordering::Relaxed);
                    let rows_out = l.rows_out.load(Ordering::Relaxed);
                    // Sources count rows read (total unknown); other steps count input
                    // rows against what upstream has committed so far, or the step's own
                    // total (generators: target tasks) when it set one.
                    let (pos, len) = if total > 0 {
                        (done, total)
                    } else if l.after.is_empty() {
                        (done, done)
                    } else {
                        let upstream: u64 = l.after.iter().map(|a| out_of(a)).sum();
                        let rows_in = l.rows_in.load(Ordering::Relaxed);
                        (rows_in, upstream.max(rows_in))
                    };
                    b.set_length(len);
                    b.set_position(pos);
                    let status = l.status.lock().unwrap().clone();
                    let f = l.failures.load(Ordering::Relaxed);
                    let secs = started.elapsed().as_secs_f64().max(0.001);
                    b.set_message(format!(
                        "{status} · out {rows_out} · {:.0}/s{}",
                        pos as f64 / secs,
                        if f > 0 {
                            format!(" · failed {f}")
                        } else {
                            String::new()
                        }
                    ));
                }
                let t = accounting.snapshot().total;
                teacher_bar.set_message(format!(
                    "{} calls · {} cached · {} requests · {} retries · {} failed · {} in / {} out tokens · ${:.4}",
                    t.calls,
                    t.cache_hits,
                    t.requests,
                    t.retries,
                    t.failures,
                    t.prompt_tokens,
                    t.completion_tokens,
                    t.cost_usd
                ));
                tokio::select! {
                    _ = tokio::time::sleep(TICK) => {}
                    _ = &mut rx => break,
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

    /// Stop drawing.
    pub fn finish(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}
