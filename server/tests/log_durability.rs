//! Acknowledged log appends survive SIGKILL: a writer is killed mid-stream, reopened,
//! and every acknowledged record is there, in order, with no duplicated sequences.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parking_lot::Mutex;
use serde_json::{Value, json};
use support::{ServerProcess, s3_args};

type Acked = Arc<Mutex<BTreeMap<String, Vec<(u64, String)>>>>;

async fn producer(
    client: reqwest::Client,
    base: String,
    id: usize,
    key: String,
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let values: Vec<String> = (0..20).map(|i| format!("p{id}-{n}-{i}")).collect();
        let records: Vec<Value> = values
            .iter()
            .map(|v| json!({"key": STANDARD.encode(&key), "value": STANDARD.encode(v)}))
            .collect();
        let resp = client
            .post(format!("{base}/api/v1/log/append"))
            .header("content-type", "application/protobuf+json")
            .body(json!({"records": records, "awaitDurable": true}).to_string())
            .send()
            .await;
        // Once the server dies, requests fail: those were never acknowledged.
        let Ok(resp) = resp else { return };
        if resp.status() != 200 {
            return;
        }
        let Ok(body) = resp.json::<Value>().await else {
            return;
        };
        let seqs: Vec<u64> = body["sequences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().parse().unwrap())
            .collect();
        let mut acked = acked.lock();
        let list = acked.entry(key.clone()).or_default();
        list.extend(seqs.into_iter().zip(values));
        n += 1;
    }
}

async fn scan_all(client: &reqwest::Client, base: &str, key: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut next = 0u64;
    loop {
        let body: Value = client
            .get(format!("{base}/api/v1/log/scan"))
            .query(&[
                ("key", key),
                ("start_seq", &next.to_string()),
                ("limit", "10000"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let entries = body["entries"].as_array().unwrap();
        if entries.is_empty() {
            return out;
        }
        for e in entries {
            let seq: u64 = e["sequence"].as_str().unwrap().parse().unwrap();
            let value =
                String::from_utf8(STANDARD.decode(e["value"].as_str().unwrap()).unwrap()).unwrap();
            out.push((seq, value));
        }
        next = body["nextSequence"].as_str().unwrap().parse().unwrap();
    }
}

async fn kill_and_recover(args: Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&args, &log).await;
    let client = reqwest::Client::new();
    let acked: Acked = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for p in 0..8 {
        tasks.push(tokio::spawn(producer(
            client.clone(),
            server.base.clone(),
            p,
            format!("key-{}", p % 4),
            acked.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().clone();
    let total: usize = acked.values().map(Vec::len).sum();
    assert!(
        total > 100,
        "too few acknowledged records ({total}) to prove anything"
    );

    let server = ServerProcess::start(&args, &log).await;
    for (key, mut expected) in acked {
        expected.sort();
        let stored = scan_all(&client, &server.base, &key).await;
        // Strictly increasing sequences: in order, no duplicates.
        assert!(
            stored.windows(2).all(|w| w[0].0 < w[1].0),
            "{key}: sequences out of order"
        );
        let stored_map: BTreeMap<u64, String> = stored.iter().cloned().collect();
        for (seq, value) in &expected {
            assert_eq!(
                stored_map.get(seq),
                Some(value),
                "{key}: acknowledged sequence {seq} lost"
            );
        }
        // No value stored twice.
        let mut values: Vec<&String> = stored.iter().map(|(_, v)| v).collect();
        values.sort();
        values.dedup();
        assert_eq!(values.len(), stored.len(), "{key}: duplicated records");
    }
    // The reopened writer keeps going with fresh sequences.
    let resp = client
        .post(format!("{}/api/v1/log/append", server.base))
        .header("content-type", "application/json")
        .body(json!({"records": [{"key": STANDARD.encode("key-0"), "value": STANDARD.encode("after")}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stored = scan_all(&client, &server.base, "key-0").await;
    assert_eq!(stored.last().unwrap().1, "after");
    assert!(stored.windows(2).all(|w| w[0].0 < w[1].0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_every_acknowledged_append_after_sigkill_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    kill_and_recover(vec!["--object-store".into(), data]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_every_acknowledged_append_after_sigkill_on_s3() {
    if let Some(args) = s3_args("log-sigkill") {
        kill_and_recover(args).await;
    }
}
