//! Mixed load on one server: log appends, remote write, vector searches and PromQL range
//! queries, each alone and then all at once, against the real `opendata` binary on a
//! local-directory store, with `/-/healthy` probed every 10 ms throughout.
//!
//! `cargo bench -p opendata-server --bench mixed_load` runs 15 s phases (figures in
//! docs/benchmarks.md); under `cargo test` it runs 1 s phases as a smoke test.
//!
//! Two kinds of phases: closed loop (every worker sends its next request when the last
//! is answered, so each workload alone saturates the machine) and paced (each workload
//! is offered a quarter of the rate it reached alone, so the four together fit in the
//! CPU). What it reports per phase: each workload's throughput, latency and errors (any
//! answer but a success, 429 or 503 is an error), `/-/healthy` latency (p50, p99, max,
//! from a thread of its own), the server's peak resident memory and the peak of the
//! memory budget in use. The load generator runs on the same machine as the server and
//! takes its share of the CPU.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use opendata_testing::TestClient;
use opendata_testing::dataset::{Clustered, ClusteredSpec};
use opendata_testing::process::ServerProcess;
use opendata_timeseries::model::{Labels, Sample, SeriesSamples, WriteBatch};
use parking_lot::Mutex;
use serde_json::json;

const DIM: usize = 64;
const VECTORS: usize = 20_000;
const SERIES: usize = 200;
const BUDGET: u64 = 1 << 30;
/// The share of its closed-loop solo rate each workload is offered in the paced phases.
const PACED_SHARE: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    Log,
    RemoteWrite,
    Vector,
    Promql,
}

const ALL: [Workload; 4] = [
    Workload::Log,
    Workload::RemoteWrite,
    Workload::Vector,
    Workload::Promql,
];

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Log => "log append (10 × 256 B)",
            Workload::RemoteWrite => "remote write (200 samples)",
            Workload::Vector => "vector search (k=10, 20k × 64)",
            Workload::Promql => "PromQL range (30 min, 15 s step)",
        }
    }

    fn workers(self) -> usize {
        match self {
            Workload::Log | Workload::Vector => 4,
            Workload::RemoteWrite | Workload::Promql => 2,
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Counts {
    latencies: Vec<Duration>,
    ok: u64,
    refused: u64,
    errors: u64,
    first_error: Option<String>,
}

use opendata_testing::now_ms;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

async fn budget_used(api: &TestClient) -> u64 {
    api.metric("opendata_memory_budget_used_bytes")
        .await
        .unwrap_or(0.0) as u64
}

fn series_batch(name: &str, worker: usize, samples: &[i64]) -> WriteBatch {
    WriteBatch {
        series: (0..SERIES)
            .map(|i| SeriesSamples {
                histograms: Vec::new(),
                exemplars: Vec::new(),
                created_timestamp_ms: None,
                labels: Labels::from_pairs([
                    ("__name__", name.to_string()),
                    ("job", format!("j{}", i % 10)),
                    ("i", i.to_string()),
                    ("w", worker.to_string()),
                ]),
                samples: samples
                    .iter()
                    .map(|&t| Sample {
                        timestamp_ms: t,
                        value: (t / 1000) as f64,
                    })
                    .collect(),
            })
            .collect(),
        metadata: vec![],
    }
}

/// Loads the data the reads need: the vectors and half an hour of series.
async fn preload(api: &TestClient, data: &Clustered) {
    let (status, v) = api
        .post_json(
            "/api/v1/vector/collections",
            &json!({"name": "bench", "dimension": DIM}),
        )
        .await;
    assert!(status < 300, "{v}");
    let mut v = vec![0f32; DIM];
    for chunk in 0..VECTORS / 1000 {
        let vectors: Vec<_> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| {
                data.base_vector(i, &mut v);
                json!({"id": format!("v{i}"), "vector": v})
            })
            .collect();
        let (status, body) = api
            .post_json(
                "/api/v1/vector/collections/bench/upsert",
                &json!({ "vectors": vectors }),
            )
            .await;
        assert!(status < 300, "{body}");
    }
    let now = now_ms();
    let times: Vec<i64> = (0..120).map(|k| now - 1_800_000 + k * 15_000).collect();
    let body = opendata_server::api::timeseries::remote_write::encode_v1(&series_batch(
        "bench_total",
        0,
        &times,
    ));
    let (status, text) = api.remote_write(body, "application/x-protobuf").await;
    assert_eq!(status, 204, "{text}");
}

async fn one_request(
    api: &TestClient,
    w: Workload,
    worker: usize,
    n: u64,
    data: &Clustered,
) -> (u16, String) {
    match w {
        Workload::Log => {
            let value = base64::engine::general_purpose::STANDARD.encode([b'x'; 256]);
            let key = base64::engine::general_purpose::STANDARD.encode(format!("k{worker}"));
            let records: Vec<_> = (0..10)
                .map(|_| json!({"key": key, "value": value}))
                .collect();
            let (s, v) = api
                .post_json("/api/v1/log/append", &json!({ "records": records }))
                .await;
            (s, v.to_string())
        }
        Workload::RemoteWrite => {
            let t = now_ms();
            let body = opendata_server::api::timeseries::remote_write::encode_v1(&series_batch(
                "bench_rw",
                worker,
                &[t],
            ));
            api.remote_write(body, "application/x-protobuf").await
        }
        Workload::Vector => {
            let mut v = vec![0f32; DIM];
            data.query_vector((n as usize * 7 + worker) % 1000, &mut v);
            let (s, body) = api
                .post_json(
                    "/api/v1/vector/collections/bench/search",
                    &json!({"vector": v, "k": 10}),
                )
                .await;
            (s, body.to_string())
        }
        Workload::Promql => {
            let end = now_ms() / 1000;
            let (s, v) = api
                .post_form(
                    "/api/v1/query_range",
                    &[
                        ("query", "sum by (job) (rate(bench_total[5m]))"),
                        ("start", &(end - 1800).to_string()),
                        ("end", &end.to_string()),
                        ("step", "15"),
                    ],
                )
                .await;
            (s, v.to_string())
        }
    }
}

struct Phase {
    name: String,
    secs: f64,
    counts: Vec<(Workload, Counts)>,
    health: Vec<Duration>,
    peak_rss: u64,
    peak_budget: u64,
}

async fn run_phase(
    api: &TestClient,
    pid: u32,
    workloads: &[Workload],
    duration: Duration,
    data: Arc<Clustered>,
    // Requests per second each workload is offered (`None`: as fast as it is answered).
    paced: Option<&[f64]>,
    label: &str,
) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let results: Vec<Arc<Mutex<Counts>>> = workloads
        .iter()
        .map(|_| Arc::new(Mutex::new(Counts::default())))
        .collect();
    for (slot, &w) in workloads.iter().enumerate() {
        for worker in 0..w.workers() {
            let (api, stop, counts, data) = (
                api.clone(),
                stop.clone(),
                results[slot].clone(),
                data.clone(),
            );
            let interval = paced
                .map(|rates| Duration::from_secs_f64(w.workers() as f64 / rates[slot].max(0.1)));
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                let mut ticker = interval.map(|i| {
                    let mut t = tokio::time::interval(i);
                    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    t
                });
                while !stop.load(Ordering::Relaxed) {
                    if let Some(t) = ticker.as_mut() {
                        t.tick().await;
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                    }
                    n += 1;
                    let started = Instant::now();
                    let (status, body) = one_request(&api, w, worker, n, &data).await;
                    let mut c = counts.lock();
                    c.latencies.push(started.elapsed());
                    match status {
                        200..=299 => c.ok += 1,
                        429 | 503 => c.refused += 1,
                        _ => {
                            c.errors += 1;
                            if c.first_error.is_none() {
                                c.first_error = Some(format!("{status} {body}"));
                            }
                        }
                    }
                }
            }));
        }
    }
    // Health, memory and budget probes.
    let health = Arc::new(Mutex::new(Vec::new()));
    let peaks = Arc::new(Mutex::new((0u64, 0u64)));
    // The prober has a thread and a runtime of its own, so what it measures is the
    // server's answer, not the load generator's own queue.
    let prober = {
        let (base, stop, health) = (api.base().to_string(), stop.clone(), health.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = reqwest::Client::new();
                let url = format!("{base}/-/healthy");
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = client
                        .get(&url)
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    assert!(ok, "/-/healthy failed");
                    health.lock().push(t.elapsed());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        })
    };
    let sampler = {
        let (api, stop, peaks) = (api.clone(), stop.clone(), peaks.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let rss = rss_bytes(pid);
                let used = budget_used(&api).await;
                {
                    let mut p = peaks.lock();
                    p.0 = p.0.max(rss);
                    p.1 = p.1.max(used);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    prober.join().unwrap();
    sampler.await.unwrap();
    let mut health = health.lock().clone();
    health.sort();
    let (peak_rss, peak_budget) = *peaks.lock();
    Phase {
        name: if workloads.len() == 1 {
            format!("{label}, alone")
        } else {
            format!("{label}, all at once")
        },
        secs,
        counts: workloads
            .iter()
            .zip(results)
            .map(|(w, c)| {
                let mut c = c.lock().clone();
                c.latencies.sort();
                (*w, c)
            })
            .collect(),
        health,
        peak_rss,
        peak_budget,
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let phase = Duration::from_secs(if full { 15 } else { 1 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bench.toml");
        std::fs::write(
            &config,
            format!("[limits]\nmemory_budget_bytes = {BUDGET}\n"),
        )
        .unwrap();
        let data_dir = dir.path().join("data").display().to_string();
        let config = config.display().to_string();
        let server = ServerProcess::start(
            &["--config", &config, "--object-store", &data_dir],
            &dir.path().join("server.log"),
        )
        .await;
        let pid = server.child.id();
        let api = TestClient::new(server.base.clone());
        let data = Arc::new(Clustered::new(ClusteredSpec::new(7, VECTORS, DIM)));
        preload(&api, &data).await;

        // Closed loop: every workload as fast as it is answered, alone, then all at
        // once. Paced: each offered a quarter of its closed-loop rate alone (together
        // about what two cores can serve), alone, then all at once.
        let mut phases = Vec::new();
        for w in ALL {
            phases.push(run_phase(&api, pid, &[w], phase, data.clone(), None, "closed loop").await);
        }
        phases.push(run_phase(&api, pid, &ALL, phase, data.clone(), None, "closed loop").await);
        let solo: Vec<f64> = phases[..4]
            .iter()
            .map(|p| p.counts[0].1.ok as f64 / p.secs)
            .collect();
        let offered: Vec<f64> = solo.iter().map(|r| r * PACED_SHARE).collect();
        for (i, w) in ALL.iter().enumerate() {
            phases.push(
                run_phase(&api, pid, &[*w], phase, data.clone(), Some(&offered[i..=i]), "paced")
                    .await,
            );
        }
        phases.push(run_phase(&api, pid, &ALL, phase, data.clone(), Some(&offered), "paced").await);

        println!(
            "mixed load: {} s phases, budget {} MiB, paced at {:.0}% of the closed-loop solo rate",
            phase.as_secs(),
            BUDGET >> 20,
            PACED_SHARE * 100.0
        );
        println!(
            "| phase | workload | ok/s | p50 | p99 | 429/503 | errors | healthy p50 | p99 | max | peak RSS | peak budget |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mut failures = Vec::new();
        for p in &phases {
            for (w, c) in &p.counts {
                println!(
                    "| {} | {} | {:.1} | {:.1} ms | {:.1} ms | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {} MiB | {:.1} MiB |",
                    p.name,
                    w.name(),
                    c.ok as f64 / p.secs,
                    ms(percentile(&c.latencies, 0.5)),
                    ms(percentile(&c.latencies, 0.99)),
                    c.refused,
                    c.errors,
                    ms(percentile(&p.health, 0.5)),
                    ms(percentile(&p.health, 0.99)),
                    ms(p.health.last().copied().unwrap_or_default()),
                    p.peak_rss >> 20,
                    p.peak_budget as f64 / (1 << 20) as f64,
                );
                if c.errors > 0 {
                    failures.push(format!(
                        "{}: {} errors, first: {}",
                        w.name(),
                        c.errors,
                        c.first_error.clone().unwrap_or_default()
                    ));
                }
                if c.ok == 0 {
                    failures.push(format!("{}: nothing succeeded in {}", w.name(), p.name));
                }
            }
            if p.peak_budget > BUDGET {
                failures.push(format!("{}: the budget was passed", p.name));
            }
        }
        for (label, solo_phases, mixed) in [
            ("closed loop", &phases[..4], &phases[4]),
            ("paced", &phases[5..9], &phases[9]),
        ] {
            for (i, (w, c)) in mixed.counts.iter().enumerate() {
                let alone = solo_phases[i].counts[0].1.ok as f64 / solo_phases[i].secs;
                println!(
                    "{label}: {}: {:.0}% of its solo throughput while the others run",
                    w.name(),
                    100.0 * (c.ok as f64 / mixed.secs) / alone.max(f64::MIN_POSITIVE)
                );
            }
        }
        let worst = phases
            .iter()
            .map(|p| percentile(&p.health, 0.99))
            .max()
            .unwrap_or_default();
        println!("/-/healthy p99, worst phase: {:.1} ms", ms(worst));
        assert!(failures.is_empty(), "{failures:#?}");
    });
}
