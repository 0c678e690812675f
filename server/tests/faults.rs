//! The object store goes away for a while under the real binary: every write to each
//! database is either acknowledged (and then durable, found after a SIGKILL and restart)
//! or refused with a clear 503, never a 500 or a hang; readiness is red while the store
//! is away; and when it comes back the server recovers without a restart: the same
//! process reads back every acknowledged write, and so does a new one after a SIGKILL.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ServerProcess, TestClient};

/// What one write got.
#[derive(Debug, Default)]
struct Outcomes {
    acked: Vec<u64>,
    refused: usize,
}

fn record(out: &mut Outcomes, what: &str, i: u64, status: u16, body: &str, took: Duration) {
    assert!(
        took < Duration::from_secs(8),
        "{what} {i} took {took:?} (the acknowledgement timeout is 2 s)"
    );
    match status {
        200 | 204 => out.acked.push(i),
        503 => {
            assert!(
                body.contains("unavailable") || body.contains("not acknowledged"),
                "{what} {i}: 503 without a reason: {body}"
            );
            out.refused += 1;
        }
        other => panic!("{what} {i}: {other} {body}"),
    }
}

use opendata_testing::now_ms;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_ack_or_refuse_every_write_while_the_store_is_away_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let config = dir.path().join("faults.toml");
    std::fs::write(
        &config,
        "[storage]\nwrite_ack_timeout_ms = 2000\n\
         [storage.faults]\nunreachable_after_secs = 4\nunreachable_for_secs = 6\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let server = ServerProcess::start(
        &["--config", &config, "--object-store", &data],
        &dir.path().join("server.log"),
    )
    .await;
    let api = TestClient::new(server.base.clone());
    let (status, v) = api
        .post_json(
            "/api/v1/vector/collections",
            &json!({"name": "c", "dimension": 2}),
        )
        .await;
    assert_eq!(status, 201, "{v}");

    let (mut log, mut ts, mut vector) = (
        Outcomes::default(),
        Outcomes::default(),
        Outcomes::default(),
    );
    // Readiness, sampled all along in the background.
    let readiness = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<u16>::new()));
    let probe = {
        let (api, readiness) = (api.clone(), readiness.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(r) = api.http().get(api.url("/-/ready")).send().await {
                    readiness.lock().push(r.status().as_u16());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // Each round writes to the three databases at once, so each sees the same outage
    // (written one after another, a later database could fall between two refusals of
    // the earlier ones and never meet the store away).
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(16) {
        i += 1;
        let log_write = async {
            let t = Instant::now();
            let value = base64(&format!("v{i}"));
            let r = api
                .http()
                .post(api.url("/api/v1/log/append"))
                .header("content-type", "application/json")
                .body(json!({"records": [{"key": "a2V5", "value": value}]}).to_string())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            (status, body, t.elapsed())
        };
        let ts_write = async {
            let t = Instant::now();
            let batch = opendata_timeseries::model::WriteBatch {
                series: vec![opendata_timeseries::model::SeriesSamples {
                    histograms: Vec::new(),
                    exemplars: Vec::new(),
                    created_timestamp_ms: None,
                    labels: opendata_timeseries::model::Labels::from_pairs([
                        ("__name__", "writes"),
                        ("i", i.to_string().as_str()),
                    ]),
                    samples: vec![opendata_timeseries::model::Sample {
                        timestamp_ms: now_ms(),
                        value: i as f64,
                    }],
                }],
                metadata: vec![],
            };
            let body = opendata_server::api::timeseries::remote_write::encode_v1(&batch);
            let (status, body) = api.remote_write(body, "application/x-protobuf").await;
            (status, body, t.elapsed())
        };
        let vector_write = async {
            let t = Instant::now();
            let (status, body) = api
                .post_json(
                    "/api/v1/vector/collections/c/upsert",
                    &json!({"vectors": [{"id": format!("v{i}"), "vector": [i as f64, 1.0]}]}),
                )
                .await;
            (status, body.to_string(), t.elapsed())
        };
        let (l, t, v) = tokio::join!(log_write, ts_write, vector_write);
        record(&mut log, "log append", i, l.0, &l.1, l.2);
        record(&mut ts, "remote write", i, t.0, &t.1, t.2);
        record(&mut vector, "upsert", i, v.0, &v.1, v.2);

        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    probe.abort();
    let seen = readiness.lock().clone();
    let first_red = seen.iter().position(|s| *s == 503);
    assert!(
        first_red.is_some(),
        "readiness never failed while the store was away: {seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&200),
        "readiness did not recover: {seen:?}"
    );
    for (what, o) in [("log", &log), ("timeseries", &ts), ("vector", &vector)] {
        assert!(o.refused > 0, "{what}: no write was refused: {o:?}");
        assert!(
            o.acked.iter().any(|i| *i > o.acked.len() as u64 / 2) && o.acked.len() > 10,
            "{what}: writes did not recover: {o:?}"
        );
    }

    // Reads recover on the same process once the store is back: every acknowledged
    // write is found without a restart.
    check_acked(&api, &log, &ts, &vector).await;

    // Every acknowledged write survives a SIGKILL.
    server.kill();
    let server =
        ServerProcess::start(&["--object-store", &data], &dir.path().join("server2.log")).await;
    let api = TestClient::new(server.base.clone());
    check_acked(&api, &log, &ts, &vector).await;
}

/// Every acknowledged write of the three databases is found.
async fn check_acked(api: &TestClient, log: &Outcomes, ts: &Outcomes, vector: &Outcomes) {
    let (status, v) = api.get_json("/api/v1/log/scan?key=key&limit=100000").await;
    assert_eq!(status, 200, "{v}");
    let found: BTreeSet<String> = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["value"].as_str().unwrap().to_string())
        .collect();
    for i in &log.acked {
        assert!(
            found.contains(&base64(&format!("v{i}"))),
            "log entry {i} lost"
        );
    }
    let (status, v) = api.get_json("/api/v1/series?match[]=writes").await;
    assert_eq!(status, 200, "{v}");
    let series: BTreeSet<String> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["i"].as_str().unwrap().to_string())
        .collect();
    for i in &ts.acked {
        assert!(series.contains(&i.to_string()), "series {i} lost");
    }
    let ids: Vec<String> = vector.acked.iter().map(|i| format!("v{i}")).collect();
    let (status, v) = api
        .post_json("/api/v1/vector/collections/c/get", &json!({ "ids": ids }))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["missing"], Value::Array(vec![]), "{v}");
}

fn base64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
