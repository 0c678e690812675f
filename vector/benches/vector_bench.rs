//! Vector database benchmark, in process, on the local-directory object store, with the
//! clustered data of `opendata_testing::dataset` (1,000,000 × 128 by default).
//!
//! `cargo bench -p opendata-vector` runs it in full; under `cargo test` (no `--bench`
//! argument) a seconds-long smoke version (5,000 vectors) keeps the code working.
//!
//! Phases:
//! 1. data: the base vectors, queries, buckets, and exact ground truth (100 nearest,
//!    brute force), unfiltered and restricted to `bucket == 7` (about 1%);
//! 2. ingest: durable upserts (`Durability::Remote`) of batches of 1,000 from 2
//!    concurrent tasks, then `maintain` to completion, timed apart;
//! 3. the collection as `describe_collection` reports it, index memory against the raw
//!    vector bytes (n · dim · 4);
//! 4. search: a warm-up pass over every query, then per setting (the default, each
//!    nprobe, a recall target of 0.95) recall@10 against the ground truth and queries/s
//!    and latency of single searches from 2 concurrent workers;
//! 5. the same with the filter `{"bucket": 7}`;
//! 6. a markdown table, and the targets, each met or not.
//!
//! Environment:
//! - `VECTOR_BENCH_N` (default 1,000,000), `VECTOR_BENCH_DIM` (128),
//!   `VECTOR_BENCH_QUERIES` (1,000), `VECTOR_BENCH_SEED` (42), `VECTOR_BENCH_CLUSTERS`
//!   (default 2·√N);
//! - `VECTOR_BENCH_DIR`: a directory kept across runs. It receives the data as `.npy`
//!   (`base.npy` f32 n×dim, `queries.npy` f32 q×dim, `gt.npy` i32 q×100,
//!   `buckets.npy` i32 n, `gt_bucket7.npy` i32 q×100 padded with -1) for
//!   `scripts/bench-faiss.sh`, and the database under `db/`: when it already holds
//!   this data set, ingest is skipped. Without it, a temporary directory is used and
//!   no data files are written.
//! - `VECTOR_BENCH_ONLY=data`: only write the data files (needs `VECTOR_BENCH_DIR`).
//! - `VECTOR_BENCH_NPROBES` (default `1,2,4,8,16,32,64`), `VECTOR_BENCH_SECS` (least
//!   seconds per search row, repeating the queries; default 3), `VECTOR_BENCH_WRITERS`
//!   (2), `VECTOR_BENCH_BATCH` (1,000), `VECTOR_BENCH_CACHE_MB` (SlateDB block cache,
//!   default 2,048: the targets are for a warm cache), `VECTOR_BENCH_CONFIG`
//!   (a `VectorConfig` as JSON, e.g. `{"default_nprobe": 24}`).
//! - `VECTOR_BENCH_FVECS`, `VECTOR_BENCH_NPY`: real data instead of generated data, once
//!   the crate has `.fvecs`/`.npy` readers; refused until then.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_testing::dataset::{self, Clustered, ClusteredSpec, Neighbours};
use opendata_vector::{
    AttributeType, AttributeValue, CollectionSpec, Filter, Metric, SearchPlan, SearchRequest,
    VectorConfig, VectorDb, VectorRecord,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const COLLECTION: &str = "bench";
/// Neighbours kept in the ground truth (and its files).
const TRUTH_K: usize = 100;
/// Neighbours asked for and scored.
const K: usize = 10;
/// The bucket the filtered searches ask for.
const BUCKET: u32 = 7;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

struct Params {
    full: bool,
    spec: ClusteredSpec,
    queries: usize,
    nprobes: Vec<usize>,
    min_secs: f64,
    writers: usize,
    batch: usize,
    cache_mb: u64,
    config: VectorConfig,
    dir: Option<PathBuf>,
    only_data: bool,
}

impl Params {
    fn from_env() -> Self {
        let full = std::env::args().any(|a| a == "--bench");
        let n = env_or("VECTOR_BENCH_N", if full { 1_000_000 } else { 5_000 });
        let dim = env_or("VECTOR_BENCH_DIM", 128);
        let mut spec = ClusteredSpec::new(env_or("VECTOR_BENCH_SEED", 42), n, dim);
        spec.clusters = env_or("VECTOR_BENCH_CLUSTERS", spec.clusters);
        let nprobes = std::env::var("VECTOR_BENCH_NPROBES")
            .unwrap_or_else(|_| if full { "1,2,4,8,16,32,64" } else { "1,4,16" }.into())
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("VECTOR_BENCH_NPROBES: a list of integers")
            })
            .collect();
        let config = match std::env::var("VECTOR_BENCH_CONFIG") {
            Ok(json) => serde_json::from_str(&json).expect("VECTOR_BENCH_CONFIG: a VectorConfig"),
            Err(_) => VectorConfig::default(),
        };
        let only = std::env::var("VECTOR_BENCH_ONLY").ok();
        let only_data = match only.as_deref() {
            None | Some("") => false,
            Some("data") => true,
            Some(other) => panic!("VECTOR_BENCH_ONLY={other:?}: only \"data\" is known"),
        };
        Self {
            full,
            spec,
            queries: env_or("VECTOR_BENCH_QUERIES", if full { 1_000 } else { 50 }),
            nprobes,
            min_secs: env_or("VECTOR_BENCH_SECS", if full { 3.0 } else { 0.0 }),
            writers: env_or("VECTOR_BENCH_WRITERS", 2usize).max(1),
            batch: env_or("VECTOR_BENCH_BATCH", 1_000usize).max(1),
            cache_mb: env_or("VECTOR_BENCH_CACHE_MB", 2_048),
            config,
            dir: std::env::var_os("VECTOR_BENCH_DIR").map(PathBuf::from),
            only_data,
        }
    }

    /// What identifies the data set: the database and the data files are reused only
    /// when this matches.
    fn fingerprint(&self) -> String {
        let s = self.spec;
        format!(
            "{} seed={} n={} dim={} clusters={} queries={} truth_k={TRUTH_K} bucket={BUCKET}\n",
            dataset::GENERATOR,
            s.seed,
            s.n,
            s.dim,
            s.clusters,
            self.queries
        )
    }
}

fn machine_info() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown CPU");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(
            || "?".to_string(),
            |kb| format!("{:.1}", kb / 1024.0 / 1024.0),
        );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} cores ({model}), {mem_gib} GiB RAM, load average {}",
        load.join(" ")
    )
}

/// The base vectors, queries and exact answers.
struct Data {
    generator: Clustered,
    base: Arc<Vec<f32>>,
    queries: Arc<Vec<f32>>,
    truth: Neighbours,
    truth_bucket: Neighbours,
}

fn make_data(p: &Params) -> Data {
    if std::env::var_os("VECTOR_BENCH_FVECS").is_some()
        || std::env::var_os("VECTOR_BENCH_NPY").is_some()
    {
        eprintln!(
            "vector_bench: VECTOR_BENCH_FVECS / VECTOR_BENCH_NPY need the crate's .fvecs/.npy readers, which are not there yet"
        );
        std::process::exit(2);
    }
    let s = p.spec;
    let generator = Clustered::new(s);
    let t = Instant::now();
    let base = generator.base();
    let queries = generator.queries(p.queries);
    println!(
        "data: {} × {} clustered vectors ({} clusters, seed {}), {} queries: generated in {:.2} s",
        s.n,
        s.dim,
        s.clusters,
        s.seed,
        p.queries,
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let truth = dataset::exact_knn(&base, &queries, s.dim, TRUTH_K, |_| true);
    println!(
        "data: exact {TRUTH_K} nearest of every query (brute force): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let truth_bucket = dataset::exact_knn(&base, &queries, s.dim, TRUTH_K, |i| {
        generator.bucket(i) == BUCKET
    });
    let matching = (0..s.n).filter(|&i| generator.bucket(i) == BUCKET).count();
    println!(
        "data: exact {TRUTH_K} nearest with bucket == {BUCKET} ({matching} vectors, {:.2}%): {:.2} s",
        100.0 * matching as f64 / s.n.max(1) as f64,
        t.elapsed().as_secs_f64()
    );
    Data {
        generator,
        base: Arc::new(base),
        queries: Arc::new(queries),
        truth,
        truth_bucket,
    }
}

/// Writes the data files for other tools, unless the directory already holds them.
fn write_data_files(p: &Params, d: &Data, dir: &Path) {
    let marker = dir.join("dataset.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(&p.fingerprint()) {
        println!("data: files in {} are current", dir.display());
        return;
    }
    let t = Instant::now();
    let (n, dim, nq) = (p.spec.n, p.spec.dim, p.queries);
    let _ = std::fs::remove_file(&marker);
    dataset::write_npy_f32(&dir.join("base.npy"), &d.base, &[n, dim]).unwrap();
    dataset::write_npy_f32(&dir.join("queries.npy"), &d.queries, &[nq, dim]).unwrap();
    dataset::write_npy_i32(&dir.join("gt.npy"), &d.truth.id_matrix(), &[nq, TRUTH_K]).unwrap();
    let buckets: Vec<i32> = (0..n).map(|i| d.generator.bucket(i) as i32).collect();
    dataset::write_npy_i32(&dir.join("buckets.npy"), &buckets, &[n]).unwrap();
    dataset::write_npy_i32(
        &dir.join(format!("gt_bucket{BUCKET}.npy")),
        &d.truth_bucket.id_matrix(),
        &[nq, TRUTH_K],
    )
    .unwrap();
    std::fs::write(&marker, p.fingerprint()).unwrap();
    println!(
        "data: wrote base.npy, queries.npy, gt.npy, buckets.npy, gt_bucket{BUCKET}.npy to {} in {:.2} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
}

fn spec(dim: usize) -> CollectionSpec {
    CollectionSpec::new(COLLECTION, dim as u32, Metric::L2)
        .with_attribute("bucket", AttributeType::Integer)
}

struct Ingest {
    skipped: bool,
    took: Duration,
    maintain: Duration,
    batch_p50_ms: f64,
    batch_p99_ms: f64,
}

impl Ingest {
    fn rate(&self, n: usize) -> f64 {
        n as f64 / self.took.as_secs_f64()
    }
}

async fn ingest(db: &VectorDb, p: &Params, d: &Data, db_dir: &Path) -> Ingest {
    let marker = db_dir.join("ingested.txt");
    let n = p.spec.n;
    let dim = p.spec.dim;
    if let Ok(info) = db.describe_collection(COLLECTION).await {
        if info.vectors == n as u64
            && info.spec == spec(dim)
            && std::fs::read_to_string(&marker).ok().as_deref() == Some(&p.fingerprint())
        {
            println!("ingest: the collection already holds these {n} vectors: skipped");
            return Ingest {
                skipped: true,
                took: Duration::ZERO,
                maintain: Duration::ZERO,
                batch_p50_ms: 0.0,
                batch_p99_ms: 0.0,
            };
        }
        println!(
            "ingest: dropping a collection of {} other vectors",
            info.vectors
        );
        db.drop_collection(COLLECTION).await.unwrap();
    }
    let _ = std::fs::remove_file(&marker);
    db.create_collection(spec(dim)).await.unwrap();

    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..p.writers {
        let (db, next, base, generator) = (
            db.clone(),
            next.clone(),
            d.base.clone(),
            d.generator.clone(),
        );
        let batch = p.batch;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= n {
                    break latencies;
                }
                let records: Vec<VectorRecord> = (first..(first + batch).min(n))
                    .map(|i| {
                        VectorRecord::new(i.to_string(), base[i * dim..(i + 1) * dim].to_vec())
                            .with_attribute(
                                "bucket",
                                AttributeValue::Integer(generator.bucket(i) as i64),
                            )
                    })
                    .collect();
                let t = Instant::now();
                let out = db
                    .upsert(COLLECTION, records, Durability::Remote)
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
                assert_eq!(out.count as usize, (first + batch).min(n) - first);
                if (first / batch).is_multiple_of((n / batch / 10).max(1)) && first > 0 {
                    println!(
                        "ingest: {first} vectors acknowledged after {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let took = start.elapsed();
    let t = Instant::now();
    db.maintain(COLLECTION).await.unwrap();
    let maintain = t.elapsed();
    std::fs::write(&marker, p.fingerprint()).unwrap();
    let (batch_p50_ms, batch_p99_ms) = percentiles(&mut latencies);
    let result = Ingest {
        skipped: false,
        took,
        maintain,
        batch_p50_ms,
        batch_p99_ms,
    };
    println!(
        "ingest: {n} vectors in batches of {}, {} writers, durable acks: {:.2} s, {:.0} vectors/s (batch ack p50 {:.1} ms, p99 {:.1} ms); maintain afterwards: {:.2} s",
        p.batch,
        p.writers,
        took.as_secs_f64(),
        result.rate(n),
        batch_p50_ms,
        batch_p99_ms,
        maintain.as_secs_f64()
    );
    result
}

/// p50 and p99 in milliseconds.
fn percentiles(latencies: &mut [Duration]) -> (f64, f64) {
    if latencies.is_empty() {
        return (0.0, 0.0);
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1e3
    };
    (at(0.50), at(0.99))
}

/// How a search row is asked.
#[derive(Clone, Copy, Debug)]
enum Setting {
    Default,
    Nprobe(usize),
    RecallTarget(f64),
}

impl Setting {
    fn label(self) -> String {
        match self {
            Setting::Default => "default".into(),
            Setting::Nprobe(n) => format!("nprobe {n}"),
            Setting::RecallTarget(r) => format!("recall_target {r}"),
        }
    }
}

struct Row {
    filtered: bool,
    setting: Setting,
    recall: f64,
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    searches: usize,
    probed: f64,
    scored: f64,
    plans: String,
}

/// Runs every query (repeating them until `min_secs` have passed) from `workers`
/// concurrent tasks, each doing one search at a time. Recall is scored on the first
/// pass.
async fn run_queries(
    db: &VectorDb,
    queries: &Arc<Vec<f32>>,
    dim: usize,
    request: Arc<dyn Fn(Vec<f32>) -> SearchRequest + Send + Sync>,
    truth: &Neighbours,
    min_secs: f64,
    workers: usize,
) -> (f64, f64, Vec<Duration>, Vec<(usize, usize, SearchPlan)>) {
    let nq = queries.len() / dim;
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let min = Duration::from_secs_f64(min_secs);
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (db, next, queries, request) =
            (db.clone(), next.clone(), queries.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut found = Vec::new();
            let mut stats = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= nq && start.elapsed() >= min {
                    break;
                }
                let q = i % nq;
                let req = request(queries[q * dim..(q + 1) * dim].to_vec());
                let t = Instant::now();
                let resp = db.search(COLLECTION, req).await.unwrap();
                latencies.push(t.elapsed());
                stats.push((
                    resp.stats.postings_probed,
                    resp.stats.candidates_scored,
                    resp.stats.plan,
                ));
                if i < nq {
                    let ids: Vec<u32> = resp
                        .hits
                        .iter()
                        .map(|h| h.id.parse().expect("bench ids are row numbers"))
                        .collect();
                    found.push((q, ids));
                }
            }
            (latencies, found, stats)
        }));
    }
    let mut latencies = Vec::new();
    let mut found = vec![Vec::new(); nq];
    let mut stats = Vec::new();
    for t in tasks {
        let (l, f, s) = t.await.unwrap();
        latencies.extend(l);
        stats.extend(s);
        for (q, ids) in f {
            found[q] = ids;
        }
    }
    let took = start.elapsed().as_secs_f64();
    let recall = truth.mean_recall(&found, K);
    (recall, latencies.len() as f64 / took, latencies, stats)
}

async fn search_row(
    db: &VectorDb,
    p: &Params,
    d: &Data,
    setting: Setting,
    filter: Option<Filter>,
) -> Row {
    let filtered = filter.is_some();
    let request: Arc<dyn Fn(Vec<f32>) -> SearchRequest + Send + Sync> = Arc::new(move |v| {
        let mut r = SearchRequest::new(v, K);
        match setting {
            Setting::Default => {}
            Setting::Nprobe(n) => r.nprobe = Some(n),
            Setting::RecallTarget(t) => r.recall_target = Some(t),
        }
        r.filter = filter.clone();
        r
    });
    let truth = if filtered { &d.truth_bucket } else { &d.truth };
    let (recall, qps, mut latencies, stats) =
        run_queries(db, &d.queries, p.spec.dim, request, truth, p.min_secs, 2).await;
    let (p50_ms, p99_ms) = percentiles(&mut latencies);
    let searches = stats.len().max(1) as f64;
    let probed = stats.iter().map(|s| s.0 as f64).sum::<f64>() / searches;
    let scored = stats.iter().map(|s| s.1 as f64).sum::<f64>() / searches;
    let mut plans: Vec<(String, usize)> = Vec::new();
    for (_, _, plan) in &stats {
        let name = format!("{plan:?}");
        match plans.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => plans.push((name, 1)),
        }
    }
    let plans = plans
        .iter()
        .map(|(n, c)| format!("{n} {:.0}%", 100.0 * *c as f64 / searches))
        .collect::<Vec<_>>()
        .join(", ");
    let row = Row {
        filtered,
        setting,
        recall,
        qps,
        p50_ms,
        p99_ms,
        searches: stats.len(),
        probed,
        scored,
        plans,
    };
    println!(
        "search{}: {}: recall@{K} {:.4}, {:.0} queries/s, p50 {:.2} ms, p99 {:.2} ms ({} searches; per search {:.1} postings probed, {:.0} candidates scored; {})",
        if filtered {
            format!(" bucket=={BUCKET}")
        } else {
            String::new()
        },
        setting.label(),
        row.recall,
        row.qps,
        row.p50_ms,
        row.p99_ms,
        row.searches,
        row.probed,
        row.scored,
        row.plans
    );
    row
}

fn pass(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

async fn bench(p: Params, d: Data, dir: PathBuf) {
    let db_dir = dir.join("db");
    let mut storage = StorageConfig::local(&db_dir);
    storage.block_cache_bytes = p.cache_mb * 1024 * 1024;
    let root = StorageRoot::new(storage).unwrap();
    let db = VectorDb::open(&root, p.config.clone()).await.unwrap();
    let n = p.spec.n;
    let dim = p.spec.dim;

    let ing = ingest(&db, &p, &d, &db_dir).await;

    let info = db.describe_collection(COLLECTION).await.unwrap();
    let raw = (n * dim * 4) as f64;
    let mem_pct = 100.0 * info.index_memory_bytes as f64 / raw;
    println!(
        "collection: {} vectors, {} postings, {} posting entries ({:.2} per vector), index memory {} bytes = {:.2}% of the {} raw vector bytes",
        info.vectors,
        info.postings,
        info.posting_entries,
        info.posting_entries as f64 / info.vectors.max(1) as f64,
        info.index_memory_bytes,
        mem_pct,
        raw as u64
    );
    assert_eq!(
        info.vectors, n as u64,
        "the collection should hold every vector"
    );

    // Warm-up: every query once at the largest nprobe measured (which reads what the
    // smaller ones read), unfiltered and filtered, so the block cache is warm.
    let filter = Filter::from_json(&serde_json::json!({ "bucket": BUCKET }), &spec(dim)).unwrap();
    let widest = p.nprobes.iter().copied().max();
    let t = Instant::now();
    for (f, truth) in [(None, &d.truth), (Some(filter.clone()), &d.truth_bucket)] {
        let warm: Arc<dyn Fn(Vec<f32>) -> SearchRequest + Send + Sync> = Arc::new(move |v| {
            let mut r = SearchRequest::new(v, K);
            r.nprobe = widest;
            r.filter = f.clone();
            r
        });
        run_queries(&db, &d.queries, dim, warm, truth, 0.0, 2).await;
    }
    println!(
        "search: warm-up passes in {:.2} s",
        t.elapsed().as_secs_f64()
    );

    let mut settings = vec![Setting::Default];
    settings.extend(p.nprobes.iter().map(|&n| Setting::Nprobe(n)));
    settings.push(Setting::RecallTarget(0.95));
    let mut rows = Vec::new();
    for &s in &settings {
        rows.push(search_row(&db, &p, &d, s, None).await);
    }
    for &s in &settings {
        rows.push(search_row(&db, &p, &d, s, Some(filter.clone())).await);
    }
    db.close().await.unwrap();

    println!();
    println!(
        "## OpenData vector: {n} × {dim}, {} queries, {}",
        p.queries,
        machine_info()
    );
    println!();
    println!("| phase | figure |");
    println!("|---|---|");
    if ing.skipped {
        println!(
            "| ingest | skipped (collection reused from {}) |",
            db_dir.display()
        );
    } else {
        println!(
            "| ingest, durable, {} writers × batches of {} | {:.0} vectors/s ({:.2} s; batch ack p50 {:.1} ms, p99 {:.1} ms) |",
            p.writers,
            p.batch,
            ing.rate(n),
            ing.took.as_secs_f64(),
            ing.batch_p50_ms,
            ing.batch_p99_ms
        );
        println!(
            "| maintain after ingest | {:.2} s |",
            ing.maintain.as_secs_f64()
        );
    }
    println!(
        "| postings / entries | {} / {} ({:.2} per vector) |",
        info.postings,
        info.posting_entries,
        info.posting_entries as f64 / info.vectors.max(1) as f64
    );
    println!(
        "| index memory | {} bytes, {mem_pct:.2}% of raw vectors |",
        info.index_memory_bytes
    );
    println!();
    println!(
        "| filter | setting | recall@10 | queries/s | p50 ms | p99 ms | postings probed | candidates scored | plan |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {:.4} | {:.0} | {:.2} | {:.2} | {:.1} | {:.0} | {} |",
            if r.filtered {
                format!("bucket == {BUCKET}")
            } else {
                "none".into()
            },
            r.setting.label(),
            r.recall,
            r.qps,
            r.p50_ms,
            r.p99_ms,
            r.probed,
            r.scored,
            r.plans
        );
    }
    println!();
    let best = |filtered: bool, min_qps: f64, max_p99: f64| {
        rows.iter()
            .filter(|r| {
                r.filtered == filtered && r.recall >= 0.95 && r.qps >= min_qps && r.p99_ms < max_p99
            })
            .max_by(|a, b| a.qps.total_cmp(&b.qps))
            .map(|r| r.setting.label())
    };
    let unfiltered = best(false, 3_000.0, 5.0);
    let filtered = best(true, 500.0, f64::INFINITY);
    println!("| target (issue: 2 cores, 1M × 128) | this run |");
    println!("|---|---|");
    println!(
        "| recall@10 ≥ 0.95 at ≥ 3,000 queries/s, p99 < 5 ms | {} ({}) |",
        pass(unfiltered.is_some()),
        unfiltered.unwrap_or_else(|| "no setting".into())
    );
    println!(
        "| index memory ≤ 10% of raw vectors | {} ({mem_pct:.2}%) |",
        pass(mem_pct <= 10.0)
    );
    if !ing.skipped {
        println!(
            "| ingest ≥ 50,000 vectors/s, durable | {} ({:.0}) |",
            pass(ing.rate(n) >= 50_000.0),
            ing.rate(n)
        );
    }
    println!(
        "| 1% filter: recall@10 ≥ 0.95 at ≥ 500 queries/s | {} ({}) |",
        pass(filtered.is_some()),
        filtered.unwrap_or_else(|| "no setting".into())
    );
    if !p.full {
        println!("(smoke run: figures at this size say nothing about the targets)");
    }
}

fn main() {
    let p = Params::from_env();
    println!("machine: {}", machine_info());
    let d = make_data(&p);
    if p.only_data {
        let Some(dir) = p.dir.clone() else {
            eprintln!("vector_bench: VECTOR_BENCH_ONLY=data needs VECTOR_BENCH_DIR");
            std::process::exit(2);
        };
        std::fs::create_dir_all(&dir).unwrap();
        write_data_files(&p, &d, &dir);
        return;
    }
    let (dir, _temp) = match p.dir.clone() {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            write_data_files(&p, &d, &dir);
            (dir, None)
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            (t.path().to_path_buf(), Some(t))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench(p, d, dir));
}
