//! Type checking and the semantic rules upstream applies after parsing, with its
//! wording. Children are checked before their parent, so the innermost problem is
//! the one reported.

use super::ast::*;
use super::error::ParseError;
use super::functions::{ANCHORED_FUNCTIONS, SMOOTHED_FUNCTIONS};
use super::lexer::go_quote;

pub(crate) struct Checker<'a> {
    pub input: &'a str,
}

type CResult<T> = Result<T, Box<ParseError>>;

impl Checker<'_> {
    #[cold]
    #[inline(never)]
    fn err(&self, span: Span, message: String) -> Box<ParseError> {
        Box::new(ParseError::at(self.input, span, message))
    }

    fn expect_type(&self, e: &Expr, want: ValueType, context: &str) -> CResult<()> {
        let got = self.check(e)?;
        if got != want {
            return Err(self.err(
                e.span(),
                format!(
                    "expected type {} in {context}, got {}",
                    want.documented_name(),
                    got.documented_name()
                ),
            ));
        }
        Ok(())
    }

    /// Checks `e` and its children; the type of `e`.
    pub(crate) fn check(&self, e: &Expr) -> CResult<ValueType> {
        super::with_stack(|| self.check_inner(e))
    }

    fn check_inner(&self, e: &Expr) -> CResult<ValueType> {
        match e {
            Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::VectorSelector(_) => {}
            Expr::MatrixSelector(_) => {}
            Expr::Paren(p) => {
                self.check(&p.expr)?;
            }
            Expr::Unary(u) => {
                let t = self.check(&u.expr)?;
                if t != ValueType::Scalar && t != ValueType::Vector {
                    return Err(self.err(
                        u.span,
                        format!(
                            "unary expression only allowed on expressions of type scalar or \
                             instant vector, got {}",
                            go_quote(t.documented_name())
                        ),
                    ));
                }
            }
            Expr::Subquery(s) => {
                let t = self.check(&s.expr)?;
                if t != ValueType::Vector {
                    return Err(self.err(
                        s.span,
                        format!(
                            "subquery is only allowed on instant vector, got {} instead",
                            t.documented_name()
                        ),
                    ));
                }
            }
            Expr::Aggregate(a) => {
                self.expect_type(&a.expr, ValueType::Vector, "aggregation expression")?;
                if let Some(p) = &a.param {
                    let want = if a.op == AggregateOp::CountValues {
                        ValueType::String
                    } else {
                        ValueType::Scalar
                    };
                    self.expect_type(p, want, "aggregation parameter")?;
                }
            }
            Expr::Call(c) => self.check_call(c)?,
            Expr::Binary(b) => self.check_binary(b)?,
        }
        Ok(e.value_type())
    }

    fn check_call(&self, c: &Call) -> CResult<()> {
        let f = c.func;
        let n = c.args.len();
        let name = go_quote(f.name);
        if f.variadic == 0 {
            if n != f.arg_types.len() {
                return Err(self.err(
                    c.span,
                    format!(
                        "expected {} argument(s) in call to {name}, got {n}",
                        f.arg_types.len()
                    ),
                ));
            }
        } else if n < f.min_args() {
            return Err(self.err(
                c.span,
                format!(
                    "expected at least {} argument(s) in call to {name}, got {n}",
                    f.min_args()
                ),
            ));
        } else if let Some(max) = f.max_args()
            && n > max
        {
            return Err(self.err(
                c.span,
                format!("expected at most {max} argument(s) in call to {name}, got {n}"),
            ));
        }
        let context = format!("call to function {name}");
        for (i, arg) in c.args.iter().enumerate() {
            let Some(want) = f.arg_type(i) else { break };
            self.expect_type(arg, want, &context)?;
            if let Expr::MatrixSelector(ms) = arg {
                let allowed = |list: &[&str]| list.contains(&f.name);
                if ms.vs.anchored && !allowed(ANCHORED_FUNCTIONS) {
                    return Err(self.err(
                        ms.span,
                        format!(
                            "anchored modifier can only be used with: {} - not with {}",
                            ANCHORED_FUNCTIONS.join(", "),
                            f.name
                        ),
                    ));
                }
                if ms.vs.smoothed && !allowed(SMOOTHED_FUNCTIONS) {
                    return Err(self.err(
                        ms.span,
                        format!(
                            "smoothed modifier can only be used with: {} - not with {}",
                            SMOOTHED_FUNCTIONS.join(", "),
                            f.name
                        ),
                    ));
                }
            }
        }
        if f.name == "info"
            && let Some(second) = c.args.get(1)
            && !matches!(second, Expr::VectorSelector(_))
        {
            return Err(self.err(
                second.span(),
                "expected label selectors as the second argument to \"info\" function".into(),
            ));
        }
        Ok(())
    }

    /// The operator and its modifiers: from the first non-space byte after the left
    /// operand to the last one before the right operand (as upstream reports them).
    fn operator_span(&self, b: &BinaryExpr) -> Span {
        let bytes = self.input.as_bytes();
        let (mut start, mut end) = (b.lhs.span().end, b.rhs.span().start);
        if start >= end || end > bytes.len() {
            return b.span;
        }
        while start < end && bytes[start].is_ascii_whitespace() {
            start += 1;
        }
        while end > start && bytes[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        Span::new(start, end)
    }

    fn check_binary(&self, b: &BinaryExpr) -> CResult<()> {
        let lt = self.check(&b.lhs)?;
        let rt = self.check(&b.rhs)?;
        let op = b.op;
        let m = b.modifier.as_ref();
        if b.return_bool() && !op.is_comparison() {
            return Err(self.err(
                self.operator_span(b),
                "bool modifier can only be used on comparison operators".into(),
            ));
        }
        if op.is_comparison()
            && !b.return_bool()
            && lt == ValueType::Scalar
            && rt == ValueType::Scalar
        {
            return Err(self.err(
                self.operator_span(b),
                "comparisons between scalars must use BOOL modifier".into(),
            ));
        }
        if let Some(m) = m
            && let Some(LabelModifier::Include(on)) = &m.matching
            && let VectorMatchCardinality::ManyToOne(include)
            | VectorMatchCardinality::OneToMany(include) = &m.card
            && let Some(l) = on.iter().find(|l| include.contains(l))
        {
            return Err(self.err(
                self.operator_span(b),
                format!(
                    "label {} must not occur in ON and GROUP clause at once",
                    go_quote(l)
                ),
            ));
        }
        for (t, side) in [(lt, &b.lhs), (rt, &b.rhs)] {
            if t != ValueType::Scalar && t != ValueType::Vector {
                return Err(self.err(
                    side.span(),
                    "binary expression must contain only scalar and instant vector types".into(),
                ));
            }
        }
        let vectors = lt == ValueType::Vector && rt == ValueType::Vector;
        if let Some(m) = m {
            if !vectors {
                if m.matching.as_ref().is_some_and(|l| !l.labels().is_empty()) {
                    return Err(self.err(
                        b.span,
                        "vector matching only allowed between instant vectors".into(),
                    ));
                }
                if !m.fill.is_empty() {
                    return Err(self.err(
                        b.span,
                        "fill modifiers are only allowed between instant vectors".into(),
                    ));
                }
            } else if op.is_set_operator() {
                if matches!(
                    m.card,
                    VectorMatchCardinality::ManyToOne(_) | VectorMatchCardinality::OneToMany(_)
                ) {
                    return Err(self.err(
                        b.span,
                        format!(
                            "no grouping allowed for {} operation",
                            go_quote(op.as_str())
                        ),
                    ));
                }
                if m.card != VectorMatchCardinality::ManyToMany {
                    return Err(
                        self.err(b.span, "set operations must always be many-to-many".into())
                    );
                }
                if !m.fill.is_empty() {
                    return Err(self.err(
                        b.span,
                        format!(
                            "fill modifiers are not allowed for set operator {}",
                            go_quote(op.as_str())
                        ),
                    ));
                }
            }
        }
        if (lt == ValueType::Scalar || rt == ValueType::Scalar) && op.is_set_operator() {
            return Err(self.err(
                b.span,
                format!(
                    "set operator {} not allowed in binary scalar expression",
                    go_quote(op.as_str())
                ),
            ));
        }
        Ok(())
    }
}
