//! PromQL functions.

use std::cmp::Ordering;

use super::parser::{Call, Expr, MatchOp, Matcher};

use super::QueryError;
use super::aggregate::valid_label_name;
use super::eval::{
    Evaluator, Grid, HWindows, RangeVec, Result, VSeries, Val, Windows, absent, is_present,
    with_label,
};
use super::native::{self, RangeNote};
use super::{aggregate, histogram};
use crate::model::{Labels, METRIC_NAME, Sample};

/// Neumaier's compensated addition: `(sum, compensation)` after adding `inc`.
#[inline]
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
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

/// Orders floats with NaN first (the order Prometheus's quantiles sort in).
fn nan_first(a: &f64, b: &f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// The `q` quantile of `values` (sorted in place), interpolating between neighbours.
pub(super) fn quantile_sorted(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(nan_first);
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// A float as Prometheus writes it in labels and JSON: shortest round-trip decimal,
/// no exponent, `+Inf`, `-Inf`, `NaN`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A float as Go's `%g` writes it (shortest digits; exponent form for very large or
/// small magnitudes).
pub(super) fn go_g(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let e = format!("{v:e}");
    // `{:e}` always writes a mantissa, `e` and a decimal exponent.
    let (mantissa, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..21).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{v}")
    }
}

fn bad_type(name: &str, want: &str, got: &Val<'_>) -> QueryError {
    QueryError::BadData(format!(
        "expected type {want} in call to function \"{name}\", got {}",
        got.type_name()
    ))
}

pub(super) fn eval<'a>(ev: &mut Evaluator<'a>, c: &'a Call, g: Grid) -> Result<Val<'a>> {
    let name = c.func.name;
    let args: Vec<&'a Expr> = c.args.iter().collect();
    match name {
        "time" => Ok(Val::Scalar(
            (0..g.n).map(|i| g.t(i) as f64 / 1000.0).collect(),
        )),
        "start" => Ok(Val::Scalar(vec![ev.query_start as f64 / 1000.0; g.n])),
        "end" => Ok(Val::Scalar(vec![ev.query_end as f64 / 1000.0; g.n])),
        "range" => Ok(Val::Scalar(vec![
            (ev.query_end - ev.query_start) as f64
                / 1000.0;
            g.n
        ])),
        "step" => Ok(Val::Scalar(vec![ev.query_step as f64 / 1000.0; g.n])),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(args[0], g)?;
            let b = ev.eval_scalar(args[1], g)?;
            let f = if name == "min_of" { go_min } else { go_max };
            Ok(Val::Scalar(
                a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect(),
            ))
        }
        "histogram_quantiles" => {
            let v = ev.eval_vector(args[0], g)?;
            let label = string_arg(ev, name, args[1], g)?;
            ev.check_label_name(&label)?;
            let mut qs = Vec::new();
            for a in &args[2..] {
                qs.push((ev.eval_scalar(a, g)?, *a));
            }
            let (classic, hists) = split_histograms(ev, v, args[0]);
            for (q, _) in &qs {
                note_nan_observations(ev, &hists, Some(q), args[0]);
            }
            histogram::quantiles(ev, &label, &qs, classic, &hists, g, args[0])
        }
        "pi" => Ok(Val::Scalar(vec![std::f64::consts::PI; g.n])),
        "vector" => {
            let v = ev.eval_scalar(args[0], g)?;
            Ok(Val::Vector(vec![VSeries::floats(
                Labels::default(),
                false,
                v,
            )]))
        }
        "scalar" => {
            let v = ev.eval_vector(args[0], g)?;
            let mut out = vec![f64::NAN; g.n];
            let mut count = vec![0u32; g.n];
            for s in &v {
                for (i, x) in s.vals.iter().enumerate() {
                    if is_present(*x) {
                        count[i] += 1;
                        out[i] = *x;
                    }
                }
            }
            for (o, c) in out.iter_mut().zip(count) {
                if c != 1 {
                    *o = f64::NAN;
                }
            }
            Ok(Val::Scalar(out))
        }
        "timestamp" => {
            let mut inner = args[0];
            while let Expr::Paren(p) = inner {
                inner = &p.expr;
            }
            let mut v = if let Expr::VectorSelector(vs) = inner {
                ev.select_instant(vs, g, true)?
            } else {
                let mut v = ev.eval_vector(inner, g)?;
                for s in &mut v {
                    let hists = std::mem::take(&mut s.hists);
                    for (i, x) in s.vals.iter_mut().enumerate() {
                        if is_present(*x) || hists.get(i).is_some_and(Option::is_some) {
                            *x = g.t(i) as f64 / 1000.0;
                        }
                    }
                }
                v
            };
            for s in &mut v {
                s.drop_name = true;
            }
            Ok(Val::Vector(v))
        }
        "absent" => {
            let v = ev.eval_vector(args[0], g)?;
            let mut vals = vec![1.0; g.n];
            for s in &v {
                for (i, x) in s.vals.iter().enumerate() {
                    if is_present(*x) || s.hist(i).is_some() {
                        vals[i] = absent();
                    }
                }
            }
            Ok(absent_result(args[0], vals))
        }
        "absent_over_time" => {
            let r = ev.eval_range(args[0], g, name)?;
            let mut vals = vec![1.0; g.n];
            for s in &r.series {
                let mut w = Windows::new(&s.samples);
                let mut hw = HWindows::new(&s.hists);
                for (i, &end) in r.ends.iter().enumerate() {
                    let (lo, hi) = w.window(end, r.range);
                    let (hlo, hhi) = hw.window(end, r.range);
                    if hi > lo || hhi > hlo {
                        vals[i] = absent();
                    }
                }
            }
            ev.release_range(&r);
            Ok(absent_result(args[0], vals))
        }
        "label_replace" => label_replace(ev, &args, g),
        "info" => info(ev, &args, g),
        "label_join" => label_join(ev, &args, g),
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(args[0], g)?;
            // Histogram samples are dropped, as Prometheus does.
            for s in &mut v {
                s.hists.clear();
            }
            v.retain(|s| s.points() > 0);
            if g.n == 1 {
                let desc = name == "sort_desc";
                v.sort_by(|a, b| {
                    let (x, y) = (a.vals[0], b.vals[0]);
                    match (x.is_nan(), y.is_nan()) {
                        (true, true) => Ordering::Equal,
                        (true, false) => Ordering::Greater,
                        (false, true) => Ordering::Less,
                        _ if desc => y.partial_cmp(&x).unwrap_or(Ordering::Equal),
                        _ => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
                    }
                });
            }
            Ok(Val::Vector(v))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(args[0], g)?;
            let mut names = Vec::new();
            for a in &args[1..] {
                match ev.eval(a, g)? {
                    Val::Str(s) => names.push(s),
                    other => return Err(bad_type(name, "string", &other)),
                }
            }
            if g.n == 1 {
                let desc = name == "sort_by_label_desc";
                v.sort_by(|a, b| {
                    for n in &names {
                        let o = natural_cmp(
                            a.labels.get(n).unwrap_or(""),
                            b.labels.get(n).unwrap_or(""),
                        );
                        if o != Ordering::Equal {
                            return if desc { o.reverse() } else { o };
                        }
                    }
                    let o = a.labels.cmp(&b.labels);
                    if desc { o.reverse() } else { o }
                });
            }
            Ok(Val::Vector(v))
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(args[0], g)?;
            let v = ev.eval_vector(args[1], g)?;
            let (classic, hists) = split_histograms(ev, v, args[1]);
            let mut out = match histogram::quantile(ev, &q, classic, g, args[0], args[1])? {
                Val::Vector(v) => v,
                other => return Ok(other),
            };
            if !hists.is_empty() {
                note_nan_observations(ev, &hists, Some(&q), args[1]);
                out.extend(native::map_hist(&hists, g, |i, h| Some(h.quantile(q[i]))));
            }
            Ok(Val::Vector(out))
        }
        "histogram_fraction" => {
            let lower = ev.eval_scalar(args[0], g)?;
            let upper = ev.eval_scalar(args[1], g)?;
            let v = ev.eval_vector(args[2], g)?;
            let (classic, hists) = split_histograms(ev, v, args[2]);
            let mut out = match histogram::fraction(ev, &lower, &upper, classic, g, args[2])? {
                Val::Vector(v) => v,
                other => return Ok(other),
            };
            if !hists.is_empty() {
                note_nan_observations(ev, &hists, None, args[2]);
                out.extend(native::map_hist(&hists, g, |i, h| {
                    Some(h.fraction(lower[i], upper[i]))
                }));
            }
            Ok(Val::Vector(out))
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" => {
            // These read native histogram samples only; float samples give nothing.
            let v = ev.eval_vector(args[0], g)?;
            let f: fn(&crate::model::FloatHistogram) -> f64 = match name {
                "histogram_count" => |h| h.count,
                "histogram_sum" => |h| h.sum,
                "histogram_avg" => |h| h.sum / h.count,
                "histogram_stddev" => |h| h.stdvar().sqrt(),
                _ => |h| h.stdvar(),
            };
            Ok(Val::Vector(native::map_hist(&v, g, |_, h| Some(f(h)))))
        }
        "round" => {
            let mut v = ev.eval_vector(args[0], g)?;
            let to = match args.get(1) {
                Some(a) => ev.eval_scalar(a, g)?,
                None => vec![1.0; g.n],
            };
            for s in &mut v {
                for (x, &t) in s.vals.iter_mut().zip(&to) {
                    if is_present(*x) {
                        let inv = 1.0 / t;
                        *x = (*x * inv + 0.5).floor() / inv;
                    }
                }
                s.drop_name = true;
                s.hists.clear();
            }
            v.retain(|s| s.points() > 0);
            Ok(Val::Vector(v))
        }
        "clamp" => {
            let mut v = ev.eval_vector(args[0], g)?;
            let lo = ev.eval_scalar(args[1], g)?;
            let hi = ev.eval_scalar(args[2], g)?;
            for s in &mut v {
                for (i, x) in s.vals.iter_mut().enumerate() {
                    if !is_present(*x) {
                        continue;
                    }
                    if hi[i] < lo[i] {
                        *x = absent();
                    } else {
                        *x = go_max(lo[i], go_min(hi[i], *x));
                    }
                }
                s.drop_name = true;
                s.hists.clear();
            }
            v.retain(|s| s.points() > 0);
            Ok(Val::Vector(v))
        }
        "clamp_min" | "clamp_max" => {
            let mut v = ev.eval_vector(args[0], g)?;
            let b = ev.eval_scalar(args[1], g)?;
            let min = name == "clamp_min";
            for s in &mut v {
                for (x, &b) in s.vals.iter_mut().zip(&b) {
                    if is_present(*x) {
                        *x = if min { go_max(*x, b) } else { go_min(*x, b) };
                    }
                }
                s.drop_name = true;
                s.hists.clear();
            }
            v.retain(|s| s.points() > 0);
            Ok(Val::Vector(v))
        }
        "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute"
        | "month" | "year" => {
            let mut v = match args.first() {
                Some(a) => ev.eval_vector(a, g)?,
                None => vec![VSeries::floats(
                    Labels::default(),
                    false,
                    (0..g.n).map(|i| g.t(i) as f64 / 1000.0).collect(),
                )],
            };
            for s in &mut v {
                for x in s.vals.iter_mut() {
                    if is_present(*x) {
                        *x = date_part(name, *x);
                    }
                }
                s.drop_name = true;
                s.hists.clear();
            }
            v.retain(|s| s.points() > 0);
            Ok(Val::Vector(v))
        }
        "abs" | "ceil" | "floor" | "exp" | "sqrt" | "ln" | "log2" | "log10" | "sgn" | "sin"
        | "cos" | "tan" | "asin" | "acos" | "atan" | "sinh" | "cosh" | "tanh" | "asinh"
        | "acosh" | "atanh" | "deg" | "rad" => {
            let f = math_fn(name);
            let mut v = ev.eval_vector(args[0], g)?;
            for s in &mut v {
                for x in s.vals.iter_mut() {
                    if is_present(*x) {
                        *x = f(*x);
                    }
                }
                s.drop_name = true;
                s.hists.clear();
            }
            v.retain(|s| s.points() > 0);
            Ok(Val::Vector(v))
        }
        _ => range_function(ev, name, &args, g),
    }
}

/// Splits the argument of `histogram_quantile(s)` and `histogram_fraction` into its
/// classic part (float series, by `le`) and its native histograms. Where one metric has
/// both for the same labels, Prometheus warns and answers neither.
fn split_histograms(
    ev: &mut Evaluator<'_>,
    v: Vec<VSeries>,
    at: &Expr,
) -> (Vec<VSeries>, Vec<VSeries>) {
    let (mut classic, mut hists) = native::split(v);
    if hists.is_empty() || classic.is_empty() {
        return (classic, hists);
    }
    let key = |l: &Labels, drop_le: bool| -> Labels {
        Labels::from_sorted(
            l.as_slice()
                .iter()
                .filter(|x| x.name != METRIC_NAME && !(drop_le && x.name == "le"))
                .cloned()
                .collect(),
        )
    };
    let native_keys: std::collections::HashSet<(Option<String>, Labels)> = hists
        .iter()
        .map(|h| {
            (
                h.labels.metric_name().map(str::to_string),
                key(&h.labels, false),
            )
        })
        .collect();
    let mut clash: std::collections::HashSet<(Option<String>, Labels)> = Default::default();
    for c in &classic {
        let k = (
            c.labels.metric_name().map(str::to_string),
            key(&c.labels, true),
        );
        if native_keys.contains(&k) {
            clash.insert(k);
        }
    }
    if clash.is_empty() {
        return (classic, hists);
    }
    let mut names: Vec<String> = clash.iter().filter_map(|(n, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    for n in names {
        ev.warn(
            format!("vector contains a mix of classic and native histograms for metric name {n:?}"),
            Some(at),
        );
    }
    classic.retain(|c| {
        !clash.contains(&(
            c.labels.metric_name().map(str::to_string),
            key(&c.labels, true),
        ))
    });
    hists.retain(|h| {
        !clash.contains(&(
            h.labels.metric_name().map(str::to_string),
            key(&h.labels, false),
        ))
    });
    (classic, hists)
}

/// Prometheus's info for native histograms with NaN observations (a NaN sum): for
/// `histogram_quantile` (given `q` per step) whether the result is NaN or skewed
/// higher, for `histogram_fraction` that NaNs are excluded.
fn note_nan_observations(ev: &mut Evaluator<'_>, hists: &[VSeries], q: Option<&[f64]>, at: &Expr) {
    let mut notes: Vec<String> = Vec::new();
    for s in hists {
        let metric = s.labels.metric_name().unwrap_or("");
        for (i, h) in s.hists.iter().enumerate() {
            let Some(h) = h else { continue };
            if !(h.sum.is_nan() && h.count > 0.0) {
                continue;
            }
            let msg = match q {
                Some(q) => {
                    let what = if h.quantile(q[i]).is_nan() {
                        "result is NaN"
                    } else {
                        "result is skewed higher"
                    };
                    format!(
                        "input to histogram_quantile has NaN observations, {what} for metric name {metric:?}"
                    )
                }
                None => format!(
                    "input to histogram_fraction has NaN observations, which are excluded from all fractions for metric name {metric:?}"
                ),
            };
            if !notes.contains(&msg) {
                notes.push(msg);
            }
        }
    }
    for n in notes {
        ev.info(n, Some(at));
    }
}

fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn math_fn(name: &str) -> fn(f64) -> f64 {
    match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |x| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        },
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |x| x * 180.0 / std::f64::consts::PI,
        "rad" => |x| x * std::f64::consts::PI / 180.0,
        _ => |_| f64::NAN,
    }
}

/// Natural order: digit runs compare by number.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|c| c.is_ascii_digit()).count();
                let ny = y.iter().take_while(|c| c.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx.iter().skip_while(|c| **c == b'0').count();
                let ty = dy.iter().skip_while(|c| **c == b'0').count();
                let o = tx
                    .cmp(&ty)
                    .then_with(|| dx[nx - tx..].cmp(&dy[ny - ty..]))
                    .then_with(|| nx.cmp(&ny));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// The result of `absent`/`absent_over_time`: one series whose labels are the
/// argument selector's equality matchers (names matched more than once are left out).
fn absent_result<'a>(arg: &Expr, vals: Vec<f64>) -> Val<'a> {
    let vs = match arg {
        Expr::VectorSelector(vs) => Some(vs),
        Expr::MatrixSelector(ms) => Some(&ms.vs),
        _ => None,
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut repeated: Vec<String> = Vec::new();
    if let Some(vs) = vs {
        let mut all: Vec<(String, Option<String>)> = Vec::new();
        for m in &vs.matchers {
            if m.name == METRIC_NAME {
                continue;
            }
            let eq = matches!(m.op, MatchOp::Equal).then(|| m.value.clone());
            all.push((m.name.clone(), eq));
        }
        for (name, eq) in all {
            if pairs.iter().any(|(n, _)| n == &name) || repeated.contains(&name) {
                pairs.retain(|(n, _)| n != &name);
                if !repeated.contains(&name) {
                    repeated.push(name);
                }
                continue;
            }
            if let Some(v) = eq {
                pairs.push((name, v));
            } else {
                repeated.push(name);
            }
        }
    }
    let labels = Labels::from_pairs(pairs);
    let v = VSeries::floats(labels, false, vals);
    if v.vals.iter().any(|x| is_present(*x)) {
        Val::Vector(vec![v])
    } else {
        Val::Vector(Vec::new())
    }
}

fn string_arg<'a>(ev: &mut Evaluator<'a>, name: &str, e: &'a Expr, g: Grid) -> Result<String> {
    match ev.eval(e, g)? {
        Val::Str(s) => Ok(s),
        other => Err(bad_type(name, "string", &other)),
    }
}

fn label_replace<'a>(ev: &mut Evaluator<'a>, args: &[&'a Expr], g: Grid) -> Result<Val<'a>> {
    let mut v = ev.eval_vector(args[0], g)?;
    let dst = string_arg(ev, "label_replace", args[1], g)?;
    let repl = string_arg(ev, "label_replace", args[2], g)?;
    let src = string_arg(ev, "label_replace", args[3], g)?;
    let re = string_arg(ev, "label_replace", args[4], g)?;
    let regex = regex::RegexBuilder::new(&format!("^(?s:{re})$"))
        .size_limit(1 << 22)
        .build()
        .map_err(|e| {
            QueryError::BadData(format!(
                "invalid regular expression in label_replace(): {re}: {e}"
            ))
        })?;
    if !valid_label_name(&dst) || ev.check_label_name(&dst).is_err() {
        return Err(QueryError::BadData(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    for s in &mut v {
        let value = s.labels.get(&src).unwrap_or("").to_string();
        if let Some(caps) = regex.captures(&value) {
            let mut out = String::new();
            caps.expand(&repl, &mut out);
            s.labels = with_label(&s.labels, &dst, &out);
            if dst == METRIC_NAME {
                s.drop_name = false;
            }
        }
    }
    Ok(Val::Vector(v))
}

fn label_join<'a>(ev: &mut Evaluator<'a>, args: &[&'a Expr], g: Grid) -> Result<Val<'a>> {
    let mut v = ev.eval_vector(args[0], g)?;
    let dst = string_arg(ev, "label_join", args[1], g)?;
    let sep = string_arg(ev, "label_join", args[2], g)?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        let s = string_arg(ev, "label_join", a, g)?;
        if !valid_label_name(&s) {
            return Err(QueryError::BadData(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !valid_label_name(&dst) || ev.check_label_name(&dst).is_err() {
        return Err(QueryError::BadData(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    for s in &mut v {
        let joined: Vec<&str> = srcs.iter().map(|n| s.labels.get(n).unwrap_or("")).collect();
        let joined = joined.join(&sep);
        s.labels = with_label(&s.labels, &dst, &joined);
        if dst == METRIC_NAME {
            s.drop_name = false;
        }
    }
    Ok(Val::Vector(v))
}

/// The labels that tie a series to its info series.
const INFO_IDENTIFYING: [&str; 2] = ["instance", "job"];

/// Gives every `info(v)` call its info-series selector: `target_info` unless the
/// second argument names one. Runs before planning, so the planner loads it.
pub(super) fn prepare_info(e: &mut Expr) -> Result<()> {
    super::with_stack(|| prepare_info_inner(e))
}

fn prepare_info_inner(e: &mut Expr) -> Result<()> {
    match e {
        Expr::Call(c) if c.func.name == "info" => {
            if c.args.len() == 1 {
                let selector = super::parser::parse("target_info")
                    .map_err(|e| QueryError::BadData(e.to_string()))?;
                c.args.push(selector);
            } else if let Expr::VectorSelector(vs) = &mut c.args[1] {
                let named = vs.name.is_some() || vs.matchers.iter().any(|m| m.name == METRIC_NAME);
                if !named {
                    vs.matchers.push(Matcher {
                        op: MatchOp::Equal,
                        name: METRIC_NAME.to_string(),
                        value: "target_info".to_string(),
                    });
                }
            } else {
                return Err(QueryError::BadData(
                    "expected label selectors as the second argument to \"info\" function".into(),
                ));
            }
            prepare_info(&mut c.args[0])
        }
        Expr::Call(c) => c.args.iter_mut().try_for_each(prepare_info),
        Expr::Aggregate(a) => {
            if let Some(p) = &mut a.param {
                prepare_info(p)?;
            }
            prepare_info(&mut a.expr)
        }
        Expr::Binary(b) => {
            prepare_info(&mut b.lhs)?;
            prepare_info(&mut b.rhs)
        }
        Expr::Paren(p) => prepare_info(&mut p.expr),
        Expr::Unary(u) => prepare_info(&mut u.expr),
        Expr::Subquery(sq) => prepare_info(&mut sq.expr),
        _ => Ok(()),
    }
}

/// `info(v, selector)`: adds to each series the data labels of the info series (at the
/// same step) that share its `instance` and `job`. Labels the series already has are
/// kept. With data-label matchers, only those labels are added, and a series without a
/// matching info series is dropped unless the matchers accept an empty value.
fn info<'a>(ev: &mut Evaluator<'a>, args: &[&'a Expr], g: Grid) -> Result<Val<'a>> {
    let v = ev.eval_vector(args[0], g)?;
    let Expr::VectorSelector(vs) = args[1] else {
        return Err(QueryError::BadData(
            "expected label selectors as the second argument to \"info\" function".into(),
        ));
    };
    let infos = ev.select_instant(vs, g, false)?;
    let data_matchers: Vec<&Matcher> = vs
        .matchers
        .iter()
        .filter(|m| m.name != METRIC_NAME)
        .collect();
    let key = |l: &Labels| -> Option<Vec<String>> {
        INFO_IDENTIFYING
            .iter()
            .map(|n| l.get(n).map(str::to_string))
            .collect()
    };
    let info_keys: Vec<Option<Vec<String>>> = infos.iter().map(|s| key(&s.labels)).collect();
    let mut out: Vec<VSeries> = Vec::new();
    let mut index: std::collections::HashMap<(usize, Labels), usize> =
        std::collections::HashMap::new();
    for (si, s) in v.iter().enumerate() {
        let k = key(&s.labels);
        for i in 0..g.n {
            if !is_present(s.vals[i]) {
                continue;
            }
            let found = k.as_ref().and_then(|k| {
                infos
                    .iter()
                    .zip(&info_keys)
                    .find(|(inf, ik)| is_present(inf.vals[i]) && ik.as_ref() == Some(k))
                    .map(|(inf, _)| inf)
            });
            let labels = match found {
                Some(inf) => {
                    let mut labels = s.labels.clone();
                    for l in inf.labels.as_slice() {
                        if l.name == METRIC_NAME || INFO_IDENTIFYING.contains(&l.name.as_str()) {
                            continue;
                        }
                        if !data_matchers.is_empty()
                            && !data_matchers.iter().any(|m| m.name == l.name)
                        {
                            continue;
                        }
                        if s.labels.get(&l.name).is_none() {
                            labels = with_label(&labels, &l.name, &l.value);
                        }
                    }
                    labels
                }
                None => {
                    if data_matchers.iter().any(|m| !m.matches_empty()) {
                        continue;
                    }
                    s.labels.clone()
                }
            };
            let slot = *index.entry((si, labels.clone())).or_insert_with(|| {
                out.push(VSeries::floats(labels, s.drop_name, vec![absent(); g.n]));
                out.len() - 1
            });
            out[slot].vals[i] = s.vals[i];
        }
    }
    Ok(Val::Vector(out))
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let t = secs as i64;
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    match name {
        "day_of_month" => d as f64,
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
            let leap = if m > 2 && is_leap(y) { 1 } else { 0 };
            (CUM[m as usize - 1] + d + leap) as f64
        }
        "days_in_month" => match m {
            2 => {
                if is_leap(y) {
                    29.0
                } else {
                    28.0
                }
            }
            4 | 6 | 9 | 11 => 30.0,
            _ => 31.0,
        },
        "hour" => (sod / 3600) as f64,
        "minute" => (sod % 3600 / 60) as f64,
        "month" => m as f64,
        "year" => y as f64,
        _ => f64::NAN,
    }
}

/// The matrix argument's index of each range function.
fn range_arg(name: &str) -> Option<usize> {
    Some(match name {
        "quantile_over_time" => 1,
        "rate"
        | "increase"
        | "delta"
        | "irate"
        | "idelta"
        | "deriv"
        | "predict_linear"
        | "changes"
        | "resets"
        | "avg_over_time"
        | "min_over_time"
        | "max_over_time"
        | "sum_over_time"
        | "count_over_time"
        | "last_over_time"
        | "first_over_time"
        | "present_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "mad_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "ts_of_first_over_time"
        | "ts_of_last_over_time"
        | "double_exponential_smoothing"
        | "holt_winters" => 0,
        _ => return None,
    })
}

fn range_function<'a>(
    ev: &mut Evaluator<'a>,
    name: &str,
    args: &[&'a Expr],
    g: Grid,
) -> Result<Val<'a>> {
    let Some(ri) = range_arg(name) else {
        return Err(QueryError::BadData(format!(
            "function \"{name}\" is not supported"
        )));
    };
    // Scalar parameters, per step.
    let mut params: Vec<Vec<f64>> = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if i != ri {
            params.push(ev.eval_scalar(a, g)?);
        }
    }
    let r: RangeVec<'a> = ev.eval_range(args[ri], g, name)?;
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    if name == "quantile_over_time" {
        for &q in &params[0] {
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                ev.warn(
                    format!("quantile value should be between 0 and 1, got {}", go_g(q)),
                    Some(args[0]),
                );
                break;
            }
        }
    }
    if matches!(name, "double_exponential_smoothing" | "holt_winters") {
        for (&sf, &tf) in params[0].iter().zip(&params[1]) {
            if sf <= 0.0 || sf >= 1.0 {
                return Err(QueryError::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if tf <= 0.0 || tf >= 1.0 {
                return Err(QueryError::Execution(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
        }
    }
    let range_secs = r.range as f64 / 1000.0;
    // `anchored` and `smoothed` (only with the functions the parser allows them for).
    let ext = r.extended;
    let mut out = Vec::with_capacity(r.series.len());
    let mut scratch: Vec<f64> = Vec::new();
    let mut non_counter: Option<String> = None;
    let mut notes: Vec<RangeNote> = Vec::new();
    for (si, s) in r.series.iter().enumerate() {
        if si % 1024 == 1023 {
            ev.check_deadline()?;
        }
        let samples: &[Sample] = &s.samples;
        // Counter-reset corrections as a prefix sum, so `rate` and `increase` cost O(1)
        // per step: `corr[k]` adds up the value before every drop up to sample `k`.
        let corr: Vec<f64> = if matches!(name, "rate" | "increase")
            && samples.windows(2).any(|p| p[1].value < p[0].value)
        {
            let mut acc = 0.0;
            std::iter::once(0.0)
                .chain(samples.windows(2).map(|p| {
                    if p[1].value < p[0].value {
                        acc += p[0].value;
                    }
                    acc
                }))
                .collect()
        } else {
            Vec::new()
        };
        let correction = |lo: usize, hi: usize| -> f64 {
            if corr.is_empty() {
                0.0
            } else {
                corr[hi - 1] - corr[lo]
            }
        };
        let mut w = Windows::new(samples);
        let mut vals = vec![absent(); g.n];
        let mut any = false;
        if ext.any()
            && s.hists.iter().any(|h| {
                r.ends.iter().any(|&end| {
                    let (e, range) = ext.reach(end, r.range);
                    h.timestamp_ms > e - range && h.timestamp_ms <= e
                })
            })
        {
            return Err(super::extended::histograms_unsupported());
        }
        for (i, &end) in r.ends.iter().enumerate() {
            let (reach_end, reach) = ext.reach(end, r.range);
            let (lo, hi) = w.window(reach_end, reach);
            if hi == lo {
                continue;
            }
            let win = &samples[lo..hi];
            let v = match name {
                "rate" | "increase" | "delta" if ext.any() => super::extended::rate(
                    win,
                    end - r.range,
                    end,
                    ext.smoothed,
                    name != "delta",
                    (name == "rate").then_some(range_secs),
                ),
                "changes" | "resets" if ext.anchored => {
                    super::extended::anchored_first(win, end - r.range).map(|first| {
                        let win = &win[first..];
                        let counted = if name == "changes" {
                            win.windows(2)
                                .filter(|p| {
                                    p[1].value != p[0].value
                                        && !(p[1].value.is_nan() && p[0].value.is_nan())
                                })
                                .count()
                        } else {
                            win.windows(2).filter(|p| p[1].value < p[0].value).count()
                        };
                        counted as f64
                    })
                }
                "rate" => extrapolated_rate(
                    win,
                    end - r.range,
                    end,
                    Some(correction(lo, hi)),
                    Some(range_secs),
                ),
                "increase" => {
                    extrapolated_rate(win, end - r.range, end, Some(correction(lo, hi)), None)
                }
                "delta" => extrapolated_rate(win, end - r.range, end, None, None),
                "irate" | "idelta" => instant_delta(win, name == "irate"),
                "deriv" => (win.len() >= 2).then(|| linear_regression(win, win[0].timestamp_ms).0),
                "predict_linear" => (win.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(win, g.t(i));
                    slope * params[0][i] + intercept
                }),
                "changes" => Some(
                    win.windows(2)
                        .filter(|p| {
                            p[1].value != p[0].value
                                && !(p[1].value.is_nan() && p[0].value.is_nan())
                        })
                        .count() as f64,
                ),
                "resets" => Some(win.windows(2).filter(|p| p[1].value < p[0].value).count() as f64),
                "avg_over_time" => Some(avg(win)),
                "sum_over_time" => {
                    let (mut sum, mut comp) = (0.0, 0.0);
                    for x in win {
                        (sum, comp) = kahan_inc(x.value, sum, comp);
                    }
                    Some(if sum.is_infinite() { sum } else { sum + comp })
                }
                "min_over_time" | "max_over_time" => {
                    let min = name == "min_over_time";
                    let mut m = win[0].value;
                    for x in &win[1..] {
                        if (min && x.value < m) || (!min && x.value > m) || m.is_nan() {
                            m = x.value;
                        }
                    }
                    Some(m)
                }
                "count_over_time" => Some(win.len() as f64),
                "last_over_time" => Some(win[win.len() - 1].value),
                "first_over_time" => Some(win[0].value),
                "present_over_time" => Some(1.0),
                "ts_of_last_over_time" => Some(win[win.len() - 1].timestamp_ms as f64 / 1000.0),
                "ts_of_first_over_time" => Some(win[0].timestamp_ms as f64 / 1000.0),
                "ts_of_min_over_time" | "ts_of_max_over_time" => {
                    let min = name == "ts_of_min_over_time";
                    let mut best = win[0];
                    for x in &win[1..] {
                        if (min && x.value <= best.value)
                            || (!min && x.value >= best.value)
                            || best.value.is_nan()
                        {
                            best = *x;
                        }
                    }
                    Some(best.timestamp_ms as f64 / 1000.0)
                }
                "stddev_over_time" | "stdvar_over_time" => {
                    let (mut count, mut mean, mut cmean, mut aux, mut caux) =
                        (0.0, 0.0, 0.0, 0.0, 0.0);
                    for x in win {
                        count += 1.0;
                        let delta = x.value - (mean + cmean);
                        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
                        (aux, caux) = kahan_inc(delta * (x.value - (mean + cmean)), aux, caux);
                    }
                    let var = (aux + caux) / count;
                    Some(if name == "stddev_over_time" {
                        var.sqrt()
                    } else {
                        var
                    })
                }
                "quantile_over_time" => {
                    scratch.clear();
                    scratch.extend(win.iter().map(|x| x.value));
                    Some(quantile_sorted(params[0][i], &mut scratch))
                }
                "mad_over_time" if win.iter().any(|x| x.value.is_nan()) => Some(f64::NAN),
                "mad_over_time" => {
                    scratch.clear();
                    scratch.extend(win.iter().map(|x| x.value));
                    let median = quantile_sorted(0.5, &mut scratch);
                    for x in scratch.iter_mut() {
                        *x = (*x - median).abs();
                    }
                    Some(quantile_sorted(0.5, &mut scratch))
                }
                "double_exponential_smoothing" | "holt_winters" => {
                    smoothing(win, params[0][i], params[1][i])
                }
                _ => None,
            };
            if let Some(v) = v {
                vals[i] = v;
                any = true;
            }
        }
        let mut hists = Vec::new();
        if !s.hists.is_empty() {
            hists = native::range_series(name, s, &r.ends, r.range, &mut vals, &mut notes);
            any = native::any_float(&vals) || hists.iter().any(Option::is_some);
        }
        if any {
            if matches!(name, "rate" | "increase") && s.samples.is_empty() && !s.hists.is_empty() {
                // Native histograms are counters by their hint, not their name.
            } else if matches!(name, "rate" | "increase")
                && non_counter.is_none()
                && let Some(n) = s.labels.get(METRIC_NAME)
                && !s.drop_name
                && !["_total", "_sum", "_count", "_bucket"]
                    .iter()
                    .any(|suf| n.ends_with(suf))
            {
                non_counter = Some(n.to_string());
            }
            out.push(VSeries {
                labels: s.labels.clone(),
                drop_name: if keep_name { s.drop_name } else { true },
                vals,
                hists,
            });
        }
    }
    for n in notes {
        let at = Some(args[ri]);
        match n {
            RangeNote::Mixed(m) => ev.warn(
                format!("encountered a mix of histograms and floats for metric name {m:?}"),
                at,
            ),
            RangeNote::IgnoredMixed(m) => ev.info(
                format!(
                    "ignored histograms in a range containing both floats and histograms for metric name {m:?}"
                ),
                at,
            ),
            RangeNote::Incompatible(e, m) => {
                ev.warn(aggregate::histogram_error_message(e, &m), at)
            }
            RangeNote::NotCounter(m) => ev.warn(
                format!("this native histogram metric is not a counter: {m:?}"),
                at,
            ),
            RangeNote::NotGauge(m) => ev.warn(
                format!("this native histogram metric is not a gauge: {m:?}"),
                at,
            ),
            RangeNote::Reconciled(during) => ev.info(
                format!("mismatched custom buckets were reconciled during {during}"),
                at,
            ),
            RangeNote::Conflict => ev.warn(
                "conflicting counter resets during histogram aggregation".into(),
                at,
            ),
        }
    }
    if let Some(n) = non_counter {
        ev.info(
            format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {n:?}"),
            Some(args[ri]),
        );
    }
    ev.release_range(&r);
    ev.hold(out.iter().map(VSeries::points).sum())?;
    Ok(Val::Vector(out))
}

/// `rate`, `increase` and `delta`: the change over the window (plus, for counters,
/// `reset_correction`: the value before each drop), extrapolated towards the
/// window's edges (at most half an average sample gap beyond the outer samples unless
/// they are close to the edge, and never below zero for counters).
fn extrapolated_rate(
    win: &[Sample],
    range_start: i64,
    range_end: i64,
    reset_correction: Option<f64>,
    rate_secs: Option<f64>,
) -> Option<f64> {
    if win.len() < 2 {
        return None;
    }
    let counter = reset_correction.is_some();
    let first = win[0];
    let last = win[win.len() - 1];
    let mut result = last.value - first.value;
    if let Some(c) = reset_correction {
        result += c;
    }
    let mut to_start = (first.timestamp_ms - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.timestamp_ms) as f64 / 1000.0;
    let sampled = (last.timestamp_ms - first.timestamp_ms) as f64 / 1000.0;
    let avg_gap = sampled / (win.len() - 1) as f64;
    let threshold = avg_gap * 1.1;
    if to_start >= threshold {
        to_start = avg_gap / 2.0;
    }
    if counter {
        let mut to_zero = to_start;
        if result > 0.0 && first.value >= 0.0 {
            to_zero = sampled * (first.value / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_gap / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if let Some(secs) = rate_secs {
        factor /= secs;
    }
    Some(result * factor)
}

fn instant_delta(win: &[Sample], rate: bool) -> Option<f64> {
    if win.len() < 2 {
        return None;
    }
    let last = win[win.len() - 1];
    let prev = win[win.len() - 2];
    let mut result = if rate && last.value < prev.value {
        last.value
    } else {
        last.value - prev.value
    };
    if rate {
        let gap = last.timestamp_ms - prev.timestamp_ms;
        if gap == 0 {
            return None;
        }
        result /= gap as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares `(slope, intercept)` with time in seconds relative to `intercept_time`.
fn linear_regression(win: &[Sample], intercept_time: i64) -> (f64, f64) {
    let init = win[0].value;
    let const_y = win.iter().all(|x| x.value == init);
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for s in win {
        n += 1.0;
        let x = (s.timestamp_ms - intercept_time) as f64 / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(s.value, sy, cy);
        (sxy, cxy) = kahan_inc(x * s.value, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    let intercept = sy / n - slope * sx / n;
    (slope, intercept)
}

/// The mean, by compensated sum while it does not overflow and incrementally after.
fn avg(win: &[Sample]) -> f64 {
    let (mut sum, mut count) = (win[0].value, 1.0);
    let (mut mean, mut comp) = (0.0, 0.0);
    let mut incremental = false;
    for (i, x) in win[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (s, c) = kahan_inc(x.value, sum, comp);
            if !s.is_infinite() {
                sum = s;
                comp = c;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            comp /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, comp) = kahan_inc(x.value / count, q * mean, q * comp);
    }
    if incremental {
        mean + comp
    } else {
        sum / count + comp / count
    }
}

/// Double exponential smoothing (Holt's linear method) of the window.
fn smoothing(win: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if win.len() < 2 {
        return None;
    }
    let mut s0 = 0.0;
    let mut s1 = win[0].value;
    let mut b = win[1].value - win[0].value;
    for (i, x) in win.iter().enumerate().skip(1) {
        let xv = sf * x.value;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = xv + y;
    }
    Some(s1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_format_floats_like_go() {
        assert_eq!(format_float(1.5), "1.5");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(go_g(1.1), "1.1");
        assert_eq!(go_g(-1.1), "-1.1");
        assert_eq!(go_g(1e-7), "1e-07");
        assert_eq!(go_g(1e21), "1e+21");
        assert_eq!(go_g(f64::NAN), "NaN");
    }

    #[test]
    fn should_convert_days_to_civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(date_part("day_of_week", 0.0), 4.0);
        assert_eq!(date_part("days_in_month", 19_782.0 * 86_400.0), 29.0);
        assert_eq!(date_part("day_of_year", 19_782.0 * 86_400.0), 60.0);
    }

    #[test]
    fn should_compare_label_values_naturally() {
        assert_eq!(natural_cmp("a2", "a10"), Ordering::Less);
        assert_eq!(natural_cmp("a10", "a10"), Ordering::Equal);
        assert_eq!(natural_cmp("b", "a10"), Ordering::Greater);
    }

    #[test]
    fn should_interpolate_quantiles_with_nan_first() {
        let mut v = vec![3.0, 1.0, 2.0, 4.0];
        assert_eq!(quantile_sorted(0.5, &mut v), 2.5);
        assert_eq!(quantile_sorted(-1.0, &mut v), f64::NEG_INFINITY);
        let mut v = vec![1.0, f64::NAN];
        assert!(quantile_sorted(0.0, &mut v).is_nan());
    }
}
