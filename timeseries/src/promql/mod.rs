//! The PromQL engine: queries parsed by the project's own [`parser`], evaluated here
//! over [`Querier`](crate::Querier).
//!
//! An instant query is a range query with one step. Every expression evaluates to a
//! value over all steps at once: an instant vector is a set of series with at most one
//! point per step, a scalar is one number per step. Range vectors (selectors with a
//! range, and subqueries) are evaluated into per-series sample lists and windowed per
//! step by the function that consumes them. The samples every selector needs are
//! loaded up front, one `select` per selector over the union of the time ranges it
//! touches, and counted against the sample limit.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use opendata_common::StorageConfig;
//! use opendata_timeseries::model::{Labels, Sample, SeriesSamples, WriteBatch};
//! use opendata_timeseries::promql::{Engine, QueryOptions, Value};
//! use opendata_timeseries::storage::Config;
//! use opendata_timeseries::{TimeSeriesConfig, TimeSeriesDb};
//!
//! let config = TimeSeriesConfig { retention_secs: 0, ..Default::default() };
//! let engine = Engine::new(config.query.clone());
//! let db = TimeSeriesDb::open(Config { storage: StorageConfig::in_memory(), timeseries: config })
//!     .await
//!     .unwrap();
//! let now = opendata_timeseries::storage::now_ms();
//! let samples = (0..10).map(|i| Sample { timestamp_ms: now - 90_000 + i * 10_000, value: (i * 10) as f64 });
//! db.write(WriteBatch {
//!     series: vec![SeriesSamples {
//!         histograms: Vec::new(),
//!         exemplars: Vec::new(),
//!         created_timestamp_ms: None,
//!         labels: Labels::from_pairs([("__name__", "requests_total"), ("job", "api")]),
//!         samples: samples.collect(),
//!     }],
//!     metadata: vec![],
//! })
//! .await
//! .unwrap();
//! let result = engine
//!     .instant_query(&db.querier(), "sum by (job) (rate(requests_total[1m]))", now, &QueryOptions::default())
//!     .await
//!     .unwrap();
//! let Value::Vector(v) = result.value else { panic!() };
//! assert_eq!(v[0].labels, Labels::from_pairs([("job", "api")]));
//! assert!((v[0].f - 1.0).abs() < 1e-9);
//! # });
//! ```

mod aggregate;
mod binary;
mod eval;
mod extended;
mod functions;
mod histogram;
mod native;
pub mod parser;
mod value;

pub use functions::format_float;
pub use value::{InstantSample, RangeSeries, Value};

use std::collections::HashMap;
use std::time::{Duration, Instant};

use opendata_common::budget::{MemoryBudget, Reservation};

pub use self::parser::Features;
use self::parser::{Expr, MatchOp, ParserOptions, VectorSelector};

use self::eval::{Evaluator, Grid, Loaded, Planner};
use crate::config::QueryConfig;
use crate::model::{METRIC_NAME, MatchKind, Matcher};
use crate::storage::Querier;

/// Bytes of the memory budget a loaded series is counted as beside its samples: its
/// labels and the vectors that hold them.
fn series_overhead(s: &crate::model::Series) -> u64 {
    let labels: usize = s
        .labels
        .as_slice()
        .iter()
        .map(|l| l.name.len() + l.value.len() + 48)
        .sum();
    (labels + 64) as u64
}

/// The default step of a subquery without one (Prometheus's default evaluation
/// interval).
pub const DEFAULT_SUBQUERY_STEP_MS: i64 = 60_000;

/// The matcher groups of a selector (one group, or one per `or` alternative), each with
/// the metric name written before the braces.
pub fn selector_matchers(vs: &VectorSelector) -> Result<Vec<Vec<Matcher>>, String> {
    let convert = |ms: &[parser::Matcher]| -> Result<Vec<Matcher>, String> {
        let mut out: Vec<Matcher> = ms
            .iter()
            .map(|m| {
                let kind = match m.op {
                    MatchOp::Equal => MatchKind::Equal,
                    MatchOp::NotEqual => MatchKind::NotEqual,
                    MatchOp::Re => MatchKind::Regex,
                    MatchOp::NotRe => MatchKind::NotRegex,
                };
                Matcher::new(kind, m.name.clone(), m.value.clone())
            })
            .collect::<Result<_, _>>()?;
        if let Some(name) = &vs.name
            && !out
                .iter()
                .any(|m| m.name == METRIC_NAME && m.kind == MatchKind::Equal && &m.value == name)
        {
            out.push(Matcher::equal(METRIC_NAME, name.clone()));
        }
        if out.iter().all(Matcher::matches_empty) {
            return Err(format!(
                "'{}': a selector needs at least one matcher that does not match the empty string",
                Expr::VectorSelector(vs.clone())
            ));
        }
        Ok(out)
    };
    if vs.or_matchers.is_empty() {
        Ok(vec![convert(&vs.matchers)?])
    } else {
        vs.or_matchers.iter().map(|ms| convert(ms)).collect()
    }
}

/// Why a query failed, with Prometheus's error type.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse (`bad_data`, HTTP 400); the parser's message.
    #[error("{0}")]
    Parse(String),
    /// The query's parameters or arguments are invalid (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed: e.g. many-to-many matching, too many samples or series
    /// (`execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The query ran longer than its timeout (`timeout`, HTTP 503).
    #[error("{0}")]
    Timeout(String),
    /// The server's memory budget is held by other work; the query may run later
    /// (`unavailable`, HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// Reading from storage failed (`internal`, HTTP 500).
    #[error(transparent)]
    Storage(#[from] crate::Error),
}

impl QueryError {
    /// Prometheus's `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::Parse(_) | QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Unavailable(_) => "unavailable",
            QueryError::Storage(_) => "internal",
        }
    }

    /// The HTTP status Prometheus answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::Parse(_) | QueryError::BadData(_) => 400,
            QueryError::Execution(_) => 422,
            QueryError::Timeout(_) | QueryError::Unavailable(_) => 503,
            QueryError::Storage(_) => 500,
        }
    }
}

/// Per-query settings; unset fields take the engine's configured defaults.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Shorter timeout than the configured one.
    pub timeout: Option<Duration>,
    /// Lookback delta for this query.
    pub lookback_delta_ms: Option<i64>,
}

/// A query's result with the warnings and infos evaluation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// Warnings (e.g. a non-counter passed to `rate`), in Prometheus's words.
    pub warnings: Vec<String>,
    /// Infos, in Prometheus's words.
    pub infos: Vec<String>,
    /// Samples loaded from storage.
    pub samples_loaded: u64,
}

/// Checks a range query's bounds and step.
fn check_range(start_ms: i64, end_ms: i64, step_ms: i64) -> Result<(), QueryError> {
    if step_ms <= 0 {
        return Err(QueryError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end_ms < start_ms {
        return Err(QueryError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    Ok(())
}

/// The parser's options for the engine's limits and features: the nesting limit is
/// `timeseries.query.max_query_depth`, and `or` between matcher groups is accepted.
pub fn parser_options(config: &QueryConfig, features: Features) -> ParserOptions {
    ParserOptions {
        features,
        max_depth: config.max_query_depth,
        or_matchers: true,
    }
}

/// Parses PromQL text into a syntax tree under the limits of `config` and with the
/// experimental `features`. A query longer than `max_query_bytes` is
/// [`QueryError::BadData`]; a syntax or type error (nesting deeper than
/// `max_query_depth` included, which names the setting) is [`QueryError::Parse`] with
/// the parser's message, `<line>:<column>: parse error: <message>`.
pub fn parse_expr(
    text: &str,
    config: &QueryConfig,
    features: Features,
) -> Result<Expr, QueryError> {
    check_limits(text, config)?;
    parser::parse_with(text, &parser_options(config, features)).map_err(|e| {
        let mut message = e.to_string();
        if e.message.starts_with("the expression nests more than") {
            message.push_str(" (timeseries.query.max_query_depth)");
        }
        QueryError::Parse(message)
    })
}

/// Checks a query's text against the size limit before anything parses it (the nesting
/// limit is the parser's `max_depth`).
pub fn check_limits(text: &str, config: &QueryConfig) -> Result<(), QueryError> {
    if text.len() > config.max_query_bytes {
        return Err(QueryError::BadData(format!(
            "the query is {} bytes long; the limit is {} (timeseries.query.max_query_bytes)",
            text.len(),
            config.max_query_bytes
        )));
    }
    Ok(())
}

/// Runs `f` with enough stack for one more level of a recursion that follows the
/// syntax tree (whose depth the parser bounds): evaluation, planning and the tree
/// walks of callers (the query API's JSON tree) stay off the end of small stacks.
pub fn with_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}

/// Drops a syntax tree without recursion: dropping a tree as deep as a raised
/// `max_query_depth` allows one level at a time could overflow a small stack.
pub fn drop_tree(e: Expr) {
    fn leaf() -> Expr {
        Expr::NumberLiteral(parser::NumberLiteral {
            val: 0.0,
            span: parser::Span::default(),
        })
    }
    let mut pending = vec![e];
    while let Some(mut e) = pending.pop() {
        let mut take = |b: &mut Box<Expr>| pending.push(std::mem::replace(&mut **b, leaf()));
        match &mut e {
            Expr::Aggregate(a) => {
                take(&mut a.expr);
                if let Some(p) = &mut a.param {
                    take(p);
                }
            }
            Expr::Unary(u) => take(&mut u.expr),
            Expr::Paren(p) => take(&mut p.expr),
            Expr::Subquery(s) => take(&mut s.expr),
            Expr::Binary(b) => {
                take(&mut b.lhs);
                take(&mut b.rhs);
            }
            Expr::Call(c) => pending.append(&mut c.args),
            Expr::NumberLiteral(_)
            | Expr::StringLiteral(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_) => {}
        }
    }
}

/// A parsed query, ready to evaluate (any number of times).
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    expr: Expr,
}

impl Drop for Query {
    fn drop(&mut self) {
        let expr = std::mem::replace(
            &mut self.expr,
            Expr::NumberLiteral(parser::NumberLiteral {
                val: 0.0,
                span: parser::Span::default(),
            }),
        );
        drop_tree(expr);
    }
}

impl Query {
    /// Parses `text` under the default limits, without experimental features; a
    /// syntax or type error is [`QueryError::Parse`].
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        Self::parse_limited(text, &QueryConfig::default())
    }

    /// Parses `text` under the limits of `config`, without experimental features.
    pub fn parse_limited(text: &str, config: &QueryConfig) -> Result<Self, QueryError> {
        Self::parse_with(text, config, Features::default())
    }

    /// Parses `text` under the limits of `config` with the experimental `features`.
    pub fn parse_with(
        text: &str,
        config: &QueryConfig,
        features: Features,
    ) -> Result<Self, QueryError> {
        let expr = parse_expr(text, config, features)?;
        Self::from_expr(text, expr)
    }

    /// A query from a tree parsed from `text` (by [`parse_expr`] or the parser with the
    /// options [`parser_options`] gives), so that a caller that needs the tree too
    /// parses once.
    pub fn from_expr(text: &str, mut expr: Expr) -> Result<Self, QueryError> {
        functions::prepare_info(&mut expr)?;
        Ok(Self {
            text: text.to_string(),
            expr,
        })
    }

    /// The query as it was written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The syntax tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

/// The PromQL engine. Cheap to clone; holds no data between queries.
#[derive(Debug, Clone)]
pub struct Engine {
    config: QueryConfig,
    budget: MemoryBudget,
    features: Features,
}

impl Engine {
    /// An engine with these limits and defaults, and no memory budget.
    pub fn new(config: QueryConfig) -> Self {
        Self {
            config,
            budget: MemoryBudget::default(),
            features: Features::default(),
        }
    }

    /// The engine, with the samples and points every query holds reserved from `budget`
    /// (16 bytes each, plus each loaded series' labels). A query the budget cannot
    /// take fails at once: with `unavailable` (503) while other work holds the rest,
    /// with `execution` (422) when it alone would hold more than the budget.
    pub fn with_budget(mut self, budget: MemoryBudget) -> Self {
        self.budget = budget;
        self
    }

    /// The engine, accepting the experimental language `features` (all off by
    /// default, as in Prometheus; see [`TimeSeriesConfig::promql_features`](crate::TimeSeriesConfig::promql_features)).
    pub fn with_features(mut self, features: Features) -> Self {
        self.features = features;
        self
    }

    /// The engine's limits and defaults.
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// The experimental language features the engine accepts.
    pub fn features(&self) -> Features {
        self.features
    }

    /// The options the engine parses with.
    pub fn parser_options(&self) -> ParserOptions {
        parser_options(&self.config, self.features)
    }

    /// Parses a query under the engine's limits and features.
    pub fn parse(&self, text: &str) -> Result<Query, QueryError> {
        Query::parse_with(text, &self.config, self.features)
    }

    /// Parses a query into its syntax tree under the engine's limits and features (for
    /// callers that show the tree rather than run it).
    pub fn parse_expr(&self, text: &str) -> Result<Expr, QueryError> {
        parse_expr(text, &self.config, self.features)
    }

    /// Parses and evaluates `query` at `time_ms`. A range vector at the root returns a
    /// matrix.
    pub async fn instant_query(
        &self,
        querier: &Querier,
        query: &str,
        time_ms: i64,
        options: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        self.instant(querier, &self.parse(query)?, time_ms, options)
            .await
    }

    /// Evaluates a parsed query at `time_ms`.
    pub async fn instant(
        &self,
        querier: &Querier,
        query: &Query,
        time_ms: i64,
        options: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        self.run(querier, query, time_ms, time_ms, 0, options).await
    }

    /// Parses and evaluates `query` at every `step_ms` from `start_ms` through `end_ms`;
    /// the result is a matrix (or an error for a query that is not a scalar or instant
    /// vector).
    pub async fn range_query(
        &self,
        querier: &Querier,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        options: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        check_range(start_ms, end_ms, step_ms)?;
        let query = self.parse(query)?;
        self.run(querier, &query, start_ms, end_ms, step_ms, options)
            .await
    }

    /// Evaluates a parsed query over a range.
    pub async fn range(
        &self,
        querier: &Querier,
        query: &Query,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        options: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        check_range(start_ms, end_ms, step_ms)?;
        self.run(querier, query, start_ms, end_ms, step_ms, options)
            .await
    }

    /// Loads and evaluates; `step_ms == 0` means an instant query.
    async fn run(
        &self,
        querier: &Querier,
        query: &Query,
        start: i64,
        end: i64,
        step: i64,
        options: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        let mut timeout = Duration::from_millis(self.config.timeout_ms);
        if let Some(t) = options.timeout {
            timeout = timeout.min(t);
        }
        let deadline = Instant::now() + timeout;
        let expr = &query.expr;
        let lookback = options
            .lookback_delta_ms
            .unwrap_or(self.config.lookback_delta_ms as i64);
        let instant = step == 0;
        let planner = Planner {
            query_start: start,
            query_end: end,
            query_step: step,
            lookback,
            default_step: DEFAULT_SUBQUERY_STEP_MS,
            max_points: self.config.max_points_per_series,
        };
        let mut plan = HashMap::new();
        planner.plan(expr, start, end, &mut plan)?;
        let stats = eval::stats_selectors(expr);

        // Load every selector's samples, within the time left, reserving their memory.
        let max_samples = self.config.max_samples;
        let mut memory = Reservation::empty(&self.budget);
        let load = async {
            let mut data: Loaded = HashMap::new();
            let mut total: u64 = 0;
            for (key, (lo, hi, vs)) in plan {
                let groups = selector_matchers(vs).map_err(QueryError::BadData)?;
                let mut series = Vec::new();
                for matchers in &groups {
                    let got = querier.select(matchers, lo, hi).await?.collect().await?;
                    series.extend(got);
                }
                if groups.len() > 1 {
                    series.sort_by(|a, b| a.labels.cmp(&b.labels));
                    series.dedup_by(|a, b| a.labels == b.labels);
                }
                let mut hist_bytes = 0u64;
                let mut hist_points = 0u64;
                for s in &mut series {
                    if !s.histograms.is_empty() {
                        native::normalize_hints(&mut s.histograms, stats.contains(&key));
                        for h in &s.histograms {
                            hist_bytes += h.histogram.memory_size() as u64;
                            hist_points += eval::hist_points(&h.histogram);
                        }
                    }
                }
                let samples =
                    series.iter().map(|s| s.samples.len() as u64).sum::<u64>() + hist_points;
                let bytes = samples * eval::POINT_BYTES
                    + hist_bytes
                    + series.iter().map(series_overhead).sum::<u64>();
                memory
                    .grow(bytes)
                    .map_err(|e| eval::budget_error(e, memory.bytes()))?;
                total += samples;
                data.insert(key, series);
            }
            Ok::<_, QueryError>((data, total))
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (data, total) = tokio::time::timeout(remaining, load)
            .await
            .map_err(|_| QueryError::Timeout("query timed out in query execution".into()))??;

        let grid = if instant {
            Grid {
                start,
                step: 1,
                n: 1,
            }
        } else {
            Grid {
                start,
                step,
                n: ((end - start) / step + 1) as usize,
            }
        };
        let mut ev = Evaluator::new(
            &data,
            &query.text,
            start,
            end,
            lookback,
            DEFAULT_SUBQUERY_STEP_MS,
            deadline,
            max_samples,
            memory,
        );
        ev.query_step = step;
        let val = ev.eval(expr, grid)?;
        let value = eval::finish(val, grid, instant)?;
        let series = match &value {
            Value::Vector(v) => v.len(),
            Value::Matrix(m) => m.len(),
            _ => 0,
        };
        if self.config.max_series > 0 && series as u64 > self.config.max_series {
            return Err(QueryError::Execution(format!(
                "query returned {series} series, more than the limit of {} (timeseries.query.max_series)",
                self.config.max_series
            )));
        }
        Ok(QueryResult {
            value,
            warnings: ev.warnings,
            infos: ev.infos,
            samples_loaded: total,
        })
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;

    #[test]
    fn should_bound_the_size_and_nesting_of_queries() {
        let config = QueryConfig::default();
        let deep = format!("{}up{}", "abs(".repeat(1500), ")".repeat(1500));
        let long = vec!["1"; 2000].join("+");
        for q in [deep.as_str(), long.as_str()] {
            let err = Query::parse_limited(q, &config).unwrap_err();
            assert_eq!(err.status(), 400);
            assert!(matches!(err, QueryError::Parse(_)), "{err}");
            assert!(
                err.to_string().contains("nests more than 512 levels"),
                "{err}"
            );
            assert!(err.to_string().contains("max_query_depth"), "{err}");
        }
        let ok = format!("{}up{}", "abs(".repeat(200), ")".repeat(200));
        assert!(Query::parse_limited(&ok, &config).is_ok());
        let tight = QueryConfig {
            max_query_depth: 8,
            ..QueryConfig::default()
        };
        assert!(Query::parse_limited(&ok, &tight).is_err());
        let big = "a".repeat(config.max_query_bytes + 1);
        let err = Query::parse_limited(&big, &config).unwrap_err();
        assert!(err.to_string().contains("max_query_bytes"), "{err}");
    }

    #[test]
    fn should_report_parse_errors_with_their_position() {
        let err = Query::parse("sum(rate(x[5m])").unwrap_err();
        assert!(matches!(err, QueryError::Parse(_)));
        assert!(err.to_string().starts_with("1:"), "{err}");
        assert!(err.to_string().contains(": parse error: "), "{err}");
        let err = Query::parse("foo\n  + on(").unwrap_err();
        assert!(err.to_string().contains("parse error"), "{err}");
    }

    #[test]
    fn should_need_the_features_for_experimental_syntax() {
        let config = QueryConfig::default();
        for q in [
            "limitk(1, x)",
            "x[5m + step()]",
            "rate(x[5m] anchored)",
            "a + fill(0) b",
        ] {
            assert!(Query::parse_limited(q, &config).is_err(), "{q}");
            assert!(
                Query::parse_with(q, &config, Features::all()).is_ok(),
                "{q}"
            );
        }
        assert!(Query::parse(r#"x{a="1" or b="2"}"#).is_ok());
    }
}
