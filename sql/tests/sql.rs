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
            timeseries: Opened::Writer(ts),
            promql: opendata_timeseries::promql::Engine::new(Default::default()),
            vector: Opened::Writer(vector),
        },
        config,
        MemoryBudget::default(),
    )
    .expect("engine");
    Fixture { engine, log, t0 }
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
