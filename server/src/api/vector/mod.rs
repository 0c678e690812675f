//! HTTP routes of the vector database, mounted under `/api/v1/vector`.
//!
//! | route | what |
//! |---|---|
//! | `POST /api/v1/vector/collections` | create a collection (201; 200 if it exists identically) |
//! | `GET /api/v1/vector/collections` | list collections |
//! | `GET /api/v1/vector/collections/{name}` | describe one |
//! | `DELETE /api/v1/vector/collections/{name}` | drop one with all its data |
//! | `POST /api/v1/vector/collections/{name}/upsert` | insert or replace vectors |
//! | `POST /api/v1/vector/collections/{name}/patch` | change attributes |
//! | `POST /api/v1/vector/collections/{name}/delete` | delete by ids or by filter |
//! | `POST /api/v1/vector/collections/{name}/get` | read records by id |
//! | `GET /api/v1/vector/collections/{name}/vectors/{id}` | read one record (404 if absent) |
//! | `POST /api/v1/vector/collections/{name}/search` | nearest neighbours |
//! | `POST /api/v1/vector/collections/{name}/search/batch` | several searches |
//!
//! Bodies are JSON (`application/json`; `application/protobuf+json` is read the same way)
//! or binary protobuf (`application/protobuf`, messages in [`proto`]). JSON answers have
//! the envelope `{"status":"success","data":...}`; protobuf answers are the bare message.
//! Errors are always `{"status":"error","errorType":...,"error":...}`.

pub mod proto;
pub mod wire;

use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use opendata_vector::model::{
    CollectionInfo, FieldSelection, SearchResponse, VectorRecord, WriteResult,
};
use opendata_vector::{Filter, VectorDb};
use serde_json::{Value, json};

use self::wire::{
    CreateBody, DeleteBody, DeleteTarget, GetBody, PatchBody, SearchBatchBody, SearchBody,
    UpsertBody, check_ids, get_fields,
};
use crate::api::negotiate::DecodePool;
use crate::api::{ApiError, ApiResult, Format, Negotiated};
use crate::server::pool::WorkPool;

/// The routes, to be merged into the server's router.
/// What the vector routes share: the database and the pool searches run on.
#[derive(Clone)]
struct VectorState {
    db: VectorDb,
    pool: Arc<WorkPool>,
}

impl FromRef<VectorState> for VectorDb {
    fn from_ref(state: &VectorState) -> Self {
        state.db.clone()
    }
}

impl FromRef<VectorState> for Arc<WorkPool> {
    fn from_ref(state: &VectorState) -> Self {
        state.pool.clone()
    }
}

impl FromRef<VectorState> for DecodePool {
    fn from_ref(state: &VectorState) -> Self {
        DecodePool(Some(state.pool.clone()))
    }
}

/// The routes, to be merged into the server's router; searches run on `pool`.
pub fn router(db: VectorDb, pool: Arc<WorkPool>) -> Router {
    const C: &str = "/api/v1/vector/collections";
    Router::new()
        .route(C, get(list_collections).post(create_collection))
        .route(
            &format!("{C}/{{name}}"),
            get(describe_collection).delete(drop_collection),
        )
        .route(&format!("{C}/{{name}}/upsert"), post(upsert))
        .route(&format!("{C}/{{name}}/patch"), post(patch))
        .route(&format!("{C}/{{name}}/delete"), post(delete))
        .route(&format!("{C}/{{name}}/get"), post(get_records))
        .route(&format!("{C}/{{name}}/vectors/{{*id}}"), get(get_one))
        .route(&format!("{C}/{{name}}/search"), post(search))
        .route(&format!("{C}/{{name}}/search/batch"), post(search_batch))
        .with_state(VectorState { db, pool })
}

/// An answer in the vector API's style: JSON in the success envelope, protobuf bare.
fn reply<M: prost::Message>(
    format: Format,
    status: StatusCode,
    json: impl FnOnce() -> Value,
    proto: impl FnOnce() -> M,
) -> Response {
    format.respond_enveloped(status, json, proto)
}

/// The `{name}` of a route, with path failures as JSON errors.
struct CollectionName(String);

impl<S: Send + Sync> FromRequestParts<S> for CollectionName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_data(format!("bad collection path: {}", e.body_text())))?;
        Ok(CollectionName(name))
    }
}

fn write_allowed(db: &VectorDb) -> ApiResult<()> {
    if db.is_read_only() {
        Err(ApiError::read_only())
    } else {
        Ok(())
    }
}

fn info_json(info: &CollectionInfo) -> Value {
    serde_json::to_value(info).unwrap_or(Value::Null)
}

fn write_reply(format: Format, r: WriteResult) -> Response {
    reply(
        format,
        StatusCode::OK,
        || json!({"count": r.count, "missing": r.missing}),
        || proto::WriteResponse {
            count: r.count,
            missing: r.missing,
        },
    )
}

async fn create_collection(
    State(db): State<VectorDb>,
    body: Negotiated<CreateBody>,
) -> ApiResult<Response> {
    write_allowed(&db)?;
    let spec = body.value.to_spec()?;
    let existed = db.collection_spec(&spec.name).is_ok();
    let info = db.create_collection(spec).await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(reply(
        body.response,
        status,
        || info_json(&info),
        || proto::CollectionInfo::from_model(&info),
    ))
}

async fn list_collections(State(db): State<VectorDb>, format: Format) -> ApiResult<Response> {
    let list = db.list_collections().await?;
    Ok(reply(
        format,
        StatusCode::OK,
        || json!({"collections": list.iter().map(info_json).collect::<Vec<_>>()}),
        || proto::ListCollectionsResponse {
            collections: list.iter().map(proto::CollectionInfo::from_model).collect(),
        },
    ))
}

async fn describe_collection(
    State(db): State<VectorDb>,
    CollectionName(name): CollectionName,
    format: Format,
) -> ApiResult<Response> {
    let info = db.describe_collection(&name).await?;
    Ok(reply(
        format,
        StatusCode::OK,
        || info_json(&info),
        || proto::CollectionInfo::from_model(&info),
    ))
}

async fn drop_collection(
    State(db): State<VectorDb>,
    CollectionName(name): CollectionName,
    format: Format,
) -> ApiResult<Response> {
    write_allowed(&db)?;
    db.drop_collection(&name).await?;
    Ok(reply(
        format,
        StatusCode::OK,
        || json!({"name": name}),
        || proto::DropCollectionResponse { name: name.clone() },
    ))
}

async fn upsert(
    State(db): State<VectorDb>,
    CollectionName(name): CollectionName,
    body: Negotiated<UpsertBody>,
) -> ApiResult<Response> {
    write_allowed(&db)?;
    let spec = db.collection_spec(&name)?;
    let (records, durability) = body.value.to_records(&spec)?;
    let r = db.upsert_checked(&name, records, durability).await?;
    Ok(write_reply(body.response, r))
}

async fn patch(
    State(db): State<VectorDb>,
    CollectionName(name): CollectionName,
    body: Negotiated<PatchBody>,
) -> ApiResult<Response> {
    write_allowed(&db)?;
    let spec = db.collection_spec(&name)?;
    let (patches, durability) = body.value.to_patches(&spec)?;
    let r = db.patch_checked(&name, patches, durability).await?;
    Ok(write_reply(body.response, r))
}

async fn delete(
    State(db): State<VectorDb>,
    CollectionName(name): CollectionName,
    body: Negotiated<DeleteBody>,
) -> ApiResult<Response> {
    write_allowed(&db)?;
    let spec = db.collection_spec(&name)?;
    let durability = wire::parse_durability(&body.value.durability)?;
    let r = match body.value.target {
        DeleteTarget::Ids(ids) => {
            check_ids(&ids)?;
            db.delete(&name, ids, durability).await?
        }
        DeleteTarget::Filter(f) => {
            let filter = Filter::from_json(&f, &spec)?;
            db.delete_by_filter(&name, filter, durability).await?
        }
    };
    Ok(write_reply(body.response, r))
}

fn record_json(r: &VectorRecord, fields: &FieldSelection) -> Value {
    let mut o = serde_json::Map::new();
    o.insert("id".into(), Value::String(r.id.clone()));
    if fields.vector {
        o.insert("vector".into(), json!(r.vector));
    }
    if fields.wants_attributes() {
        o.insert(
            "attributes".into(),
            Value::Object(
                r.attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        );
    }
    Value::Object(o)
}

fn record_proto(r: &VectorRecord, fields: &FieldSelection) -> proto::Vector {
    proto::Vector {
        id: r.id.clone(),
        values: if fields.vector {
            r.vector.clone()
        } else {
            Vec::new()
        },
        attributes: proto::attributes_from_model(&r.attributes),
    }
}

async fn get_records(
    State(db): State<VectorDb>,
    CollectionName(name): CollectionName,
    body: Negotiated<GetBody>,
) -> ApiResult<Response> {
    let spec = db.collection_spec(&name)?;
    let GetBody { ids, fields } = body.value;
    check_ids(&ids)?;
    let fields = get_fields(fields.as_deref(), &spec)?;
    let got = db.get(&name, &ids, &fields).await?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for (id, r) in ids.into_iter().zip(got) {
        match r {
            Some(r) => found.push(r),
            None => missing.push(id),
        }
    }
    Ok(reply(
        body.response,
        StatusCode::OK,
        || {
            json!({
                "vectors": found.iter().map(|r| record_json(r, &fields)).collect::<Vec<_>>(),
                "missing": missing,
            })
        },
        || proto::GetResponse {
            vectors: found.iter().map(|r| record_proto(r, &fields)).collect(),
            missing: missing.clone(),
        },
    ))
}

async fn get_one(
    State(db): State<VectorDb>,
    path: Result<Path<(String, String)>, PathRejection>,
    format: Format,
) -> ApiResult<Response> {
    let Path((name, id)) =
        path.map_err(|e| ApiError::bad_data(format!("bad vector path: {}", e.body_text())))?;
    db.collection_spec(&name)?;
    check_ids(std::slice::from_ref(&id))?;
    let fields = FieldSelection::all();
    let got = db
        .get(&name, std::slice::from_ref(&id), &fields)
        .await?
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| {
            ApiError::not_found(format!("vector {id:?} not found in collection {name:?}"))
        })?;
    Ok(reply(
        format,
        StatusCode::OK,
        || record_json(&got, &fields),
        || record_proto(&got, &fields),
    ))
}

fn search_json(r: &SearchResponse) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

async fn search(
    State(db): State<VectorDb>,
    State(pool): State<Arc<WorkPool>>,
    CollectionName(name): CollectionName,
    body: Negotiated<SearchBody>,
) -> ApiResult<Response> {
    let spec = db.collection_spec(&name)?;
    let request = body.value.to_request(&spec, "query")?;
    let r = pool
        .run(async move { db.search_checked(&name, &request).await })
        .await??;
    Ok(reply(
        body.response,
        StatusCode::OK,
        || search_json(&r),
        || proto::SearchResponse::from_model(&r),
    ))
}

async fn search_batch(
    State(db): State<VectorDb>,
    State(pool): State<Arc<WorkPool>>,
    CollectionName(name): CollectionName,
    body: Negotiated<SearchBatchBody>,
) -> ApiResult<Response> {
    let spec = db.collection_spec(&name)?;
    let requests = body.value.to_requests(&spec)?;
    let results = pool
        .run(async move { db.search_batch_checked(&name, &requests).await })
        .await??;
    Ok(reply(
        body.response,
        StatusCode::OK,
        || json!({"results": results.iter().map(search_json).collect::<Vec<_>>()}),
        || proto::SearchBatchResponse {
            results: results
                .iter()
                .map(proto::SearchResponse::from_model)
                .collect(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::http::header::CONTENT_TYPE;
    use http_body_util::BodyExt;
    use prost::Message;
    use tower::ServiceExt;

    /// A router whose one route reads a search body the way every route reads its body,
    /// and answers `k` in the negotiated format.
    fn echo() -> Router {
        async fn handler(body: Negotiated<SearchBody>) -> Response {
            let k = body.value.k.unwrap_or(0) as u64;
            reply(
                body.response,
                StatusCode::OK,
                || json!({"k": k}),
                || proto::WriteResponse {
                    count: k,
                    missing: 0,
                },
            )
        }
        Router::new().route("/s", post(handler))
    }

    async fn send(
        ct: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, String, Vec<u8>) {
        let mut req = Request::post("/s");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = echo()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let media = resp
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, media, bytes)
    }

    #[tokio::test]
    async fn should_negotiate_bodies_and_answers() {
        let json_body = br#"{"vector":[1,2],"k":3}"#.to_vec();
        let (status, media, body) = send(Some("application/json"), None, json_body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(media, "application/json");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, json!({"status": "success", "data": {"k": 3}}));
        // No content type: JSON (so `curl -d` works).
        let (status, _, _) = send(None, None, json_body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        // JSON in, protobuf out.
        let (status, media, body) = send(
            Some("application/json"),
            Some("application/x-protobuf"),
            json_body,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(media, "application/protobuf");
        assert_eq!(
            proto::WriteResponse::decode(body.as_slice()).unwrap().count,
            3
        );
        // Protobuf in, protobuf out.
        let pb = proto::SearchRequest {
            vector: vec![1.0, 2.0],
            k: 7,
            ..Default::default()
        };
        let (status, _, body) =
            send(Some("application/x-protobuf"), None, pb.encode_to_vec()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            proto::WriteResponse::decode(body.as_slice()).unwrap().count,
            7
        );
        // Errors are JSON envelopes naming the problem.
        for (ct, body, status, needle) in [
            (
                "application/json",
                b"{\"vector\":[1e999]}".to_vec(),
                400,
                "number out of range",
            ),
            (
                "application/json",
                b"{\"vectr\":[1]}".to_vec(),
                400,
                "vectr",
            ),
            ("application/json", Vec::new(), 400, "empty"),
            (
                "application/protobuf",
                vec![0xff; 3],
                400,
                "invalid application/protobuf body",
            ),
            ("image/png", Vec::new(), 415, "unsupported Content-Type"),
        ] {
            let (s, media, b) = send(Some(ct), None, body).await;
            assert_eq!(s.as_u16(), status, "{ct}");
            assert_eq!(media, "application/json");
            let v: Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["status"], "error");
            assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
        }
    }
}
