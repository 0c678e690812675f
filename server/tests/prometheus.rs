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
    let db = TimeSeriesDb::open(Config {
        storage: StorageConfig::local(dir.path().join("opendata")),
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
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

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
