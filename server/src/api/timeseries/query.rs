//! PromQL over HTTP with Prometheus's query API: the same parameters, validation,
//! messages and JSON, so Prometheus clients (Grafana, promtool, client libraries) work
//! unchanged.
//!
//! | route | parameters | answer |
//! |---|---|---|
//! | `GET, POST /api/v1/query` | `query`, `time` (default now), `timeout`, `limit`, `lookback_delta`, `stats` | `{"resultType":..,"result":..}` |
//! | `GET, POST /api/v1/query_range` | `query`, `start`, `end`, `step`, `timeout`, `limit`, `lookback_delta`, `stats` | a matrix |
//! | `GET, POST /api/v1/format_query` | `query` | the query pretty-printed |
//! | `GET, POST /api/v1/parse_query` | `query` | the syntax tree as JSON (see [`ast_json`]) |
//! | `GET, POST /api/v1/query_exemplars` | `query`, `start`, `end` | the exemplars of the query's selectors' series (at most 100,000), `null` for a query without selectors |
//! | `GET /api/v1/status/config`, `/api/v1/status/flags`, `/api/v1/status/runtimeinfo` | | minimal answers |
//! | `GET /api/v1/rules`, `GET /api/v1/alerts` | | no rules, no alerts |
//!
//! Values are strings (`"1"`, `"0.5"`, `"NaN"`, `"+Inf"`) with the shortest digits that
//! read back to the same float and no exponent; timestamps are seconds with up to three
//! decimals. Parameter errors are `bad_data` (400); evaluation errors take the engine's
//! error type and status; a query that outlives its timeout is `timeout` (503).

use std::fmt::Write as _;
use std::future::Future;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use opendata_timeseries::TimeSeriesRead;
use opendata_timeseries::model::{Exemplar, FloatHistogram, Labels, Matcher};
use opendata_timeseries::promql::parser::{
    self, AtModifier, DurationExpr, Expr, LabelModifier, UnaryOp, ValueType, VectorMatchCardinality,
};
use opendata_timeseries::promql::{
    Engine, QueryError, QueryOptions, QueryResult, Value, drop_tree, format_float,
    selector_matchers, with_stack,
};
use serde_json::{Value as Json, json};

use super::params::{Params, parse_time};
use super::{ApiState, request_params, success};
use crate::api::{ApiError, ApiResult};

/// Most points a range query may ask for per series, as in Prometheus.
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// The warning added when `limit` cut the result short (Prometheus's words).
pub const TRUNCATED_WARNING: &str = "results truncated due to limit";

/// When the routes were first built, for `runtimeinfo`.
static STARTED_MS: OnceLock<i64> = OnceLock::new();

pub(super) fn routes() -> Router<ApiState> {
    STARTED_MS.get_or_init(opendata_timeseries::storage::now_ms);
    Router::new()
        .route("/api/v1/query", get(instant_query).post(instant_query))
        .route("/api/v1/query_range", get(range_query).post(range_query))
        .route("/api/v1/format_query", get(format_query).post(format_query))
        .route("/api/v1/parse_query", get(parse_query).post(parse_query))
        .route(
            "/api/v1/query_exemplars",
            get(query_exemplars).post(query_exemplars),
        )
        .route("/api/v1/status/config", get(status_config))
        .route("/api/v1/status/flags", get(status_flags))
        .route("/api/v1/status/runtimeinfo", get(runtime_info))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/alerts", get(alerts))
}

async fn instant_query(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let p = request_params(&method, &headers, raw, &body)?;
    let limit = p.limit()?;
    let time = p.time("time", opendata_timeseries::storage::now_ms())?;
    let (timeout, options) = query_options(&p, &state.engine)?;
    let text = query_text(&p);
    let started = Instant::now();
    let querier = state.db.querier();
    let engine = state.engine.clone();
    let result = state
        .query_pool
        .run(async move {
            let query = engine.parse(&text)?;
            run(timeout, engine.instant(&querier, &query, time, &options)).await
        })
        .await??;
    Ok(query_response(result, limit, p.get("stats"), started))
}

async fn range_query(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let p = request_params(&method, &headers, raw, &body)?;
    let limit = p.limit()?;
    let start = required_time(&p, "start")?;
    let end = required_time(&p, "end")?;
    if end < start {
        return Err(ApiError::bad_data(
            "invalid parameter \"end\": end timestamp must not be before start time",
        ));
    }
    let step = super::params::parse_duration(p.get("step").unwrap_or(""))
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"step\": {e}")))?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "invalid parameter \"step\": zero or negative query resolution step widths are \
             not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the \
             query resolution (?step=XX)",
        ));
    }
    let (timeout, options) = query_options(&p, &state.engine)?;
    let text = query_text(&p);
    let started = Instant::now();
    let querier = state.db.querier();
    let engine = state.engine.clone();
    let result = state
        .query_pool
        .run(async move {
            let query = engine.parse(&text)?;
            run(
                timeout,
                engine.range(&querier, &query, start, end, step, &options),
            )
            .await
        })
        .await??;
    Ok(query_response(result, limit, p.get("stats"), started))
}

/// A time parameter that must be given.
fn required_time(p: &Params, name: &str) -> ApiResult<i64> {
    parse_time(p.get(name).unwrap_or(""))
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
}

/// The `query` parameter. It is parsed once, on the query pool (parsing recurses along
/// the query's nesting, which the limits bound), with the rest of the work.
fn query_text(p: &Params) -> String {
    p.get("query").unwrap_or("").to_string()
}

/// Parses a query for the endpoints that show it rather than run it, on the query pool,
/// and hands the syntax tree to `show` there; a syntax error is `bad_data` with the
/// parser's message, as for a query that is run.
async fn with_parsed<T: Send + 'static>(
    state: &ApiState,
    text: String,
    show: impl FnOnce(&Expr) -> T + Send + 'static,
) -> ApiResult<T> {
    let engine = state.engine.clone();
    state
        .query_pool
        .run(async move {
            let expr = engine.parse_expr(&text)?;
            let shown = show(&expr);
            drop_tree(expr);
            Ok::<_, ApiError>(shown)
        })
        .await?
}

/// The request's timeout (which can only shorten the configured one) and options.
fn query_options(p: &Params, engine: &Engine) -> ApiResult<(Duration, QueryOptions)> {
    let configured = engine.config().timeout_ms;
    let timeout_ms = match p.duration("timeout")? {
        Some(ms) => (ms.max(0) as u64).min(configured),
        None => configured,
    };
    // Zero or negative: the configured lookback delta, as in Prometheus.
    let lookback_delta_ms = p.duration("lookback_delta")?.filter(|ms| *ms > 0);
    let timeout = Duration::from_millis(timeout_ms);
    Ok((
        timeout,
        QueryOptions {
            timeout: Some(timeout),
            lookback_delta_ms,
        },
    ))
}

/// Runs a query, ending it as timed out if the engine has not answered by `timeout`
/// (an answer that comes after the deadline is refused too, so the timeout holds
/// whether or not the engine yields while it computes).
async fn run(
    timeout: Duration,
    query: impl Future<Output = Result<QueryResult, QueryError>>,
) -> ApiResult<QueryResult> {
    let started = Instant::now();
    let timed_out = || {
        ApiError::from(QueryError::Timeout(
            "query timed out in expression evaluation".into(),
        ))
    };
    match tokio::time::timeout(timeout, query).await {
        Ok(Ok(_)) if started.elapsed() > timeout => Err(timed_out()),
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(timed_out()),
    }
}

/// The success envelope of a query, written by hand so numbers look exactly as
/// Prometheus writes them.
fn query_response(
    mut result: QueryResult,
    limit: usize,
    stats: Option<&str>,
    started: Instant,
) -> Response {
    if limit > 0 {
        let truncated = match &mut result.value {
            Value::Vector(v) if v.len() > limit => {
                v.truncate(limit);
                true
            }
            Value::Matrix(m) if m.len() > limit => {
                m.truncate(limit);
                true
            }
            _ => false,
        };
        if truncated {
            result.warnings.push(TRUNCATED_WARNING.to_string());
        }
    }
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"status":"success","data":{"resultType":""#);
    out.push_str(result.value.result_type());
    out.push_str(r#"","result":"#);
    write_value(&mut out, &result.value);
    if stats.is_some_and(|s| !s.is_empty()) {
        let secs = started.elapsed().as_secs_f64();
        let stats = json!({
            "timings": {"evalTotalTime": secs, "execTotalTime": secs},
            "samples": {"totalQueryableSamples": result.samples_loaded},
        });
        out.push_str(r#","stats":"#);
        out.push_str(&stats.to_string());
    }
    out.push('}');
    for (key, list) in [("warnings", &result.warnings), ("infos", &result.infos)] {
        if !list.is_empty() {
            let _ = write!(out, r#","{key}":"#);
            out.push_str(&Json::from(list.clone()).to_string());
        }
    }
    out.push('}');
    json_response(out)
}

fn json_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A query value as Prometheus's `result`.
pub fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Scalar { t, f } => write_point(out, *t, &format_float(*f)),
        Value::String { t, s } => {
            let _ = write!(out, "[{},", format_timestamp(*t));
            write_str(out, s);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                match &s.h {
                    Some(h) => {
                        out.push_str(r#","histogram":"#);
                        write_histogram_point(out, s.t, h);
                    }
                    None => {
                        out.push_str(r#","value":"#);
                        write_point(out, s.t, &format_float(s.f));
                    }
                }
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                // Like Prometheus, a series without float points has no "values".
                if !s.floats.is_empty() {
                    out.push_str(r#","values":["#);
                    for (j, (t, f)) in s.floats.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_point(out, *t, &format_float(*f));
                    }
                    out.push(']');
                }
                if !s.histograms.is_empty() {
                    out.push_str(r#","histograms":["#);
                    for (j, (t, h)) in s.histograms.iter().enumerate() {
                        if j > 0 {
                            out.push(',');
                        }
                        write_histogram_point(out, *t, h);
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push(']');
        }
    }
}

/// A native histogram point as Prometheus writes it: `[t, {"count": "…", "sum": "…",
/// "buckets": [[boundary rule, "lower", "upper", "count"], …]}]`, buckets in value
/// order and only those with a count; the rule is 0 for `(l, u]`, 1 for `[l, u)`, 3 for
/// the zero bucket `[l, u]`.
fn write_histogram_point(out: &mut String, t: i64, h: &FloatHistogram) {
    let _ = write!(
        out,
        "[{},{{\"count\":\"{}\",\"sum\":\"{}\"",
        format_timestamp(t),
        format_float(h.count),
        format_float(h.sum)
    );
    let buckets: Vec<_> = h.buckets().into_iter().filter(|b| b.count != 0.0).collect();
    if !buckets.is_empty() {
        out.push_str(r#","buckets":["#);
        for (i, b) in buckets.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let rule = match (b.lower_inclusive, b.upper_inclusive) {
                (false, true) => 0,
                (true, false) => 1,
                (false, false) => 2,
                (true, true) => 3,
            };
            let _ = write!(
                out,
                "[{rule},\"{}\",\"{}\",\"{}\"]",
                format_float(b.lower),
                format_float(b.upper),
                format_float(b.count)
            );
        }
        out.push(']');
    }
    out.push_str("}]");
}

fn write_point(out: &mut String, t: i64, v: &str) {
    let _ = write!(out, "[{},\"{v}\"]", format_timestamp(t));
}

fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.as_slice().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &l.name);
        out.push(':');
        write_str(out, &l.value);
    }
    out.push('}');
}

fn write_str(out: &mut String, s: &str) {
    out.push_str(&Json::from(s).to_string());
}

/// A timestamp in ms as Prometheus writes it: seconds, and when there are milliseconds,
/// a point and exactly three digits (`1435781451.781`, `1435781451.100`, `1435781451`).
pub fn format_timestamp(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (secs, frac) = (abs / 1000, abs % 1000);
    if frac == 0 {
        format!("{sign}{secs}")
    } else {
        format!("{sign}{secs}.{frac:03}")
    }
}

async fn format_query(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let p = request_params(&method, &headers, raw, &body)?;
    let pretty = with_parsed(&state, query_text(&p), |e| e.pretty()).await?;
    Ok(success(Json::String(pretty)))
}

async fn parse_query(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let p = request_params(&method, &headers, raw, &body)?;
    Ok(success(
        with_parsed(&state, query_text(&p), ast_json).await?,
    ))
}

async fn query_exemplars(
    State(state): State<ApiState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let p = request_params(&method, &headers, raw, &body)?;
    let (start, end) = p.range()?;
    let selectors = with_parsed(&state, query_text(&p), |e| {
        let mut found = Vec::new();
        collect_selectors(e, &mut found);
        found
    })
    .await?;
    // Prometheus answers `null` for a query without selectors.
    if selectors.is_empty() {
        return Ok(success(Json::Null));
    }
    let querier = state.db.querier();
    let mut by_series: std::collections::BTreeMap<Labels, Vec<Exemplar>> = Default::default();
    let mut left = MAX_EXEMPLARS_PER_QUERY;
    for sets in selectors {
        for matchers in sets.map_err(ApiError::bad_data)? {
            if left == 0 {
                break;
            }
            for se in querier.exemplars(&matchers, start, end, left).await? {
                if let std::collections::btree_map::Entry::Vacant(v) = by_series.entry(se.labels) {
                    left -= se.exemplars.len();
                    v.insert(se.exemplars);
                }
            }
        }
    }
    let data: Vec<Json> = by_series
        .into_iter()
        .map(|(labels, exemplars)| {
            json!({
                "seriesLabels": super::labels_json(&labels),
                "exemplars": exemplars.iter().map(|e| json!({
                    "labels": super::labels_json(&e.labels),
                    "value": format_float(e.value),
                    "timestamp": e.timestamp_ms as f64 / 1000.0,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(success(Json::Array(data)))
}

/// Most exemplars one `/api/v1/query_exemplars` answer holds.
pub const MAX_EXEMPLARS_PER_QUERY: usize = 100_000;

/// The matcher sets of every selector in `e`.
fn collect_selectors(e: &Expr, out: &mut Vec<Result<Vec<Vec<Matcher>>, String>>) {
    e.walk(&mut |node| {
        match node {
            Expr::VectorSelector(vs) => out.push(selector_matchers(vs)),
            Expr::MatrixSelector(ms) => out.push(selector_matchers(&ms.vs)),
            _ => {}
        }
        true
    });
}

async fn status_config() -> Response {
    // Nothing is scraped or evaluated: data arrives by remote write.
    success(json!({"yaml": "global: {}\n"}))
}

async fn status_flags(State(state): State<ApiState>) -> Response {
    let c = state.engine.config();
    success(json!({
        "query.lookback-delta": format_duration(c.lookback_delta_ms),
        "query.timeout": format_duration(c.timeout_ms),
        "query.max-samples": c.max_samples.to_string(),
    }))
}

async fn runtime_info() -> Response {
    let started = *STARTED_MS.get_or_init(opendata_timeseries::storage::now_ms);
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    success(json!({
        "startTime": format_rfc3339(started),
        "CWD": cwd,
        "reloadConfigSuccess": true,
        "lastConfigTime": format_rfc3339(started),
        "corruptionCount": 0,
        "goroutineCount": 0,
        "GOMAXPROCS": threads,
        "GOMEMLIMIT": 0,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": "",
    }))
}

async fn rules() -> Response {
    success(json!({"groups": []}))
}

async fn alerts() -> Response {
    success(json!({"alerts": []}))
}

/// A duration in ms as Prometheus prints one: largest units first (`5m`, `1h30m`, `2w`).
pub fn format_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = ms;
    let mut out = String::new();
    for (unit, len) in UNITS {
        if rest >= len {
            let _ = write!(out, "{}{unit}", rest / len);
            rest %= len;
        }
    }
    out
}

/// Ms since the epoch as RFC 3339 in UTC, with milliseconds.
fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        tod / 3600,
        tod / 60 % 60,
        tod % 60,
        ms.rem_euclid(1000)
    )
}

/// The syntax tree as JSON, in the shape of Prometheus's `parse_query`: every node has
/// a `type` (`vectorSelector`, `matrixSelector`, `subquery`, `call`, `aggregation`,
/// `binaryExpr`, `unaryExpr`, `parenExpr`, `numberLiteral`, `stringLiteral`); durations
/// and offsets are in ms (0 for a duration expression that depends on the query's
/// `step()` or `range()`); a named selector's matchers start with its `__name__`
/// matcher; `matching` is `null` unless both sides of a binary operator are vectors.
/// A selector with `or` between matcher sets (an extension of the engine) lists the
/// other sets in `orMatchers`; the experimental modifiers appear as `anchored` and
/// `smoothed` on selectors and `fillValues` in `matching` when they are used.
pub fn ast_json(e: &Expr) -> Json {
    with_stack(|| ast_json_inner(e))
}

fn ast_json_inner(e: &Expr) -> Json {
    match e {
        Expr::Aggregate(a) => {
            let (grouping, without) = match &a.modifier {
                Some(LabelModifier::Include(l)) => (l.clone(), false),
                Some(LabelModifier::Exclude(l)) => (l.clone(), true),
                None => (Vec::new(), false),
            };
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": ast_json(&a.expr),
                "param": a.param.as_deref().map_or(Json::Null, ast_json),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Unary(u) => json!({
            "type": "unaryExpr",
            "op": if u.op == UnaryOp::Neg { "-" } else { "+" },
            "expr": ast_json(&u.expr),
        }),
        Expr::Binary(b) => {
            let vectors =
                b.lhs.value_type() == ValueType::Vector && b.rhs.value_type() == ValueType::Vector;
            let matching = if vectors {
                let (card, include) = match b.modifier.as_ref().map(|m| &m.card) {
                    Some(VectorMatchCardinality::ManyToOne(l)) => ("many-to-one", l.clone()),
                    Some(VectorMatchCardinality::OneToMany(l)) => ("one-to-many", l.clone()),
                    Some(VectorMatchCardinality::ManyToMany) => ("many-to-many", Vec::new()),
                    Some(VectorMatchCardinality::OneToOne) | None => {
                        if b.op.is_set_operator() {
                            ("many-to-many", Vec::new())
                        } else {
                            ("one-to-one", Vec::new())
                        }
                    }
                };
                let (labels, on) = match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                    Some(LabelModifier::Include(l)) => (l.clone(), true),
                    Some(LabelModifier::Exclude(l)) => (l.clone(), false),
                    None => (Vec::new(), false),
                };
                let mut m = json!({"card": card, "labels": labels, "on": on, "include": include});
                if let Some(fill) = b.modifier.as_ref().map(|m| m.fill)
                    && !fill.is_empty()
                {
                    let value = |v: Option<f64>| v.map_or(Json::Null, |v| json!(format_float(v)));
                    m["fillValues"] = json!({"lhs": value(fill.lhs), "rhs": value(fill.rhs)});
                }
                m
            } else {
                Json::Null
            };
            json!({
                "type": "binaryExpr",
                "op": b.op.to_string(),
                "lhs": ast_json(&b.lhs),
                "rhs": ast_json(&b.rhs),
                "matching": matching,
                "bool": b.return_bool(),
            })
        }
        Expr::Paren(p) => json!({"type": "parenExpr", "expr": ast_json(&p.expr)}),
        Expr::Subquery(s) => {
            let mut node = json!({
                "type": "subquery",
                "expr": ast_json(&s.expr),
                "range": duration_json(Some(&s.range)),
                "step": duration_json(s.step.as_ref()),
                "offset": duration_json(s.offset.as_ref()),
            });
            add_at(&mut node, s.at.as_ref());
            node
        }
        Expr::NumberLiteral(n) => json!({"type": "numberLiteral", "val": format_float(n.val)}),
        Expr::StringLiteral(s) => json!({"type": "stringLiteral", "val": s.val}),
        Expr::VectorSelector(vs) => selector_json(vs, None),
        Expr::MatrixSelector(ms) => selector_json(&ms.vs, Some(&ms.range)),
        Expr::Call(c) => json!({
            "type": "call",
            "func": {
                "name": c.func.name,
                "argTypes": c.func.arg_types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "variadic": c.func.variadic,
                "returnType": c.func.return_type.to_string(),
            },
            "args": c.args.iter().map(ast_json).collect::<Vec<_>>(),
        }),
    }
}

/// A duration in ms: its value when it does not depend on the query, else 0.
fn duration_json(d: Option<&DurationExpr>) -> Json {
    json!(d.and_then(DurationExpr::constant_ms).unwrap_or(0))
}

fn selector_json(vs: &parser::VectorSelector, range: Option<&DurationExpr>) -> Json {
    let name = vs.name.clone().unwrap_or_default();
    let matchers = |set: &[parser::Matcher]| -> Vec<Json> {
        let mut out = Vec::new();
        let explicit = set
            .iter()
            .any(|m| m.name == opendata_timeseries::model::METRIC_NAME && m.value == name);
        if !name.is_empty() && !explicit {
            out.push(json!({"name": opendata_timeseries::model::METRIC_NAME, "type": "=", "value": name}));
        }
        out.extend(
            set.iter()
                .map(|m| json!({"name": m.name, "type": m.op.to_string(), "value": m.value})),
        );
        out
    };
    let (first, others): (&[parser::Matcher], &[Vec<parser::Matcher>]) =
        if vs.or_matchers.is_empty() {
            (&vs.matchers, &[])
        } else {
            (&vs.or_matchers[0], &vs.or_matchers[1..])
        };
    let mut node = json!({
        "type": if range.is_some() { "matrixSelector" } else { "vectorSelector" },
        "name": name,
        "matchers": matchers(first),
        "offset": duration_json(vs.offset.as_ref()),
    });
    if let Some(r) = range {
        node["range"] = duration_json(Some(r));
    }
    if !others.is_empty() {
        node["orMatchers"] = Json::from(
            others
                .iter()
                .map(|set| Json::from(matchers(set)))
                .collect::<Vec<_>>(),
        );
    }
    if vs.anchored {
        node["anchored"] = json!(true);
    }
    if vs.smoothed {
        node["smoothed"] = json!(true);
    }
    add_at(&mut node, vs.at.as_ref());
    node
}

/// `timestamp` (ms, or `null`) and `startOrEnd` (`"start"`, `"end"` or `null`).
fn add_at(node: &mut Json, at: Option<&AtModifier>) {
    let (timestamp, start_or_end) = match at {
        Some(AtModifier::Start) => (Json::Null, json!("start")),
        Some(AtModifier::End) => (Json::Null, json!("end")),
        Some(AtModifier::Timestamp(ms)) => (json!(ms), Json::Null),
        None => (Json::Null, Json::Null),
    };
    node["timestamp"] = timestamp;
    node["startOrEnd"] = start_or_end;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_format_values_like_go() {
        for (f, s) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (-2.25, "-2.25"),
            (0.1, "0.1"),
            (1e21, "1000000000000000000000"),
            (1.5e-7, "0.00000015"),
            (123456789.123, "123456789.123"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (-0.0, "-0"),
        ] {
            assert_eq!(format_float(f), s);
        }
    }

    #[test]
    fn should_format_timestamps_as_seconds() {
        assert_eq!(format_timestamp(1_435_781_451_781), "1435781451.781");
        assert_eq!(format_timestamp(1_435_781_451_000), "1435781451");
        assert_eq!(format_timestamp(1_435_781_451_100), "1435781451.100");
        assert_eq!(format_timestamp(5), "0.005");
        assert_eq!(format_timestamp(-1500), "-1.500");
        assert_eq!(format_timestamp(0), "0");
    }

    #[test]
    fn should_format_durations_and_dates() {
        assert_eq!(format_duration(300_000), "5m");
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(format_duration(1_296_000_000), "2w1d");
        assert_eq!(format_duration(1500), "1s500ms");
        assert_eq!(
            format_rfc3339(1_700_000_000_123),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn should_write_every_result_type() {
        use opendata_timeseries::promql::{InstantSample, RangeSeries};
        let labels = Labels::from_pairs([("__name__", "m"), ("job", "a\"b")]);
        let mut out = String::new();
        write_value(&mut out, &Value::Scalar { t: 1000, f: 2.0 });
        assert_eq!(out, r#"[1,"2"]"#);
        out.clear();
        write_value(
            &mut out,
            &Value::String {
                t: 1500,
                s: "x\ny".into(),
            },
        );
        assert_eq!(out, r#"[1.500,"x\ny"]"#);
        out.clear();
        write_value(
            &mut out,
            &Value::Vector(vec![InstantSample {
                labels: labels.clone(),
                t: 1001,
                f: f64::NAN,
                h: None,
            }]),
        );
        assert_eq!(
            out,
            r#"[{"metric":{"__name__":"m","job":"a\"b"},"value":[1.001,"NaN"]}]"#
        );
        out.clear();
        write_value(
            &mut out,
            &Value::Matrix(vec![
                RangeSeries {
                    labels,
                    floats: vec![(1000, 1.0), (2000, f64::INFINITY)],
                    histograms: vec![],
                },
                RangeSeries {
                    labels: Labels::default(),
                    floats: vec![],
                    histograms: vec![],
                },
            ]),
        );
        assert_eq!(
            out,
            r#"[{"metric":{"__name__":"m","job":"a\"b"},"values":[[1,"1"],[2,"+Inf"]]},{"metric":{}}]"#
        );
    }

    #[test]
    fn should_write_native_histograms_as_prometheus_does() {
        use opendata_timeseries::promql::{InstantSample, RangeSeries};
        let h = std::sync::Arc::new(FloatHistogram {
            count: 5.0,
            sum: 7.5,
            zero_threshold: 0.001,
            zero_count: 1.0,
            positive: vec![(0, 2.0), (1, 0.0), (2, 1.0)],
            negative: vec![(1, 1.0)],
            ..Default::default()
        });
        let mut out = String::new();
        write_value(
            &mut out,
            &Value::Vector(vec![InstantSample {
                labels: Labels::default(),
                t: 1000,
                f: 0.0,
                h: Some(h.clone()),
            }]),
        );
        assert_eq!(
            out,
            r#"[{"metric":{},"histogram":[1,{"count":"5","sum":"7.5","buckets":[[1,"-2","-1","1"],[3,"-0.001","0.001","1"],[0,"0.5","1","2"],[0,"2","4","1"]]}]}]"#
        );
        out.clear();
        write_value(
            &mut out,
            &Value::Matrix(vec![RangeSeries {
                labels: Labels::default(),
                floats: vec![(1000, 1.0)],
                histograms: vec![(2000, h)],
            }]),
        );
        assert!(
            out.starts_with(r#"[{"metric":{},"values":[[1,"1"]],"histograms":[[2,{"count":"5""#),
            "{out}"
        );
    }

    #[test]
    fn should_truncate_to_the_limit_with_a_warning() {
        use opendata_timeseries::promql::InstantSample;
        let v = (0..3)
            .map(|i| InstantSample {
                labels: Labels::from_pairs([("i", i.to_string())]),
                t: 0,
                f: 1.0,
                h: None,
            })
            .collect();
        let result = QueryResult {
            value: Value::Vector(v),
            warnings: vec![],
            infos: vec!["an info".into()],
            samples_loaded: 3,
        };
        let resp = query_response(result.clone(), 2, None, Instant::now());
        let body = body_json(resp);
        assert_eq!(body["data"]["result"].as_array().unwrap().len(), 2);
        assert_eq!(body["warnings"], json!([TRUNCATED_WARNING]));
        assert_eq!(body["infos"], json!(["an info"]));
        let body = body_json(query_response(result, 3, Some("all"), Instant::now()));
        assert!(body.get("warnings").is_none());
        assert_eq!(body["data"]["stats"]["samples"]["totalQueryableSamples"], 3);
    }

    fn body_json(resp: Response) -> Json {
        let body =
            futures::executor::block_on(axum::body::to_bytes(resp.into_body(), 1 << 20)).unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[test]
    fn should_translate_the_syntax_tree() {
        let ast = |q: &str| ast_json(&parser::parse(q).unwrap());
        assert_eq!(
            ast(r#"up{job="a"}"#),
            json!({
                "type": "vectorSelector", "name": "up", "offset": 0,
                "matchers": [
                    {"name": "__name__", "type": "=", "value": "up"},
                    {"name": "job", "type": "=", "value": "a"}
                ],
                "timestamp": null, "startOrEnd": null
            })
        );
        assert_eq!(
            ast("1 + 1"),
            json!({
                "type": "binaryExpr", "op": "+", "bool": false, "matching": null,
                "lhs": {"type": "numberLiteral", "val": "1"},
                "rhs": {"type": "numberLiteral", "val": "1"}
            })
        );
        let a = ast("sum by (job) (rate(x[5m] offset -1m @ 100))");
        assert_eq!(a["type"], "aggregation");
        assert_eq!(a["op"], "sum");
        assert_eq!(a["grouping"], json!(["job"]));
        assert_eq!(a["without"], false);
        assert_eq!(a["param"], Json::Null);
        let call = &a["expr"];
        assert_eq!(call["type"], "call");
        assert_eq!(
            call["func"],
            json!({"name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"})
        );
        let ms = &call["args"][0];
        assert_eq!(ms["type"], "matrixSelector");
        assert_eq!(ms["range"], 300_000);
        assert_eq!(ms["offset"], -60_000);
        assert_eq!(ms["timestamp"], 100_000);
        let b = ast("a + on(b) group_left(c) d");
        assert_eq!(
            b["matching"],
            json!({"card": "many-to-one", "labels": ["b"], "on": true, "include": ["c"]})
        );
        assert_eq!(ast("a / b")["matching"]["card"], "one-to-one");
        assert_eq!(ast("a or b")["matching"]["card"], "many-to-many");
        assert_eq!(ast("a > bool 1")["bool"], true);
        assert_eq!(ast("a > bool 1")["matching"], Json::Null);
        let sq = ast("max_over_time(x[1h:5m] @ end())");
        let sq = &sq["args"][0];
        assert_eq!(sq["type"], "subquery");
        assert_eq!(sq["range"], 3_600_000);
        assert_eq!(sq["step"], 300_000);
        assert_eq!(sq["startOrEnd"], "end");
        assert_eq!(ast("-x")["type"], "unaryExpr");
        assert_eq!(ast("(x)")["type"], "parenExpr");
        assert_eq!(ast(r#""s""#), json!({"type": "stringLiteral", "val": "s"}));
        assert_eq!(ast("Inf")["val"], "+Inf");
        assert_eq!(ast("+x")["op"], "+");
        // The experimental syntax.
        let all = parser::ParserOptions {
            features: parser::Features::all(),
            ..Default::default()
        };
        let ext = |q: &str| ast_json(&parser::parse_with(q, &all).unwrap());
        let a = ext("rate(x[5m] anchored)")["args"][0].clone();
        assert_eq!(
            (a["range"].clone(), a["anchored"].clone()),
            (json!(300_000), json!(true))
        );
        assert_eq!(ext("x smoothed")["smoothed"], true);
        // A duration that depends on the query's step is 0; a constant one is computed.
        assert_eq!(ext("x[5m + step()]")["range"], 0);
        assert_eq!(ext("x[2m * 3]")["range"], 360_000);
        assert_eq!(ext("x offset -(1m + 1m)")["offset"], -120_000);
        assert_eq!(
            ext("a + fill_left(1) b")["matching"]["fillValues"],
            json!({"lhs": "1", "rhs": null})
        );
        assert_eq!(ast("a + b")["matching"].get("fillValues"), None);
        assert_eq!(
            ast(r#"{__name__="up"}"#)["matchers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn should_find_selectors() {
        let has = |q: &str| {
            let mut found = Vec::new();
            collect_selectors(&parser::parse(q).unwrap(), &mut found);
            !found.is_empty()
        };
        assert!(has("up"));
        assert!(has("sum(rate(x[1m]))"));
        assert!(has("1 + topk(1, x)"));
        assert!(!has("1 + 1"));
        assert!(!has("vector(1)"));
    }
}
