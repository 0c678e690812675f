//! Log HTTP benchmarks: the log database's HTTP routes served on loopback from a
//! local-directory store, loaded by `wrk` (a separate process) on the same machine, and
//! Server-Sent Events latency.
//!
//! `cargo bench -p opendata-server --bench log_http` runs the full set (needs `wrk`:
//! `apt-get install wrk`). Under `cargo test` it runs a one-second smoke version, and
//! skips the `wrk` part with a notice when `wrk` is not installed.
//!
//! Load: 100 records of 256 B per request, 32 connections, 2 wrk threads, 20 s, with
//! `application/protobuf+json` bodies and with binary `application/protobuf` bodies.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use base64::Engine;
use opendata_common::Opened;
use opendata_common::{StorageConfig, StorageRoot};
use opendata_log::{LogConfig, LogDb};
use opendata_server::api::log::proto::{AppendRequest, Record};
use opendata_server::api::log::router;
use opendata_server::api::negotiate::Encode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The log routes served on a free loopback port by their own runtime, as `opendata
/// serve` would serve them.
struct Server {
    base: String,
    runtime: Option<tokio::runtime::Runtime>,
    db: LogDb,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            let db = self.db.clone();
            rt.block_on(async move {
                let _ = db.close().await;
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

fn start_server() -> Server {
    let dir = match std::env::var_os("LOG_BENCH_DIR") {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let path = dir.path().join("data");
    let (db, base) = runtime.block_on(async move {
        let root = StorageRoot::new(StorageConfig::local(path)).unwrap();
        let db = LogDb::open_in(&root, LogConfig::default()).await.unwrap();
        let pool = std::sync::Arc::new(
            opendata_server::server::pool::WorkPool::new("log", Default::default()).unwrap(),
        );
        let app =
            router(Opened::Writer(db.clone()), pool).layer(DefaultBodyLimit::max(64 * 1024 * 1024));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (db, base)
    });
    Server {
        base,
        runtime: Some(runtime),
        db,
        _dir: dir,
    }
}

fn request(records: usize, value_size: usize) -> AppendRequest {
    AppendRequest {
        records: (0..records)
            .map(|i| Record {
                key: bytes::Bytes::from(format!("bench-{}", i % 4)),
                value: bytes::Bytes::from(vec![b'a' + (i % 26) as u8; value_size]),
            })
            .collect(),
        await_durable: Some(true),
        expected_last_sequence: None,
        expect_empty: false,
        condition_key: bytes::Bytes::new(),
    }
}

struct WrkResult {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    errors: String,
}

fn parse_ms(s: &str) -> f64 {
    let s = s.trim();
    if let Some(v) = s.strip_suffix("ms") {
        v.parse().unwrap_or(f64::NAN)
    } else if let Some(v) = s.strip_suffix("us") {
        v.parse::<f64>().unwrap_or(f64::NAN) / 1000.0
    } else if let Some(v) = s.strip_suffix('s') {
        v.parse::<f64>().unwrap_or(f64::NAN) * 1000.0
    } else if let Some(v) = s.strip_suffix('m') {
        v.parse::<f64>().unwrap_or(f64::NAN) * 60_000.0
    } else {
        f64::NAN
    }
}

fn run_wrk(base: &str, body: &[u8], content_type: &str, connections: u32, secs: u32) -> WrkResult {
    let dir = tempfile::tempdir().unwrap();
    let body_path = dir.path().join("body.bin");
    std::fs::write(&body_path, body).unwrap();
    let script = dir.path().join("append.lua");
    std::fs::write(
        &script,
        format!(
            "local f = assert(io.open(\"{}\", \"rb\"))\nwrk.method = \"POST\"\nwrk.body = f:read(\"*a\")\nf:close()\nwrk.headers[\"Content-Type\"] = \"{content_type}\"\n\
             function response(status, headers, body)\n  if status ~= 200 then io.stderr:write(\"status \" .. status .. \"\\n\") end\nend\n",
            body_path.display()
        ),
    )
    .unwrap();
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--timeout",
            "10s",
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(format!("{base}/api/v1/log/append"))
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut r = WrkResult {
        requests_per_sec: 0.0,
        p50_ms: f64::NAN,
        p99_ms: f64::NAN,
        max_ms: f64::NAN,
        errors: "none".into(),
    };
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.requests_per_sec = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_ms = parse_ms(v);
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_ms = parse_ms(v);
        } else if t.starts_with("Latency") && !t.starts_with("Latency Distribution") {
            // "Latency   avg   stdev   max   +/- stdev"
            let parts: Vec<&str> = t.split_whitespace().collect();
            if parts.len() >= 4 {
                r.max_ms = parse_ms(parts[3]);
            }
        } else if t.starts_with("Socket errors") || t.starts_with("Non-2xx") {
            r.errors = t.to_string();
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let bad = stderr.lines().filter(|l| l.starts_with("status")).count();
    if bad > 0 {
        r.errors = format!("{} non-200 responses; {}", bad, r.errors);
    }
    r
}

async fn sse_latency(base: &str, n: usize) -> (f64, f64, f64) {
    let client = reqwest::Client::new();
    let mut stream = client
        .get(format!("{base}/api/v1/log/stream?key=sse"))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let origin = Instant::now();
    let sender = {
        let client = client.clone();
        let base = base.to_string();
        tokio::spawn(async move {
            for _ in 0..n {
                let sent = origin.elapsed().as_micros() as u64;
                let value = base64::engine::general_purpose::STANDARD.encode(sent.to_string());
                client
                    .post(format!("{base}/api/v1/log/append"))
                    .json(&serde_json::json!({"records": [{"key": "c3Nl", "value": value}]}))
                    .send()
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut lat = Vec::new();
    let mut pending = String::new();
    while lat.len() < n {
        let chunk = stream.chunk().await.unwrap().unwrap();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(pos) = pending.find("\n\n") {
            let event: String = pending.drain(..pos + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: serde_json::Value = serde_json::from_str(data).unwrap();
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(v["value"].as_str().unwrap())
                    .unwrap();
                let sent: u64 = String::from_utf8(raw).unwrap().parse().unwrap();
                lat.push((origin.elapsed().as_micros() as u64 - sent) as f64 / 1000.0);
            }
        }
    }
    sender.await.unwrap();
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.99), *lat.last().unwrap())
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let have_wrk = Command::new("wrk").arg("--version").output().is_ok();
    println!(
        "# opendata log HTTP benchmarks ({})",
        if full { "full" } else { "smoke" }
    );
    if have_wrk {
        println!(
            "\n## Appends over HTTP: 100 records x 256 B per request, 32 connections, wrk -t2 on the same machine\n"
        );
        println!("| body | requests/s | records/s | p50 ms | p99 ms | max ms | errors |");
        println!("|---|---|---|---|---|---|---|");
        let req = request(100, 256);
        for (name, content_type, body) in [
            (
                "application/protobuf+json",
                "application/protobuf+json",
                req.to_protobuf_json(),
            ),
            (
                "application/protobuf",
                "application/protobuf",
                req.to_protobuf(),
            ),
        ] {
            let server = start_server();
            let (conns, secs) = if full { (32, 20) } else { (4, 1) };
            let r = run_wrk(&server.base, &body, content_type, conns, secs);
            println!(
                "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
                r.requests_per_sec,
                r.requests_per_sec * 100.0,
                r.p50_ms,
                r.p99_ms,
                r.max_ms,
                r.errors
            );
            assert!(r.requests_per_sec > 0.0, "wrk made no successful request");
        }
    } else if full {
        panic!("wrk is not installed: apt-get install wrk");
    } else {
        println!("\n(wrk not installed: HTTP load part skipped in smoke mode)");
    }
    let server = start_server();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (p50, p99, max) = rt.block_on(sse_latency(&server.base, if full { 400 } else { 10 }));
    println!("\n## Server-Sent Events: append acknowledged (durable) to event received\n");
    println!("| p50 ms | p99 ms | max ms |");
    println!("|---|---|---|");
    println!("| {p50:.2} | {p99:.2} | {max:.2} |");
}
