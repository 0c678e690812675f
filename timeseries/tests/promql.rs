//! The PromQL engine over real storage: limits (samples, series, timeout), errors with
//! Prometheus's types, results from stored (flushed) buckets as well as the head, and
//! what the conformance scripts do not cover.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use opendata_common::StorageConfig;
use opendata_timeseries::config::QueryConfig;
use opendata_timeseries::model::{Labels, Sample, SeriesSamples, WriteBatch};
use opendata_timeseries::promql::{Engine, Features, QueryError, QueryOptions, Value};
use opendata_timeseries::storage::Config;
use opendata_timeseries::{TimeSeriesConfig, TimeSeriesDb};

const MIN: i64 = 60_000;

/// 100 series `m_total{i="<n>"}` with a sample every 15 s for an hour from `t0`, value
/// 15 × the sample number (a rate of 1/s).
async fn db_with_data(t0: i64) -> TimeSeriesDb {
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
    let series = (0..100)
        .map(|i| SeriesSamples {
            histograms: Vec::new(),
            exemplars: Vec::new(),
            created_timestamp_ms: None,
            labels: Labels::from_pairs([("__name__", "m_total".to_string()), ("i", i.to_string())]),
            samples: (0..240)
                .map(|k| Sample {
                    timestamp_ms: t0 + k * 15_000,
                    value: (k * 15) as f64,
                })
                .collect(),
        })
        .collect();
    let out = db
        .write(WriteBatch {
            series,
            metadata: vec![],
        })
        .await
        .unwrap();
    assert_eq!(out.out_of_bounds, 0);
    db
}

fn engine(f: impl FnOnce(&mut QueryConfig)) -> Engine {
    let mut c = QueryConfig::default();
    f(&mut c);
    Engine::new(c)
}

#[tokio::test]
async fn should_answer_the_same_from_stored_buckets_as_from_the_head() {
    let t0 = 1_000 * 3_600_000;
    let db = db_with_data(t0).await;
    let e = engine(|_| {});
    let q = "sum(rate(m_total[5m]))";
    let at = t0 + 30 * MIN;
    let before = e
        .instant_query(&db.querier(), q, at, &QueryOptions::default())
        .await
        .unwrap();
    db.flush_head().await.unwrap();
    let after = e
        .instant_query(&db.querier(), q, at, &QueryOptions::default())
        .await
        .unwrap();
    assert_eq!(before.value, after.value);
    let Value::Vector(v) = after.value else {
        panic!("expected a vector")
    };
    assert_eq!(v.len(), 1);
    assert!((v[0].f - 100.0).abs() < 1e-9, "got {}", v[0].f);
}

#[tokio::test]
async fn should_refuse_queries_holding_more_samples_than_the_limit() {
    let t0 = 1_000 * 3_600_000;
    let db = db_with_data(t0).await;
    let e = engine(|c| c.max_samples = 1_000);
    let err = e
        .range_query(
            &db.querier(),
            "sum(m_total)",
            t0,
            t0 + 59 * MIN,
            MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Execution(_)), "{err:?}");
    assert_eq!(err.error_type(), "execution");
    assert!(err.to_string().contains("too many samples"), "{err}");
    // A query within the limit still runs.
    let ok = e
        .instant_query(
            &db.querier(),
            "m_total{i=\"1\"}",
            t0 + MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    assert!(matches!(ok.value, Value::Vector(v) if v.len() == 1));
}

#[tokio::test]
async fn should_count_samples_held_at_once_not_samples_loaded() {
    // The hour of data is 24,000 samples; `rate(m_total[1m])` holds 4 of them per series
    // at a step, and its result is 100 series × 60 steps. As in Prometheus, the limit
    // bounds what is held at once, so a limit between the two admits the query.
    let t0 = 1_000 * 3_600_000;
    let db = db_with_data(t0).await;
    let q = "sum(rate(m_total[1m]))";
    let run = |limit: u64| {
        let db = &db;
        async move {
            engine(|c| c.max_samples = limit)
                .range_query(
                    &db.querier(),
                    q,
                    t0 + MIN,
                    t0 + 60 * MIN,
                    MIN,
                    &QueryOptions::default(),
                )
                .await
        }
    };
    let ok = run(8_000).await.unwrap();
    let Value::Matrix(m) = ok.value else {
        panic!("expected a matrix")
    };
    assert_eq!(m.len(), 1);
    assert!(m[0].floats.len() >= 59, "{}", m[0].floats.len());
    let err = run(5_000).await.unwrap_err();
    assert!(err.to_string().contains("too many samples"), "{err}");
}

#[tokio::test]
async fn should_refuse_queries_the_memory_budget_cannot_take() {
    let t0 = 1_000 * 3_600_000;
    let db = db_with_data(t0).await;
    let budget = opendata_common::budget::MemoryBudget::new(200_000);
    let e = engine(|_| {}).with_budget(budget.clone());
    // The whole hour (24,000 samples, 384 kB) is more than the budget: the query alone
    // cannot run, whatever else is running.
    let err = e
        .range_query(
            &db.querier(),
            "sum(m_total)",
            t0,
            t0 + 59 * MIN,
            MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "execution", "{err}");
    assert_eq!(err.status(), 422);
    assert!(err.to_string().contains("memory budget"), "{err}");
    assert_eq!(budget.used(), 0, "a refused query holds nothing");
    // A small query is refused while other work holds the budget, and runs after.
    let held = budget.reserve(190_000).unwrap();
    let small = "sum(m_total)";
    let err = e
        .instant_query(
            &db.querier(),
            small,
            t0 + 30 * MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "unavailable", "{err}");
    assert_eq!(err.status(), 503);
    drop(held);
    let ok = e
        .instant_query(
            &db.querier(),
            small,
            t0 + 30 * MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let Value::Vector(v) = ok.value else {
        panic!("expected a vector")
    };
    assert_eq!(v[0].f, 100.0 * 120.0 * 15.0);
    assert_eq!(budget.used(), 0, "a finished query returns what it held");
    assert!(budget.refused() >= 2);
}

#[tokio::test]
async fn should_refuse_results_with_more_series_than_the_limit() {
    let t0 = 1_000 * 3_600_000;
    let db = db_with_data(t0).await;
    let e = engine(|c| c.max_series = 10);
    let err = e
        .instant_query(&db.querier(), "m_total", t0 + MIN, &QueryOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "execution");
    assert!(err.to_string().contains("max_series"), "{err}");
    let ok = e
        .instant_query(
            &db.querier(),
            "count(m_total)",
            t0 + MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let Value::Vector(v) = ok.value else {
        panic!("expected a vector")
    };
    assert_eq!(v[0].f, 100.0);
}

#[tokio::test]
async fn should_time_out_with_prometheus_error_type() {
    let t0 = 1_000 * 3_600_000;
    let db = db_with_data(t0).await;
    let e = engine(|_| {});
    // Nested subqueries at a 1 ms step make plenty of work.
    let q = "max_over_time(sum_over_time(sum(m_total)[30m:1s])[30m:1s])";
    let err = e
        .instant_query(
            &db.querier(),
            q,
            t0 + 59 * MIN,
            &QueryOptions {
                timeout: Some(Duration::from_millis(1)),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, QueryError::Timeout(_)), "{err:?}");
    assert_eq!(err.error_type(), "timeout");
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn should_report_parse_errors_as_bad_data() {
    let db = db_with_data(0).await;
    let e = engine(|_| {});
    for q in ["sum(", "rate(m_total)", "m_total[5m] + 1", "foo{", ""] {
        let err = e
            .instant_query(&db.querier(), q, MIN, &QueryOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "bad_data", "{q}: {err}");
        assert_eq!(err.status(), 400);
        assert!(!err.to_string().is_empty());
    }
}

#[tokio::test]
async fn should_refuse_range_queries_of_range_vectors_and_bad_steps() {
    let db = db_with_data(0).await;
    let e = engine(|_| {});
    let q = db.querier();
    let o = QueryOptions::default();
    let err = e
        .range_query(&q, "m_total[5m]", 0, MIN, 15_000, &o)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
    let err = e
        .range_query(&q, "m_total", 0, MIN, 0, &o)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
    let err = e
        .range_query(&q, "m_total", MIN, 0, 1000, &o)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "bad_data");
    // An instant query may return a range vector.
    let r = e
        .instant_query(&q, "m_total{i=\"3\"}[1m]", 10 * MIN, &o)
        .await
        .unwrap();
    let Value::Matrix(m) = r.value else {
        panic!("expected a matrix")
    };
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].floats.len(), 4);
    assert_eq!(m[0].floats[3], (10 * MIN, 600.0));
}

#[tokio::test]
async fn should_warn_about_rate_of_a_non_counter_name() {
    let db = db_with_data(0).await;
    let e = engine(|_| {});
    let r = e
        .instant_query(
            &db.querier(),
            "rate(label_replace(m_total, \"__name__\", \"gauge\", \"\", \"\")[5m:1m])",
            30 * MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        r.infos
            .iter()
            .any(|i| i.contains("might not be a counter") && i.contains("gauge")),
        "{:?}",
        r.infos
    );
    let r = e
        .instant_query(
            &db.querier(),
            "rate(m_total[5m])",
            30 * MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    assert!(r.infos.is_empty(), "{:?}", r.infos);
}

#[tokio::test]
async fn should_add_info_series_data_labels_with_info() {
    let db = db_with_data(0).await;
    let write = |name: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("__name__".to_string(), name.to_string()),
            ("instance".to_string(), "a:1".to_string()),
            ("job".to_string(), "node".to_string()),
        ];
        pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        SeriesSamples {
            histograms: Vec::new(),
            exemplars: Vec::new(),
            created_timestamp_ms: None,
            labels: Labels::from_pairs(pairs),
            samples: vec![Sample {
                timestamp_ms: 10 * MIN,
                value: 1.0,
            }],
        }
    };
    db.write(WriteBatch {
        series: vec![
            write("up", &[]),
            write("target_info", &[("version", "1.2"), ("region", "eu")]),
            write("build_info", &[("commit", "abc")]),
        ],
        metadata: vec![],
    })
    .await
    .unwrap();
    // `info` is experimental: it needs `promql-experimental-functions`.
    let err = engine(|_| {}).parse("info(up)").unwrap_err();
    assert!(err.to_string().contains("not enabled"), "{err}");
    let e = engine(|_| {}).with_features(Features {
        experimental_functions: true,
        ..Default::default()
    });
    let run = |q: &'static str| {
        let e = e.clone();
        let querier = db.querier();
        async move {
            let r = e
                .instant_query(&querier, q, 11 * MIN, &QueryOptions::default())
                .await
                .unwrap();
            let Value::Vector(v) = r.value else {
                panic!("expected a vector")
            };
            v.into_iter().map(|s| s.labels).collect::<Vec<_>>()
        }
    };
    let label = |pairs: &[(&str, &str)]| Labels::from_pairs(pairs.iter().copied());
    assert_eq!(
        run("info(up)").await,
        vec![label(&[
            ("__name__", "up"),
            ("instance", "a:1"),
            ("job", "node"),
            ("region", "eu"),
            ("version", "1.2")
        ])]
    );
    assert_eq!(
        run("info(up, {region=~\".+\"})").await,
        vec![label(&[
            ("__name__", "up"),
            ("instance", "a:1"),
            ("job", "node"),
            ("region", "eu")
        ])]
    );
    assert_eq!(
        run("info(up, build_info)").await,
        vec![label(&[
            ("__name__", "up"),
            ("commit", "abc"),
            ("instance", "a:1"),
            ("job", "node")
        ])]
    );
    // A required data label no info series has drops the series.
    assert!(run("info(up, {zone=~\".+\"})").await.is_empty());
}

#[tokio::test]
async fn should_refuse_durations_the_parser_cannot_hold_as_parse_errors() {
    // Found by the `promql` fuzz target (with the parser the engine used before its
    // own): a range whose duration overflows is a parse error, not a panic.
    let t0 = 1_000 * 3_600_000;
    let db = db_with_data(t0).await;
    for q in [
        "H[111111111111111111111158]",
        "rate(m_total[111111111111111111111158])[5m:1m]",
    ] {
        let err = opendata_timeseries::promql::Query::parse(q).unwrap_err();
        assert_eq!(err.error_type(), "bad_data", "{q}: {err}");
        assert!(err.to_string().contains("parse error"), "{q}: {err}");
        assert!(err.to_string().starts_with("1:"), "{q}: {err}");
        let err = engine(|_| {})
            .instant_query(&db.querier(), q, t0, &QueryOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400, "{q}: {err}");
    }
}

#[test]
fn should_evaluate_queries_as_deep_as_the_configured_limit_on_a_small_stack() {
    // The parser bounds the depth of the tree; the evaluator's recursion follows it and
    // grows the stack on demand, so a limit raised far above the default is still safe
    // on a thread with little stack (1 MiB: the database's futures need some).
    let deep_calls = format!("{}vector(1){}", "abs(".repeat(3000), ")".repeat(3000));
    let deep_signs = format!("{}vector(1){}", "-(".repeat(3001), ")".repeat(3001));
    let long_sum = vec!["1"; 3000].join(" + ");
    let handle = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let db = db_with_data(0).await;
                let e = engine(|c| c.max_query_depth = 10_000);
                let r = e
                    .instant_query(&db.querier(), &deep_calls, MIN, &QueryOptions::default())
                    .await
                    .unwrap();
                let Value::Vector(v) = r.value else {
                    panic!("expected a vector")
                };
                assert_eq!(v[0].f, 1.0);
                let r = e
                    .instant_query(&db.querier(), &deep_signs, MIN, &QueryOptions::default())
                    .await
                    .unwrap();
                let Value::Vector(v) = r.value else {
                    panic!("expected a vector")
                };
                assert_eq!(v[0].f, -1.0);
                let r = e
                    .range_query(
                        &db.querier(),
                        &long_sum,
                        0,
                        10 * MIN,
                        MIN,
                        &QueryOptions::default(),
                    )
                    .await
                    .unwrap();
                let Value::Matrix(m) = r.value else {
                    panic!("expected a matrix")
                };
                assert_eq!(m[0].floats[0].1, 3000.0);
            });
        })
        .unwrap();
    handle.join().unwrap();
}

#[tokio::test]
async fn should_switch_the_experimental_syntax_on_by_feature() {
    let db = db_with_data(0).await;
    let plain = engine(|_| {});
    for (q, feature) in [
        ("limitk(1, m_total)", "experimental_functions"),
        ("m_total offset (1m + step())", "duration_expressions"),
        ("rate(m_total[5m] anchored)", "extended_range_selectors"),
        ("m_total + fill(0) m_total", "fill_modifiers"),
    ] {
        let err = plain.parse(q).unwrap_err();
        assert!(matches!(err, QueryError::Parse(_)), "{q}: {err}");
        assert_eq!(err.status(), 400);
        let mut f = Features::default();
        match feature {
            "experimental_functions" => f.experimental_functions = true,
            "duration_expressions" => f.duration_expressions = true,
            "extended_range_selectors" => f.extended_range_selectors = true,
            _ => f.fill_modifiers = true,
        }
        let on = engine(|_| {}).with_features(f);
        let r = on
            .instant_query(&db.querier(), q, 30 * MIN, &QueryOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
        assert!(matches!(r.value, Value::Vector(_)), "{q}");
    }
    // `or` between matcher groups needs no switch.
    let r = plain
        .instant_query(
            &db.querier(),
            r#"count(m_total{i="1" or i="2"})"#,
            30 * MIN,
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    let Value::Vector(v) = r.value else {
        panic!("expected a vector")
    };
    assert_eq!(v[0].f, 2.0);
}
