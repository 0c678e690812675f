//! Hostile input against the real binary: every answer is a clear 4xx (or a bounded,
//! successful answer), the process stays up and healthy, and stored data is unchanged.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{ServerProcess, TestClient, memory_server, urlencode};

/// `/-/healthy` answers, and quickly.
async fn assert_healthy(api: &TestClient) {
    let started = Instant::now();
    let r = api.http().get(api.url("/-/healthy")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "health took {:?}",
        started.elapsed()
    );
}

fn assert_error(what: &str, (status, body): &(u16, Value), want: u16, needle: &str) {
    assert_eq!(*status, want, "{what}: {body}");
    assert_eq!(body["status"], "error", "{what}: {body}");
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_deeply_nested_and_endless_promql_and_stay_up() {
    let (_dir, server) = memory_server(&[]).await;
    let api = TestClient::new(server.base.clone());
    let deep = format!("{}up{}", "abs(".repeat(1500), ")".repeat(1500));
    let long = vec!["1"; 2000].join("+");
    for (what, query) in [("1,500 nested calls", &deep), ("2,000 terms", &long)] {
        for path in [
            "/api/v1/query",
            "/api/v1/format_query",
            "/api/v1/parse_query",
            "/api/v1/query_exemplars",
        ] {
            let r = api.post_form(path, &[("query", query.as_str())]).await;
            assert_error(&format!("{what} at {path}"), &r, 400, "max_query_depth");
        }
        let r = api
            .post_form(
                "/api/v1/query_range",
                &[
                    ("query", query.as_str()),
                    ("start", "0"),
                    ("end", "60"),
                    ("step", "15"),
                ],
            )
            .await;
        assert_error(what, &r, 400, "max_query_depth");
        let r = api
            .post_form("/api/v1/series", &[("match[]", query.as_str())])
            .await;
        assert_error(what, &r, 400, "levels deep");
        assert_healthy(&api).await;
    }
    // A query just under the limits still runs.
    let ok = format!("{}vector(1){}", "abs(".repeat(400), ")".repeat(400));
    let (status, body) = api.post_form("/api/v1/query", &[("query", &ok)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["result"][0]["value"][1], "1");
    // Subqueries that would hold billions of steps are refused before they start.
    for query in [
        "vector(1)[100000d:1ms]",
        "max_over_time(vector(1)[3000d:1s])",
    ] {
        let started = Instant::now();
        let r = api.post_form("/api/v1/query", &[("query", query)]).await;
        assert_error(query, &r, 422, "max_points_per_series");
        assert!(started.elapsed() < Duration::from_secs(5), "{query}");
        assert_healthy(&api).await;
    }
    let r = api
        .post_form(
            "/api/v1/query",
            &[("query", &"a".repeat(300 * 1024) as &str)],
        )
        .await;
    assert_error("a 300 KiB query", &r, 400, "max_query_bytes");
    assert_healthy(&api).await;
    let r = api.get_json("/api/v1/query?query=1%2B1").await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["data"]["resultType"], "scalar");
    assert_eq!(r.1["data"]["result"][1], json!("2"));
}

/// A deterministic stream of bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// What the server holds in each database, to compare before and after the barrage.
async fn stored(api: &TestClient) -> (Value, Value, Value) {
    let (_, log) = api.get_json("/api/v1/log/count?key=orders").await;
    let (_, series) = api.get_json("/api/v1/series?match[]=up").await;
    let (_, vector) = api.get_json("/api/v1/vector/collections/docs").await;
    (
        log["count"].clone(),
        series["data"].clone(),
        vector["data"]["vectors"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_every_route_4xx_for_garbage_and_keep_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(
        &["--object-store", "memory://", "--max-body-bytes", "1048576"],
        &dir.path().join("server.log"),
    )
    .await;
    let api = TestClient::new(server.base.clone());

    // Something in each database.
    let (status, v) = api
        .post_json(
            "/api/v1/log/append",
            &json!({"records": [{"key": "b3JkZXJz", "value": "MQ=="}, {"key": "b3JkZXJz", "value": "Mg=="}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
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
    assert_eq!(
        api.remote_write(body, "application/x-protobuf").await.0,
        204
    );
    let (status, v) = api
        .post_json(
            "/api/v1/vector/collections",
            &json!({"name": "docs", "dimension": 2, "attributes": {"color": "string"}}),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = api
        .post_json(
            "/api/v1/vector/collections/docs/upsert",
            &json!({"vectors": [{"id": "a", "vector": [1, 0]}, {"id": "b", "vector": [0, 1]}]}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let before = stored(&api).await;
    assert_eq!(before.0, json!("2"));
    assert_eq!(before.2, json!(2));

    // Every route that takes a body, with every kind of garbage body.
    let post_routes = [
        "/api/v1/log/append",
        "/api/v1/write",
        "/api/v1/series",
        "/api/v1/labels",
        "/api/v1/label/job/values",
        "/api/v1/query",
        "/api/v1/query_range",
        "/api/v1/format_query",
        "/api/v1/parse_query",
        "/api/v1/query_exemplars",
        "/api/v1/vector/collections",
        "/api/v1/vector/collections/docs/upsert",
        "/api/v1/vector/collections/docs/patch",
        "/api/v1/vector/collections/docs/delete",
        "/api/v1/vector/collections/docs/get",
        "/api/v1/vector/collections/docs/search",
        "/api/v1/vector/collections/docs/search/batch",
        // Routes that take no body: the console's files and the server status.
        "/",
        "/console/app.js",
        "/api/v1/server/status",
    ];
    let takes_no_body =
        |path: &str| matches!(path, "/" | "/console/app.js" | "/api/v1/server/status");
    let deep_json = "[".repeat(100_000).into_bytes();
    let huge_string = format!("{{\"name\":\"{}\"}}", "a".repeat(900_000)).into_bytes();
    let too_big = vec![b'{'; 2 * 1024 * 1024];
    let mut bodies: Vec<(&str, Vec<u8>)> = Vec::new();
    for (i, len) in [1usize, 17, 1000, 100_000].into_iter().enumerate() {
        for ct in [
            "application/json",
            "application/protobuf",
            "application/protobuf+json",
            "application/x-protobuf",
            "application/x-www-form-urlencoded",
        ] {
            bodies.push((ct, noise(i as u64 * 31 + ct.len() as u64, len)));
        }
    }
    bodies.push(("application/json", deep_json.clone()));
    bodies.push(("application/json", huge_string.clone()));
    bodies.push(("application/json", too_big.clone()));
    bodies.push(("image/png", b"{}".to_vec()));
    bodies.push((
        "application/json",
        b"{\"vector\":[1e999,0],\"k\":-1}".to_vec(),
    ));
    bodies.push((
        "application/json",
        b"{\"vectors\":[{\"id\":\"z\",\"vector\":[NaN,Infinity]}]}".to_vec(),
    ));
    for path in post_routes {
        for (ct, body) in &bodies {
            let headers = [("content-type", *ct), ("content-encoding", "snappy")];
            let headers: &[(&str, &str)] = if path == "/api/v1/write" {
                &headers
            } else {
                &headers[..1]
            };
            // A body over the limit is refused before it is read and its connection
            // closed, and so is one sent to a route that takes none (HTTP lets a server
            // close a connection rather than read a body it does not want; a pooled
            // connection would race that close): send those on a connection of their own.
            let unread = body.len() > 1 << 20 || takes_no_body(path);
            let client = if unread {
                TestClient::new(server.base.clone())
            } else {
                api.clone()
            };
            match client.post_bytes(path, headers, body.clone()).await {
                Ok((status, answer)) => assert!(
                    (400..500).contains(&status)
                        || (status == 200 && !path.contains("vector") && !path.contains("log")),
                    "{path} with {} bytes of {ct}: {status} {}",
                    body.len(),
                    String::from_utf8_lossy(&answer[..answer.len().min(300)])
                ),
                // A refused body may close the connection before all of it is sent.
                Err(e) => assert!(unread, "{path} with {ct}: {e}"),
            }
        }
        assert_healthy(&api).await;
    }

    // Every route that takes parameters, with absurd ones.
    let big = "9".repeat(10_000);
    let regex_bomb = format!("{{__name__=~\"{}\"}}", "(a|aa)*".repeat(1_000));
    let huge_regex = "{__name__=~\"a{1000}{1000}\"}".to_string();
    let params: Vec<String> = vec![
        format!("/api/v1/log/scan?key=orders&start_seq={big}"),
        "/api/v1/log/scan?key=orders&start_seq=-1".into(),
        "/api/v1/log/scan?key=orders&limit=0".into(),
        "/api/v1/log/scan?key=orders&limit=100000000".into(),
        "/api/v1/log/scan?key_base64=%%%".into(),
        "/api/v1/log/stream?key=orders&start_seq=NaN".into(),
        "/api/v1/log/count?key=orders&end_seq=1&start_seq=9".into(),
        "/api/v1/log/keys?limit=-5".into(),
        "/api/v1/log/segments?bogus=1".into(),
        format!("/api/v1/query?query=up&time={big}"),
        "/api/v1/query?query=up&time=NaN".into(),
        "/api/v1/query?query=up&timeout=-1s".into(),
        "/api/v1/query_range?query=up&start=0&end=1e300&step=1".into(),
        "/api/v1/query_range?query=up&start=0&end=100&step=0".into(),
        "/api/v1/query_range?query=up&start=0&end=100000000&step=1".into(),
        format!("/api/v1/series?match[]={}", urlencode(&regex_bomb)),
        format!("/api/v1/series?match[]={}", urlencode(&huge_regex)),
        // A range whose duration overflows (the parser panics on it; found by fuzzing).
        format!(
            "/api/v1/query?query={}",
            urlencode("up[111111111111111111111158]")
        ),
        format!(
            "/api/v1/format_query?query={}",
            urlencode("up[111111111111111111111158]")
        ),
        "/api/v1/series?match[]=up&start=Inf".into(),
        "/api/v1/labels?limit=-1".into(),
        "/api/v1/label/%FF/values".into(),
        "/api/v1/metadata?limit=NaN".into(),
        "/api/v1/query_exemplars?query=up&start=NaN".into(),
        format!("/api/v1/query_exemplars?query={}", urlencode(&regex_bomb)),
        format!("/api/v1/vector/collections/{}", "x".repeat(10_000)),
        "/api/v1/vector/collections/docs/vectors/".into(),
        format!(
            "/api/v1/vector/collections/docs/vectors/{}",
            "i".repeat(10_000)
        ),
    ];
    // A key longer than any stored one has no entries: a bounded, successful answer.
    let long_key = format!("/api/v1/log/scan?key={}", "k".repeat(20_000));
    let (status, v) = api.get_json(&long_key).await;
    assert_eq!(status, 200);
    assert_eq!(v["entries"], json!([]));
    for path in &params {
        let r = api.http().get(api.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(
            (400..500).contains(&status),
            "{}: {status} {}",
            &path[..path.len().min(120)],
            &text[..text.len().min(300)]
        );
        assert_healthy(&api).await;
    }

    // Nothing stored changed.
    assert_eq!(stored(&api).await, before);
}

fn remote_write_body(series: std::ops::Range<usize>, samples: i64, t0: i64) -> Vec<u8> {
    support::remote_write_v1(
        "m_total",
        "i",
        series.map(|i| i.to_string()),
        samples,
        t0,
        15_000,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_refuse_work_past_the_memory_budget_and_stay_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("budget.toml");
    std::fs::write(&config, "[limits]\nmemory_budget_bytes = 300000\n").unwrap();
    let config = config.display().to_string();
    let server = ServerProcess::start(
        &["--config", &config, "--object-store", "memory://"],
        &dir.path().join("server.log"),
    )
    .await;
    let api = TestClient::new(server.base.clone());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let t0 = now - 3_590_000;
    // 100 series × 240 samples (an hour every 15 s), ten series to a write: each decodes
    // to well within the budget.
    for chunk in 0..10 {
        let body = remote_write_body(chunk * 10..chunk * 10 + 10, 240, t0);
        let (status, text) = api.remote_write(body, "application/x-protobuf").await;
        assert_eq!(status, 204, "chunk {chunk}: {text}");
    }
    // One write of 20,000 series decodes to more than the budget: refused, retryable.
    let body = remote_write_body(1000..21_000, 1, now);
    let r = api
        .http()
        .post(api.url("/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    let text = r.text().await.unwrap();
    assert!(text.contains("memory budget"), "{text}");

    // A query that alone holds more than the budget (the whole hour: 24,000 samples)
    // is refused with Prometheus's execution error; a small one runs.
    let end = (t0 + 3_585_000) / 1000;
    let r = api
        .post_form(
            "/api/v1/query_range",
            &[
                ("query", "sum(m_total)"),
                ("start", &(t0 / 1000).to_string()),
                ("end", &end.to_string()),
                ("step", "15"),
            ],
        )
        .await;
    assert_error("a query past the budget", &r, 422, "memory budget");
    let (status, v) = api
        .post_form(
            "/api/v1/query",
            &[("query", "count(m_total)"), ("time", &end.to_string())],
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["result"][0]["value"][1], "100", "{v}");

    let metrics = api.metrics().await;
    let value = |series: &str| opendata_testing::metric_value(&metrics, series);
    assert_eq!(
        value("opendata_memory_budget_bytes"),
        Some(300000.0),
        "{metrics}"
    );
    assert_eq!(
        value("opendata_memory_budget_used_bytes"),
        Some(0.0),
        "what finished requests held was returned"
    );
    let refused = value("opendata_memory_budget_refused_total").unwrap();
    assert!(refused >= 2.0, "{refused}");
    assert_healthy(&api).await;
}

/// A PostgreSQL startup message (protocol 3.0) for `user` on database `opendata`.
fn pg_startup(user: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", "opendata")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut m = (body.len() as u32 + 4).to_be_bytes().to_vec();
    m.extend(body);
    m
}

/// A typed frontend message.
fn pg_message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Reads backend messages until `ReadyForQuery` ('Z') or the connection closes,
/// within 10 s: the messages' types, and the SQLSTATEs of the errors among them.
async fn pg_read(stream: &mut tokio::net::TcpStream) -> (Vec<u8>, Vec<String>, bool) {
    use tokio::io::AsyncReadExt;
    let mut kinds = Vec::new();
    let mut codes = Vec::new();
    let read = async {
        loop {
            let mut header = [0u8; 5];
            if stream.read_exact(&mut header).await.is_err() {
                return true;
            }
            let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            if stream.read_exact(&mut body).await.is_err() {
                return true;
            }
            kinds.push(header[0]);
            if header[0] == b'E' {
                for field in body.split(|b| *b == 0) {
                    if let Some(code) = field.strip_prefix(b"C") {
                        codes.push(String::from_utf8_lossy(code).into_owned());
                    }
                }
            }
            if header[0] == b'Z' {
                return false;
            }
        }
    };
    let closed = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the SQL port answers within 10 s");
    (kinds, codes, closed)
}

/// A logged-in raw connection to the SQL port.
async fn pg_login(port: u16) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(&pg_startup("hostile")).await.unwrap();
    let (kinds, codes, closed) = pg_read(&mut s).await;
    assert!(!closed && codes.is_empty(), "login: {kinds:?} {codes:?}");
    assert_eq!(kinds.first(), Some(&b'R'), "{kinds:?}");
    s
}

/// `SELECT 1` on a fresh connection answers a row.
async fn assert_sql_answers(port: u16) {
    use tokio::io::AsyncWriteExt;
    let mut s = pg_login(port).await;
    s.write_all(&pg_message(b'Q', b"SELECT 1\0")).await.unwrap();
    let (kinds, codes, _) = pg_read(&mut s).await;
    assert!(codes.is_empty(), "{codes:?}");
    assert!(kinds.contains(&b'D'), "no data row: {kinds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_survive_garbage_on_the_sql_port_and_bound_what_a_client_sends() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let cfg = dir.path().join("opendata.toml");
    std::fs::write(
        &cfg,
        format!(
            "[sql]\nlisten = \"127.0.0.1:{port}\"\nmax_statement_bytes = 65536\n\
             max_message_bytes = 100000\nidle_session_timeout_secs = 2\n"
        ),
    )
    .unwrap();
    let cfg = cfg.to_string_lossy().into_owned();
    let server = ServerProcess::start(
        &["--object-store", "memory://", "--config", &cfg],
        &dir.path().join("server.log"),
    )
    .await;
    let api = TestClient::new(server.base.clone());
    assert_sql_answers(port).await;

    // Noise instead of a startup message, of every size up to 64 KiB.
    for (seed, len) in [(1, 1), (2, 7), (3, 8), (4, 100), (5, 9_999), (6, 65_536)] {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let _ = s.write_all(&noise(seed, len)).await;
        let _ = s.shutdown().await;
        let _ = pg_read(&mut s).await;
    }
    // A startup message claiming 1 GiB is refused at its header.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
    s.write_all(&196_608u32.to_be_bytes()).await.unwrap();
    let (_, codes, closed) = pg_read(&mut s).await;
    assert!(closed, "{codes:?}");

    // After login: a query claiming 1 GiB gets 54000 and the connection closes,
    // without the server waiting for (or holding) the body.
    let mut s = pg_login(port).await;
    let mut header = vec![b'Q'];
    header.extend_from_slice(&(1u32 << 30).to_be_bytes());
    s.write_all(&header).await.unwrap();
    s.write_all(&[b'x'; 4096]).await.unwrap();
    let (_, codes, closed) = pg_read(&mut s).await;
    assert_eq!(codes, ["54000"]);
    assert!(closed);

    // A statement over max_statement_bytes but inside the message limit: 53200, and
    // the session goes on.
    let mut s = pg_login(port).await;
    let mut q = format!("SELECT '{}'", "y".repeat(70_000)).into_bytes();
    q.push(0);
    s.write_all(&pg_message(b'Q', &q)).await.unwrap();
    let (_, codes, closed) = pg_read(&mut s).await;
    assert_eq!(codes, ["53200"]);
    assert!(!closed);

    // Malformed messages on a logged-in session: an error or a close, never a crash.
    for m in [
        pg_message(b'Q', b"no terminator"),
        pg_message(b'B', b"\0nope\0\0\0\0\0\0\0"),
        pg_message(b'E', b"missing\0\0\0\0\0"),
        pg_message(b'P', &noise(7, 300)),
        pg_message(b'z', b"unknown type"),
        vec![b'Q', 0, 0, 0, 2],
        noise(8, 2_000),
    ] {
        let mut s = pg_login(port).await;
        s.write_all(&m).await.unwrap();
        s.write_all(&pg_message(b'S', b"")).await.unwrap();
        let _ = pg_read(&mut s).await;
    }

    // An idle session is closed after idle_session_timeout_secs with 57P05.
    let mut s = pg_login(port).await;
    let started = Instant::now();
    let (_, codes, closed) = pg_read(&mut s).await;
    assert_eq!(codes, ["57P05"]);
    assert!(closed && started.elapsed() >= Duration::from_millis(1900));

    assert_sql_answers(port).await;
    assert_healthy(&api).await;
    server.terminate();
}
