//! Generates the node-exporter-like workload of `opendata_testing::workload` and
//! pushes it to a Prometheus remote-write endpoint, or describes it.
//!
//! ```text
//! # 100k series, 40 scrapes, 200 series x 10 samples per request, 4 senders:
//! cargo run --release -p opendata-server --example workload -- push \
//!     --url http://127.0.0.1:9090/api/v1/write --series 100000 --scrapes 40 \
//!     --series-per-request 200 --samples-per-series 10 --concurrency 4
//! # 8 hours of 10k series, ending now:
//! cargo run --release -p opendata-server --example workload -- push --series 10000 --hours 8
//! # what would be sent, and a look at some series:
//! cargo run --release -p opendata-server --example workload -- stats --show 20 --name node_load
//! ```
//!
//! `push` encodes every request before it starts the clock, then sends them slice by
//! slice: all requests for scrapes 0..10 (with `--concurrency` requests in flight), then,
//! once all of those are acknowledged, scrapes 10..20, and so on, so that every series
//! reaches the server in time order. It retries on 429, 5xx and connection errors with a
//! short exponential backoff, and stops at the first other error.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use opendata_server::api::timeseries::remote_write::{encode_v1, to_remote_write_v1};
use opendata_testing::workload::{Workload, WorkloadConfig};
use opendata_timeseries::model::WriteBatch;
use prost::Message;

#[derive(Parser)]
#[command(about = "Node-exporter-like remote-write workload: push it or describe it")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pre-encode the remote-write requests, send them, report throughput and latency.
    Push(PushArgs),
    /// Describe the workload (series, requests, encoded sizes) without sending anything.
    Stats(StatsArgs),
}

/// What to generate and how to cut it into requests.
#[derive(Args, Clone, Debug)]
struct Shape {
    /// Target number of series (rounded up to whole targets of 1,000 series).
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Number of scrapes to generate [default: 40].
    #[arg(long, conflicts_with = "hours")]
    scrapes: Option<u64>,
    /// Generate this many hours of scrapes instead (hours * 3600 s / interval).
    #[arg(long)]
    hours: Option<f64>,
    /// Scrape interval in milliseconds.
    #[arg(long, default_value_t = 15_000)]
    interval_ms: i64,
    /// Per-scrape timestamp jitter in milliseconds (±).
    #[arg(long, default_value_t = 3)]
    jitter_ms: i64,
    /// Timestamp of the first scrape [default: now - scrapes * interval, so the data
    /// ends now].
    #[arg(long)]
    start_ms: Option<i64>,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Series per request.
    #[arg(long, default_value_t = 200)]
    series_per_request: usize,
    /// Consecutive samples per series per request.
    #[arg(long, default_value_t = 10)]
    samples_per_series: usize,
    /// Send the classic histograms' native form instead (28 schema-3 native histogram
    /// series per 1,000 workload series, `http_request_duration_seconds`), nothing else.
    #[arg(long)]
    native_histograms: bool,
}

#[derive(Args, Debug)]
struct PushArgs {
    #[command(flatten)]
    shape: Shape,
    /// The remote-write endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9090/api/v1/write")]
    url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Retries of a request answered 429 or 5xx (or failing to connect) before giving up.
    #[arg(long, default_value_t = 10)]
    max_retries: u32,
    /// Timeout of one request, in seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// First send the metric metadata in a request of its own (untimed).
    #[arg(long)]
    metadata: bool,
}

#[derive(Args, Debug)]
struct StatsArgs {
    #[command(flatten)]
    shape: Shape,
    /// Print this many series with their first samples.
    #[arg(long, default_value_t = 0)]
    show: usize,
    /// Only show series whose metric name contains this.
    #[arg(long)]
    name: Option<String>,
}

/// The workload and the number of scrapes to take of it.
struct Plan {
    workload: Workload,
    scrapes: u64,
    shape: Shape,
}

impl Plan {
    fn new(shape: &Shape) -> Result<Plan, String> {
        if shape.interval_ms <= 0 || shape.series_per_request == 0 || shape.samples_per_series == 0
        {
            return Err(
                "--interval-ms, --series-per-request and --samples-per-series must be positive"
                    .into(),
            );
        }
        let scrapes = match (shape.scrapes, shape.hours) {
            (Some(s), _) => s,
            (None, Some(h)) if h > 0.0 => {
                (h * 3_600_000.0 / shape.interval_ms as f64).ceil() as u64
            }
            (None, Some(_)) => return Err("--hours must be positive".into()),
            (None, None) => 40,
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis() as i64;
        let start_ms = shape
            .start_ms
            .unwrap_or(now_ms - scrapes as i64 * shape.interval_ms);
        let workload = Workload::new(WorkloadConfig {
            series: shape.series,
            interval_ms: shape.interval_ms,
            jitter_ms: shape.jitter_ms,
            start_ms,
            seed: shape.seed,
        });
        Ok(Plan {
            workload,
            scrapes,
            shape: shape.clone(),
        })
    }

    fn slices(&self) -> usize {
        self.scrapes.div_ceil(self.shape.samples_per_series as u64) as usize
    }

    fn requests_per_slice(&self) -> usize {
        if self.shape.native_histograms {
            return self
                .workload
                .histogram_count()
                .div_ceil(self.shape.series_per_request);
        }
        self.workload
            .requests_per_slice(self.shape.series_per_request)
    }

    fn samples(&self) -> u64 {
        if self.shape.native_histograms {
            return self.workload.histogram_count() as u64 * self.scrapes;
        }
        self.workload.series_count() as u64 * self.scrapes
    }

    /// Request `request` of time slice `slice` (the same as the matching item of
    /// `Workload::batches`).
    fn batch(&self, slice: usize, request: usize) -> WriteBatch {
        let n = self.workload.series_count();
        let spr = self.shape.series_per_request;
        let sps = self.shape.samples_per_series as u64;
        let first = slice as u64 * sps;
        if self.shape.native_histograms {
            let n = self.workload.histogram_count();
            return self.workload.histogram_batch(
                request * spr..((request + 1) * spr).min(n),
                first..(first + sps).min(self.scrapes),
            );
        }
        self.workload.batch(
            request * spr..((request + 1) * spr).min(n),
            first..(first + sps).min(self.scrapes),
        )
    }

    /// Every request body, by slice, encoded on all cores.
    fn encode_all(&self) -> Vec<Vec<Bytes>> {
        let slices = self.slices();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(slices.max(1));
        let next = AtomicUsize::new(0);
        let mut encoded: Vec<(usize, Vec<Bytes>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let slice = next.fetch_add(1, Ordering::Relaxed);
                            if slice >= slices {
                                return out;
                            }
                            let bodies = (0..self.requests_per_slice())
                                .map(|r| Bytes::from(encode_v1(&self.batch(slice, r))))
                                .collect();
                            out.push((slice, bodies));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("encoder thread panicked"))
                .collect()
        });
        encoded.sort_by_key(|(slice, _)| *slice);
        encoded.into_iter().map(|(_, bodies)| bodies).collect()
    }

    fn describe(&self) -> String {
        let cfg = self.workload.config();
        format!(
            "{} series ({} targets, {} families) x {} scrapes every {} ms from {} = {} samples; \
             {} slices of {} requests ({} series x {} samples)",
            self.workload.series_count(),
            self.workload.targets(),
            self.workload.metadata().len(),
            self.scrapes,
            cfg.interval_ms,
            cfg.start_ms,
            self.samples(),
            self.slices(),
            self.requests_per_slice(),
            self.shape.series_per_request,
            self.shape.samples_per_series,
        )
    }
}

/// Sends one body, retrying on 429, 5xx and transport errors. Returns the time from the
/// first attempt to the acknowledgement and the number of retries.
async fn send(
    client: &reqwest::Client,
    url: &str,
    body: Bytes,
    max_retries: u32,
) -> Result<(Duration, u32), String> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        let result = client
            .post(url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("User-Agent", "opendata-workload/0.1")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body.clone())
            .send()
            .await;
        let problem = match result {
            Ok(resp) if resp.status().is_success() => return Ok((started.elapsed(), attempt)),
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let text = text.trim();
                if status.as_u16() != 429 && !status.is_server_error() {
                    return Err(format!("{url} answered {status}: {text}"));
                }
                format!("{status}: {text}")
            }
            Err(e) => e.to_string(),
        };
        if attempt >= max_retries {
            return Err(format!(
                "giving up after {} attempts, last: {problem}",
                attempt + 1
            ));
        }
        let backoff = Duration::from_millis(50 << attempt.min(5));
        tokio::time::sleep(backoff).await;
        attempt += 1;
    }
}

/// Latency at quantile `q` (nearest rank) of sorted durations, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

fn rate(samples: u64, elapsed: Duration) -> f64 {
    samples as f64 / elapsed.as_secs_f64().max(1e-9)
}

async fn push(args: PushArgs) -> Result<(), String> {
    let plan = Plan::new(&args.shape)?;
    eprintln!("workload: {}", plan.describe());
    let t = Instant::now();
    let slices = Arc::new(plan.encode_all());
    let bytes: usize = slices.iter().flatten().map(Bytes::len).sum();
    let requests: usize = slices.iter().map(Vec::len).sum();
    eprintln!(
        "encoded {requests} requests, {:.1} MB snappy ({:.2} bytes/sample), in {:.1} s",
        bytes as f64 / 1e6,
        bytes as f64 / plan.samples().max(1) as f64,
        t.elapsed().as_secs_f64()
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_s))
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()
        .map_err(|e| e.to_string())?;
    let url: Arc<str> = args.url.as_str().into();
    if args.metadata {
        let body = Bytes::from(encode_v1(&plan.workload.metadata_batch()));
        send(&client, &url, body, args.max_retries).await?;
    }

    let concurrency = args.concurrency.max(1);
    let mut latencies: Vec<Duration> = Vec::with_capacity(requests);
    let mut retries = 0u64;
    let mut first_slice = Duration::ZERO;
    let report_every = (slices.len() / 10).max(1);
    let started = Instant::now();
    for k in 0..slices.len() {
        let next = Arc::new(AtomicUsize::new(0));
        let senders: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, url, slices, next) =
                    (client.clone(), url.clone(), slices.clone(), next.clone());
                let max_retries = args.max_retries;
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(body) = slices[k].get(i) else {
                            return Ok::<_, String>(done);
                        };
                        done.push(send(&client, &url, body.clone(), max_retries).await?);
                    }
                })
            })
            .collect();
        for sender in senders {
            let done = sender.await.map_err(|e| format!("sender failed: {e}"))??;
            for (latency, r) in done {
                latencies.push(latency);
                retries += r as u64;
            }
        }
        if k == 0 {
            first_slice = started.elapsed();
        }
        if (k + 1) % report_every == 0 && k + 1 < slices.len() {
            eprintln!(
                "  {}/{} slices, {:.1} s",
                k + 1,
                slices.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let elapsed = started.elapsed();

    latencies.sort();
    let samples = plan.samples();
    let per_slice_samples = plan.workload.series_count() as u64
        * plan.shape.samples_per_series.min(plan.scrapes as usize) as u64;
    println!(
        "sent {samples} samples ({} series x {} scrapes) in {requests} requests ({:.1} MB) with {concurrency} senders",
        plan.workload.series_count(),
        plan.scrapes,
        bytes as f64 / 1e6
    );
    println!(
        "elapsed {:.3} s: {:.0} samples/s, {:.1} requests/s",
        elapsed.as_secs_f64(),
        rate(samples, elapsed),
        requests as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    if slices.len() > 1 {
        println!(
            "first slice (new series) {:.3} s: {:.0} samples/s; later slices: {:.0} samples/s",
            first_slice.as_secs_f64(),
            rate(per_slice_samples, first_slice),
            rate(samples - per_slice_samples, elapsed - first_slice)
        );
    }
    println!(
        "request latency p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {retries} retries",
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.9),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 1.0)
    );
    Ok(())
}

fn stats(args: StatsArgs) -> Result<(), String> {
    let plan = Plan::new(&args.shape)?;
    println!("{}", plan.describe());
    // Sizes from the first slice's requests.
    let (mut raw, mut snappy, mut samples) = (0usize, 0usize, 0usize);
    for r in 0..plan.requests_per_slice() {
        let batch = plan.batch(0, r);
        samples += batch.sample_count();
        raw += to_remote_write_v1(&batch).encoded_len();
        snappy += encode_v1(&batch).len();
    }
    if samples > 0 {
        let n = plan.requests_per_slice() as f64;
        println!(
            "first slice: {:.0} bytes protobuf, {:.0} bytes snappy per request; {:.1} / {:.1} bytes per sample",
            raw as f64 / n,
            snappy as f64 / n,
            raw as f64 / samples as f64,
            snappy as f64 / samples as f64
        );
    }
    let mut by_type = std::collections::BTreeMap::new();
    for m in plan.workload.metadata() {
        *by_type.entry(m.metric_type.as_str()).or_insert(0) += 1;
    }
    println!("families by type: {by_type:?}");
    let shown = (0..plan.workload.series_count())
        .filter(|&s| {
            let name = plan.workload.labels(s).metric_name().unwrap_or("");
            args.name.as_deref().is_none_or(|n| name.contains(n))
        })
        .take(args.show);
    for s in shown {
        let labels = plan.workload.labels(s);
        let text: Vec<String> = labels
            .as_slice()
            .iter()
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        let samples: Vec<String> = (0..plan.scrapes.min(6))
            .map(|i| {
                let x = plan.workload.sample(s, i);
                format!("{}@{}", x.value, x.timestamp_ms)
            })
            .collect();
        println!("{{{}}} {}", text.join(", "), samples.join(" "));
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let result = match Cli::parse().command {
        Command::Push(args) => push(args).await,
        Command::Stats(args) => stats(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
