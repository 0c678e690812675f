//! The web console in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`, installed by the test setup; under CI the test fails without them)
//! against the real `opendata` binary with data in all three databases. Every page loads
//! without console errors, a range query draws one line per series and zooms, the table
//! shows the written values, the editor completes names and shows syntax errors, a log
//! scan and a live tail show appended records, a vector search finds the nearest id, a
//! replica offers no writes, and a server with tokens asks for one. Screenshots of each
//! page go to `$OPENDATA_TEST_OUTPUT/console/` (default `target/tmp/console/`).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use opendata_server::api::timeseries::remote_write::encode_v1;
use opendata_testing::browser::{Browser, chromium};
use opendata_testing::now_ms;
use opendata_timeseries::model::{
    Labels, MetricMetadata, MetricType, Sample, SeriesSamples, WriteBatch,
};
use serde_json::{Value, json};
use support::{ServerProcess, TestClient, b64, urlencode};

const WAIT: Duration = Duration::from_secs(20);
const SERIES: [&str; 3] = ["a", "b", "c"];

fn output_dir() -> PathBuf {
    let base = std::env::var_os("OPENDATA_TEST_OUTPUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    base.join("console")
}

/// The value series `instance` has at sample `i` (every 15 s over the last 30 minutes).
fn value(instance: usize, i: i64) -> f64 {
    (i * (instance as i64 + 1)) as f64
}

/// 121 samples, every 15 s up to `end` ms, the i-th of value `f(i)`.
fn samples(end: i64, f: impl Fn(i64) -> f64) -> Vec<Sample> {
    (0..=120)
        .map(|i| Sample {
            timestamp_ms: end - (120 - i) * 15_000,
            value: f(i),
        })
        .collect()
}

fn counter(labels: Labels, samples: Vec<Sample>) -> SeriesSamples {
    SeriesSamples {
        histograms: Vec::new(),
        labels,
        samples,
        exemplars: Vec::new(),
        created_timestamp_ms: None,
    }
}

async fn remote_write(api: &TestClient, batch: &WriteBatch) {
    let (status, text) = api
        .remote_write(encode_v1(batch), "application/x-protobuf")
        .await;
    assert_eq!(status, 204, "{text}");
}

/// Three counters and their metadata, ending at `end` ms.
async fn write_series(api: &TestClient, end: i64) {
    let series = SERIES
        .iter()
        .enumerate()
        .map(|(n, instance)| {
            let labels = Labels::from_pairs([
                ("__name__", "console_requests_total"),
                ("instance", instance),
                ("job", "api"),
            ]);
            counter(labels, samples(end, |i| value(n, i)))
        })
        .collect();
    let metadata = vec![MetricMetadata {
        metric: "console_requests_total".into(),
        metric_type: MetricType::Counter,
        help: "Requests served, for the console test.".into(),
        unit: String::new(),
    }];
    remote_write(api, &WriteBatch { series, metadata }).await;
}

async fn append(api: &TestClient, key: &str, values: &[&str]) {
    let records: Vec<Value> = values
        .iter()
        .map(|v| json!({"key": b64(key), "value": b64(v)}))
        .collect();
    let (status, body) = api
        .post_json(
            "/api/v1/log/append",
            &json!({"records": records, "awaitDurable": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// The vector of record `v{i}`.
fn vector_of(i: usize) -> Vec<f32> {
    vec![i as f32, (i % 3) as f32, (i % 5) as f32, 1.0]
}

/// 300 more series, for the large-result check.
async fn write_load(api: &TestClient, end: i64) {
    let series = (0..300)
        .map(|n| {
            let labels = Labels::from_pairs([
                ("__name__", "console_load_total".to_string()),
                ("shard", format!("{n:03}")),
            ]);
            counter(labels, samples(end, |i| (i * n) as f64))
        })
        .collect();
    remote_write(
        api,
        &WriteBatch {
            series,
            metadata: vec![],
        },
    )
    .await;
}

async fn load(api: &TestClient) {
    write_series(api, now_ms() - 1_000).await;
    write_load(api, now_ms() - 1_000).await;
    append(
        api,
        "orders",
        &["order-1", "order-2", "order-3", "order-4", "order-5"],
    )
    .await;
    append(api, "payments", &["payment-1"]).await;
    let (status, body) = api
        .post_json(
            "/api/v1/vector/collections",
            &json!({"name": "docs", "dimension": 4, "metric": "l2", "attributes": {"color": "string"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let vectors: Vec<Value> = (0..40)
        .map(|i| {
            let color = ["red", "green", "blue"][i % 3];
            json!({"id": format!("v{i}"), "vector": vector_of(i), "attributes": {"color": color}})
        })
        .collect();
    let (status, body) = api
        .post_json(
            "/api/v1/vector/collections/docs/upsert",
            &json!({"vectors": vectors}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Waits until the view has loaded (`main[data-state=ready]`), then fails on any error
/// the page reported: uncaught exceptions, rejected promises and the browser console's
/// errors (failed requests included).
async fn settle(b: &Browser, page: &str) {
    b.wait_for(
        &format!("{page} to load"),
        "const m = document.querySelector('main'); return m && m.dataset.state === 'ready' && !document.querySelector('main .error');",
        WAIT,
    )
    .await;
    assert_no_errors(b, page).await;
}

async fn assert_no_errors(b: &Browser, page: &str) {
    assert_no_errors_but(b, page, None).await;
}

/// As [`assert_no_errors`], allowing the browser's log line for failed requests to
/// `expected` (a path): the answer the page asked for, as the syntax check's 400.
async fn assert_no_errors_but(b: &Browser, page: &str, expected: Option<&str>) {
    let errors = b.exec("return window.__consoleErrors", json!([])).await;
    assert_eq!(errors, json!([]), "{page}: the page reported errors");
    let severe: Vec<(String, String)> = b
        .console_log()
        .await
        .into_iter()
        .filter(|(level, message)| {
            level == "SEVERE"
                && !expected.is_some_and(|path| {
                    message.contains(&format!("{path} - Failed to load resource"))
                        && message.contains("status of 400")
                })
        })
        .collect();
    assert!(
        severe.is_empty(),
        "{page}: browser console errors: {severe:?}"
    );
}

async fn count(b: &Browser, css: &str) -> u64 {
    b.exec(
        "return document.querySelectorAll(arguments[0]).length",
        json!([css]),
    )
    .await
    .as_u64()
    .unwrap()
}

async fn texts(b: &Browser, css: &str) -> Vec<String> {
    let v = b
        .exec(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent)",
            json!([css]),
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

async fn shot(b: &Browser, dir: &Path, name: &str) {
    b.screenshot(&dir.join(format!("{name}.png"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_a_console_that_works_in_a_real_browser() {
    let Some((chrome, driver)) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let server =
        ServerProcess::start(&["--object-store", &data], &dir.path().join("server.log")).await;
    let api = TestClient::new(&server.base);
    load(&api).await;
    let out = output_dir();
    let b = Browser::start(&chrome, &driver, 1400, 1000).await;
    let base = &server.base;

    // Overview: every database, healthy, with its storage.
    b.goto(&format!("{base}/")).await;
    b.wait_for(
        "three database cards",
        "return document.querySelectorAll('[data-database]').length === 3",
        WAIT,
    )
    .await;
    settle(&b, "overview").await;
    let badges = texts(&b, "[data-database] .badge").await;
    assert_eq!(badges, ["healthy", "healthy", "healthy"]);
    let storage = texts(&b, "#storage-location").await;
    assert!(storage[0].contains("local directory"), "{storage:?}");
    // The second refresh (5 s on) turns the counters into rates.
    b.wait_for(
        "rates",
        "return document.querySelectorAll('[data-database]').length === 3 && !document.querySelector('main').textContent.includes('measuring')",
        WAIT,
    )
    .await;
    let rates = texts(&b, "[data-database] dd").await;
    assert!(
        rates.iter().filter(|r| r.contains("/s")).count() == 6,
        "{rates:?}"
    );
    shot(&b, &out, "overview").await;

    // A range query: one line per series, a legend, and zoom by selection.
    let expr = "console_requests_total";
    b.goto(&format!("{base}/#/timeseries?expr={expr}&range=1h"))
        .await;
    settle(&b, "timeseries graph").await;
    assert_eq!(count(&b, "#graph path.series").await, 3);
    assert_eq!(count(&b, "#legend li").await, 3);
    let drawn = b
        .exec(
            "return document.querySelector('#graph svg').getAttribute('data-series')",
            json!([]),
        )
        .await;
    assert_eq!(drawn, "3");
    shot(&b, &out, "timeseries-graph").await;
    // Hovering shows each series' value at that time.
    b.exec(
        "const o = document.querySelector('#graph .overlay'); const r = o.getBoundingClientRect();
         o.dispatchEvent(new MouseEvent('mousemove', {clientX: r.right - 2, clientY: r.top + 20, bubbles: true}));",
        json!([]),
    )
    .await;
    let tip = b
        .exec(
            "const t = document.querySelector('#graph .tooltip'); return t.hidden ? null : Array.from(t.children).map(c => c.textContent)",
            json!([]),
        )
        .await;
    let tip: Vec<&str> = tip
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(tip.len(), 4, "{tip:?}"); // the time, then three series, largest first
    assert!(tip[1].contains("instance=\"c\""), "{tip:?}");
    // Hiding a series from the legend redraws without it.
    b.click("#legend li").await;
    assert_eq!(count(&b, "#graph path.series").await, 2);
    // Stacked draws an area under each line.
    b.click("#stacked").await;
    settle(&b, "stacked graph").await;
    assert_eq!(count(&b, "#graph path.area").await, 3);
    // Dragging across the plot zooms to the selection (the URL holds the new range).
    b.exec(
        "const o = document.querySelector('#graph .overlay'); const r = o.getBoundingClientRect();
         const y = r.top + r.height / 2;
         const ev = (type, x) => o.dispatchEvent(new MouseEvent(type, {clientX: x, clientY: y, bubbles: true}));
         ev('mousedown', r.left + r.width * 0.5); ev('mousemove', r.left + r.width * 0.75); ev('mouseup', r.left + r.width * 0.75);",
        json!([]),
    )
    .await;
    let zoomed = b
        .wait_for(
            "the zoomed range in the URL",
            "return !location.hash.includes('range=1h') && location.hash.includes('range=') && location.hash",
            WAIT,
        )
        .await;
    settle(&b, "zoomed graph").await;
    let secs = b
        .exec(
            "return parseDuration(new URLSearchParams(location.hash.split('?')[1]).get('range'))",
            json!([]),
        )
        .await;
    // A quarter of the hour's width was selected.
    let secs = secs.as_f64().unwrap();
    assert!((850.0..=950.0).contains(&secs), "{zoomed}: {secs} s");

    // A large result: 300 series of 121 samples draw and tabulate whole.
    let started = std::time::Instant::now();
    b.goto(&format!(
        "{base}/#/timeseries?expr=console_load_total&range=1h"
    ))
    .await;
    settle(&b, "large graph").await;
    assert_eq!(count(&b, "#graph path.series").await, 300);
    let graph_ms = started.elapsed().as_millis();
    let started = std::time::Instant::now();
    b.goto(&format!(
        "{base}/#/timeseries?expr=console_load_total&tab=table"
    ))
    .await;
    settle(&b, "large table").await;
    assert_eq!(count(&b, "#result-table tbody tr").await, 300);
    eprintln!(
        "large result (300 series x 121 samples): graph {graph_ms} ms, table {} ms, from navigation to drawn",
        started.elapsed().as_millis()
    );

    // The table: the last value of each series.
    b.goto(&format!("{base}/#/timeseries?expr={expr}&tab=table"))
        .await;
    settle(&b, "timeseries table").await;
    let rows = texts(&b, "#result-table tbody tr").await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    for (n, instance) in SERIES.iter().enumerate() {
        let row = rows
            .iter()
            .find(|r| r.contains(&format!("instance=\"{instance}\"")))
            .unwrap_or_else(|| panic!("no row for {instance}: {rows:?}"));
        assert!(row.ends_with(&value(n, 120).to_string()), "{row}");
    }
    shot(&b, &out, "timeseries-table").await;

    // The editor: metric names, label names and label values complete; errors show.
    b.goto(&format!("{base}/#/timeseries")).await;
    settle(&b, "empty timeseries").await;
    b.type_into("#expr", "console_req").await;
    b.wait_for(
        "the metric name completion",
        "return Array.from(document.querySelectorAll('#completions li')).some(li => li.textContent.startsWith('console_requests_total'))",
        WAIT,
    )
    .await;
    b.type_into("#expr", "\u{E004}").await; // Tab accepts
    b.type_into("#expr", "{inst").await;
    b.wait_for(
        "the label name completion",
        "return Array.from(document.querySelectorAll('#completions li')).some(li => li.textContent.startsWith('instance'))",
        WAIT,
    )
    .await;
    b.type_into("#expr", "\u{E004}\"").await; // instance="
    b.wait_for(
        "the label value completion",
        "return Array.from(document.querySelectorAll('#completions li')).map(li => li.firstChild.textContent).join(',') === 'a,b,c'",
        WAIT,
    )
    .await;
    b.type_into("#expr", "b\u{E004}}").await;
    let typed = b
        .exec("return document.querySelector('#expr').value", json!([]))
        .await;
    assert_eq!(typed, "console_requests_total{instance=\"b\"}");
    b.type_into("#expr", "\u{E007}").await; // Enter runs
    settle(&b, "typed query").await;
    assert_eq!(count(&b, "#graph path.series").await, 1);
    b.exec(
        "const e = document.querySelector('#expr'); e.value = ''; e.dispatchEvent(new Event('input'));",
        json!([]),
    )
    .await;
    b.type_into("#expr", "sum(rate(console_requests_total[5m])")
        .await;
    let message = b
        .wait_for(
            "a syntax error",
            "const e = document.querySelector('#syntax-error'); return e && e.textContent",
            WAIT,
        )
        .await;
    assert!(
        message
            .as_str()
            .unwrap()
            .contains("unclosed left parenthesis"),
        "{message}"
    );
    // The position is Prometheus's for an unclosed parenthesis: the end of the input
    // (`sum(rate(console_requests_total[5m])` is 36 bytes: line 1, column 37).
    let at = b
        .exec(
            "const d = document.querySelector('#syntax-error').dataset; return [d.line, d.column]",
            json!([]),
        )
        .await;
    assert_eq!(at, json!(["1", "37"]));
    // The browser logs the syntax check's 400 answers; nothing else may fail.
    assert_no_errors_but(&b, "syntax error", Some("/api/v1/parse_query")).await;

    // The explorers.
    b.goto(&format!("{base}/#/timeseries?tab=explore")).await;
    settle(&b, "explore").await;
    assert!(
        texts(&b, "#label-names td")
            .await
            .contains(&"instance".to_string())
    );
    let meta = texts(&b, "#metadata-table tbody tr").await;
    assert!(
        meta.iter()
            .any(|r| r.contains("console_requests_total") && r.contains("counter")),
        "{meta:?}"
    );
    b.click("#label-names tr:nth-child(2)").await; // "instance" after "__name__"
    b.wait_for(
        "label values",
        "return document.querySelectorAll('#label-values tr').length",
        WAIT,
    )
    .await;
    b.click("#label-values tr").await;
    b.wait_for(
        "series of the value",
        "return document.querySelectorAll('#series-table tr').length === 1",
        WAIT,
    )
    .await;
    shot(&b, &out, "timeseries-explore").await;

    // The log: keys, a scan as text and as hex.
    let key = b64("orders");
    b.goto(&format!("{base}/#/log?key={}", urlencode(&key)))
        .await;
    settle(&b, "log").await;
    let keys = texts(&b, "#log-keys tbody tr td:first-child").await;
    assert_eq!(keys, ["orders", "payments"]);
    let values = texts(&b, "#scan-table tbody tr td:last-child").await;
    assert_eq!(
        values,
        ["order-1", "order-2", "order-3", "order-4", "order-5"]
    );
    b.wait_for(
        "the key's count",
        "return document.querySelector('#log-count').textContent === '5 records'",
        WAIT,
    )
    .await;
    b.exec(
        "document.querySelector('#scan-format').value = 'hex'",
        json!([]),
    )
    .await;
    b.click("#scan-run").await;
    b.wait_for(
        "hex values",
        "const c = document.querySelector('#scan-table tbody td.hex'); return c && c.textContent === '6f 72 64 65 72 2d 31'",
        WAIT,
    )
    .await;
    b.exec(
        "document.querySelector('#scan-format').value = 'text'",
        json!([]),
    )
    .await;
    b.click("#scan-run").await;
    b.wait_for(
        "text values",
        "const c = document.querySelector('#scan-table tbody td.value-text'); return c && c.textContent === 'order-1'",
        WAIT,
    )
    .await;
    shot(&b, &out, "log").await;

    // Live tail: appends (over the HTTP API and from the console's form) show up.
    b.click("#tail-toggle").await;
    b.wait_for(
        "the live tail",
        "return document.querySelector('#tail-state').textContent.startsWith('live')",
        WAIT,
    )
    .await;
    append(&api, "orders", &["tail-1", "tail-2"]).await;
    b.wait_for(
        "tailed records",
        "return document.querySelectorAll('#tail-table tbody tr').length === 2",
        WAIT,
    )
    .await;
    b.type_into("#append-value", "from-console").await;
    b.click("#append-run").await;
    let appended = b
        .wait_for(
            "the console's own append",
            "const t = document.querySelector('#append-result').textContent; return t.startsWith('appended at sequence') && t",
            WAIT,
        )
        .await;
    let seq: u64 = appended
        .as_str()
        .unwrap()
        .split(' ')
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    b.wait_for(
        "the console's append in the tail",
        "return document.querySelectorAll('#tail-table tbody tr').length === 3",
        WAIT,
    )
    .await;
    let tailed = texts(&b, "#tail-table tbody tr td:last-child").await;
    assert_eq!(tailed, ["from-console", "tail-2", "tail-1"]);
    let (_, scan) = api
        .get_json(&format!("/api/v1/log/scan?key=orders&start_seq={seq}"))
        .await;
    assert_eq!(scan["entries"][0]["value"], b64("from-console"));
    assert_no_errors(&b, "log tail").await;
    shot(&b, &out, "log-tail").await;
    b.click("#tail-toggle").await;

    // Vector: the collection's schema and statistics; search by id and by vector.
    b.goto(&format!("{base}/#/vector?collection=docs&by=id&id=v7"))
        .await;
    b.wait_for(
        "hits",
        "return document.querySelectorAll('#hits tbody tr').length",
        WAIT,
    )
    .await;
    settle(&b, "vector").await;
    let ids = b
        .exec(
            "return Array.from(document.querySelectorAll('#hits tbody tr')).map(r => r.dataset.id)",
            json!([]),
        )
        .await;
    assert_eq!(ids.as_array().unwrap().len(), 10);
    assert_eq!(ids[0], "v7");
    assert!(texts(&b, "#collection-info").await[0].contains("40"));
    assert!(texts(&b, "#hits tbody tr").await[0].contains("color=green"));
    shot(&b, &out, "vector").await;
    b.exec(
        "document.querySelector('#search-by').value = 'vector'; document.querySelector('#search-by').dispatchEvent(new Event('change'));
         document.querySelector('#search-vector').value = '[12.2, 0, 2, 1]';
         document.querySelector('#search-filter').value = '{\"color\": \"red\"}';",
        json!([]),
    )
    .await;
    b.click("#search-run").await;
    b.wait_for(
        "a search by vector",
        "const r = document.querySelector('#hits tbody tr'); return r && r.dataset.id === 'v12'",
        WAIT,
    )
    .await;
    let colors = texts(&b, "#hits tbody tr td:last-child").await;
    assert!(colors.iter().all(|c| c == "color=red"), "{colors:?}");
    assert_no_errors(&b, "vector search").await;

    // A read-only replica of the same store offers no writes.
    let replica = ServerProcess::start(
        &["--object-store", &data, "--read-only"],
        &dir.path().join("replica.log"),
    )
    .await;
    b.goto(&format!("{}/#/log?key={}", replica.base, urlencode(&key)))
        .await;
    settle(&b, "replica log").await;
    assert_eq!(count(&b, "#append-panel").await, 0);
    let info = texts(&b, "#server-info").await;
    assert!(info[0].contains("read-only replica"), "{info:?}");
    drop(replica);

    // A server with tokens: the console asks for one, then works with it.
    let secured_dir = tempfile::tempdir().unwrap();
    let config = secured_dir.path().join("opendata.toml");
    std::fs::write(
        &config,
        "[[auth.tokens]]\nname = \"console\"\ntoken = \"console-test-token-0123\"\nscopes = [\"*:read\"]\n",
    )
    .unwrap();
    let secured = ServerProcess::start(
        &[
            "--object-store",
            "memory://",
            "--config",
            config.to_str().unwrap(),
        ],
        &secured_dir.path().join("server.log"),
    )
    .await;
    b.goto(&format!("{}/", secured.base)).await;
    b.wait_for(
        "the token dialog",
        "return document.querySelector('#token-dialog').open",
        WAIT,
    )
    .await;
    // The 401 that asked for the token is the browser console's one expected error.
    let _ = b.console_log().await;
    b.exec("window.__consoleErrors.length = 0", json!([])).await;
    b.type_into("#token-input", "console-test-token-0123").await;
    b.click("#token-save").await;
    b.wait_for(
        "the overview with a token",
        "return document.querySelectorAll('[data-database]').length === 3",
        WAIT,
    )
    .await;
    settle(&b, "overview with a token").await;
    eprintln!("console screenshots: {}", out.display());
}
