//! SQL bench: the engine over real databases on a local directory, and the files
//! DuckDB loads the same data from (scripts/bench-sql.sh runs both side by side).
//!
//! 1. Writes `entries.csv` (key, value) and `samples.csv` (metric, job, instance,
//!    timestamp_ms, value) to `SQL_BENCH_DIR` (default `data/sql-bench`).
//! 2. Loads the same rows into a log and a time series database under that directory:
//!    `SQL_BENCH_ENTRIES` log entries (default 10,000,000) over 100 keys, and 200
//!    series of one sample every 15 s over `SQL_BENCH_HOURS` hours (default 100,
//!    4,800,000 samples) ending an hour ago.
//! 3. Runs each query `SQL_BENCH_RUNS` times (default 3) through [`SqlEngine::query`]
//!    and prints, as JSON lines, the best time, the rows it returned, and the rows and
//!    bytes its scans read (the push-down counters).
//!
//! `SQL_BENCH_ONLY=data` stops after step 1; files and databases already there for the
//! same parameters are reused (`SQL_BENCH_FRESH=1` rebuilds them).

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use opendata_common::budget::MemoryBudget;
use opendata_common::lifecycle::Opened;
use opendata_common::{StorageConfig, StorageRoot};
use opendata_log::{LogDb, Record};
use opendata_sql::{Sources, SqlConfig, SqlEngine};
use opendata_timeseries::TimeSeriesDb;
use opendata_timeseries::model::{Labels, Sample, SeriesSamples, WriteBatch};
use opendata_vector::VectorDb;

const KEYS: usize = 100;
const SERIES: usize = 200;
const JOBS: usize = 10;
const STEP_MS: i64 = 15_000;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

struct Params {
    dir: PathBuf,
    entries: usize,
    /// Hours of samples (`SQL_BENCH_HOURS`, default 100).
    hours: i64,
    /// The first sample's time: on a whole hour, 101 hours before the run.
    t0: i64,
}

fn value_of(i: usize) -> String {
    format!("value-{i:016}")
}

fn sample_value(series: usize, step: i64) -> f64 {
    // A sawtooth per series, so top-k and averages have real work to do.
    ((series as i64 * 7919 + step * 104_729) % 100_000) as f64 / 100.0
}

fn write_csvs(p: &Params) {
    let entries = p.dir.join("entries.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&entries).unwrap());
    writeln!(w, "key,sequence,value").unwrap();
    for i in 0..p.entries {
        // Key i % KEYS; sequence i (the log's counter, less where it starts).
        writeln!(w, "k{:03},{},{}", i % KEYS, i, value_of(i)).unwrap();
    }
    w.flush().unwrap();
    let samples = p.dir.join("samples.csv");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&samples).unwrap());
    writeln!(w, "metric,job,instance,timestamp_ms,value").unwrap();
    let steps = p.hours * 3_600_000 / STEP_MS;
    for step in 0..steps {
        for s in 0..SERIES {
            writeln!(
                w,
                "bench_requests,job{},i{s:03},{},{}",
                s % JOBS,
                p.t0 + step * STEP_MS,
                sample_value(s, step)
            )
            .unwrap();
        }
    }
    w.flush().unwrap();
}

async fn load(p: &Params, root: &StorageRoot) -> (LogDb, TimeSeriesDb) {
    let log = LogDb::open_in(root, Default::default()).await.unwrap();
    // The samples are up to 101 hours old, inside the default retention; they arrive
    // in time order, an hour of every series per write.
    let ts = TimeSeriesDb::open_in(root, Default::default())
        .await
        .unwrap();
    let marker = p.dir.join("loaded");
    let expected = format!("{} {}", p.entries, p.t0);
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(expected.as_str()) {
        return (log, ts);
    }
    let started = Instant::now();
    let chunk = 50_000;
    let mut i = 0;
    while i < p.entries {
        let end = (i + chunk).min(p.entries);
        let records = (i..end)
            .map(|i| Record {
                key: format!("k{:03}", i % KEYS).into(),
                value: value_of(i).into(),
            })
            .collect();
        log.append_with(records, Default::default()).await.unwrap();
        i = end;
    }
    eprintln!(
        "loaded {} log entries in {:.1} s",
        p.entries,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let steps = p.hours * 3_600_000 / STEP_MS;
    let per_batch = 240; // one hour of every series per write
    let mut step = 0;
    while step < steps {
        let end = (step + per_batch).min(steps);
        let series = (0..SERIES)
            .map(|s| SeriesSamples {
                histograms: Vec::new(),
                labels: Labels::from_pairs([
                    ("__name__", "bench_requests".to_string()),
                    ("job", format!("job{}", s % JOBS)),
                    ("instance", format!("i{s:03}")),
                ]),
                samples: (step..end)
                    .map(|k| Sample {
                        timestamp_ms: p.t0 + k * STEP_MS,
                        value: sample_value(s, k),
                    })
                    .collect(),
                exemplars: vec![],
                created_timestamp_ms: None,
            })
            .collect();
        let out = ts
            .write(WriteBatch {
                series,
                metadata: vec![],
            })
            .await
            .unwrap();
        assert_eq!(out.out_of_bounds, 0, "{:?}", out.first_out_of_bounds);
        step = end;
    }
    log.flush().await.unwrap();
    ts.flush_head().await.unwrap();
    eprintln!(
        "loaded {} samples in {:.1} s",
        steps * SERIES as i64,
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&marker, expected).unwrap();
    (log, ts)
}

fn main() {
    let dir = std::env::var("SQL_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("data")
                .join("sql-bench")
        });
    std::fs::create_dir_all(&dir).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let hours = env_usize("SQL_BENCH_HOURS", 100).max(2) as i64;
    let p = Params {
        entries: env_usize("SQL_BENCH_ENTRIES", 10_000_000),
        hours,
        t0: {
            let t0_file = dir.join("t0");
            let fresh = std::env::var("SQL_BENCH_FRESH").is_ok_and(|v| v == "1");
            match std::fs::read_to_string(&t0_file)
                .ok()
                .and_then(|t| t.trim().parse().ok())
            {
                Some(t) if !fresh => t,
                _ => {
                    let _ = std::fs::remove_dir_all(dir.join("db"));
                    let _ = std::fs::remove_file(dir.join("loaded"));
                    let t = now - now % 3_600_000 - (hours + 1) * 3_600_000;
                    std::fs::write(&t0_file, t.to_string()).unwrap();
                    std::fs::write(dir.join("hours"), hours.to_string()).unwrap();
                    t
                }
            }
        },
        dir: dir.clone(),
    };
    let csv_marker = dir.join("csv");
    let expected = format!("{} {}", p.entries, p.t0);
    if std::fs::read_to_string(&csv_marker).ok().as_deref() != Some(expected.as_str()) {
        let started = Instant::now();
        write_csvs(&p);
        std::fs::write(&csv_marker, &expected).unwrap();
        eprintln!(
            "wrote the CSV files in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    if std::env::var("SQL_BENCH_ONLY").is_ok_and(|v| v == "data") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(p));
}

async fn run(p: Params) {
    let root = StorageRoot::new(StorageConfig::local(p.dir.join("db"))).unwrap();
    let (log, ts) = load(&p, &root).await;
    let vector = VectorDb::open(&root, Default::default()).await.unwrap();
    let engine = SqlEngine::new(
        Sources {
            log: Opened::Writer(log),
            timeseries: Opened::Writer(ts),
            promql: opendata_timeseries::promql::Engine::new(Default::default()),
            vector: Opened::Writer(vector),
        },
        SqlConfig {
            max_query_memory_bytes: 2 * 1024 * 1024 * 1024,
            ..SqlConfig::default()
        },
        MemoryBudget::default(),
    )
    .unwrap();
    let runs = env_usize("SQL_BENCH_RUNS", 3).max(1);
    // The log's sequences come from one counter: entry i has sequence s0 + i.
    let s0 = {
        let b = engine
            .query("SELECT min(sequence) FROM log.entries WHERE key = 'k000'")
            .await
            .unwrap();
        use opendata_sql::datafusion::arrow::array::{Array, Int64Array};
        let a = b[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .clone();
        a.value(0)
    };
    let hour_start = p.t0 + p.hours / 2 * 3_600_000;
    let hour_end = hour_start + 3_600_000;
    let queries = [
        (
            "group_by_key",
            "SELECT key, count(*) FROM log.entries GROUP BY key".to_string(),
        ),
        (
            "one_key",
            "SELECT count(*), sum(length(value)) FROM log.entries WHERE key = 'k042'".to_string(),
        ),
        (
            "key_sequence_range",
            // 1% of the entries, every key: a sequence range.
            format!(
                "SELECT key, count(*) FROM log.entries WHERE sequence BETWEEN {} AND {} GROUP BY key",
                s0 + p.entries as i64 / 2,
                s0 + p.entries as i64 / 2 + p.entries as i64 / 100 - 1
            ),
        ),
        (
            "hour_aggregate",
            format!(
                "SELECT labels['job'] AS job, avg(value), count(*) FROM timeseries.samples \
                 WHERE metric = 'bench_requests' AND timestamp >= to_timestamp_millis({hour_start}) \
                 AND timestamp < to_timestamp_millis({hour_end}) GROUP BY 1"
            ),
        ),
        (
            "top_k_by_value",
            "SELECT labels['instance'] AS instance, timestamp, value FROM timeseries.samples \
             WHERE metric = 'bench_requests' ORDER BY value DESC, timestamp LIMIT 10"
                .to_string(),
        ),
        (
            "samples_full_scan",
            "SELECT count(*), sum(value) FROM timeseries.samples".to_string(),
        ),
    ];
    for (name, sql) in queries {
        let mut best = f64::MAX;
        let mut rows = 0;
        let mut read_rows = 0;
        let mut read_bytes = 0;
        for _ in 0..runs {
            let (r0, b0) = (engine.counters().rows(), engine.counters().bytes());
            let started = Instant::now();
            let batches = engine.query(&sql).await.unwrap();
            let secs = started.elapsed().as_secs_f64();
            best = best.min(secs);
            rows = batches.iter().map(|b| b.num_rows()).sum::<usize>();
            read_rows = engine.counters().rows() - r0;
            read_bytes = engine.counters().bytes() - b0;
        }
        println!(
            "{}",
            serde_json::json!({
                "engine": "opendata",
                "query": name,
                "seconds": best,
                "rows": rows,
                "read_rows": read_rows,
                "read_bytes": read_bytes,
                "read_rows_per_sec": read_rows as f64 / best,
            })
        );
    }
}
