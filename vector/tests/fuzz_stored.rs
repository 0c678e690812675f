//! Fuzzing the decoders of stored keys and values (collections, index state, centroids,
//! vector records, posting lists, counters): random bytes and mutated valid encodings. A
//! corrupt record must be a `DecodeError`, never a panic or an allocation sized by the
//! corrupt bytes.
//!
//! CI runs a bounded number of cases; a long run is
//! `PROPTEST_CASES=1000000 cargo test --release -p opendata-vector --test fuzz_stored`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use opendata_testing::fuzz::{Edit, mutate};
use opendata_vector::index::quantizer::Quantizer;
use opendata_vector::serde::{self as vs, centroid, collection, posting, state, vector};
use opendata_vector::{AttributeType, AttributeValue, CollectionSpec, Metric};
use proptest::prelude::*;

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(any::<Edit>(), 0..6)
}

fn arb_value() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        ".{0,8}".prop_map(AttributeValue::String),
        any::<i64>().prop_map(AttributeValue::Integer),
        any::<f64>().prop_map(AttributeValue::Float),
        any::<bool>().prop_map(AttributeValue::Bool),
        prop::collection::vec(".{0,4}", 0..4).prop_map(AttributeValue::StringList),
    ]
}

/// Every value decoder on `bytes`, for a collection of dimension `dim`.
fn decode_values(bytes: &[u8], dim: usize) {
    let mut out = Vec::new();
    let _ = centroid::decode_into(bytes, dim, &mut out);
    let _ = collection::decode("c", bytes);
    let _ = state::decode(bytes);
    let _ = vector::decode(bytes, dim);
    let _ = vector::decode_head(bytes, dim, &mut out);
    let _ = vs::decode_u32(bytes);
    let _ = vs::key_u32(bytes);
    for quantized in [false, true] {
        let size = posting::entry_size(dim, quantized);
        if let Ok(entries) = posting::entries(bytes, size) {
            for (_, payload) in entries {
                if !quantized {
                    posting::read_f32_payload(payload, &mut out);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn should_decode_or_refuse_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256), dim in 1usize..8) {
        decode_values(&bytes, dim);
    }

    #[test]
    fn should_decode_or_refuse_mutated_values(
        v in prop::collection::vec(-10.0f32..10.0, 1..8),
        id in "[a-z0-9]{1,12}",
        attrs in prop::collection::btree_map("[a-z]{1,6}", arb_value(), 0..4),
        postings in prop::collection::vec(any::<u32>(), 0..4),
        edits in edits(),
    ) {
        let dim = v.len();
        decode_values(&mutate(vector::encode(&id, &v, &attrs, &postings), &edits), dim);
        decode_values(&mutate(centroid::encode(&v), &edits), dim);
        let mut spec = CollectionSpec::new("c", dim as u32, Metric::Cosine);
        for (i, name) in attrs.keys().enumerate() {
            let t = [AttributeType::String, AttributeType::Integer, AttributeType::Float, AttributeType::Bool, AttributeType::StringList][i % 5];
            spec = spec.with_attribute(name.clone(), t);
        }
        decode_values(&mutate(collection::encode(7, &spec), &edits), dim);
        let st = state::IndexState {
            clustered: true,
            next_posting: 3,
            epoch: 9,
            quantizer: Some(Quantizer { min: v.clone(), scale: vec![0.5; dim] }),
        };
        decode_values(&mutate(state::encode(&st), &edits), dim);
        let mut list = Vec::new();
        let mut payload = Vec::new();
        posting::f32_payload(&v, &mut payload);
        posting::push_entry(&mut list, 1, &payload);
        posting::push_entry(&mut list, 2, &payload);
        decode_values(&mutate(list, &edits), dim);
    }
}

#[test]
fn should_keep_attribute_maps_ordered_in_records() {
    // A record's attributes are encoded in name order, so a decode of a valid record
    // gives back the same map.
    let mut attrs = BTreeMap::new();
    attrs.insert("b".to_string(), AttributeValue::Integer(2));
    attrs.insert("a".to_string(), AttributeValue::String("x".into()));
    let bytes = vector::encode("id", &[1.0, 2.0], &attrs, &[4]);
    let back = vector::decode(&bytes, 2).unwrap();
    assert_eq!(back.attributes, attrs);
    assert_eq!(back.postings, vec![4]);
}
