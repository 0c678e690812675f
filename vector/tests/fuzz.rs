//! Fuzzing the filter language: random JSON through `Filter::from_json` against a schema
//! and, when it parses, through a filtered search. No input may panic; every failure is
//! an `InvalidInput`.
//!
//! CI runs a bounded number of cases; a long run is
//! `PROPTEST_CASES=200000 cargo test --release -p opendata-vector --test fuzz`.

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use opendata_common::{Durability, StorageConfig, StorageRoot};
use opendata_vector::{
    AttributeType, AttributeValue, CollectionSpec, Error, Filter, Metric, SearchRequest,
    VectorConfig, VectorDb, VectorRecord,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn spec() -> CollectionSpec {
    CollectionSpec::new("c", 2, Metric::L2)
        .with_attribute("color", AttributeType::String)
        .with_attribute("size", AttributeType::Integer)
        .with_attribute("price", AttributeType::Float)
        .with_attribute("ok", AttributeType::Bool)
        .with_attribute("tags", AttributeType::StringList)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just("red"),
            Just("color"),
            Just("size"),
            Just("price"),
            Just("ok"),
            Just("tags"),
            Just("eq"),
            Just("ne"),
            Just("in"),
            Just("not_in"),
            Just("lt"),
            Just("gte"),
            Just("contains"),
            Just("exists"),
            Just("and"),
            Just("or"),
            Just("not"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    let keys = prop_oneof![
        Just("color"),
        Just("size"),
        Just("price"),
        Just("ok"),
        Just("tags"),
        Just("nope"),
        Just("eq"),
        Just("ne"),
        Just("in"),
        Just("nin"),
        Just("not_in"),
        Just("lt"),
        Just("lte"),
        Just("gt"),
        Just("gte"),
        Just("contains"),
        Just("exists"),
        Just("and"),
        Just("or"),
        Just("not")
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone().prop_map(String::from), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn runtime() -> &'static (tokio::runtime::Runtime, VectorDb) {
    static DB: OnceLock<(tokio::runtime::Runtime, VectorDb)> = OnceLock::new();
    DB.get_or_init(|| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let db = rt.block_on(async {
            let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
            let db = VectorDb::open(&root, VectorConfig::default())
                .await
                .unwrap();
            db.create_collection(spec()).await.unwrap();
            let records = (0..20)
                .map(|i| {
                    VectorRecord::new(format!("r{i}"), vec![i as f32, 1.0])
                        .with_attribute(
                            "color",
                            AttributeValue::String(["red", "blue"][i % 2].into()),
                        )
                        .with_attribute("size", AttributeValue::Integer(i as i64))
                        .with_attribute("tags", AttributeValue::StringList(vec!["a".into()]))
                })
                .collect();
            db.upsert("c", records, Durability::Memory).await.unwrap();
            db
        });
        (rt, db)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn should_never_panic_on_any_filter(v in json_value()) {
        let (rt, db) = runtime();
        match Filter::from_json(&v, &spec()) {
            Err(e) => prop_assert!(matches!(e, Error::InvalidInput(_)), "{v}: {e}"),
            Ok(filter) => {
                let mut req = SearchRequest::new(vec![1.0, 1.0], 5);
                req.filter = Some(filter);
                let found = rt.block_on(db.search("c", req));
                prop_assert!(found.is_ok(), "{v}: {found:?}");
            }
        }
    }
}
