//! The Prometheus query API through the real `opendata` binary: parameter validation and
//! its messages, the JSON envelope, `format_query`, `parse_query`, exemplars, the small
//! endpoints Grafana calls, and queries over remote-written data, also through
//! `promtool` (Debian's `prometheus` package; in CI the test fails without it).

#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use opendata_server::api::timeseries::proto::v1;
use prost::Message;
use serde_json::{Value, json};
use support::{ServerProcess, TestClient};

use opendata_testing::now_ms;

fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

async fn start(dir: &tempfile::TempDir, config: Option<&str>) -> ServerProcess {
    let data = dir.path().join("data").display().to_string();
    let mut args = vec!["--object-store".to_string(), data];
    if let Some(text) = config {
        let path = dir.path().join("opendata.toml");
        std::fs::write(&path, text).unwrap();
        args.push("--config".into());
        args.push(path.display().to_string());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    ServerProcess::start(&argv, &dir.path().join("server.log")).await
}

/// A series to write: labels and (timestamp ms, value) samples.
type SeriesSpec = (Vec<(&'static str, &'static str)>, Vec<(i64, f64)>);

/// Remote-writes series given as (labels, samples).
async fn write(api: &TestClient, series: &[SeriesSpec]) {
    let req = v1::WriteRequest {
        timeseries: series
            .iter()
            .map(|(labels, samples)| v1::TimeSeries {
                histograms: vec![],
                exemplars: vec![],
                labels: labels
                    .iter()
                    .map(|(n, v)| v1::Label {
                        name: n.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                samples: samples
                    .iter()
                    .map(|&(t, v)| v1::Sample {
                        value: v,
                        timestamp: t,
                    })
                    .collect(),
            })
            .collect(),
        metadata: vec![],
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let (status, text) = api.remote_write(body, "application/x-protobuf").await;
    assert_eq!(status, 204, "{text}");
}

async fn get(api: &TestClient, path_and_query: &str) -> (u16, Value) {
    api.get_json(path_and_query).await
}

async fn post(api: &TestClient, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    api.post_form(path, form).await
}

/// Asserts a `bad_data` 400 whose message contains `needle`.
fn assert_bad_data(what: &str, (status, body): &(u16, Value), needle: &str) {
    assert_eq!(*status, 400, "{what}: {body}");
    assert_eq!(body["status"], "error", "{what}: {body}");
    assert_eq!(body["errorType"], "bad_data", "{what}: {body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains(needle),
        "{what}: message {msg:?} should contain {needle:?}"
    );
    assert_eq!(body.as_object().unwrap().len(), 3, "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_validate_query_parameters_like_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, None).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();

    let cases: Vec<(&str, String, &str)> = vec![
        ("no query", "/api/v1/query".into(), "invalid parameter \"query\": 1:1: parse error: no expression found in input"),
        ("empty query", "/api/v1/query?query=".into(), "invalid parameter \"query\""),
        ("syntax error", "/api/v1/query?query=sum(".into(), "invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"),
        ("syntax error, its position", "/api/v1/query?query=1%20%2B*%202".into(), "invalid parameter \"query\": 1:4: parse error: "),
        ("type error", "/api/v1/query?query=rate(up)".into(), "expected type range vector"),
        ("bad time", "/api/v1/query?query=up&time=yesterday".into(), "invalid parameter \"time\": cannot parse \"yesterday\" to a valid timestamp"),
        ("bad timeout", "/api/v1/query?query=up&timeout=soon".into(), "invalid parameter \"timeout\": cannot parse \"soon\" to a valid duration"),
        ("bad limit", "/api/v1/query?query=up&limit=-1".into(), "invalid parameter \"limit\""),
        ("bad lookback", "/api/v1/query?query=up&lookback_delta=5x".into(), "invalid parameter \"lookback_delta\""),
        ("no start", "/api/v1/query_range?query=up&end=10&step=1".into(), "invalid parameter \"start\": cannot parse \"\" to a valid timestamp"),
        ("no end", "/api/v1/query_range?query=up&start=10&step=1".into(), "invalid parameter \"end\""),
        ("end before start", "/api/v1/query_range?query=up&start=10&end=5&step=1".into(), "invalid parameter \"end\": end timestamp must not be before start time"),
        ("no step", "/api/v1/query_range?query=up&start=0&end=10".into(), "invalid parameter \"step\": cannot parse \"\" to a valid duration"),
        ("bad step", "/api/v1/query_range?query=up&start=0&end=10&step=often".into(), "invalid parameter \"step\": cannot parse \"often\" to a valid duration"),
        ("zero step", "/api/v1/query_range?query=up&start=0&end=10&step=0".into(), "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer"),
        ("negative step", "/api/v1/query_range?query=up&start=0&end=10&step=-15".into(), "zero or negative query resolution step widths are not accepted. Try a positive integer"),
        ("too many points", "/api/v1/query_range?query=up&start=0&end=11001&step=1".into(), "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"),
        ("too many points, duration step", "/api/v1/query_range?query=up&start=2015-07-01T20:10:30.781Z&end=2015-07-09T20:10:30.781Z&step=1m".into(), "exceeded maximum resolution of 11,000 points"),
        ("range parse error", "/api/v1/query_range?query=up{&start=0&end=10&step=1".into(), "invalid parameter \"query\": 1:4: parse error: unexpected end of input inside braces"),
    ];
    for (what, url, needle) in &cases {
        assert_bad_data(
            what,
            &get(&TestClient::with(&client, &base), url).await,
            needle,
        );
    }
    // The same through a form POST, and a body that is not a form.
    let r = post(
        &TestClient::with(&client, &base),
        "/api/v1/query_range",
        &[
            ("query", "up"),
            ("start", "10"),
            ("end", "5"),
            ("step", "1"),
        ],
    )
    .await;
    assert_bad_data(
        "POST end before start",
        &r,
        "end timestamp must not be before start time",
    );
    let r = post(
        &TestClient::with(&client, &base),
        "/api/v1/query",
        &[("query", "1 +")],
    )
    .await;
    assert_bad_data("POST syntax error", &r, "parse error");
    let r = client
        .post(format!("{base}/api/v1/query"))
        .header("content-type", "application/json")
        .body(r#"{"query":"up"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_format_and_parse_queries_and_answer_what_grafana_asks() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        &dir,
        Some("[timeseries.query]\nlookback_delta_ms = 60000\ntimeout_ms = 30000\n"),
    )
    .await;
    let client = reqwest::Client::new();
    let base = server.base.clone();

    // format_query, GET and POST.
    for (query, want) in [
        (
            r#"sum( up{job="prometheus"} )"#,
            r#"sum(up{job="prometheus"})"#,
        ),
        ("sum(rate(x[5m])) by (job)", "sum by (job) (rate(x[5m]))"),
        ("1+1", "1 + 1"),
        ("a+on(b)group_left(c)d", "a + on (b) group_left (c) d"),
        ("x offset 5m", "x offset 5m"),
    ] {
        let (status, body) = post(
            &TestClient::with(&client, &base),
            "/api/v1/format_query",
            &[("query", query)],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"status": "success", "data": want}));
    }
    let (status, body) = get(
        &TestClient::with(&client, &base),
        "/api/v1/format_query?query=foo%20%2F%20bar",
    )
    .await;
    assert_eq!((status, &body["data"]), (200, &json!("foo / bar")));
    // A query past 100 characters is split over lines.
    let long = format!(
        "sum by (job) (rate({}{{instance=\"{}\"}}[5m]))",
        "m".repeat(60),
        "i".repeat(40)
    );
    let (_, body) = post(
        &TestClient::with(&client, &base),
        "/api/v1/format_query",
        &[("query", &long)],
    )
    .await;
    let pretty = body["data"].as_str().unwrap();
    assert!(pretty.starts_with("sum by (job) (\n  rate("), "{pretty}");
    assert_bad_data(
        "format_query",
        &get(
            &TestClient::with(&client, &base),
            "/api/v1/format_query?query=sum(",
        )
        .await,
        "invalid parameter \"query\": 1:5: parse error",
    );

    // parse_query: the syntax tree.
    let (status, body) = get(
        &TestClient::with(&client, &base),
        "/api/v1/parse_query?query=up%7Bjob%3D%22a%22%7D",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"],
        json!({
            "type": "vectorSelector",
            "name": "up",
            "matchers": [
                {"name": "__name__", "type": "=", "value": "up"},
                {"name": "job", "type": "=", "value": "a"}
            ],
            "offset": 0,
            "timestamp": null,
            "startOrEnd": null
        })
    );
    let (_, body) = post(
        &TestClient::with(&client, &base),
        "/api/v1/parse_query",
        &[("query", "sum by (job) (rate(x[5m]))")],
    )
    .await;
    assert_eq!(body["data"]["type"], "aggregation");
    assert_eq!(body["data"]["grouping"], json!(["job"]));
    assert_eq!(body["data"]["expr"]["func"]["name"], "rate");
    assert_eq!(body["data"]["expr"]["args"][0]["range"], 300_000);
    assert_bad_data(
        "parse_query",
        &get(
            &TestClient::with(&client, &base),
            "/api/v1/parse_query?query=up%7B",
        )
        .await,
        "parse error",
    );

    // Exemplars: none for a series without them; `null` for a query without selectors.
    let (status, body) = get(
        &TestClient::with(&client, &base),
        "/api/v1/query_exemplars?query=up&start=0&end=10",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "success", "data": []}));
    let (_, body) = post(
        &TestClient::with(&client, &base),
        "/api/v1/query_exemplars",
        &[("query", "1+1")],
    )
    .await;
    assert_eq!(body["data"], Value::Null);
    assert_bad_data(
        "exemplars range",
        &get(
            &TestClient::with(&client, &base),
            "/api/v1/query_exemplars?query=up&start=10&end=5",
        )
        .await,
        "end timestamp must not be before start time",
    );
    assert_bad_data(
        "exemplars query",
        &get(
            &TestClient::with(&client, &base),
            "/api/v1/query_exemplars?query=up(",
        )
        .await,
        "invalid parameter \"query\"",
    );

    // The small endpoints: buildinfo (no "features": Grafana reads a plain Prometheus),
    // config, flags from [timeseries.query], runtime info, rules and alerts.
    let (status, body) = get(
        &TestClient::with(&client, &base),
        "/api/v1/status/buildinfo",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["data"]["version"].is_string());
    assert!(body["data"].get("features").is_none());
    let (_, body) = get(&TestClient::with(&client, &base), "/api/v1/status/config").await;
    assert!(body["data"]["yaml"].is_string());
    let (_, body) = get(&TestClient::with(&client, &base), "/api/v1/status/flags").await;
    assert_eq!(body["data"]["query.lookback-delta"], "1m");
    assert_eq!(body["data"]["query.timeout"], "30s");
    let (_, body) = get(
        &TestClient::with(&client, &base),
        "/api/v1/status/runtimeinfo",
    )
    .await;
    assert!(body["data"]["startTime"].as_str().unwrap().ends_with('Z'));
    let (_, body) = get(&TestClient::with(&client, &base), "/api/v1/rules").await;
    assert_eq!(body, json!({"status": "success", "data": {"groups": []}}));
    let (_, body) = get(&TestClient::with(&client, &base), "/api/v1/alerts").await;
    assert_eq!(body, json!({"status": "success", "data": {"alerts": []}}));

    // Grafana's browsing calls on an empty database: labels and series by POST, label
    // values and metadata by GET.
    let (status, body) = post(
        &TestClient::with(&client, &base),
        "/api/v1/labels",
        &[("start", "0"), ("end", "10")],
    )
    .await;
    assert_eq!((status, &body["data"]), (200, &json!([])));
    let (status, body) = post(
        &TestClient::with(&client, &base),
        "/api/v1/series",
        &[("match[]", "up"), ("start", "0"), ("end", "10")],
    )
    .await;
    assert_eq!((status, &body["data"]), (200, &json!([])));
    let (status, body) = get(
        &TestClient::with(&client, &base),
        "/api/v1/label/__name__/values?start=0&end=10",
    )
    .await;
    assert_eq!((status, &body["data"]), (200, &json!([])));
    let (status, body) = get(&TestClient::with(&client, &base), "/api/v1/metadata").await;
    assert_eq!((status, &body["data"]), (200, &json!({})));

    // Grafana's health check: the instant query 1+1 at t=4, as a form POST.
    {
        let (status, body) = post(
            &TestClient::with(&client, &base),
            "/api/v1/query",
            &[("query", "1+1"), ("time", "4")],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}})
        );
    }
    server.terminate();
}

/// Two series of a counter, 20 samples 15 s apart on whole seconds.
fn counter_series(t0: i64) -> Vec<SeriesSpec> {
    vec![
        (
            vec![("__name__", "m"), ("job", "a")],
            (0..20).map(|i| (t0 + i * 15_000, i as f64 * 1.5)).collect(),
        ),
        (
            vec![("__name__", "m"), ("job", "b")],
            (0..20).map(|i| (t0 + i * 15_000, 7.25)).collect(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_answer_queries_over_written_samples() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir, None).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let t0 = (now_ms() - 600_000) / 1000 * 1000;
    write(&TestClient::with(&client, &base), &counter_series(t0)).await;
    let t = |i: i64| t0 + i * 15_000;

    // Constant expressions.
    let (status, body) = get(
        &TestClient::with(&client, &base),
        "/api/v1/query?query=vector(1)&time=100",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"resultType": "vector", "result": [{"metric": {}, "value": [100, "1"]}]})
    );
    let (_, body) = get(
        &TestClient::with(&client, &base),
        "/api/v1/query?query=%22hi%22&time=1.5",
    )
    .await;
    assert_eq!(
        body["data"],
        json!({"resultType": "string", "result": [1.5, "hi"]})
    );

    // A selector at a sample's time returns that sample, stamped with the query time.
    let (status, body) = get(
        &TestClient::with(&client, &base),
        &format!(
            "/api/v1/query?query=m%7Bjob%3D%22a%22%7D&time={}",
            secs(t(7))
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "m", "job": "a"}, "value": [t(7) / 1000, "10.5"]}
        ]}})
    );

    // A range query of a selector returns the written points.
    let (status, body) = post(
        &TestClient::with(&client, &base),
        "/api/v1/query_range",
        &[
            ("query", "m"),
            ("start", &secs(t(0))),
            ("end", &secs(t(19))),
            ("step", "15s"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["resultType"], "matrix");
    let result = body["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 2, "{body}");
    for (series, job) in result.iter().zip(["a", "b"]) {
        assert_eq!(series["metric"], json!({"__name__": "m", "job": job}));
        let want: Vec<Value> = counter_series(t0)[if job == "a" { 0 } else { 1 }]
            .1
            .iter()
            // Whole seconds: Prometheus writes them without a fraction.
            .map(|&(ts, v)| json!([ts / 1000, format!("{v}")]))
            .collect();
        assert_eq!(series["values"], Value::from(want), "job {job}");
    }

    // sum(rate(m[1m])): job a grows 1.5 per 15 s, job b is flat.
    let (_, body) = get(
        &TestClient::with(&client, &base),
        &format!(
            "/api/v1/query?query=sum(rate(m%5B1m%5D))&time={}",
            secs(t(10))
        ),
    )
    .await;
    let v: f64 = body["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((v - 0.1).abs() < 1e-9, "{body}");

    // limit truncates with Prometheus's warning.
    let (_, body) = get(
        &TestClient::with(&client, &base),
        &format!("/api/v1/query?query=m&time={}&limit=1", secs(t(3))),
    )
    .await;
    assert_eq!(
        body["data"]["result"].as_array().unwrap().len(),
        1,
        "{body}"
    );
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));
    let (_, body) = get(
        &TestClient::with(&client, &base),
        &format!("/api/v1/query?query=m&time={}&limit=2", secs(t(3))),
    )
    .await;
    assert!(body.get("warnings").is_none(), "{body}");

    // Past the lookback delta nothing is returned; a longer lookback_delta finds it.
    let late = secs(t(19) + 400_000);
    let (_, body) = get(
        &TestClient::with(&client, &base),
        &format!("/api/v1/query?query=m&time={late}"),
    )
    .await;
    assert_eq!(body["data"]["result"], json!([]), "{body}");
    let (_, body) = get(
        &TestClient::with(&client, &base),
        &format!("/api/v1/query?query=m&time={late}&lookback_delta=10m"),
    )
    .await;
    assert_eq!(
        body["data"]["result"].as_array().unwrap().len(),
        2,
        "{body}"
    );

    // A heavy query with a 1 ms timeout times out. (Its subquery steps at 1 m: a 1 s
    // step over 7 days would be refused at once by max_points_per_series.)
    let (status, body) = get(&TestClient::with(&client, &base), &format!(
            "/api/v1/query_range?query=sum(rate(m%5B5m%3A1m%5D))&start={}&end={}&step=60&timeout=1ms",
            secs(t0 - 86_400_000 * 7),
            secs(t(19))
        ),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["errorType"], "timeout", "{body}");

    // The same data through promtool.
    promtool_checks(&server.base, t0).await;
    server.terminate();
}

/// promtool, or `None` outside CI when it is not installed.
fn promtool() -> Option<String> {
    let candidate = std::env::var("OPENDATA_TEST_PROMTOOL").unwrap_or_else(|_| "promtool".into());
    if Command::new(&candidate)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(candidate);
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!(
            "this test needs promtool ('{candidate}' not found): scripts/test.sh installs Debian's prometheus package"
        );
    }
    eprintln!("skipping the promtool checks: promtool is not installed (run scripts/test.sh)");
    None
}

/// Runs promtool and reads its JSON output.
async fn run_promtool(program: &str, args: Vec<String>) -> Value {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&args).kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("promtool {args:?} did not finish in 60 s"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool {args:?}: {stdout}{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("promtool {args:?}: {e}: {stdout}"))
}

async fn promtool_checks(base: &str, t0: i64) {
    let Some(promtool) = promtool() else {
        return;
    };
    let t = |i: i64| t0 + i * 15_000;
    let run = |args: Vec<String>| run_promtool(&promtool, args);
    // Instant: the sample at t(4) of each series.
    let got = run(vec![
        "query".into(),
        "instant".into(),
        "-o".into(),
        "json".into(),
        format!("--time={}", secs(t(4))),
        base.into(),
        "m".into(),
    ])
    .await;
    let mut got: Vec<(String, String)> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["metric"]["__name__"], "m");
            assert_eq!(s["value"][0].as_f64().unwrap(), t(4) as f64 / 1000.0);
            (
                s["metric"]["job"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("a".into(), "6".into()), ("b".into(), "7.25".into())]
    );
    // Instant: an expression.
    let got = run(vec![
        "query".into(),
        "instant".into(),
        "-o".into(),
        "json".into(),
        format!("--time={}", secs(t(10))),
        base.into(),
        "sum by (job) (m) * 2".into(),
    ])
    .await;
    let a = got
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["metric"]["job"] == "a")
        .unwrap();
    assert_eq!(a["value"][1], "30");
    // Range: the written points of job a.
    let got = run(vec![
        "query".into(),
        "range".into(),
        "-o".into(),
        "json".into(),
        format!("--start={}", secs(t(0))),
        format!("--end={}", secs(t(19))),
        "--step=15s".into(),
        base.into(),
        "m{job=\"a\"}".into(),
    ])
    .await;
    let series = got.as_array().unwrap();
    assert_eq!(series.len(), 1, "{got}");
    let values: Vec<(i64, f64)> = series[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                p[1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(values, counter_series(t0)[0].1);
}
