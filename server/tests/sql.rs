//! SQL over the PostgreSQL wire protocol, with real clients: `psql` and the psycopg
//! driver against the real binary; acknowledged `INSERT`s survive SIGKILL; a read-only
//! replica answers queries and refuses writes; TLS with `sslmode=require`.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use opendata_testing::process::{psql_binary, psycopg_python};
use serde_json::json;
use support::{ServerProcess, TestClient, b64, free_port};

const RW: &str = "sql-test-read-write-token";
const RO: &str = "sql-test-read-only-token-1";

/// A configuration with the SQL listener on `sql_port`, two tokens, and a small
/// statement memory limit.
fn config(dir: &Path, sql_port: u16, extra: &str) -> String {
    let path = dir.join("opendata.toml");
    std::fs::write(
        &path,
        format!(
            "[sql]\nlisten = \"127.0.0.1:{sql_port}\"\nmax_query_memory_bytes = 1048576\n\
             {extra}\n\
             [[auth.tokens]]\nname = \"rw\"\ntoken = \"{RW}\"\nscopes = [\"*:admin\"]\n\
             [[auth.tokens]]\nname = \"ro\"\ntoken = \"{RO}\"\nscopes = [\"*:read\"]\n"
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// Runs `psql` with `sql` against `port` (as the read-write token unless `password`),
/// with verbose errors (SQLSTATE in the message).
fn psql(binary: &str, port: u16, password: &str, sslmode: &str, sql: &str) -> Output {
    Command::new(binary)
        .arg(format!(
            "host=127.0.0.1 port={port} user=tester dbname=opendata sslmode={sslmode} connect_timeout=10"
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "psql failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

async fn append(api: &TestClient, token: &str, key: &str, values: &[String]) {
    let records: Vec<_> = values
        .iter()
        .map(|v| json!({"key": b64(key), "value": b64(v)}))
        .collect();
    let r = api
        .http()
        .post(api.url("/api/v1/log/append"))
        .bearer_auth(token)
        .header("content-type", "application/protobuf+json")
        .body(json!({"records": records, "awaitDurable": true}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn write_samples(api: &TestClient, token: &str) {
    let now = opendata_testing::now_ms();
    let body = support::remote_write_v1(
        "requests_total",
        "job",
        ["api", "db"].map(String::from),
        10,
        now - 60_000,
        5_000,
    );
    let r = api
        .http()
        .post(api.url("/api/v1/write"))
        .bearer_auth(token)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_psql_and_psycopg() {
    let Some(psql_bin) = psql_binary() else {
        return;
    };
    let Some(python) = psycopg_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sql_port = free_port();
    let cfg = config(dir.path(), sql_port, "");
    let server = ServerProcess::start(
        &["--object-store", "memory://", "--config", &cfg],
        &dir.path().join("server.log"),
    )
    .await;
    let api = TestClient::new(&server.base);
    append(
        &api,
        RW,
        "orders",
        &(0..100).map(|i| format!("order-{i}")).collect::<Vec<_>>(),
    )
    .await;
    append(
        &api,
        RW,
        "events",
        &(0..20).map(|i| format!("event-{i}")).collect::<Vec<_>>(),
    )
    .await;
    write_samples(&api, RW).await;
    let vectors = |body: serde_json::Value, path: &str| {
        api.http()
            .post(api.url(&format!("/api/v1/vector/collections{path}")))
            .bearer_auth(RW)
            .json(&body)
            .send()
    };
    let r = vectors(
        json!({"name": "docs", "dimension": 4, "metric": "l2",
               "attributes": {"color": "string", "size": "integer"}}),
        "",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let r = vectors(
        json!({"vectors": [
            {"id": "a", "vector": [1.0, 0.0, 0.0, 0.0], "attributes": {"color": "red", "size": 1}},
            {"id": "b", "vector": [0.0, 1.0, 0.0, 0.0], "attributes": {"color": "blue", "size": 2}},
            {"id": "c", "vector": [0.9, 0.1, 0.0, 0.0], "attributes": {"color": "red", "size": 3}},
            {"id": "d", "vector": [0.0, 0.0, 0.0, 1.0], "attributes": {"color": "green", "size": 4}}
        ]}),
        "/docs/upsert",
    )
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    // psql: a query, an insert, an error with its SQLSTATE.
    let out = psql(
        &psql_bin,
        sql_port,
        RW,
        "disable",
        "SELECT key, count(*) FROM log.entries GROUP BY key ORDER BY key",
    );
    assert_eq!(stdout(&out), "events|20\norders|100");
    let out = psql(
        &psql_bin,
        sql_port,
        RW,
        "disable",
        "INSERT INTO log.entries (key, value) VALUES ('psql', 'from psql')",
    );
    assert_eq!(stdout(&out), "INSERT 0 1");
    // psql's catalog queries: \dt, \d, \dn.
    let out = psql(&psql_bin, sql_port, RO, "disable", "\\dt log.*");
    assert_eq!(
        stdout(&out),
        "log|entries|table|postgres\nlog|keys|table|postgres"
    );
    let out = psql(&psql_bin, sql_port, RO, "disable", "\\d timeseries.samples");
    let text = stdout(&out);
    for column in [
        "metric|text",
        "timestamp|timestamp with time zone",
        "value|double precision",
    ] {
        assert!(text.contains(column), "{column}: {text}");
    }
    let out = psql(&psql_bin, sql_port, RO, "disable", "\\dn");
    let text = stdout(&out);
    assert!(text.contains("vector|"), "{text}");
    let out = psql(
        &psql_bin,
        sql_port,
        RW,
        "disable",
        "SELECT * FROM log.missing",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("42P01"), "{err}");
    let out = psql(
        &psql_bin,
        sql_port,
        "wrong-token-wrong-token",
        "disable",
        "SELECT 1",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("password authentication failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = psql(
        &psql_bin,
        sql_port,
        RO,
        "disable",
        "SELECT CAST(value AS VARCHAR) FROM log.entries WHERE key = 'psql'",
    );
    assert_eq!(stdout(&out), "from psql");

    // psycopg: parameters, prepared statements, binary results, session statements,
    // error codes, timeouts, cancel, memory limit, inserts and scopes.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sql_client.py");
    let out = Command::new(&python)
        .arg(&script)
        .args([&sql_port.to_string(), RW, RO])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "psycopg checks failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for check in [
        "group by",
        "parameters",
        "prepared statement",
        "binary results",
        "join and promql",
        "time ranges and joins by time",
        "vectors",
        "set and show",
        "error codes",
        "hostile statements",
        "statement timeout",
        "cancel",
        "memory limit",
        "insert",
        "scopes",
        "wrong token",
    ] {
        assert!(text.contains(&format!("ok {check}\n")), "{check}: {text}");
    }

    // The server is healthy after all that, and counted it.
    let metrics = api
        .http()
        .get(api.url("/metrics"))
        .bearer_auth(RO)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        opendata_testing::client::metric_value(&metrics, name)
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert!(value("opendata_sql_statements_total") >= 20.0);
    assert!(value("opendata_sql_errors_total") >= 8.0);
    assert!(value("opendata_sql_cancelled_total") >= 2.0);
    assert!(value("opendata_sql_rows_read_total") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_acknowledged_inserts_through_sigkill_and_serve_a_replica() {
    let Some(psql_bin) = psql_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let sql_port = free_port();
    let cfg = config(dir.path(), sql_port, "");
    let args = ["--object-store", data.as_str(), "--config", cfg.as_str()];
    let server = ServerProcess::start(&args, &dir.path().join("server.log")).await;
    for i in 0..20 {
        let out = psql(
            &psql_bin,
            sql_port,
            RW,
            "disable",
            &format!(
                "INSERT INTO log.entries (key, value) VALUES ('durable', 'v{i}'), ('durable', 'w{i}')"
            ),
        );
        assert_eq!(stdout(&out), "INSERT 0 2");
    }
    // SIGKILL right after the last acknowledgement: no graceful flush.
    server.kill();
    let server = ServerProcess::start(&args, &dir.path().join("server2.log")).await;
    let out = psql(
        &psql_bin,
        sql_port,
        RO,
        "disable",
        "SELECT count(*), count(DISTINCT value) FROM log.entries WHERE key = 'durable'",
    );
    assert_eq!(stdout(&out), "40|40");

    // A read-only replica on the same store: reads, and refuses writes with 25006.
    let replica_port = free_port();
    let replica_dir = tempfile::tempdir().unwrap();
    let replica_cfg = config(replica_dir.path(), replica_port, "");
    let replica = ServerProcess::start(
        &[
            "--object-store",
            &data,
            "--config",
            &replica_cfg,
            "--read-only",
        ],
        &replica_dir.path().join("replica.log"),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = psql(
            &psql_bin,
            replica_port,
            RO,
            "disable",
            "SELECT count(*) FROM log.entries WHERE key = 'durable'",
        );
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "40" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica never saw the rows: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = psql(
        &psql_bin,
        replica_port,
        RW,
        "disable",
        "INSERT INTO log.entries (key, value) VALUES ('durable', 'x')",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("25006"), "{err}");
    drop(replica);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_sql_over_tls() {
    let Some(psql_bin) = psql_binary() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl could not make a certificate");
    let sql_port = free_port();
    let cfg = config(
        dir.path(),
        sql_port,
        &format!(
            "require_tls = true\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    // The HTTP listener is TLS too, so wait for health over TLS ourselves.
    let port = free_port();
    let log = dir.path().join("server.log");
    let mut child = Command::new(opendata_testing::process::binary())
        .args(["serve", "--object-store", "memory://", "--config", &cfg])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        let out = psql(&psql_bin, sql_port, RW, "require", "SELECT 41 + 1");
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        stdout(&out),
        "42",
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    // With sql.require_tls, a client without TLS is refused before it sends a token.
    let out = psql(&psql_bin, sql_port, RW, "disable", "SELECT 'plain'");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sql.require_tls"), "{err}");
    let _ = child.kill();
    let _ = child.wait();
}
