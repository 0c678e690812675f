//! Time series benchmarks, in process, on the local-directory object store, with the
//! node-exporter-like workload of `opendata_testing::workload`.
//!
//! `cargo bench -p opendata-timeseries` runs the full set; under `cargo test` (no
//! `--bench` argument) a seconds-long smoke version keeps the code working.
//! `TS_BENCH_ONLY=ingest|storage|select|histograms|query` runs one part; `TS_BENCH_DIR` sets where
//! the databases go (default: the system temp directory).
//!
//! - ingest: durable in-process writes of 200 series × 10 samples from 4 concurrent
//!   writers, 100,000 series;
//! - storage: 8 h of the 10,000-series workload, then every bucket flushed into chunks
//!   and compaction settled: stored bytes (live SSTs, indexes included) per sample;
//! - select: 1,000 of 100,000 series by matchers with an hour of their samples, from
//!   the head (the last hour) and from a closed bucket (an hour in storage);
//! - query: PromQL over 24 h of the 10,000-series workload (closed buckets in storage,
//!   the open ones in the head): `sum by (job) (rate(m[5m]))` as an instant query and as
//!   a 24 h range query at a 60 s step, and `histogram_quantile(0.9, sum by (le)
//!   (rate(h_bucket[5m])))` over 24 h at 60 s, with `m` the workload's largest counter
//!   family and `h` its histogram. Every result is checked against values computed from
//!   the workload itself; a failing or wrong query makes the bench exit non-zero.
//!   `TS_BENCH_REPS` sets the timed runs per query after a warm-up (default 20).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_testing::workload::{Workload, WorkloadConfig};
use opendata_timeseries::model::{
    FloatHistogram, Labels, MatchKind, Matcher, MetricType, WriteBatch,
};
use opendata_timeseries::promql::{Engine, QueryOptions, QueryResult, Value};
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

/// Native histograms: durable ingest of histogram samples, and the bytes a stored
/// histogram sample takes (schema 3, a few dozen populated buckets each).
async fn bench_histograms(full: bool) {
    // Ingest: 100 targets (2,800 histograms) x 120 scrapes, 200 series x 10 samples per
    // write, 4 writers, durable.
    let targets = if full { 100 } else { 4 };
    let scrapes: u64 = if full { 120 } else { 20 };
    let w = Workload::new(WorkloadConfig {
        series: targets * 1_000,
        start_ms: now_ms() - HOUR,
        ..Default::default()
    });
    let hists = w.histogram_count();
    let mut slices = Vec::new();
    for first in (0..scrapes).step_by(10) {
        let last = (first + 10).min(scrapes);
        let mut slice: Vec<WriteBatch> = (0..hists)
            .step_by(200)
            .map(|h| w.histogram_batch(h..(h + 200).min(hists), first..last))
            .collect();
        slice.reverse();
        slices.push(slice);
    }
    let buckets: usize = (0..hists)
        .map(|h| w.histogram_sample(h, scrapes / 2).histogram.positive.len())
        .sum::<usize>()
        / hists;
    let dir = bench_dir();
    let db = open(dir.path()).await;
    let start = Instant::now();
    let mut n = 0u64;
    for slice in slices {
        let queue = Arc::new(parking_lot::Mutex::new(slice));
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let queue = queue.clone();
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    let Some(batch) = queue.lock().pop() else {
                        break;
                    };
                    let out = db.write_with(batch, Durability::Remote).await.unwrap();
                    assert_eq!(out.out_of_bounds, 0, "{:?}", out.first_out_of_bounds);
                    n += out.histograms as u64;
                }
                n
            }));
        }
        for t in tasks {
            n += t.await.unwrap();
        }
    }
    let took = start.elapsed();
    println!(
        "histograms: ingest {hists} native histograms ({buckets} populated buckets on average) x {scrapes} scrapes = {n} histogram samples, \
         200x10 per write, 4 writers, durable: {:.2} s, {:.0} histogram samples/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    db.close().await.unwrap();
    drop(dir);

    // Storage: 20 targets (560 histograms) x 8 h, flushed into chunks.
    let targets = if full { 20 } else { 2 };
    let hours = if full { 8 } else { 1 };
    let scrapes = (hours * HOUR / 15_000) as u64;
    let w = Workload::new(WorkloadConfig {
        series: targets * 1_000,
        start_ms: now_ms() - hours * HOUR - 60_000,
        ..Default::default()
    });
    let hists = w.histogram_count();
    let dir = bench_dir();
    let db = open(dir.path()).await;
    let mut total = 0u64;
    for first in (0..scrapes).step_by(120) {
        let last = (first + 120).min(scrapes);
        let out = db
            .write_with(w.histogram_batch(0..hists, first..last), Durability::Memory)
            .await
            .unwrap();
        total += out.histograms as u64;
        // Keep the head small: histograms are held decoded until their bucket flushes.
        db.maintain().await.unwrap();
    }
    db.maintain().await.unwrap();
    db.flush_head().await.unwrap();
    let live = settle(&db).await;
    println!(
        "histograms: storage {hists} native histograms x {hours} h = {total} histogram samples: live SSTs {} bytes = {:.2} bytes/histogram sample",
        live.bytes,
        live.bytes as f64 / total as f64,
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

// ---------------------------------------------------------------------------------------
// PromQL queries.

const MINUTE: i64 = 60_000;
/// The range of the `rate` windows of the queries.
const RATE_RANGE: i64 = 5 * MINUTE;
/// Largest relative difference allowed between a query's value and the one computed
/// from the workload (an engine following Prometheus lands within float rounding).
const TOLERANCE: f64 = 1e-3;

/// Values of the benchmark's queries computed straight from the workload's samples, as
/// Prometheus defines them, to check that the engine's answers mean something.
struct Reference<'a> {
    w: &'a Workload,
    scrapes: u64,
}

impl Reference<'_> {
    /// `rate(s[5m])` at `t`: the extrapolated increase over the window `(t - 5m, t]`
    /// divided by its length. The workload's counters never reset. `None` with fewer
    /// than two samples in the window.
    fn rate(&self, series: usize, t: i64) -> Option<f64> {
        let cfg = self.w.config();
        let (start, iv) = (cfg.start_ms, cfg.interval_ms);
        let first = ((t - RATE_RANGE - start).div_euclid(iv) + 1).max(0) as u64;
        let last = (t - start).div_euclid(iv);
        if last < 0 {
            return None;
        }
        let last = (last as u64).min(self.scrapes - 1);
        if last <= first {
            return None;
        }
        let (a, b) = (self.w.sample(series, first), self.w.sample(series, last));
        // The query times sit half an interval off the scrape grid, so the jitter never
        // moves a sample across a window's edge.
        assert!(
            a.timestamp_ms > t - RATE_RANGE && b.timestamp_ms <= t,
            "reference window misaligned"
        );
        let n = (last - first + 1) as f64;
        let increase = b.value - a.value;
        let sampled = (b.timestamp_ms - a.timestamp_ms) as f64 / 1e3;
        let mut to_start = (a.timestamp_ms - (t - RATE_RANGE)) as f64 / 1e3;
        let to_end = (t - b.timestamp_ms) as f64 / 1e3;
        let average = sampled / (n - 1.0);
        // A counter is not extrapolated below zero.
        if increase > 0.0 && a.value >= 0.0 {
            to_start = to_start.min(sampled * a.value / increase);
        }
        let threshold = average * 1.1;
        let mut covered = sampled;
        covered += if to_start < threshold {
            to_start
        } else {
            average / 2.0
        };
        covered += if to_end < threshold {
            to_end
        } else {
            average / 2.0
        };
        Some(increase * covered / sampled / (RATE_RANGE as f64 / 1e3))
    }

    /// `sum(rate(s[5m]))` over `series` at `t`.
    fn sum_rate(&self, series: &[usize], t: i64) -> Option<f64> {
        let mut any = false;
        let mut sum = 0.0;
        for &s in series {
            if let Some(r) = self.rate(s, t) {
                any = true;
                sum += r;
            }
        }
        any.then_some(sum)
    }

    /// `histogram_quantile(q, sum by (le) (rate(h_bucket[5m])))` at `t`, with `buckets`
    /// the bucket series and their upper bounds.
    fn quantile(&self, q: f64, buckets: &[(usize, f64)], t: i64) -> Option<f64> {
        let mut by_le: Vec<(f64, f64)> = Vec::new();
        for &(s, le) in buckets {
            let Some(r) = self.rate(s, t) else { continue };
            match by_le.iter_mut().find(|(b, _)| *b == le) {
                Some(slot) => slot.1 += r,
                None => by_le.push((le, r)),
            }
        }
        by_le.sort_by(|a, b| a.0.total_cmp(&b.0));
        if by_le.len() < 2 || by_le.last().unwrap().0 != f64::INFINITY {
            return None;
        }
        // Cumulative counts summed from rates can dip by rounding: keep them monotonic.
        for i in 1..by_le.len() {
            by_le[i].1 = by_le[i].1.max(by_le[i - 1].1);
        }
        let total = by_le.last().unwrap().1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let b = by_le[..by_le.len() - 1]
            .iter()
            .position(|(_, c)| *c >= rank)
            .unwrap_or(by_le.len() - 1);
        if b == by_le.len() - 1 {
            return Some(by_le[b - 1].0);
        }
        if b == 0 && by_le[0].0 <= 0.0 {
            return Some(by_le[0].0);
        }
        let (lower, below) = if b == 0 { (0.0, 0.0) } else { by_le[b - 1] };
        let (upper, count) = by_le[b];
        Some(lower + (upper - lower) * (rank - below) / (count - below))
    }
}

impl Reference<'_> {
    /// `histogram_quantile(q, sum(rate(h[5m])))` over native histograms `hists` at `t`:
    /// each histogram's increase over the window (the workload never resets),
    /// extrapolated as `rate` does (towards the start at most to where the count would
    /// be zero), summed, and the quantile estimated by [`FloatHistogram::quantile`].
    fn native_quantile(&self, q: f64, hists: &[usize], t: i64) -> Option<f64> {
        let cfg = self.w.config();
        let (start, iv) = (cfg.start_ms, cfg.interval_ms);
        let first = ((t - RATE_RANGE - start).div_euclid(iv) + 1).max(0) as u64;
        let last = ((t - start).div_euclid(iv) as u64).min(self.scrapes - 1);
        if last <= first {
            return None;
        }
        let mut parts = Vec::new();
        for &h in hists {
            let (a, b) = (
                self.w.histogram_sample(h, first),
                self.w.histogram_sample(h, last),
            );
            let mut inc = FloatHistogram::clone(&b.histogram);
            inc.sub(&a.histogram).ok()?;
            let n = (last - first + 1) as f64;
            let sampled = (b.timestamp_ms - a.timestamp_ms) as f64 / 1e3;
            let mut to_start = (a.timestamp_ms - (t - RATE_RANGE)) as f64 / 1e3;
            let to_end = (t - b.timestamp_ms) as f64 / 1e3;
            let average = sampled / (n - 1.0);
            let threshold = average * 1.1;
            let mut covered = sampled;
            if to_start >= threshold {
                to_start = average / 2.0;
            }
            if inc.count > 0.0 && a.histogram.count >= 0.0 {
                to_start = to_start.min(sampled * a.histogram.count / inc.count);
            }
            covered += to_start;
            covered += if to_end < threshold {
                to_end
            } else {
                average / 2.0
            };
            inc.mul(covered / sampled / (RATE_RANGE as f64 / 1e3));
            parts.push(inc);
        }
        let refs: Vec<&FloatHistogram> = parts.iter().collect();
        let sum = FloatHistogram::sum_of(&refs, false).ok()?.histogram;
        Some(sum.quantile(q))
    }
}

/// One of the benchmark's queries.
enum Query {
    Instant { t: i64 },
    Range { start: i64, end: i64, step: i64 },
}

async fn run_query(
    engine: &Engine,
    querier: &opendata_timeseries::Querier,
    promql: &str,
    query: &Query,
) -> Result<QueryResult, String> {
    let options = QueryOptions::default();
    let out = match *query {
        Query::Instant { t } => engine.instant_query(querier, promql, t, &options).await,
        Query::Range { start, end, step } => {
            engine
                .range_query(querier, promql, start, end, step, &options)
                .await
        }
    };
    out.map_err(|e| format!("`{promql}` failed ({}): {e}", e.error_type()))
}

/// Checks a query's value: one series with `labels`, a finite point at every expected
/// time, each within [`TOLERANCE`] of the expected value. Returns the number of series
/// and points and the largest relative difference.
fn check(
    value: &Value,
    labels: &Labels,
    expected: &[(i64, f64)],
) -> Result<(usize, usize, f64), String> {
    let got: Vec<(i64, f64)> = match value {
        Value::Vector(v) => {
            if v.len() != 1 || &v[0].labels != labels {
                return Err(format!(
                    "expected one series {labels:?}, got {} ({:?})",
                    v.len(),
                    v.iter().map(|s| &s.labels).take(3).collect::<Vec<_>>()
                ));
            }
            vec![(v[0].t, v[0].f)]
        }
        Value::Matrix(m) => {
            if m.len() != 1 || &m[0].labels != labels {
                return Err(format!(
                    "expected one series {labels:?}, got {} ({:?})",
                    m.len(),
                    m.iter().map(|s| &s.labels).take(3).collect::<Vec<_>>()
                ));
            }
            m[0].floats.clone()
        }
        other => return Err(format!("unexpected {} result", other.result_type())),
    };
    if got.len() != expected.len() {
        return Err(format!(
            "expected {} points, got {}",
            expected.len(),
            got.len()
        ));
    }
    let mut worst = 0.0f64;
    for (&(t, f), &(et, ef)) in got.iter().zip(expected) {
        if t != et {
            return Err(format!("point at {t} ms, expected {et} ms"));
        }
        if !f.is_finite() {
            return Err(format!("non-finite value {f} at {t} ms"));
        }
        let diff = (f - ef).abs() / ef.abs().max(1e-9);
        if diff > TOLERANCE {
            return Err(format!(
                "value {f} at {t} ms, expected {ef} (relative difference {diff:.2e})"
            ));
        }
        worst = worst.max(diff);
    }
    Ok((1, got.len(), worst))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `first, min, p50, p90, max` of timings (the first being the warm-up run).
fn timing_summary(first: Duration, mut times: Vec<Duration>) -> String {
    times.sort();
    let n = times.len();
    format!(
        "warm-up {:.1} ms; {n} runs: min {:.1} ms, p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        ms(first),
        ms(times[0]),
        ms(times[n / 2]),
        ms(times[((n * 9).div_ceil(10)).saturating_sub(1)]),
        ms(times[n - 1])
    )
}

/// A line of `/proc/self/status` (`VmHWM`, `VmRSS`), in MiB.
fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS; false if the kernel
/// does not allow it.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn series_of(w: &Workload, name: &str) -> Vec<usize> {
    (0..w.series_count())
        .filter(|&s| w.labels(s).metric_name() == Some(name))
        .collect()
}

async fn bench_query(full: bool) -> Result<(), String> {
    let series = if full { 10_000 } else { 1_000 };
    let hours: i64 = if full { 24 } else { 2 };
    let reps: usize = std::env::var("TS_BENCH_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 20 } else { 3 })
        .max(1);
    let interval_ms = WorkloadConfig::default().interval_ms;
    // Scrapes cover the 24 h of the range query plus the 5 min window of its first step,
    // and the last one is a minute old.
    let span = hours * HOUR + RATE_RANGE;
    let scrapes = (span / interval_ms) as u64 + 1;
    let start_ms = now_ms() - span - MINUTE;
    let w = Workload::new(WorkloadConfig {
        series,
        interval_ms,
        start_ms,
        ..Default::default()
    });
    // Evaluation times sit half an interval after a nominal scrape time: with ±3 ms of
    // jitter, no sample is ever on the edge of a window.
    let end = start_ms + (scrapes as i64 - 1) * interval_ms + interval_ms / 2;
    let range_start = end - hours * HOUR;
    let step = MINUTE;

    // m: the counter family with the most series; h: the histogram.
    let mut counter = (String::new(), Vec::new());
    let mut histogram = None;
    for md in w.metadata() {
        match md.metric_type {
            MetricType::Counter => {
                let s = series_of(&w, &md.metric);
                if s.len() > counter.1.len() {
                    counter = (md.metric.clone(), s);
                }
            }
            MetricType::Histogram if histogram.is_none() => {
                histogram = Some(md.metric.clone());
            }
            _ => {}
        }
    }
    let (m, m_series) = counter;
    let h_bucket = format!(
        "{}_bucket",
        histogram.expect("the workload has a histogram")
    );
    let h_series: Vec<(usize, f64)> = series_of(&w, &h_bucket)
        .into_iter()
        .map(|s| {
            let le = w.labels(s).get("le").expect("le label");
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("numeric le")
            };
            (s, bound)
        })
        .collect();

    // Load in time order, 120 scrapes at a time, as the storage bench does; bucket
    // closing runs in the background as the data moves on, as in production.
    // The peak RSS printed after loading is this part's, not the earlier parts'.
    reset_peak_rss();
    let dir = bench_dir();
    let db = open(dir.path()).await;
    let t = Instant::now();
    db.write_with(w.metadata_batch(), Durability::Memory)
        .await
        .unwrap();
    let mut samples = 0u64;
    for first in (0..scrapes).step_by(120) {
        let last = (first + 120).min(scrapes);
        let mut slice = Vec::new();
        for s in (0..w.series_count()).step_by(1000) {
            slice.push(w.batch(s..(s + 1000).min(w.series_count()), first..last));
        }
        // The classic histograms' native form, beside them (28 per target).
        slice.push(w.histogram_batch(0..w.histogram_count(), first..last));
        let (n, _) = ingest(&db, vec![slice], 2, Durability::Memory).await;
        samples += n;
    }
    let loaded = t.elapsed();
    let t = Instant::now();
    db.maintain().await.unwrap();
    settle(&db).await;
    let settled = t.elapsed();
    let (open_buckets, closed) = db.querier().bucket_counts();
    println!(
        "query: loaded {} series x {scrapes} scrapes every {} s ({samples} samples, {hours} h + 5 min) in {:.1} s \
         ({:.0} samples/s, memory durability); closing buckets and settling storage took {:.1} s more: \
         {open_buckets} open (head) + {closed} closed buckets; peak RSS while loading {:.0} MiB",
        w.series_count(),
        interval_ms / 1000,
        loaded.as_secs_f64(),
        samples as f64 / loaded.as_secs_f64(),
        settled.as_secs_f64(),
        proc_status_mib("VmHWM").unwrap_or(f64::NAN),
    );
    let rss_before = proc_status_mib("VmRSS").unwrap_or(f64::NAN);
    // The largest of the peaks between resets.
    let mut peak_rss_since_start = proc_status_mib("VmHWM").unwrap_or(f64::NAN);

    let querier = db.querier();
    let engine = Engine::new(db.config().query.clone());
    let reference = Reference { w: &w, scrapes };
    let rate_query = format!("sum by (job) (rate({m}[5m]))");
    let quantile_query = format!("histogram_quantile(0.9, sum by (le) (rate({h_bucket}[5m])))");
    let native_name = h_bucket.trim_end_matches("_bucket").to_string();
    let native_query = format!("histogram_quantile(0.9, sum(rate({native_name}[5m])))");
    let natives: Vec<usize> = (0..w.histogram_count()).collect();
    let steps: Vec<i64> = (0..)
        .map(|k| range_start + k * step)
        .take_while(|&t| t <= end)
        .collect();
    let job = Labels::from_pairs([("job", "node")]);
    let cases = [
        (
            "instant",
            rate_query.as_str(),
            Query::Instant { t: end },
            m_series.len(),
            job.clone(),
            vec![(end, reference.sum_rate(&m_series, end).unwrap())],
        ),
        (
            "range",
            rate_query.as_str(),
            Query::Range {
                start: range_start,
                end,
                step,
            },
            m_series.len(),
            job,
            steps
                .iter()
                .map(|&t| (t, reference.sum_rate(&m_series, t).unwrap()))
                .collect(),
        ),
        (
            "range",
            quantile_query.as_str(),
            Query::Range {
                start: range_start,
                end,
                step,
            },
            h_series.len(),
            Labels::default(),
            steps
                .iter()
                .map(|&t| (t, reference.quantile(0.9, &h_series, t).unwrap()))
                .collect(),
        ),
        (
            "range",
            native_query.as_str(),
            Query::Range {
                start: range_start,
                end,
                step,
            },
            natives.len(),
            Labels::default(),
            steps
                .iter()
                .map(|&t| (t, reference.native_quantile(0.9, &natives, t).unwrap()))
                .collect(),
        ),
    ];
    let mut failures = Vec::new();
    // TS_BENCH_QUERY=<substring> runs only the matching queries.
    let only_query = std::env::var("TS_BENCH_QUERY").ok();
    for (kind, promql, query, touched, labels, expected) in &cases {
        if only_query.as_deref().is_some_and(|q| !promql.contains(q)) {
            continue;
        }
        let what = match query {
            Query::Instant { .. } => "at the end".to_string(),
            Query::Range { .. } => format!("over {hours} h at a {} s step", step / 1000),
        };
        // Reset the peak RSS so that the one read after the runs is this query's (or an
        // earlier one's, if this one fits in the memory the allocator kept).
        peak_rss_since_start = peak_rss_since_start.max(proc_status_mib("VmHWM").unwrap_or(0.0));
        let reset = reset_peak_rss();
        let t = Instant::now();
        let result = match run_query(&engine, &querier, promql, query).await {
            Ok(r) => r,
            Err(e) => {
                println!("query: {kind} {promql} {what}: FAILED: {e}");
                failures.push(e);
                continue;
            }
        };
        let first = t.elapsed();
        let (n_series, points, worst) = match check(&result.value, labels, expected) {
            Ok(c) => c,
            Err(e) => {
                let e = format!("`{promql}` returned a wrong result: {e}");
                println!("query: {kind} {promql} {what}: FAILED: {e}");
                failures.push(e);
                continue;
            }
        };
        let mut times = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            let rerun = run_query(&engine, &querier, promql, query).await;
            times.push(t.elapsed());
            if let Err(e) = rerun.and_then(|r| check(&r.value, labels, expected)) {
                let e = format!("`{promql}` failed on a rerun: {e}");
                println!("query: {kind} {promql} {what}: FAILED: {e}");
                failures.push(e);
                break;
            }
        }
        if times.len() < reps {
            continue;
        }
        println!(
            "query: {kind} {promql} {what}: {touched} series selected, {} samples loaded, \
             result {n_series} series / {points} points (max relative difference to the \
             workload's values {worst:.1e}); {}; peak RSS {:.0} MiB{}",
            result.samples_loaded,
            timing_summary(first, times),
            proc_status_mib("VmHWM").unwrap_or(f64::NAN),
            if reset {
                ""
            } else {
                " (since the start: could not reset it)"
            }
        );
    }
    // What a range query reads, for scale: the selector's series and 24 h of their
    // samples. After the queries, so that the memory it leaves to the allocator does not
    // hide theirs.
    for name in [&m, &h_bucket] {
        let matchers = [Matcher::equal("__name__", name.as_str())];
        let mut times = Vec::new();
        let mut found = (0, 0, 0);
        for _ in 0..4 {
            let t = Instant::now();
            let set = querier
                .select(&matchers, end - hours * HOUR - RATE_RANGE, end)
                .await
                .unwrap();
            let selected = set.series_count();
            let got = set.collect().await.unwrap();
            times.push(t.elapsed());
            found = (
                selected,
                got.len(),
                got.iter().map(|s| s.samples.len()).sum::<usize>(),
            );
        }
        let first = times.remove(0);
        println!(
            "query: select {name}: {} series selected, {} with samples, {} samples over {hours} h + 5 min; {}",
            found.0,
            found.1,
            found.2,
            timing_summary(first, times)
        );
    }

    println!(
        "query: RSS {rss_before:.0} MiB after loading, {:.0} MiB after the queries; peak since this part started {:.0} MiB",
        proc_status_mib("VmRSS").unwrap_or(f64::NAN),
        peak_rss_since_start.max(proc_status_mib("VmHWM").unwrap_or(f64::NAN)),
    );
    db.close().await.unwrap();
    drop(dir);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} queries failed: {}",
            failures.len(),
            cases.len(),
            failures.join("; ")
        ))
    }
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
    let failed = rt.block_on(async {
        if run("ingest") {
            bench_ingest(full).await;
        }
        if run("storage") {
            bench_storage(full).await;
        }
        if run("select") {
            bench_select(full).await;
        }
        if run("histograms") {
            bench_histograms(full).await;
        }
        if run("query") {
            return bench_query(full).await.err();
        }
        None
    });
    if let Some(e) = failed {
        eprintln!("ts_bench: {e}");
        std::process::exit(1);
    }
}
