//! Aggregation operators, step by step within `by`/`without` groups.

use std::collections::HashMap;
use std::sync::Arc;

use super::parser::{AggregateExpr, AggregateOp, LabelModifier};

use super::QueryError;
use super::eval::{Evaluator, Grid, Result, VSeries, Val, absent, is_present, with_label};
use super::functions::{format_float, go_g, kahan_inc, quantile_sorted};
use crate::histogram::HistogramError;
use crate::model::{FloatHistogram, Label, Labels, METRIC_NAME};

pub(super) fn eval<'a>(ev: &mut Evaluator<'a>, a: &'a AggregateExpr, g: Grid) -> Result<Val<'a>> {
    let op = a.op;
    let param = match &a.param {
        Some(p) => Some(ev.eval(p, g)?),
        None => None,
    };
    let input = ev.eval_vector(&a.expr, g)?;
    let held: usize = input.iter().map(VSeries::points).sum();

    // Groups.
    let modifier = a.modifier.as_ref();
    let mut group_of: Vec<usize> = Vec::with_capacity(input.len());
    let mut groups: Vec<(Labels, bool)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for s in &input {
        let labels = group_labels(&s.labels, modifier);
        let gi = match index.get(&labels) {
            Some(&gi) => gi,
            None => {
                groups.push((labels.clone(), false));
                index.insert(labels, groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[gi].1 |= s.drop_name;
        group_of.push(gi);
    }

    let mut out = match op {
        AggregateOp::Sum
        | AggregateOp::Avg
        | AggregateOp::Count
        | AggregateOp::Group
        | AggregateOp::Min
        | AggregateOp::Max
        | AggregateOp::Stddev
        | AggregateOp::Stdvar => {
            let name = a.op.to_string();
            let mut out = simple(op, &input, &group_of, groups.clone(), g);
            if input.iter().any(VSeries::has_hists) {
                let notes = histograms(op, &input, &group_of, &groups, g, &mut out);
                for note in notes {
                    match note {
                        Note::Mixed => ev.warn(
                            "encountered a mix of histograms and floats for aggregation".into(),
                            Some(&a.expr),
                        ),
                        Note::Incompatible(e) => {
                            let metric = input
                                .iter()
                                .find_map(|s| s.labels.metric_name())
                                .unwrap_or("")
                                .to_string();
                            ev.warn(histogram_error_message(e, &metric), Some(&a.expr))
                        }
                        Note::Ignored => ev.info(
                            format!("ignored histogram in {name} aggregation"),
                            Some(&a.expr),
                        ),
                        Note::Reconciled => ev.info(
                            "mismatched custom buckets were reconciled during aggregation".into(),
                            Some(&a.expr),
                        ),
                        Note::Conflict => ev.warn(
                            "conflicting counter resets during histogram aggregation".into(),
                            Some(&a.expr),
                        ),
                    }
                }
            }
            out
        }
        AggregateOp::Quantile => {
            let Some(Val::Scalar(q)) = param else {
                return Err(bad_param("quantile"));
            };
            for &qv in &q {
                if qv.is_nan() || !(0.0..=1.0).contains(&qv) {
                    ev.warn(
                        format!("quantile value should be between 0 and 1, got {}", go_g(qv)),
                        a.param.as_deref(),
                    );
                    break;
                }
            }
            let mut out: Vec<VSeries> = groups
                .into_iter()
                .map(|(labels, drop)| VSeries::floats(labels, drop, vec![absent(); g.n]))
                .collect();
            let mut buf: Vec<Vec<f64>> = vec![Vec::new(); out.len()];
            let mut ignored = false;
            for (i, &qi) in q.iter().enumerate() {
                for b in &mut buf {
                    b.clear();
                }
                for (s, &gi) in input.iter().zip(&group_of) {
                    if is_present(s.vals[i]) {
                        buf[gi].push(s.vals[i]);
                    } else if s.hist(i).is_some() {
                        ignored = true;
                    }
                }
                for (gi, b) in buf.iter_mut().enumerate() {
                    if !b.is_empty() {
                        out[gi].vals[i] = quantile_sorted(qi, b);
                    }
                }
            }
            if ignored {
                ev.info(
                    "ignored histogram in quantile aggregation".into(),
                    Some(&a.expr),
                );
            }
            out.retain(|s| s.has_floats());
            out
        }
        AggregateOp::Topk | AggregateOp::Bottomk | AggregateOp::Limitk => {
            let Some(Val::Scalar(k)) = param else {
                return Err(bad_param("k"));
            };
            if op != AggregateOp::Limitk && input.iter().any(VSeries::has_hists) {
                ev.info(
                    format!("ignored histogram in {} aggregation", a.op),
                    Some(&a.expr),
                );
            }
            select_k(op, input, &group_of, groups.len(), &k, g)?
        }
        AggregateOp::LimitRatio => {
            let Some(Val::Scalar(ratios)) = param else {
                return Err(bad_param("ratio"));
            };
            let mut ratios = ratios;
            for r in &mut ratios {
                if r.is_nan() {
                    return Err(QueryError::Execution("Ratio value is NaN".into()));
                }
                if *r < -1.0 || *r > 1.0 {
                    let capped = r.clamp(-1.0, 1.0);
                    ev.warn(
                        format!(
                            "ratio value should be between -1 and 1, got {}, capping to {}",
                            go_g(*r),
                            go_g(capped)
                        ),
                        a.param.as_deref(),
                    );
                    *r = capped;
                }
            }
            let mut input = input;
            for s in &mut input {
                let offset = ratio_offset(&s.labels);
                for (i, &r) in ratios.iter().enumerate() {
                    let keep = (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r);
                    if !keep {
                        s.vals[i] = absent();
                        if let Some(h) = s.hists.get_mut(i) {
                            *h = None;
                        }
                    }
                }
            }
            input.retain(|s| s.points() > 0);
            input
        }
        AggregateOp::CountValues => {
            let Some(Val::Str(label)) = param else {
                return Err(bad_param("label"));
            };
            if !valid_label_name(&label) {
                return Err(QueryError::Execution(format!(
                    "invalid label name {label:?}"
                )));
            }
            ev.check_label_name(&label)?;
            let mut out: Vec<VSeries> = Vec::new();
            // Keyed by the result's labels: when the count label overwrites a grouping
            // label, groups that end up alike are counted together (as Prometheus does).
            let mut idx: HashMap<Labels, usize> = HashMap::new();
            for (s, &gi) in input.iter().zip(&group_of) {
                for i in 0..g.n {
                    let v = s.vals[i];
                    let text = if let Some(h) = s.hist(i) {
                        histogram_text(h)
                    } else if is_present(v) {
                        format_float(v)
                    } else {
                        continue;
                    };
                    let labels = with_label(&groups[gi].0, &label, &text);
                    let slot = match idx.get(&labels) {
                        Some(&slot) => slot,
                        None => {
                            out.push(VSeries::floats(
                                labels.clone(),
                                groups[gi].1,
                                vec![absent(); g.n],
                            ));
                            idx.insert(labels, out.len() - 1);
                            out.len() - 1
                        }
                    };
                    let c = &mut out[slot].vals[i];
                    *c = if is_present(*c) { *c + 1.0 } else { 1.0 };
                }
            }
            out
        }
    };
    out.retain(|s| s.points() > 0);
    ev.release(held);
    ev.hold(out.iter().map(VSeries::points).sum())?;
    Ok(Val::Vector(out))
}

fn bad_param(what: &str) -> QueryError {
    QueryError::BadData(format!("aggregation parameter {what} has the wrong type"))
}

/// A label name the query may create: non-empty, and not carrying the replacement
/// character the parser leaves for bytes that were not UTF-8.
pub(super) fn valid_label_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('\u{fffd}')
}

/// The labels a series' group is known by: the `by` labels, or every label but the
/// `without` labels and the metric name.
fn group_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    let kept: Vec<Label> = match modifier {
        None => Vec::new(),
        Some(LabelModifier::Include(by)) => labels
            .as_slice()
            .iter()
            .filter(|l| by.contains(&l.name))
            .cloned()
            .collect(),
        Some(LabelModifier::Exclude(without)) => labels
            .as_slice()
            .iter()
            .filter(|l| l.name != METRIC_NAME && !without.contains(&l.name))
            .cloned()
            .collect(),
    };
    Labels::from_sorted(kept)
}

/// Accumulator of the streaming aggregations.
#[derive(Clone, Copy)]
struct Acc {
    count: f64,
    value: f64,
    comp: f64,
    mean: f64,
    incremental: bool,
}

const EMPTY: Acc = Acc {
    count: 0.0,
    value: 0.0,
    comp: 0.0,
    mean: 0.0,
    incremental: false,
};

fn simple(
    op: AggregateOp,
    input: &[VSeries],
    group_of: &[usize],
    groups: Vec<(Labels, bool)>,
    g: Grid,
) -> Vec<VSeries> {
    let ng = groups.len();
    let mut acc = vec![EMPTY; ng * g.n];
    for (s, &gi) in input.iter().zip(group_of) {
        let row = &mut acc[gi * g.n..(gi + 1) * g.n];
        for (a, &v) in row.iter_mut().zip(&s.vals) {
            if !is_present(v) {
                continue;
            }
            add(op, a, v);
        }
    }
    groups
        .into_iter()
        .enumerate()
        .map(|(gi, (labels, drop))| {
            let row = &acc[gi * g.n..(gi + 1) * g.n];
            VSeries::floats(labels, drop, row.iter().map(|a| finish(op, a)).collect())
        })
        .collect()
}

/// A histogram as Prometheus prints it (`count_values` labels):
/// `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2, (0.5,1]:1}`, buckets with a count.
fn histogram_text(h: &FloatHistogram) -> String {
    let mut out = format!("{{count:{}, sum:{}", go_g(h.count), go_g(h.sum));
    for b in h.buckets() {
        if b.count == 0.0 {
            continue;
        }
        out.push_str(&format!(
            ", {}{},{}{}:{}",
            if b.lower_inclusive { '[' } else { '(' },
            go_g(b.lower),
            go_g(b.upper),
            if b.upper_inclusive { ']' } else { ')' },
            go_g(b.count)
        ));
    }
    out.push('}');
    out
}

/// What aggregating histograms ran into.
enum Note {
    /// Floats and histograms in one group at one step.
    Mixed,
    /// Histograms that cannot be added.
    Incompatible(HistogramError),
    /// Histograms the operator ignores.
    Ignored,
    /// Custom bucket bounds were reconciled.
    Reconciled,
    /// A counter reset met a "no reset" hint.
    Conflict,
}

/// Prometheus's warning for histograms that cannot be combined.
pub(super) fn histogram_error_message(e: HistogramError, metric: &str) -> String {
    match e {
        HistogramError::MixedSchemas => format!(
            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
        ),
        HistogramError::IncompatibleCustomBuckets => format!(
            "vector contains histograms with incompatible custom buckets for metric name {metric:?}"
        ),
    }
}

/// The histogram side of `sum`, `avg`, `count`, `group`, `min`, `max`, `stddev` and
/// `stdvar`, applied to `out` (one series per group, from [`simple`]): `sum` and `avg`
/// of histograms give a histogram; a group with floats and histograms at a step gives
/// nothing there; `count` and `group` count histograms as points; the others ignore them.
fn histograms(
    op: AggregateOp,
    input: &[VSeries],
    group_of: &[usize],
    groups: &[(Labels, bool)],
    g: Grid,
    out: &mut [VSeries],
) -> Vec<Note> {
    let mut notes = Vec::new();
    let ng = groups.len();
    match op {
        AggregateOp::Count | AggregateOp::Group => {
            let mut counts = vec![0.0f64; ng * g.n];
            for (s, &gi) in input.iter().zip(group_of) {
                for i in 0..g.n {
                    if s.hist(i).is_some() {
                        counts[gi * g.n + i] += 1.0;
                    }
                }
            }
            for (gi, o) in out.iter_mut().enumerate() {
                for i in 0..g.n {
                    let c = counts[gi * g.n + i];
                    if c == 0.0 {
                        continue;
                    }
                    let v = &mut o.vals[i];
                    *v = match (op, is_present(*v)) {
                        (AggregateOp::Group, _) => 1.0,
                        (_, true) => *v + c,
                        (_, false) => c,
                    };
                }
            }
        }
        AggregateOp::Sum | AggregateOp::Avg => {
            // Per group and step: the histograms to add.
            let mut cells: Vec<Vec<&FloatHistogram>> = vec![Vec::new(); ng * g.n];
            for (s, &gi) in input.iter().zip(group_of) {
                for i in 0..g.n {
                    if let Some(h) = s.hist(i) {
                        cells[gi * g.n + i].push(h);
                    }
                }
            }
            for (gi, o) in out.iter_mut().enumerate() {
                let mut hists: Vec<Option<Arc<FloatHistogram>>> = vec![None; g.n];
                for (i, slot) in hists.iter_mut().enumerate() {
                    let cell = std::mem::take(&mut cells[gi * g.n + i]);
                    if cell.is_empty() {
                        continue;
                    }
                    if is_present(o.vals[i]) {
                        o.vals[i] = absent();
                        notes.push(Note::Mixed);
                        continue;
                    }
                    match FloatHistogram::sum_of(&cell, op == AggregateOp::Avg) {
                        Err(e) => notes.push(Note::Incompatible(e)),
                        Ok(sum) => {
                            if sum.reconciled {
                                notes.push(Note::Reconciled);
                            }
                            if sum.conflict {
                                notes.push(Note::Conflict);
                            }
                            let mut h = sum.histogram;
                            h.compact();
                            *slot = Some(Arc::new(h));
                        }
                    }
                }
                if hists.iter().any(Option::is_some) {
                    o.hists = hists;
                }
            }
        }
        _ => notes.push(Note::Ignored),
    }
    notes
}

#[inline]
fn add(op: AggregateOp, a: &mut Acc, v: f64) {
    a.count += 1.0;
    let first = a.count == 1.0;
    match op {
        AggregateOp::Sum => {
            let (s, c) = kahan_inc(v, a.value, a.comp);
            a.value = s;
            a.comp = c;
        }
        AggregateOp::Avg => {
            if first {
                a.value = v;
                a.comp = 0.0;
                return;
            }
            if !a.incremental {
                let (s, c) = kahan_inc(v, a.value, a.comp);
                if !s.is_infinite() {
                    a.value = s;
                    a.comp = c;
                    return;
                }
                a.incremental = true;
                a.mean = a.value / (a.count - 1.0);
                a.comp /= a.count - 1.0;
            }
            if a.mean.is_infinite() {
                if v.is_infinite() && (a.mean > 0.0) == (v > 0.0) {
                    return;
                }
                if !v.is_infinite() && !v.is_nan() {
                    return;
                }
            }
            let q = (a.count - 1.0) / a.count;
            let (m, c) = kahan_inc(v / a.count, q * a.mean, q * a.comp);
            a.mean = m;
            a.comp = c;
        }
        AggregateOp::Min if first || v < a.value || a.value.is_nan() => a.value = v,
        AggregateOp::Max if first || v > a.value || a.value.is_nan() => a.value = v,
        AggregateOp::Stddev | AggregateOp::Stdvar => {
            let delta = v - (a.mean + a.comp);
            let (m, c) = kahan_inc(delta / a.count, a.mean, a.comp);
            a.mean = m;
            a.comp = c;
            a.value += delta * (v - (a.mean + a.comp));
        }
        _ => {}
    }
}

#[inline]
fn finish(op: AggregateOp, a: &Acc) -> f64 {
    if a.count == 0.0 {
        return absent();
    }
    match op {
        AggregateOp::Sum => {
            if a.value.is_infinite() {
                a.value
            } else {
                a.value + a.comp
            }
        }
        AggregateOp::Avg => {
            if a.incremental {
                a.mean + a.comp
            } else {
                (a.value + a.comp) / a.count
            }
        }
        AggregateOp::Count => a.count,
        AggregateOp::Group => 1.0,
        AggregateOp::Min | AggregateOp::Max => a.value,
        AggregateOp::Stdvar => a.value / a.count,
        AggregateOp::Stddev => (a.value / a.count).sqrt(),
        _ => f64::NAN,
    }
}

/// `topk`, `bottomk` and `limitk`: the chosen input series, each kept at the steps
/// where it was chosen. Series keep their labels.
fn select_k(
    op: AggregateOp,
    mut input: Vec<VSeries>,
    group_of: &[usize],
    ngroups: usize,
    k: &[f64],
    g: Grid,
) -> Result<Vec<VSeries>> {
    let mut keep = vec![vec![false; g.n]; input.len()];
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ngroups];
    for (si, &gi) in group_of.iter().enumerate() {
        members[gi].push(si);
    }
    let mut cand: Vec<usize> = Vec::new();
    // Order of an instant result: per group, the chosen series best first.
    let mut order: Vec<usize> = Vec::new();
    for i in 0..g.n {
        let kv = k[i];
        if kv.is_nan() {
            return Err(QueryError::Execution("Parameter value is NaN".into()));
        }
        let kk = if kv >= i64::MAX as f64 {
            i64::MAX
        } else {
            kv as i64
        };
        if kk < 1 {
            continue;
        }
        for m in &members {
            cand.clear();
            cand.extend(m.iter().copied().filter(|&si| {
                is_present(input[si].vals[i])
                    || (op == AggregateOp::Limitk && input[si].hist(i).is_some())
            }));
            if op != AggregateOp::Limitk {
                let top = op == AggregateOp::Topk;
                cand.sort_by(|&a, &b| {
                    let (x, y) = (input[a].vals[i], input[b].vals[i]);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ => {
                            if top {
                                y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal)
                            } else {
                                x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                            }
                        }
                    }
                });
            }
            for &si in cand.iter().take(kk.min(cand.len() as i64) as usize) {
                keep[si][i] = true;
                if g.n == 1 {
                    order.push(si);
                }
            }
        }
    }
    for (s, kp) in input.iter_mut().zip(&keep) {
        for (v, &k) in s.vals.iter_mut().zip(kp) {
            if !k {
                *v = absent();
            }
        }
        if op != AggregateOp::Limitk {
            s.hists.clear();
        }
        for (h, &k) in s.hists.iter_mut().zip(kp) {
            if !k {
                *h = None;
            }
        }
    }
    if g.n == 1 {
        let mut slots: Vec<Option<VSeries>> = input.into_iter().map(Some).collect();
        return Ok(order
            .into_iter()
            .filter_map(|si| slots[si].take())
            .collect());
    }
    input.retain(|s| s.points() > 0);
    Ok(input)
}

/// Where a series falls in `[0, 1)` for `limit_ratio`: its label hash over the
/// largest hash (xxHash64 of `name 0xff value 0xff ...`).
fn ratio_offset(labels: &Labels) -> f64 {
    let mut buf = Vec::new();
    for l in labels.as_slice() {
        buf.extend_from_slice(l.name.as_bytes());
        buf.push(0xff);
        buf.extend_from_slice(l.value.as_bytes());
        buf.push(0xff);
    }
    let h = twox_hash::XxHash64::oneshot(0, &buf);
    h as f64 / u64::MAX as f64
}
