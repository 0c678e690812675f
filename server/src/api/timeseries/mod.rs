//! HTTP routes of the time series database: Prometheus remote write and the metadata
//! side of the Prometheus HTTP API, with Prometheus's JSON envelope
//! (`{"status":"success","data":...}`, errors as `{"status":"error","errorType":...,
//! "error":...}`).
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/write` | remote write 1.0 and 2.0 (snappy protobuf; version by Content-Type) |
//! | `GET, POST /api/v1/series` | label sets matching `match[]` in `[start, end]` |
//! | `GET, POST /api/v1/labels` | label names (optionally of series matching `match[]`) |
//! | `GET, POST /api/v1/label/{name}/values` | values of a label |
//! | `GET /api/v1/metadata` | metric metadata (`metric`, `limit`, `limit_per_metric`) |
//! | `GET /api/v1/status/buildinfo` | version information |
//! | `GET, POST /api/v1/query`, `/api/v1/query_range` | PromQL (see [`query`]) |
//! | `GET, POST /api/v1/format_query`, `/api/v1/parse_query` | PromQL formatted, or as a JSON syntax tree |
//! | `GET, POST /api/v1/query_exemplars` | the exemplars of the query's series |
//! | `GET /api/v1/status/config`, `/flags`, `/runtimeinfo`; `/api/v1/rules`, `/api/v1/alerts` | small answers Prometheus clients such as Grafana expect |

pub mod params;
pub mod proto;
pub mod query;
pub mod remote_write;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use opendata_timeseries::model::{Labels, Matcher};
use opendata_timeseries::promql::Engine;
use opendata_timeseries::storage::limited;
use opendata_timeseries::{Querier, TimeSeriesHandle, TimeSeriesRead};
use serde_json::{Map, Value, json};

use self::params::Params;
use self::remote_write::RemoteWriteVersion;
use crate::api::{ApiError, ApiResult};
use crate::server::pool::WorkPool;
use opendata_common::budget::MemoryBudget;

/// What the routes share: the database and the PromQL engine beside it.
#[derive(Clone)]
pub struct ApiState {
    /// The database.
    pub db: TimeSeriesHandle,
    /// The PromQL engine with the configured query limits.
    pub engine: Engine,
    /// Where queries are parsed and evaluated.
    pub query_pool: Arc<WorkPool>,
    /// Where remote-write bodies are decoded.
    pub ingest_pool: Arc<WorkPool>,
    /// What decoded remote-write bodies reserve.
    pub budget: MemoryBudget,
}

impl FromRef<ApiState> for TimeSeriesHandle {
    fn from_ref(state: &ApiState) -> Self {
        state.db.clone()
    }
}

/// The routes, with queries evaluated by `engine`.
pub fn router(
    db: TimeSeriesHandle,
    engine: Engine,
    query_pool: Arc<WorkPool>,
    ingest_pool: Arc<WorkPool>,
    max_query_body_bytes: usize,
    budget: MemoryBudget,
) -> Router {
    let reads = Router::new()
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route(
            "/api/v1/label/{name}/values",
            get(label_values).post(label_values),
        )
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .merge(query::routes())
        // Queries and selectors are small: their bodies have a limit of their own.
        .layer(DefaultBodyLimit::max(max_query_body_bytes));
    Router::new()
        .route("/api/v1/write", post(remote_write))
        .merge(reads)
        .with_state(ApiState {
            db,
            engine,
            query_pool,
            ingest_pool,
            budget,
        })
}

/// Prometheus's success envelope.
pub fn success(data: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&json!({"status": "success", "data": data})).unwrap_or_default(),
    )
        .into_response()
}

/// Parameters from the query string and, for a form POST, the body.
pub fn request_params(
    method: &Method,
    headers: &HeaderMap,
    query: Option<String>,
    body: &Bytes,
) -> ApiResult<Params> {
    let form = if method == Method::POST && !body.is_empty() {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(ApiError::unsupported_media_type(format!(
                "a POST body must be application/x-www-form-urlencoded, got '{ct}'"
            )));
        }
        Some(body.as_ref())
    } else {
        None
    };
    Ok(Params::parse(query.as_deref(), form))
}

async fn remote_write(
    State(state): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let db = state.db.writer()?;
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("");
        if !enc.eq_ignore_ascii_case("snappy") {
            return Err(ApiError::unsupported_media_type(format!(
                "remote write bodies must be Content-Encoding: snappy, got '{enc}'"
            )));
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let version = RemoteWriteVersion::from_content_type(content_type)?;
    let max = db.config().max_decoded_bytes;
    // The decoded request (the protobuf, then the batch built from it) is held until the
    // write is acknowledged; reserve it first.
    let _memory = state
        .budget
        .reserve(remote_write::decoded_size_estimate(&body))?;
    let batch = state
        .ingest_pool
        .run(async move { remote_write::decode(&body, version, max) })
        .await??;
    let total = batch.sample_count() + batch.histogram_count();
    let outcome = db.write(batch).await?;
    if outcome.out_of_bounds > 0 {
        return Err(ApiError::bad_data(format!(
            "{} of {} samples were refused as out of bounds and the other {} were written; first: {}",
            outcome.out_of_bounds,
            total,
            outcome.samples + outcome.histograms,
            outcome.first_out_of_bounds.unwrap_or_default()
        )));
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if version == RemoteWriteVersion::V2 {
        let h = response.headers_mut();
        h.insert(
            "X-Prometheus-Remote-Write-Samples-Written",
            HeaderValue::from(outcome.samples),
        );
        h.insert(
            "X-Prometheus-Remote-Write-Histograms-Written",
            HeaderValue::from(outcome.histograms),
        );
        h.insert(
            "X-Prometheus-Remote-Write-Exemplars-Written",
            HeaderValue::from(outcome.exemplars),
        );
    }
    Ok(response)
}

pub(crate) fn labels_json(labels: &Labels) -> Value {
    let mut m = Map::new();
    for l in labels.as_slice() {
        m.insert(l.name.clone(), Value::String(l.value.clone()));
    }
    Value::Object(m)
}

/// Matching label sets over the OR of `sets`, sorted, at most `limit`.
async fn select_series(
    q: &Querier,
    sets: &[Vec<Matcher>],
    start: i64,
    end: i64,
    limit: usize,
) -> ApiResult<Vec<Labels>> {
    let mut all = BTreeSet::new();
    for set in sets {
        all.extend(q.series(set, start, end, limit).await?);
    }
    Ok(limited(all, limit))
}

async fn series(
    State(ts): State<TimeSeriesHandle>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let p = request_params(&method, &headers, query, &body)?;
    let sets = p.matchers()?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = p.range()?;
    let limit = p.limit()?;
    let found = select_series(&ts.querier(), &sets, start, end, limit).await?;
    Ok(success(Value::Array(
        found.iter().map(labels_json).collect(),
    )))
}

async fn labels(
    State(ts): State<TimeSeriesHandle>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let p = request_params(&method, &headers, query, &body)?;
    let sets = p.matchers_or_all()?;
    let (start, end) = p.range()?;
    let limit = p.limit()?;
    let q = ts.querier();
    let mut names = BTreeSet::new();
    for set in &sets {
        names.extend(q.label_names(set, start, end, limit).await?);
    }
    Ok(success(json!(limited(names, limit))))
}

async fn label_values(
    State(ts): State<TimeSeriesHandle>,
    Path(name): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let name = decode_label_name(&name)?;
    let p = request_params(&method, &headers, query, &body)?;
    let sets = p.matchers_or_all()?;
    let (start, end) = p.range()?;
    let limit = p.limit()?;
    let q = ts.querier();
    let mut values = BTreeSet::new();
    for set in &sets {
        values.extend(q.label_values(&name, set, start, end, limit).await?);
    }
    Ok(success(json!(limited(values, limit))))
}

/// A label name from the path: plain, or `U__` + Prometheus's UTF-8 escaping
/// (`_` → `__`, other characters as `_<hex>_`).
fn decode_label_name(raw: &str) -> ApiResult<String> {
    let bad = || ApiError::bad_data(format!("invalid label name: \"{raw}\""));
    let Some(rest) = raw.strip_prefix("U__") else {
        let mut chars = raw.chars();
        let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        return if ok { Ok(raw.to_string()) } else { Err(bad()) };
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() => hex.push(h),
                _ => return Err(bad()),
            }
        }
        let code = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
        out.push(char::from_u32(code).ok_or_else(bad)?);
    }
    Ok(out)
}

async fn metadata(
    State(ts): State<TimeSeriesHandle>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let p = Params::parse(query.as_deref(), None);
    let limit = p.limit()?;
    let metric = p.get("metric").filter(|m| !m.is_empty());
    let found = ts.querier().metadata(metric, limit).await?;
    let mut out = Map::new();
    for m in found {
        out.insert(
            m.metric.clone(),
            json!([{"type": m.metric_type.as_str(), "help": m.help, "unit": m.unit}]),
        );
    }
    Ok(success(Value::Object(out)))
}

async fn buildinfo() -> Response {
    success(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "opendata",
        "buildDate": "",
        "goVersion": "",
        "application": "opendata"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_decode_escaped_label_names() {
        assert_eq!(decode_label_name("job").unwrap(), "job");
        assert_eq!(decode_label_name("U__a_2e_b").unwrap(), "a.b");
        assert_eq!(decode_label_name("U__a__b").unwrap(), "a_b");
        assert!(decode_label_name("a.b").is_err());
        assert!(decode_label_name("U__a_zz_").is_err());
    }
}
