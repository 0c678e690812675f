//! Property tests: generated trees print and read back to the same tree; arbitrary
//! text never panics; whatever parses prints to text that reads back the same.
//!
//! Trees are generated from a seed by a small deterministic generator that builds
//! only well-typed trees the parser could have produced (parentheses where
//! precedence needs them, signs folded into literals), so the round trip must be
//! exact.

use proptest::prelude::*;

use super::super::*;

fn all() -> ParserOptions {
    ParserOptions {
        features: Features::all(),
        or_matchers: true,
        ..Default::default()
    }
}

/// A xorshift generator: proptest drives the seed, this drives the shape.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const NO: Span = Span { start: 0, end: 0 };

fn paren(e: Expr) -> Expr {
    Expr::Paren(ParenExpr {
        expr: Box::new(e),
        span: NO,
    })
}

fn number(r: &mut Rng, negative_ok: bool) -> f64 {
    let v = match r.below(8) {
        0 => f64::INFINITY,
        1 => f64::NAN,
        2 => r.below(1000) as f64 / 8.0,
        3 => 1e-9 * r.below(100) as f64,
        4 => 1e22 * (1 + r.below(100)) as f64,
        _ => r.below(100) as f64,
    };
    if negative_ok && r.chance(30) { -v } else { v }
}

fn num_lit(r: &mut Rng, negative_ok: bool) -> Expr {
    Expr::NumberLiteral(NumberLiteral {
        val: number(r, negative_ok),
        span: NO,
    })
}

fn string(r: &mut Rng) -> String {
    let parts = [
        "a", "b", "\"", "'", "\\", "\n", "\t", "é", "😀", " ", "x.y", "\u{1}", "$1",
    ];
    (0..r.below(5)).map(|_| r.pick(&parts)).collect()
}

fn label(r: &mut Rng) -> String {
    r.pick(&[
        "job", "le", "a_b", "instance", "my.label", "ünï", "on", "by", "__x",
    ])
    .to_string()
}

fn labels(r: &mut Rng) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for _ in 0..r.below(3) {
        let l = label(r);
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

fn duration(r: &mut Rng, depth: u32) -> DurationExpr {
    if depth == 0 || r.chance(50) {
        return match r.below(5) {
            0 => DurationExpr::Number {
                secs: r.pick(&[1.0, 300.0, 1.5, 0.25, 86400.0]),
                span: NO,
            },
            1 => DurationExpr::Step { span: NO },
            2 => DurationExpr::Range { span: NO },
            _ => DurationExpr::Literal {
                ms: r.pick(&[1, 1000, 60_000, 5_400_000, 86_400_000, 31_536_000_000 + 7]),
                span: NO,
            },
        };
    }
    match r.below(4) {
        0 => DurationExpr::MinMax {
            max: r.chance(50),
            args: Box::new([duration(r, depth - 1), duration(r, depth - 1)]),
            span: NO,
        },
        1 => {
            let inner = duration(r, depth - 1);
            let inner = if matches!(&inner, DurationExpr::Binary { op, .. } if *op != BinaryOp::Pow)
            {
                DurationExpr::Paren {
                    expr: Box::new(inner),
                    span: NO,
                }
            } else {
                inner
            };
            DurationExpr::Unary {
                neg: r.chance(70),
                expr: Box::new(inner),
                span: NO,
            }
        }
        2 => DurationExpr::Paren {
            expr: Box::new(duration(r, depth - 1)),
            span: NO,
        },
        _ => {
            let op = r.pick(&[
                BinaryOp::Add,
                BinaryOp::Sub,
                BinaryOp::Mul,
                BinaryOp::Div,
                BinaryOp::Mod,
                BinaryOp::Pow,
            ]);
            let wrap = |d: DurationExpr, lhs: bool| {
                let needs = match &d {
                    DurationExpr::Binary { op: c, .. } => {
                        c.precedence() < op.precedence()
                            || (c.precedence() == op.precedence()
                                && (op.is_right_associative() == lhs))
                    }
                    DurationExpr::Unary { .. } => lhs && op == BinaryOp::Pow,
                    _ => false,
                };
                if needs {
                    DurationExpr::Paren {
                        expr: Box::new(d),
                        span: NO,
                    }
                } else {
                    d
                }
            };
            DurationExpr::Binary {
                op,
                lhs: Box::new(wrap(duration(r, depth - 1), true)),
                rhs: Box::new(wrap(duration(r, depth - 1), false)),
                span: NO,
            }
        }
    }
}

/// A range or step: when it does not depend on the query, a positive one.
fn positive_duration(r: &mut Rng) -> DurationExpr {
    let d = duration(r, 2);
    if d.is_dynamic() || d.eval_ms(0, 0).is_ok_and(|ms| ms > 0) {
        d
    } else {
        DurationExpr::millis(300_000)
    }
}

/// An offset as the parser reads it: a signed primary.
fn offset(r: &mut Rng) -> Option<DurationExpr> {
    if !r.chance(30) {
        return None;
    }
    let mut d = duration(r, 2);
    if !d.is_dynamic() && d.eval_ms(0, 0).is_err() {
        d = DurationExpr::millis(60_000);
    }
    let d = match d {
        DurationExpr::Binary { .. } | DurationExpr::Unary { .. } => DurationExpr::Paren {
            expr: Box::new(d),
            span: NO,
        },
        other => other,
    };
    Some(if r.chance(30) {
        DurationExpr::Unary {
            neg: true,
            expr: Box::new(d),
            span: NO,
        }
    } else {
        d
    })
}

fn at(r: &mut Rng) -> Option<AtModifier> {
    if !r.chance(25) {
        return None;
    }
    Some(match r.below(3) {
        0 => AtModifier::Start,
        1 => AtModifier::End,
        _ => AtModifier::Timestamp(r.below(20_000_000_000_000) as i64 - 10_000_000_000_000),
    })
}

fn selector(r: &mut Rng) -> VectorSelector {
    let name = match r.below(6) {
        0 => None,
        1 => Some("my.metric".to_string()),
        2 => Some(
            r.pick(&["sum", "by", "on", "inf", "offset", "bool"])
                .to_string(),
        ),
        _ => Some(
            r.pick(&["up", "http_requests_total", "a:b", "x"])
                .to_string(),
        ),
    };
    let mut matchers = Vec::new();
    for _ in 0..r.below(3) {
        let (op, value) = match r.below(4) {
            0 => (MatchOp::Equal, string(r)),
            1 => (MatchOp::NotEqual, string(r)),
            2 => (
                MatchOp::Re,
                r.pick(&["a.*", "", "(x|y)", "\\d+"]).to_string(),
            ),
            _ => (MatchOp::NotRe, r.pick(&["a.*", "b"]).to_string()),
        };
        matchers.push(Matcher {
            op,
            name: label(r),
            value,
        });
    }
    if name.is_none() && matchers.iter().all(Matcher::matches_empty) {
        matchers.push(Matcher {
            op: MatchOp::Equal,
            name: "job".into(),
            value: "api".into(),
        });
    }
    let mut or_matchers = Vec::new();
    if r.chance(10) {
        or_matchers = vec![
            std::mem::take(&mut matchers),
            vec![Matcher {
                op: MatchOp::Equal,
                name: label(r),
                value: "z".into(),
            }],
        ];
        if or_matchers[0].is_empty() || or_matchers[0].iter().all(Matcher::matches_empty) {
            or_matchers[0].push(Matcher {
                op: MatchOp::Equal,
                name: "job".into(),
                value: "api".into(),
            });
        }
        if name.is_some() {
            for g in &mut or_matchers {
                g.retain(|m| m.name != "__name__");
            }
        }
    }
    VectorSelector {
        name,
        matchers,
        or_matchers,
        offset: None,
        at: None,
        anchored: false,
        smoothed: false,
        span: NO,
    }
}

fn matrix(r: &mut Rng, depth: u32, modifiers_ok: bool) -> Expr {
    if depth == 0 || r.chance(60) {
        let mut vs = selector(r);
        vs.offset = offset(r);
        vs.at = at(r);
        if modifiers_ok && r.chance(30) {
            if r.chance(50) {
                vs.anchored = true;
            } else {
                vs.smoothed = true;
            }
        }
        return Expr::MatrixSelector(MatrixSelector {
            vs,
            range: positive_duration(r),
            span: NO,
        });
    }
    let inner = vector(r, depth - 1);
    let inner = if needs_parens_before_postfix(&inner) {
        paren(inner)
    } else {
        inner
    };
    Expr::Subquery(SubqueryExpr {
        expr: Box::new(inner),
        range: positive_duration(r),
        step: if r.chance(50) {
            Some(positive_duration(r))
        } else {
            None
        },
        offset: offset(r),
        at: at(r),
        span: NO,
    })
}

fn needs_parens_before_postfix(e: &Expr) -> bool {
    matches!(e, Expr::Binary(_) | Expr::Unary(_))
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Call(Call {
        func: get_function(name).expect("known function"),
        args,
        span: NO,
    })
}

fn scalar(r: &mut Rng, depth: u32) -> Expr {
    if depth == 0 || r.chance(40) {
        return match r.below(4) {
            0 => call(
                r.pick(&["time", "pi", "step", "range", "start", "end"]),
                vec![],
            ),
            _ => num_lit(r, false),
        };
    }
    match r.below(5) {
        0 => call("scalar", vec![vector(r, depth - 1)]),
        1 => paren(scalar(r, depth - 1)),
        2 => {
            let s = scalar(r, depth - 1);
            unary(r, s)
        }
        3 => call("max_of", vec![scalar(r, depth - 1), scalar(r, depth - 1)]),
        _ => binary(r, depth, false),
    }
}

fn unary(r: &mut Rng, operand: Expr) -> Expr {
    let operand = match operand {
        // A sign folds into a literal; keep the unary node by parenthesizing.
        Expr::NumberLiteral(_) => paren(operand),
        Expr::Binary(ref b) if b.op != BinaryOp::Pow => paren(operand),
        other => other,
    };
    Expr::Unary(UnaryExpr {
        op: if r.chance(80) {
            UnaryOp::Neg
        } else {
            UnaryOp::Plus
        },
        expr: Box::new(operand),
        span: NO,
    })
}

fn wrap_operand(op: BinaryOp, e: Expr, lhs: bool) -> Expr {
    let needs = match &e {
        Expr::Binary(c) => {
            c.op.precedence() < op.precedence()
                || (c.op.precedence() == op.precedence() && (op.is_right_associative() == lhs))
        }
        Expr::Unary(_) => lhs && op == BinaryOp::Pow,
        Expr::NumberLiteral(n) => lhs && op == BinaryOp::Pow && n.val.is_sign_negative(),
        _ => false,
    };
    if needs { paren(e) } else { e }
}

/// A binary expression: vector-typed when `vector`, else scalar-scalar.
fn binary(r: &mut Rng, depth: u32, vector_result: bool) -> Expr {
    let arith = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Mod,
        BinaryOp::Pow,
        BinaryOp::Atan2,
        BinaryOp::TrimUpper,
        BinaryOp::TrimLower,
    ];
    let cmp = [
        BinaryOp::Eql,
        BinaryOp::Neq,
        BinaryOp::Gtr,
        BinaryOp::Lss,
        BinaryOp::Gte,
        BinaryOp::Lte,
    ];
    let set = [BinaryOp::And, BinaryOp::Or, BinaryOp::Unless];
    let (lhs, rhs, both_vectors) = if vector_result {
        match r.below(3) {
            0 => (vector(r, depth - 1), scalar_operand(r, depth - 1), false),
            1 => (scalar(r, depth - 1), vector(r, depth - 1), false),
            _ => (vector(r, depth - 1), vector(r, depth - 1), true),
        }
    } else {
        (scalar(r, depth - 1), scalar_operand(r, depth - 1), false)
    };
    let op = match r.below(3) {
        0 => r.pick(&cmp),
        1 if both_vectors => r.pick(&set),
        _ => r.pick(&arith),
    };
    let mut m = BinModifier::default();
    let mut any = false;
    if op.is_comparison() && (!vector_result || r.chance(40)) {
        m.return_bool = true;
        any = true;
    }
    if both_vectors {
        if r.chance(40) || op.is_set_operator() && r.chance(50) {
            let l = labels(r);
            m.matching = Some(if r.chance(50) {
                LabelModifier::Include(l)
            } else {
                LabelModifier::Exclude(l)
            });
            any = true;
            if !op.is_set_operator() && r.chance(40) {
                let mut include = labels(r);
                if let Some(LabelModifier::Include(on)) = &m.matching {
                    include.retain(|l| !on.contains(l));
                }
                m.card = if r.chance(50) {
                    VectorMatchCardinality::ManyToOne(include)
                } else {
                    VectorMatchCardinality::OneToMany(include)
                };
            }
        }
        if op.is_set_operator() {
            m.card = VectorMatchCardinality::ManyToMany;
        } else if r.chance(25) {
            match r.below(3) {
                0 => {
                    let v = number(r, true);
                    m.fill = FillValues {
                        lhs: Some(v),
                        rhs: Some(v),
                    };
                }
                1 => m.fill.lhs = Some(number(r, true)),
                _ => {
                    m.fill.lhs = Some(number(r, true));
                    m.fill.rhs = Some(number(r, true));
                }
            }
            any = true;
        }
    }
    Expr::Binary(BinaryExpr {
        op,
        lhs: Box::new(wrap_operand(op, lhs, true)),
        rhs: Box::new(wrap_operand(op, rhs, false)),
        modifier: any.then_some(m),
        span: NO,
    })
}

/// A scalar on the right of an operator, where a negative literal reads back.
fn scalar_operand(r: &mut Rng, depth: u32) -> Expr {
    if r.chance(30) {
        num_lit(r, true)
    } else {
        scalar(r, depth)
    }
}

fn vector(r: &mut Rng, depth: u32) -> Expr {
    if depth == 0 || r.chance(25) {
        let mut vs = selector(r);
        vs.offset = offset(r);
        vs.at = at(r);
        vs.smoothed = r.chance(10);
        return Expr::VectorSelector(vs);
    }
    match r.below(9) {
        0 | 1 => {
            let op = r.pick(&AggregateOp::ALL);
            let param = match op {
                AggregateOp::CountValues => Some(Box::new(Expr::StringLiteral(StringLiteral {
                    val: string(r),
                    span: NO,
                }))),
                op if op.has_param() => Some(Box::new(scalar(r, depth - 1))),
                _ => None,
            };
            let modifier = match r.below(3) {
                0 => None,
                1 => Some(LabelModifier::Include(labels(r))),
                _ => Some(LabelModifier::Exclude(labels(r))),
            };
            Expr::Aggregate(AggregateExpr {
                op,
                expr: Box::new(vector(r, depth - 1)),
                param,
                modifier,
                span: NO,
            })
        }
        2 => {
            let f = r.pick(&[
                "rate",
                "increase",
                "delta",
                "max_over_time",
                "mad_over_time",
            ]);
            let modifiers_ok = matches!(f, "rate" | "increase" | "delta");
            call(f, vec![matrix(r, depth - 1, modifiers_ok)])
        }
        3 => match r.below(5) {
            0 => call("abs", vec![vector(r, depth - 1)]),
            1 => call(
                "round",
                vec![vector(r, depth - 1), scalar_operand(r, depth - 1)],
            ),
            2 => call(
                "label_replace",
                vec![
                    vector(r, depth - 1),
                    str_lit(r),
                    str_lit(r),
                    str_lit(r),
                    str_lit(r),
                ],
            ),
            3 => call(
                "histogram_quantile",
                vec![scalar_operand(r, depth - 1), vector(r, depth - 1)],
            ),
            _ => call(
                "info",
                vec![vector(r, depth - 1), Expr::VectorSelector(selector(r))],
            ),
        },
        4 => call("vector", vec![scalar(r, depth - 1)]),
        5 => paren(vector(r, depth - 1)),
        6 => {
            let v = vector(r, depth - 1);
            unary(r, v)
        }
        _ => binary(r, depth, true),
    }
}

fn str_lit(r: &mut Rng) -> Expr {
    Expr::StringLiteral(StringLiteral {
        val: string(r),
        span: NO,
    })
}

fn any_expr(seed: u64) -> Expr {
    let mut r = Rng(seed | 1);
    let depth = 1 + r.below(5) as u32;
    match r.below(10) {
        0 => scalar(&mut r, depth),
        1 => matrix(&mut r, depth, false),
        2 => str_lit(&mut r),
        _ => vector(&mut r, depth),
    }
}

fn debug(e: Expr) -> String {
    format!("{:?}", e.strip_spans())
}

/// Fragments PromQL is made of, for text that gets past the lexer.
const FRAGMENTS: &[&str] = &[
    "foo",
    "sum",
    "rate",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "@",
    "start()",
    "end()",
    "step()",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    "5m",
    "1h30m",
    "0",
    "1",
    "-",
    "+",
    "*",
    "/",
    "%",
    "^",
    "==",
    "!=",
    ">",
    "<=",
    "and",
    "or",
    "unless",
    "atan2",
    "\"x\"",
    "'y'",
    "`z`",
    "a=\"b\"",
    "=~",
    "!~",
    "=",
    "topk",
    "count_values",
    "histogram_quantile",
    "label_replace",
    "Inf",
    "NaN",
    "anchored",
    "smoothed",
    "fill(1)",
    "fill_left",
    "min",
    "max",
    "range()",
    " ",
    "\n",
    "#c\n",
    "0x1f",
    ".5",
    "1e3",
    "{\"a.b\"}",
    "vector",
    "time()",
    "limitk",
    "info",
    "</",
    ">/",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn should_round_trip_generated_trees(seed in any::<u64>()) {
        let tree = any_expr(seed);
        let printed = tree.to_string();
        let parsed = parse_with(&printed, &all())
            .map_err(|e| TestCaseError::fail(format!("{printed}: {e}")))?;
        prop_assert_eq!(debug(tree.clone()), debug(parsed), "{}", printed);
        let pretty = tree.pretty();
        let parsed = parse_with(&pretty, &all())
            .map_err(|e| TestCaseError::fail(format!("{pretty}: {e}")))?;
        prop_assert_eq!(debug(tree), debug(parsed), "{}", pretty);
    }

    #[test]
    fn should_never_panic_on_arbitrary_text(text in ".{0,64}") {
        let _ = parse_with(&text, &all());
        let _ = parse(&text);
    }

    #[test]
    fn should_round_trip_whatever_parses(parts in proptest::collection::vec(0..FRAGMENTS.len(), 0..24)) {
        let text: String = parts.iter().map(|&i| FRAGMENTS[i]).collect::<Vec<_>>().join(" ");
        for options in [all(), ParserOptions::default()] {
            if let Ok(e) = parse_with(&text, &options) {
                let printed = e.to_string();
                let again = parse_with(&printed, &options)
                    .map_err(|err| TestCaseError::fail(format!("{text} -> {printed}: {err}")))?;
                prop_assert_eq!(debug(e), debug(again.clone()), "{} -> {}", text, printed);
                prop_assert_eq!(again.to_string(), printed);
            }
        }
    }
}

#[test]
fn should_generate_trees_with_every_construct() {
    let printed: Vec<String> = (1..2000u64)
        .map(|s| any_expr(s.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_string())
        .collect();
    for needle in [
        " by (",
        " without (",
        "[",
        ":]",
        " offset ",
        " @ ",
        " bool ",
        " on (",
        " ignoring (",
        " group_left (",
        " group_right (",
        " fill",
        " anchored",
        " smoothed",
        "step()",
        "(",
        "-",
        "topk(",
        "count_values(",
        "\"",
        "{",
        "=~",
        "!~",
        " ^ ",
        " and ",
        " </ ",
        "max(",
        "min(",
        "info(",
    ] {
        assert!(
            printed.iter().any(|p| p.contains(needle)),
            "no generated tree contains {needle:?}"
        );
    }
    for p in printed.iter().take(5) {
        eprintln!("sample: {p}");
    }
}
