//! The log HTTP API and CLI against the real binary: the seed quickstart verbatim,
//! protobuf bodies, conditional appends, long-poll, Server-Sent Events, backpressure.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opendata_server::api::log::proto::{AppendRequest, AppendResponse, Record, ScanResponse};
use opendata_server::api::negotiate::{Decode, Encode};
use serde_json::{Value, json};
use support::{ServerProcess, b64, memory_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_run_the_seed_quickstart_verbatim_with_curl() {
    let (_dir, server) = memory_server(&[]).await;
    // The quickstart's commands, with only the port changed.
    let base = format!("http://localhost:{}", server.port);
    let health = Command::new("curl")
        .args(["-s", &format!("{base}/-/healthy")])
        .output()
        .unwrap();
    assert!(health.status.success());
    assert!(String::from_utf8_lossy(&health.stdout).contains("Healthy"));
    let append = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("{base}/api/v1/log/append"),
            "-H",
            "Content-Type: application/protobuf+json",
            "-d",
            r#"{"records":[{"key":"b3JkZXJz","value":"b3JkZXItMQ=="},{"key":"b3JkZXJz","value":"b3JkZXItMg=="}],"awaitDurable":true}"#,
        ])
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&append.stdout).unwrap();
    assert_eq!(body["sequences"], json!(["0", "1"]));
    let scan = Command::new("curl")
        .args(["-s", &format!("{base}/api/v1/log/scan?key=orders")])
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&scan.stdout).unwrap();
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["value"], "b3JkZXItMQ==");
    assert_eq!(entries[1]["key"], "b3JkZXJz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_speak_binary_protobuf_both_ways() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let req = AppendRequest {
        records: vec![
            Record {
                key: bytes::Bytes::from_static(b"\x00bin\xff"),
                value: bytes::Bytes::from_static(b"\x01\x02"),
            },
            Record {
                key: bytes::Bytes::from_static(b"\x00bin\xff"),
                value: bytes::Bytes::from_static(b"\x03"),
            },
        ],
        await_durable: None,
        expected_last_sequence: None,
        expect_empty: true,
        condition_key: bytes::Bytes::new(),
    };
    let resp = client
        .post(format!("{}/api/v1/log/append", server.base))
        .header("content-type", "application/protobuf")
        .body(req.to_protobuf())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/protobuf");
    let appended = AppendResponse::from_protobuf(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(appended.sequences.len(), 2);
    let resp = client
        .get(format!("{}/api/v1/log/scan", server.base))
        .query(&[("key_base64", "AGJpbv8=")])
        .header("accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    let scanned = ScanResponse::from_protobuf(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(scanned.entries.len(), 2);
    assert_eq!(&scanned.entries[0].value[..], b"\x01\x02");
    assert_eq!(scanned.entries[1].sequence, appended.sequences[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_reject_a_failed_condition_with_409_and_write_nothing() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/log/append", server.base);
    let first: Value = client
        .post(&url)
        .json(&json!({"records": [{"key": b64("k"), "value": b64("1")}], "expectEmpty": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seq: u64 = first["sequences"][0].as_str().unwrap().parse().unwrap();
    let resp = client
        .post(&url)
        .json(&json!({"records": [{"key": b64("k"), "value": b64("x")}], "expectedLastSequence": seq + 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errorType"], "conflict");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&format!("last sequence {seq}")),
        "{body}"
    );
    let resp = client
        .post(&url)
        .json(&json!({"records": [{"key": b64("k"), "value": b64("2")}], "expectedLastSequence": seq}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .post(&url)
        .json(&json!({"records": [{"key": b64("a"), "value": b64("x")}, {"key": b64("b"), "value": b64("y")}], "expectEmpty": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        400,
        "a condition over records of different keys needs conditionKey"
    );
    let scan: Value = client
        .get(format!("{}/api/v1/log/scan?key=k", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(scan["entries"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_long_poll_and_stream_new_entries() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    // Long-poll: nothing yet; the request waits and returns the append made meanwhile.
    let poll = {
        let client = client.clone();
        let base = server.base.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body: Value = client
                .get(format!(
                    "{base}/api/v1/log/scan?key=live&follow=true&timeout_ms=10000"
                ))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (body, started.elapsed())
        })
    };
    // A timed-out long poll answers an empty list.
    let empty: Value = client
        .get(format!(
            "{}/api/v1/log/scan?key=nothing&follow=true&timeout_ms=100",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(empty["entries"].as_array().unwrap().is_empty());

    // Server-Sent Events.
    let mut sse = client
        .get(format!("{}/api/v1/log/stream?key=live", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .post(format!("{}/api/v1/log/append", server.base))
        .json(&json!({"records": [{"key": b64("live"), "value": b64("hello")}, {"key": b64("live"), "value": b64("world")}]}))
        .send()
        .await
        .unwrap();
    let (body, waited) = poll.await.unwrap();
    assert!(!body["entries"].as_array().unwrap().is_empty(), "{body}");
    assert_eq!(body["entries"][0]["value"], b64("hello"));
    assert!(
        waited < Duration::from_secs(9),
        "the long poll returned at the append, not the timeout"
    );

    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while text.matches("event: entry").count() < 2 {
        let chunk = tokio::time::timeout_at(deadline.into(), sse.chunk())
            .await
            .expect("SSE events arrive")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(&b64("hello")), "{text}");
    assert!(text.contains(&b64("world")), "{text}");
    assert!(text.contains("id: 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_429_when_the_write_queue_is_full_and_keep_accepted_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opendata.toml");
    std::fs::write(
        &config,
        "[storage]\nwrite_queue_depth = 1\n[storage.object_store]\ntype = \"memory\"\n",
    )
    .unwrap();
    let server = ServerProcess::start(
        &["--config", config.to_str().unwrap()],
        &dir.path().join("log"),
    )
    .await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        let url = format!("{}/api/v1/log/append", server.base);
        tasks.push(tokio::spawn(async move {
            let records: Vec<Value> = (0..50)
                .map(|j| json!({"key": b64("q"), "value": b64(&format!("{i}-{j}"))}))
                .collect();
            let resp = client
                .post(url)
                .json(&json!({"records": records}))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (status, body)
        }));
    }
    let mut ok = 0;
    let mut rejected = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            200 => ok += 1,
            429 => {
                assert!(
                    body["error"].as_str().unwrap().contains("queue is full"),
                    "{body}"
                );
                rejected += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(ok > 0 && rejected > 0, "ok={ok} rejected={rejected}");
    let count: Value = client
        .get(format!("{}/api/v1/log/count?key=q", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count["count"], json!((ok * 50).to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_append_scan_tail_and_list_keys_from_the_cli() {
    let (_dir, server) = memory_server(&[]).await;
    let bin = env!("CARGO_BIN_EXE_opendata");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("log")
            .args(args)
            .args(["--server", &server.base])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let seqs = run(&["append", "--key", "orders", "--value", "a", "--value", "b"]);
    assert_eq!(seqs.lines().count(), 2);
    let mut child = Command::new(bin)
        .args([
            "log",
            "append",
            "--key",
            "orders",
            "--batch",
            "2",
            "--server",
            &server.base,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"c\nd\ne\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    let scanned = run(&["scan", "--key", "orders"]);
    let values: Vec<&str> = scanned
        .lines()
        .map(|l| l.rsplit('\t').next().unwrap())
        .collect();
    assert_eq!(values, vec!["a", "b", "c", "d", "e"]);
    run(&["append", "--key", "other", "--value", "x"]);
    let keys = run(&["keys"]);
    assert_eq!(
        keys.lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect::<Vec<_>>(),
        vec!["orders", "other"]
    );
    // A failed condition is an error exit with the server's message.
    let out = Command::new(bin)
        .args([
            "log",
            "append",
            "--key",
            "orders",
            "--expect-empty",
            "--value",
            "z",
            "--server",
            &server.base,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"));

    // tail: starts after the newest entry and prints what arrives.
    let mut tail = Command::new(bin)
        .args(["log", "tail", "--key", "orders", "--server", &server.base])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    run(&["append", "--key", "orders", "--value", "fresh"]);
    let mut stdout = tail.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 256];
        let n = stdout.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    let line = reader.join().unwrap();
    tail.kill().unwrap();
    let _ = tail.wait();
    assert!(line.trim_end().ends_with("\tfresh"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_enforce_configured_key_and_value_limits() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("opendata.toml");
    std::fs::write(
        &config,
        "[storage.object_store]\ntype = \"memory\"\n[log]\nmax_key_bytes = 8\nmax_value_bytes = 16\n",
    )
    .unwrap();
    let server = ServerProcess::start(
        &["--config", config.to_str().unwrap()],
        &dir.path().join("log"),
    )
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/log/append", server.base);
    for (key, value, needle) in [
        ("123456789", "v", "key is 9 bytes; the maximum is 8"),
        (
            "k",
            "12345678901234567",
            "value is 17 bytes; the maximum is 16",
        ),
    ] {
        let resp = client
            .post(&url)
            .json(&json!({"records": [{"key": b64(key), "value": b64(value)}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(needle), "{body}");
    }
    let resp = client
        .post(&url)
        .json(&json!({"records": [{"key": b64("k"), "value": b64("fits")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn pool_admitted(metrics: &str, pool: &str) -> u64 {
    let series = format!("opendata_pool_admitted_total{{pool=\"{pool}\"}}");
    opendata_testing::metric_value(metrics, &series).unwrap() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_decode_large_bodies_on_the_database_pools() {
    let (_dir, server) = memory_server(&[]).await;
    let api = opendata_testing::TestClient::new(server.base.clone());
    let before = api.metrics().await;
    // A small append decodes in place; 1,000 records of 1 KiB (1.3 MiB of JSON) decode on
    // the log pool, and a large upsert on the vector pool.
    let small = json!({"records": [{"key": b64("k"), "value": b64("v")}]});
    let (status, v) = api.post_json("/api/v1/log/append", &small).await;
    assert_eq!(status, 200, "{v}");
    let value = b64(&"x".repeat(1024));
    let records: Vec<Value> = (0..1000)
        .map(|_| json!({"key": b64("k"), "value": value}))
        .collect();
    let (status, v) = api
        .post_json("/api/v1/log/append", &json!({ "records": records }))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["sequences"].as_array().unwrap().len(), 1000);
    let (status, v) = api
        .post_json(
            "/api/v1/vector/collections",
            &json!({"name": "big", "dimension": 64}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let vectors: Vec<Value> = (0..500)
        .map(|i| json!({"id": format!("v{i}"), "vector": vec![i as f64 / 7.0; 64]}))
        .collect();
    let (status, v) = api
        .post_json(
            "/api/v1/vector/collections/big/upsert",
            &json!({ "vectors": vectors }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let after = api.metrics().await;
    assert_eq!(
        pool_admitted(&after, "log") - pool_admitted(&before, "log"),
        1
    );
    assert_eq!(
        pool_admitted(&after, "vector") - pool_admitted(&before, "vector"),
        1
    );
    let (status, v) = api.get_json("/api/v1/log/count?key=k").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["count"].to_string().trim_matches('"'), "1001", "{v}");
}
