//! Native histograms: the model and its arithmetic.
//!
//! A native histogram sample counts observations in buckets whose boundaries follow from
//! a `schema` instead of being listed per series:
//!
//! - **Exponential schemas** `-4..=8`: bucket `i` of the positive side covers
//!   `(base^(i-1), base^i]` with `base = 2^(2^-schema)`; the negative side mirrors it,
//!   and a zero bucket `[-zero_threshold, zero_threshold]` holds the observations near 0.
//! - **Custom buckets** (schema `-53`, "NHCB"): the upper bounds are listed in
//!   `custom_values` (strictly increasing, finite); bucket `i` covers
//!   `(custom_values[i-1], custom_values[i]]`, the first starts at `-Inf` and the last
//!   (index `custom_values.len()`) ends at `+Inf`. No zero bucket, no negative side.
//!
//! Every sample is held as a [`FloatHistogram`] (absolute float counts per bucket, the
//! buckets sparse and sorted by index): integer histograms from remote write are
//! converted on ingest, and the chunk codec stores integral counts compactly. The
//! operations follow Prometheus's definitions: adding and subtracting reduce both sides
//! to the coarser schema and the wider zero bucket, counter resets are detected bucket by
//! bucket, quantiles interpolate exponentially inside exponential buckets and linearly in
//! the zero bucket and in custom buckets.

use std::sync::Arc;

/// The schema of histograms with custom bucket boundaries.
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;
/// The coarsest exponential schema.
pub const MIN_SCHEMA: i32 = -4;
/// The finest exponential schema.
pub const MAX_SCHEMA: i32 = 8;
/// Most buckets a stored histogram may have (each side, and custom bounds): bounds the
/// cost of one sample.
pub const MAX_BUCKETS: usize = 16_384;

/// What the producer says about a counter reset between this sample and the previous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CounterResetHint {
    /// Not known: detected from the counts.
    #[default]
    Unknown,
    /// A counter reset happened.
    CounterReset,
    /// No counter reset happened.
    NotCounterReset,
    /// A gauge histogram: counts go up and down, resets do not apply.
    Gauge,
}

impl CounterResetHint {
    /// From remote write's `ResetHint` (0 unknown, 1 yes, 2 no, 3 gauge).
    pub fn from_wire(value: i32) -> Self {
        match value {
            1 => Self::CounterReset,
            2 => Self::NotCounterReset,
            3 => Self::Gauge,
            _ => Self::Unknown,
        }
    }

    /// To remote write's `ResetHint`.
    pub fn to_wire(self) -> i32 {
        match self {
            Self::Unknown => 0,
            Self::CounterReset => 1,
            Self::NotCounterReset => 2,
            Self::Gauge => 3,
        }
    }
}

/// Why two histograms cannot be combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    /// One uses exponential buckets and the other custom buckets.
    #[error("cannot combine a histogram with exponential buckets and one with custom buckets")]
    MixedSchemas,
    /// Both use custom buckets, with different boundaries.
    #[error("cannot combine histograms with different custom bucket boundaries")]
    IncompatibleCustomBuckets,
}

/// A native histogram sample's value, with float counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    /// The producer's counter-reset hint.
    pub counter_reset_hint: CounterResetHint,
    /// The bucket schema (`-4..=8`, or [`CUSTOM_BUCKETS_SCHEMA`]).
    pub schema: i32,
    /// Half-width of the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: f64,
    /// Observations in all.
    pub count: f64,
    /// Sum of the observations.
    pub sum: f64,
    /// Positive buckets: (index, count), sorted by index, indexes unique.
    pub positive: Vec<(i32, f64)>,
    /// Negative buckets: (index, count), sorted by index, indexes unique.
    pub negative: Vec<(i32, f64)>,
    /// Upper bounds of the custom buckets (custom schema only).
    pub custom_values: Arc<[f64]>,
}

/// One bucket with its boundaries, as iteration yields them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Lower boundary.
    pub lower: f64,
    /// Upper boundary.
    pub upper: f64,
    /// Observations.
    pub count: f64,
    /// Whether the lower boundary belongs to the bucket.
    pub lower_inclusive: bool,
    /// Whether the upper boundary belongs to the bucket.
    pub upper_inclusive: bool,
}

/// The upper bound of exponential bucket `index` of `schema` (positive side).
pub fn exponential_upper_bound(index: i32, schema: i32) -> f64 {
    if schema < 0 {
        let exp = (index as i64) << (-schema) as u32;
        if exp == 1024 {
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    let per_octave = 1i64 << schema;
    let frac_index = (index as i64).rem_euclid(per_octave);
    let exp = (index as i64).div_euclid(per_octave) + 1;
    let frac = if frac_index == 0 {
        0.5
    } else {
        (frac_index as f64 / per_octave as f64).exp2() / 2.0
    };
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// `frac * 2^exp`, saturating to 0 and infinity.
fn ldexp(frac: f64, exp: i64) -> f64 {
    let exp = exp.clamp(-2200, 2200) as i32;
    // Split the power so each factor stays representable.
    let half = exp / 2;
    frac * 2f64.powi(half) * 2f64.powi(exp - half)
}

/// The index of the exponential bucket that `value` (> 0) falls in.
pub fn exponential_index(value: f64, schema: i32) -> i32 {
    // The smallest i with value <= upper(i).
    let approx = (value.log2() * 2f64.powi(schema)).ceil();
    let mut i = approx.clamp(i32::MIN as f64 / 2.0, i32::MAX as f64 / 2.0) as i32;
    while i > i32::MIN / 2 && exponential_upper_bound(i - 1, schema) >= value {
        i -= 1;
    }
    while exponential_upper_bound(i, schema) < value {
        i += 1;
    }
    i
}

/// The index a bucket of `origin` schema has in coarser schema `target`.
fn target_index(index: i32, origin: i32, target: i32) -> i32 {
    ((index - 1) >> (origin - target)) + 1
}

/// Merges `b` into `a` (both sorted by index), adding counts times `factor`.
fn merge(a: &[(i32, f64)], b: &[(i32, f64)], factor: f64) -> Vec<(i32, f64)> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                out.push((x.0, x.1 + factor * y.1));
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                out.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                out.push((y.0, factor * y.1));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// Re-indexes sorted buckets from schema `origin` into coarser `target`.
fn reduce(buckets: &[(i32, f64)], origin: i32, target: i32) -> Vec<(i32, f64)> {
    if origin <= target {
        return buckets.to_vec();
    }
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.len());
    for &(i, c) in buckets {
        let t = target_index(i, origin, target);
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

impl FloatHistogram {
    /// True for the custom-buckets schema.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Whether this is a gauge histogram.
    pub fn is_gauge(&self) -> bool {
        self.counter_reset_hint == CounterResetHint::Gauge
    }

    /// Bytes held, approximately, for memory accounting.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + (self.positive.len() + self.negative.len()) * 16
            + self.custom_values.len() * 8
    }

    /// The boundaries of bucket `index` on the positive (or negative) side.
    pub fn bucket_bounds(&self, index: i32, positive: bool) -> (f64, f64) {
        if self.uses_custom_buckets() {
            let cv = &self.custom_values;
            let lower = if index <= 0 {
                f64::NEG_INFINITY
            } else {
                cv.get(index as usize - 1).copied().unwrap_or(f64::INFINITY)
            };
            let upper = if index < 0 {
                f64::NEG_INFINITY
            } else {
                cv.get(index as usize).copied().unwrap_or(f64::INFINITY)
            };
            return (lower, upper);
        }
        let upper = exponential_upper_bound(index, self.schema);
        let lower = exponential_upper_bound(index.saturating_sub(1), self.schema);
        if positive {
            (lower, upper)
        } else {
            (-upper, -lower)
        }
    }

    /// Every bucket in ascending order of value: the negative side from its most negative
    /// bucket, the zero bucket (when it has a width or a count), the positive side.
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut out = Vec::with_capacity(self.positive.len() + self.negative.len() + 1);
        if self.uses_custom_buckets() {
            for &(i, count) in &self.positive {
                let (lower, upper) = self.bucket_bounds(i, true);
                out.push(Bucket {
                    lower,
                    upper,
                    count,
                    lower_inclusive: false,
                    upper_inclusive: true,
                });
            }
            return out;
        }
        for &(i, count) in self.negative.iter().rev() {
            let (lower, upper) = self.bucket_bounds(i, false);
            out.push(Bucket {
                lower,
                upper,
                count,
                lower_inclusive: true,
                upper_inclusive: false,
            });
        }
        if self.zero_threshold != 0.0 || self.zero_count != 0.0 {
            out.push(Bucket {
                lower: -self.zero_threshold,
                upper: self.zero_threshold,
                count: self.zero_count,
                lower_inclusive: true,
                upper_inclusive: true,
            });
        }
        for &(i, count) in &self.positive {
            let (lower, upper) = self.bucket_bounds(i, true);
            out.push(Bucket {
                lower,
                upper,
                count,
                lower_inclusive: false,
                upper_inclusive: true,
            });
        }
        out
    }

    /// Drops buckets with a zero count.
    pub fn compact(&mut self) {
        self.positive.retain(|b| b.1 != 0.0);
        self.negative.retain(|b| b.1 != 0.0);
    }

    /// Lowers the resolution to `target` (coarser: smaller) schema, merging buckets.
    pub fn reduce_resolution(&mut self, target: i32) {
        if self.uses_custom_buckets() || target >= self.schema {
            return;
        }
        self.positive = reduce(&self.positive, self.schema, target);
        self.negative = reduce(&self.negative, self.schema, target);
        self.schema = target;
    }

    /// A copy at `target` schema (at most this one's).
    pub fn copy_to_schema(&self, target: i32) -> Self {
        let mut h = self.clone();
        h.reduce_resolution(target);
        h
    }

    /// The zero count this histogram would have with a zero bucket at least `larger`
    /// wide, and the threshold that really gives (widened to the edge of a populated
    /// bucket the threshold falls inside).
    fn zero_count_for_larger_threshold(&self, mut larger: f64) -> (f64, f64) {
        if larger <= self.zero_threshold {
            return (self.zero_count, self.zero_threshold);
        }
        'outer: loop {
            let mut count = self.zero_count;
            for &(i, c) in &self.positive {
                let (lower, upper) = self.bucket_bounds(i, true);
                if lower >= larger {
                    break;
                }
                count += c;
                if upper > larger {
                    if c != 0.0 {
                        larger = upper;
                    }
                    break;
                }
            }
            for &(i, c) in &self.negative {
                let (lower, upper) = self.bucket_bounds(i, false);
                if upper <= -larger {
                    break;
                }
                count += c;
                if lower < -larger {
                    if c != 0.0 {
                        larger = -lower;
                        continue 'outer;
                    }
                    break;
                }
            }
            return (count, larger);
        }
    }

    /// Removes the buckets that lie inside the zero bucket (their counts are in it).
    fn trim_buckets_in_zero_bucket(&mut self) {
        if self.uses_custom_buckets() || self.zero_threshold == 0.0 {
            return;
        }
        let schema = self.schema;
        let t = self.zero_threshold;
        // Only the first few buckets can lie inside: compare indexes, with the bound of
        // the one bucket the threshold falls in computed once.
        let z = exponential_index(t, schema);
        let z_inside = exponential_upper_bound(z, schema) <= t;
        let outside = |i: i32| i > z || (i == z && !z_inside);
        if self.positive.first().is_some_and(|b| !outside(b.0)) {
            self.positive.retain(|&(i, _)| outside(i));
        }
        if self.negative.first().is_some_and(|b| !outside(b.0)) {
            self.negative.retain(|&(i, _)| outside(i));
        }
    }

    /// Widens this or `other`'s zero bucket so both have the same; returns `other`'s
    /// zero count for that width.
    fn reconcile_zero_buckets(&mut self, other: &FloatHistogram) -> f64 {
        let mut other_count = other.zero_count;
        let mut other_threshold = other.zero_threshold;
        while other_threshold != self.zero_threshold {
            if self.zero_threshold > other_threshold {
                (other_count, other_threshold) =
                    other.zero_count_for_larger_threshold(self.zero_threshold);
            }
            if other_threshold > self.zero_threshold {
                (self.zero_count, self.zero_threshold) =
                    self.zero_count_for_larger_threshold(other_threshold);
                self.trim_buckets_in_zero_bucket();
            }
        }
        other_count
    }

    fn combine(&mut self, other: &FloatHistogram, factor: f64) -> Result<bool, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::MixedSchemas);
        }
        if self.uses_custom_buckets() && !floats_match(&self.custom_values, &other.custom_values) {
            // Reconciled to the bounds both have.
            let common = common_bounds(&self.custom_values, &other.custom_values);
            self.positive = remap_custom(&self.positive, &self.custom_values, &common);
            let theirs = remap_custom(&other.positive, &other.custom_values, &common);
            self.custom_values = Arc::from(common);
            self.count += factor * other.count;
            self.sum += factor * other.sum;
            self.positive = merge(&self.positive, &theirs, factor);
            return Ok(true);
        }
        if !self.uses_custom_buckets() {
            let other_zero = self.reconcile_zero_buckets(other);
            self.zero_count += factor * other_zero;
        }
        self.count += factor * other.count;
        self.sum += factor * other.sum;
        if self.uses_custom_buckets() {
            self.positive = merge(&self.positive, &other.positive, factor);
            return Ok(false);
        }
        if other.schema < self.schema {
            self.reduce_resolution(other.schema);
        }
        let (pos, neg);
        let (op, on) = if other.schema > self.schema {
            pos = reduce(&other.positive, other.schema, self.schema);
            neg = reduce(&other.negative, other.schema, self.schema);
            (&pos, &neg)
        } else {
            (&other.positive, &other.negative)
        };
        self.positive = merge(&self.positive, op, factor);
        self.negative = merge(&self.negative, on, factor);
        self.trim_buckets_in_zero_bucket();
        Ok(false)
    }

    /// Adds `other` (Prometheus's `Add`): the coarser schema and wider zero bucket win;
    /// custom buckets with different bounds are reconciled to the bounds both have
    /// (then `Ok(true)`); the counter-reset hint of the result follows Prometheus's rules.
    pub fn add(&mut self, other: &FloatHistogram) -> Result<bool, HistogramError> {
        let hint = combined_hint(self.counter_reset_hint, other.counter_reset_hint);
        let reconciled = self.combine(other, 1.0)?;
        self.counter_reset_hint = hint;
        Ok(reconciled)
    }

    /// Subtracts `other` (Prometheus's `Sub`); `Ok(true)` when custom bounds were
    /// reconciled.
    pub fn sub(&mut self, other: &FloatHistogram) -> Result<bool, HistogramError> {
        self.combine(other, -1.0)
    }

    /// The sum (or, with `mean`, the average) of histograms, field by field with
    /// compensated (Kahan) summation, at the coarsest schema, the widest zero bucket and
    /// the custom bounds all have; `true` when custom bounds were reconciled. The mean
    /// switches to an incremental mean where a sum would overflow, as for floats.
    pub fn sum_of(hs: &[&FloatHistogram], mean: bool) -> Result<Sum, HistogramError> {
        let Some(first) = hs.first() else {
            return Ok(Sum {
                histogram: FloatHistogram::default(),
                reconciled: false,
                conflict: false,
            });
        };
        let custom = first.uses_custom_buckets();
        if hs.iter().any(|h| h.uses_custom_buckets() != custom) {
            return Err(HistogramError::MixedSchemas);
        }
        let mut hint = first.counter_reset_hint;
        for h in &hs[1..] {
            hint = combined_hint(hint, h.counter_reset_hint);
        }
        // Prometheus warns when the inputs hold both a reset and a "no reset" hint.
        let conflict = hs
            .iter()
            .any(|h| h.counter_reset_hint == CounterResetHint::CounterReset)
            && hs
                .iter()
                .any(|h| h.counter_reset_hint == CounterResetHint::NotCounterReset);
        let mut reconciled = false;
        // The common layout.
        use std::borrow::Cow;
        let aligned: Vec<Cow<'_, FloatHistogram>> = if custom {
            let mut bounds: Vec<f64> = first.custom_values.to_vec();
            for h in &hs[1..] {
                if !floats_match(&bounds, &h.custom_values) {
                    reconciled = true;
                    bounds = common_bounds(&bounds, &h.custom_values);
                }
            }
            let bounds: Arc<[f64]> = Arc::from(bounds);
            hs.iter()
                .map(|h| {
                    if floats_match(&h.custom_values, &bounds) {
                        return Cow::Borrowed(*h);
                    }
                    let mut c = FloatHistogram::clone(h);
                    c.positive = remap_custom(&c.positive, &c.custom_values, &bounds);
                    c.custom_values = bounds.clone();
                    Cow::Owned(c)
                })
                .collect()
        } else {
            let schema = hs.iter().map(|h| h.schema).min().unwrap_or(0);
            let mut threshold = hs.iter().map(|h| h.zero_threshold).fold(0.0, f64::max);
            // Copied only where the schema must come down.
            let reduced: Vec<Cow<'_, FloatHistogram>> = hs
                .iter()
                .map(|h| {
                    if h.schema == schema {
                        Cow::Borrowed(*h)
                    } else {
                        Cow::Owned(h.copy_to_schema(schema))
                    }
                })
                .collect();
            // Widen until no histogram has a populated bucket straddling the threshold.
            loop {
                let widest = reduced
                    .iter()
                    .map(|h| h.zero_count_for_larger_threshold(threshold).1)
                    .fold(threshold, f64::max);
                if widest == threshold {
                    break;
                }
                threshold = widest;
            }
            reduced
                .into_iter()
                .map(|h| {
                    if h.zero_threshold == threshold {
                        return h;
                    }
                    let (zc, t) = h.zero_count_for_larger_threshold(threshold);
                    let mut h = h.into_owned();
                    h.zero_count = zc;
                    h.zero_threshold = t;
                    h.trim_buckets_in_zero_bucket();
                    Cow::Owned(h)
                })
                .collect()
        };
        let (mut count, mut sum, mut zero) = (
            FieldAcc::default(),
            FieldAcc::default(),
            FieldAcc::default(),
        );
        for h in &aligned {
            count.add(h.count, mean);
            sum.add(h.sum, mean);
            zero.add(h.zero_count, mean);
        }
        let pos = sum_side(aligned.iter().map(|h| h.positive.as_slice()), mean);
        let neg = sum_side(aligned.iter().map(|h| h.negative.as_slice()), mean);
        let base = &aligned[0];
        let out = FloatHistogram {
            counter_reset_hint: hint,
            schema: base.schema,
            zero_threshold: base.zero_threshold,
            zero_count: zero.value(mean),
            count: count.value(mean),
            sum: sum.value(mean),
            positive: pos,
            negative: neg,
            custom_values: base.custom_values.clone(),
        };
        Ok(Sum {
            histogram: out,
            reconciled,
            conflict,
        })
    }

    /// True when adding `other` to this one mixes a counter reset with a "no reset"
    /// hint (Prometheus warns of the collision).
    pub fn conflicts_with(&self, other: &FloatHistogram) -> bool {
        conflicting(self.counter_reset_hint, other.counter_reset_hint)
    }

    /// Multiplies every count and the sum by `factor`.
    pub fn mul(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        for b in self.positive.iter_mut().chain(self.negative.iter_mut()) {
            b.1 *= factor;
        }
    }

    /// Divides every count and the sum by `divisor`. Dividing by zero leaves no
    /// buckets (only the infinite or NaN count, sum and zero count), as in Prometheus.
    pub fn div(&mut self, divisor: f64) {
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        if divisor == 0.0 {
            self.positive.clear();
            self.negative.clear();
            return;
        }
        for b in self.positive.iter_mut().chain(self.negative.iter_mut()) {
            b.1 /= divisor;
        }
    }

    /// True when, between `previous` and this sample, the counter was reset: the hint
    /// says so, or a count went down, or the bucket layout cannot have come from
    /// `previous` by observations alone.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        match self.counter_reset_hint {
            CounterResetHint::CounterReset => return true,
            CounterResetHint::NotCounterReset => return false,
            _ => {}
        }
        if self.count < previous.count {
            return true;
        }
        if self.uses_custom_buckets() != previous.uses_custom_buckets() {
            return true;
        }
        if self.uses_custom_buckets() && !floats_match(&self.custom_values, &previous.custom_values)
        {
            // Compared at the bounds both have.
            let common = common_bounds(&self.custom_values, &previous.custom_values);
            let now = remap_custom(&self.positive, &self.custom_values, &common);
            let before = remap_custom(&previous.positive, &previous.custom_values, &common);
            return before.iter().any(|&(i, c)| {
                c != 0.0
                    && now
                        .binary_search_by_key(&i, |b| b.0)
                        .map(|k| now[k].1)
                        .unwrap_or(0.0)
                        < c
            });
        }
        if self.schema > previous.schema {
            return true;
        }
        if self.zero_threshold < previous.zero_threshold {
            return true;
        }
        let (prev_zero, threshold) = previous.zero_count_for_larger_threshold(self.zero_threshold);
        if threshold != self.zero_threshold {
            return true;
        }
        if self.zero_count < prev_zero {
            return true;
        }
        // Each bucket of `previous` (at this schema: merged runs of its buckets) must not
        // hold more than the same bucket does now; buckets inside the (possibly wider)
        // zero bucket are counted there. A merge walk, without allocating.
        let custom = self.uses_custom_buckets();
        let (from, to) = (previous.schema, self.schema);
        let map = |i: i32| {
            if !custom && from > to {
                target_index(i, from, to)
            } else {
                i
            }
        };
        let zero_index = (!custom && self.zero_threshold > 0.0)
            .then(|| exponential_index(self.zero_threshold, to));
        let inside_zero = |i: i32| match zero_index {
            None => false,
            Some(z) => i < z || (i == z && exponential_upper_bound(i, to) <= self.zero_threshold),
        };
        let dropped = |curr: &[(i32, f64)], prev: &[(i32, f64)]| {
            let (mut j, mut k) = (0, 0);
            while j < prev.len() {
                let t = map(prev[j].0);
                let mut c = 0.0;
                while j < prev.len() && map(prev[j].0) == t {
                    c += prev[j].1;
                    j += 1;
                }
                if c == 0.0 || inside_zero(t) {
                    continue;
                }
                while k < curr.len() && curr[k].0 < t {
                    k += 1;
                }
                let now = if k < curr.len() && curr[k].0 == t {
                    curr[k].1
                } else {
                    0.0
                };
                if now < c {
                    return true;
                }
            }
            false
        };
        dropped(&self.positive, &previous.positive) || dropped(&self.negative, &previous.negative)
    }

    /// Validates a histogram as received: schema, finite non-negative counts that add
    /// up, custom bounds. The message names the problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.uses_custom_buckets() {
            if !self.negative.is_empty() {
                return Err("custom-bucket histograms cannot have negative buckets".into());
            }
            if self.zero_count != 0.0 || self.zero_threshold != 0.0 {
                return Err("custom-bucket histograms cannot have a zero bucket".into());
            }
            if self.custom_values.len() > MAX_BUCKETS {
                return Err(format!(
                    "{} custom bucket bounds; the limit is {MAX_BUCKETS}",
                    self.custom_values.len()
                ));
            }
            if self.custom_values.windows(2).any(|w| w[0] >= w[1])
                || self.custom_values.iter().any(|v| !v.is_finite())
            {
                return Err("custom bucket bounds must be finite and strictly increasing".into());
            }
            if let Some(&(i, _)) = self.positive.last()
                && i as usize > self.custom_values.len()
            {
                return Err(format!(
                    "bucket {i} is past the {} custom bucket bounds",
                    self.custom_values.len()
                ));
            }
            if self.positive.first().is_some_and(|b| b.0 < 0) {
                return Err("custom-bucket histograms cannot have negative bucket indexes".into());
            }
        } else if !(MIN_SCHEMA..=MAX_SCHEMA).contains(&self.schema) {
            return Err(format!(
                "histogram schema {} is not in {MIN_SCHEMA}..{MAX_SCHEMA} or {CUSTOM_BUCKETS_SCHEMA}",
                self.schema
            ));
        }
        if self.positive.len() > MAX_BUCKETS || self.negative.len() > MAX_BUCKETS {
            return Err(format!("more than {MAX_BUCKETS} buckets on one side"));
        }
        if self.zero_threshold.is_nan()
            || self.zero_threshold < 0.0
            || !self.zero_threshold.is_finite()
        {
            return Err("the zero threshold must be finite and not negative".into());
        }
        for side in [&self.positive, &self.negative] {
            if side.windows(2).any(|w| w[0].0 >= w[1].0) {
                return Err("bucket indexes must increase".into());
            }
        }
        Ok(())
    }

    /// The histogram trimmed at `cutoff` (PromQL's `</` with `upper`, which keeps the
    /// observations below the cutoff, and `>/`, which keeps those above it).
    ///
    /// A bucket entirely on the kept side stays, one entirely on the other side goes, and
    /// one the cutoff falls inside keeps the share of its observations an interpolation
    /// puts on the kept side: exponential inside exponential buckets, linear in the zero
    /// bucket and in custom buckets. The zero bucket counts as `[0, zt]` when the
    /// histogram has only positive buckets and as `[-zt, 0]` with only negative ones. A
    /// custom bucket without a finite width cannot be interpolated: it is kept whole when
    /// its infinite end is on the kept side and dropped otherwise (the first custom bucket
    /// starts at 0 when its upper bound is positive). When anything was trimmed the sum is
    /// estimated again from what is left, each bucket's observations at the geometric
    /// mean of its kept range (exponential buckets) or at its middle (the others, or at
    /// its finite end for an infinite one).
    pub fn trim(&self, cutoff: f64, upper: bool) -> FloatHistogram {
        let mut out = self.clone();
        if cutoff.is_nan() {
            return out;
        }
        let has_pos = self.positive.iter().any(|b| b.1 != 0.0);
        let has_neg = self.negative.iter().any(|b| b.1 != 0.0);
        let mut trimmed = false;
        let mut sum = 0.0;
        let mut count = 0.0;
        // (kept count, representative value) of one bucket.
        let linear = |l: f64, u: f64, c: f64| -> (f64, f64) {
            if upper {
                if u <= cutoff {
                    (c, (l + u) / 2.0)
                } else if l >= cutoff {
                    (0.0, 0.0)
                } else {
                    (c * (cutoff - l) / (u - l), (l + cutoff) / 2.0)
                }
            } else if l >= cutoff {
                (c, (l + u) / 2.0)
            } else if u <= cutoff {
                (0.0, 0.0)
            } else {
                (c * (u - cutoff) / (u - l), (cutoff + u) / 2.0)
            }
        };
        let exponential = |l: f64, u: f64, c: f64| -> (f64, f64) {
            let sign = if u <= 0.0 { -1.0 } else { 1.0 };
            let geo = |a: f64, b: f64| sign * (a.abs() * b.abs()).sqrt();
            let keep_all = if upper { u <= cutoff } else { l >= cutoff };
            let keep_none = if upper { l >= cutoff } else { u <= cutoff };
            if keep_all {
                return (c, geo(l, u));
            }
            if keep_none {
                return (0.0, 0.0);
            }
            // Share of the bucket below the cutoff, on a logarithmic scale.
            let below = if sign > 0.0 {
                (cutoff.log2() - l.log2()) / (u.log2() - l.log2())
            } else {
                (l.abs().log2() - cutoff.abs().log2()) / (l.abs().log2() - u.abs().log2())
            };
            if upper {
                (c * below, geo(l, cutoff))
            } else {
                (c * (1.0 - below), geo(cutoff, u))
            }
        };
        if self.uses_custom_buckets() {
            let mut kept = Vec::with_capacity(self.positive.len());
            for &(i, c) in &self.positive {
                let (mut l, u) = self.bucket_bounds(i, true);
                // The first bucket with a positive bound is taken to start at 0; its
                // real lower end is unknown, so a negative lower cutoff drops it.
                let from_zero = l == f64::NEG_INFINITY && u > 0.0 && u.is_finite();
                if from_zero {
                    l = 0.0;
                }
                let (k, rep) = if from_zero && !upper && cutoff < 0.0 && cutoff > f64::NEG_INFINITY
                {
                    (0.0, 0.0)
                } else if l.is_finite() && u.is_finite() {
                    linear(l, u, c)
                } else if l == f64::NEG_INFINITY && u == f64::INFINITY {
                    // Neither end is finite: kept only when nothing is cut.
                    if (upper && cutoff == f64::INFINITY) || (!upper && cutoff == f64::NEG_INFINITY)
                    {
                        (c, 0.0)
                    } else {
                        (0.0, 0.0)
                    }
                } else if l == f64::NEG_INFINITY {
                    // (-Inf, u]: kept whole on the lower side of the cutoff.
                    match (upper, u <= cutoff) {
                        (true, true) => (c, u),
                        (true, false) => (c, cutoff),
                        (false, true) => (0.0, 0.0),
                        (false, false) => (0.0, 0.0),
                    }
                } else {
                    // (l, +Inf): kept whole on the upper side of the cutoff.
                    match (upper, l >= cutoff) {
                        (false, _) if cutoff == f64::INFINITY => (0.0, 0.0),
                        (false, true) => (c, l),
                        (false, false) => (c, cutoff),
                        (true, _) => {
                            if cutoff == f64::INFINITY {
                                (c, l)
                            } else {
                                (0.0, 0.0)
                            }
                        }
                    }
                };
                if k != c {
                    trimmed = true;
                }
                if k != 0.0 {
                    kept.push((i, k));
                    count += k;
                    sum += k * rep;
                }
            }
            out.positive = kept;
        } else {
            let mut side = |buckets: &[(i32, f64)], positive: bool| -> Vec<(i32, f64)> {
                let mut kept = Vec::with_capacity(buckets.len());
                for &(i, c) in buckets {
                    let (l, u) = self.bucket_bounds(i, positive);
                    let (k, rep) = exponential(l, u, c);
                    if k != c {
                        trimmed = true;
                    }
                    if k != 0.0 {
                        kept.push((i, k));
                        count += k;
                        sum += k * rep;
                    }
                }
                kept
            };
            out.positive = side(&self.positive, true);
            out.negative = side(&self.negative, false);
            if self.zero_count != 0.0 {
                let zt = self.zero_threshold;
                let (l, u) = match (has_pos, has_neg) {
                    (true, false) => (0.0, zt),
                    (false, true) => (-zt, 0.0),
                    _ => (-zt, zt),
                };
                let (k, rep) = if u > l {
                    linear(l, u, self.zero_count)
                } else {
                    (self.zero_count, 0.0)
                };
                if k != self.zero_count {
                    trimmed = true;
                }
                out.zero_count = k;
                count += k;
                sum += k * rep;
            }
        }
        if !trimmed {
            return self.clone();
        }
        out.count = count;
        out.sum = sum;
        out
    }

    /// Observations' variance estimated from the buckets (`histogram_stdvar`): each
    /// bucket's observations at its geometric mean (arithmetic mean for custom buckets,
    /// 0 in the zero bucket).
    pub fn stdvar(&self) -> f64 {
        if self.count == 0.0 {
            return f64::NAN;
        }
        let mean = self.sum / self.count;
        let (mut variance, mut c) = (0.0, 0.0);
        for b in self.buckets() {
            if b.count == 0.0 {
                continue;
            }
            let val = if self.uses_custom_buckets() {
                (b.upper + b.lower) / 2.0
            } else if b.lower <= 0.0 && b.upper >= 0.0 {
                0.0
            } else {
                let v = (b.upper * b.lower).sqrt();
                if b.upper < 0.0 { -v } else { v }
            };
            let delta = val - mean;
            (variance, c) = kahan_inc(b.count * delta * delta, variance, c);
        }
        (variance + c) / self.count
    }

    /// The `q` quantile estimated from the buckets (`histogram_quantile`).
    pub fn quantile(&self, q: f64) -> f64 {
        if q < 0.0 {
            return f64::NEG_INFINITY;
        }
        if q > 1.0 {
            return f64::INFINITY;
        }
        if q.is_nan() || self.count == 0.0 {
            return f64::NAN;
        }
        let buckets = self.buckets();
        let forward = self.sum.is_nan() || q < 0.5;
        let mut rank = if forward {
            q * self.count
        } else {
            (1.0 - q) * self.count
        };
        let mut count = 0.0;
        let mut found: Option<Bucket> = None;
        let iter: Box<dyn Iterator<Item = &Bucket>> = if forward {
            Box::new(buckets.iter())
        } else {
            Box::new(buckets.iter().rev())
        };
        for b in iter {
            found = Some(*b);
            if b.count == 0.0 {
                continue;
            }
            count += b.count;
            if count >= rank {
                break;
            }
        }
        let Some(mut bucket) = found else {
            return f64::NAN;
        };
        if !self.uses_custom_buckets() && bucket.lower < 0.0 && bucket.upper > 0.0 {
            if self.negative.is_empty() && !self.positive.is_empty() {
                bucket.lower = 0.0;
            } else if self.positive.is_empty() && !self.negative.is_empty() {
                bucket.upper = 0.0;
            }
        } else if self.uses_custom_buckets() {
            if bucket.lower == f64::NEG_INFINITY {
                if bucket.upper <= 0.0 {
                    return bucket.upper;
                }
                bucket.lower = 0.0;
            } else if bucket.upper == f64::INFINITY {
                return bucket.lower;
            }
        }
        if count > self.count {
            count = self.count;
        }
        if count < rank {
            // The rank falls among NaN observations (counted, in no bucket).
            if self.sum.is_nan() {
                return f64::NAN;
            }
            return bucket.upper;
        }
        if forward {
            rank -= count - bucket.count;
        } else {
            rank = count - rank;
        }
        let fraction = rank / bucket.count;
        if self.uses_custom_buckets() || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
            return bucket.lower + (bucket.upper - bucket.lower) * fraction;
        }
        let log_lower = bucket.lower.abs().log2();
        let log_upper = bucket.upper.abs().log2();
        if bucket.lower > 0.0 {
            return (log_lower + (log_upper - log_lower) * fraction).exp2();
        }
        -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
    }

    /// The estimated fraction of observations between `lower` and `upper`
    /// (`histogram_fraction`).
    pub fn fraction(&self, lower: f64, upper: f64) -> f64 {
        if self.count == 0.0 || lower.is_nan() || upper.is_nan() {
            return f64::NAN;
        }
        if lower >= upper {
            return 0.0;
        }
        let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
        let (mut lower_set, mut upper_set) = (false, false);
        for mut b in self.buckets() {
            let mut zero_bucket = false;
            if !self.uses_custom_buckets() && b.lower <= 0.0 && b.upper >= 0.0 {
                zero_bucket = true;
                if self.negative.is_empty() && !self.positive.is_empty() {
                    b.lower = 0.0;
                } else if self.positive.is_empty() && !self.negative.is_empty() {
                    b.upper = 0.0;
                }
            }
            if self.uses_custom_buckets() && b.lower == f64::NEG_INFINITY && b.upper > 0.0 {
                b.lower = 0.0;
            }
            let linear = |v: f64| {
                // A bucket without a finite width: no interpolation inside it, its
                // observations sit at its finite edge.
                if b.lower == f64::NEG_INFINITY {
                    return rank + b.count;
                }
                if b.upper == f64::INFINITY {
                    return rank;
                }
                rank + b.count * (v - b.lower) / (b.upper - b.lower)
            };
            let exponential = |v: f64| {
                let log_lower = b.lower.abs().log2();
                let log_upper = b.upper.abs().log2();
                let log_v = v.abs().log2();
                let fraction = if v > 0.0 {
                    (log_v - log_lower) / (log_upper - log_lower)
                } else {
                    1.0 - (log_v - log_upper) / (log_lower - log_upper)
                };
                rank + b.count * fraction
            };
            let interpolate = |v: f64| {
                if self.uses_custom_buckets() || zero_bucket {
                    linear(v)
                } else {
                    exponential(v)
                }
            };
            if !lower_set && b.lower >= lower {
                lower_rank = rank;
                lower_set = true;
            }
            if !upper_set && b.lower >= upper {
                upper_rank = rank;
                upper_set = true;
            }
            if lower_set && upper_set {
                break;
            }
            if !lower_set && b.lower < lower && b.upper > lower {
                lower_rank = interpolate(lower);
                lower_set = true;
            }
            if !upper_set && b.lower < upper && b.upper > upper {
                upper_rank = interpolate(upper);
                upper_set = true;
            }
            if lower_set && upper_set {
                break;
            }
            rank += b.count;
        }
        // NaN observations are counted but in no bucket: they are in no fraction.
        let observed = if self.sum.is_nan() {
            self.zero_count
                + self
                    .positive
                    .iter()
                    .chain(&self.negative)
                    .map(|b| b.1)
                    .sum::<f64>()
        } else {
            self.count
        };
        if !lower_set || lower_rank > observed {
            lower_rank = observed;
        }
        if !upper_set || upper_rank > observed {
            upper_rank = observed;
        }
        (upper_rank - lower_rank) / self.count
    }

    /// Equality as Prometheus's tests compare histograms: the same schema, zero bucket,
    /// hint-independent counts and buckets (zero-count buckets ignored), floats within
    /// `eq` (a caller's tolerance).
    pub fn approx_eq(&self, other: &FloatHistogram, eq: impl Fn(f64, f64) -> bool) -> bool {
        let nz = |v: &[(i32, f64)]| -> Vec<(i32, f64)> {
            v.iter().copied().filter(|b| b.1 != 0.0).collect()
        };
        let same = |a: &[(i32, f64)], b: &[(i32, f64)]| {
            let (a, b) = (nz(a), nz(b));
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x.0 == y.0 && eq(x.1, y.1))
        };
        self.schema == other.schema
            && eq(self.zero_threshold, other.zero_threshold)
            && eq(self.zero_count, other.zero_count)
            && eq(self.count, other.count)
            && eq(self.sum, other.sum)
            && same(&self.positive, &other.positive)
            && same(&self.negative, &other.negative)
            && floats_match(&self.custom_values, &other.custom_values)
    }
}

/// The counter-reset hint of a sum (Prometheus's rules for `Add`).
fn combined_hint(a: CounterResetHint, b: CounterResetHint) -> CounterResetHint {
    use CounterResetHint::*;
    match (a, b) {
        (a, b) if a == b => a,
        (Gauge, _) | (_, Gauge) => Gauge,
        _ => Unknown,
    }
}

/// True when a sum mixes a counter reset with a "no reset" hint.
fn conflicting(a: CounterResetHint, b: CounterResetHint) -> bool {
    use CounterResetHint::*;
    matches!(
        (a, b),
        (CounterReset, NotCounterReset) | (NotCounterReset, CounterReset)
    )
}

/// What [`FloatHistogram::sum_of`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Sum {
    /// The sum or mean.
    pub histogram: FloatHistogram,
    /// Custom bucket bounds were reconciled.
    pub reconciled: bool,
    /// A counter-reset hint met a "no reset" hint.
    pub conflict: bool,
}

/// The bounds two custom-bucket layouts have in common.
fn common_bounds(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().copied().filter(|x| b.contains(x)).collect()
}

/// Re-buckets custom buckets from bounds `from` onto `to` (a subset of `from`): each
/// old bucket goes into the new bucket that contains it.
fn remap_custom(buckets: &[(i32, f64)], from: &[f64], to: &[f64]) -> Vec<(i32, f64)> {
    let mut out: Vec<(i32, f64)> = Vec::with_capacity(buckets.len());
    for &(i, c) in buckets {
        let upper = from
            .get(i.max(0) as usize)
            .copied()
            .unwrap_or(f64::INFINITY);
        let j = to.partition_point(|b| *b < upper) as i32;
        match out.last_mut() {
            Some(last) if last.0 == j => last.1 += c,
            _ => out.push((j, c)),
        }
    }
    out
}

/// The bucket-by-bucket sum (or mean) of one side of aligned histograms: every index any
/// of them has, each histogram counting 0 where it has no bucket. Dense over the index
/// range when that is small, by index otherwise.
fn sum_side<'h>(
    sides: impl Iterator<Item = &'h [(i32, f64)]> + Clone,
    mean: bool,
) -> Vec<(i32, f64)> {
    let (mut lo, mut hi) = (i32::MAX, i32::MIN);
    for side in sides.clone() {
        if let (Some(first), Some(last)) = (side.first(), side.last()) {
            lo = lo.min(first.0);
            hi = hi.max(last.0);
        }
    }
    if lo > hi {
        return Vec::new();
    }
    let width = (hi as i64 - lo as i64 + 1) as usize;
    if width <= 4 * MAX_BUCKETS {
        let mut accs = vec![FieldAcc::default(); width];
        let mut present = vec![false; width];
        for side in sides {
            let mut k = 0;
            for (slot, acc) in accs.iter_mut().enumerate() {
                let index = lo + slot as i32;
                let v = if k < side.len() && side[k].0 == index {
                    present[slot] = true;
                    k += 1;
                    side[k - 1].1
                } else {
                    0.0
                };
                acc.add(v, mean);
            }
        }
        return accs
            .into_iter()
            .enumerate()
            .filter(|(slot, _)| present[*slot])
            .map(|(slot, a)| (lo + slot as i32, a.value(mean)))
            .collect();
    }
    let mut by_index: std::collections::BTreeMap<i32, FieldAcc> = Default::default();
    for side in sides.clone() {
        for &(i, _) in side {
            by_index.entry(i).or_default();
        }
    }
    for side in sides {
        for (i, acc) in by_index.iter_mut() {
            let v = side
                .binary_search_by_key(i, |b| b.0)
                .map(|k| side[k].1)
                .unwrap_or(0.0);
            acc.add(v, mean);
        }
    }
    by_index
        .into_iter()
        .map(|(i, a)| (i, a.value(mean)))
        .collect()
}

/// A compensated sum or mean of one histogram field (the float aggregations' method).
#[derive(Default, Clone, Copy)]
struct FieldAcc {
    n: f64,
    sum: f64,
    c: f64,
    mean: f64,
    incremental: bool,
}

impl FieldAcc {
    fn add(&mut self, v: f64, mean: bool) {
        self.n += 1.0;
        if !mean || self.n == 1.0 {
            if self.n == 1.0 {
                self.sum = v;
                self.c = 0.0;
            } else {
                (self.sum, self.c) = kahan_inc(v, self.sum, self.c);
            }
            return;
        }
        if !self.incremental {
            let (s, c) = kahan_inc(v, self.sum, self.c);
            if !s.is_infinite() {
                self.sum = s;
                self.c = c;
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.n - 1.0);
            self.c /= self.n - 1.0;
        }
        if self.mean.is_infinite() {
            if v.is_infinite() && (self.mean > 0.0) == (v > 0.0) {
                return;
            }
            if !v.is_infinite() && !v.is_nan() {
                return;
            }
        }
        let q = (self.n - 1.0) / self.n;
        (self.mean, self.c) = kahan_inc(v / self.n, q * self.mean, q * self.c);
    }

    fn value(&self, mean: bool) -> f64 {
        if mean {
            if self.incremental {
                self.mean + self.c
            } else {
                (self.sum + self.c) / self.n
            }
        } else if self.sum.is_infinite() {
            self.sum
        } else {
            self.sum + self.c
        }
    }
}

/// Kahan summation step: adds `inc` to `sum` with compensation `c`.
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

fn floats_match(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || x == y)
}

/// A histogram sample.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The histogram.
    pub histogram: Arc<FloatHistogram>,
}

impl std::fmt::Display for FloatHistogram {
    /// Prometheus's test notation, e.g. `{{schema:0 count:4 sum:5 buckets:[1 2 1]}}`
    /// (buckets listed densely from the first index as `offset`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{{")?;
        if self.schema != 0 {
            write!(f, "schema:{} ", self.schema)?;
        }
        write!(f, "count:{} sum:{}", self.count, self.sum)?;
        if self.zero_threshold != 0.0 {
            write!(f, " z_bucket_w:{}", self.zero_threshold)?;
        }
        if self.zero_count != 0.0 {
            write!(f, " z_bucket:{}", self.zero_count)?;
        }
        let dense = |f: &mut std::fmt::Formatter<'_>, b: &[(i32, f64)], name: &str, off: &str| {
            if b.is_empty() {
                return Ok(());
            }
            let first = b[0].0;
            let last = b[b.len() - 1].0;
            let mut vals = vec![0.0; (last - first + 1) as usize];
            for &(i, c) in b {
                vals[(i - first) as usize] = c;
            }
            let list: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
            write!(f, " {off}:{first} {name}:[{}]", list.join(" "))
        };
        dense(f, &self.positive, "buckets", "offset")?;
        dense(f, &self.negative, "n_buckets", "n_offset")?;
        if !self.custom_values.is_empty() {
            let list: Vec<String> = self.custom_values.iter().map(|v| v.to_string()).collect();
            write!(f, " custom_values:[{}]", list.join(" "))?;
        }
        match self.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => write!(f, " counter_reset_hint:reset")?,
            CounterResetHint::NotCounterReset => write!(f, " counter_reset_hint:not_reset")?,
            CounterResetHint::Gauge => write!(f, " counter_reset_hint:gauge")?,
        }
        write!(f, "}}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(schema: i32, count: f64, sum: f64, pos: &[(i32, f64)]) -> FloatHistogram {
        FloatHistogram {
            schema,
            count,
            sum,
            positive: pos.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn should_compute_exponential_bounds() {
        assert_eq!(exponential_upper_bound(0, 0), 1.0);
        assert_eq!(exponential_upper_bound(1, 0), 2.0);
        assert_eq!(exponential_upper_bound(-1, 0), 0.5);
        assert_eq!(exponential_upper_bound(1, -1), 4.0);
        assert!((exponential_upper_bound(1, 1) - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(exponential_upper_bound(2, 1), 2.0);
        assert_eq!(exponential_upper_bound(1024, 0), f64::MAX);
        for schema in -4..=8 {
            for v in [0.001, 0.5, 1.0, 3.0, 1000.0] {
                let i = exponential_index(v, schema);
                assert!(exponential_upper_bound(i, schema) >= v);
                assert!(exponential_upper_bound(i - 1, schema) < v);
            }
        }
    }

    #[test]
    fn should_add_histograms_of_different_schemas_at_the_coarser_one() {
        let mut a = h(1, 3.0, 5.0, &[(1, 1.0), (2, 2.0)]);
        let b = h(0, 2.0, 1.0, &[(1, 2.0)]);
        assert!(!a.add(&b).unwrap());
        assert_eq!(a.schema, 0);
        assert_eq!(a.positive, vec![(1, 5.0)]);
        assert_eq!(a.count, 5.0);
        assert_eq!(a.sum, 6.0);
    }

    #[test]
    fn should_refuse_to_mix_custom_and_exponential_buckets() {
        let mut a = h(0, 1.0, 1.0, &[(0, 1.0)]);
        let mut c = h(CUSTOM_BUCKETS_SCHEMA, 1.0, 1.0, &[(0, 1.0)]);
        c.custom_values = Arc::from(vec![1.0, 2.0]);
        assert_eq!(a.add(&c), Err(HistogramError::MixedSchemas));
        let mut d = c.clone();
        d.custom_values = Arc::from(vec![1.0, 3.0]);
        // Different bounds are reconciled to the common ones.
        assert_eq!(c.add(&d), Ok(true));
        assert_eq!(&*c.custom_values, &[1.0]);
        assert_eq!(c.positive, vec![(0, 2.0)]);
    }

    #[test]
    fn should_widen_the_zero_bucket_when_adding() {
        let mut a = FloatHistogram {
            zero_threshold: 0.001,
            zero_count: 1.0,
            count: 3.0,
            positive: vec![(0, 2.0)],
            ..Default::default()
        };
        let b = FloatHistogram {
            zero_threshold: 0.5,
            zero_count: 1.0,
            count: 1.0,
            ..Default::default()
        };
        a.add(&b).unwrap();
        assert_eq!(a.zero_threshold, 0.5);
        assert_eq!(a.zero_count, 2.0);
        assert_eq!(a.positive, vec![(0, 2.0)]);
    }

    #[test]
    fn should_detect_counter_resets_bucket_by_bucket() {
        let prev = h(0, 3.0, 3.0, &[(0, 1.0), (1, 2.0)]);
        let same_total_moved = h(0, 3.0, 3.0, &[(0, 2.0), (1, 1.0)]);
        assert!(same_total_moved.detect_reset(&prev));
        let grown = h(0, 4.0, 5.0, &[(0, 1.0), (1, 3.0)]);
        assert!(!grown.detect_reset(&prev));
        let mut hinted = grown.clone();
        hinted.counter_reset_hint = CounterResetHint::CounterReset;
        assert!(hinted.detect_reset(&prev));
        let finer = h(1, 4.0, 5.0, &[(0, 1.0)]);
        assert!(finer.detect_reset(&prev));
    }

    #[test]
    fn should_estimate_quantiles_and_fractions() {
        // 4 observations: one in (0.5,1], two in (1,2], one in (2,4].
        let x = h(0, 4.0, 6.0, &[(0, 1.0), (1, 2.0), (2, 1.0)]);
        assert_eq!(x.quantile(0.0), 0.5);
        // The middle rank falls halfway into (1, 2]: interpolated exponentially.
        assert!((x.quantile(0.5) - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(x.quantile(1.0), 4.0);
        assert_eq!(x.quantile(-1.0), f64::NEG_INFINITY);
        assert!((x.fraction(0.0, 2.0) - 0.75).abs() < 1e-12);
        assert!((x.fraction(f64::NEG_INFINITY, f64::INFINITY) - 1.0).abs() < 1e-12);
        assert_eq!(x.fraction(2.0, 1.0), 0.0);
        assert!(h(0, 0.0, 0.0, &[]).quantile(0.5).is_nan());
    }

    #[test]
    fn should_interpolate_linearly_in_custom_buckets() {
        let mut c = h(CUSTOM_BUCKETS_SCHEMA, 4.0, 10.0, &[(0, 2.0), (1, 2.0)]);
        c.custom_values = Arc::from(vec![1.0, 3.0]);
        assert!((c.quantile(0.75) - 2.0).abs() < 1e-12);
        assert!((c.quantile(0.25) - 0.5).abs() < 1e-12);
        assert!(c.validate().is_ok());
        c.custom_values = Arc::from(vec![3.0, 1.0]);
        assert!(c.validate().is_err());
    }

    #[test]
    fn should_scale_and_subtract() {
        let mut a = h(0, 4.0, 6.0, &[(0, 2.0), (1, 2.0)]);
        a.mul(2.0);
        assert_eq!(a.count, 8.0);
        assert_eq!(a.positive, vec![(0, 4.0), (1, 4.0)]);
        a.sub(&h(0, 8.0, 12.0, &[(0, 4.0), (1, 4.0)])).unwrap();
        a.compact();
        assert!(a.positive.is_empty());
        assert_eq!(a.count, 0.0);
    }

    #[test]
    fn should_trim_like_prometheus() {
        // h_test of upstream's native_histograms.test.
        let h = FloatHistogram {
            count: 34.0,
            sum: 123.75,
            zero_count: 1.0,
            zero_threshold: 0.001,
            positive: vec![(0, 2.0), (1, 4.0), (2, 8.0), (3, 16.0)],
            negative: vec![(0, 1.0), (1, 2.0)],
            ..Default::default()
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.abs().max(1.0);
        assert_eq!(h.trim(f64::INFINITY, true), h);
        assert_eq!(h.trim(f64::NEG_INFINITY, false), h);
        let t = h.trim(2.0, true);
        assert_eq!(t.count, 10.0);
        assert!(close(t.sum, 3.5355339059327373), "{}", t.sum);
        let t = h.trim(2f64.sqrt(), true);
        assert!(close(t.count, 8.0));
        assert!(close(t.sum, 0.2570938865989847), "{}", t.sum);
        let t = h.trim(0.0, false);
        assert!(close(t.count, 30.5));
        assert!(close(t.sum, 120.20840280171308), "{}", t.sum);
        assert!(t.negative.is_empty());
        // Custom buckets (cbh).
        let c = FloatHistogram {
            schema: CUSTOM_BUCKETS_SCHEMA,
            count: 15.0,
            sum: 172.5,
            positive: vec![(0, 1.0), (1, 6.0), (2, 4.0), (3, 3.0), (4, 1.0)],
            custom_values: Arc::from(vec![5.0, 10.0, 15.0, 20.0]),
            ..Default::default()
        };
        let t = c.trim(13.0, true);
        assert!(close(t.count, 9.4) && close(t.sum, 75.1), "{t}");
        let t = c.trim(13.0, false);
        assert!(close(t.count, 5.6) && close(t.sum, 94.9), "{t}");
        let t = c.trim(50.0, true);
        assert!(close(t.count, 14.0) && close(t.sum, 150.0), "{t}");
        assert_eq!(c.trim(0.0, false), c);
        assert_eq!(c.trim(0.0, true).count, 0.0);
        // The zero bucket alone (zero_bucket_only).
        let z = FloatHistogram {
            count: 5.0,
            zero_count: 5.0,
            zero_threshold: 0.1,
            ..Default::default()
        };
        let t = z.trim(0.05, false);
        assert!(close(t.count, 1.25) && close(t.sum, 0.09375), "{t}");
    }

    #[test]
    fn should_print_the_test_notation() {
        let x = h(0, 4.0, 6.0, &[(0, 1.0), (2, 1.0)]);
        assert_eq!(x.to_string(), "{{count:4 sum:6 offset:0 buckets:[1 0 1]}}");
    }
}
