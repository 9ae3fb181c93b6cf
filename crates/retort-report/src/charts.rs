//! Small inline-SVG charts: per-cluster score histograms that share one x-axis, so
//! clusters can be compared by eye down a table column.

use crate::html::{esc, num, w};

/// Bins shared by every histogram of one score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bins {
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    /// Whole-number scores (a 1–10 rubric): one bin per value, centred on it.
    pub integer: bool,
}

impl Bins {
    /// Bins covering every finite value; `None` when there is none.
    pub fn covering(values: impl Iterator<Item = f64>) -> Option<Bins> {
        let (mut lo, mut hi, mut integer, mut any) = (f64::MAX, f64::MIN, true, false);
        for v in values.filter(|v| v.is_finite()) {
            any = true;
            lo = lo.min(v);
            hi = hi.max(v);
            integer &= v.fract() == 0.0;
        }
        if !any {
            return None;
        }
        if integer && hi - lo <= 20.0 {
            return Some(Bins {
                lo,
                hi,
                n: (hi - lo) as usize + 1,
                integer: true,
            });
        }
        let n = if hi > lo { 12 } else { 1 };
        Some(Bins {
            lo,
            hi,
            n,
            integer: false,
        })
    }

    /// Bin index of a finite value inside `[lo, hi]`.
    pub fn index(&self, v: f64) -> usize {
        if self.integer {
            return ((v - self.lo).round().max(0.0) as usize).min(self.n - 1);
        }
        if self.hi <= self.lo {
            return 0;
        }
        (((v - self.lo) / (self.hi - self.lo) * self.n as f64) as usize).min(self.n - 1)
    }

    /// Horizontal position of a value as a fraction of the chart width.
    pub fn frac(&self, v: f64) -> f64 {
        if self.integer {
            (v - self.lo + 0.5) / self.n as f64
        } else if self.hi > self.lo {
            (v - self.lo) / (self.hi - self.lo)
        } else {
            0.5
        }
    }

    /// Counts per bin.
    pub fn counts(&self, values: impl Iterator<Item = f64>) -> Vec<u64> {
        let mut c = vec![0u64; self.n];
        for v in values.filter(|v| v.is_finite()) {
            c[self.index(v)] += 1;
        }
        c
    }
}

const SW: f64 = 132.0;
const SH: f64 = 30.0;

/// A sparkline histogram with a tick at the mean. Bars are scaled to this histogram's
/// own tallest bin: the point is the shape of each cluster, not its size (the size has
/// its own column).
pub(crate) fn histogram(
    out: &mut String,
    bins: &Bins,
    counts: &[u64],
    mean: Option<f64>,
    colour: &str,
    what: &str,
) {
    let max = counts.iter().copied().max().unwrap_or(0);
    let total: u64 = counts.iter().sum();
    let bw = SW / bins.n as f64;
    let mut title = format!("{what}: {total} scored");
    if let Some(m) = mean {
        title.push_str(&format!(", mean {}", num(m)));
    }
    title.push_str(&format!(", axis {} to {}", num(bins.lo), num(bins.hi)));
    w!(
        out,
        r#"<svg class="hist" viewBox="0 0 {SW} {SH}" width="{SW}" height="{SH}" xmlns="http://www.w3.org/2000/svg"><title>{}</title><rect class="hbg" x="0" y="0" width="{SW}" height="{SH}"/>"#,
        esc(&title)
    );
    if max > 0 {
        for (i, &c) in counts.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let h = (c as f64 / max as f64 * (SH - 4.0)).max(1.5);
            w!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/>"#,
                i as f64 * bw + 0.5,
                SH - h,
                (bw - 1.0).max(0.8),
                h
            );
        }
    }
    if let Some(m) = mean.filter(|m| m.is_finite()) {
        let x = bins.frac(m) * SW;
        w!(
            out,
            r#"<line class="mean" x1="{x:.1}" x2="{x:.1}" y1="0" y2="{SH}"/>"#
        );
    }
    out.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_number_rubrics_get_one_bin_per_value() {
        let b = Bins::covering([1.0, 3.0, 10.0].into_iter()).unwrap();
        assert!(b.integer);
        assert_eq!(b.n, 10);
        assert_eq!(
            b.counts([1.0, 1.0, 10.0, 5.0].into_iter()),
            vec![2, 0, 0, 0, 1, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn continuous_scores_get_twelve_bins_including_the_maximum() {
        let b = Bins::covering([0.0, 0.5, 1.0].into_iter()).unwrap();
        assert!(!b.integer);
        assert_eq!(b.n, 12);
        assert_eq!(b.index(1.0), 11);
        assert_eq!(b.index(0.0), 0);
        assert_eq!(Bins::covering([f64::NAN].into_iter()), None);
    }
}
