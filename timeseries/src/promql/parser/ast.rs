//! The syntax tree. Every expression node carries the byte [`Span`] of the query text
//! it was parsed from. Spans take part in equality: compare trees with spans stripped
//! ([`Expr::strip_spans`]) when only the structure matters.

use super::functions::Function;

/// A byte range `start..end` of the query text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Span {
    /// The first byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span `start..end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// The type an expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// A single number.
    Scalar,
    /// An instant vector: a set of series with one sample each.
    Vector,
    /// A range vector: a set of series with a range of samples each.
    Matrix,
    /// A string.
    String,
}

impl ValueType {
    /// Prometheus's documented name of the type (`"instant vector"`, ...), as its
    /// error messages use it.
    pub fn documented_name(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            ValueType::String => "string",
        }
    }
}

impl ValueType {
    /// Upstream's name of the type (`"vector"`, `"matrix"`, ...), as its API's
    /// `parse_query` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Scalar => "scalar",
            ValueType::Vector => "vector",
            ValueType::Matrix => "matrix",
            ValueType::String => "string",
        }
    }
}

/// Upstream's name ([`ValueType::as_str`]).
impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A PromQL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `sum by (job) (x)`, `topk(3, x)`, ...
    Aggregate(AggregateExpr),
    /// `-x`, `+x` (a sign directly before a number literal is folded into it).
    Unary(UnaryExpr),
    /// `a + b`, `a and on(x) b`, ...
    Binary(BinaryExpr),
    /// `(x)`.
    Paren(ParenExpr),
    /// `x[5m:1m]`.
    Subquery(SubqueryExpr),
    /// `1`, `-2.5e3`, `0x1f`, `Inf`, `NaN`, `1h` (3600).
    NumberLiteral(NumberLiteral),
    /// `"text"`, `'text'`, `` `raw` ``.
    StringLiteral(StringLiteral),
    /// `foo{bar="baz"} offset 5m @ 100`.
    VectorSelector(VectorSelector),
    /// `foo[5m]`.
    MatrixSelector(MatrixSelector),
    /// `rate(x[5m])`.
    Call(Call),
}

/// An aggregation.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateExpr {
    /// The operator.
    pub op: AggregateOp,
    /// The aggregated expression (an instant vector).
    pub expr: Box<Expr>,
    /// The parameter of `topk`, `bottomk`, `quantile`, `count_values`, `limitk` and
    /// `limit_ratio`.
    pub param: Option<Box<Expr>>,
    /// `by (...)` ([`LabelModifier::Include`]) or `without (...)`
    /// ([`LabelModifier::Exclude`]).
    pub modifier: Option<LabelModifier>,
    /// The whole expression.
    pub span: Span,
}

/// An aggregation operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateOp {
    /// `sum`
    Sum,
    /// `avg`
    Avg,
    /// `count`
    Count,
    /// `min`
    Min,
    /// `max`
    Max,
    /// `group`
    Group,
    /// `stddev`
    Stddev,
    /// `stdvar`
    Stdvar,
    /// `topk`
    Topk,
    /// `bottomk`
    Bottomk,
    /// `quantile`
    Quantile,
    /// `count_values`
    CountValues,
    /// `limitk` (experimental)
    Limitk,
    /// `limit_ratio` (experimental)
    LimitRatio,
}

impl AggregateOp {
    /// Every operator.
    pub const ALL: [AggregateOp; 14] = [
        AggregateOp::Sum,
        AggregateOp::Avg,
        AggregateOp::Count,
        AggregateOp::Min,
        AggregateOp::Max,
        AggregateOp::Group,
        AggregateOp::Stddev,
        AggregateOp::Stdvar,
        AggregateOp::Topk,
        AggregateOp::Bottomk,
        AggregateOp::Quantile,
        AggregateOp::CountValues,
        AggregateOp::Limitk,
        AggregateOp::LimitRatio,
    ];

    /// The operator's keyword.
    pub fn name(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Count => "count",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::Topk => "topk",
            AggregateOp::Bottomk => "bottomk",
            AggregateOp::Quantile => "quantile",
            AggregateOp::CountValues => "count_values",
            AggregateOp::Limitk => "limitk",
            AggregateOp::LimitRatio => "limit_ratio",
        }
    }

    /// The operator with this keyword (case-insensitive, as upstream's lexer).
    pub fn from_name(name: &str) -> Option<AggregateOp> {
        AggregateOp::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(name))
    }

    /// Whether the operator takes a parameter before the expression.
    pub fn has_param(self) -> bool {
        matches!(
            self,
            AggregateOp::Topk
                | AggregateOp::Bottomk
                | AggregateOp::Quantile
                | AggregateOp::CountValues
                | AggregateOp::Limitk
                | AggregateOp::LimitRatio
        )
    }

    /// Whether the operator is experimental (`promql-experimental-functions`).
    pub fn is_experimental(self) -> bool {
        matches!(self, AggregateOp::Limitk | AggregateOp::LimitRatio)
    }
}

impl std::fmt::Display for AggregateOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A label list of an aggregation (`by`/`without`) or of vector matching
/// (`on`/`ignoring`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelModifier {
    /// `by (...)` or `on (...)`.
    Include(Vec<String>),
    /// `without (...)` or `ignoring (...)`.
    Exclude(Vec<String>),
}

impl LabelModifier {
    /// The labels listed.
    pub fn labels(&self) -> &[String] {
        match self {
            LabelModifier::Include(l) | LabelModifier::Exclude(l) => l,
        }
    }

    /// Whether it is `by`/`on`.
    pub fn is_include(&self) -> bool {
        matches!(self, LabelModifier::Include(_))
    }
}

/// A unary expression.
#[derive(Debug, Clone, PartialEq)]
pub struct UnaryExpr {
    /// `-` or `+`.
    pub op: UnaryOp,
    /// The operand (a scalar or an instant vector).
    pub expr: Box<Expr>,
    /// The whole expression.
    pub span: Span,
}

/// A unary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `-`
    Neg,
    /// `+` (the identity)
    Plus,
}

/// A binary operator expression.
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryExpr {
    /// The operator.
    pub op: BinaryOp,
    /// The left operand.
    pub lhs: Box<Expr>,
    /// The right operand.
    pub rhs: Box<Expr>,
    /// `bool`, `on`/`ignoring`, `group_left`/`group_right` and `fill` modifiers, when
    /// any was written.
    pub modifier: Option<BinModifier>,
    /// The whole expression.
    pub span: Span,
}

impl BinaryExpr {
    /// Whether `bool` was given.
    pub fn return_bool(&self) -> bool {
        self.modifier.as_ref().is_some_and(|m| m.return_bool)
    }
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `^`
    Pow,
    /// `atan2`
    Atan2,
    /// `==`
    Eql,
    /// `!=`
    Neq,
    /// `>`
    Gtr,
    /// `<`
    Lss,
    /// `>=`
    Gte,
    /// `<=`
    Lte,
    /// `</`: trims a native histogram's observations above the right side.
    TrimUpper,
    /// `>/`: trims a native histogram's observations below the right side.
    TrimLower,
    /// `and`
    And,
    /// `or`
    Or,
    /// `unless`
    Unless,
}

impl BinaryOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Eql => "==",
            BinaryOp::Neq => "!=",
            BinaryOp::Gtr => ">",
            BinaryOp::Lss => "<",
            BinaryOp::Gte => ">=",
            BinaryOp::Lte => "<=",
            BinaryOp::TrimUpper => "</",
            BinaryOp::TrimLower => ">/",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Unless => "unless",
        }
    }

    /// Binding strength: `or` 1, `and`/`unless` 2, comparisons and `</ >/` 3, `+ -` 4,
    /// `* / % atan2` 5, `^` 6.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And | BinaryOp::Unless => 2,
            BinaryOp::Eql
            | BinaryOp::Neq
            | BinaryOp::Gtr
            | BinaryOp::Lss
            | BinaryOp::Gte
            | BinaryOp::Lte
            | BinaryOp::TrimUpper
            | BinaryOp::TrimLower => 3,
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod | BinaryOp::Atan2 => 5,
            BinaryOp::Pow => 6,
        }
    }

    /// Whether the operator groups to the right (only `^`).
    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }

    /// `== != > < >= <=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eql
                | BinaryOp::Neq
                | BinaryOp::Gtr
                | BinaryOp::Lss
                | BinaryOp::Gte
                | BinaryOp::Lte
        )
    }

    /// `and or unless`.
    pub fn is_set_operator(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }
}

impl std::fmt::Display for BinaryOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The modifiers of a binary operator.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BinModifier {
    /// The matching cardinality: `group_left`/`group_right` with their extra labels;
    /// always [`VectorMatchCardinality::ManyToMany`] for set operators.
    pub card: VectorMatchCardinality,
    /// `on (...)` or `ignoring (...)`.
    pub matching: Option<LabelModifier>,
    /// `bool`.
    pub return_bool: bool,
    /// `fill`, `fill_left`, `fill_right` (experimental).
    pub fill: FillValues,
}

/// The cardinality of vector matching.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum VectorMatchCardinality {
    /// No grouping.
    #[default]
    OneToOne,
    /// `group_left (labels)`.
    ManyToOne(Vec<String>),
    /// `group_right (labels)`.
    OneToMany(Vec<String>),
    /// Set operators.
    ManyToMany,
}

/// The values filled in for a missing match on either side (`fill(v)` sets both).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FillValues {
    /// `fill_left(v)`: the value used when the left side has no match.
    pub lhs: Option<f64>,
    /// `fill_right(v)`: the value used when the right side has no match.
    pub rhs: Option<f64>,
}

impl FillValues {
    /// Whether no fill was given.
    pub fn is_empty(&self) -> bool {
        self.lhs.is_none() && self.rhs.is_none()
    }
}

/// A parenthesized expression.
#[derive(Debug, Clone, PartialEq)]
pub struct ParenExpr {
    /// The inner expression.
    pub expr: Box<Expr>,
    /// From `(` to `)`.
    pub span: Span,
}

/// A subquery `expr[range:step]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubqueryExpr {
    /// The inner expression (an instant vector).
    pub expr: Box<Expr>,
    /// The range.
    pub range: DurationExpr,
    /// The step; `None` for `[5m:]` (the default evaluation interval).
    pub step: Option<DurationExpr>,
    /// `offset`.
    pub offset: Option<DurationExpr>,
    /// `@`.
    pub at: Option<AtModifier>,
    /// The whole expression.
    pub span: Span,
}

/// A number.
#[derive(Debug, Clone, PartialEq)]
pub struct NumberLiteral {
    /// The value.
    pub val: f64,
    /// The literal (with its folded sign).
    pub span: Span,
}

/// A string.
#[derive(Debug, Clone, PartialEq)]
pub struct StringLiteral {
    /// The unquoted value.
    pub val: String,
    /// The literal with its quotes.
    pub span: Span,
}

/// An instant vector selector.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSelector {
    /// The metric name written before the braces, or as a lone quoted string inside
    /// them (`{"my.metric"}`). It is not repeated in `matchers`.
    pub name: Option<String>,
    /// The label matchers (an explicit `__name__` matcher stays here).
    pub matchers: Vec<Matcher>,
    /// With [`ParserOptions::or_matchers`](super::ParserOptions::or_matchers), the
    /// alternatives of `{a="1" or b="2"}` (then `matchers` is empty): a series matches
    /// when it matches any one group. Not upstream PromQL.
    pub or_matchers: Vec<Vec<Matcher>>,
    /// `offset`.
    pub offset: Option<DurationExpr>,
    /// `@`.
    pub at: Option<AtModifier>,
    /// `anchored` (experimental; range selectors only).
    pub anchored: bool,
    /// `smoothed` (experimental).
    pub smoothed: bool,
    /// The selector with its modifiers.
    pub span: Span,
}

/// A label matcher.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Matcher {
    /// The operator.
    pub op: MatchOp,
    /// The label name.
    pub name: String,
    /// The value or regular expression.
    pub value: String,
}

impl Matcher {
    /// Whether the matcher matches a missing label (the empty value). Regular
    /// expressions are anchored at both ends.
    pub fn matches_empty(&self) -> bool {
        match self.op {
            MatchOp::Equal => self.value.is_empty(),
            MatchOp::NotEqual => !self.value.is_empty(),
            MatchOp::Re => regex_matches_empty(&self.value),
            MatchOp::NotRe => !regex_matches_empty(&self.value),
        }
    }
}

fn regex_matches_empty(re: &str) -> bool {
    regex::RegexBuilder::new(&format!("^(?s:{re})$"))
        .size_limit(1 << 22)
        .build()
        .is_ok_and(|r| r.is_match(""))
}

/// A label matching operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

impl MatchOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

impl std::fmt::Display for MatchOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A range vector selector `selector[range]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixSelector {
    /// The selector; its `offset`, `@`, `anchored` and `smoothed` are the range
    /// selector's (they are written after the range).
    pub vs: VectorSelector,
    /// The range.
    pub range: DurationExpr,
    /// The whole expression.
    pub span: Span,
}

/// A function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The function.
    pub func: &'static Function,
    /// The arguments.
    pub args: Vec<Expr>,
    /// From the name to `)`.
    pub span: Span,
}

/// The `@` modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AtModifier {
    /// `@ start()`
    Start,
    /// `@ end()`
    End,
    /// `@ <seconds>`, held in milliseconds since the epoch.
    Timestamp(i64),
}

/// A duration: a literal, or (with `promql-duration-expr`) arithmetic over literals,
/// numbers of seconds, `step()`, `range()`, `min(a, b)` and `max(a, b)`.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationExpr {
    /// A duration literal such as `1h30m`, in milliseconds.
    Literal {
        /// Milliseconds.
        ms: i64,
        /// The literal.
        span: Span,
    },
    /// A number of seconds such as `300` or `1.5`.
    Number {
        /// Seconds.
        secs: f64,
        /// The literal.
        span: Span,
    },
    /// `step()`: the query's step.
    Step {
        /// `step()`.
        span: Span,
    },
    /// `range()`: the query's range (end - start).
    Range {
        /// `range()`.
        span: Span,
    },
    /// `min(a, b)` or `max(a, b)`.
    MinMax {
        /// `max` rather than `min`.
        max: bool,
        /// The two arguments.
        args: Box<[DurationExpr; 2]>,
        /// From the name to `)`.
        span: Span,
    },
    /// `-d` or `+d`.
    Unary {
        /// `-` rather than `+`.
        neg: bool,
        /// The operand.
        expr: Box<DurationExpr>,
        /// The whole expression.
        span: Span,
    },
    /// `a + b`, `a - b`, `a * b`, `a / b`, `a % b`, `a ^ b`.
    Binary {
        /// One of `+ - * / % ^`.
        op: BinaryOp,
        /// The left operand.
        lhs: Box<DurationExpr>,
        /// The right operand.
        rhs: Box<DurationExpr>,
        /// The whole expression.
        span: Span,
    },
    /// `(d)`.
    Paren {
        /// The inner expression.
        expr: Box<DurationExpr>,
        /// From `(` to `)`.
        span: Span,
    },
}

impl DurationExpr {
    /// A literal of `ms` milliseconds without a span.
    pub fn millis(ms: i64) -> DurationExpr {
        DurationExpr::Literal {
            ms,
            span: Span::default(),
        }
    }

    /// The expression's span.
    pub fn span(&self) -> Span {
        match self {
            DurationExpr::Literal { span, .. }
            | DurationExpr::Number { span, .. }
            | DurationExpr::Step { span }
            | DurationExpr::Range { span }
            | DurationExpr::MinMax { span, .. }
            | DurationExpr::Unary { span, .. }
            | DurationExpr::Binary { span, .. }
            | DurationExpr::Paren { span, .. } => *span,
        }
    }

    /// Whether `step()` or `range()` occurs (the value then depends on the query).
    pub fn is_dynamic(&self) -> bool {
        match self {
            DurationExpr::Literal { .. } | DurationExpr::Number { .. } => false,
            DurationExpr::Step { .. } | DurationExpr::Range { .. } => true,
            DurationExpr::MinMax { args, .. } => args[0].is_dynamic() || args[1].is_dynamic(),
            DurationExpr::Unary { expr, .. } | DurationExpr::Paren { expr, .. } => {
                expr.is_dynamic()
            }
            DurationExpr::Binary { lhs, rhs, .. } => lhs.is_dynamic() || rhs.is_dynamic(),
        }
    }

    /// The value in milliseconds, with `step()` and `range()` given (both in
    /// milliseconds). Arithmetic is done in seconds as floats, like upstream; the
    /// result must be finite and fit in a Go duration.
    pub fn eval_ms(&self, step_ms: i64, range_ms: i64) -> Result<i64, String> {
        let secs = self.eval_secs(step_ms, range_ms)?;
        let ms = (secs * 1000.0).round();
        if !ms.is_finite() || ms.abs() > MAX_DURATION_MS as f64 {
            return Err(format!(
                "duration out of range: {}s",
                super::display::format_number(secs)
            ));
        }
        Ok(ms as i64)
    }

    /// The value in milliseconds when it does not depend on the query (no `step()`
    /// or `range()`).
    pub fn constant_ms(&self) -> Option<i64> {
        if self.is_dynamic() {
            None
        } else {
            self.eval_ms(0, 0).ok()
        }
    }

    fn eval_secs(&self, step_ms: i64, range_ms: i64) -> Result<f64, String> {
        Ok(match self {
            DurationExpr::Literal { ms, .. } => *ms as f64 / 1000.0,
            DurationExpr::Number { secs, .. } => *secs,
            DurationExpr::Step { .. } => step_ms as f64 / 1000.0,
            DurationExpr::Range { .. } => range_ms as f64 / 1000.0,
            DurationExpr::MinMax { max, args, .. } => {
                let a = args[0].eval_secs(step_ms, range_ms)?;
                let b = args[1].eval_secs(step_ms, range_ms)?;
                if *max { a.max(b) } else { a.min(b) }
            }
            DurationExpr::Unary { neg, expr, .. } => {
                let v = expr.eval_secs(step_ms, range_ms)?;
                if *neg { -v } else { v }
            }
            DurationExpr::Paren { expr, .. } => expr.eval_secs(step_ms, range_ms)?,
            DurationExpr::Binary { op, lhs, rhs, .. } => {
                let a = lhs.eval_secs(step_ms, range_ms)?;
                let b = rhs.eval_secs(step_ms, range_ms)?;
                match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Sub => a - b,
                    BinaryOp::Mul => a * b,
                    BinaryOp::Div => {
                        if b == 0.0 {
                            return Err("division by zero".into());
                        }
                        a / b
                    }
                    BinaryOp::Mod => {
                        if b == 0.0 {
                            return Err("modulo by zero".into());
                        }
                        a % b
                    }
                    BinaryOp::Pow => a.powf(b),
                    other => return Err(format!("unexpected operator {other} in duration")),
                }
            }
        })
    }
}

/// The longest duration, in milliseconds: what a Go `time.Duration` holds.
pub const MAX_DURATION_MS: i64 = i64::MAX / 1_000_000;

impl Expr {
    /// The expression's span.
    pub fn span(&self) -> Span {
        match self {
            Expr::Aggregate(e) => e.span,
            Expr::Unary(e) => e.span,
            Expr::Binary(e) => e.span,
            Expr::Paren(e) => e.span,
            Expr::Subquery(e) => e.span,
            Expr::NumberLiteral(e) => e.span,
            Expr::StringLiteral(e) => e.span,
            Expr::VectorSelector(e) => e.span,
            Expr::MatrixSelector(e) => e.span,
            Expr::Call(e) => e.span,
        }
    }

    /// The type the expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        // Recursive through operators and parentheses: as deep as the tree.
        super::with_stack(|| self.value_type_inner())
    }

    fn value_type_inner(&self) -> ValueType {
        match self {
            Expr::Aggregate(_) | Expr::VectorSelector(_) => ValueType::Vector,
            Expr::Unary(u) => u.expr.value_type(),
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar
                    && b.rhs.value_type() == ValueType::Scalar
                {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Paren(p) => p.expr.value_type(),
            Expr::Subquery(_) | Expr::MatrixSelector(_) => ValueType::Matrix,
            Expr::NumberLiteral(_) => ValueType::Scalar,
            Expr::StringLiteral(_) => ValueType::String,
            Expr::Call(c) => c.func.return_type,
        }
    }

    /// The direct sub-expressions, in source order (an aggregation's parameter before
    /// its expression).
    pub fn children(&self) -> Vec<&Expr> {
        match self {
            Expr::Aggregate(a) => a.param.iter().map(|p| &**p).chain([&*a.expr]).collect(),
            Expr::Unary(u) => vec![&*u.expr],
            Expr::Binary(b) => vec![&*b.lhs, &*b.rhs],
            Expr::Paren(p) => vec![&*p.expr],
            Expr::Subquery(s) => vec![&*s.expr],
            Expr::Call(c) => c.args.iter().collect(),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_) => Vec::new(),
        }
    }

    /// Visits the tree depth-first, parents before children; `visit` returning false
    /// skips a node's children.
    pub fn walk(&self, visit: &mut impl FnMut(&Expr) -> bool) {
        super::with_stack(|| {
            if visit(self) {
                for c in self.children() {
                    c.walk(visit);
                }
            }
        })
    }

    /// The same tree with every span set to `0..0`, for comparing structure.
    pub fn strip_spans(mut self) -> Expr {
        self.clear_spans();
        self
    }

    fn clear_spans(&mut self) {
        super::with_stack(|| self.clear_spans_inner())
    }

    fn clear_spans_inner(&mut self) {
        fn dur(d: &mut DurationExpr) {
            match d {
                DurationExpr::Literal { span, .. }
                | DurationExpr::Number { span, .. }
                | DurationExpr::Step { span }
                | DurationExpr::Range { span } => *span = Span::default(),
                DurationExpr::MinMax { args, span, .. } => {
                    *span = Span::default();
                    args.iter_mut().for_each(dur);
                }
                DurationExpr::Unary { expr, span, .. } | DurationExpr::Paren { expr, span } => {
                    *span = Span::default();
                    dur(expr);
                }
                DurationExpr::Binary { lhs, rhs, span, .. } => {
                    *span = Span::default();
                    dur(lhs);
                    dur(rhs);
                }
            }
        }
        fn vs(v: &mut VectorSelector) {
            v.span = Span::default();
            if let Some(o) = &mut v.offset {
                dur(o);
            }
        }
        match self {
            Expr::Aggregate(e) => {
                e.span = Span::default();
                e.expr.clear_spans();
                if let Some(p) = &mut e.param {
                    p.clear_spans();
                }
            }
            Expr::Unary(e) => {
                e.span = Span::default();
                e.expr.clear_spans();
            }
            Expr::Binary(e) => {
                e.span = Span::default();
                e.lhs.clear_spans();
                e.rhs.clear_spans();
            }
            Expr::Paren(e) => {
                e.span = Span::default();
                e.expr.clear_spans();
            }
            Expr::Subquery(e) => {
                e.span = Span::default();
                e.expr.clear_spans();
                dur(&mut e.range);
                if let Some(s) = &mut e.step {
                    dur(s);
                }
                if let Some(o) = &mut e.offset {
                    dur(o);
                }
            }
            Expr::NumberLiteral(e) => e.span = Span::default(),
            Expr::StringLiteral(e) => e.span = Span::default(),
            Expr::VectorSelector(e) => vs(e),
            Expr::MatrixSelector(e) => {
                e.span = Span::default();
                vs(&mut e.vs);
                dur(&mut e.range);
            }
            Expr::Call(e) => {
                e.span = Span::default();
                e.args.iter_mut().for_each(Expr::clear_spans);
            }
        }
    }
}
