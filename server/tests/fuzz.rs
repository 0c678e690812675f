//! Fuzzing the decoders of request bodies: remote write 1.0 and 2.0 (mutated protobuf,
//! snappy-compressed, and raw bytes), and every JSON and protobuf body of the log and
//! vector APIs (random JSON trees, mutated valid bodies, random bytes). Each input goes
//! through the real routes over real (in-memory) databases, in process. No input may
//! panic, and every answer is a success or a 4xx.
//!
//! CI runs a bounded number of cases; a long run is
//! `PROPTEST_CASES=100000 cargo test --release -p opendata-server --test fuzz`.

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use opendata_common::{StorageConfig, StorageRoot};
use opendata_server::ServerConfig;
use opendata_server::api::timeseries::proto::{v1, v2};
use opendata_server::api::timeseries::remote_write::{self, RemoteWriteVersion};
use opendata_server::server::Databases;
use proptest::prelude::*;
use prost::Message;
use serde_json::{Value, json};
use tower::ServiceExt;

/// One runtime and one set of databases for every case: a collection `c` of dimension 2,
/// a log key and a few series.
fn app() -> &'static (tokio::runtime::Runtime, Router) {
    static APP: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    APP.get_or_init(fresh_app)
}

/// A server of its own: the mutation tests share [`app`], and may create the seeds'
/// collection with a mutated definition before the seed test runs.
fn fresh_app() -> (tokio::runtime::Runtime, Router) {
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let router = rt.block_on(async {
            let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
            let dbs = Box::leak(Box::new(
                Databases::open(&root, &ServerConfig::default())
                    .await
                    .unwrap(),
            ));
            let router = dbs.apis().routes();
            for (path, body) in [
                (
                    "/api/v1/vector/collections",
                    json!({"name": "c", "dimension": 2, "metric": "l2",
                           "attributes": {"tag": "string", "n": "integer"}}),
                ),
                (
                    "/api/v1/vector/collections/c/upsert",
                    json!({"vectors": [
                        {"id": "a", "vector": [0.0, 1.0], "attributes": {"tag": "x", "n": 1}},
                        {"id": "b", "vector": [1.0, 0.0], "attributes": {"tag": "y", "n": 2}}
                    ]}),
                ),
                (
                    "/api/v1/log/append",
                    json!({"records": [{"key": "a2V5", "value": "dmFsdWU="}]}),
                ),
            ] {
                let (status, text) = send(
                    &router,
                    "POST",
                    path,
                    "application/json",
                    body.to_string().into_bytes(),
                )
                .await;
                assert!(status < 300, "{path}: {status} {text}");
            }
            router
        });
        (rt, router)
    }
}

async fn send(
    router: &Router,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type);
    if path == "/api/v1/write" {
        req = req.header("content-encoding", "snappy");
    }
    let response = router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Sends `body` and checks the answer is a success or a 4xx.
fn check(method: &str, path: &str, content_type: &str, body: Vec<u8>) {
    let (rt, router) = app();
    let (status, text) = rt.block_on(send(router, method, path, content_type, body));
    assert!(
        (200..300).contains(&status) || (400..500).contains(&status),
        "{method} {path} ({content_type}): {status} {text}"
    );
}

/// The JSON routes and a valid body of each, to mutate.
fn json_routes() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/api/v1/log/append",
            json!({"records": [{"key": "a2V5", "value": "dg=="}], "awaitDurable": false, "conditionKey": "b3RoZXI=", "expectEmpty": true}),
        ),
        (
            "/api/v1/vector/collections",
            json!({"name": "f", "dimension": 3, "metric": "cosine", "attributes": {"tag": "string", "n": "integer"}}),
        ),
        (
            "/api/v1/vector/collections/c/upsert",
            json!({"vectors": [{"id": "z", "vector": [0.5, 0.5], "attributes": {"tag": "x", "n": 3}}]}),
        ),
        (
            "/api/v1/vector/collections/c/patch",
            json!({"patches": [{"id": "z", "set": {"tag": "w"}}]}),
        ),
        (
            "/api/v1/vector/collections/c/delete",
            json!({"ids": ["nope"]}),
        ),
        (
            "/api/v1/vector/collections/c/get",
            json!({"ids": ["a", "b"], "fields": ["tag", "n"]}),
        ),
        (
            "/api/v1/vector/collections/c/search",
            json!({"vector": [0.1, 0.2], "k": 2, "nprobe": 4,
                   "filter": {"and": [{"tag": {"eq": "x"}}, {"n": {"gte": 0, "lt": 10}}]}, "fields": ["tag"]}),
        ),
        (
            "/api/v1/vector/collections/c/search/batch",
            json!({"queries": [{"vector": [0.1, 0.2], "k": 1}, {"vector": [1, 1], "k": 3,
                   "filter": {"or": [{"tag": {"in": ["x", "y"]}}, {"not": {"n": {"exists": true}}}]}}]}),
        ),
    ]
}

const KEYS: &[&str] = &[
    "records",
    "key",
    "value",
    "expectedLastSequence",
    "expectEmpty",
    "conditionKey",
    "awaitDurable",
    "name",
    "dimension",
    "metric",
    "attributes",
    "vectors",
    "id",
    "vector",
    "patches",
    "set",
    "unset",
    "ids",
    "filter",
    "k",
    "nprobe",
    "fields",
    "queries",
    "durability",
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "in",
    "not_in",
    "gte",
    "lt",
    "lte",
    "gt",
    "contains",
    "exists",
    "recall_target",
    "tag",
    "n",
    "",
];

fn arb_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
    ]
}

fn arb_string() -> impl Strategy<Value = Value> {
    prop_oneof![
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(KEYS).prop_map(Value::from),
        Just(json!("NaN")),
        Just(json!("Inf")),
        Just(json!("a2V5")),
        (1usize..20_000).prop_map(|n| Value::from("x".repeat(n))),
    ]
}

/// A random JSON value, at most a few levels deep.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        arb_number(),
        arb_string(),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

/// Replaces the value at a path picked by `choices` with `with` (or, with `drop`, removes
/// it from its object).
fn mutate(value: &mut Value, choices: &[usize], with: Value, drop: bool) {
    let Some((&c, rest)) = choices.split_first() else {
        *value = with;
        return;
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(c % map.len()).unwrap().clone();
            if rest.is_empty() && drop {
                map.remove(&key);
            } else {
                mutate(map.get_mut(&key).unwrap(), rest, with, drop);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let n = c % items.len();
            if rest.is_empty() && drop {
                items.remove(n);
            } else {
                mutate(&mut items[n], rest, with, drop);
            }
        }
        _ => *value = with,
    }
}

fn valid_v1(n: usize) -> Vec<u8> {
    v1::WriteRequest {
        timeseries: (0..n)
            .map(|i| v1::TimeSeries {
                histograms: vec![],
                exemplars: vec![v1::Exemplar {
                    labels: vec![v1::Label {
                        name: "trace_id".into(),
                        value: format!("t{i}"),
                    }],
                    value: i as f64,
                    timestamp: now_ms(),
                }],
                labels: vec![
                    v1::Label {
                        name: "__name__".into(),
                        value: "fuzz_total".into(),
                    },
                    v1::Label {
                        name: "i".into(),
                        value: i.to_string(),
                    },
                ],
                samples: vec![v1::Sample {
                    value: i as f64,
                    timestamp: now_ms(),
                }],
            })
            .collect(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn valid_v2(n: usize) -> Vec<u8> {
    v2::Request {
        symbols: vec![
            "".into(),
            "__name__".into(),
            "fuzz_total".into(),
            "i".into(),
            "x".into(),
            "Help.".into(),
        ],
        timeseries: (0..n)
            .map(|i| v2::TimeSeries {
                histograms: vec![],
                created_timestamp: now_ms() - 60_000,
                exemplars: vec![v2::Exemplar {
                    labels_refs: vec![3, 4],
                    value: i as f64,
                    timestamp: now_ms(),
                }],
                labels_refs: vec![1, 2, 3, 4],
                samples: vec![v2::Sample {
                    value: i as f64,
                    timestamp: now_ms(),
                }],
                metadata: Some(v2::Metadata {
                    r#type: 1,
                    help_ref: 5,
                    unit_ref: 0,
                }),
            })
            .collect(),
    }
    .encode_to_vec()
}

use opendata_testing::now_ms;

fn snappy(bytes: &[u8]) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(bytes).unwrap()
}

const V1: &str = "application/x-protobuf";
const V2: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn should_decode_or_refuse_mutated_remote_write_bodies(
        v2 in any::<bool>(), n in 1usize..5, edits in edits(), compress in any::<bool>(),
    ) {
        let (raw, version, ct) = if v2 {
            (valid_v2(n), RemoteWriteVersion::V2, V2)
        } else {
            (valid_v1(n), RemoteWriteVersion::V1, V1)
        };
        let mutated = opendata_testing::fuzz::mutate(raw, &edits);
        // Mutated protobuf, validly compressed; or a mutated compressed stream.
        let body = if compress { snappy(&mutated) } else { opendata_testing::fuzz::mutate(snappy(&mutated), &edits) };
        if let Err(e) = remote_write::decode(&body, version, 1 << 20) {
            let status = e.to_string();
            prop_assert!(!status.is_empty());
        }
        check("POST", "/api/v1/write", ct, body);
    }

    #[test]
    fn should_refuse_random_remote_write_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), v2 in any::<bool>()) {
        let ct = if v2 { V2 } else { V1 };
        check("POST", "/api/v1/write", ct, bytes.clone());
        check("POST", "/api/v1/write", ct, snappy(&bytes));
    }

    #[test]
    fn should_answer_random_json_bodies_with_4xx(route in 0usize..8, body in arb_json()) {
        let (path, _) = &json_routes()[route];
        check("POST", path, "application/json", body.to_string().into_bytes());
    }

    #[test]
    fn should_answer_mutated_json_bodies(
        route in 0usize..8,
        choices in prop::collection::vec(any::<usize>(), 0..6),
        with in arb_json(),
        drop in any::<bool>(),
    ) {
        let (path, mut body) = json_routes()[route].clone();
        mutate(&mut body, &choices, with, drop);
        check("POST", path, "application/json", body.to_string().into_bytes());
        check("POST", path, "application/protobuf+json", body.to_string().into_bytes());
    }

    #[test]
    fn should_answer_random_and_truncated_bytes_on_every_body_route(
        route in 0usize..8,
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        cut in any::<usize>(),
    ) {
        let (path, body) = &json_routes()[route];
        check("POST", path, "application/protobuf", bytes.clone());
        check("POST", path, "application/json", bytes);
        let text = body.to_string().into_bytes();
        check("POST", path, "application/json", text[..cut % text.len()].to_vec());
    }
}

/// The seeds are valid, so the mutations start from bodies that reach deep into each
/// route rather than failing at the first check.
#[test]
fn should_accept_every_seed_body() {
    let owned = fresh_app();
    let (rt, router) = (&owned.0, &owned.1);
    for (path, body) in json_routes() {
        let (status, text) = rt.block_on(send(
            router,
            "POST",
            path,
            "application/json",
            body.to_string().into_bytes(),
        ));
        assert!((200..300).contains(&status), "{path}: {status} {text}");
    }
    for (body, ct) in [(valid_v1(3), V1), (valid_v2(3), V2)] {
        let (status, text) = rt.block_on(send(router, "POST", "/api/v1/write", ct, snappy(&body)));
        assert_eq!(status, 204, "{ct}: {text}");
    }
}
