//! The time series database through the real `opendata` binary: remote write 1.0 and
//! 2.0, the Prometheus metadata API, bad input, and SIGKILL during ingest.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use opendata_common::StorageConfig;
use opendata_server::api::timeseries::proto::{self, v1, v2};
use opendata_timeseries::TimeSeriesDb;
use opendata_timeseries::model::Matcher;
use parking_lot::Mutex;
use prost::Message;
use serde_json::Value;
use support::{ServerProcess, TestClient, s3_args_for};

use opendata_testing::now_ms;

fn label(name: &str, value: &str) -> v1::Label {
    v1::Label {
        name: name.into(),
        value: value.into(),
    }
}

fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> v1::TimeSeries {
    v1::TimeSeries {
        histograms: vec![],
        exemplars: vec![],
        labels: labels.iter().map(|(n, v)| label(n, v)).collect(),
        samples: samples
            .iter()
            .map(|&(t, v)| v1::Sample {
                value: v,
                timestamp: t,
            })
            .collect(),
    }
}

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

fn v1_body(series: Vec<v1::TimeSeries>) -> Vec<u8> {
    snappy(
        &v1::WriteRequest {
            timeseries: series,
            metadata: vec![],
        }
        .encode_to_vec(),
    )
}

async fn post_write(api: &TestClient, body: Vec<u8>) -> (u16, String) {
    post_write_as(api, body, "application/x-protobuf").await
}

async fn post_write_as(api: &TestClient, body: Vec<u8>, content_type: &str) -> (u16, String) {
    api.remote_write(body, content_type).await
}

/// Posts a remote-write 2.0 request as Prometheus sends it.
async fn post_v2(client: &reqwest::Client, base: &str, req: &v2::Request) -> reqwest::Response {
    client
        .post(format!("{base}/api/v1/write"))
        .header(
            "content-type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "2.0.0")
        .body(snappy(&req.encode_to_vec()))
        .send()
        .await
        .unwrap()
}

/// `GET url` (a whole URL), answered in JSON.
async fn get_json(client: &reqwest::Client, url: String) -> (u16, Value) {
    TestClient::with(client, "").get_json(&url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_take_remote_write_and_answer_the_metadata_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let server =
        ServerProcess::start(&["--object-store", &data], &dir.path().join("server.log")).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let t = now_ms() - 60_000;

    // Remote write 1.0, with metadata.
    let req = v1::WriteRequest {
        timeseries: vec![
            ts(
                &[
                    ("__name__", "http_requests_total"),
                    ("code", "200"),
                    ("job", "api"),
                ],
                &[(t, 10.0), (t + 15_000, 12.0)],
            ),
            ts(
                &[
                    ("__name__", "http_requests_total"),
                    ("code", "500"),
                    ("job", "web"),
                ],
                &[(t, 1.0)],
            ),
        ],
        metadata: vec![v1::MetricMetadata {
            r#type: 1,
            metric_family_name: "http_requests_total".into(),
            help: "Requests served.".into(),
            unit: "".into(),
        }],
    };
    let (status, body) = post_write(
        &TestClient::with(&client, &base),
        snappy(&req.encode_to_vec()),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    // Remote write 2.0: symbol table and per-series metadata.
    let v2req = v2::Request {
        symbols: vec![
            "".into(),
            "__name__".into(),
            "temperature_celsius".into(),
            "room".into(),
            "lab".into(),
            "Room temperature.".into(),
            "celsius".into(),
        ],
        timeseries: vec![v2::TimeSeries {
            histograms: vec![],
            created_timestamp: 0,
            exemplars: vec![],
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![v2::Sample {
                value: 21.5,
                timestamp: t,
            }],
            metadata: Some(v2::Metadata {
                r#type: 2,
                help_ref: 5,
                unit_ref: 6,
            }),
        }],
    };
    let r = post_v2(&client, &base, &v2req).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["x-prometheus-remote-write-samples-written"],
        "1"
    );

    // /api/v1/series, GET and POST.
    let (status, body) = get_json(
        &client,
        format!("{base}/api/v1/series?match[]=http_requests_total{{job=~\"a.*\"}}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    assert_eq!(
        body["data"],
        serde_json::json!([{"__name__": "http_requests_total", "code": "200", "job": "api"}])
    );
    let r = client
        .post(format!("{base}/api/v1/series"))
        .form(&[
            ("match[]", "{__name__=~\".+\"}"),
            ("start", &((t - 1000) as f64 / 1000.0).to_string()),
            ("limit", "2"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2, "{body}");

    // Labels and values, with and without match[].
    let (_, body) = get_json(&client, format!("{base}/api/v1/labels")).await;
    assert_eq!(
        body["data"],
        serde_json::json!(["__name__", "code", "job", "room"])
    );
    let (_, body) = get_json(
        &client,
        format!("{base}/api/v1/labels?match[]=temperature_celsius"),
    )
    .await;
    assert_eq!(body["data"], serde_json::json!(["__name__", "room"]));
    let (_, body) = get_json(&client, format!("{base}/api/v1/label/job/values")).await;
    assert_eq!(body["data"], serde_json::json!(["api", "web"]));
    let r = client
        .post(format!("{base}/api/v1/label/__name__/values"))
        .form(&[("match[]", "{job=\"web\"}")])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"], serde_json::json!(["http_requests_total"]));
    let (_, body) = get_json(&client, format!("{base}/api/v1/label/job/values?limit=1")).await;
    assert_eq!(body["data"], serde_json::json!(["api"]));
    // A time range with no data.
    let (_, body) = get_json(
        &client,
        format!("{base}/api/v1/label/job/values?start=0&end=1000"),
    )
    .await;
    assert_eq!(body["data"], serde_json::json!([]));

    // Metadata from both protocol versions, and buildinfo.
    let (_, body) = get_json(&client, format!("{base}/api/v1/metadata")).await;
    assert_eq!(body["data"]["http_requests_total"][0]["type"], "counter");
    assert_eq!(
        body["data"]["http_requests_total"][0]["help"],
        "Requests served."
    );
    assert_eq!(body["data"]["temperature_celsius"][0]["unit"], "celsius");
    let (_, body) = get_json(
        &client,
        format!("{base}/api/v1/metadata?metric=temperature_celsius"),
    )
    .await;
    assert_eq!(body["data"].as_object().unwrap().len(), 1);
    let (status, body) = get_json(&client, format!("{base}/api/v1/status/buildinfo")).await;
    assert_eq!(status, 200);
    assert!(body["data"]["version"].is_string());

    // Parameter errors are 400s with Prometheus's envelope.
    for url in [
        format!("{base}/api/v1/series"),
        format!("{base}/api/v1/series?match[]=up{{"),
        format!("{base}/api/v1/series?match[]={{job=\"\"}}"),
        format!("{base}/api/v1/series?match[]=up&start=yesterday"),
        format!("{base}/api/v1/series?match[]=up&start=10&end=5"),
        format!("{base}/api/v1/labels?limit=-1"),
        format!("{base}/api/v1/label/bad.name/values"),
    ] {
        let (status, body) = get_json(&client, url.clone()).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["errorType"], "bad_data");
        assert!(!body["error"].as_str().unwrap().is_empty());
    }
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_bad_remote_writes_without_writing_any_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let server = ServerProcess::start(
        &["--object-store", &data, "--max-body-bytes", "65536"],
        &dir.path().join("server.log"),
    )
    .await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let t = now_ms();
    let good = ts(&[("__name__", "ok_metric")], &[(t, 1.0)]);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "not snappy",
            b"definitely not snappy".to_vec(),
            400,
            "snappy",
        ),
        (
            "bad protobuf",
            snappy(&[0xff, 0xff, 0xff, 0x01, 0x02]),
            400,
            "WriteRequest",
        ),
        (
            "empty label name",
            v1_body(vec![
                good.clone(),
                ts(&[("__name__", "m"), ("", "x")], &[(t, 1.0)]),
            ]),
            400,
            "empty label name",
        ),
        (
            "invalid label name",
            v1_body(vec![
                good.clone(),
                ts(&[("__name__", "m"), ("a-b", "x")], &[(t, 1.0)]),
            ]),
            400,
            "invalid label name",
        ),
        (
            "duplicate label",
            v1_body(vec![
                good.clone(),
                ts(&[("__name__", "m"), ("a", "x"), ("a", "y")], &[(t, 1.0)]),
            ]),
            400,
            "duplicate label name",
        ),
        (
            "unsorted labels",
            v1_body(vec![
                good.clone(),
                ts(&[("__name__", "m"), ("b", "x"), ("a", "y")], &[(t, 1.0)]),
            ]),
            400,
            "not sorted",
        ),
        (
            "no metric name",
            v1_body(vec![good.clone(), ts(&[("a", "x")], &[(t, 1.0)])]),
            400,
            "__name__",
        ),
        (
            "absurd timestamp",
            v1_body(vec![
                good.clone(),
                ts(&[("__name__", "m")], &[(i64::MIN, 1.0)]),
            ]),
            400,
            "out of range",
        ),
        (
            "oversized",
            {
                // Incompressible label values push the snappy body past the 64 KiB limit.
                let mut x = 0x2545_f491_4f6c_dd1du64;
                let big: String = (0..80_000)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (b'a' + (x % 26) as u8) as char
                    })
                    .collect();
                v1_body(vec![
                    good.clone(),
                    ts(&[("__name__", "m"), ("big", big.as_str())], &[(t, 1.0)]),
                ])
            },
            413,
            "",
        ),
    ];
    for (what, body, want, needle) in cases {
        let (status, text) = post_write(&TestClient::with(&client, &base), body).await;
        assert_eq!(status, want, "{what}: {text}");
        if !needle.is_empty() {
            assert!(
                text.contains(needle),
                "{what}: message {text:?} should mention {needle:?}"
            );
        }
    }
    // A wrong content type or encoding.
    let (status, _) = post_write_as(
        &TestClient::with(&client, &base),
        v1_body(vec![good.clone()]),
        "application/json",
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = post_write_as(
        &TestClient::with(&client, &base),
        v1_body(vec![good.clone()]),
        "application/x-protobuf;proto=nope.Request",
    )
    .await;
    assert_eq!(status, 415);
    // Nothing of the refused requests was written, not even their good series.
    let (_, body) = get_json(&client, format!("{base}/api/v1/label/__name__/values")).await;
    assert_eq!(body["data"], serde_json::json!([]), "{body}");
    // The database still works.
    let (status, text) = post_write(&TestClient::with(&client, &base), v1_body(vec![good])).await;
    assert_eq!(status, 204, "{text}");
    let (_, body) = get_json(&client, format!("{base}/api/v1/label/__name__/values")).await;
    assert_eq!(body["data"], serde_json::json!(["ok_metric"]));
    server.terminate();
}

type Acked = Arc<Mutex<BTreeMap<String, Vec<(i64, f64)>>>>;

async fn producer(client: reqwest::Client, base: String, id: usize, acked: Acked) {
    let start = now_ms() - 3_000_000;
    for n in 0.. {
        // 50 series × 10 samples per request; each producer owns its series.
        let mut series = Vec::new();
        let mut mine = Vec::new();
        for s in 0..50 {
            let name = format!("p{id}_s{s}");
            let samples: Vec<(i64, f64)> = (0..10)
                .map(|k| (start + (n * 10 + k) * 1000, (n * 10 + k) as f64 + 0.5))
                .collect();
            series.push(ts(
                &[("__name__", "load"), ("series", name.as_str())],
                &samples,
            ));
            mine.push((name, samples));
        }
        let Ok(r) = client
            .post(format!("{base}/api/v1/write"))
            .header("content-type", "application/x-protobuf")
            .header("content-encoding", "snappy")
            .body(v1_body(series))
            .send()
            .await
        else {
            return;
        };
        if r.status() != 204 {
            return;
        }
        let mut acked = acked.lock();
        for (name, samples) in mine {
            acked.entry(name).or_default().extend(samples);
        }
    }
}

async fn kill_during_ingest(args: Vec<String>, storage: StorageConfig) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&argv, &log).await;
    let client = reqwest::Client::new();
    let acked: Acked = Arc::default();
    let tasks: Vec<_> = (0..4)
        .map(|p| {
            tokio::spawn(producer(
                client.clone(),
                server.base.clone(),
                p,
                acked.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.kill();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(
        total >= 1000,
        "too few acknowledged samples ({total}) to prove anything"
    );

    // Reopen the killed server's database and find every acknowledged sample.
    let db = TimeSeriesDb::open(opendata_timeseries::storage::Config {
        storage,
        timeseries: Default::default(),
    })
    .await
    .unwrap();
    let found = db
        .querier()
        .select(
            &[Matcher::equal("__name__", "load")],
            i64::MIN / 4,
            i64::MAX / 4,
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let stored: BTreeMap<String, Vec<(i64, f64)>> = found
        .into_iter()
        .map(|s| {
            let name = s.labels.get("series").unwrap().to_string();
            (
                name,
                s.samples
                    .iter()
                    .map(|x| (x.timestamp_ms, x.value))
                    .collect(),
            )
        })
        .collect();
    for (name, samples) in &acked {
        let got = stored
            .get(name)
            .unwrap_or_else(|| panic!("series {name} lost"));
        let got: BTreeMap<i64, f64> = got.iter().copied().collect();
        for (t, v) in samples {
            assert_eq!(
                got.get(t),
                Some(v),
                "{name}: acknowledged sample at {t} lost"
            );
        }
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_every_acknowledged_sample_after_sigkill_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    kill_during_ingest(
        vec!["--object-store".into(), data.display().to_string()],
        StorageConfig::local(&data),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_every_acknowledged_sample_after_sigkill_on_s3() {
    if let Some(storage) = opendata_testing::s3_config("ts-sigkill") {
        let args = s3_args_for(&storage).unwrap();
        kill_during_ingest(args, storage).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_store_remote_written_exemplars_and_serve_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let args = ["--object-store", data.as_str()];
    let server = ServerProcess::start(&args, &dir.path().join("server.log")).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let api = TestClient::with(&client, &base);
    let t = now_ms() - 60_000;
    let labels = [("__name__", "rpc_seconds_count"), ("job", "api")];

    // Remote write 1.0: the samples, then the exemplars in a series entry of their own,
    // as Prometheus sends them.
    let mut exemplars_only = ts(&labels, &[]);
    exemplars_only.exemplars = vec![
        v1::Exemplar {
            labels: vec![label("trace_id", "4bf92f3577b34da6")],
            value: 1.0,
            timestamp: t,
        },
        // Refused alone (labels over 128 characters); the request still succeeds.
        v1::Exemplar {
            labels: vec![label("trace_id", &"f".repeat(140))],
            value: 1.0,
            timestamp: t,
        },
    ];
    let (status, body) = post_write(
        &api,
        v1_body(vec![ts(&labels, &[(t, 1.0)]), exemplars_only]),
    )
    .await;
    assert_eq!(status, 204, "{body}");

    // Remote write 2.0: a sample with its exemplar; the answer counts it.
    let v2req = v2::Request {
        symbols: vec![
            "".into(),
            "__name__".into(),
            "rpc_seconds_count".into(),
            "job".into(),
            "api".into(),
            "trace_id".into(),
            "00f067aa0ba902b7".into(),
        ],
        timeseries: vec![v2::TimeSeries {
            histograms: vec![],
            created_timestamp: 0,
            exemplars: vec![v2::Exemplar {
                labels_refs: vec![5, 6],
                value: 2.0,
                timestamp: t + 15_000,
            }],
            labels_refs: vec![1, 2, 3, 4],
            samples: vec![v2::Sample {
                value: 2.0,
                timestamp: t + 15_000,
            }],
            metadata: None,
        }],
    };
    let r = post_v2(&client, &base, &v2req).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["x-prometheus-remote-write-exemplars-written"],
        "1"
    );

    let want = serde_json::json!([{
        "seriesLabels": {"__name__": "rpc_seconds_count", "job": "api"},
        "exemplars": [
            {"labels": {"trace_id": "4bf92f3577b34da6"}, "value": "1", "timestamp": t as f64 / 1000.0},
            {"labels": {"trace_id": "00f067aa0ba902b7"}, "value": "2", "timestamp": (t + 15_000) as f64 / 1000.0},
        ],
    }]);
    let query = |q: &str| {
        format!(
            "/api/v1/query_exemplars?query={q}&start={}&end={}",
            (t - 1_000) as f64 / 1000.0,
            (t + 20_000) as f64 / 1000.0
        )
    };
    let (status, body) = api
        .get_json(&query(
            "rate(rpc_seconds_count%7Bjob%3D%22api%22%7D%5B5m%5D)",
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], want);
    // Another series: none.
    let (_, body) = api.get_json(&query("other_metric")).await;
    assert_eq!(body["data"], serde_json::json!([]));

    // They are durable: after a SIGKILL the restarted server serves the same.
    server.kill();
    let server = ServerProcess::start(&args, &dir.path().join("server2.log")).await;
    let api = TestClient::with(&client, &server.base);
    let (_, body) = api.get_json(&query("rpc_seconds_count")).await;
    assert_eq!(body["data"], want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_take_created_timestamps_as_a_zero_sample_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opendata.toml");
    std::fs::write(
        &config,
        "[timeseries]\nenable_features = [\"created-timestamp-zero-ingestion\"]\n",
    )
    .unwrap();
    let args = [
        "--object-store",
        "memory://",
        "--config",
        config.to_str().unwrap(),
    ];
    let server = ServerProcess::start(&args, &dir.path().join("server.log")).await;
    let client = reqwest::Client::new();
    let api = TestClient::with(&client, &server.base);
    let t = now_ms() - 60_000;
    let v2req = v2::Request {
        symbols: vec!["".into(), "__name__".into(), "jobs_done_total".into()],
        timeseries: vec![v2::TimeSeries {
            histograms: vec![],
            created_timestamp: t - 20_000,
            exemplars: vec![],
            labels_refs: vec![1, 2],
            samples: vec![v2::Sample {
                value: 4.0,
                timestamp: t,
            }],
            metadata: None,
        }],
    };
    let r = post_v2(&client, &server.base, &v2req).await;
    assert_eq!(r.status(), 204);
    // The header counts what the client sent, not the zero sample.
    assert_eq!(
        r.headers()["x-prometheus-remote-write-samples-written"],
        "1"
    );
    let (status, body) = api
        .get_json(&format!(
            "/api/v1/query?query=jobs_done_total%5B1m%5D&time={}",
            (t + 1_000) as f64 / 1000.0
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let values = &body["data"]["result"][0]["values"];
    assert_eq!(
        values,
        &serde_json::json!([
            [(t - 20_000) as f64 / 1000.0, "0"],
            [t as f64 / 1000.0, "4"]
        ])
    );
    // An unknown feature stops the server from starting, naming it.
    std::fs::write(
        &config,
        "[timeseries]\nenable_features = [\"warp-drive\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(opendata_testing::process::binary())
        .args(["serve", "--object-store", "memory://", "--config"])
        .arg(&config)
        .arg("--listen")
        .arg(format!(
            "127.0.0.1:{}",
            opendata_testing::process::free_port()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown feature \"warp-drive\""),
        "{stderr}"
    );
}

/// An integer native histogram as Prometheus remote-writes it: schema 0, buckets
/// (0.5,1]: 2, (1,2]: 1, (2,4]: 3 (deltas 2, -1, 2), zero bucket 1.
fn int_histogram(t: i64, scale: u64) -> proto::Histogram {
    proto::Histogram {
        count: Some(proto::Count::CountInt(7 * scale)),
        sum: 12.5 * scale as f64,
        schema: 0,
        zero_threshold: 0.001,
        zero_count: Some(proto::ZeroCount::ZeroCountInt(scale)),
        negative_spans: vec![],
        negative_deltas: vec![],
        negative_counts: vec![],
        positive_spans: vec![proto::BucketSpan {
            offset: 0,
            length: 3,
        }],
        positive_deltas: vec![2 * scale as i64, -(scale as i64), 2 * scale as i64],
        positive_counts: vec![],
        reset_hint: 0,
        timestamp: t,
        custom_values: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_take_native_histograms_over_remote_write_and_answer_queries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let args = ["--object-store", data.as_str()];
    let server = ServerProcess::start(&args, &dir.path().join("server.log")).await;
    let client = reqwest::Client::new();
    let api = TestClient::with(&client, &server.base);
    let t = now_ms() - 120_000;

    // Remote write 1.0: integer histograms.
    let mut series = ts(&[("__name__", "rpc_seconds"), ("job", "api")], &[]);
    series.histograms = vec![int_histogram(t, 1), int_histogram(t + 60_000, 3)];
    let (status, body) = post_write(&api, v1_body(vec![series])).await;
    assert_eq!(status, 204, "{body}");

    // Remote write 2.0: a float histogram with custom buckets; the response counts it.
    let v2req = v2::Request {
        symbols: vec!["".into(), "__name__".into(), "queue_seconds".into()],
        timeseries: vec![v2::TimeSeries {
            labels_refs: vec![1, 2],
            samples: vec![],
            histograms: vec![proto::Histogram {
                count: Some(proto::Count::CountFloat(4.0)),
                sum: 9.0,
                schema: -53,
                zero_threshold: 0.0,
                zero_count: None,
                negative_spans: vec![],
                negative_deltas: vec![],
                negative_counts: vec![],
                positive_spans: vec![proto::BucketSpan {
                    offset: 0,
                    length: 2,
                }],
                positive_deltas: vec![],
                positive_counts: vec![1.0, 3.0],
                reset_hint: 3,
                timestamp: t + 60_000,
                custom_values: vec![1.0, 5.0],
            }],
            exemplars: vec![],
            metadata: None,
            created_timestamp: 0,
        }],
    };
    let r = post_v2(&client, &server.base, &v2req).await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["x-prometheus-remote-write-histograms-written"],
        "1"
    );
    assert_eq!(
        r.headers()["x-prometheus-remote-write-samples-written"],
        "0"
    );

    let at = (t + 60_000) as f64 / 1000.0;
    let query = |q: &str| format!("/api/v1/query?query={q}&time={at}");
    let check = |api: TestClient| async move {
        // The histogram itself, as Prometheus's JSON has it.
        let (status, body) = api.get_json(&query("rpc_seconds")).await;
        assert_eq!(status, 200, "{body}");
        let h = &body["data"]["result"][0]["histogram"][1];
        assert_eq!(h["count"], "21", "{body}");
        assert_eq!(h["sum"], "37.5");
        assert_eq!(
            h["buckets"],
            serde_json::json!([
                [3, "-0.001", "0.001", "3"],
                [0, "0.5", "1", "6"],
                [0, "1", "2", "3"],
                [0, "2", "4", "9"]
            ])
        );
        // Functions over it.
        let (_, body) = api.get_json(&query("histogram_count(rpc_seconds)")).await;
        assert_eq!(body["data"]["result"][0]["value"][1], "21", "{body}");
        let (_, body) = api
            .get_json(&query("histogram_count(increase(rpc_seconds%5B2m%5D))"))
            .await;
        let increase: f64 = body["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(increase >= 14.0, "{body}");
        let (_, body) = api
            .get_json(&query("histogram_quantile(0.5%2C%20queue_seconds)"))
            .await;
        let q: f64 = body["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // Rank 2 of 4 falls a third into (1, 5]: linear in custom buckets.
        assert!((q - (1.0 + 4.0 / 3.0)).abs() < 1e-12, "{body}");
        // A range query returns "histograms".
        let (_, body) = api
            .get_json(&format!(
                "/api/v1/query_range?query=rpc_seconds&start={}&end={at}&step=60",
                at - 60.0
            ))
            .await;
        let points = body["data"]["result"][0]["histograms"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(points, 2, "{body}");
    };
    check(TestClient::with(&client, &server.base)).await;

    // A histogram whose spans and counts disagree is refused, naming the problem.
    let mut bad = ts(&[("__name__", "bad_seconds")], &[]);
    let mut h = int_histogram(t, 1);
    h.positive_deltas.pop();
    bad.histograms = vec![h];
    let (status, body) = post_write(&api, v1_body(vec![bad])).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("spans hold 3 buckets but 2 counts"), "{body}");

    // Acknowledged histograms survive a SIGKILL.
    server.kill();
    let server = ServerProcess::start(&args, &dir.path().join("server2.log")).await;
    check(TestClient::with(&client, &server.base)).await;
}
