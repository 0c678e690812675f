//! The shared runtime routes and middleware: health, readiness, metrics, request tracing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::FutureExt;
use opendata_common::StorageRoot;
use opendata_common::metrics::escape_label_value;
use parking_lot::Mutex;

use super::databases::Databases;
use crate::api::ApiError;

/// State shared by the runtime routes and middleware.
#[derive(Clone)]
pub struct AppState {
    pub(crate) root: StorageRoot,
    pub(crate) databases: Arc<Databases>,
    pub(crate) http: Arc<HttpMetrics>,
    pub(crate) started: Instant,
    pub(crate) read_only: bool,
    pub(crate) usage: Arc<tokio::sync::Mutex<Option<UsageListing>>>,
    /// The SQL service, when `[sql] listen` is set.
    pub(crate) sql: Option<crate::api::sql::SqlService>,
}

/// The last listing of every database's objects, and when it was made.
pub(crate) type UsageListing = (Instant, Vec<Usage>);

/// Objects and bytes one database has in the object store.
#[derive(Clone, serde::Serialize)]
pub(crate) struct Usage {
    objects: u64,
    bytes: u64,
    /// False when the listing stopped at [`USAGE_MAX_OBJECTS`] or [`USAGE_TIMEOUT`]: the
    /// counts are then lower bounds.
    complete: bool,
}

/// How long `/api/v1/server/status` reuses a listing of the object store.
const USAGE_TTL: Duration = Duration::from_secs(30);
/// The most objects one status listing counts per database.
const USAGE_MAX_OBJECTS: u64 = 100_000;
/// The longest one database's listing may take.
const USAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Latency buckets of `opendata_http_request_duration_seconds`.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request counters and latency histograms by route, method and status.
#[derive(Default)]
pub struct HttpMetrics {
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl HttpMetrics {
    fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut map = self.series.lock();
        let s = map
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        s.count += 1;
        s.sum += secs;
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    fn render(&self, out: &mut String) {
        let map = self.series.lock();
        out.push_str("# HELP opendata_http_requests_total HTTP requests served.\n");
        out.push_str("# TYPE opendata_http_requests_total counter\n");
        for ((route, method, status), s) in map.iter() {
            let _ = writeln!(
                out,
                "opendata_http_requests_total{{route=\"{}\",method=\"{method}\",code=\"{status}\"}} {}",
                escape_label_value(route),
                s.count
            );
        }
        out.push_str("# HELP opendata_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE opendata_http_request_duration_seconds histogram\n");
        for ((route, method, status), s) in map.iter() {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",code=\"{status}\"",
                escape_label_value(route)
            );
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "opendata_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "opendata_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "opendata_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "opendata_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
    }
}

pub(crate) fn routes(state: AppState) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/v1/server/status", get(status))
        .with_state(state)
}

/// Answers a request whose handler panicked with a 500 (the connection is answered, not
/// dropped) and logs the panic with the request it came from.
pub(crate) async fn catch_panic(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let message = opendata_common::task::panic_message(panic.as_ref());
            tracing::error!(%method, %path, panic = %message, "request handler panicked");
            ApiError::internal(
                "the request failed on an internal error; the server log has the details",
            )
            .into_response()
        }
    }
}

/// Answers 503 when a request takes longer than `http.request_timeout_secs`. Long-polls
/// (`/api/v1/log/scan` with `follow`) and event streams are bounded by their own limits.
pub(crate) async fn request_timeout(
    State(timeout): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let long_lived = path == "/api/v1/log/stream"
        || (path == "/api/v1/log/scan"
            && request.uri().query().is_some_and(|q| {
                q.split('&')
                    .any(|kv| kv == "follow" || kv.starts_with("follow="))
            }));
    if long_lived {
        return next.run(request).await;
    }
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(format!(
            "the request did not finish within {} s (http.request_timeout_secs)",
            timeout.as_secs()
        ))
        .into_response(),
    }
}

/// Times and logs every request and counts it by matched route.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    state
        .http
        .observe(&route, &method, status.as_u16(), elapsed);
    if status.is_server_error() {
        tracing::warn!(%method, %path, status = status.as_u16(), ?elapsed, "request failed");
    } else {
        tracing::debug!(%method, %path, status = status.as_u16(), ?elapsed, "request");
    }
    response
}

async fn healthy() -> &'static str {
    "OpenData is Healthy.\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    for (name, result) in state.databases.check() {
        if let Err(e) = result {
            problems.push(format!("{name}: {e}"));
        }
    }
    // A real round trip to the object store.
    let store = state.root.object_store();
    let path = state.root.root_path().clone();
    let probe = tokio::time::timeout(
        Duration::from_secs(5),
        store.list_with_delimiter(Some(&path)),
    )
    .await;
    match probe {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => problems.push(format!("object store: {e}")),
        Err(_) => problems.push("object store: no answer within 5s".to_string()),
    }
    if problems.is_empty() {
        (StatusCode::OK, "OpenData is Ready.\n").into_response()
    } else {
        ApiError::unavailable(format!("not ready: {}", problems.join("; "))).into_response()
    }
}

/// Where the object store is, without credentials.
fn storage_location(config: &opendata_common::StorageConfig) -> String {
    use opendata_common::ObjectStoreConfig;
    match &config.object_store {
        ObjectStoreConfig::Memory => "memory (gone when the process exits)".to_string(),
        ObjectStoreConfig::Local { path } => format!("local directory {}", path.display()),
        ObjectStoreConfig::S3 {
            bucket,
            prefix,
            endpoint,
            ..
        } => {
            let mut s = format!("s3://{bucket}/{}", prefix.trim_matches('/'));
            if let Some(e) = endpoint {
                let _ = write!(s, " at {e}");
            }
            s
        }
    }
}

/// Counts the objects and bytes under `path`, up to [`USAGE_MAX_OBJECTS`] and
/// [`USAGE_TIMEOUT`].
async fn usage_of(
    store: Arc<dyn slatedb::object_store::ObjectStore>,
    path: slatedb::object_store::path::Path,
) -> Usage {
    use futures::StreamExt;
    let mut usage = Usage {
        objects: 0,
        bytes: 0,
        complete: false,
    };
    let deadline = tokio::time::Instant::now() + USAGE_TIMEOUT;
    let mut list = store.list(Some(&path));
    loop {
        match tokio::time::timeout_at(deadline, list.next()).await {
            Ok(Some(Ok(meta))) => {
                usage.objects += 1;
                usage.bytes += meta.size;
                if usage.objects >= USAGE_MAX_OBJECTS {
                    return usage;
                }
            }
            Ok(None) => {
                usage.complete = true;
                return usage;
            }
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, %path, "listing for the status page failed");
                return usage;
            }
            Err(_) => return usage,
        }
    }
}

/// `GET /api/v1/server/status`: the server and each database, for the console's overview.
async fn status(State(state): State<AppState>) -> Response {
    let names: Vec<&'static str> = state.databases.all().iter().map(|d| d.name()).collect();
    let usage = {
        let mut cached = state.usage.lock().await;
        match cached.as_ref() {
            Some((at, usage)) if at.elapsed() < USAGE_TTL && usage.len() == names.len() => {
                usage.clone()
            }
            _ => {
                let store = state.root.object_store();
                let listings = names
                    .iter()
                    .map(|n| usage_of(store.clone(), state.root.path_for(n)));
                let usage = futures::future::join_all(listings).await;
                *cached = Some((Instant::now(), usage.clone()));
                usage
            }
        }
    };
    let databases: Vec<serde_json::Value> = state
        .databases
        .all()
        .iter()
        .zip(usage)
        .map(|(db, usage)| {
            let check = db.check();
            serde_json::json!({
                "name": db.name(),
                "role": db.role().as_str(),
                "healthy": check.is_ok(),
                "error": check.err().map(|e| e.to_string()),
                "objects": usage.objects,
                "bytes": usage.bytes,
                "usage_complete": usage.complete,
            })
        })
        .collect();
    let body = serde_json::json!({
        "status": "success",
        "data": {
            "version": env!("CARGO_PKG_VERSION"),
            "read_only": state.read_only,
            "uptime_seconds": state.started.elapsed().as_secs_f64(),
            "storage": storage_location(state.root.config()),
            "databases": databases,
        }
    });
    axum::Json(body).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(
        "# HELP opendata_build_info Build information.\n# TYPE opendata_build_info gauge\n",
    );
    let _ = writeln!(
        out,
        "opendata_build_info{{version=\"{}\",read_only=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        state.read_only
    );
    out.push_str("# HELP opendata_uptime_seconds Seconds since the server started.\n# TYPE opendata_uptime_seconds gauge\n");
    let _ = writeln!(
        out,
        "opendata_uptime_seconds {}",
        state.started.elapsed().as_secs_f64()
    );
    let stats = state.databases.commit_stats();
    for (metric, help, pick) in [
        (
            "opendata_commit_jobs_total",
            "Writes acknowledged by the group-commit path.",
            0usize,
        ),
        (
            "opendata_commit_batches_total",
            "SlateDB write batches the group-commit path made.",
            1,
        ),
        (
            "opendata_commit_flushes_total",
            "WAL flushes made to acknowledge durable writes.",
            2,
        ),
    ] {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} counter");
        for (db, s) in &stats {
            let v = [s.jobs, s.writes, s.flushes][pick];
            let _ = writeln!(out, "{metric}{{database=\"{db}\"}} {v}");
        }
    }
    state.http.render(&mut out);
    state.databases.apis().pools.render(&mut out);
    crate::server::memory::render(&state.databases.apis().budget, &mut out);
    if let Some(sql) = &state.sql {
        sql.render(&mut out);
    }
    state.root.metrics().render(&mut out);
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn should_time_out_slow_requests_but_not_long_polls() {
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_millis(500)).await;
            "late"
        }
        let app = Router::new()
            .route("/slow", get(slow))
            .route("/api/v1/log/scan", get(slow))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(50),
                request_timeout,
            ));
        let resp = app
            .clone()
            .oneshot(HttpRequest::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let resp = app
            .oneshot(
                HttpRequest::get("/api/v1/log/scan?key=k&follow=true")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn should_answer_a_panicking_handler_with_a_500() {
        async fn boom() -> &'static str {
            panic!("handler bug")
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(catch_panic));
        let resp = app
            .clone()
            .oneshot(HttpRequest::get("/boom").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "internal");
        assert!(!v["error"].as_str().unwrap().contains("handler bug"), "{v}");
        let resp = app
            .oneshot(HttpRequest::get("/ok").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
