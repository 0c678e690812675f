//! Time series benchmarks, in process, on the local-directory object store, with the
//! node-exporter-like workload of `opendata_timeseries::workload`.
//!
//! `cargo bench -p opendata-timeseries` runs the full set; under `cargo test` (no
//! `--bench` argument) a seconds-long smoke version keeps the code working.
//! `TS_BENCH_ONLY=ingest|storage|select` runs one part; `TS_BENCH_DIR` sets where the
//! databases go (default: the system temp directory).
//!
//! - ingest: durable in-process writes of 200 series × 10 samples from 4 concurrent
//!   writers, 100,000 series;
//! - storage: 8 h of the 10,000-series workload, then every bucket flushed into chunks
//!   and compaction settled: stored bytes (live SSTs, indexes included) per sample;
//! - select: 1,000 of 100,000 series by matchers with an hour of their samples, from
//!   the head (the last hour) and from a closed bucket (an hour in storage).

use std::sync::Arc;
use std::time::{Duration, Instant};

use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_timeseries::model::{MatchKind, Matcher, WriteBatch};
use opendata_timeseries::workload::{Workload, WorkloadConfig};
use opendata_timeseries::{TimeSeriesConfig, TimeSeriesDb};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HOUR: i64 = 3_600_000;

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("TS_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn config() -> TimeSeriesConfig {
    TimeSeriesConfig {
        retention_secs: 0,
        ..Default::default()
    }
}

async fn open(dir: &std::path::Path) -> TimeSeriesDb {
    let mut storage = StorageConfig::local(dir);
    // TS_BENCH_COMPRESSION: none, lz4 (the default) or zstd.
    if let Ok(c) = std::env::var("TS_BENCH_COMPRESSION") {
        storage.compression = match c.as_str() {
            "none" => opendata_common::config::Compression::None,
            "zstd" => opendata_common::config::Compression::Zstd,
            _ => opendata_common::config::Compression::Lz4,
        };
    }
    let root = StorageRoot::new(storage).unwrap();
    TimeSeriesDb::open_in(&root, config()).await.unwrap()
}

/// Writes slices of batches in time order, `writers` batches at a time within a slice.
async fn ingest(
    db: &TimeSeriesDb,
    slices: Vec<Vec<WriteBatch>>,
    writers: usize,
    durability: Durability,
) -> (u64, Duration) {
    let start = Instant::now();
    let mut samples = 0u64;
    for slice in slices {
        let queue = Arc::new(parking_lot::Mutex::new(slice));
        let mut tasks = Vec::new();
        for _ in 0..writers {
            let queue = queue.clone();
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    let Some(batch) = queue.lock().pop() else {
                        break;
                    };
                    n += batch.sample_count() as u64;
                    let out = db.write_with(batch, durability).await.unwrap();
                    assert_eq!(out.out_of_bounds, 0, "{:?}", out.first_out_of_bounds);
                }
                n
            }));
        }
        for t in tasks {
            samples += t.await.unwrap();
        }
    }
    (samples, start.elapsed())
}

fn slices(
    w: &Workload,
    per_request: usize,
    per_series: usize,
    scrapes: u64,
) -> Vec<Vec<WriteBatch>> {
    let per_slice = w.requests_per_slice(per_request);
    let all: Vec<WriteBatch> = w.batches(per_request, per_series, scrapes).collect();
    let mut out: Vec<Vec<WriteBatch>> = Vec::new();
    let mut iter = all.into_iter();
    loop {
        let mut slice: Vec<WriteBatch> = iter.by_ref().take(per_slice).collect();
        if slice.is_empty() {
            break;
        }
        slice.reverse(); // popped from the back: keep series order
        out.push(slice);
    }
    out
}

async fn bench_ingest(full: bool) {
    let series = if full { 100_000 } else { 2_000 };
    let scrapes = if full { 60 } else { 20 };
    let w = Workload::new(WorkloadConfig {
        series,
        start_ms: now_ms() - HOUR,
        ..Default::default()
    });
    let work = slices(&w, 200, 10, scrapes);
    let dir = bench_dir();
    let db = open(dir.path()).await;
    let (n, took) = ingest(&db, work, 4, Durability::Remote).await;
    println!(
        "ingest: {series} series, {n} samples, 200x10 per write, 4 writers, durable: {:.2} s, {:.0} samples/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    db.close().await.unwrap();
}

async fn settle(db: &TimeSeriesDb) -> opendata_common::storage::LiveSsts {
    db.storage().flush().await.unwrap();
    db.storage().flush_memtable().await.unwrap();
    let mut last = db.storage().live_sst_bytes().await.unwrap();
    let mut stable = 0;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = db.storage().live_sst_bytes().await.unwrap();
        if now.bytes == last.bytes && now.l0_ssts == last.l0_ssts {
            stable += 1;
            if stable >= 6 {
                break;
            }
        } else {
            stable = 0;
        }
        last = now;
    }
    last
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let m = e.metadata().unwrap();
            total += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}

async fn bench_storage(full: bool) {
    let series = if full { 10_000 } else { 1_000 };
    let hours = if full { 8 } else { 1 };
    let scrapes = (hours * HOUR / 15_000) as u64;
    // TS_BENCH_JITTER: scrape timestamp jitter in ms (default ±3, the workload's).
    let jitter_ms = std::env::var("TS_BENCH_JITTER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(WorkloadConfig::default().jitter_ms);
    let w = Workload::new(WorkloadConfig {
        series,
        jitter_ms,
        start_ms: now_ms() - hours * HOUR - 60_000,
        ..Default::default()
    });
    let dir = bench_dir();
    let db = open(dir.path()).await;
    let mut total = 0u64;
    let mut raw = 0u64;
    // Written in slices of 120 scrapes, memory durability (bytes do not depend on it).
    for first in (0..scrapes).step_by(120) {
        let last = (first + 120).min(scrapes);
        let mut slice = Vec::new();
        for s in (0..w.series_count()).step_by(1000) {
            let b = w.batch(s..(s + 1000).min(w.series_count()), first..last);
            raw += b
                .series
                .iter()
                .map(|s| s.samples.len() as u64 * 16)
                .sum::<u64>();
            slice.push(b);
        }
        let (n, _) = ingest(&db, vec![slice], 2, Durability::Memory).await;
        total += n;
    }
    db.maintain().await.unwrap();
    db.flush_head().await.unwrap();
    let live = settle(&db).await;
    let (open_buckets, closed) = db.querier().bucket_counts();
    let on_disk = dir_bytes(dir.path());
    println!(
        "storage: {series} series, {hours} h, jitter ±{jitter_ms} ms, {total} samples ({open_buckets} open + {closed} closed buckets): \
         live SSTs {} bytes = {:.3} bytes/sample ({} L0, {} sorted runs); directory {} bytes = {:.3} bytes/sample; raw 16 B samples {:.1} MB",
        live.bytes,
        live.bytes as f64 / total as f64,
        live.l0_ssts,
        live.sorted_runs,
        on_disk,
        on_disk as f64 / total as f64,
        raw as f64 / 1e6
    );
    db.close().await.unwrap();
}

async fn bench_select(full: bool) {
    let series = if full { 100_000 } else { 2_000 };
    let hours: i64 = 4;
    let scrapes = (hours * HOUR / 15_000) as u64;
    let start_ms = now_ms() - hours * HOUR;
    let w = Workload::new(WorkloadConfig {
        series,
        start_ms,
        ..Default::default()
    });
    let dir = bench_dir();
    let db = open(dir.path()).await;
    let t = Instant::now();
    for first in (0..scrapes).step_by(40) {
        let last = (first + 40).min(scrapes);
        let mut slice = Vec::new();
        for s in (0..w.series_count()).step_by(500) {
            slice.push(w.batch(s..(s + 500).min(w.series_count()), first..last));
        }
        ingest(&db, vec![slice], 2, Durability::Memory).await;
    }
    db.maintain().await.unwrap();
    settle(&db).await;
    let (open_buckets, closed) = db.querier().bucket_counts();
    println!(
        "select: loaded {series} series x {hours} h in {:.1} s ({open_buckets} open, {closed} closed buckets)",
        t.elapsed().as_secs_f64()
    );
    let matchers = vec![
        Matcher::equal("job", "node"),
        Matcher::new(MatchKind::Regex, "instance", "host-0002:.*").unwrap(),
    ];
    let end = start_ms + hours * HOUR;
    // The last hour (head) and the second hour (a closed bucket in storage).
    for (what, from, to) in [
        ("last hour (head)", end - HOUR, end),
        ("second hour (stored)", start_ms + HOUR, start_ms + 2 * HOUR),
    ] {
        let mut times = Vec::new();
        let mut found = (0, 0);
        for _ in 0..21 {
            let t = Instant::now();
            let got = db
                .querier()
                .select(&matchers, from, to)
                .await
                .unwrap()
                .collect()
                .await
                .unwrap();
            times.push(t.elapsed());
            found = (
                got.len(),
                got.iter().map(|s| s.samples.len()).sum::<usize>(),
            );
        }
        times.sort();
        println!(
            "select: {} series, {} samples, {what}: p50 {:.1} ms, p99 {:.1} ms",
            found.0,
            found.1,
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3
        );
    }
    db.close().await.unwrap();
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let only = std::env::var("TS_BENCH_ONLY").ok();
    let run = |name: &str| only.as_deref().is_none_or(|o| o == name);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if run("ingest") {
            bench_ingest(full).await;
        }
        if run("storage") {
            bench_storage(full).await;
        }
        if run("select") {
            bench_select(full).await;
        }
    });
}
