//! Fuzzing PromQL: random token soup through the size and nesting limits, the parser and,
//! when it parses, the whole engine over real storage (instant and range queries). No
//! input may panic, overflow the stack or run past its timeout; every failure is a
//! `QueryError` with Prometheus's error type.
//!
//! CI runs a bounded number of cases; a long run is
//! `PROPTEST_CASES=200000 cargo test --release -p opendata-timeseries --test fuzz`.

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;
use std::time::Duration;

use opendata_common::StorageConfig;
use opendata_timeseries::config::QueryConfig;
use opendata_timeseries::model::{Labels, Sample, SeriesSamples, WriteBatch};
use opendata_timeseries::promql::{Engine, QueryOptions};
use opendata_timeseries::storage::Config;
use opendata_timeseries::{TimeSeriesConfig, TimeSeriesDb};
use proptest::prelude::*;

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    " ",
    "m",
    "n",
    "job",
    "\"a\"",
    "\"\"",
    "=",
    "!=",
    "=~",
    "!~",
    "\"a.*|b\"",
    "1",
    "0",
    "-1",
    "1e308",
    "NaN",
    "Inf",
    "5m",
    "1s",
    "0s",
    "1h",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "==",
    "!=",
    ">",
    "<=",
    "bool",
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "by",
    "without",
    "offset",
    "@",
    "start()",
    "end()",
    "sum",
    "avg",
    "count",
    "topk",
    "quantile",
    "count_values",
    "rate",
    "irate",
    "increase",
    "delta",
    "abs",
    "ceil",
    "clamp",
    "label_replace",
    "label_join",
    "histogram_quantile",
    "quantile_over_time",
    "max_over_time",
    "predict_linear",
    "holt_winters",
    "time()",
    "vector",
    "scalar",
    "absent",
    "sort",
    "timestamp",
    "day_of_week",
    "#c\n",
    "\\",
];

fn query() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(TOKENS), 0..40).prop_map(|t| t.concat())
}

/// A database with two series (created once for every case).
fn runtime() -> &'static (tokio::runtime::Runtime, TimeSeriesDb) {
    static DB: OnceLock<(tokio::runtime::Runtime, TimeSeriesDb)> = OnceLock::new();
    DB.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_stack_size(16 * 1024 * 1024)
            .enable_all()
            .build()
            .unwrap();
        let db = rt.block_on(async {
            let db = TimeSeriesDb::open(Config {
                storage: StorageConfig::in_memory(),
                timeseries: TimeSeriesConfig {
                    retention_secs: 0,
                    out_of_order_secs: 100 * 365 * 24 * 3600,
                    ..Default::default()
                },
            })
            .await
            .unwrap();
            let series = ["a", "b"]
                .iter()
                .map(|job| SeriesSamples {
                    histograms: Vec::new(),
                    exemplars: Vec::new(),
                    created_timestamp_ms: None,
                    labels: Labels::from_pairs([("__name__", "m"), ("job", job)]),
                    samples: (0..40)
                        .map(|k| Sample {
                            timestamp_ms: k * 15_000,
                            value: k as f64,
                        })
                        .collect(),
                })
                .collect();
            db.write(WriteBatch {
                series,
                metadata: vec![],
            })
            .await
            .unwrap();
            db
        });
        (rt, db)
    })
}

/// Mostly well-formed queries: selectors, numbers, functions, operators, aggregations,
/// range functions, subqueries, modifiers, nested a few levels.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("m".to_string()),
        Just("m{job=\"a\"}".to_string()),
        Just("m{job=~\"a|b\"}".to_string()),
        Just("m{job!=\"\"} offset 1m".to_string()),
        Just("n".to_string()),
        prop_oneof![
            Just("1"),
            Just("-2.5"),
            Just("0"),
            Just("NaN"),
            Just("Inf"),
            Just("1e308")
        ]
        .prop_map(String::from),
        Just("time()".to_string()),
        Just("vector(3)".to_string()),
    ];
    leaf.prop_recursive(5, 40, 3, |inner| {
        let range = prop_oneof![Just("1m"), Just("5m"), Just("10s"), Just("1h")];
        let step = prop_oneof![Just(""), Just("10s"), Just("1m"), Just("7s")];
        prop_oneof![
            (
                prop_oneof![
                    Just("abs"),
                    Just("ceil"),
                    Just("sqrt"),
                    Just("ln"),
                    Just("timestamp"),
                    Just("sort"),
                    Just("absent"),
                    Just("scalar"),
                    Just("round")
                ],
                inner.clone()
            )
                .prop_map(|(f, e)| format!("{f}({e})")),
            (
                prop_oneof![
                    Just("rate"),
                    Just("increase"),
                    Just("delta"),
                    Just("max_over_time"),
                    Just("stddev_over_time"),
                    Just("resets"),
                    Just("changes"),
                    Just("absent_over_time"),
                    Just("count_over_time")
                ],
                range.clone()
            )
                .prop_map(|(f, r)| format!("{f}(m[{r}])")),
            (inner.clone(), range.clone(), step)
                .prop_map(|(e, r, s)| format!("max_over_time(({e})[{r}:{s}])")),
            (
                inner.clone(),
                prop_oneof![
                    Just("+"),
                    Just("-"),
                    Just("*"),
                    Just("/"),
                    Just("%"),
                    Just("^"),
                    Just(">"),
                    Just("== bool"),
                    Just("and"),
                    Just("or"),
                    Just("unless"),
                    Just("+ on(job)"),
                    Just("* ignoring(job) group_left")
                ],
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a}) {op} ({b})")),
            (
                prop_oneof![
                    Just("sum"),
                    Just("avg"),
                    Just("min"),
                    Just("max"),
                    Just("count"),
                    Just("stddev"),
                    Just("group")
                ],
                inner.clone()
            )
                .prop_map(|(a, e)| format!("{a} by (job) ({e})")),
            (
                prop_oneof![
                    Just("topk"),
                    Just("bottomk"),
                    Just("quantile"),
                    Just("limitk")
                ],
                prop_oneof![Just("2"), Just("0.5"), Just("-1"), Just("NaN")],
                inner.clone()
            )
                .prop_map(|(a, p, e)| format!("{a}({p}, {e})")),
            inner
                .clone()
                .prop_map(|e| format!("label_replace({e}, \"x\", \"$1\", \"job\", \"(.*)\")")),
            inner
                .clone()
                .prop_map(|e| format!("count_values(\"v\", {e})")),
            inner
                .clone()
                .prop_map(|e| format!("histogram_quantile(0.9, {e})")),
            inner.prop_map(|e| format!("clamp({e}, -1, 1)")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn should_evaluate_any_well_formed_query_or_refuse_it_cleanly(q in expr()) {
        check(&q)?;
    }

    #[test]
    fn should_never_panic_on_any_query(q in query()) {
        check(&q)?;
    }
}

fn check(q: &str) -> Result<(), TestCaseError> {
    let (rt, db) = runtime();
    let engine = Engine::new(QueryConfig {
        timeout_ms: 2_000,
        ..QueryConfig::default()
    });
    let options = QueryOptions {
        timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    rt.block_on(async {
        for result in [
            engine
                .instant_query(&db.querier(), q, 300_000, &options)
                .await,
            engine
                .range_query(&db.querier(), q, 0, 600_000, 30_000, &options)
                .await,
        ] {
            if let Err(e) = result {
                prop_assert!([400, 422, 503].contains(&e.status()), "{q}: {e}");
            }
        }
        Ok(())
    })
}
