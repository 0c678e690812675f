//! The project's own PromQL parser: lexer, syntax tree, parser, type checker and
//! printer for the whole current upstream language (Prometheus 3.x), experimental
//! parts included behind [`Features`].
//!
//! ```
//! use opendata_timeseries::promql::parser::{self, Expr, Features, ParserOptions};
//!
//! let expr = parser::parse("sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m]))")
//!     .unwrap();
//! let Expr::Aggregate(agg) = &expr else { panic!() };
//! assert_eq!(agg.op.name(), "sum");
//! assert_eq!(expr.to_string(), "sum by (job) (rate(http_requests_total{code=~\"5..\"}[5m]))");
//!
//! // Errors carry a span and print in Prometheus's shape.
//! let err = parser::parse("rate(foo)").unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "1:6: parse error: expected type range vector in call to function \"rate\", got instant vector"
//! );
//!
//! // Experimental syntax needs its feature.
//! assert!(parser::parse("foo[5m + step()]").is_err());
//! let options = ParserOptions { features: Features::all(), ..Default::default() };
//! assert!(parser::parse_with("foo[5m + step()]", &options).is_ok());
//! ```
//!
//! Spans are byte ranges of the query text. Untrusted input is safe: no input
//! panics, recursion (and the depth of the tree) is bounded by
//! [`ParserOptions::max_depth`], and time is linear in the input apart from regular
//! expression compilation.

mod ast;
mod check;
mod display;
mod error;
mod functions;
mod lexer;
mod parse;

pub use ast::*;
pub use display::{PRETTY_LINE_WIDTH, format_duration, format_number};
pub use error::ParseError;
pub use functions::{ANCHORED_FUNCTIONS, FUNCTIONS, Function, SMOOTHED_FUNCTIONS, get_function};

/// The default nesting limit, as `timeseries.query.max_query_depth`.
pub const DEFAULT_MAX_DEPTH: usize = 512;

/// Experimental language features, named after Prometheus's `--enable-feature` flags.
/// All are off by default, as in Prometheus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// `promql-experimental-functions`: the functions marked experimental in
    /// [`FUNCTIONS`] and the `limitk`/`limit_ratio` aggregations.
    pub experimental_functions: bool,
    /// `promql-duration-expr`: arithmetic, `step()`, `range()`, `min()` and `max()`
    /// in ranges, subquery steps and offsets.
    pub duration_expressions: bool,
    /// `promql-extended-range-selectors`: the `anchored` and `smoothed` modifiers.
    pub extended_range_selectors: bool,
    /// `promql-binop-fill-modifiers`: `fill(v)`, `fill_left(v)`, `fill_right(v)`.
    pub fill_modifiers: bool,
}

impl Features {
    /// Every feature on.
    pub fn all() -> Features {
        Features {
            experimental_functions: true,
            duration_expressions: true,
            extended_range_selectors: true,
            fill_modifiers: true,
        }
    }

    /// The features for a list of Prometheus `--enable-feature` names; unknown names
    /// are returned as the error.
    pub fn from_flags<'a>(flags: impl IntoIterator<Item = &'a str>) -> Result<Features, String> {
        let mut f = Features::default();
        for flag in flags {
            match flag {
                "promql-experimental-functions" => f.experimental_functions = true,
                "promql-duration-expr" => f.duration_expressions = true,
                "promql-extended-range-selectors" => f.extended_range_selectors = true,
                "promql-binop-fill-modifiers" => f.fill_modifiers = true,
                other => return Err(other.to_string()),
            }
        }
        Ok(f)
    }
}

/// How to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParserOptions {
    /// The experimental features accepted.
    pub features: Features,
    /// The deepest nesting accepted (parentheses, calls, operators, subqueries):
    /// deeper input is an error, not a stack overflow.
    pub max_depth: usize,
    /// Accept `or` between groups of label matchers (`{a="1" or b="2"}`), an
    /// extension of the `promql-parser` crate that the engine supports; not upstream
    /// PromQL, so off by default.
    pub or_matchers: bool,
}

impl Default for ParserOptions {
    fn default() -> Self {
        ParserOptions {
            features: Features::default(),
            max_depth: DEFAULT_MAX_DEPTH,
            or_matchers: false,
        }
    }
}

/// Parses and type-checks a query with the default options (no experimental
/// features, depth limit [`DEFAULT_MAX_DEPTH`]).
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    parse_with(input, &ParserOptions::default())
}

/// Parses and type-checks a query.
pub fn parse_with(input: &str, options: &ParserOptions) -> Result<Expr, ParseError> {
    let expr = parse::Parser::new(input, options)
        .and_then(|mut p| p.parse_query())
        .map_err(|e| *e)?;
    check::Checker { input }.check(&expr).map_err(|e| *e)?;
    Ok(*expr)
}

/// Runs `f` with enough stack for one more level of recursion: the parser, the
/// checker and the printer recurse once per level of the tree, and a tree as deep as
/// the limit may exceed a small thread stack (debug builds use several KB per level).
fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}

#[cfg(test)]
mod tests;
