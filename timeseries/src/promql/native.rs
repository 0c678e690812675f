//! Native histograms in the evaluator: the `histogram_*` functions on native
//! histogram points, and the range functions (`rate`, `increase`, `delta`, `irate`,
//! `idelta`, `resets`, `changes`, the `*_over_time` family) over windows that hold
//! histogram samples, with Prometheus's rules for windows that mix floats and
//! histograms.

use std::sync::Arc;

use super::eval::{Grid, HWindows, RSeries, VSeries, Windows, absent, is_present};
use crate::histogram::HistogramError;
use crate::model::{FloatHistogram, HistogramSample, METRIC_NAME, Sample};

/// Splits a vector into its float part (series' float points) and its histogram part
/// (series' histogram points), each series keeping its labels.
pub(super) fn split(v: Vec<VSeries>) -> (Vec<VSeries>, Vec<VSeries>) {
    let mut floats = Vec::with_capacity(v.len());
    let mut hists = Vec::new();
    for mut s in v {
        if !s.has_hists() {
            floats.push(s);
            continue;
        }
        let h = std::mem::take(&mut s.hists);
        if s.has_floats() {
            floats.push(VSeries::floats(
                s.labels.clone(),
                s.drop_name,
                s.vals.clone(),
            ));
        }
        let n = s.vals.len();
        hists.push(VSeries {
            labels: s.labels,
            drop_name: s.drop_name,
            vals: vec![absent(); n],
            hists: h,
        });
    }
    (floats, hists)
}

/// A float per histogram point (`f` gives `None` for no point); the metric name is
/// dropped.
pub(super) fn map_hist(
    v: &[VSeries],
    g: Grid,
    f: impl Fn(usize, &FloatHistogram) -> Option<f64>,
) -> Vec<VSeries> {
    let mut out = Vec::new();
    for s in v {
        if !s.has_hists() {
            continue;
        }
        let mut vals = vec![absent(); g.n];
        let mut any = false;
        for (i, val) in vals.iter_mut().enumerate() {
            if let Some(h) = s.hist(i)
                && let Some(x) = f(i, h)
            {
                *val = x;
                any = true;
            }
        }
        if any {
            out.push(VSeries::floats(s.labels.clone(), true, vals));
        }
    }
    out
}

/// What evaluating a range function over histogram windows ran into.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RangeNote {
    /// Floats and histograms in one window (for a function that needs one kind).
    Mixed(String),
    /// Histograms ignored beside floats (for a float-only function).
    IgnoredMixed(String),
    /// Histograms that cannot be combined.
    Incompatible(HistogramError, String),
    /// `rate`/`increase` of a gauge histogram.
    NotCounter(String),
    /// `delta` of a counter histogram.
    NotGauge(String),
    /// Custom bucket bounds were reconciled, in `"addition"`, `"subtraction"` or
    /// `"aggregation"`.
    Reconciled(&'static str),
    /// A counter reset met a "no reset" hint in an aggregation over time.
    Conflict,
}

/// The result at one step of a range function over a series with histograms.
pub(super) enum StepResult {
    /// Leave the float result as computed.
    Keep,
    /// No result at this step.
    Drop,
    /// A float result.
    Float(f64),
    /// A histogram result.
    Hist(Arc<FloatHistogram>),
}

fn metric(s: &RSeries<'_>) -> String {
    s.labels.get(METRIC_NAME).unwrap_or("").to_string()
}

/// Change of histogram samples over a window (Prometheus's `histogramRate`): the last
/// minus the first at the coarsest schema seen, plus, for counters, each sample before
/// a detected reset. Gauge results.
fn histogram_change(
    win: &[HistogramSample],
    counter: bool,
    notes: &mut Vec<RangeNote>,
    name: &str,
) -> Option<FloatHistogram> {
    let first = &win[0].histogram;
    let last = &win[win.len() - 1].histogram;
    if counter && (first.is_gauge() || last.is_gauge()) {
        push_once(notes, RangeNote::NotCounter(name.to_string()));
    }
    // A reset between the first two samples makes the first one irrelevant (its
    // layout too): it counts as an empty histogram in the second one's layout.
    let mut start: std::borrow::Cow<'_, FloatHistogram> = std::borrow::Cow::Borrowed(first);
    if counter && win.len() > 1 {
        let second = &win[1].histogram;
        if second.detect_reset(first) {
            start = std::borrow::Cow::Owned(FloatHistogram {
                schema: second.schema,
                custom_values: second.custom_values.clone(),
                ..Default::default()
            });
        }
    }
    let custom = start.uses_custom_buckets();
    let mixed = || RangeNote::Incompatible(HistogramError::MixedSchemas, name.to_string());
    if last.uses_custom_buckets() != custom {
        push_once(notes, mixed());
        return None;
    }
    let mut min_schema = start.schema.min(last.schema);
    for h in &win[1..win.len() - 1] {
        let h = &h.histogram;
        if !counter {
            continue;
        }
        if h.is_gauge() {
            push_once(notes, RangeNote::NotCounter(name.to_string()));
        }
        min_schema = min_schema.min(h.schema);
        if h.uses_custom_buckets() != custom {
            push_once(notes, mixed());
            return None;
        }
    }
    let mut h = last.copy_to_schema(min_schema);
    match h.sub(&start) {
        Err(_) => {
            push_once(notes, mixed());
            return None;
        }
        Ok(true) => push_once(notes, RangeNote::Reconciled("subtraction")),
        Ok(false) => {}
    }
    if counter {
        let mut prev: &FloatHistogram = &start;
        for s in &win[1..] {
            let curr = &s.histogram;
            if curr.detect_reset(prev) {
                match h.add(prev) {
                    Err(_) => {
                        push_once(notes, mixed());
                        return None;
                    }
                    Ok(true) => push_once(notes, RangeNote::Reconciled("addition")),
                    Ok(false) => {}
                }
            }
            prev = curr;
        }
    } else if !(first.is_gauge() && last.is_gauge()) {
        push_once(notes, RangeNote::NotGauge(name.to_string()));
    }
    h.counter_reset_hint = crate::model::CounterResetHint::Gauge;
    h.compact();
    Some(h)
}

fn push_once(notes: &mut Vec<RangeNote>, n: RangeNote) {
    if !notes.contains(&n) {
        notes.push(n);
    }
}

/// The extrapolation factor of `rate`/`increase`/`delta` for a window of `n` samples
/// from `first_t` to `last_t`, as for floats; `zero` is `(first count, change of the
/// count)` for counters, bounding the extrapolation to where the count would be zero.
fn extrapolation(
    first_t: i64,
    last_t: i64,
    n: usize,
    range_start: i64,
    range_end: i64,
    zero: Option<(f64, f64)>,
) -> f64 {
    let mut to_start = (first_t - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last_t) as f64 / 1000.0;
    let sampled = (last_t - first_t) as f64 / 1000.0;
    let avg_gap = sampled / (n - 1) as f64;
    let threshold = avg_gap * 1.1;
    if to_start >= threshold {
        to_start = avg_gap / 2.0;
    }
    if let Some((first, change)) = zero
        && change > 0.0
        && first >= 0.0
    {
        let to_zero = sampled * (first / change);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_gap / 2.0;
    }
    (sampled + to_start + to_end) / sampled
}

/// One step of range function `name` over a series with histogram samples: `win` and
/// `hwin` are the step's float and histogram windows.
#[allow(clippy::too_many_arguments)]
pub(super) fn range_step(
    name: &str,
    s: &RSeries<'_>,
    win: &[Sample],
    hwin: &[HistogramSample],
    range_start: i64,
    range_end: i64,
    notes: &mut Vec<RangeNote>,
) -> StepResult {
    if hwin.is_empty() {
        return StepResult::Keep;
    }
    let mixed = !win.is_empty();
    match name {
        "rate" | "increase" | "delta" => {
            if mixed {
                push_once(notes, RangeNote::Mixed(metric(s)));
                return StepResult::Drop;
            }
            if hwin.len() < 2 {
                return StepResult::Drop;
            }
            let counter = name != "delta";
            let Some(mut h) = histogram_change(hwin, counter, notes, &metric(s)) else {
                return StepResult::Drop;
            };
            let first = &hwin[0];
            let last = &hwin[hwin.len() - 1];
            let zero = counter.then(|| (first.histogram.count, h.count));
            let mut factor = extrapolation(
                first.timestamp_ms,
                last.timestamp_ms,
                hwin.len(),
                range_start,
                range_end,
                zero,
            );
            if name == "rate" {
                factor /= (range_end - range_start) as f64 / 1000.0;
            }
            h.mul(factor);
            StepResult::Hist(Arc::new(h))
        }
        "irate" | "idelta" => {
            // The last two samples of either kind.
            let mut last: Vec<(i64, Option<&Arc<FloatHistogram>>)> = win
                .iter()
                .rev()
                .take(2)
                .map(|x| (x.timestamp_ms, None))
                .chain(
                    hwin.iter()
                        .rev()
                        .take(2)
                        .map(|h| (h.timestamp_ms, Some(&h.histogram))),
                )
                .collect();
            last.sort_by_key(|x| std::cmp::Reverse(x.0));
            if last.len() < 2 {
                return StepResult::Drop;
            }
            let (t1, h1) = last[0];
            let (t0, h0) = last[1];
            let (Some(h1), Some(h0)) = (h1, h0) else {
                if h1.is_some() || h0.is_some() {
                    push_once(notes, RangeNote::Mixed(metric(s)));
                    return StepResult::Drop;
                }
                return StepResult::Keep;
            };
            let rate = name == "irate";
            if rate && (h1.is_gauge() || h0.is_gauge()) {
                push_once(notes, RangeNote::NotCounter(metric(s)));
            }
            if !rate && (!h1.is_gauge() || !h0.is_gauge()) {
                push_once(notes, RangeNote::NotGauge(metric(s)));
            }
            let mut out = FloatHistogram::clone(h1);
            if !(rate && h1.detect_reset(h0)) {
                match out.sub(h0) {
                    Err(e) => {
                        push_once(notes, RangeNote::Incompatible(e, metric(s)));
                        return StepResult::Drop;
                    }
                    Ok(true) => push_once(notes, RangeNote::Reconciled("subtraction")),
                    Ok(false) => {}
                }
            }
            if rate {
                let gap = t1 - t0;
                if gap == 0 {
                    return StepResult::Drop;
                }
                out.div(gap as f64 / 1000.0);
            }
            out.counter_reset_hint = crate::model::CounterResetHint::Gauge;
            out.compact();
            StepResult::Hist(Arc::new(out))
        }
        "sum_over_time" | "avg_over_time" => {
            if mixed {
                push_once(notes, RangeNote::Mixed(metric(s)));
                return StepResult::Drop;
            }
            let all: Vec<&FloatHistogram> = hwin.iter().map(|h| &*h.histogram).collect();
            match FloatHistogram::sum_of(&all, name == "avg_over_time") {
                Err(e) => {
                    push_once(notes, RangeNote::Incompatible(e, metric(s)));
                    StepResult::Drop
                }
                Ok(sum) => {
                    if sum.reconciled {
                        push_once(notes, RangeNote::Reconciled("aggregation"));
                    }
                    if sum.conflict {
                        push_once(notes, RangeNote::Conflict);
                    }
                    let mut h = sum.histogram;
                    h.compact();
                    StepResult::Hist(Arc::new(h))
                }
            }
        }
        "count_over_time" => StepResult::Float((win.len() + hwin.len()) as f64),
        "present_over_time" => StepResult::Float(1.0),
        "last_over_time" | "ts_of_last_over_time" => {
            let h = &hwin[hwin.len() - 1];
            let float_newer = win.last().is_some_and(|f| f.timestamp_ms > h.timestamp_ms);
            match (name, float_newer) {
                (_, true) => StepResult::Keep,
                ("last_over_time", false) => StepResult::Hist(h.histogram.clone()),
                _ => StepResult::Float(h.timestamp_ms as f64 / 1000.0),
            }
        }
        "first_over_time" | "ts_of_first_over_time" => {
            let h = &hwin[0];
            let float_older = win.first().is_some_and(|f| f.timestamp_ms < h.timestamp_ms);
            match (name, float_older) {
                (_, true) => StepResult::Keep,
                ("first_over_time", false) => StepResult::Hist(h.histogram.clone()),
                _ => StepResult::Float(h.timestamp_ms as f64 / 1000.0),
            }
        }
        "resets" | "changes" => {
            // Both kinds in time order; a change of kind counts as a change or reset.
            enum Point<'p> {
                F(f64),
                H(&'p FloatHistogram),
            }
            let mut all: Vec<(i64, Point<'_>)> = win
                .iter()
                .map(|x| (x.timestamp_ms, Point::F(x.value)))
                .chain(
                    hwin.iter()
                        .map(|h| (h.timestamp_ms, Point::H(&h.histogram))),
                )
                .collect();
            all.sort_by_key(|p| p.0);
            let mut n = 0usize;
            for pair in all.windows(2) {
                let hit = match (&pair[0].1, &pair[1].1) {
                    (Point::F(a), Point::F(b)) => {
                        if name == "resets" {
                            b < a
                        } else {
                            a != b && !(a.is_nan() && b.is_nan())
                        }
                    }
                    (Point::H(a), Point::H(b)) => {
                        if name == "resets" {
                            b.detect_reset(a)
                        } else {
                            !b.approx_eq(a, |x, y| x == y)
                        }
                    }
                    _ => true,
                };
                if hit {
                    n += 1;
                }
            }
            StepResult::Float(n as f64)
        }
        _ => {
            if mixed {
                push_once(notes, RangeNote::IgnoredMixed(metric(s)));
                StepResult::Keep
            } else {
                StepResult::Drop
            }
        }
    }
}

/// Applies [`range_step`] at every step of a series: overrides `vals` and returns the
/// histogram results (empty when there are none).
#[allow(clippy::too_many_arguments)]
pub(super) fn range_series(
    name: &str,
    s: &RSeries<'_>,
    ends: &[i64],
    range: i64,
    vals: &mut [f64],
    notes: &mut Vec<RangeNote>,
) -> Vec<Option<Arc<FloatHistogram>>> {
    let mut hists: Vec<Option<Arc<FloatHistogram>>> = Vec::new();
    let mut w = Windows::new(&s.samples);
    let mut hw = HWindows::new(&s.hists);
    for (i, &end) in ends.iter().enumerate() {
        let (lo, hi) = w.window(end, range);
        let (hlo, hhi) = hw.window(end, range);
        match range_step(
            name,
            s,
            &s.samples[lo..hi],
            &s.hists[hlo..hhi],
            end - range,
            end,
            notes,
        ) {
            StepResult::Keep => {}
            StepResult::Drop => vals[i] = absent(),
            StepResult::Float(f) => vals[i] = f,
            StepResult::Hist(h) => {
                vals[i] = absent();
                if hists.is_empty() {
                    hists = vec![None; ends.len()];
                }
                hists[i] = Some(h);
            }
        }
    }
    hists
}

/// True when a float column holds a point at some step.
pub(super) fn any_float(vals: &[f64]) -> bool {
    vals.iter().any(|v| is_present(*v))
}

/// Counter-reset hints as Prometheus's storage returns them, set on a series' loaded
/// histogram samples in time order: the first keeps its own; later counter samples get
/// "not a reset" unless a reset is detected against the previous sample (then
/// "unknown", as Prometheus's chunks return it, or, for `stats`, "reset": the
/// statistics-only decoding `histogram_count`, `histogram_sum` and `histogram_avg` get
/// detects resets itself). Gauges and explicit "not a reset" keep their hint.
pub(super) fn normalize_hints(hs: &mut [HistogramSample], stats: bool) {
    use crate::model::CounterResetHint::*;
    let mut prev: Option<Arc<FloatHistogram>> = None;
    for s in hs.iter_mut() {
        if super::eval::is_stale_histogram(&s.histogram) {
            prev = None;
            continue;
        }
        let h = &s.histogram;
        let hint = match (h.counter_reset_hint, &prev) {
            (Gauge, _) | (NotCounterReset, _) | (_, None) => h.counter_reset_hint,
            (CounterReset, Some(_)) => {
                if stats {
                    CounterReset
                } else {
                    Unknown
                }
            }
            (Unknown, Some(p)) => {
                if h.detect_reset(p) {
                    if stats { CounterReset } else { Unknown }
                } else {
                    NotCounterReset
                }
            }
        };
        if hint != h.counter_reset_hint {
            Arc::make_mut(&mut s.histogram).counter_reset_hint = hint;
        }
        prev = Some(s.histogram.clone());
    }
}
