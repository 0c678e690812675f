//! Reading push-down predicates: the comparisons of a column with a literal that the
//! table providers turn into key, sequence, time and label ranges.

use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, expr::InList};

/// A comparison operator, with the column on the left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl Cmp {
    fn from_op(op: Operator) -> Option<Self> {
        Some(match op {
            Operator::Eq => Cmp::Eq,
            Operator::NotEq => Cmp::NotEq,
            Operator::Lt => Cmp::Lt,
            Operator::LtEq => Cmp::LtEq,
            Operator::Gt => Cmp::Gt,
            Operator::GtEq => Cmp::GtEq,
            _ => return None,
        })
    }

    /// The operator with its sides swapped (`5 < x` is `x > 5`).
    fn flip(self) -> Self {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::LtEq => Cmp::GtEq,
            Cmp::Gt => Cmp::Lt,
            Cmp::GtEq => Cmp::LtEq,
            other => other,
        }
    }
}

/// The column an expression reads, looking through casts (which our columns only go
/// through to a wider or differently typed but order-preserving form).
pub(crate) fn column_of(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        Expr::Cast(c) => column_of(&c.expr),
        Expr::TryCast(c) => column_of(&c.expr),
        _ => None,
    }
}

/// The literal an expression is, if it is one.
pub(crate) fn literal_of(e: &Expr) -> Option<&ScalarValue> {
    match e {
        Expr::Literal(v, _) => Some(v),
        _ => None,
    }
}

/// `expr <op> literal` (or `literal <op> expr`) as `(expr, op, literal)`.
pub(crate) fn comparison(e: &Expr) -> Option<(&Expr, Cmp, &ScalarValue)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let cmp = Cmp::from_op(*op)?;
    if let Some(v) = literal_of(right) {
        return Some((left, cmp, v));
    }
    literal_of(left).map(|v| (right.as_ref(), cmp.flip(), v))
}

/// The string of a literal.
pub(crate) fn string_of(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.as_str()),
        ScalarValue::Dictionary(_, inner) => string_of(inner),
        _ => None,
    }
}

/// An inclusive range of integers (`lo > hi` is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntRange {
    pub lo: i64,
    pub hi: i64,
}

impl Default for IntRange {
    fn default() -> Self {
        Self {
            lo: i64::MIN,
            hi: i64::MAX,
        }
    }
}

impl IntRange {
    pub fn is_empty(&self) -> bool {
        self.lo > self.hi
    }

    fn intersect(&mut self, lo: i64, hi: i64) {
        self.lo = self.lo.max(lo);
        self.hi = self.hi.min(hi);
    }

    /// Narrows the range by `column <cmp> value`, the value given in units of which
    /// `per_unit` make one of the column's (1 for the same unit, 1,000 for
    /// microseconds against milliseconds...). `NotEq` does not narrow; returns false
    /// when the comparison cannot be applied exactly.
    pub fn apply(&mut self, cmp: Cmp, value: i128, per_unit: i128) -> bool {
        let floor = |v: i128| clamp(v.div_euclid(per_unit));
        let ceil = |v: i128| clamp(-((-v).div_euclid(per_unit)));
        match cmp {
            Cmp::Eq => {
                if value.rem_euclid(per_unit) != 0 {
                    self.intersect(1, 0);
                } else {
                    let v = floor(value);
                    self.intersect(v, v);
                }
            }
            Cmp::GtEq => self.intersect(ceil(value), i64::MAX),
            Cmp::Gt => {
                let v = floor(value);
                if v == i64::MAX {
                    self.intersect(1, 0);
                } else {
                    self.intersect(v + 1, i64::MAX);
                }
            }
            Cmp::LtEq => self.intersect(i64::MIN, floor(value)),
            Cmp::Lt => {
                let v = ceil(value);
                if v == i64::MIN {
                    self.intersect(1, 0);
                } else {
                    self.intersect(i64::MIN, v - 1);
                }
            }
            Cmp::NotEq => return false,
        }
        true
    }
}

fn clamp(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// An integer literal as `(value, per_unit)` against a millisecond timestamp column
/// (or a plain integer column, when `millis` is false).
pub(crate) fn int_literal(v: &ScalarValue, millis: bool) -> Option<(i128, i128)> {
    let plain = |n: i128| Some((n, 1));
    match v {
        ScalarValue::Int8(Some(n)) => plain(*n as i128),
        ScalarValue::Int16(Some(n)) => plain(*n as i128),
        ScalarValue::Int32(Some(n)) => plain(*n as i128),
        ScalarValue::Int64(Some(n)) => plain(*n as i128),
        ScalarValue::UInt8(Some(n)) => plain(*n as i128),
        ScalarValue::UInt16(Some(n)) => plain(*n as i128),
        ScalarValue::UInt32(Some(n)) => plain(*n as i128),
        ScalarValue::UInt64(Some(n)) => plain(*n as i128),
        ScalarValue::TimestampSecond(Some(n), _) if millis => Some((*n as i128 * 1000, 1)),
        ScalarValue::TimestampMillisecond(Some(n), _) if millis => plain(*n as i128),
        ScalarValue::TimestampMicrosecond(Some(n), _) if millis => Some((*n as i128, 1000)),
        ScalarValue::TimestampNanosecond(Some(n), _) if millis => Some((*n as i128, 1_000_000)),
        _ => None,
    }
}

/// Narrows `range` by a predicate on `column` (an integer or millisecond timestamp
/// column): comparisons with a literal and `BETWEEN` literals. Returns whether the
/// predicate was one of those (and so is applied exactly by the range).
pub(crate) fn narrow_range(e: &Expr, column: &str, millis: bool, range: &mut IntRange) -> bool {
    if let Some((c, cmp, v)) = comparison(e) {
        if column_of(c) != Some(column) || cmp == Cmp::NotEq {
            return false;
        }
        let Some((value, per)) = int_literal(v, millis) else {
            return false;
        };
        return range.apply(cmp, value, per);
    }
    if let Expr::Between(Between {
        expr,
        negated: false,
        low,
        high,
    }) = e
        && column_of(expr) == Some(column)
        && let (Some(lo), Some(hi)) = (
            literal_of(low).and_then(|v| int_literal(v, millis)),
            literal_of(high).and_then(|v| int_literal(v, millis)),
        )
    {
        range.apply(Cmp::GtEq, lo.0, lo.1);
        range.apply(Cmp::LtEq, hi.0, hi.1);
        return true;
    }
    false
}

/// Whether the predicate is one [`narrow_range`] applies.
pub(crate) fn is_range(e: &Expr, column: &str, millis: bool) -> bool {
    narrow_range(e, column, millis, &mut IntRange::default())
}

/// `column = 'a'` or `column IN ('a', 'b')` on a string column: the values.
pub(crate) fn string_set(e: &Expr, column: &str) -> Option<Vec<String>> {
    if let Some((c, Cmp::Eq, v)) = comparison(e) {
        if column_of(c) == Some(column) {
            return string_of(v).map(|s| vec![s.to_string()]);
        }
        return None;
    }
    if let Expr::InList(InList {
        expr,
        list,
        negated: false,
    }) = e
        && column_of(expr) == Some(column)
    {
        return list
            .iter()
            .map(|item| literal_of(item).and_then(string_of).map(str::to_string))
            .collect();
    }
    None
}

/// `column LIKE 'prefix%'` (no other wildcard, no escape) or `starts_with(column,
/// 'prefix')`: the prefix. A `LIKE` is still re-checked above the scan.
pub(crate) fn string_prefix(e: &Expr, column: &str) -> Option<String> {
    match e {
        Expr::Like(like)
            if !like.negated
                && !like.case_insensitive
                && like.escape_char.is_none()
                && column_of(&like.expr) == Some(column) =>
        {
            let pattern = literal_of(&like.pattern).and_then(string_of)?;
            let prefix = pattern.strip_suffix('%')?;
            if prefix.contains(['%', '_', '\\']) {
                return None;
            }
            Some(prefix.to_string())
        }
        Expr::ScalarFunction(f) if f.func.name() == "starts_with" && f.args.len() == 2 => {
            if column_of(&f.args[0]) != Some(column) {
                return None;
            }
            literal_of(&f.args[1])
                .and_then(string_of)
                .map(str::to_string)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};
    use proptest::prelude::*;

    #[test]
    fn should_narrow_by_comparisons_on_either_side() {
        let mut r = IntRange::default();
        assert!(narrow_range(
            &col("sequence").gt_eq(lit(10i64)),
            "sequence",
            false,
            &mut r
        ));
        assert!(narrow_range(
            &lit(20i64).gt(col("sequence")),
            "sequence",
            false,
            &mut r
        ));
        assert_eq!(r, IntRange { lo: 10, hi: 19 });
        assert!(!narrow_range(
            &col("other").gt(lit(1i64)),
            "sequence",
            false,
            &mut r
        ));
        assert!(!narrow_range(
            &col("sequence").not_eq(lit(1i64)),
            "sequence",
            false,
            &mut r
        ));
    }

    #[test]
    fn should_round_finer_timestamp_literals_to_exact_millisecond_bounds() {
        let us = |n: i64| lit(ScalarValue::TimestampMicrosecond(Some(n), None));
        let mut r = IntRange::default();
        assert!(narrow_range(
            &col("timestamp").gt(us(1_500)),
            "timestamp",
            true,
            &mut r
        ));
        assert!(narrow_range(
            &col("timestamp").lt(us(4_000)),
            "timestamp",
            true,
            &mut r
        ));
        assert_eq!(r, IntRange { lo: 2, hi: 3 });
        let mut eq = IntRange::default();
        narrow_range(&col("timestamp").eq(us(1_500)), "timestamp", true, &mut eq);
        assert!(eq.is_empty());
    }

    #[test]
    fn should_read_string_sets_and_prefixes() {
        assert_eq!(
            string_set(&col("key").eq(lit("a")), "key"),
            Some(vec!["a".to_string()])
        );
        assert_eq!(
            string_set(&col("key").in_list(vec![lit("a"), lit("b")], false), "key"),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            string_set(&col("key").in_list(vec![lit("a")], true), "key"),
            None
        );
        assert_eq!(
            string_prefix(&col("key").like(lit("ord%")), "key"),
            Some("ord".to_string())
        );
        assert_eq!(string_prefix(&col("key").like(lit("o_d%")), "key"), None);
    }

    proptest! {
        /// A range built from comparisons holds exactly the integers that satisfy them.
        #[test]
        fn should_hold_exactly_the_values_that_satisfy_the_comparisons(
            a in -5_000i64..5_000, b in -5_000i64..5_000, per in prop::sample::select(vec![1i128, 1000]),
            x in -10i64..10,
        ) {
            let mut r = IntRange::default();
            r.apply(Cmp::Gt, a as i128, per);
            r.apply(Cmp::LtEq, b as i128, per);
            let scaled = x as i128 * per;
            let holds = scaled > a as i128 && scaled <= b as i128;
            prop_assert_eq!(holds, x >= r.lo && x <= r.hi);
        }
    }
}
