//! Binary operators: arithmetic, comparison (filtering or `bool`), the histogram trim
//! operators `</` and `>/`, and the set operators, with vector matching
//! (`on`/`ignoring`, `group_left`/`group_right`) and the `fill`, `fill_left` and
//! `fill_right` modifiers.

use std::collections::HashMap;
use std::sync::Arc;

use super::QueryError;
use super::aggregate::histogram_error_message;
use super::eval::{Evaluator, Grid, Result, VSeries, Val, absent, is_present, with_label};
use super::parser::{
    BinModifier, BinaryExpr, BinaryOp, Expr, LabelModifier, VectorMatchCardinality,
};
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
    Reconciled(BinaryOp),
    /// A counter reset met a "no reset" hint (for `+` or `-`).
    Conflict(BinaryOp),
}

/// `</` and `>/`.
fn is_trim(op: BinaryOp) -> bool {
    matches!(op, BinaryOp::TrimUpper | BinaryOp::TrimLower)
}

/// An operator with a histogram on at least one side: `h + h`, `h - h`, `h * f`,
/// `f * h`, `h / f`, and `==`/`!=` between histograms; `(value, keep)` as [`apply`].
fn apply_hist(
    op: BinaryOp,
    l: &Operand,
    r: &Operand,
    notes: &mut Vec<HistNote>,
) -> std::result::Result<(Operand, bool), HistNote> {
    use Operand::{F, H};
    let types = || HistNote::Types(l.kind(), r.kind());
    match (op, l, r) {
        (BinaryOp::Add, H(a), H(b)) | (BinaryOp::Sub, H(a), H(b)) => {
            if a.conflicts_with(b) {
                notes.push(HistNote::Conflict(op));
            }
            let mut out = FloatHistogram::clone(a);
            let reconciled = if op == BinaryOp::Add {
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
        (BinaryOp::Mul, H(a), F(f)) | (BinaryOp::Mul, F(f), H(a)) => {
            let mut out = FloatHistogram::clone(a);
            out.mul(*f);
            Ok((H(Arc::new(out)), true))
        }
        (BinaryOp::Div, H(a), F(f)) => {
            let mut out = FloatHistogram::clone(a);
            out.div(*f);
            Ok((H(Arc::new(out)), true))
        }
        (BinaryOp::TrimUpper | BinaryOp::TrimLower, H(a), F(f)) => {
            let mut out = a.trim(*f, op == BinaryOp::TrimUpper);
            out.compact();
            Ok((H(Arc::new(out)), true))
        }
        (BinaryOp::Eql, H(a), H(b)) => Ok((l.clone(), a.approx_eq(b, |x, y| x == y))),
        (BinaryOp::Neq, H(a), H(b)) => Ok((l.clone(), !a.approx_eq(b, |x, y| x == y))),
        _ => Err(types()),
    }
}

fn note_hist(ev: &mut Evaluator<'_>, op: BinaryOp, note: HistNote, at: &Expr, metric: &str) {
    match note {
        HistNote::Types(a, b) => ev.info(
            format!(
                "incompatible sample types encountered for binary operator {:?}: {a} {} {b}",
                op.as_str(),
                op.as_str()
            ),
            Some(at),
        ),
        HistNote::Incompatible(e) => ev.warn(histogram_error_message(e, metric), Some(at)),
        HistNote::Conflict(op) => ev.warn(
            format!(
                "conflicting counter resets during histogram {}",
                if op == BinaryOp::Add {
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
                if op == BinaryOp::Add {
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
    let op = b.op;
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
                    if op.is_comparison() {
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
                BinaryOp::And => and_unless(l, &r, modifier, g, true),
                BinaryOp::Unless => and_unless(l, &r, modifier, g, false),
                BinaryOp::Or => or(l, r, modifier, g),
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

/// Arithmetic drops the metric name; comparisons (without `bool`) and the trim
/// operators keep it.
fn drops_name(op: BinaryOp) -> bool {
    !op.is_comparison() && !op.is_set_operator() && !is_trim(op)
}

/// `(value, keep)`: for comparisons the value is the left operand and `keep` the
/// comparison's outcome.
#[inline]
fn apply(op: BinaryOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (l + r, true),
        BinaryOp::Sub => (l - r, true),
        BinaryOp::Mul => (l * r, true),
        BinaryOp::Div => (l / r, true),
        BinaryOp::Mod => (l % r, true),
        BinaryOp::Pow => (l.powf(r), true),
        BinaryOp::Atan2 => (l.atan2(r), true),
        BinaryOp::Eql => (l, l == r),
        BinaryOp::Neq => (l, l != r),
        BinaryOp::Gtr => (l, l > r),
        BinaryOp::Lss => (l, l < r),
        BinaryOp::Gte => (l, l >= r),
        BinaryOp::Lte => (l, l <= r),
        // The trim operators take a histogram on the left; set operators no floats.
        BinaryOp::TrimUpper
        | BinaryOp::TrimLower
        | BinaryOp::And
        | BinaryOp::Or
        | BinaryOp::Unless => (f64::NAN, false),
    }
}

fn vector_scalar(
    op: BinaryOp,
    mut v: Vec<VSeries>,
    s: &[f64],
    swap: bool,
    return_bool: bool,
    notes: &mut Vec<HistNote>,
) -> Vec<VSeries> {
    let comparison = op.is_comparison();
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
            if is_trim(op) {
                notes.push(HistNote::Types("float", "float"));
                *x = absent();
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
fn b_expr(b: &BinaryExpr) -> &Expr {
    &b.lhs
}

/// The labels vector matching compares: the `on` labels, or every label but the metric
/// name and the `ignoring` labels.
fn matched_labels<'l>(
    labels: &'l Labels,
    m: Option<&'l LabelModifier>,
) -> impl Iterator<Item = &'l Label> {
    labels.as_slice().iter().filter(move |l| match m {
        Some(LabelModifier::Include(on)) => on.contains(&l.name),
        Some(LabelModifier::Exclude(ign)) => l.name != METRIC_NAME && !ign.contains(&l.name),
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
            Some(LabelModifier::Include(on)) => labels.retain(|l| on.contains(&l.name)),
            Some(LabelModifier::Exclude(ign)) => labels.retain(|l| !ign.contains(&l.name)),
            None => {}
        },
        VectorMatchCardinality::ManyToOne(include) | VectorMatchCardinality::OneToMany(include) => {
            // `group_x` labels come from the "one" side (removed when it lacks them).
            let mut out = Labels::from_sorted(labels);
            for name in include {
                out = with_label(&out, name, one.get(name).unwrap_or(""));
            }
            return out;
        }
        VectorMatchCardinality::ManyToMany => {}
    }
    Labels::from_sorted(labels)
}

/// The labels a series is matched by, as the series a `fill` modifier stands in for it
/// on the other side has them.
fn match_labels(labels: &Labels, m: Option<&LabelModifier>) -> Labels {
    Labels::from_sorted(matched_labels(labels, m).cloned().collect())
}

/// The key of the result series of a "many" series matched with a value filled in by
/// `fill_right` (where a "one" series' index would be).
const FILLED: usize = usize::MAX;

/// The state of one vector-vector operation: the results so far and the checks of
/// matching cardinality.
struct Join<'m> {
    op: BinaryOp,
    m: &'m BinModifier,
    return_bool: bool,
    n: usize,
    one_to_one: bool,
    one_to_many: bool,
    out: Vec<VSeries>,
    out_index: HashMap<(usize, Labels), usize>,
    /// For one-to-one: which signature already produced a result at each step.
    matched: HashMap<Vec<u8>, Vec<bool>>,
    /// For many-to-one: result label sets produced per signature and step.
    produced: HashMap<(Vec<u8>, usize), Vec<Labels>>,
    /// Which signature took part in an operation at each step (for `fill_left`).
    hit: HashMap<Vec<u8>, Vec<bool>>,
}

/// One side of a pair: its labels, whether its name is to be dropped, its value.
struct Side<'l> {
    labels: &'l Labels,
    drop_name: bool,
    value: Operand,
}

impl Join<'_> {
    fn was_hit(&self, sig: &[u8], i: usize) -> bool {
        self.hit.get(sig).is_some_and(|h| h[i])
    }

    fn mark(&mut self, sig: &[u8], i: usize) {
        let n = self.n;
        self.hit
            .entry(sig.to_vec())
            .or_insert_with(|| vec![false; n])[i] = true;
    }

    /// Applies the operator to a matched pair at step `i`: `many` is the side whose
    /// labels the result keeps (the right-hand side for `group_right`), `one` the other;
    /// `one_key` tells the result series of many-to-one matching apart.
    fn pair(
        &mut self,
        i: usize,
        sig: &[u8],
        one_key: usize,
        many: Side<'_>,
        one: Side<'_>,
        notes: &mut Vec<HistNote>,
    ) -> Result<()> {
        let op = self.op;
        if self.one_to_one {
            // Checked before filtering: a comparison must not hide the ambiguity.
            let n = self.n;
            let seen = self
                .matched
                .entry(sig.to_vec())
                .or_insert_with(|| vec![false; n]);
            if seen[i] {
                return Err(QueryError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            seen[i] = true;
        }
        let mut hist_value: Option<Arc<FloatHistogram>> = None;
        let (l, r) = if self.one_to_many {
            (one.value, many.value)
        } else {
            (many.value, one.value)
        };
        let value = match (&l, &r) {
            (Operand::F(lf), Operand::F(rf)) => {
                if is_trim(op) {
                    notes.push(HistNote::Types("float", "float"));
                    return Ok(());
                }
                self.mark(sig, i);
                // A comparison's value is the left-hand side's.
                let (value, keep) = apply(op, *lf, *rf);
                if self.return_bool {
                    if keep { 1.0 } else { 0.0 }
                } else if keep {
                    value
                } else {
                    return Ok(());
                }
            }
            _ => match apply_hist(op, &l, &r, notes) {
                Err(n) => {
                    notes.push(n);
                    return Ok(());
                }
                Ok((_, keep)) if self.return_bool => {
                    self.mark(sig, i);
                    if keep { 1.0 } else { 0.0 }
                }
                Ok((_, false)) => {
                    self.mark(sig, i);
                    return Ok(());
                }
                Ok((out, true)) => {
                    self.mark(sig, i);
                    let out = if op.is_comparison() { l } else { out };
                    match out {
                        Operand::H(h) => {
                            hist_value = Some(h);
                            absent()
                        }
                        Operand::F(f) => f,
                    }
                }
            },
        };
        let labels = result_labels(many.labels, one.labels, self.m);
        let key = (if self.one_to_one { 0 } else { one_key }, labels);
        let drop = drops_name(op) || self.return_bool;
        let slot = match self.out_index.get(&key) {
            Some(&slot) => slot,
            None => {
                self.out.push(VSeries::floats(
                    key.1.clone(),
                    many.drop_name || drop,
                    vec![absent(); self.n],
                ));
                self.out_index.insert(key, self.out.len() - 1);
                self.out.len() - 1
            }
        };
        if !self.one_to_one {
            let labels = &self.out[slot].labels;
            let list = self.produced.entry((sig.to_vec(), i)).or_default();
            if list.contains(labels) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
            list.push(labels.clone());
        }
        let o = &mut self.out[slot];
        o.vals[i] = value;
        if let Some(h) = hist_value {
            if o.hists.is_empty() {
                o.hists = vec![None; self.n];
            }
            o.hists[i] = Some(h);
        }
        Ok(())
    }
}

fn vector_vector(
    op: BinaryOp,
    lhs: Vec<VSeries>,
    rhs: Vec<VSeries>,
    modifier: Option<&BinModifier>,
    return_bool: bool,
    g: Grid,
    notes: &mut Vec<HistNote>,
) -> Result<Vec<VSeries>> {
    let default = BinModifier::default();
    let m = modifier.unwrap_or(&default);
    let fill = m.fill;
    if (lhs.is_empty() && rhs.is_empty()) || ((lhs.is_empty() || rhs.is_empty()) && fill.is_empty())
    {
        return Ok(Vec::new());
    }
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    // After a swap for group_right, `many` is the side whose labels the result keeps and
    // `one` the side that must be unique per signature. As upstream, `fill_right`
    // stands in for a missing `one` and `fill_left` for a missing `many` after the swap.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    let lm = m.matching.as_ref();

    // Per signature on the "one" side, which series is present at each step.
    let mut one_index: HashMap<Vec<u8>, Vec<i32>> = HashMap::new();
    let mut one_sigs: Vec<Vec<u8>> = Vec::with_capacity(one.len());
    for (idx, s) in one.iter().enumerate() {
        let sig = signature(&s.labels, lm);
        let col = one_index
            .entry(sig.clone())
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
        one_sigs.push(sig);
    }

    let mut join = Join {
        op,
        m,
        return_bool,
        n: g.n,
        one_to_one,
        one_to_many,
        out: Vec::new(),
        out_index: HashMap::new(),
        matched: HashMap::new(),
        produced: HashMap::new(),
        hit: HashMap::new(),
    };
    for s in &many {
        let sig = signature(&s.labels, lm);
        let col = one_index.get(&sig);
        let mut filled: Option<Labels> = None;
        for i in 0..g.n {
            let Some(value) = Operand::at(s, i) else {
                continue;
            };
            let many_side = Side {
                labels: &s.labels,
                drop_name: s.drop_name,
                value,
            };
            match col.map(|c| c[i]).filter(|&c| c >= 0) {
                Some(c) => {
                    let other = &one[c as usize];
                    let Some(o) = Operand::at(other, i) else {
                        continue;
                    };
                    let one_side = Side {
                        labels: &other.labels,
                        drop_name: other.drop_name,
                        value: o,
                    };
                    join.pair(i, &sig, c as usize, many_side, one_side, notes)?;
                }
                None => {
                    let Some(f) = fill.rhs else { continue };
                    let labels = filled.get_or_insert_with(|| match_labels(&s.labels, lm));
                    let one_side = Side {
                        labels,
                        drop_name: false,
                        value: Operand::F(f),
                    };
                    join.pair(i, &sig, FILLED, many_side, one_side, notes)?;
                }
            }
        }
    }
    if let Some(f) = fill.lhs {
        for (idx, (s, sig)) in one.iter().zip(&one_sigs).enumerate() {
            let col = &one_index[sig];
            let labels = match_labels(&s.labels, lm);
            for (i, &c) in col.iter().enumerate() {
                if c != idx as i32 || join.was_hit(sig, i) {
                    continue;
                }
                let Some(o) = Operand::at(s, i) else { continue };
                let many_side = Side {
                    labels: &labels,
                    drop_name: false,
                    value: Operand::F(f),
                };
                let one_side = Side {
                    labels: &s.labels,
                    drop_name: s.drop_name,
                    value: o,
                };
                join.pair(i, sig, idx, many_side, one_side, notes)?;
            }
        }
    }
    Ok(join.out)
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
