#![allow(clippy::unwrap_used)]

use super::*;

fn all() -> ParserOptions {
    ParserOptions {
        features: Features::all(),
        ..Default::default()
    }
}

fn p(q: &str) -> Expr {
    parse_with(q, &all()).unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// The error of `q` with every feature on.
fn e(q: &str) -> String {
    match parse_with(q, &all()) {
        Ok(x) => panic!("{q} parsed as {x}"),
        Err(err) => err.to_string(),
    }
}

/// The error of `q` with the default (no experimental) features.
fn e_default(q: &str) -> String {
    match parse(q) {
        Ok(x) => panic!("{q} parsed as {x}"),
        Err(err) => err.to_string(),
    }
}

/// Parses, prints, and checks the print re-parses to the same tree.
fn round(q: &str) -> String {
    let a = p(q);
    let printed = a.to_string();
    let b = parse_with(&printed, &all()).unwrap_or_else(|e| panic!("{q} -> {printed}: {e}"));
    assert_eq!(
        format!("{:?}", a.clone().strip_spans()),
        format!("{:?}", b.strip_spans()),
        "{q} -> {printed}"
    );
    printed
}

fn num(q: &str) -> f64 {
    match p(q) {
        Expr::NumberLiteral(n) => n.val,
        other => panic!("{q}: {other:?}"),
    }
}

fn vs(q: &str) -> VectorSelector {
    match p(q) {
        Expr::VectorSelector(v) => v,
        other => panic!("{q}: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Literals
// ---------------------------------------------------------------------------------

#[test]
fn should_parse_number_literals() {
    assert_eq!(num("1"), 1.0);
    assert_eq!(num("12.34e-6"), 12.34e-6);
    assert_eq!(num(".2"), 0.2);
    assert_eq!(num("2."), 2.0);
    assert_eq!(num("0x10"), 16.0);
    assert_eq!(num("-0x10"), -16.0);
    assert_eq!(num("+Inf"), f64::INFINITY);
    assert_eq!(num("-inF"), f64::NEG_INFINITY);
    assert!(num("nan").is_nan());
    assert_eq!(num("- -1"), 1.0);
}

#[test]
fn should_read_durations_as_seconds_in_expressions() {
    assert_eq!(num("1h"), 3600.0);
    assert_eq!(num("1m30s"), 90.0);
    assert_eq!(num("-5ms"), -0.005);
}

#[test]
fn should_fold_a_sign_into_the_literal_but_not_into_a_power() {
    let Expr::NumberLiteral(n) = p("-1") else {
        panic!()
    };
    assert_eq!((n.val, n.span), (-1.0, Span::new(0, 2)));
    let Expr::Unary(u) = p("-1 ^ 2") else {
        panic!("-1^2 is -(1^2)")
    };
    assert!(matches!(*u.expr, Expr::Binary(ref b) if b.op == BinaryOp::Pow));
    let Expr::Binary(b) = p("-a * b") else {
        panic!()
    };
    assert_eq!(b.op, BinaryOp::Mul);
    assert!(matches!(*b.lhs, Expr::Unary(_)));
}

#[test]
fn should_parse_strings_in_all_quotes() {
    for (q, want) in [
        (r#""a\"b""#, "a\"b"),
        (r"'a\'b'", "a'b"),
        ("`a\\nb`", "a\\nb"),
        (r#""\u00e9\n""#, "é\n"),
    ] {
        let Expr::StringLiteral(s) = p(q) else {
            panic!("{q}")
        };
        assert_eq!(s.val, want);
        round(q);
    }
}

// ---------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------

#[test]
fn should_parse_vector_selectors_with_matchers() {
    let v = vs(r#"foo{a="b", c!="d", e=~"f.*", g!~"h",}"#);
    assert_eq!(v.name.as_deref(), Some("foo"));
    let ops: Vec<MatchOp> = v.matchers.iter().map(|m| m.op).collect();
    assert_eq!(
        ops,
        [
            MatchOp::Equal,
            MatchOp::NotEqual,
            MatchOp::Re,
            MatchOp::NotRe
        ]
    );
    assert_eq!(v.span, Span::new(0, 37));
    assert_eq!(
        round(r#"foo{a="b", c!="d", e=~"f.*", g!~"h",}"#),
        r#"foo{a="b", c!="d", e=~"f.*", g!~"h"}"#
    );
}

#[test]
fn should_parse_utf8_quoted_names() {
    let v = vs(r#"{"foo.bar", "my.label"="x"}"#);
    assert_eq!(v.name.as_deref(), Some("foo.bar"));
    assert_eq!(v.matchers[0].name, "my.label");
    assert_eq!(
        round(r#"{"foo.bar", "my.label"="x"}"#),
        r#"{"foo.bar", "my.label"="x"}"#
    );
    assert_eq!(round(r#"{"foo"}"#), "foo");
    assert_eq!(round("sum by (\"a.b\", c) (x)"), "sum by (\"a.b\", c) (x)");
}

#[test]
fn should_keep_keywords_usable_as_metric_names() {
    for q in [
        "sum",
        "by",
        "offset",
        "and",
        "or",
        "start",
        "step",
        "fill",
        "anchored",
        "foo * sum",
        ":",
        "a:b:c",
    ] {
        p(q);
    }
    assert_eq!(round("foo * sum"), "foo * sum");
    assert_eq!(round("-offset{a=\"b\"} + by"), "-offset{a=\"b\"} + by");
    assert_eq!(round("{\"bool\"}"), "{\"bool\"}");
    assert_eq!(e("bool"), "1:1: parse error: unexpected <bool>");
    assert_eq!(
        e("foo + on"),
        "1:9: parse error: unexpected end of input in grouping opts, expected \"(\""
    );
    assert_eq!(
        e("atan2{a=\"b\"}"),
        "1:1: parse error: unexpected <op:atan2>"
    );
    p("{on=\"x\", bool=\"y\"}");
    assert_eq!(vs("{\"Inf\"}").name.as_deref(), Some("Inf"));
    assert_eq!(round("{\"Inf\"}"), "{\"Inf\"}");
}

#[test]
fn should_require_a_non_empty_matcher() {
    assert_eq!(
        e("{}"),
        "1:1: parse error: vector selector must contain at least one non-empty matcher"
    );
    assert!(e(r#"{a=""}"#).contains("at least one non-empty matcher"));
    assert!(e(r#"{a=~".*"}"#).contains("at least one non-empty matcher"));
    assert!(e(r#"{a!~".+"}"#).contains("at least one non-empty matcher"));
    p(r#"{a!=""}"#);
    p(r#"{a=~".+"}"#);
    p(r#"{__name__="foo"}"#);
    p(r#"{__name__=~"foo|bar", a=""}"#);
}

#[test]
fn should_reject_a_metric_name_set_twice() {
    assert_eq!(
        e(r#"foo{"bar"}"#),
        "1:5: parse error: metric name must not be set twice: \"foo\" or \"bar\""
    );
    assert!(e(r#"foo{__name__="bar"}"#).contains("metric name must not be set twice"));
}

#[test]
fn should_report_label_matching_errors() {
    assert_eq!(
        e("foo{a}"),
        "1:6: parse error: unexpected \"}\" in label matching, expected label matching operator"
    );
    assert_eq!(
        e("foo{a=1}"),
        "1:7: parse error: unexpected number \"1\" in label matching, expected string"
    );
    assert_eq!(
        e("foo{a=\"b\""),
        "1:10: parse error: unexpected end of input inside braces"
    );
    assert!(e("foo{a=~\"(\"}").contains("error parsing regexp"));
    assert!(e("foo{a==\"b\"}").contains("expected label matching operator"));
}

#[test]
fn should_parse_range_selectors_and_subqueries() {
    let Expr::MatrixSelector(m) = p("foo[5m]") else {
        panic!()
    };
    assert_eq!(m.range.constant_ms(), Some(300_000));
    assert_eq!(m.span, Span::new(0, 7));
    let Expr::Subquery(s) = p("rate(foo[1m])[1h:5m]") else {
        panic!()
    };
    assert_eq!(s.range.constant_ms(), Some(3_600_000));
    assert_eq!(s.step.as_ref().and_then(|d| d.constant_ms()), Some(300_000));
    let Expr::Subquery(s) = p("foo[1h:]") else {
        panic!()
    };
    assert!(s.step.is_none());
    assert_eq!(round("foo[300]"), "foo[300]");
    assert_eq!(round("foo[1.5]"), "foo[1.5]");
    assert_eq!(round("foo[90m]"), "foo[1h30m]");
    assert_eq!(
        round("min_over_time(rate(foo[5m])[30m:1m])"),
        "min_over_time(rate(foo[5m])[30m:1m])"
    );
}

#[test]
fn should_report_range_errors() {
    assert_eq!(
        e("(foo)[5m]"),
        "1:6: parse error: ranges only allowed for vector selectors"
    );
    assert!(e("foo offset 1m [5m]").contains("no offset modifiers allowed before range"));
    assert!(e("foo @ 1 [5m]").contains("no @ modifiers allowed before range"));
    assert_eq!(e("foo[5m"), "1:7: parse error: unclosed left bracket");
    assert_eq!(
        e("foo[5m 1m]"),
        "1:8: parse error: unexpected duration \"1m\" in subquery or range, expected \":\" or \"]\""
    );
    assert_eq!(
        e("foo[]"),
        "1:5: parse error: unexpected \"]\" in subquery selector, expected duration"
    );
    assert!(e("foo[0s]").contains("duration must be greater than 0"));
    assert!(e("foo[0]").contains("duration must be greater than 0"));
    assert!(e("foo[1m - 1m]").contains("duration must be greater than 0"));
    assert!(e("foo[5m:-1m]").contains("duration must be greater than 0"));
    assert!(e_default("foo[-5m]").contains("promql-duration-expr"));
    p("foo[step() - 1m]");
    assert_eq!(
        e("foo[5m][5m]"),
        "1:8: parse error: ranges only allowed for vector selectors"
    );
    assert_eq!(
        e("foo[5m][10m:]"),
        "1:1: parse error: subquery is only allowed on instant vector, got range vector instead"
    );
}

#[test]
fn should_parse_offset_and_at_in_either_order() {
    for q in [
        "foo offset 5m @ 100",
        "foo @ 100 offset 5m",
        "foo[1m] offset 5m @ 100",
        "foo[1m] @ 100 offset 5m",
        "foo[1m:] @ 100 offset 5m",
    ] {
        let printed = round(q);
        assert!(
            printed.contains("@ 100") && printed.contains("offset 5m"),
            "{printed}"
        );
    }
    let v = vs("foo offset -5m @ -1.5");
    assert_eq!(
        v.offset.as_ref().and_then(|d| d.constant_ms()),
        Some(-300_000)
    );
    assert_eq!(v.at, Some(AtModifier::Timestamp(-1500)));
    assert_eq!(vs("foo @ start()").at, Some(AtModifier::Start));
    assert_eq!(vs("foo @ end()").at, Some(AtModifier::End));
    assert_eq!(
        vs("foo offset 50").offset.and_then(|d| d.constant_ms()),
        Some(50_000)
    );
    assert_eq!(
        round("foo @ start() offset -1m"),
        "foo @ start() offset -1m"
    );
}

#[test]
fn should_report_modifier_errors_with_upstream_wording() {
    assert_eq!(
        e("foo offset 1m offset 2m"),
        "1:15: parse error: offset may not be set multiple times"
    );
    assert_eq!(
        e("foo @ 1 @ 2"),
        "1:9: parse error: @ <timestamp> may not be set multiple times"
    );
    assert!(e("sum(foo) offset 1m").contains(
        "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"
    ));
    assert!(e("rate(foo[1m]) @ 1").contains("@ modifier must be preceded by"));
    assert_eq!(
        e("foo @ Inf"),
        "1:7: parse error: timestamp out of bounds for @ modifier: +Inf"
    );
    assert_eq!(
        e("foo offset"),
        "1:11: parse error: unexpected end of input in offset, expected duration"
    );
    assert!(e("foo @ bar").contains("unexpected identifier \"bar\" in @, expected timestamp"));
}

// ---------------------------------------------------------------------------------
// Duration expressions
// ---------------------------------------------------------------------------------

#[test]
fn should_parse_duration_expressions() {
    let Expr::MatrixSelector(m) = p("foo[5m + 1m * 2]") else {
        panic!()
    };
    assert_eq!(m.range.constant_ms(), Some(420_000));
    let Expr::Subquery(s) = p("foo[step() * 10:step()]") else {
        panic!()
    };
    assert!(s.range.is_dynamic());
    assert_eq!(s.range.eval_ms(15_000, 0), Ok(150_000));
    assert_eq!(
        vs("foo offset -(1h / 2)")
            .offset
            .and_then(|d| d.constant_ms()),
        Some(-1_800_000)
    );
    let Expr::MatrixSelector(m) = p("foo[max(5m, range() / 10)]") else {
        panic!()
    };
    assert_eq!(m.range.eval_ms(0, 3_600_000), Ok(360_000));
    assert_eq!(m.range.eval_ms(0, 0), Ok(300_000));
    let Expr::MatrixSelector(m) = p("foo[2 ^ 3 ^ 2]") else {
        panic!()
    };
    assert_eq!(m.range.constant_ms(), Some(512_000));
    for q in [
        "foo[5m + 1m * 2]",
        "foo[(5m + 1m) * 2]",
        "foo[-(-5m)]",
        "foo[step() * 10:step()]",
        "foo offset (1h / 2)",
        "foo offset -step()",
        "foo offset min(1h, range())",
        "foo[1h % 7m:]",
        "foo[2 ^ 3 ^ 2]",
        "foo[(2 ^ 3) ^ 2]",
    ] {
        round(q);
    }
}

#[test]
fn should_reject_duration_expressions_without_the_feature() {
    assert!(e_default("foo[5m + 1m]").contains("promql-duration-expr"));
    assert!(e_default("foo offset step()").contains("promql-duration-expr"));
    assert!(parse("foo[5m] offset -1m").is_ok());
    // `offset` takes a primary: the sum is an ordinary binary expression.
    assert!(matches!(p("foo offset 1m + 1m"), Expr::Binary(_)));
}

#[test]
fn should_evaluate_duration_edge_cases_without_panicking() {
    let Expr::MatrixSelector(m) = p("foo[1m / (step() - step())]") else {
        panic!()
    };
    assert!(m.range.eval_ms(1000, 0).is_err());
    assert_eq!(
        e("foo[10 ^ 300]"),
        "1:5: parse error: duration out of range: 1e300s"
    );
    assert!(e("foo offset (1m / 0)").contains("division by zero"));
    let Expr::MatrixSelector(m) = p("foo[step() ^ 300]") else {
        panic!()
    };
    assert!(m.range.eval_ms(10_000, 0).is_err());
    assert!(e("foo[1e300]").contains("duration out of range"));
}

#[test]
fn should_parse_step_and_range_as_scalar_functions() {
    for q in [
        "step()",
        "range()",
        "start()",
        "end()",
        "vector(step())",
        "metric * step()",
        "start() + range()",
    ] {
        round(q);
    }
    assert_eq!(p("step()").value_type(), ValueType::Scalar);
    assert_eq!(
        e_default("step()"),
        "1:1: parse error: function \"step\" is not enabled"
    );
}

// ---------------------------------------------------------------------------------
// Extended range selectors
// ---------------------------------------------------------------------------------

#[test]
fn should_parse_anchored_and_smoothed() {
    let Expr::Call(c) = p("rate(foo[5m] anchored)") else {
        panic!()
    };
    let Expr::MatrixSelector(m) = &c.args[0] else {
        panic!()
    };
    assert!(m.vs.anchored && !m.vs.smoothed);
    assert!(vs("foo smoothed").smoothed);
    for q in [
        "rate(foo[5m] anchored)",
        "increase(foo[5m] smoothed)",
        "foo smoothed",
        "foo[5m] offset 1m anchored",
        "changes(foo[5m] anchored)",
    ] {
        round(q);
    }
}

#[test]
fn should_restrict_anchored_and_smoothed() {
    assert!(
        e("sum_over_time(foo[5m] smoothed)")
            .contains("smoothed modifier can only be used with: delta, increase, rate")
    );
    assert!(e("max_over_time(foo[5m] anchored)").contains(
        "anchored modifier can only be used with: changes, delta, increase, rate, resets"
    ));
    assert!(e("foo[5m] anchored smoothed").contains("cannot be used together"));
    assert!(e("foo anchored").contains("range vector selectors"));
    assert!(e("sum(foo) smoothed").contains("must be preceded by a vector selector"));
    assert!(e_default("rate(foo[5m] anchored)").contains("promql-extended-range-selectors"));
}

// ---------------------------------------------------------------------------------
// Binary operators
// ---------------------------------------------------------------------------------

fn shape(e: &Expr) -> String {
    match e {
        Expr::Binary(b) => format!("({} {} {})", shape(&b.lhs), b.op, shape(&b.rhs)),
        Expr::Unary(u) => format!("(-{})", shape(&u.expr)),
        Expr::Paren(x) => shape(&x.expr),
        other => other.to_string(),
    }
}

#[test]
fn should_apply_precedence_and_associativity() {
    for (q, want) in [
        ("a + b * c", "(a + (b * c))"),
        ("a * b + c", "((a * b) + c)"),
        ("a - b - c", "((a - b) - c)"),
        ("a ^ b ^ c", "(a ^ (b ^ c))"),
        ("a or b and c unless d", "(a or ((b and c) unless d))"),
        ("a > b + c", "(a > (b + c))"),
        ("a atan2 b * c", "((a atan2 b) * c)"),
        ("-a ^ b", "(-(a ^ b))"),
        ("-a * b", "((-a) * b)"),
        ("2 ^ -1", "(2 ^ -1)"),
        ("a == b != c", "((a == b) != c)"),
        ("h </ 2 * 3", "(h </ (2 * 3))"),
        ("h >/ 1 </ 5", "((h >/ 1) </ 5)"),
        ("h >/ on(le) f", "(h >/ f)"),
    ] {
        assert_eq!(shape(&p(q)), want, "{q}");
        round(q);
    }
}

#[test]
fn should_parse_vector_matching() {
    let Expr::Binary(b) = p("a * on(x, y) group_left(z) b") else {
        panic!()
    };
    let m = b.modifier.unwrap();
    assert_eq!(
        m.matching,
        Some(LabelModifier::Include(vec!["x".into(), "y".into()]))
    );
    assert_eq!(m.card, VectorMatchCardinality::ManyToOne(vec!["z".into()]));
    let Expr::Binary(b) = p("a and b") else {
        panic!()
    };
    assert!(b.modifier.is_none());
    let Expr::Binary(b) = p("a and ignoring(x) b") else {
        panic!()
    };
    assert_eq!(b.modifier.unwrap().card, VectorMatchCardinality::ManyToMany);
    for q in [
        "a * on(x, y) group_left(z) b",
        "a / ignoring(x) group_right b",
        "a > bool b",
        "1 > bool 2",
        "a == bool on() b",
        "a or on(x) b",
        "a + fill(0) b",
        "a + fill_left(-1) fill_right(2) b",
        "a + on(x) group_left fill_right(1.5) b",
        "a + fill_right(1) fill_left(2) b",
    ] {
        round(q);
    }
    assert_eq!(
        round("a * on(x) group_left b"),
        "a * on (x) group_left () b"
    );
}

#[test]
fn should_report_binary_operator_errors() {
    assert_eq!(
        e("a  +  bool b"),
        "1:4: parse error: bool modifier can only be used on comparison operators"
    );
    assert_eq!(
        e("1 > 2"),
        "1:3: parse error: comparisons between scalars must use BOOL modifier"
    );
    assert!(e("a and on(x) group_left b").contains("no grouping allowed for \"and\" operation"));
    assert!(e("1 and a").contains("set operator \"and\" not allowed in binary scalar expression"));
    assert!(e("1 + on(x) a").contains("vector matching only allowed between instant vectors"));
    assert!(
        e("a + on(x) group_left(x) b")
            .contains("label \"x\" must not occur in ON and GROUP clause at once")
    );
    assert_eq!(
        e("a + b[5m]"),
        "1:5: parse error: binary expression must contain only scalar and instant vector types"
    );
    assert!(e("a + \"x\"").contains("binary expression must contain only"));
    assert!(e("a and fill(1) b").contains("fill modifiers are not allowed for set operator"));
    assert!(e("1 + fill(1) a").contains("fill modifiers are only allowed between instant vectors"));
    assert!(e("a + fill(1) fill(2) b").contains("fill modifiers may not be set multiple times"));
    assert!(e("a + fill(x) b").contains("expected number"));
    assert!(e_default("a + fill(1) b").contains("promql-binop-fill-modifiers"));
    assert_eq!(e("a +"), "1:4: parse error: unexpected end of input");
    assert_eq!(e("a + * b"), "1:5: parse error: unexpected <op:*>");
}

#[test]
fn should_report_unary_type_errors() {
    assert_eq!(
        e("-\"x\""),
        "1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got \"string\""
    );
    assert!(e("-foo[5m]").contains("got \"range vector\""));
}

// ---------------------------------------------------------------------------------
// Aggregations
// ---------------------------------------------------------------------------------

#[test]
fn should_parse_aggregations_with_grouping_before_or_after() {
    let a = p("sum by (job) (foo)");
    let b = p("sum(foo) by (job)");
    assert_eq!(
        format!("{:?}", a.clone().strip_spans()),
        format!("{:?}", b.clone().strip_spans())
    );
    let Expr::Aggregate(agg) = b else { panic!() };
    assert_eq!(agg.span, Span::new(0, 17));
    for q in [
        "sum by (job) (foo)",
        "avg without (a, b) (foo)",
        "count by () (foo)",
        "topk(5, foo)",
        "bottomk by (x) (2, foo)",
        "quantile(0.9, foo)",
        "count_values(\"value\", foo)",
        "limitk(2, foo)",
        "limit_ratio(0.5, foo)",
        "group(foo)",
        "stddev(foo) + stdvar(foo)",
        "min(foo) - max(foo)",
        "SUM BY (job) (foo)",
    ] {
        round(q);
    }
    assert_eq!(round("sum(foo) by (job,)"), "sum by (job) (foo)");
}

#[test]
fn should_check_aggregation_arguments() {
    assert_eq!(
        e("sum()"),
        "1:1: parse error: no arguments for aggregate expression \"sum\" provided"
    );
    assert!(e("sum(a, b)").contains(
        "wrong number of arguments for aggregate expression provided, expected 1, got 2"
    ));
    assert!(e("topk(a)").contains("expected 2, got 1"));
    assert_eq!(
        e("topk(\"a\", foo)"),
        "1:6: parse error: expected type scalar in aggregation parameter, got string"
    );
    assert!(
        e("count_values(1, foo)")
            .contains("expected type string in aggregation parameter, got scalar")
    );
    assert!(
        e("sum(foo[5m])")
            .contains("expected type instant vector in aggregation expression, got range vector")
    );
    assert!(e("sum by (job) by (x) (foo)").contains("unexpected"));
    assert!(e("sum by (a:b) (foo)").contains("in grouping opts, expected label"));
    assert_eq!(
        e("sum by job (foo)"),
        "1:8: parse error: unexpected identifier \"job\" in grouping opts, expected \"(\""
    );
    assert!(e_default("limitk(1, foo)").contains("promql-experimental-functions"));
}

// ---------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------

#[test]
fn should_parse_function_calls() {
    for q in [
        "rate(foo[5m])",
        "time()",
        "round(foo)",
        "round(foo, 5)",
        "label_replace(up, \"a\", \"$1\", \"b\", \"(.*)\")",
        "label_join(up, \"a\", \",\")",
        "label_join(up, \"a\", \",\", \"b\", \"c\", \"d\")",
        "histogram_quantile(0.9, sum by (le) (rate(x[5m])))",
        "sort_by_label(up, \"a\", \"b\")",
        "info(up, {k8s_cluster_name=~\".+\"})",
        "double_exponential_smoothing(foo[5m], 0.5, 0.5)",
        "mad_over_time(foo[5m])",
        "ts_of_max_over_time(foo[5m])",
        "first_over_time(foo[5m])",
        "quantile_over_time(0.5, foo[5m])",
        "absent(nonexistent{job=\"x\"})",
        "vector(1)",
        "scalar(foo)",
        "day_of_week()",
        "predict_linear(foo[1h], 3600)",
    ] {
        round(q);
    }
}

#[test]
fn should_check_function_arguments() {
    assert_eq!(
        e("rate(foo)"),
        "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"
    );
    assert_eq!(
        e("foo_bar(x)"),
        "1:1: parse error: unknown function with name \"foo_bar\""
    );
    assert!(e("time(1)").contains("expected 0 argument(s) in call to \"time\", got 1"));
    assert!(e("round()").contains("expected at least 1 argument(s) in call to \"round\", got 0"));
    assert!(
        e("round(a, 1, 2)").contains("expected at most 2 argument(s) in call to \"round\", got 3")
    );
    assert!(e("label_join(a, \"b\")").contains("expected at least 3 argument(s)"));
    assert!(
        e("label_join(a, \"b\", \",\", 1)")
            .contains("expected type string in call to function \"label_join\", got scalar")
    );
    assert!(
        e("abs(1)")
            .contains("expected type instant vector in call to function \"abs\", got scalar")
    );
    assert_eq!(
        e("rate(foo[5m],)"),
        "1:13: parse error: trailing commas not allowed in function call args"
    );
    assert_eq!(
        e("rate(foo[5m]"),
        "1:13: parse error: unclosed left parenthesis"
    );
    assert!(
        e_default("mad_over_time(foo[5m])").contains("function \"mad_over_time\" is not enabled")
    );
    assert!(e("info(up, sum(x))").contains("expected label selectors"));
}

// ---------------------------------------------------------------------------------
// General errors and positions
// ---------------------------------------------------------------------------------

#[test]
fn should_report_general_errors_with_positions() {
    assert_eq!(e(""), "1:1: parse error: no expression found in input");
    assert_eq!(
        e("  # comment"),
        "1:12: parse error: no expression found in input"
    );
    assert_eq!(
        e("foo bar"),
        "1:5: parse error: unexpected identifier \"bar\""
    );
    assert_eq!(e("(foo"), "1:5: parse error: unclosed left parenthesis");
    assert_eq!(
        e("foo)"),
        "1:4: parse error: unexpected right parenthesis ')'"
    );
    assert_eq!(e("foo]"), "1:4: parse error: unexpected right bracket ']'");
    assert_eq!(e("foo}"), "1:4: parse error: unexpected right brace '}'");
    assert_eq!(
        e("foo\n  + \n  )"),
        "3:3: parse error: unexpected right parenthesis ')'"
    );
    assert_eq!(
        e("sum(\n  rate(foo)\n)"),
        "2:8: parse error: expected type range vector in call to function \"rate\", got instant vector"
    );
    p("1 + by");
    assert!(e("foo{a=\"b\"} == on").contains("grouping opts"));
}

#[test]
fn should_carry_spans_for_every_node() {
    let q = "sum(rate(foo[5m])) + 1";
    let Expr::Binary(b) = p(q) else { panic!() };
    assert_eq!(b.span, Span::new(0, q.len()));
    assert_eq!(
        &q[b.lhs.span().start..b.lhs.span().end],
        "sum(rate(foo[5m]))"
    );
    let Expr::Aggregate(a) = &*b.lhs else {
        panic!()
    };
    assert_eq!(&q[a.expr.span().start..a.expr.span().end], "rate(foo[5m])");
    let Expr::Call(c) = &*a.expr else { panic!() };
    assert_eq!(&q[c.args[0].span().start..c.args[0].span().end], "foo[5m]");
    let q = "(foo offset 5m @ 10)[1m:]";
    let Expr::Subquery(s) = p(q) else { panic!() };
    assert_eq!(s.span, Span::new(0, q.len()));
    let Expr::Paren(par) = &*s.expr else { panic!() };
    assert_eq!(
        &q[par.expr.span().start..par.expr.span().end],
        "foo offset 5m @ 10"
    );
}

#[test]
fn should_parse_or_between_matcher_groups_only_when_asked() {
    let options = ParserOptions {
        features: Features::all(),
        or_matchers: true,
        ..Default::default()
    };
    let q = r#"foo{a="1", b="2" or c="3"}"#;
    let Expr::VectorSelector(v) = parse_with(q, &options).unwrap() else {
        panic!()
    };
    assert!(v.matchers.is_empty());
    assert_eq!(v.or_matchers.len(), 2);
    assert_eq!(v.or_matchers[0].len(), 2);
    assert_eq!(v.or_matchers[1][0].name, "c");
    let printed = parse_with(q, &options).unwrap().to_string();
    assert_eq!(printed, q);
    assert!(
        e(q).contains("unexpected <op:or> in label matching"),
        "{}",
        e(q)
    );
    let err = parse_with(r#"{a="1" or b=""}"#, &options).unwrap_err();
    assert!(
        err.message.contains("at least one non-empty matcher"),
        "{err}"
    );
    let err = parse_with(r#"{a="1" or}"#, &options).unwrap_err();
    assert!(err.message.contains("expected label matcher"), "{err}");
    // A label may still be called `or`.
    assert!(parse_with(r#"{or="1" or or="2"}"#, &options).is_ok());
}

#[test]
fn should_walk_the_tree_parents_first() {
    let e = p("topk(3, sum by (a) (rate(x[5m]))) + on() -y");
    let mut seen = Vec::new();
    e.walk(&mut |n| {
        seen.push(n.to_string());
        true
    });
    assert_eq!(
        seen,
        [
            "topk(3, sum by (a) (rate(x[5m]))) + on () -y",
            "topk(3, sum by (a) (rate(x[5m])))",
            "3",
            "sum by (a) (rate(x[5m]))",
            "rate(x[5m])",
            "x[5m]",
            "-y",
            "y",
        ]
    );
    let mut calls = 0;
    e.walk(&mut |n| {
        calls += 1;
        !matches!(n, Expr::Aggregate(_))
    });
    assert_eq!(calls, 4);
}

#[test]
fn should_limit_nesting_depth() {
    let deep = format!("{}1{}", "(".repeat(600), ")".repeat(600));
    assert!(e(&deep).contains("nests more than 512 levels"));
    let ok = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    p(&ok);
    let chain = vec!["a"; 2000].join(" + ");
    assert!(e(&chain).contains("nests more than 512 levels"));
    let unary = format!("{}a", "-".repeat(2000));
    assert!(e(&unary).contains("nests more than"));
    let subqueries = format!("a{}", "[1m:]".repeat(1000));
    assert!(e(&subqueries).contains("nests more than"));
    let small = ParserOptions {
        features: Features::all(),
        max_depth: 3,
        ..Default::default()
    };
    assert!(parse_with("((1))", &small).is_ok());
    assert!(parse_with("((((1))))", &small).is_err());
}

#[test]
fn should_parse_at_the_depth_limit_without_overflowing_the_stack() {
    // 500 nested calls and parentheses: near the default limit, on a test thread's
    // stack.
    let q = format!("{}foo{}", "abs((".repeat(120), "))".repeat(120));
    p(&q);
    let q = format!("{}1{}", "(".repeat(500), ")".repeat(500));
    let printed = p(&q).to_string();
    assert_eq!(printed.len(), q.len());
}

#[test]
fn should_name_features_after_prometheus_flags() {
    assert_eq!(
        Features::from_flags([
            "promql-experimental-functions",
            "promql-duration-expr",
            "promql-extended-range-selectors",
            "promql-binop-fill-modifiers"
        ]),
        Ok(Features::all())
    );
    assert_eq!(Features::from_flags(["nope"]), Err("nope".to_string()));
    assert_eq!(ParserOptions::default().max_depth, 512);
    assert_eq!(Features::default(), Features::from_flags([]).unwrap());
}

#[test]
fn should_pretty_print_long_queries_over_lines() {
    let q = "sum by (job, instance) (rate(http_requests_total{job=\"api-server\", code=~\"5..\"}[5m])) / on (job) group_left () sum by (job) (rate(http_requests_total[5m])) > bool 0.05";
    let pretty = p(q).pretty();
    let want = "    sum by (job, instance) (rate(http_requests_total{job=\"api-server\", code=~\"5..\"}[5m]))
  / on (job) group_left ()
    sum by (job) (rate(http_requests_total[5m]))
> bool
  0.05";
    assert_eq!(pretty, want);
    assert_eq!(
        format!("{:?}", p(&pretty).strip_spans()),
        format!("{:?}", p(q).strip_spans())
    );
    assert_eq!(p("rate(foo[5m])").pretty(), "rate(foo[5m])");
    let long = format!("sum(rate({}[5m]))", "a".repeat(100));
    assert_eq!(
        p(&long).pretty(),
        format!("sum(\n  rate(\n    {}[5m]\n  )\n)", "a".repeat(100))
    );
}

#[test]
fn should_parse_deep_queries_on_a_small_thread_stack() {
    let q = format!("{}foo{}", "abs((".repeat(250), "))".repeat(250));
    let handle = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            let e = parse_with(&q, &all()).map(|e| (e.to_string().len(), e.pretty().len()));
            e.is_ok()
        })
        .unwrap();
    assert!(handle.join().unwrap());
}

mod props;
