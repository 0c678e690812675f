//! Log database benchmarks, in process, on the local-directory object store.
//!
//! `cargo bench -p opendata-log` runs the full set and prints a table; under
//! `cargo test` (no `--bench` argument) it runs a seconds-long smoke version so the
//! benchmark code stays working.
//!
//! Measured: durable and memory-durability append throughput with many concurrent
//! appenders and ack latency; batch sizes 1 to 1000 and value sizes 64 B to 64 KiB;
//! scanning one key; tail latency to an in-process follower; how soon a replica sees
//! a durable append; stored bytes against raw key and value bytes after compaction.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_log::{AppendOptions, LogConfig, LogDb, LogDbReader, LogFollower, LogRead, Record};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Mode {
    full: bool,
}

impl Mode {
    fn secs(&self, full: f64) -> Duration {
        Duration::from_secs_f64(if self.full { full } else { 0.3 })
    }
    fn n(&self, full: usize, smoke: usize) -> usize {
        if self.full { full } else { smoke }
    }
}

/// A fresh directory under `LOG_BENCH_DIR` (default: the system temp directory).
fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("LOG_BENCH_DIR") {
        Some(base) => tempfile::tempdir_in(base).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn payload(size: usize, seed: u64) -> Bytes {
    // Pseudo-random, incompressible-ish bytes.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(size);
    while v.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(size);
    Bytes::from(v)
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let meta = match e.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            };
            if meta.is_dir() {
                total += dir_bytes(&e.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

async fn open(dir: &std::path::Path) -> (StorageRoot, LogDb) {
    let root = StorageRoot::new(StorageConfig::local(dir)).unwrap();
    let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
    (root, db)
}

struct AppendFigures {
    records_per_sec: f64,
    mib_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

async fn append_load(
    db: &LogDb,
    appenders: usize,
    batch: usize,
    value_size: usize,
    durability: Durability,
    duration: Duration,
) -> AppendFigures {
    let stop = Arc::new(AtomicBool::new(false));
    let records = Arc::new(AtomicU64::new(0));
    let value = payload(value_size, 7);
    let mut tasks = Vec::new();
    for a in 0..appenders {
        let db = db.clone();
        let stop = stop.clone();
        let records = records.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let key = Bytes::from(format!("bench-key-{:04}", a % 100));
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let batch_records: Vec<Record> = (0..batch)
                    .map(|_| Record {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect();
                let t = Instant::now();
                db.append_with(
                    batch_records,
                    AppendOptions {
                        durability,
                        condition: None,
                    },
                )
                .await
                .unwrap();
                lat.push(t.elapsed());
                records.fetch_add(batch as u64, Ordering::Relaxed);
            }
            lat
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort();
    let n = records.load(Ordering::Relaxed) as f64;
    AppendFigures {
        records_per_sec: n / elapsed,
        mib_per_sec: n * (value_size + 14) as f64 / elapsed / (1024.0 * 1024.0),
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}

async fn bench_appends(mode: &Mode) {
    println!("\n## Appends (64 concurrent appenders unless noted, local directory)\n");
    println!(
        "| durability | batch | value | records/s | MiB/s | ack p50 ms | ack p99 ms | WAL flushes/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut cases = vec![
        (Durability::Remote, 100, 256),
        (Durability::Memory, 100, 256),
    ];
    for batch in [1, 10, 1000] {
        cases.push((Durability::Remote, batch, 256));
    }
    for value in [64, 1024, 16 * 1024, 64 * 1024] {
        cases.push((Durability::Remote, 100, value));
    }
    for (durability, batch, value) in cases {
        let dir = bench_dir();
        let (_root, db) = open(dir.path()).await;
        // Large values: fewer appenders so memory stays bounded.
        let appenders = if value >= 16 * 1024 { 8 } else { 64 };
        let before = db.storage().committer().stats();
        let t = Instant::now();
        let f = append_load(&db, appenders, batch, value, durability, mode.secs(10.0)).await;
        let flushes = db.storage().committer().stats().flushes - before.flushes;
        println!(
            "| {:?} | {batch} | {value} B | {:.0} | {:.1} | {} | {} | {:.0} |",
            durability,
            f.records_per_sec,
            f.mib_per_sec,
            ms(f.p50),
            ms(f.p99),
            flushes as f64 / t.elapsed().as_secs_f64()
        );
        db.close().await.unwrap();
    }
}

async fn bench_scan(mode: &Mode) {
    let dir = bench_dir();
    let (root, db) = open(dir.path()).await;
    let total = mode.n(2_000_000, 20_000);
    let value = payload(256, 3);
    let key = Bytes::from("scan-key");
    let mut pending = Vec::new();
    for chunk in 0..total / 1000 {
        let records: Vec<Record> = (0..1000)
            .map(|_| Record {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        let db = db.clone();
        pending.push(tokio::spawn(async move {
            db.append_with(
                records,
                AppendOptions {
                    durability: Durability::Memory,
                    condition: None,
                },
            )
            .await
            .unwrap();
        }));
        if chunk % 64 == 63 {
            for p in pending.drain(..) {
                p.await.unwrap();
            }
        }
    }
    for p in pending {
        p.await.unwrap();
    }
    db.close().await.unwrap();
    let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
    println!("\n## Scanning one key ({total} entries of 256 B, after reopen)\n");
    println!("| pass | records/s |");
    println!("|---|---|");
    for pass in ["cold", "warm"] {
        let t = Instant::now();
        let mut iter = db.scan(key.clone(), ..).await.unwrap();
        let mut n = 0usize;
        while iter.next().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, total);
        println!("| {pass} | {:.0} |", n as f64 / t.elapsed().as_secs_f64());
    }
    db.close().await.unwrap();
}

async fn bench_tail(mode: &Mode) {
    let dir = bench_dir();
    let (root, db) = open(dir.path()).await;
    let base = Instant::now();
    let n = mode.n(500, 20);
    let mut follower = LogFollower::new(db.clone(), Bytes::from("tail"), 0);
    let writer = db.clone();
    let producer = tokio::spawn(async move {
        for _ in 0..n {
            let sent = base.elapsed().as_nanos() as u64;
            writer
                .append(vec![Record {
                    key: Bytes::from("tail"),
                    value: Bytes::copy_from_slice(&sent.to_be_bytes()),
                }])
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let mut lat = Vec::new();
    while lat.len() < n {
        for e in follower
            .next_batch(1000, Duration::from_secs(10))
            .await
            .unwrap()
        {
            let sent = u64::from_be_bytes(e.value[..8].try_into().unwrap());
            lat.push(Duration::from_nanos(
                base.elapsed().as_nanos() as u64 - sent,
            ));
        }
    }
    producer.await.unwrap();
    lat.sort();
    println!("\n## Tail latency (append call to in-process follower, durable appends)\n");
    println!("| follower | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|");
    println!(
        "| writer, in-process | {} | {} | {} |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(*lat.last().unwrap())
    );

    // Replica visibility: how long until a replica (polling every 100 ms) sees a durable append.
    let mut storage = StorageConfig::local(dir.path());
    storage.replica_poll_interval_ms = 100;
    let replica_root = StorageRoot::new(storage).unwrap();
    let replica = LogDbReader::open_in(&replica_root).await.unwrap();
    let mut vis = Vec::new();
    for i in 0..mode.n(20, 3) {
        let t = Instant::now();
        let seq = db
            .append(vec![Record {
                key: Bytes::from("replica"),
                value: Bytes::from(i.to_string()),
            }])
            .await
            .unwrap()[0];
        loop {
            let got = replica
                .scan(Bytes::from("replica"), seq..)
                .await
                .unwrap()
                .next()
                .await
                .unwrap();
            if got.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        vis.push(t.elapsed());
    }
    vis.sort();
    println!(
        "| replica (poll 100 ms) sees durable append | {} | {} | {} |",
        ms(percentile(&vis, 0.5)),
        ms(percentile(&vis, 0.99)),
        ms(*vis.last().unwrap())
    );
    drop(root);
    db.close().await.unwrap();
}

async fn bench_space(mode: &Mode) {
    let dir = bench_dir();
    let (_root, db) = open(dir.path()).await;
    let total = mode.n(1_000_000, 10_000);
    let mut raw = 0u64;
    for chunk in 0..total / 1000 {
        let records: Vec<Record> = (0..1000)
            .map(|i| {
                let key = Bytes::from(format!("space-key-{:05}", (chunk * 1000 + i) % 1000));
                let value = payload(256, (chunk * 1000 + i) as u64);
                raw += (key.len() + value.len()) as u64;
                Record { key, value }
            })
            .collect();
        db.append_with(
            records,
            AppendOptions {
                durability: Durability::Memory,
                condition: None,
            },
        )
        .await
        .unwrap();
    }
    db.close().await.unwrap();
    let log_dir = dir.path().join("log");
    // Let the compactor run: reopen and wait until level 0 is empty and the sorted
    // runs stop changing.
    let (_root, db) = open(dir.path()).await;
    let mut last = None;
    let mut live = db.storage().live_sst_bytes().await.unwrap();
    for _ in 0..mode.n(120, 4) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        live = db.storage().live_sst_bytes().await.unwrap();
        if live.l0_ssts == 0 && last == Some(live) {
            break;
        }
        last = Some(live);
    }
    let on_disk = dir_bytes(&log_dir);
    db.close().await.unwrap();
    println!("\n## Space ({total} entries, 1000 keys of 15 B, 256 B random values)\n");
    println!(
        "| raw key+value bytes | live SSTs (manifest) | ratio | sorted runs | directory incl. files awaiting GC |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {raw} | {} | {:.3} | {} | {on_disk} |",
        live.bytes,
        live.bytes as f64 / raw as f64,
        live.sorted_runs
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let mode = Mode { full };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "# opendata-log benchmarks ({})",
            if full { "full" } else { "smoke" }
        );
        // LOG_BENCH_ONLY=appends,scan,tail,space runs a subset.
        let only = std::env::var("LOG_BENCH_ONLY").unwrap_or_default();
        let run = |name: &str| only.is_empty() || only.split(',').any(|s| s.trim() == name);
        if run("appends") {
            bench_appends(&mode).await;
        }
        if run("scan") {
            bench_scan(&mode).await;
        }
        if run("tail") {
            bench_tail(&mode).await;
        }
        if run("space") {
            bench_space(&mode).await;
        }
    });
}
