//! The parser: a precedence-climbing recursive descent over the lexer's tokens.
//!
//! Binary operators bind, loosest first: `or`; `and unless`; comparisons; `+ -`;
//! `* / % atan2`; `^` (to the right). A leading `-`/`+` binds tighter than `*` but
//! looser than `^` (`-a^b` is `-(a^b)`), and folds into a number literal directly
//! after it. Postfix modifiers (`[range]`, `[range:step]`, `offset`, `@`, `anchored`,
//! `smoothed`) bind tightest. Keywords are words whose meaning depends on where they
//! stand: `sum` is an aggregation before `(`/`by`/`without` and a metric name
//! elsewhere. Types are checked afterwards ([`super::check`]).

use super::ast::*;
use super::error::ParseError;
use super::functions::get_function;
use super::lexer::{Tok, Token, go_quote, lex};
use super::{Features, ParserOptions};

/// Words that are keywords somewhere (for messages: upstream shows them as `<by>`).
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "start",
    "end",
    "step",
    "range",
    "anchored",
    "smoothed",
    "fill",
    "fill_left",
    "fill_right",
];

/// Keywords that cannot stand as a metric name (upstream's `metric_identifier` does
/// not list them); every other word can.
const NOT_METRIC_NAMES: &[&str] = &[
    "bool",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "atan2",
];

#[derive(Clone, Copy, PartialEq)]
enum Open {
    Paren,
    Bracket,
    Brace,
}

pub(crate) struct Parser<'a> {
    input: &'a str,
    toks: Vec<Token>,
    pos: usize,
    features: Features,
    max_depth: usize,
    or_matchers: bool,
    depth: usize,
    open: Vec<Open>,
}

type PResult<T> = Result<T, Box<ParseError>>;

/// Parsing returns boxed nodes: small stack frames on the recursive path.
type BExpr = Box<Expr>;

impl<'a> Parser<'a> {
    pub(crate) fn new(input: &'a str, options: &ParserOptions) -> PResult<Parser<'a>> {
        Ok(Parser {
            input,
            toks: lex(input)?,
            pos: 0,
            features: options.features,
            max_depth: options.max_depth,
            or_matchers: options.or_matchers,
            depth: 0,
            open: Vec::new(),
        })
    }

    /// The whole input as one expression.
    pub(crate) fn parse_query(&mut self) -> PResult<BExpr> {
        if self.peek().tok == Tok::Eof {
            return Err(self.error_at(self.peek().span, "no expression found in input".into()));
        }
        let e = self.parse_expr(0)?;
        if self.peek().tok != Tok::Eof {
            return Err(self.unexpected(None, None));
        }
        Ok(e)
    }

    // -----------------------------------------------------------------------------
    // Tokens
    // -----------------------------------------------------------------------------

    fn peek(&self) -> &Token {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.toks[(self.pos + n).min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        match t.tok {
            Tok::LParen => self.open.push(Open::Paren),
            Tok::LBracket => self.open.push(Open::Bracket),
            Tok::LBrace => self.open.push(Open::Brace),
            Tok::RParen | Tok::RBracket | Tok::RBrace => {
                self.open.pop();
            }
            _ => {}
        }
        t
    }

    fn text(&self, t: &Token) -> &'a str {
        &self.input[t.span.start..t.span.end]
    }

    /// Whether the next token is the word `w` (keywords are case-insensitive).
    fn at_word(&self, w: &str) -> bool {
        self.word_at(0, w)
    }

    fn word_at(&self, n: usize, w: &str) -> bool {
        let t = self.peek_at(n);
        t.tok == Tok::Ident && self.text(t).eq_ignore_ascii_case(w)
    }

    fn expect(&mut self, tok: Tok, ctx: Option<&str>, expected: &str) -> PResult<Token> {
        if self.peek().tok == tok {
            Ok(self.next())
        } else {
            Err(self.unexpected(ctx, Some(expected)))
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.error_at(
                self.peek().span,
                format!(
                    "the expression nests more than {} levels deep",
                    self.max_depth
                ),
            ));
        }
        Ok(())
    }

    fn leave(&mut self, n: usize) {
        self.depth -= n;
    }

    // -----------------------------------------------------------------------------
    // Errors
    // -----------------------------------------------------------------------------

    #[cold]
    #[inline(never)]
    fn error_at(&self, span: Span, message: String) -> Box<ParseError> {
        Box::new(ParseError::at(self.input, span, message))
    }

    fn describe(&self, t: &Token) -> String {
        let text = self.text(t);
        match &t.tok {
            Tok::Eof => "end of input".into(),
            Tok::Ident => {
                let lower = text.to_ascii_lowercase();
                if AggregateOp::from_name(text).is_some() {
                    format!("<aggr:{text}>")
                } else if matches!(lower.as_str(), "and" | "or" | "unless" | "atan2") {
                    format!("<op:{text}>")
                } else if KEYWORDS.contains(&lower.as_str()) {
                    format!("<{text}>")
                } else {
                    format!("identifier {}", go_quote(text))
                }
            }
            Tok::Number(_) => format!("number {}", go_quote(text)),
            Tok::Duration(_) => format!("duration {}", go_quote(text)),
            Tok::Str(s) => format!("string {}", go_quote(s)),
            Tok::Add
            | Tok::Sub
            | Tok::Mul
            | Tok::Div
            | Tok::Mod
            | Tok::Pow
            | Tok::Eqlc
            | Tok::Neq
            | Tok::Gtr
            | Tok::Lss
            | Tok::Gte
            | Tok::Lte
            | Tok::TrimUpper
            | Tok::TrimLower
            | Tok::At
            | Tok::EqlRegex
            | Tok::NeqRegex => format!("<op:{text}>"),
            _ => go_quote(text),
        }
    }

    /// An error about the next token: `unexpected <token>[ in <ctx>][, expected <x>]`,
    /// or the lexer-style messages upstream gives for the end of input inside an open
    /// delimiter and for an unbalanced closing one.
    #[cold]
    #[inline(never)]
    fn unexpected(&self, ctx: Option<&str>, expected: Option<&str>) -> Box<ParseError> {
        let t = self.peek();
        let closing = |open: Open| match self.open.last() {
            Some(o) => *o != open,
            None => true,
        };
        let message = match t.tok {
            Tok::Eof => match self.open.last() {
                Some(Open::Paren) => "unclosed left parenthesis".to_string(),
                Some(Open::Bracket) => "unclosed left bracket".to_string(),
                Some(Open::Brace) => "unexpected end of input inside braces".to_string(),
                None => self.unexpected_message(t, ctx, expected),
            },
            Tok::RParen if closing(Open::Paren) => "unexpected right parenthesis ')'".into(),
            Tok::RBracket if closing(Open::Bracket) => "unexpected right bracket ']'".into(),
            Tok::RBrace if closing(Open::Brace) => "unexpected right brace '}'".into(),
            _ => self.unexpected_message(t, ctx, expected),
        };
        self.error_at(t.span, message)
    }

    fn unexpected_message(&self, t: &Token, ctx: Option<&str>, expected: Option<&str>) -> String {
        let mut m = format!("unexpected {}", self.describe(t));
        if let Some(c) = ctx {
            m.push_str(" in ");
            m.push_str(c);
        }
        if let Some(e) = expected {
            m.push_str(", expected ");
            m.push_str(e);
        }
        m
    }

    // -----------------------------------------------------------------------------
    // Expressions
    // -----------------------------------------------------------------------------

    fn peek_binary_op(&self) -> Option<BinaryOp> {
        let t = self.peek();
        Some(match t.tok {
            Tok::Add => BinaryOp::Add,
            Tok::Sub => BinaryOp::Sub,
            Tok::Mul => BinaryOp::Mul,
            Tok::Div => BinaryOp::Div,
            Tok::Mod => BinaryOp::Mod,
            Tok::Pow => BinaryOp::Pow,
            Tok::Eqlc => BinaryOp::Eql,
            Tok::Neq => BinaryOp::Neq,
            Tok::Gtr => BinaryOp::Gtr,
            Tok::Lss => BinaryOp::Lss,
            Tok::Gte => BinaryOp::Gte,
            Tok::Lte => BinaryOp::Lte,
            Tok::TrimUpper => BinaryOp::TrimUpper,
            Tok::TrimLower => BinaryOp::TrimLower,
            Tok::Ident => match self.text(t).to_ascii_lowercase().as_str() {
                "and" => BinaryOp::And,
                "or" => BinaryOp::Or,
                "unless" => BinaryOp::Unless,
                "atan2" => BinaryOp::Atan2,
                _ => return None,
            },
            _ => return None,
        })
    }

    /// An expression whose binary operators all bind at least `min_prec`.
    fn parse_expr(&mut self, min_prec: u8) -> PResult<BExpr> {
        super::with_stack(|| self.parse_expr_inner(min_prec))
    }

    fn parse_expr_inner(&mut self, min_prec: u8) -> PResult<BExpr> {
        self.enter()?;
        let mut lhs = self.parse_unary()?;
        let mut chained = 0;
        while let Some(op) = self.peek_binary_op() {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.next();
            let mut modifier = self.parse_bin_modifier()?;
            if op.is_set_operator()
                && let Some(m) = &mut modifier
                && m.card == VectorMatchCardinality::OneToOne
            {
                m.card = VectorMatchCardinality::ManyToMany;
            }
            let rhs = self.parse_expr(if op.is_right_associative() {
                prec
            } else {
                prec + 1
            })?;
            let span = lhs.span().to(rhs.span());
            lhs = Box::new(Expr::Binary(BinaryExpr {
                op,
                lhs,
                rhs,
                modifier,
                span,
            }));
            // A left-leaning chain deepens the tree without recursing here.
            chained += 1;
            self.enter()?;
        }
        self.leave(1 + chained);
        Ok(lhs)
    }

    fn parse_unary(&mut self) -> PResult<BExpr> {
        let neg = match self.peek().tok {
            Tok::Sub => true,
            Tok::Add => false,
            _ => {
                let e = self.parse_primary()?;
                return self.parse_postfix(e);
            }
        };
        let sign = self.next();
        // Binds looser than `^` only.
        let mut operand = self.parse_expr(BinaryOp::Pow.precedence())?;
        let span = sign.span.to(operand.span());
        if let Expr::NumberLiteral(n) = &mut *operand {
            if neg {
                n.val = -n.val;
            }
            n.span = span;
            return Ok(operand);
        }
        Ok(Box::new(Expr::Unary(UnaryExpr {
            op: if neg { UnaryOp::Neg } else { UnaryOp::Plus },
            expr: operand,
            span,
        })))
    }

    fn parse_primary(&mut self) -> PResult<BExpr> {
        let t = self.peek().clone();
        match &t.tok {
            Tok::Number(v) => {
                self.next();
                Ok(Box::new(Expr::NumberLiteral(NumberLiteral {
                    val: *v,
                    span: t.span,
                })))
            }
            Tok::Duration(ms) => {
                self.next();
                Ok(Box::new(Expr::NumberLiteral(NumberLiteral {
                    val: *ms as f64 / 1000.0,
                    span: t.span,
                })))
            }
            Tok::Str(s) => {
                self.next();
                Ok(Box::new(Expr::StringLiteral(StringLiteral {
                    val: s.clone(),
                    span: t.span,
                })))
            }
            Tok::LParen => {
                self.next();
                let inner = self.parse_expr(0)?;
                let close = self.expect(Tok::RParen, None, "\")\"")?;
                Ok(Box::new(Expr::Paren(ParenExpr {
                    expr: inner,
                    span: t.span.to(close.span),
                })))
            }
            Tok::LBrace => self.parse_selector(None, t.span),
            Tok::Ident => {
                let word = self.text(&t);
                if let Some(op) = AggregateOp::from_name(word)
                    && (self.peek_at(1).tok == Tok::LParen
                        || self.word_at(1, "by")
                        || self.word_at(1, "without"))
                {
                    return self.parse_aggregate(op);
                }
                if self.peek_at(1).tok == Tok::LParen {
                    return self.parse_call();
                }
                if NOT_METRIC_NAMES
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    return Err(self.unexpected(None, None));
                }
                self.next();
                self.parse_selector(Some(word.to_string()), t.span)
            }
            _ => Err(self.unexpected(None, None)),
        }
    }

    fn parse_postfix(&mut self, mut e: BExpr) -> PResult<BExpr> {
        let mut wrapped = 0;
        loop {
            if self.peek().tok == Tok::LBracket {
                e = self.parse_range(e)?;
                wrapped += 1;
                self.enter()?;
            } else if self.at_word("offset") {
                e = self.parse_offset(e)?;
            } else if self.peek().tok == Tok::At {
                e = self.parse_at(e)?;
            } else if self.at_word("anchored") || self.at_word("smoothed") {
                e = self.parse_range_modifier(e)?;
            } else {
                break;
            }
        }
        self.leave(wrapped);
        Ok(e)
    }

    fn parse_range(&mut self, e: BExpr) -> PResult<BExpr> {
        let open = self.next();
        if self.peek().tok == Tok::RBracket || self.peek().tok == Tok::Colon {
            return Err(self.unexpected(Some("subquery selector"), Some("duration")));
        }
        let range = self.parse_bracket_duration()?;
        match self.peek().tok {
            Tok::RBracket => {
                let close = self.next();
                let Expr::VectorSelector(vs) = *e else {
                    return Err(self.error_at(
                        open.span.to(close.span),
                        "ranges only allowed for vector selectors".into(),
                    ));
                };
                let problem = if vs.offset.is_some() {
                    Some("no offset modifiers allowed before range")
                } else if vs.at.is_some() {
                    Some("no @ modifiers allowed before range")
                } else if vs.anchored || vs.smoothed {
                    Some("no anchored or smoothed modifiers allowed before range")
                } else {
                    None
                };
                if let Some(p) = problem {
                    return Err(self.error_at(open.span.to(close.span), p.into()));
                }
                let span = vs.span.to(close.span);
                Ok(Box::new(Expr::MatrixSelector(MatrixSelector {
                    vs,
                    range,
                    span,
                })))
            }
            Tok::Colon => {
                self.next();
                let step = if self.peek().tok == Tok::RBracket {
                    None
                } else {
                    Some(self.parse_bracket_duration()?)
                };
                if self.peek().tok != Tok::RBracket {
                    let expected = if step.is_some() {
                        "\"]\""
                    } else {
                        "duration or \"]\""
                    };
                    return Err(self.unexpected(Some("subquery selector"), Some(expected)));
                }
                let close = self.next();
                let span = e.span().to(close.span);
                Ok(Box::new(Expr::Subquery(SubqueryExpr {
                    expr: e,
                    range,
                    step,
                    offset: None,
                    at: None,
                    span,
                })))
            }
            _ => Err(self.unexpected(Some("subquery or range"), Some("\":\" or \"]\""))),
        }
    }

    fn parse_offset(&mut self, mut e: BExpr) -> PResult<BExpr> {
        let kw = self.next();
        let d = self.parse_offset_duration()?;
        let end = d.span();
        let slot = match &mut *e {
            Expr::VectorSelector(vs) => &mut vs.offset,
            Expr::MatrixSelector(ms) => &mut ms.vs.offset,
            Expr::Subquery(sq) => &mut sq.offset,
            _ => {
                return Err(self.error_at(
                    kw.span,
                    "offset modifier must be preceded by an instant vector selector or range \
                     vector selector or a subquery"
                        .into(),
                ));
            }
        };
        if slot.is_some() {
            return Err(self.error_at(kw.span, "offset may not be set multiple times".into()));
        }
        *slot = Some(d);
        extend_span(&mut e, end);
        Ok(e)
    }

    fn parse_at(&mut self, mut e: BExpr) -> PResult<BExpr> {
        let at_tok = self.next();
        let t = self.peek().clone();
        let (at, end) = match t.tok {
            Tok::Ident if self.at_word("start") || self.at_word("end") => {
                let start = self.at_word("start");
                self.next();
                self.expect(Tok::LParen, Some("@"), "\"(\"")?;
                let close = self.expect(Tok::RParen, Some("@"), "\")\"")?;
                (
                    if start {
                        AtModifier::Start
                    } else {
                        AtModifier::End
                    },
                    close.span,
                )
            }
            Tok::Add | Tok::Sub | Tok::Number(_) | Tok::Duration(_) => {
                let neg = t.tok == Tok::Sub;
                if matches!(t.tok, Tok::Add | Tok::Sub) {
                    self.next();
                }
                let n = self.peek().clone();
                let secs = match n.tok {
                    Tok::Number(v) => v,
                    Tok::Duration(ms) => ms as f64 / 1000.0,
                    _ => return Err(self.unexpected(Some("@"), Some("timestamp"))),
                };
                self.next();
                let secs = if neg { -secs } else { secs };
                let ms = (secs * 1000.0).round();
                if !ms.is_finite() || ms >= i64::MAX as f64 || ms <= i64::MIN as f64 {
                    return Err(self.error_at(
                        t.span.to(n.span),
                        format!(
                            "timestamp out of bounds for @ modifier: {}",
                            go_float_f(secs)
                        ),
                    ));
                }
                (AtModifier::Timestamp(ms as i64), n.span)
            }
            _ => return Err(self.unexpected(Some("@"), Some("timestamp"))),
        };
        let slot = match &mut *e {
            Expr::VectorSelector(vs) => &mut vs.at,
            Expr::MatrixSelector(ms) => &mut ms.vs.at,
            Expr::Subquery(sq) => &mut sq.at,
            _ => {
                return Err(self.error_at(
                    at_tok.span,
                    "@ modifier must be preceded by an instant vector selector or range vector \
                     selector or a subquery"
                        .into(),
                ));
            }
        };
        if slot.is_some() {
            return Err(self.error_at(
                at_tok.span,
                "@ <timestamp> may not be set multiple times".into(),
            ));
        }
        *slot = Some(at);
        extend_span(&mut e, end);
        Ok(e)
    }

    fn parse_range_modifier(&mut self, mut e: BExpr) -> PResult<BExpr> {
        let kw = self.next();
        let anchored = self.text(&kw).eq_ignore_ascii_case("anchored");
        let name = if anchored { "anchored" } else { "smoothed" };
        if !self.features.extended_range_selectors {
            return Err(self.error_at(
                kw.span,
                format!(
                    "the {name} modifier is experimental and must be enabled with \
                     --enable-feature=promql-extended-range-selectors"
                ),
            ));
        }
        let vs = match &mut *e {
            Expr::MatrixSelector(ms) => &mut ms.vs,
            Expr::VectorSelector(vs) if !anchored => vs,
            Expr::VectorSelector(_) => {
                return Err(self.error_at(
                    kw.span,
                    "anchored modifier can only be used with range vector selectors".into(),
                ));
            }
            _ => {
                return Err(self.error_at(
                    kw.span,
                    format!("{name} modifier must be preceded by a vector selector"),
                ));
            }
        };
        if vs.anchored || vs.smoothed {
            let message = if vs.anchored == anchored {
                format!("{name} may not be set multiple times")
            } else {
                "anchored and smoothed modifiers cannot be used together".into()
            };
            return Err(self.error_at(kw.span, message));
        }
        if anchored {
            vs.anchored = true;
        } else {
            vs.smoothed = true;
        }
        extend_span(&mut e, kw.span);
        Ok(e)
    }

    // -----------------------------------------------------------------------------
    // Binary operator modifiers
    // -----------------------------------------------------------------------------

    fn parse_bin_modifier(&mut self) -> PResult<Option<BinModifier>> {
        let mut m = BinModifier::default();
        let mut any = false;
        if self.at_word("bool") {
            self.next();
            m.return_bool = true;
            any = true;
        }
        if self.at_word("on") || self.at_word("ignoring") {
            let on = self.at_word("on");
            self.next();
            let labels = self.parse_grouping_labels()?;
            m.matching = Some(if on {
                LabelModifier::Include(labels)
            } else {
                LabelModifier::Exclude(labels)
            });
            any = true;
            if self.at_word("group_left") || self.at_word("group_right") {
                let left = self.at_word("group_left");
                self.next();
                let labels = if self.peek().tok == Tok::LParen {
                    self.parse_grouping_labels()?
                } else {
                    Vec::new()
                };
                m.card = if left {
                    VectorMatchCardinality::ManyToOne(labels)
                } else {
                    VectorMatchCardinality::OneToMany(labels)
                };
            }
        }
        // `fill(v)`, or `fill_left(v)` and/or `fill_right(v)`, each at most once.
        let (mut both, mut left, mut right) = (false, false, false);
        loop {
            let which = if self.at_word("fill") {
                0
            } else if self.at_word("fill_left") {
                1
            } else if self.at_word("fill_right") {
                2
            } else {
                break;
            };
            // `fill` is a metric name unless a parenthesis follows.
            if self.peek_at(1).tok != Tok::LParen {
                break;
            }
            let kw = self.next();
            if !self.features.fill_modifiers {
                return Err(self.error_at(
                    kw.span,
                    "fill modifiers are experimental and must be enabled with \
                     --enable-feature=promql-binop-fill-modifiers"
                        .into(),
                ));
            }
            let repeated = match which {
                0 => both || left || right,
                1 => both || left,
                _ => both || right,
            };
            if repeated {
                return Err(self.error_at(
                    kw.span,
                    "fill modifiers may not be set multiple times".into(),
                ));
            }
            let v = self.parse_fill_value()?;
            match which {
                0 => {
                    both = true;
                    m.fill.lhs = Some(v);
                    m.fill.rhs = Some(v);
                }
                1 => {
                    left = true;
                    m.fill.lhs = Some(v);
                }
                _ => {
                    right = true;
                    m.fill.rhs = Some(v);
                }
            }
            any = true;
        }
        Ok(any.then_some(m))
    }

    fn parse_fill_value(&mut self) -> PResult<f64> {
        self.expect(Tok::LParen, Some("fill modifier"), "\"(\"")?;
        let neg = match self.peek().tok {
            Tok::Sub => {
                self.next();
                true
            }
            Tok::Add => {
                self.next();
                false
            }
            _ => false,
        };
        let v = match self.peek().tok {
            Tok::Number(v) => v,
            _ => return Err(self.unexpected(Some("fill modifier"), Some("number"))),
        };
        self.next();
        self.expect(Tok::RParen, Some("fill modifier"), "\")\"")?;
        Ok(if neg { -v } else { v })
    }

    /// `(label, ...)`: names or quoted names, a trailing comma allowed.
    fn parse_grouping_labels(&mut self) -> PResult<Vec<String>> {
        self.expect(Tok::LParen, Some("grouping opts"), "\"(\"")?;
        let mut labels = Vec::new();
        loop {
            let t = self.peek().clone();
            match &t.tok {
                Tok::RParen => {
                    self.next();
                    return Ok(labels);
                }
                Tok::Ident if is_label_name(self.text(&t)) => {
                    labels.push(self.text(&t).to_string());
                }
                Tok::Str(s) => labels.push(s.clone()),
                _ => return Err(self.unexpected(Some("grouping opts"), Some("label"))),
            }
            self.next();
            match self.peek().tok {
                Tok::Comma => {
                    self.next();
                }
                Tok::RParen => {}
                _ => {
                    return Err(self.unexpected(Some("grouping opts"), Some("\",\" or \")\"")));
                }
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Aggregations and calls
    // -----------------------------------------------------------------------------

    fn parse_aggregate(&mut self, op: AggregateOp) -> PResult<BExpr> {
        let kw = self.next();
        if op.is_experimental() && !self.features.experimental_functions {
            return Err(self.error_at(
                kw.span,
                "limitk() and limit_ratio() are experimental and must be enabled with \
                 --enable-feature=promql-experimental-functions"
                    .into(),
            ));
        }
        let mut modifier = self.parse_aggregate_modifier()?;
        if self.peek().tok != Tok::LParen {
            return Err(self.unexpected(Some("aggregation"), None));
        }
        let (args, close) = self.parse_call_args()?;
        let mut end = close;
        if modifier.is_none() {
            modifier = self.parse_aggregate_modifier()?;
            if modifier.is_some() {
                end = self.toks[self.pos - 1].span;
            }
        }
        let span = kw.span.to(end);
        if args.is_empty() {
            return Err(self.error_at(
                span,
                format!(
                    "no arguments for aggregate expression {} provided",
                    go_quote(op.name())
                ),
            ));
        }
        let desired = if op.has_param() { 2 } else { 1 };
        if args.len() != desired {
            return Err(self.error_at(
                span,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected \
                     {desired}, got {}",
                    args.len()
                ),
            ));
        }
        let mut args = args.into_iter();
        let param = if op.has_param() {
            args.next().map(Box::new)
        } else {
            None
        };
        let Some(expr) = args.next() else {
            return Err(self.error_at(span, "missing aggregation argument".into()));
        };
        Ok(Box::new(Expr::Aggregate(AggregateExpr {
            op,
            expr: Box::new(expr),
            param,
            modifier,
            span,
        })))
    }

    fn parse_aggregate_modifier(&mut self) -> PResult<Option<LabelModifier>> {
        if self.at_word("by") || self.at_word("without") {
            let by = self.at_word("by");
            self.next();
            let labels = self.parse_grouping_labels()?;
            return Ok(Some(if by {
                LabelModifier::Include(labels)
            } else {
                LabelModifier::Exclude(labels)
            }));
        }
        Ok(None)
    }

    fn parse_call(&mut self) -> PResult<BExpr> {
        let name_tok = self.next();
        let name = self.text(&name_tok);
        let Some(func) = get_function(name) else {
            return Err(self.error_at(
                name_tok.span,
                format!("unknown function with name {}", go_quote(name)),
            ));
        };
        if func.experimental && !self.features.experimental_functions {
            return Err(self.error_at(
                name_tok.span,
                format!("function {} is not enabled", go_quote(name)),
            ));
        }
        let (args, close) = self.parse_call_args()?;
        Ok(Box::new(Expr::Call(Call {
            func,
            args,
            span: name_tok.span.to(close),
        })))
    }

    /// `( expr, ... )`: the arguments and the span of `)`.
    fn parse_call_args(&mut self) -> PResult<(Vec<Expr>, Span)> {
        self.expect(Tok::LParen, None, "\"(\"")?;
        let mut args = Vec::new();
        if self.peek().tok == Tok::RParen {
            return Ok((args, self.next().span));
        }
        loop {
            args.push(*self.parse_expr(0)?);
            match self.peek().tok {
                Tok::Comma => {
                    let comma = self.next();
                    if self.peek().tok == Tok::RParen {
                        return Err(self.error_at(
                            comma.span,
                            "trailing commas not allowed in function call args".into(),
                        ));
                    }
                }
                Tok::RParen => return Ok((args, self.next().span)),
                _ => return Err(self.unexpected(None, None)),
            }
        }
    }

    // -----------------------------------------------------------------------------
    // Selectors
    // -----------------------------------------------------------------------------

    /// A selector: `name`, `name{...}` or `{...}`; `start` is the span of the name or
    /// of `{`.
    fn parse_selector(&mut self, mut name: Option<String>, start: Span) -> PResult<BExpr> {
        let mut matchers = Vec::new();
        let mut groups: Vec<Vec<Matcher>> = Vec::new();
        let mut end = start;
        if self.peek().tok == Tok::LBrace {
            self.next();
            loop {
                let t = self.peek().clone();
                let label = match &t.tok {
                    Tok::RBrace => {
                        end = self.next().span;
                        break;
                    }
                    Tok::Str(s) => {
                        self.next();
                        if matches!(self.peek().tok, Tok::Comma | Tok::RBrace) {
                            // A lone quoted string is the metric name.
                            if let Some(n) = &name {
                                return Err(self.error_at(
                                    t.span,
                                    format!(
                                        "metric name must not be set twice: {} or {}",
                                        go_quote(n),
                                        go_quote(s)
                                    ),
                                ));
                            }
                            name = Some(s.clone());
                            self.matcher_separator(&mut groups, &mut matchers)?;
                            continue;
                        }
                        s.clone()
                    }
                    Tok::Ident => {
                        let text = self.text(&t);
                        if !is_label_name(text) {
                            return Err(self.error_at(
                                t.span,
                                "unexpected character inside braces: ':'".into(),
                            ));
                        }
                        self.next();
                        text.to_string()
                    }
                    _ => {
                        return Err(
                            self.unexpected(Some("label matching"), Some("identifier or \"}\""))
                        );
                    }
                };
                let op = match self.peek().tok {
                    Tok::Assign => MatchOp::Equal,
                    Tok::Neq => MatchOp::NotEqual,
                    Tok::EqlRegex => MatchOp::Re,
                    Tok::NeqRegex => MatchOp::NotRe,
                    _ => {
                        return Err(self
                            .unexpected(Some("label matching"), Some("label matching operator")));
                    }
                };
                self.next();
                let vt = self.peek().clone();
                let Tok::Str(value) = &vt.tok else {
                    return Err(self.unexpected(Some("label matching"), Some("string")));
                };
                self.next();
                if matches!(op, MatchOp::Re | MatchOp::NotRe)
                    && let Err(e) = regex::RegexBuilder::new(&format!("^(?s:{value})$"))
                        .size_limit(1 << 22)
                        .build()
                {
                    let detail = e.to_string();
                    let detail = detail
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("invalid regular expression")
                        .trim()
                        .trim_start_matches("error: ");
                    return Err(self.error_at(
                        vt.span,
                        format!("error parsing regexp {}: {detail}", go_quote(value)),
                    ));
                }
                matchers.push(Matcher {
                    op,
                    name: label,
                    value: value.clone(),
                });
                self.matcher_separator(&mut groups, &mut matchers)?;
            }
        }
        if !groups.is_empty() {
            groups.push(std::mem::take(&mut matchers));
        }
        let span = start.to(end);
        let all_groups: Vec<&Vec<Matcher>> = if groups.is_empty() {
            vec![&matchers]
        } else {
            groups.iter().collect()
        };
        if let Some(n) = &name
            && let Some(m) = all_groups
                .iter()
                .flat_map(|g| g.iter())
                .find(|m| m.name == "__name__")
        {
            return Err(self.error_at(
                span,
                format!(
                    "metric name must not be set twice: {} or {}",
                    go_quote(n),
                    go_quote(&m.value)
                ),
            ));
        }
        if name.is_none()
            && all_groups
                .iter()
                .any(|g| g.iter().all(Matcher::matches_empty))
        {
            return Err(self.error_at(
                span,
                "vector selector must contain at least one non-empty matcher".into(),
            ));
        }
        Ok(Box::new(Expr::VectorSelector(VectorSelector {
            name,
            matchers,
            or_matchers: groups,
            offset: None,
            at: None,
            anchored: false,
            smoothed: false,
            span,
        })))
    }

    /// After a matcher: `,`, `}`, or (with `or_matchers`) `or`, which closes the
    /// current group.
    fn matcher_separator(
        &mut self,
        groups: &mut Vec<Vec<Matcher>>,
        current: &mut Vec<Matcher>,
    ) -> PResult<()> {
        match self.peek().tok {
            Tok::Comma => {
                self.next();
                Ok(())
            }
            Tok::RBrace => Ok(()),
            Tok::Ident if self.or_matchers && self.at_word("or") => {
                self.next();
                groups.push(std::mem::take(current));
                if matches!(self.peek().tok, Tok::RBrace | Tok::Comma) {
                    return Err(self.unexpected(Some("label matching"), Some("label matcher")));
                }
                Ok(())
            }
            _ => Err(self.unexpected(Some("label matching"), Some("\",\" or \"}\""))),
        }
    }

    // -----------------------------------------------------------------------------
    // Durations
    // -----------------------------------------------------------------------------

    /// A range or step inside brackets: a literal, or with duration expressions any
    /// arithmetic.
    fn parse_bracket_duration(&mut self) -> PResult<DurationExpr> {
        let d = self.parse_duration_expr(0)?;
        if !self.features.duration_expressions
            && !matches!(
                d,
                DurationExpr::Literal { .. } | DurationExpr::Number { .. }
            )
        {
            return Err(self.duration_feature_error(&d));
        }
        if !d.is_dynamic() {
            match d.eval_ms(0, 0) {
                Ok(ms) if ms <= 0 => {
                    return Err(self.error_at(d.span(), "duration must be greater than 0".into()));
                }
                Ok(_) => {}
                Err(e) => return Err(self.error_at(d.span(), e)),
            }
        }
        Ok(d)
    }

    /// After `offset`: an optionally signed literal; with duration expressions also
    /// `step()`, `range()`, `min(..)`, `max(..)` or a parenthesized expression.
    fn parse_offset_duration(&mut self) -> PResult<DurationExpr> {
        let sign = match self.peek().tok {
            Tok::Sub => Some(true),
            Tok::Add => Some(false),
            _ => None,
        };
        let sign_tok = sign.map(|_| self.next());
        let inner = match self.peek().tok {
            Tok::Duration(_) | Tok::Number(_) | Tok::LParen => self.parse_duration_primary()?,
            Tok::Ident if self.duration_function_ahead() => self.parse_duration_primary()?,
            _ => return Err(self.unexpected(Some("offset"), Some("duration"))),
        };
        let d = match (sign, sign_tok) {
            (Some(neg), Some(t)) => DurationExpr::Unary {
                neg,
                span: t.span.to(inner.span()),
                expr: Box::new(inner),
            },
            _ => inner,
        };
        self.check_duration_feature(&d)?;
        if !d.is_dynamic()
            && let Err(e) = d.eval_ms(0, 0)
        {
            return Err(self.error_at(d.span(), e));
        }
        Ok(d)
    }

    fn check_duration_feature(&self, d: &DurationExpr) -> PResult<()> {
        if self.features.duration_expressions {
            return Ok(());
        }
        let plain = match d {
            DurationExpr::Literal { .. } | DurationExpr::Number { .. } => true,
            DurationExpr::Unary { expr, .. } => matches!(
                **expr,
                DurationExpr::Literal { .. } | DurationExpr::Number { .. }
            ),
            _ => false,
        };
        if plain {
            Ok(())
        } else {
            Err(self.duration_feature_error(d))
        }
    }

    fn duration_feature_error(&self, d: &DurationExpr) -> Box<ParseError> {
        self.error_at(
            d.span(),
            "experimental duration expression is not enabled; enable it with \
             --enable-feature=promql-duration-expr"
                .into(),
        )
    }

    fn duration_function_ahead(&self) -> bool {
        ["step", "range", "min", "max"]
            .iter()
            .any(|w| self.at_word(w))
            && self.peek_at(1).tok == Tok::LParen
    }

    fn parse_duration_expr(&mut self, min_prec: u8) -> PResult<DurationExpr> {
        super::with_stack(|| self.parse_duration_expr_inner(min_prec))
    }

    fn parse_duration_expr_inner(&mut self, min_prec: u8) -> PResult<DurationExpr> {
        self.enter()?;
        let mut lhs = match self.peek().tok {
            Tok::Sub | Tok::Add => {
                let t = self.next();
                let operand = self.parse_duration_expr(BinaryOp::Pow.precedence())?;
                DurationExpr::Unary {
                    neg: t.tok == Tok::Sub,
                    span: t.span.to(operand.span()),
                    expr: Box::new(operand),
                }
            }
            _ => self.parse_duration_primary()?,
        };
        let mut chained = 0;
        loop {
            let op = match self.peek().tok {
                Tok::Add => BinaryOp::Add,
                Tok::Sub => BinaryOp::Sub,
                Tok::Mul => BinaryOp::Mul,
                Tok::Div => BinaryOp::Div,
                Tok::Mod => BinaryOp::Mod,
                Tok::Pow => BinaryOp::Pow,
                _ => break,
            };
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.next();
            let rhs = self.parse_duration_expr(if op.is_right_associative() {
                prec
            } else {
                prec + 1
            })?;
            let span = lhs.span().to(rhs.span());
            lhs = DurationExpr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                span,
            };
            chained += 1;
            self.enter()?;
        }
        self.leave(1 + chained);
        Ok(lhs)
    }

    fn parse_duration_primary(&mut self) -> PResult<DurationExpr> {
        let t = self.peek().clone();
        match t.tok {
            Tok::Duration(ms) => {
                self.next();
                if ms == 0 {
                    return Err(self.error_at(t.span, "duration must be greater than 0".into()));
                }
                Ok(DurationExpr::Literal { ms, span: t.span })
            }
            Tok::Number(secs) => {
                self.next();
                if !secs.is_finite() || (secs * 1000.0).abs() > MAX_DURATION_MS as f64 {
                    return Err(self.error_at(
                        t.span,
                        format!("duration out of range: {}", go_quote(self.text(&t))),
                    ));
                }
                Ok(DurationExpr::Number { secs, span: t.span })
            }
            Tok::LParen => {
                self.next();
                let inner = self.parse_duration_expr(0)?;
                let close = self.expect(Tok::RParen, Some("duration expression"), "\")\"")?;
                Ok(DurationExpr::Paren {
                    expr: Box::new(inner),
                    span: t.span.to(close.span),
                })
            }
            Tok::Ident if self.duration_function_ahead() => {
                let word = self.text(&t).to_ascii_lowercase();
                self.next();
                self.next();
                match word.as_str() {
                    "step" | "range" => {
                        let close =
                            self.expect(Tok::RParen, Some("duration expression"), "\")\"")?;
                        let span = t.span.to(close.span);
                        Ok(if word == "step" {
                            DurationExpr::Step { span }
                        } else {
                            DurationExpr::Range { span }
                        })
                    }
                    _ => {
                        let a = self.parse_duration_expr(0)?;
                        self.expect(Tok::Comma, Some("duration expression"), "\",\"")?;
                        let b = self.parse_duration_expr(0)?;
                        let close =
                            self.expect(Tok::RParen, Some("duration expression"), "\")\"")?;
                        Ok(DurationExpr::MinMax {
                            max: word == "max",
                            args: Box::new([a, b]),
                            span: t.span.to(close.span),
                        })
                    }
                }
            }
            _ => Err(self.unexpected(Some("duration expression"), Some("duration"))),
        }
    }
}

/// Widens a selector's or subquery's span to take in a modifier ending at `end`.
fn extend_span(e: &mut Expr, end: Span) {
    match e {
        Expr::VectorSelector(vs) => vs.span = vs.span.to(end),
        Expr::MatrixSelector(ms) => {
            ms.span = ms.span.to(end);
            ms.vs.span = ms.vs.span.to(end);
        }
        Expr::Subquery(sq) => sq.span = sq.span.to(end),
        _ => {}
    }
}

/// A legacy label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A legacy metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    b.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

/// Go's `%f` of a float (`+Inf`, `-Inf`, `NaN`, else six decimals).
fn go_float_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v:.6}")
    }
}
