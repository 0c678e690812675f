//! The evaluator's core: the value model over steps, selectors, subqueries, `@` and
//! `offset`, the up-front sample loading, and turning the result into a [`Value`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::parser::{AtModifier, DurationExpr, Expr, MatrixSelector, SubqueryExpr, VectorSelector};

use opendata_common::budget::{BudgetSpent, Reservation};

use super::{InstantSample, QueryError, RangeSeries, Value};
use crate::model::{
    FloatHistogram, HistogramSample, Label, Labels, METRIC_NAME, Sample, Series, Timed,
    is_stale_marker,
};

/// Bit pattern marking "no point at this step" in a step column. A signalling NaN no
/// arithmetic produces; a stored sample with these bits is read as an ordinary NaN.
const ABSENT_BITS: u64 = 0x7ff0_0000_0000_0bad;

/// The "no point" marker.
#[inline]
pub(super) fn absent() -> f64 {
    f64::from_bits(ABSENT_BITS)
}

/// True when a step column holds a point.
#[inline]
pub(super) fn is_present(v: f64) -> bool {
    v.to_bits() != ABSENT_BITS
}

pub(super) type Result<T> = std::result::Result<T, QueryError>;

/// Evaluation times: `start + i * step` for `i` in `0..n`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Grid {
    pub start: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    #[inline]
    pub fn t(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// An instant vector's series over the steps: one column entry per step.
#[derive(Debug, Clone)]
pub(super) struct VSeries {
    pub labels: Labels,
    /// The metric name is to be dropped at the end of evaluation (Prometheus's delayed
    /// name removal: functions can still read and preserve it until then).
    pub drop_name: bool,
    pub vals: Vec<f64>,
    /// Native-histogram points: empty when the series has none, else one entry per step
    /// (`vals` is absent where a histogram is).
    pub hists: Vec<Option<Arc<FloatHistogram>>>,
}

impl VSeries {
    /// A float series.
    pub fn floats(labels: Labels, drop_name: bool, vals: Vec<f64>) -> Self {
        Self {
            labels,
            drop_name,
            vals,
            hists: Vec::new(),
        }
    }

    pub fn points(&self) -> usize {
        self.vals.iter().filter(|v| is_present(**v)).count()
            + self.hists.iter().filter(|h| h.is_some()).count()
    }

    /// The histogram at step `i`, if any.
    #[inline]
    pub fn hist(&self, i: usize) -> Option<&Arc<FloatHistogram>> {
        self.hists.get(i).and_then(|h| h.as_ref())
    }

    /// True when the series has a histogram at some step.
    pub fn has_hists(&self) -> bool {
        self.hists.iter().any(Option::is_some)
    }

    /// True when the series has a float at some step.
    pub fn has_floats(&self) -> bool {
        self.vals.iter().any(|v| is_present(*v))
    }
}

/// True for a histogram stale marker (its sum is the stale NaN).
pub(super) fn is_stale_histogram(h: &FloatHistogram) -> bool {
    is_stale_marker(h.sum)
}

/// A range vector's series: samples in time order (stale markers removed).
#[derive(Debug, Clone)]
pub(super) struct RSeries<'a> {
    pub labels: Labels,
    pub drop_name: bool,
    pub samples: Cow<'a, [Sample]>,
    /// Histogram samples in time order (stale markers removed).
    pub hists: Cow<'a, [HistogramSample]>,
}

impl RSeries<'_> {
    /// A float series.
    pub fn floats(labels: Labels, drop_name: bool, samples: Vec<Sample>) -> Self {
        Self {
            labels,
            drop_name,
            samples: Cow::Owned(samples),
            hists: Cow::Owned(Vec::new()),
        }
    }
}

/// A range vector over the steps: at step `i`, a series' window is the samples with
/// timestamps in `(ends[i] - range, ends[i]]`.
#[derive(Debug, Clone)]
pub(super) struct RangeVec<'a> {
    pub series: Vec<RSeries<'a>>,
    pub range: i64,
    pub ends: Vec<i64>,
    /// Points counted against `max_samples` for it: its largest step (the most samples
    /// all its windows hold at one step), as Prometheus counts range selectors and
    /// subqueries.
    pub held: u64,
    /// Bytes of the memory budget its own samples hold (0 when it borrows the loaded
    /// samples).
    pub bytes: u64,
    /// The selector's `anchored` or `smoothed` modifier: its series also hold the
    /// samples up to the lookback delta before each window (and after it, smoothed).
    pub extended: Extension,
}

/// The `anchored` and `smoothed` range modifiers of a range vector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Extension {
    pub anchored: bool,
    pub smoothed: bool,
    /// The lookback delta the windows reach beyond the range (0 without a modifier).
    pub lookback: i64,
}

impl Extension {
    /// Whether a modifier is set.
    pub fn any(&self) -> bool {
        self.anchored || self.smoothed
    }

    /// The `(end, range)` of the samples step `end` reads: `(end - range, end]`
    /// widened by the lookback delta before (both modifiers) and after (smoothed).
    pub fn reach(&self, end: i64, range: i64) -> (i64, i64) {
        if !self.any() {
            return (end, range);
        }
        let after = if self.smoothed { self.lookback } else { 0 };
        (end + after, range + self.lookback + after)
    }
}

impl RangeVec<'_> {
    /// The most samples its windows hold at one step, over all series.
    pub fn peak_step(&self) -> u64 {
        let mut per_step = vec![0u64; self.ends.len()];
        for s in &self.series {
            let mut w = Windows::new(&s.samples);
            let mut hw = HWindows::new(&s.hists);
            for (i, &end) in self.ends.iter().enumerate() {
                let (end, range) = self.extended.reach(end, self.range);
                let (lo, hi) = w.window(end, range);
                per_step[i] += (hi - lo) as u64;
                if !s.hists.is_empty() {
                    let (lo, hi) = hw.window(end, range);
                    // A histogram holds more than a float: counted by its buckets.
                    per_step[i] += s.hists[lo..hi]
                        .iter()
                        .map(|h| hist_points(&h.histogram))
                        .sum::<u64>();
                }
            }
        }
        per_step.into_iter().max().unwrap_or(0)
    }
}

/// Bytes of the memory budget one point or sample is counted as: a timestamp and a value.
pub(super) const POINT_BYTES: u64 = 16;

/// Index windows of a series' samples (floats or histograms), step by step.
pub(super) struct Windows<'s, T = Sample> {
    samples: &'s [T],
    lo: usize,
    hi: usize,
}

/// Windows over histogram samples.
pub(super) type HWindows<'s> = Windows<'s, HistogramSample>;

impl<'s, T: Timed> Windows<'s, T> {
    pub fn new(samples: &'s [T]) -> Self {
        Self {
            samples,
            lo: 0,
            hi: 0,
        }
    }

    /// The index range of samples in `(end - range, end]`. Ends must not decrease from
    /// call to call (they never do: steps increase, and `@` fixes them).
    #[inline]
    pub fn window(&mut self, end: i64, range: i64) -> (usize, usize) {
        let s = self.samples;
        debug_assert!(self.hi == 0 || s[self.hi - 1].ts() <= end);
        while self.hi < s.len() && s[self.hi].ts() <= end {
            self.hi += 1;
        }
        let start = end - range;
        if self.lo > self.hi {
            self.lo = self.hi;
        }
        while self.lo < self.hi && s[self.lo].ts() <= start {
            self.lo += 1;
        }
        (self.lo, self.hi)
    }
}

/// Points a histogram is counted as against `max_samples` (Prometheus counts a
/// histogram by its size: one point per 16 bytes-ish of buckets, at least one).
pub(super) fn hist_points(h: &FloatHistogram) -> u64 {
    1 + ((h.positive.len() + h.negative.len()) as u64) / 8
}

/// A value over the steps.
pub(super) enum Val<'a> {
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<VSeries>),
    Range(RangeVec<'a>),
}

impl Val<'_> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => "scalar",
            Val::Str(_) => "string",
            Val::Vector(_) => "instant vector",
            Val::Range(_) => "range vector",
        }
    }
}

/// Samples loaded for each selector, keyed by the selector node's address.
pub(super) type Loaded = HashMap<usize, Vec<Series>>;

/// The key of a selector node in [`Loaded`].
pub(super) fn node_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

/// The selectors Prometheus decodes for histogram statistics only: those whose nearest
/// enclosing histogram function is `histogram_count`, `histogram_sum` or
/// `histogram_avg` (not `histogram_quantile` or `histogram_fraction`), without a binary
/// operator in between. Their samples get counter-reset hints detected on the fly.
pub(super) fn stats_selectors(e: &Expr) -> std::collections::HashSet<usize> {
    fn walk(e: &Expr, ctx: Option<bool>, out: &mut std::collections::HashSet<usize>) {
        match e {
            Expr::VectorSelector(vs) if ctx == Some(true) => {
                out.insert(node_key(vs));
            }
            Expr::MatrixSelector(ms) if ctx == Some(true) => {
                out.insert(node_key(&ms.vs));
            }
            Expr::Call(c) => {
                let ctx = match c.func.name {
                    "histogram_count" | "histogram_sum" | "histogram_avg" => Some(true),
                    "histogram_quantile" | "histogram_fraction" => Some(false),
                    _ => ctx,
                };
                for a in &c.args {
                    walk_deep(a, ctx, out);
                }
            }
            Expr::Binary(b) => {
                walk_deep(&b.lhs, None, out);
                walk_deep(&b.rhs, None, out);
            }
            Expr::Aggregate(a) => {
                walk_deep(&a.expr, ctx, out);
                if let Some(p) = &a.param {
                    walk_deep(p, ctx, out);
                }
            }
            Expr::Paren(p) => walk_deep(&p.expr, ctx, out),
            Expr::Unary(u) => walk_deep(&u.expr, ctx, out),
            Expr::Subquery(s) => walk_deep(&s.expr, ctx, out),
            _ => {}
        }
    }
    fn walk_deep(e: &Expr, ctx: Option<bool>, out: &mut std::collections::HashSet<usize>) {
        super::with_stack(|| walk(e, ctx, out))
    }
    let mut out = std::collections::HashSet::new();
    walk_deep(e, None, &mut out);
    out
}

/// The value of a duration in milliseconds: `step()` is the query's step (0 for an
/// instant query) and `range()` its range (end - start), as upstream evaluates them.
pub(super) fn duration_ms(d: &DurationExpr, step: i64, range: i64) -> Result<i64> {
    d.eval_ms(step, range)
        .map_err(|e| QueryError::BadData(format!("invalid duration {d}: {e}")))
}

/// Milliseconds of an `offset` (negative offsets look forward).
pub(super) fn offset_ms(offset: &Option<DurationExpr>, step: i64, range: i64) -> Result<i64> {
    match offset {
        None => Ok(0),
        Some(d) => duration_ms(d, step, range),
    }
}

/// The time an `@` modifier fixes, given the query's bounds.
pub(super) fn at_ms(at: &AtModifier, query_start: i64, query_end: i64) -> i64 {
    match at {
        AtModifier::Start => query_start,
        AtModifier::End => query_end,
        AtModifier::Timestamp(t) => *t,
    }
}

/// A range's or subquery range's value, which must be positive.
pub(super) fn range_ms(d: &DurationExpr, step: i64, range: i64) -> Result<i64> {
    let ms = duration_ms(d, step, range)?;
    if ms <= 0 {
        return Err(QueryError::BadData(format!(
            "invalid duration {d}: duration must be greater than 0, got {ms}ms"
        )));
    }
    Ok(ms)
}

/// The grid a subquery's inner expression is evaluated on, for windows ending from
/// `min_end` to `max_end`: multiples of its step (`default_step` when it has none or it is
/// not positive), from the first one strictly after `min_end - range` (empty when there
/// is none up to `max_end`).
pub(super) fn subquery_grid(
    range: i64,
    step: Option<i64>,
    min_end: i64,
    max_end: i64,
    default_step: i64,
) -> Grid {
    let step = match step {
        Some(s) if s > 0 => s,
        _ => default_step,
    };
    let t = min_end - range;
    let start = t.div_euclid(step) * step + step;
    let n = if start > max_end {
        0
    } else {
        ((max_end - start) / step + 1) as usize
    };
    Grid { start, step, n }
}

/// A subquery's range and step in milliseconds.
pub(super) fn subquery_range_step(
    sq: &SubqueryExpr,
    step: i64,
    range: i64,
) -> Result<(i64, Option<i64>)> {
    let r = range_ms(&sq.range, step, range)?;
    let s = match &sq.step {
        Some(d) => Some(duration_ms(d, step, range)?),
        None => None,
    };
    Ok((r, s))
}

/// State of one query's evaluation.
pub(super) struct Evaluator<'a> {
    pub data: &'a Loaded,
    pub query: &'a str,
    pub query_start: i64,
    pub query_end: i64,
    /// The range query's step (0 for an instant query).
    pub query_step: i64,
    pub lookback: i64,
    pub default_step: i64,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    deadline: Instant,
    max_samples: u64,
    points: u64,
    memory: Reservation,
}

impl<'a> Evaluator<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        data: &'a Loaded,
        query: &'a str,
        query_start: i64,
        query_end: i64,
        lookback: i64,
        default_step: i64,
        deadline: Instant,
        max_samples: u64,
        memory: Reservation,
    ) -> Self {
        Self {
            data,
            query,
            query_start,
            query_end,
            query_step: 0,
            lookback,
            default_step,
            warnings: Vec::new(),
            infos: Vec::new(),
            deadline,
            max_samples,
            points: 0,
            memory,
        }
    }

    /// Checks a label name made by the query. The parser turns a `\xNN` escape into the
    /// character U+00NN, where Prometheus keeps the raw byte; when the query uses such
    /// escapes, names are judged (and reported) by the bytes they stand for.
    pub fn check_label_name(&self, name: &str) -> Result<()> {
        if !self.query.contains("\\x")
            || name.chars().all(|c| (c as u32) < 0x80 || (c as u32) > 0xff)
        {
            return Ok(());
        }
        let bytes: Vec<u8> = name
            .chars()
            .flat_map(|c| {
                if (0x80..=0xff).contains(&(c as u32)) {
                    vec![c as u32 as u8]
                } else {
                    c.to_string().into_bytes()
                }
            })
            .collect();
        if std::str::from_utf8(&bytes).is_ok() {
            return Ok(());
        }
        let mut shown = String::new();
        for chunk in bytes.utf8_chunks() {
            shown.push_str(&chunk.valid().escape_debug().to_string());
            for b in chunk.invalid() {
                shown.push_str(&format!("\\x{b:02x}"));
            }
        }
        Err(QueryError::Execution(format!(
            "invalid label name \"{shown}\""
        )))
    }

    /// Fails once the deadline has passed.
    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout(
                "query timed out in expression evaluation".into(),
            ));
        }
        Ok(())
    }

    /// Accounts for `n` more points held in memory: against `max_samples` and the
    /// memory budget.
    pub fn hold(&mut self, n: usize) -> Result<()> {
        self.count(n as u64)?;
        self.reserve(n as u64 * POINT_BYTES)
    }

    /// Accounts for `n` points no longer held.
    pub fn release(&mut self, n: usize) {
        self.uncount(n as u64);
        self.memory.shrink(n as u64 * POINT_BYTES);
    }

    /// Counts `n` more points against `max_samples` only.
    fn count(&mut self, n: u64) -> Result<()> {
        self.points += n;
        if self.points > self.max_samples {
            return Err(too_many_samples());
        }
        Ok(())
    }

    fn uncount(&mut self, n: u64) {
        self.points = self.points.saturating_sub(n);
    }

    /// Reserves `bytes` more of the memory budget.
    fn reserve(&mut self, bytes: u64) -> Result<()> {
        self.memory
            .grow(bytes)
            .map_err(|e| budget_error(e, self.memory.bytes()))
    }

    /// Returns what a range vector held, once it has been used.
    pub fn release_range(&mut self, r: &RangeVec<'_>) {
        self.uncount(r.held);
        self.memory.shrink(r.bytes);
    }

    /// A range selector, counted at its largest step.
    fn range_selector(&mut self, ms: &MatrixSelector, g: Grid) -> Result<RangeVec<'a>> {
        let mut r = self.select_range(ms, g)?;
        r.held = r.peak_step();
        self.count(r.held)?;
        let owned: usize = r
            .series
            .iter()
            .filter(|s| matches!(s.samples, Cow::Owned(_)))
            .map(|s| s.samples.len())
            .sum();
        r.bytes = owned as u64 * POINT_BYTES;
        self.reserve(r.bytes)?;
        Ok(r)
    }

    /// Position of a node in the query, as Prometheus prints it (`line:col` of the
    /// node's first byte, both 1-based).
    pub fn position_of(&self, e: &Expr) -> String {
        let offset = e.span().start.min(self.query.len());
        let before = &self.query.as_bytes()[..offset];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let col = match before.iter().rposition(|&c| c == b'\n') {
            Some(nl) => offset - nl,
            None => offset + 1,
        };
        format!("{line}:{col}")
    }

    /// A range's value in milliseconds (positive), with the query's step and range.
    pub fn range_of(&self, d: &DurationExpr) -> Result<i64> {
        range_ms(d, self.query_step, self.query_end - self.query_start)
    }

    /// Adds a warning (deduplicated).
    pub fn warn(&mut self, msg: String, at: Option<&Expr>) {
        let msg = match at {
            Some(e) => format!("PromQL warning: {msg} ({})", self.position_of(e)),
            None => format!("PromQL warning: {msg}"),
        };
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    /// Adds an info (deduplicated).
    pub fn info(&mut self, msg: String, at: Option<&Expr>) {
        let msg = match at {
            Some(e) => format!("PromQL info: {msg} ({})", self.position_of(e)),
            None => format!("PromQL info: {msg}"),
        };
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }

    /// The reference time of each step after `@` and `offset`.
    pub fn ends(
        &self,
        g: Grid,
        at: &Option<AtModifier>,
        offset: &Option<DurationExpr>,
    ) -> Result<Vec<i64>> {
        let off = offset_ms(offset, self.query_step, self.query_end - self.query_start)?;
        Ok(match at {
            Some(a) => vec![at_ms(a, self.query_start, self.query_end) - off; g.n],
            None => (0..g.n).map(|i| g.t(i) - off).collect(),
        })
    }

    /// Evaluates an expression at every step of `g`. The recursion follows the tree,
    /// whose depth the parser bounds; the stack grows on demand.
    pub fn eval(&mut self, e: &'a Expr, g: Grid) -> Result<Val<'a>> {
        // One level of evaluation runs through large frames (a debug build's function
        // evaluation holds many locals): a wide red zone.
        stacker::maybe_grow(256 * 1024, 4 * 1024 * 1024, || self.eval_inner(e, g))
    }

    fn eval_inner(&mut self, e: &'a Expr, g: Grid) -> Result<Val<'a>> {
        self.check_deadline()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; g.n])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, g),
            Expr::Unary(u) if u.op == super::parser::UnaryOp::Plus => {
                match self.eval(&u.expr, g)? {
                    v @ (Val::Scalar(_) | Val::Vector(_)) => Ok(v),
                    other => Err(QueryError::BadData(format!(
                        "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                        other.type_name()
                    ))),
                }
            }
            Expr::Unary(u) => match self.eval(&u.expr, g)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut vs) => {
                    for s in &mut vs {
                        for x in &mut s.vals {
                            if is_present(*x) {
                                *x = -*x;
                            }
                        }
                        for h in s.hists.iter_mut().flatten() {
                            let h = Arc::make_mut(h);
                            h.mul(-1.0);
                            h.counter_reset_hint = crate::model::CounterResetHint::Gauge;
                        }
                        s.drop_name = true;
                    }
                    Ok(Val::Vector(vs))
                }
                other => Err(QueryError::BadData(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => {
                let out = if vs.smoothed {
                    self.select_smoothed(vs, g)?
                } else {
                    self.select_instant(vs, g, false)?
                };
                self.hold(out.iter().map(VSeries::points).sum())?;
                Ok(Val::Vector(out))
            }
            Expr::MatrixSelector(ms) => {
                let mut r = self.range_selector(ms, g)?;
                if r.extended.any() {
                    // A range vector shown as it is (the root of an instant query):
                    // the samples with the points the modifiers add at the edges.
                    r = super::extended::extend_range(self, r)?;
                }
                Ok(Val::Range(r))
            }
            Expr::Subquery(sq) => Ok(Val::Range(self.subquery(sq, g)?)),
            Expr::Binary(b) => super::binary::eval(self, b, g),
            Expr::Aggregate(a) => super::aggregate::eval(self, a, g),
            Expr::Call(c) => super::functions::eval(self, c, g),
        }
    }

    /// Evaluates an expression that must give an instant vector.
    pub fn eval_vector(&mut self, e: &'a Expr, g: Grid) -> Result<Vec<VSeries>> {
        match self.eval(e, g)? {
            Val::Vector(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates an expression that must give a scalar.
    pub fn eval_scalar(&mut self, e: &'a Expr, g: Grid) -> Result<Vec<f64>> {
        match self.eval(e, g)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::BadData(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    /// Evaluates the range vector argument of the function `func` (a range selector,
    /// parentheses around it ignored, is handed over as selected: the function reads
    /// its windows, extended by a modifier the function must allow).
    pub fn eval_range(&mut self, e: &'a Expr, g: Grid, func: &str) -> Result<RangeVec<'a>> {
        let mut inner = e;
        while let Expr::Paren(p) = inner {
            inner = &p.expr;
        }
        if let Expr::MatrixSelector(ms) = inner {
            for (set, name, allowed) in [
                (
                    ms.vs.anchored,
                    "anchored",
                    super::parser::ANCHORED_FUNCTIONS,
                ),
                (
                    ms.vs.smoothed,
                    "smoothed",
                    super::parser::SMOOTHED_FUNCTIONS,
                ),
            ] {
                if set && !allowed.contains(&func) {
                    return Err(QueryError::BadData(format!(
                        "{name} modifier can only be used with: {} - not with {func}",
                        allowed.join(", ")
                    )));
                }
            }
            return self.range_selector(ms, g);
        }
        match self.eval(e, g)? {
            Val::Range(r) => Ok(r),
            other => Err(QueryError::BadData(format!(
                "expected range vector, got {}",
                other.type_name()
            ))),
        }
    }

    /// An instant vector selector: at each step the newest sample in
    /// `(t - lookback, t]`, unless it is a stale marker. With `timestamps`, the value is
    /// the sample's timestamp in seconds instead (for `timestamp()`).
    pub fn select_instant(
        &self,
        vs: &VectorSelector,
        g: Grid,
        timestamps: bool,
    ) -> Result<Vec<VSeries>> {
        let ends = self.ends(g, &vs.at, &vs.offset)?;
        let Some(series) = self.data.get(&node_key(vs)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for s in series {
            let samples = &s.samples;
            let hs = &s.histograms;
            let mut vals = vec![absent(); g.n];
            let mut hists: Vec<Option<Arc<FloatHistogram>>> = Vec::new();
            if !hs.is_empty() {
                hists = vec![None; g.n];
            }
            let mut any = false;
            let (mut j, mut k) = (0usize, 0usize);
            // Ends never decrease, so `j` and `k` only move forward.
            for (i, &end) in ends.iter().enumerate() {
                while j < samples.len() && samples[j].timestamp_ms <= end {
                    j += 1;
                }
                while k < hs.len() && hs[k].timestamp_ms <= end {
                    k += 1;
                }
                let float_t = (j > 0).then(|| samples[j - 1].timestamp_ms);
                let hist_t = (k > 0).then(|| hs[k - 1].timestamp_ms);
                // The newest sample of either kind.
                if hist_t.is_some() && hist_t >= float_t {
                    let h = &hs[k - 1];
                    if h.timestamp_ms <= end - self.lookback || is_stale_histogram(&h.histogram) {
                        continue;
                    }
                    if timestamps {
                        vals[i] = h.timestamp_ms as f64 / 1000.0;
                    } else {
                        hists[i] = Some(h.histogram.clone());
                    }
                    any = true;
                    continue;
                }
                if j == 0 {
                    continue;
                }
                let smp = samples[j - 1];
                if smp.timestamp_ms <= end - self.lookback || is_stale_marker(smp.value) {
                    continue;
                }
                vals[i] = if timestamps {
                    smp.timestamp_ms as f64 / 1000.0
                } else {
                    sanitize(smp.value)
                };
                any = true;
            }
            if any {
                if hists.iter().all(Option::is_none) {
                    hists = Vec::new();
                }
                out.push(VSeries {
                    labels: s.labels.clone(),
                    drop_name: false,
                    vals,
                    hists,
                });
            }
        }
        Ok(out)
    }

    /// An instant vector selector with the `smoothed` modifier: at each step the value
    /// at exactly that time, interpolated linearly between the samples on either side
    /// (within the lookback delta each way), or the sample before when none follows.
    pub fn select_smoothed(&self, vs: &VectorSelector, g: Grid) -> Result<Vec<VSeries>> {
        let ends = self.ends(g, &vs.at, &vs.offset)?;
        let Some(series) = self.data.get(&node_key(vs)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for s in series {
            let samples: Vec<Sample> = s
                .samples
                .iter()
                .filter(|x| !is_stale_marker(x.value))
                .map(|x| Sample {
                    timestamp_ms: x.timestamp_ms,
                    value: sanitize(x.value),
                })
                .collect();
            let mut vals = vec![absent(); g.n];
            let mut any = false;
            for (i, &t) in ends.iter().enumerate() {
                let (lo, hi) = (t - self.lookback, t + self.lookback);
                if s.histograms.iter().any(|h| {
                    h.timestamp_ms > lo && h.timestamp_ms <= hi && !is_stale_histogram(&h.histogram)
                }) {
                    return Err(super::extended::histograms_unsupported());
                }
                let a = samples.partition_point(|x| x.timestamp_ms <= lo);
                let b = samples.partition_point(|x| x.timestamp_ms <= hi);
                let win = &samples[a..b.max(a)];
                let k = win.partition_point(|x| x.timestamp_ms < t);
                let v = if k < win.len() && win[k].timestamp_ms == t {
                    win[k].value
                } else if k > 0 && k < win.len() {
                    super::extended::interpolate(win[k - 1], win[k], t, false)
                } else if k > 0 {
                    win[k - 1].value
                } else {
                    continue;
                };
                vals[i] = v;
                any = true;
            }
            if any {
                out.push(VSeries::floats(s.labels.clone(), false, vals));
            }
        }
        Ok(out)
    }

    /// A range vector selector: each series' samples in the union of its windows,
    /// stale markers removed (borrowed when there are none).
    pub fn select_range(&self, ms: &MatrixSelector, g: Grid) -> Result<RangeVec<'a>> {
        let ends = self.ends(g, &ms.vs.at, &ms.vs.offset)?;
        let range = self.range_of(&ms.range)?;
        let extended = Extension {
            anchored: ms.vs.anchored,
            smoothed: ms.vs.smoothed,
            lookback: if ms.vs.anchored || ms.vs.smoothed {
                self.lookback
            } else {
                0
            },
        };
        let (min_end, min_range) = extended.reach(ends.iter().copied().min().unwrap_or(0), range);
        let lo = min_end - min_range;
        let hi = extended
            .reach(ends.iter().copied().max().unwrap_or(0), range)
            .0;
        let mut out = Vec::new();
        if let Some(series) = self.data.get(&node_key(&ms.vs)) {
            for s in series {
                let a = s.samples.partition_point(|x| x.timestamp_ms <= lo);
                let b = s.samples.partition_point(|x| x.timestamp_ms <= hi);
                let slice = &s.samples[a..b.max(a)];
                let samples = if slice
                    .iter()
                    .any(|x| is_stale_marker(x.value) || x.value.to_bits() == ABSENT_BITS)
                {
                    Cow::Owned(
                        slice
                            .iter()
                            .filter(|x| !is_stale_marker(x.value))
                            .map(|x| Sample {
                                timestamp_ms: x.timestamp_ms,
                                value: sanitize(x.value),
                            })
                            .collect(),
                    )
                } else {
                    Cow::Borrowed(slice)
                };
                let a = s.histograms.partition_point(|x| x.timestamp_ms <= lo);
                let b = s.histograms.partition_point(|x| x.timestamp_ms <= hi);
                let hslice = &s.histograms[a..b.max(a)];
                let hists = if hslice.iter().any(|h| is_stale_histogram(&h.histogram)) {
                    Cow::Owned(
                        hslice
                            .iter()
                            .filter(|h| !is_stale_histogram(&h.histogram))
                            .cloned()
                            .collect(),
                    )
                } else {
                    Cow::Borrowed(hslice)
                };
                out.push(RSeries {
                    labels: s.labels.clone(),
                    drop_name: false,
                    samples,
                    hists,
                });
            }
        }
        Ok(RangeVec {
            series: out,
            range,
            ends,
            held: 0,
            bytes: 0,
            extended,
        })
    }

    /// A subquery: the inner expression evaluated on its own step grid (aligned to
    /// multiples of the step) across every window the outer steps need.
    pub fn subquery(&mut self, sq: &'a SubqueryExpr, g: Grid) -> Result<RangeVec<'a>> {
        let ends = self.ends(g, &sq.at, &sq.offset)?;
        let (range, step) =
            subquery_range_step(sq, self.query_step, self.query_end - self.query_start)?;
        let min_end = ends.iter().copied().min().unwrap_or(0);
        let max_end = ends.iter().copied().max().unwrap_or(0);
        let inner = subquery_grid(range, step, min_end, max_end, self.default_step);
        let value = self.eval(&sq.expr, inner)?;
        // The inner points were counted as the inner expression made them; from here
        // they count as the subquery's windows do, at its largest step (as Prometheus
        // counts subqueries), while their bytes stay reserved.
        let inner_points = match &value {
            Val::Vector(vs) => vs.iter().map(VSeries::points).sum::<usize>() as u64,
            _ => 0,
        };
        let series = match value {
            Val::Vector(vs) => vs
                .into_iter()
                .map(|s| RSeries {
                    samples: Cow::Owned(
                        s.vals
                            .iter()
                            .enumerate()
                            .filter(|(_, v)| is_present(**v))
                            .map(|(i, v)| Sample {
                                timestamp_ms: inner.t(i),
                                value: *v,
                            })
                            .collect(),
                    ),
                    hists: Cow::Owned(
                        s.hists
                            .iter()
                            .enumerate()
                            .filter_map(|(i, h)| {
                                h.as_ref().map(|h| {
                                    // Steps of a subquery are not adjacent samples: a
                                    // counter's reset hints do not carry over.
                                    let mut histogram = h.clone();
                                    if !histogram.is_gauge()
                                        && histogram.counter_reset_hint
                                            != crate::model::CounterResetHint::Unknown
                                    {
                                        Arc::make_mut(&mut histogram).counter_reset_hint =
                                            crate::model::CounterResetHint::Unknown;
                                    }
                                    HistogramSample {
                                        timestamp_ms: inner.t(i),
                                        histogram,
                                    }
                                })
                            })
                            .collect(),
                    ),
                    labels: s.labels,
                    drop_name: s.drop_name,
                })
                .collect(),
            Val::Scalar(vals) => vec![RSeries::floats(
                Labels::default(),
                false,
                vals.iter()
                    .enumerate()
                    .map(|(i, v)| Sample {
                        timestamp_ms: inner.t(i),
                        value: *v,
                    })
                    .collect(),
            )],
            other => {
                return Err(QueryError::BadData(format!(
                    "subquery is only allowed on instant vector, got {} instead",
                    other.type_name()
                )));
            }
        };
        let mut r = RangeVec {
            series,
            range,
            ends,
            held: 0,
            bytes: inner_points * POINT_BYTES,
            extended: Extension::default(),
        };
        self.uncount(inner_points);
        r.held = r.peak_step();
        self.count(r.held)?;
        Ok(r)
    }
}

/// A stored value as the engine sees it: the absent marker's bits become an ordinary NaN.
#[inline]
fn sanitize(v: f64) -> f64 {
    if v.to_bits() == ABSENT_BITS {
        f64::NAN
    } else {
        v
    }
}

/// The error for a memory reservation refused: `execution` (422) when the query alone
/// would hold more than the whole budget (it can never run), `unavailable` (503) when
/// other work holds the rest (it may run later).
pub(super) fn budget_error(e: BudgetSpent, own: u64) -> QueryError {
    if own.saturating_add(e.wanted) > e.limit {
        QueryError::Execution(format!(
            "query processing would hold more than the server's memory budget of {} bytes \
             (limits.memory_budget_bytes)",
            e.limit
        ))
    } else {
        QueryError::Unavailable(e.to_string())
    }
}

pub(super) fn too_many_samples() -> QueryError {
    QueryError::Execution(
        "query processing would load too many samples into memory in query execution".into(),
    )
}

/// Labels without the metric name.
pub(super) fn without_name(labels: &Labels) -> Labels {
    if labels.get(METRIC_NAME).is_none() {
        return labels.clone();
    }
    Labels::from_sorted(
        labels
            .as_slice()
            .iter()
            .filter(|l| l.name != METRIC_NAME)
            .cloned()
            .collect(),
    )
}

/// Labels with `name` set to `value` (removed when `value` is empty).
pub(super) fn with_label(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut v: Vec<Label> = labels
        .as_slice()
        .iter()
        .filter(|l| l.name != name)
        .cloned()
        .collect();
    if !value.is_empty() {
        let at = v.partition_point(|l| l.name.as_str() < name);
        v.insert(
            at,
            Label {
                name: name.to_string(),
                value: value.to_string(),
            },
        );
    }
    Labels::from_sorted(v)
}

/// Turns the root value into the query's result: names marked for dropping are
/// dropped, series that end up with the same labels are merged (an error if they
/// collide at a step), and an instant query's vector keeps evaluation order.
pub(super) fn finish(val: Val<'_>, g: Grid, instant: bool) -> Result<Value> {
    match val {
        Val::Scalar(v) => {
            if instant {
                Ok(Value::Scalar {
                    t: g.start,
                    f: v.first().copied().unwrap_or(f64::NAN),
                })
            } else {
                Ok(Value::Matrix(vec![RangeSeries {
                    labels: Labels::default(),
                    floats: v.iter().enumerate().map(|(i, f)| (g.t(i), *f)).collect(),
                    histograms: Vec::new(),
                }]))
            }
        }
        Val::Str(s) => {
            if instant {
                Ok(Value::String { t: g.start, s })
            } else {
                Err(QueryError::BadData(
                    "invalid expression type \"string\" for range query, must be Scalar or instant Vector"
                        .into(),
                ))
            }
        }
        Val::Range(r) => {
            if !instant {
                return Err(QueryError::BadData(
                    "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
                        .into(),
                ));
            }
            let mut out = Vec::new();
            for s in r.series {
                let end = r.ends.first().copied().unwrap_or(g.start);
                // With a modifier the window is closed: points sit on both edges.
                let closed = r.extended.any();
                let floats: Vec<(i64, f64)> = s
                    .samples
                    .iter()
                    .filter(|x| {
                        (x.timestamp_ms > end - r.range
                            || (closed && x.timestamp_ms == end - r.range))
                            && x.timestamp_ms <= end
                    })
                    .map(|x| (x.timestamp_ms, x.value))
                    .collect();
                let histograms: Vec<(i64, Arc<FloatHistogram>)> = s
                    .hists
                    .iter()
                    .filter(|x| x.timestamp_ms > end - r.range && x.timestamp_ms <= end)
                    .map(|x| (x.timestamp_ms, x.histogram.clone()))
                    .collect();
                if floats.is_empty() && histograms.is_empty() {
                    continue;
                }
                let labels = if s.drop_name {
                    without_name(&s.labels)
                } else {
                    s.labels
                };
                out.push(RangeSeries {
                    labels,
                    floats,
                    histograms,
                });
            }
            check_unique(out.iter().map(|s| &s.labels))?;
            out.sort_by(|a, b| a.labels.cmp(&b.labels));
            Ok(Value::Matrix(out))
        }
        Val::Vector(vs) => {
            // Merge by final labels.
            type Merged = (Labels, Vec<f64>, Vec<Option<Arc<FloatHistogram>>>);
            let mut index: HashMap<Labels, usize> = HashMap::new();
            let mut merged: Vec<Merged> = Vec::new();
            for s in vs {
                let labels = if s.drop_name {
                    without_name(&s.labels)
                } else {
                    s.labels
                };
                let mut hists = s.hists;
                if hists.is_empty() {
                    hists = vec![None; s.vals.len()];
                }
                match index.get(&labels) {
                    Some(&i) => {
                        let (_, tv, th) = &mut merged[i];
                        for (k, (v, h)) in s.vals.into_iter().zip(hists).enumerate() {
                            let here = is_present(tv[k]) || th[k].is_some();
                            if is_present(v) || h.is_some() {
                                if here {
                                    return Err(same_labelset());
                                }
                                tv[k] = v;
                                th[k] = h;
                            }
                        }
                    }
                    None => {
                        index.insert(labels.clone(), merged.len());
                        merged.push((labels, s.vals, hists));
                    }
                }
            }
            if instant {
                Ok(Value::Vector(
                    merged
                        .into_iter()
                        .filter(|(_, v, h)| is_present(v[0]) || h[0].is_some())
                        .map(|(labels, v, mut h)| InstantSample {
                            labels,
                            t: g.start,
                            f: if is_present(v[0]) { v[0] } else { 0.0 },
                            h: h[0].take(),
                        })
                        .collect(),
                ))
            } else {
                let mut out: Vec<RangeSeries> = merged
                    .into_iter()
                    .map(|(labels, v, h)| RangeSeries {
                        labels,
                        floats: v
                            .iter()
                            .enumerate()
                            .filter(|(_, f)| is_present(**f))
                            .map(|(i, f)| (g.t(i), *f))
                            .collect(),
                        histograms: h
                            .into_iter()
                            .enumerate()
                            .filter_map(|(i, h)| h.map(|h| (g.t(i), h)))
                            .collect(),
                    })
                    .filter(|s| !s.floats.is_empty() || !s.histograms.is_empty())
                    .collect();
                out.sort_by(|a, b| a.labels.cmp(&b.labels));
                Ok(Value::Matrix(out))
            }
        }
    }
}

pub(super) fn same_labelset() -> QueryError {
    QueryError::Execution("vector cannot contain metrics with the same labelset".into())
}

fn check_unique<'l>(labels: impl Iterator<Item = &'l Labels>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for l in labels {
        if !seen.insert(l) {
            return Err(same_labelset());
        }
    }
    Ok(())
}

/// Walks the expression to find, for each selector, the time range its evaluation
/// reads, so that every selector is loaded once up front.
pub(super) struct Planner {
    pub query_start: i64,
    pub query_end: i64,
    /// The range query's step (0 for an instant query), for `step()`.
    pub query_step: i64,
    pub lookback: i64,
    pub default_step: i64,
    /// Most steps a subquery may evaluate per series.
    pub max_points: u64,
}

impl Planner {
    fn shift(
        &self,
        start: i64,
        end: i64,
        at: &Option<AtModifier>,
        offset: &Option<DurationExpr>,
    ) -> Result<(i64, i64)> {
        let off = offset_ms(offset, self.query_step, self.query_end - self.query_start)?;
        Ok(match at {
            Some(a) => {
                let t = at_ms(a, self.query_start, self.query_end) - off;
                (t, t)
            }
            None => (start - off, end - off),
        })
    }

    pub fn plan<'e>(
        &self,
        e: &'e Expr,
        start: i64,
        end: i64,
        out: &mut HashMap<usize, (i64, i64, &'e VectorSelector)>,
    ) -> Result<()> {
        super::with_stack(|| self.plan_inner(e, start, end, out))
    }

    fn plan_inner<'e>(
        &self,
        e: &'e Expr,
        start: i64,
        end: i64,
        out: &mut HashMap<usize, (i64, i64, &'e VectorSelector)>,
    ) -> Result<()> {
        let mut add = |vs: &'e VectorSelector, lo: i64, hi: i64| {
            let entry = out.entry(node_key(vs)).or_insert((lo, hi, vs));
            entry.0 = entry.0.min(lo);
            entry.1 = entry.1.max(hi);
        };
        match e {
            Expr::VectorSelector(vs) => {
                let (s, e) = self.shift(start, end, &vs.at, &vs.offset)?;
                let after = if vs.smoothed { self.lookback } else { 0 };
                add(vs, s - self.lookback, e + after);
            }
            Expr::MatrixSelector(ms) => {
                let (s, e) = self.shift(start, end, &ms.vs.at, &ms.vs.offset)?;
                let range = range_ms(
                    &ms.range,
                    self.query_step,
                    self.query_end - self.query_start,
                )?;
                let ext = Extension {
                    anchored: ms.vs.anchored,
                    smoothed: ms.vs.smoothed,
                    lookback: self.lookback,
                };
                let (lo_end, lo_range) = ext.reach(s, range);
                add(&ms.vs, lo_end - lo_range, ext.reach(e, range).0);
            }
            Expr::Subquery(sq) => {
                let (s, e) = self.shift(start, end, &sq.at, &sq.offset)?;
                let (range, step) =
                    subquery_range_step(sq, self.query_step, self.query_end - self.query_start)?;
                let inner = subquery_grid(range, step, s, e, self.default_step);
                if inner.n as u64 > self.max_points {
                    return Err(QueryError::Execution(format!(
                        "subquery {} would evaluate {} steps per series, more than the \
                         limit of {} (timeseries.query.max_points_per_series)",
                        Expr::Subquery(sq.clone()),
                        inner.n,
                        self.max_points
                    )));
                }
                if inner.n > 0 {
                    self.plan(&sq.expr, inner.start, e, out)?;
                }
            }
            Expr::Paren(p) => self.plan(&p.expr, start, end, out)?,
            Expr::Unary(u) => self.plan(&u.expr, start, end, out)?,
            Expr::Binary(b) => {
                self.plan(&b.lhs, start, end, out)?;
                self.plan(&b.rhs, start, end, out)?;
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.plan(p, start, end, out)?;
                }
                self.plan(&a.expr, start, end, out)?;
            }
            Expr::Call(c) => {
                for a in &c.args {
                    self.plan(a, start, end, out)?;
                }
            }
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) => {}
        }
        Ok(())
    }
}
