//! SQL over real databases (in-memory object store): results, push-down and writes.

use datafusion::arrow::array::{Array, Float64Array, Int64Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use opendata_common::budget::MemoryBudget;
use opendata_common::lifecycle::Opened;
use opendata_common::storage::Durability;
use opendata_common::{StorageRoot, config::StorageConfig};
use opendata_log::{LogDb, Record};
use opendata_sql::datafusion;
use opendata_sql::{Sources, SqlConfig, SqlEngine};
use opendata_timeseries::TimeSeriesDb;
use opendata_timeseries::model::{Labels, Sample, SeriesSamples, WriteBatch};
use opendata_vector::VectorDb;
use opendata_vector::model::{AttributeType, AttributeValue, CollectionSpec, Metric, VectorRecord};

struct Fixture {
    engine: SqlEngine,
    log: LogDb,
    ts: TimeSeriesDb,
    /// The first append's timestamp.
    t0: u64,
}

const MINUTE: i64 = 60_000;
/// Two hours before now, on a whole hour: inside the default retention, so the
/// time series database accepts the fixture's samples.
static BASE_MS: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    now - now % 3_600_000 - 2 * 3_600_000
});

async fn fixture(config: SqlConfig) -> Fixture {
    fixture_with(config, Default::default()).await
}

async fn fixture_with(
    config: SqlConfig,
    query: opendata_timeseries::config::QueryConfig,
) -> Fixture {
    let root = StorageRoot::new(StorageConfig::in_memory()).expect("root");
    let log = LogDb::open_in(&root, Default::default())
        .await
        .expect("log");
    let mut t0 = 0;
    for key in ["orders", "events", "other"] {
        let records = (0..50)
            .map(|i| Record {
                key: key.into(),
                value: format!("{key}-{i}").into(),
            })
            .collect();
        let r = log
            .append_with(records, Default::default())
            .await
            .expect("append");
        if t0 == 0 {
            t0 = r.timestamp_ms;
        }
    }
    let ts = TimeSeriesDb::open_in(&root, Default::default())
        .await
        .expect("ts");
    let mut series = Vec::new();
    for (job, scale) in [("api", 1.0), ("db", 10.0)] {
        for instance in ["a", "b"] {
            series.push(SeriesSamples {
                histograms: Vec::new(),
                labels: Labels::from_pairs([
                    ("__name__", "requests_total"),
                    ("job", job),
                    ("instance", instance),
                ]),
                samples: (0..60)
                    .map(|i| Sample {
                        timestamp_ms: *BASE_MS + i * MINUTE,
                        value: scale * i as f64,
                    })
                    .collect(),
                exemplars: vec![],
                created_timestamp_ms: None,
            });
        }
    }
    ts.write(WriteBatch {
        series,
        metadata: vec![],
    })
    .await
    .expect("write");
    let vector = VectorDb::open(&root, Default::default())
        .await
        .expect("vector");
    vector
        .create_collection(
            CollectionSpec::new("docs", 2, Metric::L2)
                .with_attribute("color", AttributeType::String)
                .with_attribute("size", AttributeType::Integer),
        )
        .await
        .expect("collection");
    let records = (0..40)
        .map(|i| {
            VectorRecord::new(format!("d{i}"), vec![i as f32, 0.0])
                .with_attribute(
                    "color",
                    AttributeValue::String(if i % 2 == 0 { "red" } else { "blue" }.into()),
                )
                .with_attribute("size", AttributeValue::Integer(i))
        })
        .collect();
    vector
        .upsert("docs", records, Durability::default())
        .await
        .expect("upsert");
    let engine = SqlEngine::new(
        Sources {
            log: Opened::Writer(log.clone()),
            timeseries: Opened::Writer(ts.clone()),
            promql: opendata_timeseries::promql::Engine::new(query),
            vector: Opened::Writer(vector),
        },
        config,
        MemoryBudget::default(),
    )
    .expect("engine");
    Fixture {
        engine,
        log,
        ts,
        t0,
    }
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let a = cast(b.column(column), &DataType::Utf8).expect("text column");
            let a = a
                .as_any()
                .downcast_ref::<StringArray>()
                .expect("text column")
                .clone();
            (0..a.len()).map(move |i| a.value(i).to_string())
        })
        .collect()
}

fn ints(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let a = b
                .column(column)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("bigint column")
                .clone();
            (0..a.len()).map(move |i| a.value(i))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn should_count_log_entries_by_key() {
    let f = fixture(SqlConfig::default()).await;
    let b = f
        .engine
        .query("SELECT key, count(*) AS n FROM log.entries GROUP BY key ORDER BY key")
        .await
        .expect("query");
    assert_eq!(strings(&b, 0), ["events", "orders", "other"]);
    assert_eq!(ints(&b, 1), [50, 50, 50]);
}

#[tokio::test(flavor = "multi_thread")]
async fn should_read_only_the_pushed_down_key_and_sequence_range() {
    let f = fixture(SqlConfig::default()).await;
    let before = f.engine.counters().rows();
    let b = f
        .engine
        .query("SELECT sequence, CAST(value AS VARCHAR) FROM log.entries WHERE key = 'orders' AND sequence >= 10 AND sequence < 20 ORDER BY sequence")
        .await
        .expect("query");
    // Sequences are global: orders got 0..49 (it was appended first).
    assert_eq!(ints(&b, 0), (10..20).collect::<Vec<_>>());
    assert_eq!(strings(&b, 1)[0], "orders-10");
    let read = f.engine.counters().rows() - before;
    assert_eq!(read, 10, "only the ten entries in range were read");
    let b = f
        .engine
        .query(
            "SELECT count(*) FROM log.entries WHERE key IN ('events', 'nope') AND key LIKE 'ev%'",
        )
        .await
        .expect("query");
    assert_eq!(ints(&b, 0), [50]);
}

#[tokio::test(flavor = "multi_thread")]
async fn should_filter_by_time_and_honour_limit() {
    let f = fixture(SqlConfig::default()).await;
    let b = f
        .engine
        .query(&format!(
            "SELECT count(*) FROM log.entries WHERE timestamp >= to_timestamp_millis({})",
            f.t0
        ))
        .await
        .expect("query");
    assert_eq!(ints(&b, 0), [150]);
    let b = f
        .engine
        .query("SELECT count(*) FROM log.entries WHERE timestamp < to_timestamp_millis(1000)")
        .await
        .expect("query");
    assert_eq!(ints(&b, 0), [0]);
    let b = f
        .engine
        .query("SELECT key FROM log.entries LIMIT 7")
        .await
        .expect("query");
    assert_eq!(rows(&b), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn should_insert_into_log_entries_durably_and_refuse_other_writes() {
    let f = fixture(SqlConfig::default()).await;
    let b = f
        .engine
        .query("INSERT INTO log.entries (key, value) VALUES ('new', 'one'), ('new', 'two')")
        .await
        .expect("insert");
    let pretty = pretty_format_batches(&b).expect("format").to_string();
    assert!(pretty.contains('2'), "{pretty}");
    let mut iter = opendata_log::LogRead::scan(&f.log, "new", ..)
        .await
        .expect("scan");
    assert_eq!(
        iter.next().await.expect("next").expect("entry").value,
        "one"
    );
    let e = f
        .engine
        .query("INSERT INTO log.entries (key, sequence, value) VALUES ('x', 5, 'v')")
        .await
        .expect_err("sequence is the log's");
    assert!(e.to_string().contains("assigned by the log"), "{e}");
    let e = f
        .engine
        .query("DELETE FROM log.entries")
        .await
        .expect_err("no delete");
    assert_eq!(e.sqlstate(), "0A000", "{e}");
    let e = f
        .engine
        .query("INSERT INTO timeseries.samples SELECT * FROM timeseries.samples")
        .await
        .expect_err("read-only");
    assert_ne!(e.sqlstate(), "XX000", "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn should_select_samples_by_label_and_time() {
    let f = fixture(SqlConfig::default()).await;
    let b = f
        .engine
        .query(&format!(
            "SELECT labels['instance'] AS i, sum(value) FROM timeseries.samples \
             WHERE metric = 'requests_total' AND labels['job'] = 'db' \
             AND timestamp >= to_timestamp_millis({}) AND timestamp < to_timestamp_millis({}) \
             GROUP BY 1 ORDER BY 1",
            *BASE_MS,
            *BASE_MS + 10 * MINUTE
        ))
        .await
        .expect("query");
    assert_eq!(strings(&b, 0), ["a", "b"]);
    let sums = b[0]
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("double");
    // 10 × (0 + 1 + ... + 9) = 450 for each db instance.
    assert_eq!(sums.value(0), 450.0);
    let b = f
        .engine
        .query("SELECT count(*) FROM timeseries.series WHERE labels['job'] = 'api'")
        .await
        .expect("series");
    assert_eq!(ints(&b, 0), [2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn should_answer_promql_as_rows() {
    let f = fixture(SqlConfig::default()).await;
    let b = f
        .engine
        .query(&format!(
            "SELECT labels['job'], value FROM promql('sum by (job) (requests_total)', {}) ORDER BY 1",
            (*BASE_MS + 30 * MINUTE) / 1000
        ))
        .await
        .expect("promql");
    let values = b[0]
        .column(1)
        .as_any()
        .downcast_ref::<Float64Array>()
        .expect("double");
    assert_eq!(values.value(0), 60.0);
    assert_eq!(values.value(1), 600.0);
    let b = f
        .engine
        .query(&format!(
            "SELECT count(*) FROM promql('requests_total', {}, {}, '5m')",
            *BASE_MS / 1000,
            (*BASE_MS + 59 * MINUTE) / 1000
        ))
        .await
        .expect("range");
    // 4 series × 12 steps (0, 5, ..., 55 minutes).
    assert_eq!(ints(&b, 0), [48]);
    let e = f
        .engine
        .query("SELECT * FROM promql('sum(', 0)")
        .await
        .expect_err("bad promql");
    assert_eq!(e.sqlstate(), "22023", "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn should_scan_collections_and_search_vectors_with_filters() {
    let f = fixture(SqlConfig::default()).await;
    let b = f
        .engine
        .query("SELECT id, size FROM vector.docs WHERE color = 'red' AND size >= 30 ORDER BY size")
        .await
        .expect("scan");
    assert_eq!(strings(&b, 0), ["d30", "d32", "d34", "d36", "d38"]);
    let b = f
        .engine
        .query("SELECT id, score, color FROM vector_search('docs', [10.2, 0.0], 3, '{\"color\":{\"eq\":\"blue\"}}')")
        .await
        .expect("search");
    assert_eq!(strings(&b, 0), ["d11", "d9", "d13"]);
    let b = f
        .engine
        .query("SELECT d.id, d.size FROM vector_search('docs', [3.0, 0.0], 2) s JOIN vector.docs d ON d.id = s.id ORDER BY d.size")
        .await
        .expect("join");
    assert_eq!(ints(&b, 1), [2, 3]);
    let e = f
        .engine
        .query("SELECT * FROM vector_search('docs', [1.0], 3)")
        .await
        .expect_err("wrong dimension");
    assert_eq!(e.sqlstate(), "22023", "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn should_give_postgres_codes_for_bad_sql() {
    let f = fixture(SqlConfig::default()).await;
    let code = |sql: &'static str| {
        let engine = f.engine.clone();
        async move { engine.query(sql).await.expect_err(sql).sqlstate() }
    };
    assert_eq!(code("SELEC 1").await, "42601");
    assert_eq!(code("SELECT * FROM log.nope").await, "42P01");
    assert_eq!(code("SELECT nope FROM log.entries").await, "42703");
    assert_eq!(code("CREATE TABLE t (a int)").await, "0A000");
}

#[tokio::test(flavor = "multi_thread")]
async fn should_fail_a_statement_past_its_memory_limit() {
    let f = fixture(SqlConfig {
        max_query_memory_bytes: 1024 * 1024,
        ..SqlConfig::default()
    })
    .await;
    // A sort of every entry with a large padded value must hold more than 1 MiB.
    let e = f
        .engine
        .query("SELECT repeat(CAST(value AS VARCHAR), 2000) AS v FROM log.entries ORDER BY v")
        .await
        .expect_err("over the limit");
    assert_eq!(e.sqlstate(), "53200", "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn should_refuse_a_series_selection_over_the_series_limit() {
    let f = fixture_with(
        SqlConfig::default(),
        opendata_timeseries::config::QueryConfig {
            max_series: 3,
            ..Default::default()
        },
    )
    .await;
    // Four series in all: over the limit of three, for both tables.
    for sql in [
        "SELECT count(*) FROM timeseries.series",
        "SELECT count(*) FROM timeseries.samples",
    ] {
        let e = f.engine.query(sql).await.expect_err("over the limit");
        assert_eq!(e.sqlstate(), "53200", "{e}");
        assert!(e.to_string().contains("max_series"), "{e}");
    }
    // Two of them, selected on the index, are within it.
    let b = f
        .engine
        .query("SELECT count(*) FROM timeseries.series WHERE labels['job'] = 'api'")
        .await
        .expect("within the limit");
    assert_eq!(ints(&b, 0), [2]);
    let b = f
        .engine
        .query("SELECT count(*) FROM timeseries.samples WHERE labels['job'] = 'db'")
        .await
        .expect("within the limit");
    assert_eq!(ints(&b, 0), [120]);
    let b = f
        .engine
        .query("SELECT metric FROM timeseries.series WHERE labels['job'] = 'db' LIMIT 1")
        .await
        .expect("limit");
    assert_eq!(strings(&b, 0), ["requests_total"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn should_hold_a_series_selection_under_the_statement_memory_limit() {
    let f = fixture(SqlConfig {
        max_query_memory_bytes: 1024 * 1024,
        ..SqlConfig::default()
    })
    .await;
    // 8,000 series with 200-byte label values: more than 1 MiB of label sets.
    let pad = "p".repeat(200);
    let series = (0..8_000)
        .map(|i| SeriesSamples {
            histograms: Vec::new(),
            labels: Labels::from_pairs([
                ("__name__", "wide"),
                ("id", &format!("{i}")),
                ("pad", &pad),
            ]),
            samples: vec![Sample {
                timestamp_ms: *BASE_MS,
                value: 1.0,
            }],
            exemplars: vec![],
            created_timestamp_ms: None,
        })
        .collect();
    f.ts.write(WriteBatch {
        series,
        metadata: vec![],
    })
    .await
    .expect("write");
    for sql in [
        "SELECT count(*) FROM timeseries.series WHERE metric = 'wide'",
        "SELECT count(*) FROM timeseries.samples WHERE metric = 'wide'",
    ] {
        let e = f
            .engine
            .query(sql)
            .await
            .expect_err("over the memory limit");
        assert_eq!(e.sqlstate(), "53200", "{e}");
        assert!(e.to_string().contains("timeseries."), "{e}");
    }
    // The four small series still fit.
    let b = f
        .engine
        .query("SELECT count(*) FROM timeseries.series WHERE metric = 'requests_total'")
        .await
        .expect("within the limit");
    assert_eq!(ints(&b, 0), [4]);
}

/// Pieces of SQL the statement fuzzer strings together: keywords, every table and
/// table function, operators, literals of each type, and unbalanced brackets.
const PIECES: &[&str] = &[
    "SELECT",
    "*",
    "FROM",
    "WHERE",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "OFFSET",
    "JOIN",
    "ON",
    "UNION ALL",
    "WITH",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "BETWEEN",
    "IS NULL",
    "CASE WHEN",
    "THEN",
    "ELSE",
    "END",
    "DISTINCT",
    "HAVING",
    "OVER (",
    "PARTITION BY",
    "log.entries",
    "log.keys",
    "timeseries.samples",
    "timeseries.series",
    "vector.docs",
    "promql('sum(requests_total)', 0)",
    "promql('rate(x[5m])', 0, 100, 10)",
    "vector_search('docs', [1.0, 0.0], 3)",
    "vector_search('docs', [1.0], 0)",
    "pg_catalog.pg_class",
    "information_schema.tables",
    "key",
    "sequence",
    "timestamp",
    "value",
    "labels['job']",
    "labels",
    "metric",
    "id",
    "color",
    "size",
    "vector",
    "count(*)",
    "sum(",
    "avg(",
    "min(",
    "max(",
    "repeat(",
    "substr(",
    "to_timestamp_millis(",
    "now()",
    "CAST(",
    "::BIGINT",
    "::TEXT",
    "::TIMESTAMP",
    "INTERVAL '1 day'",
    "(",
    ")",
    ",",
    "=",
    "<>",
    "<",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "||",
    "~",
    "1",
    "0",
    "-1",
    "1e308",
    "9223372036854775807",
    "'x'",
    "''",
    "NULL",
    "TRUE",
    "[1, 2]",
    "x'ff'",
    ";",
    "$1",
    "INSERT INTO log.entries (key, value) VALUES",
    "('k', 'v')",
    "DELETE FROM",
    "EXPLAIN",
];

/// Statements that run, to mutate byte by byte.
const SEEDS: &[&str] = &[
    "SELECT key, count(*) FROM log.entries GROUP BY key ORDER BY 2 DESC LIMIT 5",
    "SELECT labels['job'], avg(value) FROM timeseries.samples WHERE metric = 'requests_total' GROUP BY 1",
    "SELECT id, size FROM vector.docs WHERE color = 'red' AND size BETWEEN 2 AND 9",
    "SELECT s.id, d.size FROM vector_search('docs', [3.0, 0.0], 5) s JOIN vector.docs d ON s.id = d.id",
    "SELECT * FROM promql('sum by (job) (requests_total)', 0, 3600, 60) LIMIT 3",
    "SELECT e.key, s.value FROM log.entries e JOIN timeseries.samples s ON date_trunc('minute', e.timestamp) = date_trunc('minute', s.timestamp) LIMIT 4",
];

fn statement() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        prop::collection::vec(prop::sample::select(PIECES), 1..24).prop_map(|p| p.join(" ")),
        (
            prop::sample::select(SEEDS),
            prop::collection::vec((any::<usize>(), 0u8..4, any::<u8>()), 1..6)
        )
            .prop_map(|(seed, edits)| {
                let mut bytes = seed.as_bytes().to_vec();
                for (pos, op, b) in edits {
                    let pos = pos % bytes.len().max(1);
                    match op {
                        0 if !bytes.is_empty() => bytes[pos] = b,
                        1 => bytes.insert(pos.min(bytes.len()), b),
                        2 if !bytes.is_empty() => {
                            bytes.remove(pos);
                        }
                        _ => bytes.truncate(pos),
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }),
    ]
}

#[test]
fn should_answer_random_statements_with_rows_or_a_postgres_error() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let f = rt.block_on(fixture(SqlConfig {
        max_query_memory_bytes: 16 * 1024 * 1024,
        ..SqlConfig::default()
    }));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&statement(), |sql| {
            let answer = rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_secs(20), f.engine.query(&sql)).await
            });
            let Ok(answer) = answer else {
                return Err(TestCaseError::fail(format!("no answer in 20 s: {sql}")));
            };
            if let Err(e) = answer {
                prop_assert_ne!(e.sqlstate(), "XX000", "{}: {}", sql, e);
            }
            Ok(())
        })
        .unwrap();
}
