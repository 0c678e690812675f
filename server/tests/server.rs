//! The `opendata` binary, end to end: runtime endpoints, errors, restarts, replicas.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{ServerProcess, TestClient, b64, s3_args};

async fn append(client: &reqwest::Client, base: &str, key: &str, values: &[&str]) -> Vec<u64> {
    let records: Vec<Value> = values
        .iter()
        .map(|v| json!({"key": b64(key), "value": b64(v)}))
        .collect();
    let resp = client
        .post(format!("{base}/api/v1/log/append"))
        .header("content-type", "application/protobuf+json")
        .body(json!({"records": records, "awaitDurable": true}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().parse().unwrap())
        .collect()
}

async fn scan_values(client: &reqwest::Client, base: &str, key: &str) -> Vec<String> {
    let resp = client
        .get(format!("{base}/api/v1/log/scan"))
        .query(&[("key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(e["value"].as_str().unwrap())
                .unwrap();
            String::from_utf8(raw).unwrap()
        })
        .collect()
}

async fn restart_keeps_data(args: Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let client = reqwest::Client::new();
    let server = ServerProcess::start(&args, &log).await;
    append(&client, &server.base, "orders", &["order-1", "order-2"]).await;
    append(&client, &server.base, "events", &["e-1"]).await;
    let status = server.terminate();
    assert!(status.success(), "graceful shutdown exits 0, got {status}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("every database flushed and closed"), "{text}");

    let server = ServerProcess::start(&args, &log).await;
    assert_eq!(
        scan_values(&client, &server.base, "orders").await,
        vec!["order-1", "order-2"]
    );
    assert_eq!(
        scan_values(&client, &server.base, "events").await,
        vec!["e-1"]
    );
    let seqs = append(&client, &server.base, "orders", &["order-3"]).await;
    assert_eq!(scan_values(&client, &server.base, "orders").await.len(), 3);
    assert!(seqs[0] >= 3);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_data_across_a_sigterm_restart_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    restart_keeps_data(vec!["--object-store".into(), data.display().to_string()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_data_across_a_sigterm_restart_on_s3() {
    if let Some(args) = s3_args("server-restart") {
        restart_keeps_data(args).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start(&["--object-store", "memory://"], &dir.path().join("log")).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/-/healthy", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/-/ready", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    append(&client, &server.base, "k", &["v"]).await;
    let r = client
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains("# TYPE slatedb_"),
        "SlateDB metrics missing:\n{text}"
    );
    assert!(text.contains("database=\"log\""), "{text}");
    assert!(text.contains("opendata_http_requests_total{route=\"/api/v1/log/append\",method=\"POST\",code=\"200\"} 1"), "{text}");
    assert!(
        text.contains("opendata_commit_jobs_total{database=\"log\"} 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_report_each_database_and_its_stored_bytes_in_the_status() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = ServerProcess::start(
        &["--object-store", data.to_str().unwrap()],
        &dir.path().join("log"),
    )
    .await;
    let client = reqwest::Client::new();
    append(&client, &server.base, "k", &["v"]).await;
    let api = TestClient::new(&server.base);
    let (status, body) = api.get_json("/api/v1/server/status").await;
    assert_eq!(status, 200, "{body}");
    let d = &body["data"];
    assert_eq!(d["read_only"], false);
    assert_eq!(
        d["storage"],
        format!("local directory {}", data.display()),
        "{body}"
    );
    let names: Vec<&str> = d["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|db| db["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["log", "timeseries", "vector"]);
    for db in d["databases"].as_array().unwrap() {
        assert_eq!(db["role"], "writer", "{db}");
        assert_eq!(db["healthy"], true, "{db}");
        assert_eq!(db["usage_complete"], true, "{db}");
        assert!(db["objects"].as_u64().unwrap() > 0, "{db}");
    }
    // The sizes count what the directory holds (SlateDB keeps writing in the
    // background, so only a lower bound is stable).
    assert!(walk(&data.join("log")) > 0);
    assert!(d["databases"][0]["bytes"].as_u64().unwrap() > 0, "{body}");

    // The console is the page at `/`, with its assets beside it.
    let r = client
        .get(format!("{}/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("/console/app.js"), "{html}");
    let r = client
        .get(format!("{}/console/app.js", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

/// Bytes of every file below `dir`.
fn walk(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                walk(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_bad_input_with_clear_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        &["--object-store", "memory://", "--max-body-bytes", "4096"],
        &dir.path().join("log"),
    )
    .await;
    let client = reqwest::Client::new();
    append(&client, &server.base, "k", &["kept"]).await;
    let url = format!("{}/api/v1/log/append", server.base);
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("x".repeat(10_000)),
            413,
            "larger than",
        ),
        (
            client
                .post(&url)
                .header("content-type", "image/png")
                .body("{}"),
            415,
            "unsupported Content-Type",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid application/json body",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/protobuf")
                .body(vec![0xff, 0xff, 0xff]),
            400,
            "invalid application/protobuf body",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"records":[{"key":"%%%","value":""}]}"#),
            400,
            "base64",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"records":[{"key":"","value":"eA=="}]}"#),
            400,
            "key must not be empty",
        ),
        (
            client
                .post(&url)
                .header("content-type", "application/json")
                .body(r#"{"records":[]}"#),
            400,
            "at least one record",
        ),
        (
            client.get(format!("{}/api/v1/log/scan?key=k&limit=0", server.base)),
            400,
            "limit",
        ),
        (
            client.get(format!(
                "{}/api/v1/log/scan?key=k&start_seq=9&end_seq=2",
                server.base
            )),
            400,
            "end_seq",
        ),
        (
            client.get(format!("{}/api/v1/log/scan?key_base64=***", server.base)),
            400,
            "key_base64",
        ),
        (
            client.get(format!("{}/api/v1/log/scan", server.base)),
            400,
            "missing parameter 'key'",
        ),
        (
            client.get(format!("{}/api/v1/log/scan?key=k&bogus=1", server.base)),
            400,
            "unknown parameter 'bogus'",
        ),
        (
            client.get(format!("{}/api/v1/nothing", server.base)),
            404,
            "no route",
        ),
    ];
    for (req, status, needle) in cases {
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status().as_u16(),
            status,
            "expected {status} for '{needle}'"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "error");
        assert!(body["errorType"].is_string());
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{body} lacks '{needle}'"
        );
    }
    assert_eq!(scan_values(&client, &server.base, "k").await, vec!["kept"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_follow_the_writer_from_a_read_only_replica() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let client = reqwest::Client::new();
    let writer = ServerProcess::start(&["--object-store", &data], &dir.path().join("w.log")).await;
    append(&client, &writer.base, "k", &["one"]).await;
    let replica = ServerProcess::start(
        &["--object-store", &data, "--read-only"],
        &dir.path().join("r.log"),
    )
    .await;
    assert_eq!(scan_values(&client, &replica.base, "k").await, vec!["one"]);
    let resp = client
        .post(format!("{}/api/v1/log/append", replica.base))
        .header("content-type", "application/json")
        .body(json!({"records": [{"key": b64("k"), "value": b64("x")}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    append(&client, &writer.base, "k", &["two"]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if scan_values(&client, &replica.base, "k").await.len() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replica never saw the second append"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client
        .get(format!("{}/-/ready", replica.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_explain_that_a_replica_needs_an_existing_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("empty").display().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opendata"))
        .args([
            "serve",
            "--read-only",
            "--object-store",
            &data,
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("read-only replica of the log database"),
        "{stderr}"
    );
    assert!(stderr.contains("start the writer"), "{stderr}");
}

/// The group-commit counters of every database, from `/metrics`.
async fn commit_jobs(api: &TestClient) -> std::collections::BTreeMap<String, u64> {
    let text = api.metrics().await;
    text.lines()
        .filter_map(|l| l.strip_prefix("opendata_commit_jobs_total{database=\""))
        .map(|rest| {
            let (db, n) = rest.split_once("\"} ").unwrap();
            (db.to_string(), n.parse().unwrap())
        })
        .collect()
}

/// Readiness, the commit counters in `/metrics` and shutdown go through one lifecycle for
/// every database: all three are counted, and a write to each shows in its own counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_check_and_count_every_database_alike() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServerProcess::start(&["--object-store", "memory://"], &dir.path().join("log")).await;
    let api = TestClient::new(server.base.clone());
    let r = api.http().get(api.url("/-/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let before = commit_jobs(&api).await;
    let names: Vec<&str> = before.keys().map(String::as_str).collect();
    assert_eq!(names, ["log", "timeseries", "vector"]);

    append(api.http(), &server.base, "k", &["v"]).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let batch = opendata_timeseries::model::WriteBatch {
        series: vec![opendata_timeseries::model::SeriesSamples {
            histograms: Vec::new(),
            exemplars: Vec::new(),
            created_timestamp_ms: None,
            labels: opendata_timeseries::model::Labels::from_pairs([("__name__", "up")]),
            samples: vec![opendata_timeseries::model::Sample {
                timestamp_ms: now,
                value: 1.0,
            }],
        }],
        metadata: vec![],
    };
    let body = opendata_server::api::timeseries::remote_write::encode_v1(&batch);
    let (status, text) = api.remote_write(body, "application/x-protobuf").await;
    assert_eq!(status, 204, "{text}");
    let (status, v) = api
        .post_json(
            "/api/v1/vector/collections",
            &json!({"name": "c", "dimension": 2}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = api
        .post_json(
            "/api/v1/vector/collections/c/upsert",
            &json!({"vectors": [{"id": "a", "vector": [1.0, 2.0]}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");

    let after = commit_jobs(&api).await;
    for (db, n) in &before {
        assert!(after[db] > *n, "{db}: {n} -> {}", after[db]);
    }
    let r = api.http().get(api.url("/-/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}
