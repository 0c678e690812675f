//! The vector HTTP API and CLI against the real binary: collections, JSON and protobuf
//! bodies, reads and writes, bad input, SIGKILL recovery, a read-only replica, and
//! `opendata vector import | search`.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opendata_server::api::vector::proto;
use parking_lot::Mutex;
use prost::Message;
use serde_json::{Value, json};
use support::{ServerProcess, TestClient, memory_server};

const API: &str = "/api/v1/vector/collections";

async fn post(api: &TestClient, path: &str, body: Value) -> (u16, Value) {
    api.post_json(&format!("{API}{path}"), &body).await
}

async fn get(api: &TestClient, path: &str) -> (u16, Value) {
    api.get_json(&format!("{API}{path}")).await
}

/// Posts a JSON body that must succeed and returns the envelope's `data`.
async fn ok(api: &TestClient, path: &str, body: Value) -> Value {
    let (status, v) = post(api, path, body.clone()).await;
    assert!(
        status == 200 || status == 201,
        "{path} {body}: {status} {v}"
    );
    assert_eq!(v["status"], "success", "{v}");
    v["data"].clone()
}

/// Posts a protobuf body; returns the status and the raw answer.
async fn post_proto(api: &TestClient, path: &str, body: Vec<u8>) -> (u16, bytes::Bytes) {
    api.post_bytes(
        &format!("{API}{path}"),
        &[("content-type", "application/protobuf")],
        body,
    )
    .await
    .unwrap()
}

fn docs_spec() -> Value {
    json!({
        "name": "docs",
        "dimension": 4,
        "metric": "l2",
        "attributes": {"color": "string", "size": "integer", "price": "float", "ok": "bool", "tags": "string_list"}
    })
}

/// Five records on the axes, with attributes.
fn docs_records() -> Value {
    json!({"vectors": [
        {"id": "a", "vector": [1.0, 0.0, 0.0, 0.0], "attributes": {"color": "red", "size": 1, "price": 1.5, "ok": true, "tags": ["x"]}},
        {"id": "b", "vector": [0.0, 1.0, 0.0, 0.0], "attributes": {"color": "blue", "size": 2, "tags": ["x", "y"]}},
        {"id": "c", "vector": [0.0, 0.0, 1.0, 0.0], "attributes": {"color": "red", "size": 3}},
        {"id": "d", "vector": [0.0, 0.0, 0.0, 1.0], "attributes": {"color": "green", "size": 4, "ok": false}},
        {"id": "e", "vector": [2.0, 0.0, 0.0, 0.0]}
    ]})
}

async fn setup_docs(client: &reqwest::Client, base: &str) {
    let (status, v) = post(&TestClient::with(client, base), "", docs_spec()).await;
    assert_eq!(status, 201, "{v}");
    let data = ok(
        &TestClient::with(client, base),
        "/docs/upsert",
        docs_records(),
    )
    .await;
    assert_eq!(data, json!({"count": 5, "missing": 5}));
}

fn ids(hits: &Value) -> Vec<String> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_create_list_describe_and_drop_collections() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let base = &server.base;

    let (status, v) = post(&TestClient::with(&client, base), "", docs_spec()).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["data"]["name"], "docs");
    assert_eq!(v["data"]["dimension"], 4);
    assert_eq!(v["data"]["metric"], "l2");
    assert_eq!(v["data"]["attributes"]["tags"], "string_list");
    assert_eq!(v["data"]["vectors"], 0);
    // The same definition again is fine (200); a different one conflicts (409).
    let (status, _) = post(&TestClient::with(&client, base), "", docs_spec()).await;
    assert_eq!(status, 200);
    let (status, v) = post(
        &TestClient::with(&client, base),
        "",
        json!({"name": "docs", "dimension": 8, "metric": "l2"}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["status"], "error");
    assert!(v["error"].as_str().unwrap().contains("docs"), "{v}");

    // Lenient names, and a protobuf create.
    let (status, v) = post(&TestClient::with(&client, base), "",
        json!({"name": "ip", "dimension": 2, "metric": "inner_product", "attributes": {"n": "int"}}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["data"]["metric"], "dot");
    assert_eq!(v["data"]["attributes"]["n"], "integer");
    let spec = proto::CollectionSpec {
        name: "pb".into(),
        dimension: 3,
        metric: "cosine".into(),
        attributes: BTreeMap::new(),
    };
    let (status, body) =
        post_proto(&TestClient::with(&client, base), "", spec.encode_to_vec()).await;
    assert_eq!(status, 201);
    let info = proto::CollectionInfo::decode(body).unwrap();
    assert_eq!(info.spec.unwrap().metric, "cosine");

    let (status, v) = get(&TestClient::with(&client, base), "").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = v["data"]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["docs", "ip", "pb"]);

    ok(
        &TestClient::with(&client, base),
        "/docs/upsert",
        docs_records(),
    )
    .await;
    let (status, v) = get(&TestClient::with(&client, base), "/docs").await;
    assert_eq!(status, 200);
    assert_eq!(v["data"]["vectors"], 5);
    assert!(v["data"]["index_memory_bytes"].is_u64(), "{v}");

    // Protobuf answer by Accept.
    let resp = client
        .get(format!("{base}{API}/docs"))
        .header("accept", "application/protobuf")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let info = proto::CollectionInfo::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(info.vectors, 5);
    assert_eq!(info.spec.unwrap().dimension, 4);

    let (status, v) = TestClient::with(&client, base)
        .json(reqwest::Method::DELETE, &format!("{API}/docs"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = get(&TestClient::with(&client, base), "/docs").await;
    assert_eq!(status, 404);
    assert!(v["error"].as_str().unwrap().contains("\"docs\""), "{v}");
    let (status, _) = TestClient::with(&client, base)
        .json(reqwest::Method::DELETE, &format!("{API}/docs"), None)
        .await;
    assert_eq!(status, 404);
    // Re-created empty.
    let (status, v) = post(&TestClient::with(&client, base), "", docs_spec()).await;
    assert_eq!(status, 201);
    assert_eq!(v["data"]["vectors"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_upsert_and_search_with_json() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let base = &server.base;
    setup_docs(&client, base).await;

    let data = ok(
        &TestClient::with(&client, base),
        "/docs/search",
        json!({"vector": [0.9, 0.1, 0.0, 0.0], "k": 3}),
    )
    .await;
    let hits = &data["hits"];
    assert_eq!(ids(hits)[0], "a");
    assert_eq!(hits.as_array().unwrap().len(), 3);
    let s0 = hits[0]["score"].as_f64().unwrap();
    assert!((s0 - (0.02f64).sqrt()).abs() < 1e-4, "L2 distance: {s0}");
    assert!(
        hits[0].get("vector").is_none(),
        "only ids and scores by default"
    );
    assert!(data["stats"]["plan"].is_string(), "{data}");

    // Fields, filters, k larger than the collection.
    let data = ok(&TestClient::with(&client, base), "/docs/search",
        json!({"vector": [0.0, 0.0, 0.9, 0.0], "k": 10, "filter": {"color": "red"}, "fields": ["vector", "size"]}),
    )
    .await;
    assert_eq!(ids(&data["hits"]), vec!["c", "a"]);
    assert_eq!(data["hits"][0]["vector"], json!([0.0, 0.0, 1.0, 0.0]));
    assert_eq!(data["hits"][0]["attributes"], json!({"size": 3}));
    let data = ok(&TestClient::with(&client, base), "/docs/search",
        json!({"vector": [1.0, 0.0, 0.0, 0.0], "k": 10, "filter": {"and": [{"size": {"gte": 2}}, {"tags": {"contains": "y"}}]}}),
    )
    .await;
    assert_eq!(ids(&data["hits"]), vec!["b"]);
    let data = ok(&TestClient::with(&client, base), "/docs/search",
        json!({"vector": [1.0, 0.0, 0.0, 0.0], "k": 2, "nprobe": 4, "recall_target": 0.9, "fields": ["*"]}),
    )
    .await;
    assert_eq!(ids(&data["hits"]), vec!["a", "e"]);
    assert_eq!(data["hits"][0]["attributes"]["color"], "red");

    // Upserting an existing id replaces it.
    let data = ok(&TestClient::with(&client, base), "/docs/upsert",
        json!({"vectors": [{"id": "e", "vector": [0.0, 5.0, 0.0, 0.0]}, {"id": "f", "vector": [1.0, 1.0, 1.0, 1.0]}], "durability": "memory"}),
    )
    .await;
    assert_eq!(data, json!({"count": 2, "missing": 1}));
    let data = ok(
        &TestClient::with(&client, base),
        "/docs/search",
        json!({"vector": [0.0, 4.0, 0.0, 0.0], "k": 1}),
    )
    .await;
    assert_eq!(ids(&data["hits"]), vec!["e"]);

    // Batch search.
    let data = ok(&TestClient::with(&client, base), "/docs/search/batch",
        json!({"queries": [{"vector": [1.0, 0.0, 0.0, 0.0], "k": 1}, {"vector": [0.0, 0.0, 0.0, 1.0], "k": 1}]}),
    )
    .await;
    let results = data["results"].as_array().unwrap();
    assert_eq!(ids(&results[0]["hits"]), vec!["a"]);
    assert_eq!(ids(&results[1]["hits"]), vec!["d"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_upsert_and_search_with_protobuf() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let base = &server.base;
    let (status, _) = post(&TestClient::with(&client, base), "", docs_spec()).await;
    assert_eq!(status, 201);
    let attr = |v: opendata_vector::AttributeValue| proto::AttributeValue::from_model(&v);
    let req = proto::UpsertRequest {
        vectors: (0..20)
            .map(|i| proto::Vector {
                id: format!("p{i}"),
                values: vec![i as f32, 0.0, 0.0, 1.0],
                attributes: [
                    (
                        "color".to_string(),
                        attr(opendata_vector::AttributeValue::String(
                            if i % 2 == 0 { "even" } else { "odd" }.into(),
                        )),
                    ),
                    // An integer for a float attribute is accepted.
                    (
                        "price".to_string(),
                        attr(opendata_vector::AttributeValue::Integer(i)),
                    ),
                    (
                        "tags".to_string(),
                        attr(opendata_vector::AttributeValue::StringList(vec![format!(
                            "t{}",
                            i % 3
                        )])),
                    ),
                ]
                .into_iter()
                .collect(),
            })
            .collect(),
        durability: "remote".into(),
    };
    let (status, body) = post_proto(
        &TestClient::with(&client, base),
        "/docs/upsert",
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let w = proto::WriteResponse::decode(body).unwrap();
    assert_eq!((w.count, w.missing), (20, 20));

    let search = proto::SearchRequest {
        vector: vec![6.2, 0.0, 0.0, 1.0],
        k: 3,
        nprobe: None,
        recall_target: None,
        filter: r#"{"color": "odd"}"#.into(),
        fields: vec!["vector".into(), "attributes".into()],
    };
    let (status, body) = post_proto(
        &TestClient::with(&client, base),
        "/docs/search",
        search.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let r = proto::SearchResponse::decode(body).unwrap();
    let got: Vec<&str> = r.hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(got, vec!["p7", "p5", "p9"]);
    assert_eq!(r.hits[0].vector, vec![7.0, 0.0, 0.0, 1.0]);
    assert!((r.hits[0].score - 0.8).abs() < 1e-4, "{}", r.hits[0].score);
    assert_eq!(
        r.hits[0].attributes["price"].to_model(),
        Some(opendata_vector::AttributeValue::Float(7.0))
    );
    assert!(r.stats.is_some());

    let batch = proto::SearchBatchRequest {
        queries: vec![
            search.clone(),
            proto::SearchRequest {
                filter: String::new(),
                k: 0, // the default, 10
                ..search
            },
        ],
    };
    let (status, body) = post_proto(
        &TestClient::with(&client, base),
        "/docs/search/batch",
        batch.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let r = proto::SearchBatchResponse::decode(body).unwrap();
    assert_eq!(r.results.len(), 2);
    assert_eq!(r.results[0].hits.len(), 3);
    assert_eq!(r.results[1].hits.len(), 10);
    assert_eq!(r.results[1].hits[0].id, "p6");

    // JSON in, protobuf out.
    let resp = client
        .post(format!("{base}{API}/docs/get"))
        .header("content-type", "application/json")
        .header("accept", "application/x-protobuf")
        .body(json!({"ids": ["p3", "nope"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let g = proto::GetResponse::decode(resp.bytes().await.unwrap()).unwrap();
    assert_eq!(g.vectors.len(), 1);
    assert_eq!(g.vectors[0].values, vec![3.0, 0.0, 0.0, 1.0]);
    assert_eq!(g.missing, vec!["nope".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_get_patch_and_delete() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let base = &server.base;
    setup_docs(&client, base).await;

    let data = ok(
        &TestClient::with(&client, base),
        "/docs/get",
        json!({"ids": ["b", "zz", "a"]}),
    )
    .await;
    assert_eq!(data["missing"], json!(["zz"]));
    let v = data["vectors"].as_array().unwrap();
    assert_eq!(ids(&data["vectors"]), vec!["b", "a"]);
    assert_eq!(v[0]["vector"], json!([0.0, 1.0, 0.0, 0.0]));
    assert_eq!(
        v[0]["attributes"],
        json!({"color": "blue", "size": 2, "tags": ["x", "y"]})
    );
    assert_eq!(v[1]["attributes"]["price"], 1.5);
    let data = ok(
        &TestClient::with(&client, base),
        "/docs/get",
        json!({"ids": ["a"], "fields": ["color"]}),
    )
    .await;
    assert_eq!(
        data["vectors"][0],
        json!({"id": "a", "attributes": {"color": "red"}})
    );

    let (status, v) = get(&TestClient::with(&client, base), "/docs/vectors/c").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"]["vector"], json!([0.0, 0.0, 1.0, 0.0]));
    assert_eq!(v["data"]["attributes"], json!({"color": "red", "size": 3}));
    let (status, v) = get(&TestClient::with(&client, base), "/docs/vectors/nope").await;
    assert_eq!(status, 404);
    assert!(v["error"].as_str().unwrap().contains("\"nope\""), "{v}");

    // Patch: set, unset, and an id that does not exist.
    let data = ok(
        &TestClient::with(&client, base),
        "/docs/patch",
        json!({"patches": [
            {"id": "a", "set": {"color": "purple", "size": 10}, "unset": ["tags"]},
            {"id": "ghost", "set": {"color": "x"}}
        ]}),
    )
    .await;
    assert_eq!(data["missing"], 1);
    let (_, v) = get(&TestClient::with(&client, base), "/docs/vectors/a").await;
    assert_eq!(
        v["data"]["attributes"],
        json!({"color": "purple", "size": 10, "price": 1.5, "ok": true})
    );
    assert_eq!(v["data"]["vector"], json!([1.0, 0.0, 0.0, 0.0]));
    let (status, _) = get(&TestClient::with(&client, base), "/docs/vectors/ghost").await;
    assert_eq!(status, 404, "patch does not create records");
    // The patched attribute is what filters see.
    let data = ok(
        &TestClient::with(&client, base),
        "/docs/search",
        json!({"vector": [1.0, 0.0, 0.0, 0.0], "k": 10, "filter": {"color": "red"}}),
    )
    .await;
    assert_eq!(ids(&data["hits"]), vec!["c"]);

    // Delete by ids.
    let data = ok(
        &TestClient::with(&client, base),
        "/docs/delete",
        json!({"ids": ["b", "zz"]}),
    )
    .await;
    assert_eq!(data["missing"], 1);
    let (status, _) = get(&TestClient::with(&client, base), "/docs/vectors/b").await;
    assert_eq!(status, 404);
    // Delete by filter.
    let data = ok(
        &TestClient::with(&client, base),
        "/docs/delete",
        json!({"filter": {"size": {"gte": 3, "lte": 4}}}),
    )
    .await;
    assert_eq!(data["count"], 2);
    let data = ok(
        &TestClient::with(&client, base),
        "/docs/search",
        json!({"vector": [0.0, 0.0, 0.0, 0.0], "k": 10}),
    )
    .await;
    let mut left = ids(&data["hits"]);
    left.sort();
    assert_eq!(left, vec!["a", "e"]);
    let (_, v) = get(&TestClient::with(&client, base), "/docs").await;
    assert_eq!(v["data"]["vectors"], 2);

    // Delete by filter in protobuf.
    let req = proto::DeleteRequest {
        ids: vec![],
        filter: r#"{"color": {"exists": false}}"#.into(),
        durability: "memory".into(),
    };
    let (status, body) = post_proto(
        &TestClient::with(&client, base),
        "/docs/delete",
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(proto::WriteResponse::decode(body).unwrap().count, 1);
    let (status, _) = get(&TestClient::with(&client, base), "/docs/vectors/e").await;
    assert_eq!(status, 404);
}

/// Each bad request is a 4xx whose message names the problem, and stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_reject_bad_input_and_keep_the_data() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let base = &server.base;
    setup_docs(&client, base).await;
    let before = ok(
        &TestClient::with(&client, base),
        "/docs/get",
        json!({"ids": ["a", "b", "c", "d", "e"]}),
    )
    .await;

    let long_id = "x".repeat(513);
    let json_cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/docs/upsert",
            json!({"vectors": [{"id": "new1", "vector": [1, 2, 3, 4]}, {"id": "a", "vector": [1, 2, 3]}]}),
            400,
            "vector \"a\" has dimension 3",
        ),
        (
            "/docs/upsert",
            json!({"vectors": [{"id": "a", "vector": [1, 2, 3, 4], "attributes": {"colour": "red"}}]}),
            400,
            "unknown attribute \"colour\"",
        ),
        (
            "/docs/upsert",
            json!({"vectors": [{"id": "a", "vector": [1, 2, 3, 4], "attributes": {"size": "big"}}]}),
            400,
            "attribute \"size\" is integer",
        ),
        (
            "/docs/upsert",
            json!({"vectors": [{"id": "a", "vector": [1, 2, 3, 4], "attributes": {"tags": "x"}}]}),
            400,
            "attribute \"tags\" is string_list",
        ),
        (
            "/docs/upsert",
            json!({"vectors": [{"id": long_id, "vector": [1, 2, 3, 4]}]}),
            400,
            "longer than the 512-byte limit",
        ),
        (
            "/docs/upsert",
            json!({"vectors": [{"id": "a", "vector": [1e39, 2, 3, 4]}]}),
            400,
            "vector \"a\" component 0 is inf",
        ),
        (
            "/docs/upsert",
            json!({"vectors": [{"id": "a", "vector": [1, 2, 3, 4]}], "durability": "disk"}),
            400,
            "unknown durability",
        ),
        (
            "/docs/upsert",
            json!({"vectors": [{"id": "a", "vectr": [1, 2, 3, 4]}]}),
            400,
            "vectr",
        ),
        (
            "/nope/upsert",
            json!({"vectors": [{"id": "a", "vector": [1, 2, 3, 4]}]}),
            404,
            "collection \"nope\" not found",
        ),
        (
            "/docs/search",
            json!({"vector": [1, 2, 3, 4], "filter": {"colour": "red"}}),
            400,
            "unknown attribute \"colour\"",
        ),
        (
            "/docs/search",
            json!({"vector": [1, 2, 3, 4], "filter": {"size": {"like": 3}}}),
            400,
            "unknown operator \"like\"",
        ),
        (
            "/docs/search",
            json!({"vector": [1, 2, 3, 4], "k": 0}),
            400,
            "k must be between 1 and",
        ),
        (
            "/docs/search",
            json!({"vector": [1, 2, 3, 4], "nprobe": 0}),
            400,
            "nprobe must be at least 1",
        ),
        (
            "/docs/search",
            json!({"vector": [1, 2, 3, 4], "recall_target": 2}),
            400,
            "recall_target",
        ),
        (
            "/docs/search",
            json!({"vector": [1, 2]}),
            400,
            "has dimension 2",
        ),
        (
            "/docs/search",
            json!({"vector": [1, 2, 3, 4], "fields": ["colour"]}),
            400,
            "unknown field \"colour\"",
        ),
        (
            "/nope/search",
            json!({"vector": [1, 2, 3, 4]}),
            404,
            "collection \"nope\" not found",
        ),
        (
            "/docs/delete",
            json!({"filter": {"price": {"gt": "cheap"}}}),
            400,
            "attribute \"price\" is float",
        ),
        (
            "/docs/delete",
            json!({"ids": ["a"], "filter": {"color": "red"}}),
            400,
            "exactly one",
        ),
        (
            "/docs/patch",
            json!({"patches": [{"id": "a", "set": {"size": 1.5}}]}),
            400,
            "attribute \"size\" is integer",
        ),
        (
            "/docs/patch",
            json!({"patches": [{"id": "a", "unset": ["colour"]}]}),
            400,
            "unknown attribute \"colour\"",
        ),
        (
            "/docs/get",
            json!({"ids": ["a"], "fields": ["nope"]}),
            400,
            "unknown field",
        ),
        (
            "",
            json!({"name": "bad/name", "dimension": 4}),
            400,
            "contains '/'",
        ),
        (
            "",
            json!({"name": "x", "dimension": 4, "metric": "hamming"}),
            400,
            "unknown metric",
        ),
        (
            "",
            json!({"name": "x", "dimension": 4, "attributes": {"and": "string"}}),
            400,
            "reserved",
        ),
    ];
    for (path, body, want, needle) in json_cases {
        let (status, v) = post(&TestClient::with(&client, base), path, body.clone()).await;
        assert_eq!(status, want, "{path} {body}: {v}");
        assert_eq!(v["status"], "error", "{v}");
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "{path} {body}: '{msg}' lacks '{needle}'"
        );
    }

    // Numbers JSON cannot hold as a float.
    let resp = client
        .post(format!("{base}{API}/docs/upsert"))
        .header("content-type", "application/json")
        .body(r#"{"vectors":[{"id":"a","vector":[1e999,0,0,0]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("number out of range"),
        "{v}"
    );
    // Malformed JSON, an empty body, and an unsupported content type.
    for (ct, body, want) in [
        ("application/json", "{\"vectors\": [", 400),
        ("application/json", "", 400),
        ("image/png", "{}", 415),
    ] {
        let resp = client
            .post(format!("{base}{API}/docs/upsert"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), want, "{ct} {body}");
    }

    // NaN and infinity can only arrive in protobuf: named by id and component.
    for (bad, shown) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "inf"),
        (f32::NEG_INFINITY, "-inf"),
    ] {
        let req = proto::UpsertRequest {
            vectors: vec![
                proto::Vector {
                    id: "fine".into(),
                    values: vec![1.0, 1.0, 1.0, 1.0],
                    attributes: BTreeMap::new(),
                },
                proto::Vector {
                    id: "b".into(),
                    values: vec![0.0, 1.0, bad, 0.0],
                    attributes: BTreeMap::new(),
                },
            ],
            durability: String::new(),
        };
        let (status, body) = post_proto(
            &TestClient::with(&client, base),
            "/docs/upsert",
            req.encode_to_vec(),
        )
        .await;
        assert_eq!(status, 400);
        let v: Value = serde_json::from_slice(&body).unwrap();
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains("vector \"b\" component 2"), "{msg}");
        assert!(msg.contains(shown), "{msg}");
    }
    let search = proto::SearchRequest {
        vector: vec![f32::NAN, 0.0, 0.0, 0.0],
        k: 1,
        nprobe: None,
        recall_target: None,
        filter: String::new(),
        fields: vec![],
    };
    let (status, body) = post_proto(
        &TestClient::with(&client, base),
        "/docs/search",
        search.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("component 0 is NaN"));
    let search = proto::SearchRequest {
        vector: vec![1.0, 0.0, 0.0, 0.0],
        k: 1,
        nprobe: None,
        recall_target: None,
        filter: "{not json".into(),
        fields: vec![],
    };
    let (status, body) = post_proto(
        &TestClient::with(&client, base),
        "/docs/search",
        search.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("filter is not valid JSON"));
    let (status, body) = post_proto(
        &TestClient::with(&client, base),
        "/docs/upsert",
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("application/protobuf"));

    // Nothing changed: the same five records, and "new1"/"fine" never written.
    let after = ok(
        &TestClient::with(&client, base),
        "/docs/get",
        json!({"ids": ["a", "b", "c", "d", "e"]}),
    )
    .await;
    assert_eq!(after, before);
    let data = ok(
        &TestClient::with(&client, base),
        "/docs/get",
        json!({"ids": ["new1", "fine"]}),
    )
    .await;
    assert_eq!(data["missing"], json!(["new1", "fine"]));
    let (_, v) = get(&TestClient::with(&client, base), "/docs").await;
    assert_eq!(v["data"]["vectors"], 5);
    let (_, v) = get(&TestClient::with(&client, base), "").await;
    assert_eq!(v["data"]["collections"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_every_database_on_one_port() {
    let (_dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let base = &server.base;
    let resp = client
        .post(format!("{base}/api/v1/log/append"))
        .header("content-type", "application/json")
        .body(
            json!({"records": [{"key": support::b64("k"), "value": support::b64("v")}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client
        .get(format!("{base}/api/v1/labels"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _) = get(&TestClient::with(&client, base), "").await;
    assert_eq!(status, 200);
    let resp = client.get(format!("{base}/-/ready")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

/// Every acknowledged id with its vector.
type Acked = Arc<Mutex<Vec<(String, Vec<f32>)>>>;

/// The vector of record `n` of writer `task` in the SIGKILL test.
fn kill_vector(task: usize, n: u64) -> Vec<f32> {
    (0..8)
        .map(|j| ((task as u64 * 7919 + n * 31 + j) % 1000) as f32 / 8.0 - 60.0)
        .collect()
}

async fn writer_task(
    client: reqwest::Client,
    base: String,
    task: usize,
    acked: Acked,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<(String, Vec<f32>)> = (0..25)
            .map(|i| {
                let k = n * 25 + i;
                (format!("t{task}-{k}"), kill_vector(task, k))
            })
            .collect();
        let body = json!({
            "vectors": batch.iter().map(|(id, v)| json!({"id": id, "vector": v})).collect::<Vec<_>>(),
            "durability": "remote",
        });
        let resp = client
            .post(format!("{base}{API}/k/upsert"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await;
        // Once the server dies, requests fail: those were never acknowledged.
        let Ok(resp) = resp else { return };
        if resp.status() != 200 {
            return;
        }
        if resp.bytes().await.is_err() {
            return;
        }
        acked.lock().extend(batch);
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_keep_every_acknowledged_upsert_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let log = dir.path().join("server.log");
    let args = ["--object-store", data.as_str()];
    let server = ServerProcess::start(&args, &log).await;
    let client = reqwest::Client::new();
    let (status, v) = post(
        &TestClient::with(&client, &server.base),
        "",
        json!({"name": "k", "dimension": 8, "metric": "l2"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");

    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            tokio::spawn(writer_task(
                client.clone(),
                server.base.clone(),
                t,
                acked.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().clone();
    assert!(
        acked.len() >= 100,
        "too few acknowledged upserts ({}) to prove anything",
        acked.len()
    );

    let server = ServerProcess::start(&args, &log).await;
    for chunk in acked.chunks(500) {
        let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        let data = ok(
            &TestClient::with(&client, &server.base),
            "/k/get",
            json!({"ids": ids, "fields": ["vector"]}),
        )
        .await;
        assert_eq!(data["missing"], json!([]), "acknowledged ids lost");
        for ((id, want), got) in chunk.iter().zip(data["vectors"].as_array().unwrap()) {
            assert_eq!(got["id"], json!(id));
            let got: Vec<f32> = got["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(&got, want, "{id}: wrong vector after recovery");
        }
    }
    // The reopened writer keeps accepting writes.
    ok(
        &TestClient::with(&client, &server.base),
        "/k/upsert",
        json!({"vectors": [{"id": "after", "vector": [0, 0, 0, 0, 0, 0, 0, 1]}]}),
    )
    .await;
    let (status, _) = get(&TestClient::with(&client, &server.base), "/k/vectors/after").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_follow_the_writer_from_a_read_only_replica() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let client = reqwest::Client::new();
    let writer = ServerProcess::start(&["--object-store", &data], &dir.path().join("w.log")).await;
    let (status, _) = post(
        &TestClient::with(&client, &writer.base),
        "",
        json!({"name": "r", "dimension": 2, "metric": "l2"}),
    )
    .await;
    assert_eq!(status, 201);
    ok(
        &TestClient::with(&client, &writer.base),
        "/r/upsert",
        json!({"vectors": [{"id": "one", "vector": [1, 0]}]}),
    )
    .await;
    let replica = ServerProcess::start(
        &["--object-store", &data, "--read-only"],
        &dir.path().join("r.log"),
    )
    .await;

    let visible = |id: &'static str| {
        let client = client.clone();
        let base = replica.base.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (status, v) = get(
                    &TestClient::with(&client, &base),
                    &format!("/r/vectors/{id}"),
                )
                .await;
                if status == 200 {
                    return v["data"].clone();
                }
                assert!(
                    Instant::now() < deadline,
                    "the replica never saw {id}: {status} {v}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(visible("one").await["vector"], json!([1.0, 0.0]));

    // Writes to the replica are refused.
    let (status, v) = post(
        &TestClient::with(&client, &replica.base),
        "/r/upsert",
        json!({"vectors": [{"id": "x", "vector": [1, 0]}]}),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    let (status, _) = post(
        &TestClient::with(&client, &replica.base),
        "",
        json!({"name": "other", "dimension": 2}),
    )
    .await;
    assert_eq!(status, 403);

    // Upserts after the replica started become visible, searchable too.
    ok(
        &TestClient::with(&client, &writer.base),
        "/r/upsert",
        json!({"vectors": [{"id": "two", "vector": [0, 1]}]}),
    )
    .await;
    assert_eq!(visible("two").await["vector"], json!([0.0, 1.0]));
    let data = ok(
        &TestClient::with(&client, &replica.base),
        "/r/search",
        json!({"vector": [0, 0.9], "k": 1}),
    )
    .await;
    assert_eq!(ids(&data["hits"]), vec!["two"]);
}

fn opendata(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_opendata"))
        .args(args)
        .output()
        .unwrap()
}

fn assert_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_import_files_and_search_from_the_command_line() {
    let (dir, server) = memory_server(&[]).await;
    let client = reqwest::Client::new();
    let base = server.base.clone();

    // 60 vectors of dimension 5 in .fvecs, ids = row numbers.
    let vectors: Vec<Vec<f32>> = (0..60)
        .map(|i| {
            (0..5)
                .map(|j| {
                    if j == 0 {
                        i as f32
                    } else {
                        ((i * 13 + j * 7) % 23) as f32
                    }
                })
                .collect()
        })
        .collect();
    let fvecs = dir.path().join("base.fvecs");
    let mut f = std::fs::File::create(&fvecs).unwrap();
    opendata_server::cli::vector::io::write_fvecs(&mut f, &vectors).unwrap();
    drop(f);
    let fvecs_s = fvecs.display().to_string();
    let out = opendata(&[
        "vector",
        "import",
        "--url",
        &base,
        "--collection",
        "f",
        "--create",
        "--batch-size",
        "7",
        "--concurrency",
        "3",
        &fvecs_s,
    ]);
    let stdout = assert_success(&out);
    assert!(stdout.contains("imported 60 vectors (60 new)"), "{stdout}");
    let (_, v) = get(&TestClient::with(&client, &base), "/f").await;
    assert_eq!(v["data"]["vectors"], 60);
    assert_eq!(v["data"]["dimension"], 5);
    let data = ok(
        &TestClient::with(&client, &base),
        "/f/get",
        json!({"ids": ["17"]}),
    )
    .await;
    assert_eq!(data["vectors"][0]["vector"], json!(vectors[17]));

    // Search by a row of the file, as JSON.
    let out = opendata(&[
        "vector",
        "search",
        "--url",
        &base,
        "--collection",
        "f",
        "--query-file",
        &fvecs_s,
        "--query-row",
        "17",
        "-k",
        "3",
        "--json",
    ]);
    let stdout = assert_success(&out);
    let answer: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["hits"][0]["id"], "17");
    assert_eq!(answer["hits"][0]["score"], 0.0);
    assert_eq!(answer["hits"].as_array().unwrap().len(), 3);

    // JSON Lines with attributes into a collection created with them.
    let jsonl = dir.path().join("docs.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\":\"red-1\",\"vector\":[1,0,0],\"attributes\":{\"color\":\"red\",\"size\":1}}\n\
         {\"id\":\"blue-1\",\"vector\":[0,1,0],\"attributes\":{\"color\":\"blue\",\"size\":2}}\n\
         {\"vector\":[0,0,1],\"attributes\":{\"color\":\"red\",\"size\":3}}\n",
    )
    .unwrap();
    let out = opendata(&[
        "vector",
        "import",
        "--url",
        &base,
        "--collection",
        "j",
        "--create",
        "--metric",
        "cosine",
        "--attribute",
        "color:string",
        "--attribute",
        "size:integer",
        &jsonl.display().to_string(),
    ]);
    let stdout = assert_success(&out);
    assert!(stdout.contains("imported 3 vectors"), "{stdout}");
    let data = ok(
        &TestClient::with(&client, &base),
        "/j/get",
        json!({"ids": ["2"]}),
    )
    .await;
    assert_eq!(
        data["vectors"][0]["attributes"],
        json!({"color": "red", "size": 3})
    );

    // A table, with a filter and fields.
    let out = opendata(&[
        "vector",
        "search",
        "--url",
        &base,
        "--collection",
        "j",
        "--vector",
        "[0.9, 0.1, 0.2]",
        "-k",
        "5",
        "--filter",
        "{\"color\":\"red\"}",
        "--fields",
        "color,size",
    ]);
    let stdout = assert_success(&out);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("rank"), "{stdout}");
    assert!(
        lines[0].contains("color") && lines[0].contains("size"),
        "{stdout}"
    );
    assert!(lines[1].contains("red-1"), "{stdout}");
    assert!(lines[2].split_whitespace().nth(1) == Some("2"), "{stdout}");
    assert!(!stdout.contains("blue-1"), "{stdout}");

    // Errors reach the user with the server's message.
    let out = opendata(&[
        "vector",
        "search",
        "--url",
        &base,
        "--collection",
        "j",
        "--vector",
        "[1, 2]",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dimension 2"), "{stderr}");
    let bad = dir.path().join("bad.fvecs");
    std::fs::write(&bad, [5u8, 0, 0, 0, 1, 2]).unwrap();
    let out = opendata(&[
        "vector",
        "import",
        "--url",
        &base,
        "--collection",
        "f",
        &bad.display().to_string(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("truncated"), "{stderr}");
}
