//! `histogram_quantile` and `histogram_fraction` over classic histograms: series of
//! cumulative bucket counters told apart by their `le` (upper bound) label.

use std::collections::HashMap;

use super::parser::Expr;

use super::eval::with_label;
use super::eval::{Evaluator, Grid, Result, VSeries, Val, absent, is_present};
use super::functions::{format_float, go_g};
use crate::model::{Label, Labels, METRIC_NAME};

/// Differences this small (relative) between neighbouring bucket counts are treated
/// as floating-point noise.
const SMALL_DELTA: f64 = 1e-12;

#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// The classic-histogram groups of a vector: series grouped by their labels without
/// `le`, each with its parsed bound. Series without a valid `le` are reported.
struct Groups {
    labels: Vec<Labels>,
    member_of: Vec<Option<(usize, f64)>>,
}

fn group<'a>(ev: &mut Evaluator<'a>, v: &[VSeries], at: &Expr) -> Groups {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut labels = Vec::new();
    let mut member_of = Vec::with_capacity(v.len());
    for s in v {
        let le = s.labels.get("le").and_then(parse_le);
        let Some(le) = le else {
            ev.warn(
                format!(
                    "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                    s.labels.get("le").unwrap_or(""),
                    s.labels.get(METRIC_NAME).unwrap_or("")
                ),
                Some(at),
            );
            member_of.push(None);
            continue;
        };
        let key: Vec<Label> = s
            .labels
            .as_slice()
            .iter()
            .filter(|l| l.name != "le")
            .cloned()
            .collect();
        let key = Labels::from_sorted(key);
        let gi = match index.get(&key) {
            Some(&gi) => gi,
            None => {
                let out: Vec<Label> = key
                    .as_slice()
                    .iter()
                    .filter(|l| l.name != METRIC_NAME)
                    .cloned()
                    .collect();
                labels.push(Labels::from_sorted(out));
                index.insert(key, labels.len() - 1);
                labels.len() - 1
            }
        };
        member_of.push(Some((gi, le)));
    }
    Groups { labels, member_of }
}

fn parse_le(s: &str) -> Option<f64> {
    let t = s.trim();
    match t {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => t.parse::<f64>().ok(),
    }
}

/// Runs `per_group` for every group and step with that group's buckets at the step.
fn per_step(
    v: &[VSeries],
    groups: &Groups,
    g: Grid,
    mut per_group: impl FnMut(usize, usize, &mut Vec<Bucket>) -> Option<f64>,
) -> Vec<VSeries> {
    let ng = groups.labels.len();
    let mut members: Vec<Vec<(usize, f64)>> = vec![Vec::new(); ng];
    for (si, m) in groups.member_of.iter().enumerate() {
        if let Some((gi, le)) = m {
            members[*gi].push((si, *le));
        }
    }
    let mut out: Vec<VSeries> = Vec::new();
    let mut buckets: Vec<Bucket> = Vec::new();
    for (gi, m) in members.iter().enumerate() {
        let mut vals = vec![absent(); g.n];
        let mut any = false;
        for (i, val) in vals.iter_mut().enumerate() {
            buckets.clear();
            for &(si, le) in m {
                let c = v[si].vals[i];
                if is_present(c) {
                    buckets.push(Bucket {
                        upper: le,
                        count: c,
                    });
                }
            }
            if buckets.is_empty() {
                continue;
            }
            if let Some(x) = per_group(gi, i, &mut buckets) {
                *val = x;
                any = true;
            }
        }
        if any {
            out.push(VSeries::floats(groups.labels[gi].clone(), false, vals));
        }
    }
    out
}

fn warn_quantile(ev: &mut Evaluator<'_>, q: &[f64], q_expr: &Expr) {
    if let Some(&qv) = q.iter().find(|q| q.is_nan() || !(0.0..=1.0).contains(*q)) {
        ev.warn(
            format!("quantile value should be between 0 and 1, got {}", go_g(qv)),
            Some(q_expr),
        );
    }
}

/// The `q` quantile (per step) of every group.
fn quantile_groups(
    ev: &mut Evaluator<'_>,
    q: &[f64],
    v: &[VSeries],
    groups: &Groups,
    g: Grid,
    v_expr: &Expr,
) -> Vec<VSeries> {
    let mut forced: Option<String> = None;
    let out = per_step(v, groups, g, |gi, i, buckets| {
        let (value, monotonic_fix) = bucket_quantile(q[i], buckets);
        if monotonic_fix && forced.is_none() {
            forced = Some(group_name(v, groups, gi));
        }
        Some(value)
    });
    if let Some(name) = forced {
        ev.info(
            format!(
                "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"
            ),
            Some(v_expr),
        );
    }
    out
}

pub(super) fn quantile<'a>(
    ev: &mut Evaluator<'a>,
    q: &[f64],
    v: Vec<VSeries>,
    g: Grid,
    q_expr: &Expr,
    v_expr: &Expr,
) -> Result<Val<'a>> {
    warn_quantile(ev, q, q_expr);
    let groups = group(ev, &v, v_expr);
    Ok(Val::Vector(quantile_groups(ev, q, &v, &groups, g, v_expr)))
}

/// `histogram_quantiles(v, label, q...)`: one series per group and quantile, the
/// quantile written into `label`.
#[allow(clippy::too_many_arguments)]
pub(super) fn quantiles<'a>(
    ev: &mut Evaluator<'a>,
    label: &str,
    qs: &[(Vec<f64>, &Expr)],
    v: Vec<VSeries>,
    hists: &[VSeries],
    g: Grid,
    v_expr: &Expr,
) -> Result<Val<'a>> {
    for (q, e) in qs {
        warn_quantile(ev, q, e);
    }
    let groups = group(ev, &v, v_expr);
    let mut out = Vec::new();
    for (q, _) in qs {
        let mut per_q = quantile_groups(ev, q, &v, &groups, g, v_expr);
        per_q.extend(super::native::map_hist(hists, g, |i, h| {
            Some(h.quantile(q[i]))
        }));
        for s in per_q {
            // Split by the label value the quantile gives at each step.
            let mut parts: Vec<(String, VSeries)> = Vec::new();
            for (i, x) in s.vals.iter().enumerate() {
                if !is_present(*x) {
                    continue;
                }
                let text = quantile_label(q[i]);
                let part = match parts.iter().position(|(t, _)| *t == text) {
                    Some(p) => p,
                    None => {
                        parts.push((
                            text.clone(),
                            VSeries::floats(
                                with_label(&s.labels, label, &text),
                                s.drop_name,
                                vec![absent(); g.n],
                            ),
                        ));
                        parts.len() - 1
                    }
                };
                parts[part].1.vals[i] = *x;
            }
            out.extend(parts.into_iter().map(|(_, s)| s));
        }
    }
    Ok(Val::Vector(out))
}

/// A quantile as a label value: integers keep one decimal (`1.0`).
fn quantile_label(q: f64) -> String {
    if q.is_finite() && q.fract() == 0.0 {
        format!("{q:.1}")
    } else {
        format_float(q)
    }
}

fn group_name(v: &[VSeries], groups: &Groups, gi: usize) -> String {
    groups
        .member_of
        .iter()
        .position(|m| m.is_some_and(|(g, _)| g == gi))
        .and_then(|si| v[si].labels.get(METRIC_NAME))
        .unwrap_or("")
        .to_string()
}

pub(super) fn fraction<'a>(
    ev: &mut Evaluator<'a>,
    lower: &[f64],
    upper: &[f64],
    v: Vec<VSeries>,
    g: Grid,
    v_expr: &Expr,
) -> Result<Val<'a>> {
    let groups = group(ev, &v, v_expr);
    let out = per_step(&v, &groups, g, |_, i, buckets| {
        Some(bucket_fraction(lower[i], upper[i], buckets))
    });
    Ok(Val::Vector(out))
}

fn sort_and_coalesce(buckets: &mut Vec<Bucket>) {
    buckets.sort_by(|a, b| {
        a.upper
            .partial_cmp(&b.upper)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match out.last_mut() {
            Some(last) if last.upper == b.upper => last.count += b.count,
            _ => out.push(*b),
        }
    }
    *buckets = out;
}

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < epsilon * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// Makes counts non-decreasing; returns whether a real decrease had to be removed.
fn ensure_monotonic(buckets: &mut [Bucket]) -> bool {
    let mut forced = false;
    let mut prev = buckets[0].count;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.count;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA) {
            b.count = prev;
            continue;
        }
        if curr < prev {
            b.count = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    forced
}

/// The `q` quantile of a classic histogram, interpolating linearly within the bucket
/// it falls in. Returns the value and whether monotonicity had to be forced.
fn bucket_quantile(q: f64, buckets: &mut Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    sort_and_coalesce(buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return (f64::NAN, false);
    }
    let forced = ensure_monotonic(buckets);
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.count < rank);
    if b == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].upper, forced);
    }
    if b == 0 && buckets[0].upper <= 0.0 {
        return (buckets[0].upper, forced);
    }
    let mut start = 0.0;
    let end = buckets[b].upper;
    let mut count = buckets[b].count;
    if b > 0 {
        start = buckets[b - 1].upper;
        count -= buckets[b - 1].count;
        rank -= buckets[b - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

/// The fraction of observations between `lower` and `upper`, interpolating linearly
/// within buckets (the first bucket is taken to start at 0 when its bound is positive).
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<Bucket>) -> f64 {
    sort_and_coalesce(buckets);
    if buckets.last().is_none_or(|b| b.upper != f64::INFINITY) {
        return f64::NAN;
    }
    ensure_monotonic(buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // Observations in a bucket of infinite width sit at its infinite end; the first
    // bucket starts at 0 when its upper bound is positive.
    let rank_at = |x: f64| -> f64 {
        if x == f64::NEG_INFINITY {
            return 0.0;
        }
        if x == f64::INFINITY {
            return count;
        }
        for (i, b) in buckets.iter().enumerate() {
            let (lo, prev) = if i == 0 {
                (
                    if b.upper > 0.0 {
                        0.0
                    } else {
                        f64::NEG_INFINITY
                    },
                    0.0,
                )
            } else {
                (buckets[i - 1].upper, buckets[i - 1].count)
            };
            if x > b.upper {
                continue;
            }
            if x <= lo {
                return prev;
            }
            if lo == f64::NEG_INFINITY {
                return b.count;
            }
            if b.upper == f64::INFINITY {
                return prev;
            }
            return prev + (b.count - prev) * (x - lo) / (b.upper - lo);
        }
        count
    };
    (rank_at(upper) - rank_at(lower)) / count
}
