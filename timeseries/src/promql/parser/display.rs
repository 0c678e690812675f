//! Printing trees back as PromQL. The text re-parses to the same tree (spans aside):
//! parentheses are printed where the tree has [`Expr::Paren`] nodes, and added only
//! where a hand-built tree would otherwise read back differently (for example a
//! binary expression as the operand of a unary minus).

use std::fmt::{self, Display, Formatter, Write};

use super::ast::*;
use super::parse::{is_label_name, is_metric_name};

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        super::with_stack(|| fmt_expr(self, f))
    }
}

fn fmt_expr(e: &Expr, f: &mut Formatter<'_>) -> fmt::Result {
    {
        match e {
            Expr::Aggregate(a) => {
                f.write_str(a.op.name())?;
                match &a.modifier {
                    Some(LabelModifier::Include(l)) => write!(f, " by ({}) ", Labels(l))?,
                    Some(LabelModifier::Exclude(l)) => write!(f, " without ({}) ", Labels(l))?,
                    None => {}
                }
                f.write_char('(')?;
                if let Some(p) = &a.param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{})", a.expr)
            }
            Expr::Unary(u) => {
                f.write_str(match u.op {
                    UnaryOp::Neg => "-",
                    UnaryOp::Plus => "+",
                })?;
                let wrap = match &*u.expr {
                    Expr::Binary(b) => b.op.precedence() < BinaryOp::Pow.precedence(),
                    _ => false,
                };
                Wrapped(&u.expr, wrap).fmt(f)
            }
            Expr::Binary(b) => fmt_binary(b, f),
            Expr::Paren(p) => write!(f, "({})", p.expr),
            Expr::Subquery(s) => {
                Wrapped(&s.expr, needs_parens_before_postfix(&s.expr)).fmt(f)?;
                write!(f, "[{}:", s.range)?;
                if let Some(step) = &s.step {
                    write!(f, "{step}")?;
                }
                f.write_char(']')?;
                fmt_modifiers(f, s.offset.as_ref(), s.at.as_ref(), false, false)
            }
            Expr::NumberLiteral(n) => f.write_str(&format_number(n.val)),
            Expr::StringLiteral(s) => f.write_str(&go_quote_full(&s.val)),
            Expr::VectorSelector(vs) => {
                fmt_selector(f, vs)?;
                fmt_modifiers(
                    f,
                    vs.offset.as_ref(),
                    vs.at.as_ref(),
                    vs.anchored,
                    vs.smoothed,
                )
            }
            Expr::MatrixSelector(ms) => {
                fmt_selector(f, &ms.vs)?;
                write!(f, "[{}]", ms.range)?;
                fmt_modifiers(
                    f,
                    ms.vs.offset.as_ref(),
                    ms.vs.at.as_ref(),
                    ms.vs.anchored,
                    ms.vs.smoothed,
                )
            }
            Expr::Call(c) => {
                write!(f, "{}(", c.func.name)?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_char(')')
            }
        }
    }
}

/// Lines longer than this are split by [`Expr::pretty`] (upstream's limit).
pub const PRETTY_LINE_WIDTH: usize = 100;

impl Expr {
    /// The expression formatted over several lines as upstream's `format_query` does:
    /// a node whose one-line form is longer than [`PRETTY_LINE_WIDTH`] puts its
    /// children on their own lines, indented by two spaces per level (a binary
    /// operator on a line of its own between its operands). It reads back as the same
    /// tree.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        pretty(self, 0, &mut out);
        out
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn pretty(e: &Expr, level: usize, out: &mut String) {
    super::with_stack(|| pretty_inner(e, level, out));
}

fn pretty_inner(e: &Expr, level: usize, out: &mut String) {
    let one_line = e.to_string();
    let split = one_line.len() > PRETTY_LINE_WIDTH;
    match e {
        Expr::Aggregate(a) if split => {
            indent(out, level);
            out.push_str(a.op.name());
            match &a.modifier {
                Some(LabelModifier::Include(l)) => {
                    let _ = write!(out, " by ({}) ", Labels(l));
                }
                Some(LabelModifier::Exclude(l)) => {
                    let _ = write!(out, " without ({}) ", Labels(l));
                }
                None => {}
            }
            out.push_str("(\n");
            if let Some(p) = &a.param {
                pretty(p, level + 1, out);
                out.push_str(",\n");
            }
            pretty(&a.expr, level + 1, out);
            out.push('\n');
            indent(out, level);
            out.push(')');
        }
        Expr::Binary(b) if split && binary_children_unwrapped(b) => {
            pretty(&b.lhs, level + 1, out);
            out.push('\n');
            indent(out, level);
            // The operator and its modifiers, as the one-line form prints them.
            let mut op_line = String::new();
            let _ = fmt_binary_operator(b, &mut op_line);
            out.push_str(op_line.trim_start());
            out.push('\n');
            pretty(&b.rhs, level + 1, out);
        }
        Expr::Call(c) if split => {
            indent(out, level);
            out.push_str(c.func.name);
            out.push_str("(\n");
            for (i, a) in c.args.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                pretty(a, level + 1, out);
            }
            out.push('\n');
            indent(out, level);
            out.push(')');
        }
        Expr::Paren(p) if split => {
            indent(out, level);
            out.push_str("(\n");
            pretty(&p.expr, level + 1, out);
            out.push('\n');
            indent(out, level);
            out.push(')');
        }
        Expr::Subquery(s) if split && !needs_parens_before_postfix(&s.expr) => {
            pretty(&s.expr, level, out);
            let full = e.to_string();
            let inner = s.expr.to_string();
            out.push_str(&full[inner.len()..]);
        }
        Expr::Unary(u)
            if split
                && !matches!(&*u.expr, Expr::Binary(b) if b.op.precedence() < BinaryOp::Pow.precedence()) =>
        {
            indent(out, level);
            out.push_str(match u.op {
                UnaryOp::Neg => "-",
                UnaryOp::Plus => "+",
            });
            let mut child = String::new();
            pretty(&u.expr, level, &mut child);
            out.push_str(child.trim_start());
        }
        _ => {
            indent(out, level);
            out.push_str(&one_line);
        }
    }
}

/// Whether neither operand needs parentheses the tree does not have (else the
/// binary expression stays on one line).
fn binary_children_unwrapped(b: &BinaryExpr) -> bool {
    let (l, r) = operand_wraps(b);
    !l && !r
}

struct Wrapped<'a, T>(&'a T, bool);

impl<T: Display> Display for Wrapped<'_, T> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.1 {
            write!(f, "({})", self.0)
        } else {
            self.0.fmt(f)
        }
    }
}

struct Labels<'a>(&'a [String]);

impl Display for Labels<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, l) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(&label_name(l))?;
        }
        Ok(())
    }
}

fn label_name(l: &str) -> String {
    if is_label_name(l) {
        l.to_string()
    } else {
        go_quote_full(l)
    }
}

fn needs_parens_before_postfix(e: &Expr) -> bool {
    match e {
        Expr::Binary(_) | Expr::Unary(_) => true,
        Expr::NumberLiteral(n) => n.val.is_sign_negative() && !n.val.is_nan(),
        _ => false,
    }
}

/// Whether the left and right operands need parentheses to read back as such.
fn operand_wraps(b: &BinaryExpr) -> (bool, bool) {
    let prec = b.op.precedence();
    let lhs_wrap = match &*b.lhs {
        Expr::Binary(l) => {
            l.op.precedence() < prec || (l.op.precedence() == prec && b.op.is_right_associative())
        }
        Expr::Unary(_) => b.op == BinaryOp::Pow,
        Expr::NumberLiteral(n) => b.op == BinaryOp::Pow && n.val.is_sign_negative(),
        _ => false,
    };
    let rhs_wrap = match &*b.rhs {
        Expr::Binary(r) => {
            r.op.precedence() < prec || (r.op.precedence() == prec && !b.op.is_right_associative())
        }
        _ => false,
    };
    (lhs_wrap, rhs_wrap)
}

fn fmt_binary(b: &BinaryExpr, f: &mut Formatter<'_>) -> fmt::Result {
    let (lhs_wrap, rhs_wrap) = operand_wraps(b);
    write!(f, "{}", Wrapped(&*b.lhs, lhs_wrap))?;
    fmt_binary_operator(b, f)?;
    write!(f, " {}", Wrapped(&*b.rhs, rhs_wrap))
}

/// ` <op>[ bool][ on (..)|ignoring (..)][ group_x (..)][ fill..]`.
fn fmt_binary_operator(b: &BinaryExpr, f: &mut impl Write) -> fmt::Result {
    write!(f, " {}", b.op)?;
    if let Some(m) = &b.modifier {
        if m.return_bool {
            f.write_str(" bool")?;
        }
        match &m.matching {
            Some(LabelModifier::Include(l)) => write!(f, " on ({})", Labels(l))?,
            Some(LabelModifier::Exclude(l)) => write!(f, " ignoring ({})", Labels(l))?,
            None => {}
        }
        match &m.card {
            VectorMatchCardinality::ManyToOne(l) => write!(f, " group_left ({})", Labels(l))?,
            VectorMatchCardinality::OneToMany(l) => write!(f, " group_right ({})", Labels(l))?,
            VectorMatchCardinality::OneToOne | VectorMatchCardinality::ManyToMany => {}
        }
        match (m.fill.lhs, m.fill.rhs) {
            (Some(l), Some(r)) if l.to_bits() == r.to_bits() => {
                write!(f, " fill ({})", format_number(l))?
            }
            (l, r) => {
                if let Some(l) = l {
                    write!(f, " fill_left ({})", format_number(l))?;
                }
                if let Some(r) = r {
                    write!(f, " fill_right ({})", format_number(r))?;
                }
            }
        }
    }
    Ok(())
}

/// Words a bare metric name must not be, lest it read back as something else: the
/// keywords that cannot be metric names, and the words that are numbers. Other
/// keywords are safe because a printed selector is never followed by `(`.
const RESERVED_NAMES: &[&str] = &[
    "inf",
    "nan",
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "atan2",
];

fn fmt_selector(f: &mut Formatter<'_>, vs: &VectorSelector) -> fmt::Result {
    let mut quoted_name = None;
    if let Some(name) = &vs.name {
        let lower = name.to_ascii_lowercase();
        if is_metric_name(name) && !RESERVED_NAMES.contains(&lower.as_str()) {
            f.write_str(name)?;
        } else {
            quoted_name = Some(name);
        }
    }
    if vs.matchers.is_empty() && vs.or_matchers.is_empty() && quoted_name.is_none() {
        return Ok(());
    }
    f.write_char('{')?;
    let mut first = true;
    if let Some(n) = quoted_name {
        f.write_str(&go_quote_full(n))?;
        first = false;
    }
    let groups: &[Vec<Matcher>] = if vs.or_matchers.is_empty() {
        std::slice::from_ref(&vs.matchers)
    } else {
        &vs.or_matchers
    };
    for (g, group) in groups.iter().enumerate() {
        if g > 0 {
            f.write_str(" or ")?;
            first = true;
        }
        for m in group {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(
                f,
                "{}{}{}",
                label_name(&m.name),
                m.op,
                go_quote_full(&m.value)
            )?;
        }
    }
    f.write_char('}')
}

fn fmt_modifiers(
    f: &mut Formatter<'_>,
    offset: Option<&DurationExpr>,
    at: Option<&AtModifier>,
    anchored: bool,
    smoothed: bool,
) -> fmt::Result {
    if let Some(at) = at {
        match at {
            AtModifier::Start => f.write_str(" @ start()")?,
            AtModifier::End => f.write_str(" @ end()")?,
            AtModifier::Timestamp(ms) => write!(f, " @ {}", format_millis_as_seconds(*ms))?,
        }
    }
    if let Some(o) = offset {
        f.write_str(" offset ")?;
        // After `offset` only a primary (with an optional sign) reads back.
        match o {
            DurationExpr::Binary { .. } => write!(f, "({o})")?,
            DurationExpr::Unary { neg, expr, .. } if !is_duration_primary(expr) => {
                write!(f, "{}({expr})", if *neg { "-" } else { "+" })?
            }
            _ => write!(f, "{o}")?,
        }
    }
    if anchored {
        f.write_str(" anchored")?;
    }
    if smoothed {
        f.write_str(" smoothed")?;
    }
    Ok(())
}

fn is_duration_primary(d: &DurationExpr) -> bool {
    !matches!(d, DurationExpr::Binary { .. } | DurationExpr::Unary { .. })
}

impl Display for DurationExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        super::with_stack(|| fmt_duration(self, f))
    }
}

fn fmt_duration(d: &DurationExpr, f: &mut Formatter<'_>) -> fmt::Result {
    {
        match d {
            DurationExpr::Literal { ms, .. } => f.write_str(&format_duration(*ms)),
            DurationExpr::Number { secs, .. } => f.write_str(&format_number(*secs)),
            DurationExpr::Step { .. } => f.write_str("step()"),
            DurationExpr::Range { .. } => f.write_str("range()"),
            DurationExpr::MinMax { max, args, .. } => write!(
                f,
                "{}({}, {})",
                if *max { "max" } else { "min" },
                args[0],
                args[1]
            ),
            DurationExpr::Unary { neg, expr, .. } => {
                let wrap = matches!(&**expr, DurationExpr::Binary { op, .. }
                    if op.precedence() < BinaryOp::Pow.precedence());
                write!(
                    f,
                    "{}{}",
                    if *neg { "-" } else { "+" },
                    Wrapped(&**expr, wrap)
                )
            }
            DurationExpr::Binary { op, lhs, rhs, .. } => {
                let prec = op.precedence();
                let lhs_wrap = match &**lhs {
                    DurationExpr::Binary { op: l, .. } => {
                        l.precedence() < prec
                            || (l.precedence() == prec && op.is_right_associative())
                    }
                    DurationExpr::Unary { .. } => *op == BinaryOp::Pow,
                    _ => false,
                };
                let rhs_wrap = match &**rhs {
                    DurationExpr::Binary { op: r, .. } => {
                        r.precedence() < prec
                            || (r.precedence() == prec && !op.is_right_associative())
                    }
                    _ => false,
                };
                write!(
                    f,
                    "{} {op} {}",
                    Wrapped(&**lhs, lhs_wrap),
                    Wrapped(&**rhs, rhs_wrap)
                )
            }
            DurationExpr::Paren { expr, .. } => write!(f, "({expr})"),
        }
    }
}

/// A number as PromQL reads it back exactly: `Inf`, `-Inf`, `NaN`, the shortest
/// decimal that round-trips, with an exponent for very large or small magnitudes.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Inf".into() } else { "-Inf".into() }
    } else if v != 0.0 && (v.abs() >= 1e21 || v.abs() < 1e-6) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A duration in Prometheus's notation (`1h30m`, `5m`, `0s`, `-1d`).
pub fn format_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
    }
    let mut rest = ms.unsigned_abs();
    for (unit, size) in [
        ("y", 365 * 24 * 3_600_000u64),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

fn format_millis_as_seconds(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    if abs.is_multiple_of(1000) {
        format!("{sign}{}", abs / 1000)
    } else {
        let frac = format!("{:03}", abs % 1000);
        format!("{sign}{}.{}", abs / 1000, frac.trim_end_matches('0'))
    }
}

/// A string in double quotes with Go's `strconv.Quote` escaping.
fn go_quote_full(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_format_durations_like_prometheus() {
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(31_536_000_000 + 1), "1y1ms");
        assert_eq!(format_duration(-60_000), "-1m");
        assert!(format_duration(i64::MIN).starts_with("-292471208y"));
    }

    #[test]
    fn should_format_numbers_that_read_back() {
        assert_eq!(format_number(1.0), "1");
        assert_eq!(format_number(-0.5), "-0.5");
        assert_eq!(format_number(1e21), "1e21");
        assert_eq!(format_number(1.5e-7), "1.5e-7");
        assert_eq!(format_number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_millis_as_seconds(100_500), "100.5");
        assert_eq!(format_millis_as_seconds(-1), "-0.001");
    }
}
