//! Binary operators: arithmetic, comparison (filtering or `bool`), and the set
//! operators, with vector matching (`on`/`ignoring`, `group_left`/`group_right`).

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB, TokenId,
};
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::QueryError;
use super::aggregate::histogram_error_message;
use super::eval::{Evaluator, Grid, Result, VSeries, Val, absent, is_present, with_label};
use crate::model::{FloatHistogram, Label, Labels, METRIC_NAME};

/// One operand at one step: a float or a histogram.
#[derive(Clone)]
enum Operand {
    F(f64),
    H(Arc<FloatHistogram>),
}

impl Operand {
    fn at(s: &VSeries, i: usize) -> Option<Operand> {
        if let Some(h) = s.hist(i) {
            return Some(Operand::H(h.clone()));
        }
        is_present(s.vals[i]).then(|| Operand::F(s.vals[i]))
    }

    fn kind(&self) -> &'static str {
        match self {
            Operand::F(_) => "float",
            Operand::H(_) => "histogram",
        }
    }
}

/// Why a histogram operation gave nothing.
enum HistNote {
    /// The operand types cannot be combined by the operator.
    Types(&'static str, &'static str),
    /// The histograms cannot be combined.
    Incompatible(crate::histogram::HistogramError),
    /// Custom bucket bounds were reconciled (for `+` or `-`).
    Reconciled(TokenId),
    /// A counter reset met a "no reset" hint (for `+` or `-`).
    Conflict(TokenId),
}

fn op_name(op: TokenId) -> &'static str {
    match op {
        T_ADD => "+",
        T_SUB => "-",
        T_MUL => "*",
        T_DIV => "/",
        T_MOD => "%",
        T_POW => "^",
        T_ATAN2 => "atan2",
        T_EQLC => "==",
        T_NEQ => "!=",
        T_GTR => ">",
        T_LSS => "<",
        T_GTE => ">=",
        T_LTE => "<=",
        _ => "?",
    }
}

/// An operator with a histogram on at least one side: `h + h`, `h - h`, `h * f`,
/// `f * h`, `h / f`, and `==`/`!=` between histograms; `(value, keep)` as [`apply`].
fn apply_hist(
    op: TokenId,
    l: &Operand,
    r: &Operand,
    notes: &mut Vec<HistNote>,
) -> std::result::Result<(Operand, bool), HistNote> {
    use Operand::{F, H};
    let types = || HistNote::Types(l.kind(), r.kind());
    match (op, l, r) {
        (T_ADD, H(a), H(b)) | (T_SUB, H(a), H(b)) => {
            if a.conflicts_with(b) {
                notes.push(HistNote::Conflict(op));
            }
            let mut out = FloatHistogram::clone(a);
            let reconciled = if op == T_ADD {
                out.add(b)
            } else {
                let r = out.sub(b);
                out.counter_reset_hint = crate::model::CounterResetHint::Gauge;
                r
            }
            .map_err(HistNote::Incompatible)?;
            if reconciled {
                notes.push(HistNote::Reconciled(op));
            }
            out.compact();
            Ok((H(Arc::new(out)), true))
        }
        (T_MUL, H(a), F(f)) | (T_MUL, F(f), H(a)) => {
            let mut out = FloatHistogram::clone(a);
            out.mul(*f);
            Ok((H(Arc::new(out)), true))
        }
        (T_DIV, H(a), F(f)) => {
            let mut out = FloatHistogram::clone(a);
            out.div(*f);
            Ok((H(Arc::new(out)), true))
        }
        (T_EQLC, H(a), H(b)) => Ok((l.clone(), a.approx_eq(b, |x, y| x == y))),
        (T_NEQ, H(a), H(b)) => Ok((l.clone(), !a.approx_eq(b, |x, y| x == y))),
        _ => Err(types()),
    }
}

fn note_hist(
    ev: &mut Evaluator<'_>,
    op: TokenId,
    note: HistNote,
    at: &promql_parser::parser::Expr,
    metric: &str,
) {
    match note {
        HistNote::Types(a, b) => ev.info(
            format!(
                "incompatible sample types encountered for binary operator {:?}: {a} {} {b}",
                op_name(op),
                op_name(op)
            ),
            Some(at),
        ),
        HistNote::Incompatible(e) => ev.warn(histogram_error_message(e, metric), Some(at)),
        HistNote::Conflict(op) => ev.warn(
            format!(
                "conflicting counter resets during histogram {}",
                if op == T_ADD {
                    "addition"
                } else {
                    "subtraction"
                }
            ),
            Some(at),
        ),
        HistNote::Reconciled(op) => ev.info(
            format!(
                "mismatched custom buckets were reconciled during {}",
                if op == T_ADD {
                    "addition"
                } else {
                    "subtraction"
                }
            ),
            Some(at),
        ),
    }
}

pub(super) fn eval<'a>(ev: &mut Evaluator<'a>, b: &'a BinaryExpr, g: Grid) -> Result<Val<'a>> {
    let op = b.op.id();
    let modifier = b.modifier.as_ref();
    let return_bool = modifier.is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, g)?;
    let rhs = ev.eval(&b.rhs, g)?;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => Ok(Val::Scalar(
            l.iter()
                .zip(&r)
                .map(|(a, b)| {
                    let (v, keep) = apply(op, *a, *b);
                    if is_comparison(op) {
                        if keep { 1.0 } else { 0.0 }
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Val::Vector(v), Val::Scalar(s)) => {
            let mut notes = Vec::new();
            let out = vector_scalar(op, v, &s, false, return_bool, &mut notes);
            for n in notes {
                note_hist(ev, op, n, b_expr(b), "");
            }
            Ok(Val::Vector(out))
        }
        (Val::Scalar(s), Val::Vector(v)) => {
            let mut notes = Vec::new();
            let out = vector_scalar(op, v, &s, true, return_bool, &mut notes);
            for n in notes {
                note_hist(ev, op, n, b_expr(b), "");
            }
            Ok(Val::Vector(out))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let out = match op {
                T_LAND => and_unless(l, &r, modifier, g, true),
                T_LUNLESS => and_unless(l, &r, modifier, g, false),
                T_LOR => or(l, r, modifier, g),
                _ => {
                    let mut notes = Vec::new();
                    let metric = l
                        .iter()
                        .chain(&r)
                        .find_map(|s| s.labels.metric_name())
                        .unwrap_or("")
                        .to_string();
                    let out = vector_vector(op, l, r, modifier, return_bool, g, &mut notes)?;
                    for n in notes {
                        note_hist(ev, op, n, b_expr(b), &metric);
                    }
                    out
                }
            };
            Ok(Val::Vector(out))
        }
        (l, r) => Err(QueryError::BadData(format!(
            "binary expression must contain only scalar and instant vector types, got {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

pub(super) fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Arithmetic drops the metric name; comparisons (without `bool`) keep it.
fn drops_name(op: TokenId) -> bool {
    !is_comparison(op) && !matches!(op, T_LAND | T_LOR | T_LUNLESS)
}

/// `(value, keep)`: for comparisons the value is the left operand and `keep` the
/// comparison's outcome.
#[inline]
fn apply(op: TokenId, l: f64, r: f64) -> (f64, bool) {
    match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

fn vector_scalar(
    op: TokenId,
    mut v: Vec<VSeries>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
    notes: &mut Vec<HistNote>,
) -> Vec<VSeries> {
    let comparison = is_comparison(op);
    for series in &mut v {
        for (i, slot) in series.hists.iter_mut().enumerate() {
            let Some(h) = slot.take() else { continue };
            let (l, r) = if swap {
                (Operand::F(s[i]), Operand::H(h))
            } else {
                (Operand::H(h), Operand::F(s[i]))
            };
            match apply_hist(op, &l, &r, notes) {
                Ok((Operand::H(out), true)) if !return_bool => *slot = Some(out),
                Ok(_) => {}
                Err(n) => notes.push(n),
            }
        }
        for (x, &sv) in series.vals.iter_mut().zip(s) {
            if !is_present(*x) {
                continue;
            }
            let (l, r) = if swap { (sv, *x) } else { (*x, sv) };
            let (mut value, keep) = apply(op, l, r);
            if comparison && swap {
                value = r;
            }
            *x = if return_bool {
                if keep { 1.0 } else { 0.0 }
            } else if keep {
                value
            } else {
                absent()
            };
        }
        if drops_name(op) || return_bool {
            series.drop_name = true;
        }
    }
    v.retain(|s| s.points() > 0);
    v
}

/// The expression a binary operator's annotations point at.
fn b_expr(b: &BinaryExpr) -> &promql_parser::parser::Expr {
    &b.lhs
}

/// The labels vector matching compares: the `on` labels, or every label but the metric
/// name and the `ignoring` labels.
fn matched_labels<'l>(
    labels: &'l Labels,
    m: Option<&'l LabelModifier>,
) -> impl Iterator<Item = &'l Label> {
    labels.as_slice().iter().filter(move |l| match m {
        Some(LabelModifier::Include(on)) => on.labels.contains(&l.name),
        Some(LabelModifier::Exclude(ign)) => l.name != METRIC_NAME && !ign.labels.contains(&l.name),
        None => l.name != METRIC_NAME,
    })
}

/// The matching signature of a series (its [`matched_labels`], encoded).
pub(super) fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in matched_labels(labels, matching) {
        out.extend_from_slice(l.name.as_bytes());
        out.push(0xff);
        out.extend_from_slice(l.value.as_bytes());
        out.push(0xff);
    }
    out
}

fn matching(m: Option<&BinModifier>) -> Option<&LabelModifier> {
    m.and_then(|m| m.matching.as_ref())
}

/// Which signatures are present at each step on the right-hand side.
fn presence(r: &[VSeries], m: Option<&LabelModifier>, n: usize) -> HashMap<Vec<u8>, Vec<bool>> {
    let mut out: HashMap<Vec<u8>, Vec<bool>> = HashMap::new();
    for s in r {
        let p = out
            .entry(signature(&s.labels, m))
            .or_insert_with(|| vec![false; n]);
        for (i, v) in s.vals.iter().enumerate() {
            if is_present(*v) || s.hist(i).is_some() {
                p[i] = true;
            }
        }
    }
    out
}

fn and_unless(
    mut l: Vec<VSeries>,
    r: &[VSeries],
    m: Option<&BinModifier>,
    g: Grid,
    and: bool,
) -> Vec<VSeries> {
    let m = matching(m);
    let present = presence(r, m, g.n);
    for s in &mut l {
        let p = present.get(&signature(&s.labels, m));
        for (i, v) in s.vals.iter_mut().enumerate() {
            let matched = p.is_some_and(|p| p[i]);
            if matched != and {
                *v = absent();
                if let Some(h) = s.hists.get_mut(i) {
                    *h = None;
                }
            }
        }
    }
    l.retain(|s| s.points() > 0);
    l
}

fn or(mut l: Vec<VSeries>, mut r: Vec<VSeries>, m: Option<&BinModifier>, g: Grid) -> Vec<VSeries> {
    let m = matching(m);
    let present = presence(&l, m, g.n);
    for s in &mut r {
        if let Some(p) = present.get(&signature(&s.labels, m)) {
            for (i, v) in s.vals.iter_mut().enumerate() {
                if p[i] {
                    *v = absent();
                    if let Some(h) = s.hists.get_mut(i) {
                        *h = None;
                    }
                }
            }
        }
    }
    r.retain(|s| s.points() > 0);
    l.extend(r);
    l
}

/// The labels of a matched pair's result.
fn result_labels(many: &Labels, one: &Labels, m: &BinModifier) -> Labels {
    let mut labels: Vec<Label> = many.as_slice().to_vec();
    match &m.card {
        VectorMatchCardinality::OneToOne => match &m.matching {
            Some(LabelModifier::Include(on)) => labels.retain(|l| on.labels.contains(&l.name)),
            Some(LabelModifier::Exclude(ign)) => labels.retain(|l| !ign.labels.contains(&l.name)),
            None => {}
        },
        VectorMatchCardinality::ManyToOne(include) | VectorMatchCardinality::OneToMany(include) => {
            // `group_x` labels come from the "one" side (removed when it lacks them).
            let mut out = Labels::from_sorted(labels);
            for name in &include.labels {
                out = with_label(&out, name, one.get(name).unwrap_or(""));
            }
            return out;
        }
        VectorMatchCardinality::ManyToMany => {}
    }
    Labels::from_sorted(labels)
}

fn vector_vector(
    op: TokenId,
    lhs: Vec<VSeries>,
    rhs: Vec<VSeries>,
    modifier: Option<&BinModifier>,
    return_bool: bool,
    g: Grid,
    notes: &mut Vec<HistNote>,
) -> Result<Vec<VSeries>> {
    let default = BinModifier {
        card: VectorMatchCardinality::OneToOne,
        matching: None,
        return_bool: false,
        fill_values: Default::default(),
    };
    let m = modifier.unwrap_or(&default);
    if lhs.is_empty() || rhs.is_empty() {
        return Ok(Vec::new());
    }
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    // After a swap for group_right, `many` is the side whose labels the result keeps and
    // `one` the side that must be unique per signature.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let lm = m.matching.as_ref();

    // Per signature on the "one" side, which series is present at each step.
    let mut one_index: HashMap<Vec<u8>, Vec<i32>> = HashMap::new();
    for (idx, s) in one.iter().enumerate() {
        let col = one_index
            .entry(signature(&s.labels, lm))
            .or_insert_with(|| vec![-1; g.n]);
        for (i, v) in s.vals.iter().enumerate() {
            if !is_present(*v) && s.hist(i).is_none() {
                continue;
            }
            if col[i] >= 0 {
                let other = &one[col[i] as usize];
                let side = if one_to_many { "left" } else { "right" };
                let group = match_group(&s.labels, lm);
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {group} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    display_labels(&other.labels),
                    display_labels(&s.labels)
                )));
            }
            col[i] = idx as i32;
        }
    }

    let comparison = is_comparison(op);
    let drop = drops_name(op) || return_bool;
    let mut out: Vec<VSeries> = Vec::new();
    let mut out_index: HashMap<(usize, Labels), usize> = HashMap::new();
    // For one-to-one: which signature already produced a result at each step.
    let mut matched: HashMap<Vec<u8>, Vec<bool>> = HashMap::new();
    // For many-to-one: result label sets produced per signature and step.
    let mut produced: HashMap<(Vec<u8>, usize), Vec<Labels>> = HashMap::new();

    for s in &many {
        let sig = signature(&s.labels, lm);
        let Some(col) = one_index.get(&sig) else {
            continue;
        };
        let mut cached: Option<(i32, usize)> = None;
        for i in 0..g.n {
            let v = s.vals[i];
            if (!is_present(v) && s.hist(i).is_none()) || col[i] < 0 {
                continue;
            }
            if one_to_one {
                // Checked before filtering: a comparison must not hide the ambiguity.
                let seen = matched
                    .entry(sig.clone())
                    .or_insert_with(|| vec![false; g.n]);
                if seen[i] {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .into(),
                    ));
                }
                seen[i] = true;
            }
            let other = &one[col[i] as usize];
            let mut hist_value: Option<Arc<FloatHistogram>> = None;
            let value = if s.hist(i).is_some() || other.hist(i).is_some() {
                let (Some(a), Some(o)) = (Operand::at(s, i), Operand::at(other, i)) else {
                    continue;
                };
                let (l, r) = if one_to_many { (o, a) } else { (a, o) };
                match apply_hist(op, &l, &r, notes) {
                    Ok((_, keep)) if return_bool => {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    }
                    Ok((_, false)) => continue,
                    Ok((out, true)) => {
                        let out = if comparison && one_to_many { l } else { out };
                        match out {
                            Operand::H(h) => {
                                hist_value = Some(h);
                                absent()
                            }
                            Operand::F(f) => f,
                        }
                    }
                    Err(n) => {
                        notes.push(n);
                        continue;
                    }
                }
            } else {
                let (l, r) = if one_to_many {
                    (other.vals[i], v)
                } else {
                    (v, other.vals[i])
                };
                let (mut value, keep) = apply(op, l, r);
                if comparison && one_to_many {
                    // Filtering keeps the left-hand side's value.
                    value = l;
                }
                if return_bool {
                    if keep { 1.0 } else { 0.0 }
                } else if keep {
                    value
                } else {
                    continue;
                }
            };
            // Result series for this pair.
            let slot = match cached {
                Some((c, slot)) if c == col[i] => slot,
                _ => {
                    let labels = result_labels(&s.labels, &other.labels, m);
                    let key = (if one_to_one { 0 } else { col[i] as usize }, labels);
                    let slot = match out_index.get(&key) {
                        Some(&slot) => slot,
                        None => {
                            out.push(VSeries::floats(
                                key.1.clone(),
                                s.drop_name || drop,
                                vec![absent(); g.n],
                            ));
                            out_index.insert(key, out.len() - 1);
                            out.len() - 1
                        }
                    };
                    cached = Some((col[i], slot));
                    slot
                }
            };
            if !one_to_one {
                let labels = &out[slot].labels;
                let list = produced.entry((sig.clone(), i)).or_default();
                if list.contains(labels) {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                            .into(),
                    ));
                }
                list.push(labels.clone());
            }
            out[slot].vals[i] = value;
            if let Some(h) = hist_value {
                let o = &mut out[slot];
                if o.hists.is_empty() {
                    o.hists = vec![None; g.n];
                }
                o.hists[i] = Some(h);
            }
        }
    }
    Ok(out)
}

/// The labels a match group is shown with in errors.
fn match_group(labels: &Labels, m: Option<&LabelModifier>) -> String {
    display_labels(&Labels::from_sorted(
        matched_labels(labels, m).cloned().collect(),
    ))
}

/// Labels as Prometheus prints them: `{__name__="x", a="b"}`.
pub(super) fn display_labels(labels: &Labels) -> String {
    let parts: Vec<String> = labels
        .as_slice()
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", parts.join(", "))
}
