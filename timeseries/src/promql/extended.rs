//! The `anchored` and `smoothed` modifiers of range selectors
//! (`promql-extended-range-selectors`).
//!
//! Both make a window's edges exact instead of extrapolated. A modified range selector
//! also reads the samples up to the lookback delta before its window (and, smoothed,
//! after it):
//!
//! - `anchored`: the value at the window's start is the last sample at or before it
//!   (or the first sample in the window when there is none), the value at its end the
//!   last sample in the window. `rate`, `increase` and `delta` are the difference of the
//!   two (counter resets in between added back); `changes` and `resets` also count the
//!   step from the sample at the start into the window.
//! - `smoothed`: the values at both edges are interpolated linearly between the samples
//!   on either side of the edge (a drop between two samples of a counter counts from 0);
//!   only `rate`, `increase` and `delta` take it. On an instant vector selector, the
//!   value at each step is interpolated the same way (the sample before when none
//!   follows).
//!
//! Native histogram samples are refused with either modifier.

use std::borrow::Cow;

use super::QueryError;
use super::eval::{Evaluator, RSeries, RangeVec, Result};
use crate::model::Sample;

/// The error for native histograms under a modifier.
pub(super) fn histograms_unsupported() -> QueryError {
    QueryError::Execution(
        "smoothed and anchored modifiers do not work with native histograms".into(),
    )
}

/// The value at `t` on the line from `p1` to `p2`. For a counter, a drop from `p1` to
/// `p2` is a reset: the line starts from 0 at `p1`.
pub(super) fn interpolate(p1: Sample, p2: Sample, t: i64, counter: bool) -> f64 {
    let mut y1 = p1.value;
    let y2 = p2.value;
    if counter && y2 < y1 {
        y1 = 0.0;
    }
    y1 + (y2 - y1) * (t - p1.timestamp_ms) as f64 / (p2.timestamp_ms - p1.timestamp_ms) as f64
}

/// The first index below `limit` whose sample satisfies `pred` (which must hold from
/// some index on), else `limit`.
fn search(f: &[Sample], limit: usize, pred: impl Fn(&Sample) -> bool) -> usize {
    f[..limit].partition_point(|x| !pred(x))
}

/// The value at the window's start: `f[first]`, or interpolated towards `f[first + 1]`
/// when smoothed and `f[first]` is before the start.
fn pick_left(f: &[Sample], first: usize, start: i64, smoothed: bool, counter: bool) -> f64 {
    if smoothed && f[first].timestamp_ms < start {
        return interpolate(f[first], f[first + 1], start, counter);
    }
    f[first].value
}

/// The value at the window's end: `f[last]`, or interpolated from `f[last - 1]` when
/// smoothed and `f[last]` is after the end.
fn pick_right(f: &[Sample], last: usize, end: i64, smoothed: bool, counter: bool) -> f64 {
    if smoothed && last > 0 && f[last].timestamp_ms > end {
        return interpolate(f[last - 1], f[last], end, counter);
    }
    f[last].value
}

/// The indices of the samples that stand for the window `(start, end]`'s edges, in the
/// samples `f` the modifier reads: `(first, last)`, or `None` when no sample falls in
/// the window.
fn edges(f: &[Sample], start: i64, end: i64, smoothed: bool) -> Option<(usize, usize)> {
    if f.is_empty() {
        return None;
    }
    let mut last = f.len() - 1;
    let first = search(f, last, |x| x.timestamp_ms > start).saturating_sub(1);
    if smoothed {
        last = search(f, last, |x| x.timestamp_ms >= end);
    }
    if f[last].timestamp_ms <= start || (smoothed && f[first].timestamp_ms > end) {
        return None;
    }
    Some((first, last))
}

/// `rate`, `increase` (`counter`) and `delta` of the window `(start, end]` under a
/// modifier; `f` holds the samples the modifier reads. `rate_secs` divides the result.
pub(super) fn rate(
    f: &[Sample],
    start: i64,
    end: i64,
    smoothed: bool,
    counter: bool,
    rate_secs: Option<f64>,
) -> Option<f64> {
    let (first, last) = edges(f, start, end, smoothed)?;
    let left = pick_left(f, first, start, smoothed, counter);
    let right = pick_right(f, last, end, smoothed, counter);
    let mut result = right - left;
    if counter {
        // The samples strictly inside the edges: resets at the edges are in the
        // picked or interpolated values already.
        let lo = if f[first].timestamp_ms <= start {
            first + 1
        } else {
            first
        };
        let hi = if f[last].timestamp_ms >= end {
            last as isize - 1
        } else {
            last as isize
        };
        let inner: &[Sample] = if (lo as isize) <= hi {
            &f[lo..=hi as usize]
        } else {
            &[]
        };
        let mut prev = left;
        for p in inner {
            if p.value < prev {
                result += prev;
            }
            prev = p.value;
        }
        if right < prev {
            result += prev;
        }
    }
    if let Some(secs) = rate_secs {
        result /= secs;
    }
    Some(result)
}

/// The first sample `changes` and `resets` count from under `anchored`: the last one at
/// or before the window's start (or the first in it); `None` when the window `(start,
/// end]` holds no sample.
pub(super) fn anchored_first(f: &[Sample], start: i64) -> Option<usize> {
    let last = f.last()?;
    if last.timestamp_ms <= start {
        return None;
    }
    Some(search(f, f.len() - 1, |x| x.timestamp_ms > start).saturating_sub(1))
}

/// The samples of `f` with the window `(start, end]`'s edge values added at `start`
/// and `end` (the range vector a modified range selector shows), empty when the
/// window holds no sample.
fn extend_samples(f: &[Sample], start: i64, end: i64, smoothed: bool) -> Vec<Sample> {
    let Some((mut first, last)) = edges(f, start, end, smoothed) else {
        return Vec::new();
    };
    let left = pick_left(f, first, start, smoothed, false);
    let right = pick_right(f, last, end, smoothed, false);
    if f[first].timestamp_ms <= start {
        first += 1;
    }
    let last = if f[last].timestamp_ms >= end {
        last as isize - 1
    } else {
        last as isize
    };
    let mut out = vec![Sample {
        timestamp_ms: start,
        value: left,
    }];
    if first as isize <= last {
        out.extend_from_slice(&f[first..=last as usize]);
    }
    out.push(Sample {
        timestamp_ms: end,
        value: right,
    });
    out
}

/// A modified range selector shown as a range vector (at one step): each series'
/// window with its edge values.
pub(super) fn extend_range<'a>(_ev: &mut Evaluator<'a>, r: RangeVec<'a>) -> Result<RangeVec<'a>> {
    let end = r.ends.first().copied().unwrap_or(0);
    let start = end - r.range;
    let (reach_end, reach_range) = r.extended.reach(end, r.range);
    let reach_start = reach_end - reach_range;
    let smoothed = r.extended.smoothed;
    let mut series = Vec::with_capacity(r.series.len());
    for s in r.series {
        if s.hists
            .iter()
            .any(|h| h.timestamp_ms > reach_start && h.timestamp_ms <= reach_end)
        {
            return Err(histograms_unsupported());
        }
        let a = s.samples.partition_point(|x| x.timestamp_ms <= reach_start);
        let b = s.samples.partition_point(|x| x.timestamp_ms <= reach_end);
        let samples = extend_samples(&s.samples[a..b.max(a)], start, end, smoothed);
        series.push(RSeries {
            labels: s.labels,
            drop_name: s.drop_name,
            samples: Cow::Owned(samples),
            hists: Cow::Owned(Vec::new()),
        });
    }
    Ok(RangeVec { series, ..r })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(points: &[(i64, f64)]) -> Vec<Sample> {
        points
            .iter()
            .map(|&(t, v)| Sample {
                timestamp_ms: t,
                value: v,
            })
            .collect()
    }

    #[test]
    fn should_interpolate_counters_from_zero_after_a_reset() {
        let f = samples(&[(0, 100.0), (15_000, 10.0)]);
        assert!((interpolate(f[0], f[1], 3_000, true) - 2.0).abs() < 1e-9);
        assert!((interpolate(f[0], f[1], 3_000, false) - 82.0).abs() < 1e-9);
        // rate(x[10s] smoothed) at 12s over a reset between 0s and 15s.
        let r = rate(&f, 2_000, 12_000, true, true, Some(10.0)).unwrap();
        assert!((r - 2.0 / 3.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn should_anchor_the_window_start_to_the_sample_before_it() {
        // 1 2 3 ... at 1m intervals: increase over (1m, 3m] anchored is 4 - 2.
        let f = samples(&[(0, 1.0), (60_000, 2.0), (120_000, 3.0), (180_000, 4.0)]);
        assert_eq!(rate(&f, 60_000, 180_000, false, true, None), Some(2.0));
        // Nothing in the window: no result.
        assert_eq!(rate(&f[..2], 60_000, 120_000, false, true, None), None);
        assert_eq!(anchored_first(&f, 60_000), Some(1));
        assert_eq!(anchored_first(&f[..2], 60_000), None);
        // Anchored reads up to the window's end, smoothed beyond it.
        let shown = extend_samples(&f[..3], 30_000, 150_000, false);
        assert_eq!(
            shown
                .iter()
                .map(|s| (s.timestamp_ms, s.value))
                .collect::<Vec<_>>(),
            vec![(30_000, 1.0), (60_000, 2.0), (120_000, 3.0), (150_000, 3.0)]
        );
        let shown = extend_samples(&f, 30_000, 150_000, true);
        assert_eq!(
            shown
                .iter()
                .map(|s| (s.timestamp_ms, s.value))
                .collect::<Vec<_>>(),
            vec![(30_000, 1.5), (60_000, 2.0), (120_000, 3.0), (150_000, 3.5)]
        );
    }
}
