//! A chart's scales: whether an axis is linear or logarithmic (a span
//! wider than 50× goes on a log scale), where it ends (round numbers just
//! past the data) and where its ticks go (1, 2, 2.5 or 5 × 10^n apart;
//! decades, with 2× and 5× on a short log axis), and how a tick reads
//! (2M, 250k, 0.25).

/// Tick values 1, 2, 2.5 or 5 × 10^n apart covering [lo, hi] with about `target`
/// ticks, so axis labels read as round numbers. The first and last tick
/// bracket the data and become the axis ends.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() {
        return vec![0.0, 1.0];
    }
    let (lo, hi) = if hi > lo {
        (lo, hi)
    } else if lo == 0.0 {
        (0.0, 1.0)
    } else {
        // One value: open a window around it.
        (lo - lo.abs() * 0.5, hi + hi.abs() * 0.5)
    };
    let raw = (hi - lo) / target.saturating_sub(1).max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 2.5 {
        2.5
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    let step = nice * mag;
    let first = (lo / step).floor();
    let last = (hi / step).ceil();
    let n = ((last - first) as usize).min(100);
    (0..=n).map(|i| (first + i as f64) * step).collect()
}

/// The nearest 1, 2 or 5 × 10^n at or beyond `v` (above when `up`), so a
/// log axis ends just past the data instead of a whole decade away.
fn log_bound(v: f64, up: bool) -> f64 {
    let base = 10f64.powf(v.log10().floor());
    let steps = [1.0, 2.0, 5.0, 10.0].map(|m| m * base);
    let pick = if up {
        steps.iter().find(|&&c| c >= v * (1.0 - 1e-9))
    } else {
        steps.iter().rev().find(|&&c| c <= v * (1.0 + 1e-9))
    };
    pick.copied().unwrap_or(base)
}

/// Log-axis ticks: both ends and every decade between, plus 2× and 5× when
/// the range is at most two decades so a short axis still has labels.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (e0, e1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let fine = e1 - e0 <= 2;
    let mut ticks = vec![lo, hi];
    for e in e0..=e1.min(e0 + 30) {
        let base = 10f64.powi(e);
        for m in [1.0, 2.0, 5.0] {
            let v = base * m;
            if (m == 1.0 || fine) && v > lo * 1.001 && v < hi * 0.999 {
                ticks.push(v);
            }
        }
    }
    ticks.sort_by(f64::total_cmp);
    ticks
}

/// A value range mapped onto pixels, linear or logarithmic.
#[derive(Debug)]
pub struct Axis {
    pub log: bool,
    pub lo: f64,
    pub hi: f64,
    pub ticks: Vec<f64>,
}

/// Spans wider than this ratio go on a log scale; below it a linear scale
/// is easier to read.
const LOG_RATIO: f64 = 50.0;

impl Axis {
    /// An axis for `values`: from zero when `from_zero`, log only when
    /// `may_log` and the positive values span more than `LOG_RATIO`.
    pub fn fit(values: &[f64], from_zero: bool, may_log: bool) -> Axis {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if may_log && min > 0.0 && max / min > LOG_RATIO {
            let (lo, hi) = (log_bound(min, false), log_bound(max, true));
            return Axis {
                log: true,
                lo,
                hi,
                ticks: log_ticks(lo, hi),
            };
        }
        let start = if from_zero { 0.0 } else { min };
        let ticks = nice_ticks(start, max, 5);
        Axis {
            log: false,
            lo: ticks.first().copied().unwrap_or(0.0),
            hi: ticks.last().copied().unwrap_or(1.0),
            ticks,
        }
    }

    /// Where `v` falls between pixel `p0` (at lo) and `p1` (at hi).
    pub fn map(&self, v: f64, p0: f64, p1: f64) -> f64 {
        let t = if self.log {
            let v = v.max(self.lo);
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        let t = if t.is_finite() { t } else { 0.0 };
        p0 + t * (p1 - p0)
    }
}

/// A tick label: 2M, 250k, 1.5, 0.25.
pub fn tick_label(v: f64) -> String {
    let trim = |x: f64| {
        let s = format!("{x:.3}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "-0" {
            "0".to_owned()
        } else {
            s.to_owned()
        }
    };
    if v.abs() >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v.abs() >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ticks_are_round() {
        assert_eq!(
            nice_ticks(0.0, 1_870_000.0, 5),
            vec![0.0, 500_000.0, 1_000_000.0, 1_500_000.0, 2_000_000.0]
        );
        assert_eq!(nice_ticks(0.0, 87.0, 5), vec![0.0, 25.0, 50.0, 75.0, 100.0]);
        assert_eq!(nice_ticks(0.0, 120.0, 5), vec![0.0, 50.0, 100.0, 150.0]);
        assert_eq!(nice_ticks(0.0, 0.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let t = nice_ticks(1000.0, 20_000.0, 5);
        assert_eq!(t.first(), Some(&0.0));
        assert_eq!(t.last(), Some(&20_000.0));
        let t = nice_ticks(0.0, 0.7, 5);
        assert!(
            t.iter()
                .all(|v| (v * 10.0 - (v * 10.0).round()).abs() < 1e-9),
            "{t:?}"
        );
        assert_eq!(log_ticks(1.0, 1000.0), vec![1.0, 10.0, 100.0, 1000.0]);
        assert_eq!(
            log_ticks(1.0, 100.0),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(tick_label(2_000_000.0), "2M");
        assert_eq!(tick_label(250_000.0), "250k");
        assert_eq!(tick_label(0.25), "0.25");
    }
}
