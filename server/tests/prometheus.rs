//! A real Prometheus (Debian's `prometheus` package, installed by the test setup)
//! scrapes itself and remote-writes to our database; the series then read back from us
//! with the same labels and values Prometheus itself returns.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opendata_common::Opened;
use opendata_common::StorageConfig;
use opendata_server::api::timeseries::router;
use opendata_server::server::pool::{Pools, PoolsConfig};
use opendata_testing::process::{KillOnDrop, prometheus_binary};
use opendata_timeseries::model::{MatchKind, Matcher, is_stale_marker};
use opendata_timeseries::promql::Engine;
use opendata_timeseries::storage::Config;
use opendata_timeseries::{TimeSeriesConfig, TimeSeriesDb};
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

use opendata_testing::now_ms;

/// Our database under `dir`, served by the time series API on a free port: the
/// database and the base URL.
async fn serve_ours(dir: &std::path::Path) -> (TimeSeriesDb, String) {
    let db = TimeSeriesDb::open(Config {
        storage: StorageConfig::local(dir.join("opendata")),
        timeseries: TimeSeriesConfig::default(),
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ours = format!("http://{}", listener.local_addr().unwrap());
    let pools = Pools::start(&PoolsConfig::default()).unwrap();
    let app = router(
        Opened::Writer(db.clone()),
        Engine::new(db.config().query.clone()),
        pools.query.clone(),
        pools.ingest.clone(),
        1 << 20,
        opendata_common::budget::MemoryBudget::default(),
    );
    // The pools live as long as the server task.
    tokio::spawn(async move {
        let _pools = pools;
        axum::serve(listener, app).await.unwrap()
    });
    (db, ours)
}

type SeriesMap = BTreeMap<BTreeMap<String, String>, Vec<(i64, u64)>>;

fn parse_matrix(body: &Value) -> SeriesMap {
    let mut out = SeriesMap::new();
    for s in body["data"]["result"].as_array().expect("matrix result") {
        let labels: BTreeMap<String, String> = s["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let samples = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                let v: f64 = p[1].as_str().unwrap().parse().unwrap();
                (t, v.to_bits())
            })
            .collect();
        out.insert(labels, samples);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_store_what_a_real_prometheus_remote_writes() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (db, ours) = serve_ours(dir.path()).await;

    let prom_port = free_port();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let config = format!(
        r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{prom_port}"]
remote_write:
  - url: {ours}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      max_samples_per_send: 2000
    metadata_config:
      send: true
      send_interval: 1s
"#
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = KillOnDrop(
        Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts"),
    );
    let client = reqwest::Client::new();
    let log_text =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Wait until Prometheus has scraped itself for a while and we hold a late enough
    // sample of `up`.
    let q = db.querier();
    let up = [Matcher::equal("__name__", "up")];
    let deadline = Instant::now() + Duration::from_secs(90);
    let started = now_ms();
    let at = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let newest = q
            .select(&up, 0, i64::MAX / 4)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap()
            .first()
            .and_then(|s| s.samples.last().map(|x| x.timestamp_ms));
        if let Some(t) = newest
            && t > started + 8_000
        {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "no remote write arrived; prometheus log:\n{}",
            log_text()
        );
    };

    // The same range vector from both: Prometheus's query API, and our read interface.
    let selector = r#"{__name__=~"up|prometheus_tsdb_head_series|go_goroutines|prometheus_http_requests_total|process_cpu_seconds_total"}"#;
    let body: Value = client
        .get(format!("{prom}/api/v1/query"))
        .query(&[
            ("query", format!("{selector}[8s]")),
            ("time", format!("{}", at as f64 / 1000.0)),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "success", "{body}");
    let theirs = parse_matrix(&body);
    assert!(theirs.len() >= 5, "Prometheus returned only {theirs:?}");
    let matcher = Matcher::new(
        MatchKind::Regex,
        "__name__",
        "up|prometheus_tsdb_head_series|go_goroutines|prometheus_http_requests_total|process_cpu_seconds_total",
    )
    .unwrap();
    // Prometheus's range is (at - 8s, at]; stale markers are not part of query results.
    let mine: SeriesMap = q
        .select(&[matcher], at - 8_000 + 1, at)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            let labels = s
                .labels
                .as_slice()
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            let samples = s
                .samples
                .iter()
                .filter(|x| !is_stale_marker(x.value))
                .map(|x| (x.timestamp_ms, x.value.to_bits()))
                .collect();
            (labels, samples)
        })
        .filter(|(_, s): &(_, Vec<_>)| !s.is_empty())
        .collect();
    assert_eq!(
        mine.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "same series"
    );
    for (labels, samples) in &theirs {
        assert_eq!(&mine[labels], samples, "samples of {labels:?}");
    }

    // Our HTTP API lists the same `up` series as Prometheus's.
    let series = |base: String| {
        let client = client.clone();
        async move {
            let v: Value = client
                .get(format!("{base}/api/v1/series"))
                .query(&[("match[]", "up")])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["data"].clone()
        }
    };
    assert_eq!(series(ours.clone()).await, series(prom.clone()).await);

    // Metadata arrives too (sent every second).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = client
            .get(format!("{ours}/api/v1/metadata"))
            .query(&[("metric", "prometheus_tsdb_head_series")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entry = &v["data"]["prometheus_tsdb_head_series"][0];
        if entry["type"] == "gauge" {
            assert!(!entry["help"].as_str().unwrap().is_empty());
            break;
        }
        assert!(Instant::now() < deadline, "no metadata arrived: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    db.close().await.unwrap();
}

/// The protobuf exposition format (`io.prometheus.client`), the messages a native
/// histogram target needs, declared here: the test's own exposition server.
mod exposition {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricFamily {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub help: String,
        /// 4: histogram.
        #[prost(int32, tag = "3")]
        pub r#type: i32,
        #[prost(message, repeated, tag = "4")]
        pub metric: Vec<Metric>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Metric {
        #[prost(message, repeated, tag = "1")]
        pub label: Vec<LabelPair>,
        #[prost(message, optional, tag = "7")]
        pub histogram: Option<Histogram>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPair {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Histogram {
        #[prost(uint64, tag = "1")]
        pub sample_count: u64,
        #[prost(double, tag = "2")]
        pub sample_sum: f64,
        #[prost(sint32, tag = "5")]
        pub schema: i32,
        #[prost(double, tag = "6")]
        pub zero_threshold: f64,
        #[prost(uint64, tag = "7")]
        pub zero_count: u64,
        #[prost(message, repeated, tag = "12")]
        pub positive_span: Vec<BucketSpan>,
        #[prost(sint64, repeated, tag = "13")]
        pub positive_delta: Vec<i64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct BucketSpan {
        #[prost(sint32, tag = "1")]
        pub offset: i32,
        #[prost(uint32, tag = "2")]
        pub length: u32,
    }
}

/// The exposition after `n` scrapes: a schema-3 native histogram with 24 populated
/// buckets whose counts grow by `k + 1` per scrape, and a zero bucket.
fn exposition_body(n: u64, resets_at: u64) -> Vec<u8> {
    use prost::Message;
    // A counter reset half-way: the target restarts counting.
    let n = if n >= resets_at { n - resets_at + 1 } else { n };
    let counts: Vec<u64> = (0..24).map(|k| n * (k + 1)).collect();
    let mut deltas = Vec::with_capacity(counts.len());
    let mut prev = 0i64;
    for &c in &counts {
        deltas.push(c as i64 - prev);
        prev = c as i64;
    }
    let family = exposition::MetricFamily {
        name: "rpc_duration_seconds".into(),
        help: "RPC latency.".into(),
        r#type: 4,
        metric: vec![exposition::Metric {
            label: vec![exposition::LabelPair {
                name: "service".into(),
                value: "checkout".into(),
            }],
            histogram: Some(exposition::Histogram {
                sample_count: counts.iter().sum::<u64>() + n,
                sample_sum: n as f64 * 7.25,
                schema: 3,
                zero_threshold: 1e-4,
                zero_count: n,
                positive_span: vec![exposition::BucketSpan {
                    offset: -8,
                    length: 24,
                }],
                positive_delta: deltas,
            }),
        }],
    };
    family.encode_length_delimited_to_vec()
}

/// `promtool query instant -o json` of `expr` at `at` (s) against `server`.
fn promtool_instant(promtool: &str, server: &str, expr: &str, at: f64) -> Value {
    let out = Command::new(promtool)
        .args(["query", "instant", "-o", "json"])
        .arg(format!("--time={at}"))
        .arg(server)
        .arg(expr)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool {expr} against {server}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "promtool {expr}: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_native_histogram_queries_as_a_real_prometheus_does() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let promtool = std::env::var("OPENDATA_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let dir = tempfile::tempdir().unwrap();
    let (db, ours) = serve_ours(dir.path()).await;

    // The target: native histograms in the protobuf exposition format.
    let scrapes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_addr = target.local_addr().unwrap();
    let counter = scrapes.clone();
    let exposition = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let counter = counter.clone();
            async move {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                (
                    [(
                        "content-type",
                        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
                    )],
                    exposition_body(n, 9),
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(target, exposition).await.unwrap() });

    let prom_port = free_port();
    let prom = format!("http://127.0.0.1:{prom_port}");
    let config = format!(
        r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: native
    static_configs:
      - targets: ["{target_addr}"]
remote_write:
  - url: {ours}/api/v1/write
    send_native_histograms: true
    queue_config:
      batch_send_deadline: 1s
"#
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = KillOnDrop(
        Command::new(&binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--enable-feature=native-histograms")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts"),
    );
    let log_text =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Wait for 16 histogram samples here (the counter reset at the 9th included).
    let q = db.querier();
    let name = [Matcher::equal("__name__", "rpc_duration_seconds")];
    let deadline = Instant::now() + Duration::from_secs(120);
    let at = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = q
            .select(&name, 0, i64::MAX / 4)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        if let Some(s) = got.first()
            && s.histograms.len() >= 16
        {
            assert!(s.samples.iter().all(|x| is_stale_marker(x.value)), "{s:?}");
            break s.histograms.last().unwrap().timestamp_ms;
        }
        assert!(
            Instant::now() < deadline,
            "no native histograms arrived; prometheus log:\n{}",
            log_text()
        );
    };
    let at = at as f64 / 1000.0;
    let close = |a: &str, b: &str, tolerance: f64| {
        let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
        a == b || (a - b).abs() <= tolerance * a.abs().max(b.abs())
    };
    // Floats through promtool: the same series, timestamps and values (to rounding).
    let float_exprs = [
        ("histogram_count(rpc_duration_seconds)", 1e-12),
        ("histogram_sum(rpc_duration_seconds)", 1e-12),
        ("histogram_count(rate(rpc_duration_seconds[12s]))", 1e-12),
        (
            "histogram_count(increase(rpc_duration_seconds[20s]))",
            1e-12,
        ),
        ("histogram_sum(rate(rpc_duration_seconds[12s]))", 1e-12),
        ("histogram_fraction(0, 1, rpc_duration_seconds)", 1e-12),
        // Prometheus 2.42 interpolates linearly inside a bucket, current Prometheus (and
        // we) exponentially: the two estimates lie in the same schema-3 bucket, whose
        // bounds differ by a factor 2^(1/8).
        (
            "histogram_quantile(0.9, rpc_duration_seconds)",
            2f64.powf(0.125) - 1.0,
        ),
        (
            "histogram_quantile(0.5, rate(rpc_duration_seconds[12s]))",
            2f64.powf(0.125) - 1.0,
        ),
        ("histogram_quantile(1, rpc_duration_seconds)", 1e-12),
    ];
    for (expr, tolerance) in float_exprs {
        let theirs = promtool_instant(&promtool, &prom, expr, at);
        let mine = promtool_instant(&promtool, &ours, expr, at);
        let (t, m) = (theirs.as_array().unwrap(), mine.as_array().unwrap());
        assert!(!t.is_empty(), "{expr}: Prometheus returned {theirs}");
        assert_eq!(t.len(), m.len(), "{expr}: {theirs} vs {mine}");
        for (a, b) in t.iter().zip(m) {
            assert_eq!(a["metric"], b["metric"], "{expr}");
            assert_eq!(a["value"][0], b["value"][0], "{expr}");
            assert!(
                close(
                    a["value"][1].as_str().unwrap(),
                    b["value"][1].as_str().unwrap(),
                    tolerance
                ),
                "{expr}: Prometheus {theirs}, ours {mine}"
            );
        }
    }
    // Histograms (promtool 2.42 cannot print them) through the query API's JSON: the
    // same buckets with the same boundaries and counts.
    let client = reqwest::Client::new();
    for expr in [
        "rpc_duration_seconds",
        "rate(rpc_duration_seconds[12s])",
        "increase(rpc_duration_seconds[20s])",
        "sum by (service) (rpc_duration_seconds)",
        // Not compared: `rpc_duration_seconds * 2`, which Prometheus 2.42 answers with
        // the histogram unscaled (later versions scale it, as we do).
    ] {
        let get = |base: String| {
            let client = client.clone();
            async move {
                let v: Value = client
                    .get(format!("{base}/api/v1/query"))
                    .query(&[("query", expr.to_string()), ("time", at.to_string())])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v["data"]["result"].clone()
            }
        };
        let (theirs, mine) = (get(prom.clone()).await, get(ours.clone()).await);
        let (t, m) = (theirs.as_array().unwrap(), mine.as_array().unwrap());
        assert!(
            !t.is_empty() && t.len() == m.len(),
            "{expr}: {theirs} vs {mine}"
        );
        for (a, b) in t.iter().zip(m) {
            assert_eq!(a["metric"], b["metric"], "{expr}");
            let (ha, hb) = (&a["histogram"][1], &b["histogram"][1]);
            assert_eq!(a["histogram"][0], b["histogram"][0], "{expr}");
            for field in ["count", "sum"] {
                assert!(
                    close(
                        ha[field].as_str().unwrap(),
                        hb[field].as_str().unwrap(),
                        1e-12
                    ),
                    "{expr} {field}: Prometheus {ha}, ours {hb}"
                );
            }
            let (ba, bb) = (
                ha["buckets"].as_array().unwrap(),
                hb["buckets"].as_array().unwrap(),
            );
            assert_eq!(ba.len(), bb.len(), "{expr}: Prometheus {ha}, ours {hb}");
            for (x, y) in ba.iter().zip(bb) {
                assert_eq!(x[0], y[0], "{expr} boundary rule: {x} vs {y}");
                for k in 1..4 {
                    assert!(
                        close(x[k].as_str().unwrap(), y[k].as_str().unwrap(), 1e-12),
                        "{expr}: bucket {x} vs {y}"
                    );
                }
            }
        }
    }
    db.close().await.unwrap();
}
