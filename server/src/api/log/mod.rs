//! HTTP routes of the log database, mounted under `/api/v1/log`.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/log/append` | append records (JSON, protobuf or protobuf-JSON body) |
//! | `GET /api/v1/log/scan` | entries of one key; `follow=true` long-polls for new ones |
//! | `GET /api/v1/log/stream` | Server-Sent Events: entries of one key as they become visible |
//! | `GET /api/v1/log/count` | number of entries of one key in a sequence range |
//! | `GET /api/v1/log/keys` | keys by prefix, paginated |
//! | `GET /api/v1/log/segments` | segments |
//!
//! Keys are given as `key` (UTF-8 text) or `key_base64` (any bytes, base64).

mod params;
pub mod proto;

use std::convert::Infallible;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRef, Path, RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use opendata_common::Durability;
use opendata_log::model::{AppendOptions, Condition, LogEntry, Record};
use opendata_log::{LogFollower, LogHandle, LogRead};

use self::params::Params;
use self::proto::{
    AppendRequest, AppendResponse, CountResponse, Entry, KeyInfo, KeysResponse, ScanResponse,
    Segment, SegmentsResponse,
};
use crate::api::negotiate::DecodePool;
use crate::api::{ApiError, ApiResult, Format, Negotiated};
use crate::server::pool::WorkPool;

/// Default and largest number of entries one scan returns.
const DEFAULT_SCAN_LIMIT: usize = 1000;
const MAX_SCAN_LIMIT: usize = 100_000;
/// Default and largest long-poll wait.
const DEFAULT_FOLLOW_TIMEOUT_MS: u64 = 30_000;
const MAX_FOLLOW_TIMEOUT_MS: u64 = 300_000;
const DEFAULT_KEYS_LIMIT: usize = 1000;
const MAX_KEYS_LIMIT: usize = 10_000;

/// What the log routes share: the database and the pool large bodies decode on.
#[derive(Clone)]
struct LogState {
    log: LogHandle,
    pool: Arc<WorkPool>,
}

impl FromRef<LogState> for LogHandle {
    fn from_ref(state: &LogState) -> Self {
        state.log.clone()
    }
}

impl FromRef<LogState> for DecodePool {
    fn from_ref(state: &LogState) -> Self {
        DecodePool(Some(state.pool.clone()))
    }
}

/// The routes, to be nested at the server root; append bodies of 64 KiB or more are
/// decoded on `pool`.
pub fn router(log: LogHandle, pool: Arc<WorkPool>) -> Router {
    Router::new()
        .route("/api/v1/log/append", post(append))
        .route("/api/v1/log/scan", get(scan))
        .route("/api/v1/log/stream", get(stream))
        .route("/api/v1/log/count", get(count))
        .route("/api/v1/log/keys", get(keys))
        .route("/api/v1/log/segments", get(segments))
        .route("/api/v1/log/groups", get(list_groups))
        .route(
            "/api/v1/log/groups/{group}",
            get(group_offsets).put(commit_offsets).delete(delete_group),
        )
        .with_state(LogState { log, pool })
}

async fn append(
    State(log): State<LogHandle>,
    body: Negotiated<AppendRequest>,
) -> ApiResult<Response> {
    let db = log.writer()?;
    let req = body.value;
    let condition = condition_of(&req)?;
    let durability = if req.durable() {
        Durability::Remote
    } else {
        Durability::Memory
    };
    let records = req
        .records
        .into_iter()
        .map(|r| Record {
            key: r.key,
            value: r.value,
        })
        .collect();
    let result = db
        .append_with(
            records,
            AppendOptions {
                durability,
                condition,
            },
        )
        .await?;
    Ok(body.response.respond(&AppendResponse {
        sequences: result.sequences,
        timestamp_ms: result.timestamp_ms,
    }))
}

fn condition_of(req: &AppendRequest) -> ApiResult<Option<Condition>> {
    if req.expected_last_sequence.is_none() && !req.expect_empty {
        return Ok(None);
    }
    if req.expected_last_sequence.is_some() && req.expect_empty {
        return Err(ApiError::bad_data(
            "expectedLastSequence and expectEmpty cannot both be set",
        ));
    }
    let key = if !req.condition_key.is_empty() {
        req.condition_key.clone()
    } else {
        let first = req
            .records
            .first()
            .map(|r| r.key.clone())
            .ok_or_else(|| ApiError::bad_data("append needs at least one record"))?;
        if req.records.iter().any(|r| r.key != first) {
            return Err(ApiError::bad_data(
                "records have different keys: name the key the condition is about in conditionKey",
            ));
        }
        first
    };
    Ok(Some(Condition {
        key,
        last_sequence: req.expected_last_sequence,
    }))
}

fn to_wire(e: LogEntry) -> Entry {
    Entry {
        key: e.key,
        sequence: e.sequence,
        timestamp_ms: e.timestamp_ms,
        value: e.value,
    }
}

async fn scan(
    State(log): State<LogHandle>,
    format: Format,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let p = Params::parse(q.as_deref())?;
    let (key, start, end) = p.key_and_range()?;
    let start_time = p.u64("start_time")?;
    let limit = p.limit("limit", DEFAULT_SCAN_LIMIT, MAX_SCAN_LIMIT)?;
    let follow = p.bool("follow")?.unwrap_or(false);
    let timeout_ms = p
        .u64("timeout_ms")?
        .unwrap_or(DEFAULT_FOLLOW_TIMEOUT_MS)
        .min(MAX_FOLLOW_TIMEOUT_MS);
    p.reject_unknown(&[
        "key",
        "key_base64",
        "start_seq",
        "end_seq",
        "start_time",
        "limit",
        "follow",
        "timeout_ms",
    ])?;

    let mut entries = read_range(&log, &key, start, end, start_time, limit).await?;
    if entries.is_empty() && follow && end.is_none_or(|e| e > start) {
        let mut follower = LogFollower::new(log.clone(), key.clone(), start);
        entries = follower
            .next_batch(limit, Duration::from_millis(timeout_ms))
            .await?
            .into_iter()
            .filter(|e| end.is_none_or(|end| e.sequence < end))
            .filter(|e| start_time.is_none_or(|t| e.timestamp_ms >= t))
            .collect();
    }
    let next_sequence = entries.last().map(|e| e.sequence + 1).or(Some(start));
    Ok(format.respond(&ScanResponse {
        entries: entries.into_iter().map(to_wire).collect(),
        next_sequence,
    }))
}

/// `[start, end)`, or from `start` on when there is no end.
fn seq_range(start: u64, end: Option<u64>) -> (Bound<u64>, Bound<u64>) {
    let end = end.map_or(Bound::Unbounded, Bound::Excluded);
    (Bound::Included(start), end)
}

async fn read_range<R: LogRead>(
    r: &R,
    key: &Bytes,
    start: u64,
    end: Option<u64>,
    start_time: Option<u64>,
    limit: usize,
) -> opendata_log::Result<Vec<LogEntry>> {
    let range = seq_range(start, end);
    let iter = match start_time {
        Some(t) => r.scan_from_time(key.clone(), t, range).await?,
        None => r.scan(key.clone(), range).await?,
    };
    iter.collect(limit).await
}

async fn stream(State(log): State<LogHandle>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let p = Params::parse(q.as_deref())?;
    let key = p.key("key")?;
    let start = p.u64("start_seq")?.unwrap_or(0);
    p.reject_unknown(&["key", "key_base64", "start_seq"])?;
    Ok(sse_events(LogFollower::new(log, key, start)).await)
}

async fn sse_events<R: LogRead + Send + Sync + 'static>(follower: LogFollower<R>) -> Response {
    let stream = entry_stream(follower);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn entry_stream<R: LogRead + Send + Sync + 'static>(
    follower: LogFollower<R>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    futures::stream::unfold(Some(follower), |state| async move {
        let mut follower = state?;
        loop {
            match follower.next_batch(1000, Duration::from_secs(30)).await {
                Ok(batch) if batch.is_empty() => continue,
                Ok(batch) => {
                    let events: Vec<Result<Event, Infallible>> = batch
                        .into_iter()
                        .map(|e| {
                            let seq = e.sequence;
                            let data = String::from_utf8(
                                serde_json::to_vec(&to_wire(e)).expect("entries serialize"),
                            )
                            .expect("JSON is UTF-8");
                            Ok(Event::default()
                                .id(seq.to_string())
                                .event("entry")
                                .data(data))
                        })
                        .collect();
                    return Some((futures::stream::iter(events), Some(follower)));
                }
                Err(err) => {
                    let event = Event::default().event("error").data(err.to_string());
                    return Some((futures::stream::iter(vec![Ok(event)]), None));
                }
            }
        }
    })
    .flatten()
}

async fn count(
    State(log): State<LogHandle>,
    format: Format,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let p = Params::parse(q.as_deref())?;
    let (key, start, end) = p.key_and_range()?;
    p.reject_unknown(&["key", "key_base64", "start_seq", "end_seq"])?;
    let n = log.count(key, seq_range(start, end)).await?;
    Ok(format.respond(&CountResponse { count: n }))
}

async fn keys(
    State(log): State<LogHandle>,
    format: Format,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let p = Params::parse(q.as_deref())?;
    let prefix = p.bytes("prefix")?.unwrap_or_default();
    let after = p.bytes("after")?;
    let limit = p.limit("limit", DEFAULT_KEYS_LIMIT, MAX_KEYS_LIMIT)?;
    p.reject_unknown(&["prefix", "prefix_base64", "after", "after_base64", "limit"])?;
    let page = log.list_keys(&prefix, after.as_deref(), limit).await?;
    Ok(format.respond(&KeysResponse {
        has_more: page.next_after.is_some(),
        next_after: page.next_after.unwrap_or_default(),
        keys: page
            .keys
            .into_iter()
            .map(|k| KeyInfo {
                key: k.key,
                last_sequence: k.last_sequence,
            })
            .collect(),
    }))
}

async fn segments(
    State(log): State<LogHandle>,
    format: Format,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let p = Params::parse(q.as_deref())?;
    p.reject_unknown(&[])?;
    let list = log.list_segments().await?;
    Ok(format.respond(&SegmentsResponse {
        segments: list
            .into_iter()
            .map(|s| Segment {
                id: s.id,
                start_sequence: s.start_sequence,
                end_sequence: s.end_sequence,
                start_time_ms: s.start_time_ms,
            })
            .collect(),
    }))
}

/// `GET /api/v1/log/groups`: every consumer group with committed offsets.
async fn list_groups(State(log): State<LogHandle>, format: Format) -> ApiResult<Response> {
    let groups = log.list_groups().await?;
    Ok(format.respond(&proto::GroupsResponse { groups }))
}

fn offsets_to_wire(offsets: Vec<opendata_log::GroupOffset>) -> proto::GroupOffsets {
    proto::GroupOffsets {
        offsets: offsets
            .into_iter()
            .filter(|o| o.offset >= 0)
            .map(|o| proto::GroupOffset {
                topic: o.topic,
                partition: o.partition,
                offset: o.offset as u64,
                metadata: o.metadata,
                commit_time_ms: o.commit_ms,
            })
            .collect(),
    }
}

/// `GET /api/v1/log/groups/{group}`: the group's committed offsets (the same ones
/// Kafka consumers commit and fetch).
async fn group_offsets(
    State(log): State<LogHandle>,
    Path(group): Path<String>,
    format: Format,
) -> ApiResult<Response> {
    Ok(format.respond(&offsets_to_wire(log.group_offsets(&group).await?)))
}

/// `PUT /api/v1/log/groups/{group}`: commits offsets, durably; answers with every
/// committed offset of the group.
async fn commit_offsets(
    State(log): State<LogHandle>,
    Path(group): Path<String>,
    format: Format,
    body: Negotiated<proto::GroupOffsets>,
) -> ApiResult<Response> {
    let db = log.writer()?;
    if group.is_empty() {
        return Err(ApiError::bad_data("the group name must not be empty"));
    }
    let topics = db.topic_snapshot();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut offsets = Vec::new();
    for o in body.value.offsets {
        let Some(t) = topics.get(&o.topic) else {
            return Err(ApiError::bad_data(format!("no topic {:?}", o.topic)));
        };
        if o.partition >= t.partitions {
            return Err(ApiError::bad_data(format!(
                "topic {:?} has no partition {}",
                o.topic, o.partition
            )));
        }
        let offset = i64::try_from(o.offset)
            .map_err(|_| ApiError::bad_data(format!("offset {} is too large", o.offset)))?;
        offsets.push(opendata_log::GroupOffset {
            topic: o.topic,
            partition: o.partition,
            offset,
            leader_epoch: -1,
            metadata: o.metadata,
            commit_ms: now,
        });
    }
    db.commit_group_offsets(&group, &offsets, Durability::Remote)
        .await?;
    Ok(format.respond(&offsets_to_wire(db.group_offsets(&group).await?)))
}

/// `DELETE /api/v1/log/groups/{group}`: forgets the group's committed offsets.
async fn delete_group(
    State(log): State<LogHandle>,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    let n = log.writer()?.delete_group_offsets(&group).await?;
    if n == 0 {
        return Err(ApiError::not_found(format!(
            "no committed offsets for group {group:?}"
        )));
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}
