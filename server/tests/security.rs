//! Access control and the listener, against the real binary: bearer tokens with scopes
//! (from curl-like clients, the command line and a real Prometheus's remote write), TLS,
//! the loud warning for an unauthenticated server beyond loopback, per-route body
//! limits, the connection limit and the idle timeout.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opendata_testing::process::{KillOnDrop, free_port, prometheus_binary};
use serde_json::{Value, json};
use support::{ServerProcess, TestClient};

const READER: &str = "reader-token-0123456789";
const WRITER: &str = "writer-token-0123456789";
const ADMIN: &str = "admin-token-01234567890";

fn auth_config(dir: &Path, extra: &str) -> String {
    let path = dir.join("auth.toml");
    std::fs::write(
        &path,
        format!(
            r#"{extra}
[[auth.tokens]]
name = "reader"
token = "{READER}"
scopes = ["*:read"]

[[auth.tokens]]
name = "writer"
token = "{WRITER}"
scopes = ["log:write", "timeseries:write", "vector:write"]

[[auth.tokens]]
name = "admin"
token = "{ADMIN}"
scopes = ["*:admin"]
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Sends a request with an optional bearer token; the status and the JSON answer.
async fn call(
    api: &TestClient,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut req = api.http().request(method, api.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        challenge,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_need_a_token_with_the_right_scope() {
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), "");
    let server = ServerProcess::start(
        &["--config", &config, "--object-store", "memory://"],
        &dir.path().join("server.log"),
    )
    .await;
    let api = TestClient::new(server.base.clone());
    use reqwest::Method;
    let append = json!({"records": [{"key": "aw==", "value": "dg=="}]});

    // No token, or a wrong one: 401 with a challenge; health and readiness stay open.
    for token in [None, Some("not-a-token-at-all-xxxx")] {
        let (status, v, challenge) =
            call(&api, Method::GET, "/api/v1/query?query=1", token, None).await;
        assert_eq!(status, 401, "{v}");
        assert_eq!(v["errorType"], "unauthorized", "{v}");
        assert_eq!(challenge.as_deref(), Some("Bearer realm=\"opendata\""));
    }
    for path in ["/-/healthy", "/-/ready"] {
        assert_eq!(call(&api, Method::GET, path, None, None).await.0, 200);
    }
    assert_eq!(call(&api, Method::GET, "/metrics", None, None).await.0, 401);
    assert_eq!(
        call(&api, Method::GET, "/metrics", Some(READER), None)
            .await
            .0,
        200
    );

    // The reader reads everything and writes nothing.
    let (status, v, _) = call(
        &api,
        Method::POST,
        "/api/v1/log/append",
        Some(READER),
        Some(append.clone()),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("log:write"), "{v}");
    let (status, v, _) = call(
        &api,
        Method::POST,
        "/api/v1/log/append",
        Some(WRITER),
        Some(append),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v, _) = call(
        &api,
        Method::GET,
        "/api/v1/log/scan?key_base64=aw==",
        Some(READER),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);

    // Creating a collection is admin; upserting is write; searching is read.
    let spec = json!({"name": "c", "dimension": 2});
    let (status, _, _) = call(
        &api,
        Method::POST,
        "/api/v1/vector/collections",
        Some(WRITER),
        Some(spec.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, v, _) = call(
        &api,
        Method::POST,
        "/api/v1/vector/collections",
        Some(ADMIN),
        Some(spec),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let upsert = json!({"vectors": [{"id": "a", "vector": [1, 0]}]});
    let path = "/api/v1/vector/collections/c/upsert";
    assert_eq!(
        call(&api, Method::POST, path, Some(READER), Some(upsert.clone()))
            .await
            .0,
        403
    );
    assert_eq!(
        call(&api, Method::POST, path, Some(WRITER), Some(upsert))
            .await
            .0,
        200
    );
    let (status, v, _) = call(
        &api,
        Method::POST,
        "/api/v1/vector/collections/c/search",
        Some(READER),
        Some(json!({"vector": [1, 0], "k": 1})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["hits"][0]["id"], "a");
    assert_eq!(
        call(
            &api,
            Method::DELETE,
            "/api/v1/vector/collections/c",
            Some(WRITER),
            None
        )
        .await
        .0,
        403
    );

    // The command line sends its token.
    let bin = opendata_testing::process::binary();
    let out = Command::new(&bin)
        .args(["log", "append", "--key", "cli", "--value", "one"])
        .args(["--server", &server.base])
        .env("OPENDATA_TOKEN", WRITER)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&bin)
        .args(["log", "scan", "--key", "cli", "--server", &server.base])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a scan without a token must fail");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&bin)
        .args(["log", "scan", "--key", "cli", "--server", &server.base])
        .args(["--token", READER])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("one"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_take_remote_write_from_prometheus_with_its_token() {
    let Some(prometheus) = prometheus_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = auth_config(dir.path(), "");
    let server = ServerProcess::start(
        &["--config", &config, "--object-store", "memory://"],
        &dir.path().join("server.log"),
    )
    .await;
    let prom_port = free_port();
    let prom_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            r#"
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{prom_port}"]
remote_write:
  - url: {}/api/v1/write
    authorization:
      credentials: {WRITER}
    queue_config:
      batch_send_deadline: 1s
"#,
            server.base
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = KillOnDrop(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", prom_config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let api = TestClient::new(server.base.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, v, _) = call(
            &api,
            reqwest::Method::GET,
            "/api/v1/series?match[]=up",
            Some(READER),
            None,
        )
        .await;
        assert_eq!(status, 200, "{v}");
        if v["data"].as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(v["data"][0]["job"], "prometheus");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no remote write arrived; prometheus log:\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_tls_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl could not make a certificate");
    let config = dir.path().join("tls.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
    let _server = KillOnDrop(
        Command::new(opendata_testing::process::binary())
            .args(["serve", "--object-store", "memory://", "--config"])
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let https = format!("https://127.0.0.1:{port}/-/healthy");
    let deadline = Instant::now() + Duration::from_secs(60);
    let body = loop {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&cert)
            .arg(&https)
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(body, "OpenData is Healthy.\n");
    // Plain HTTP on a TLS port gets no answer.
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/-/healthy"),
        ])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("Healthy"),
        "plain HTTP was answered"
    );
    // A certificate the client does not trust is refused.
    let out = Command::new("curl").args(["-sS", &https]).output().unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_warn_when_listening_beyond_loopback_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let _server = KillOnDrop(
        Command::new(opendata_testing::process::binary())
            .args(["serve", "--object-store", "memory://"])
            .args(["--listen", &format!("0.0.0.0:{port}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("opendata is serving") {
            assert!(text.contains("WITHOUT AUTHENTICATION"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_limit_connections_bodies_and_idle_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("http.toml");
    std::fs::write(
        &config,
        "[http]\nmax_connections = 1\nidle_timeout_secs = 1\nmax_query_body_bytes = 4096\n",
    )
    .unwrap();
    let config = config.display().to_string();
    let server = ServerProcess::start(
        &["--config", &config, "--object-store", "memory://"],
        &dir.path().join("server.log"),
    )
    .await;
    let addr = format!("127.0.0.1:{}", server.port);

    // An idle connection is closed after the idle timeout.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!(idle.read(&mut buf).unwrap_or(0), 0, "the server closes it");
    assert!(started.elapsed() < Duration::from_secs(8));

    // While one connection is open, a second is not served; once it closes, it is.
    let mut first = TcpStream::connect(&addr).unwrap();
    first
        .write_all(b"GET /-/healthy HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = first.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut second = TcpStream::connect(&addr).unwrap();
    second
        .write_all(b"GET /-/healthy HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        second.read(&mut buf).is_err(),
        "the second connection was served while the first was open"
    );
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = second.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    // Query routes take small bodies only; the log takes large ones.
    let api = TestClient::new(server.base.clone());
    let big = "a".repeat(8192);
    let r = api
        .http()
        .post(api.url("/api/v1/query"))
        .form(&[("query", big.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let (status, v) = api
        .post_json(
            "/api/v1/log/append",
            &json!({"records": [{"key": "aw==", "value": base64_of(&big)}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
