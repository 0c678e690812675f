//! Fuzzing the shared decoders of stored bytes: key headers, the order-preserving
//! encodings, the merge operands (roaring bitmaps, deltas, counters) and the merge
//! operators themselves, on random bytes and mutated valid encodings. A corrupt record
//! must be a `DecodeError`, never a panic.
//!
//! CI runs a bounded number of cases; a long run is
//! `PROPTEST_CASES=1000000 cargo test --release -p opendata-common --test fuzz`.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use opendata_common::encoding;
use opendata_common::keys::ParsedKey;
use opendata_common::merge::{I64Add, RoaringDelta, RoaringUnion};
use opendata_common::sequence::SequenceAllocator;
use opendata_testing::fuzz::{Edit, mutate};
use proptest::prelude::*;
use roaring::RoaringBitmap;
use slatedb::MergeOperator;

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(any::<Edit>(), 0..6)
}

fn decode_all(bytes: &[u8]) {
    if let Ok(mut key) = ParsedKey::parse(bytes) {
        let _ = key.read_bytes();
        let _ = key.read_varint();
        let _ = key.read_u64();
        let _ = key.read_f64();
    }
    let mut cur = bytes;
    let _ = encoding::get_bytes(&mut cur);
    let mut cur = bytes;
    let _ = encoding::get_varint(&mut cur);
    let mut pos = 0;
    let _ = encoding::get_leb128(bytes, &mut pos);
    let mut cur = bytes;
    let _ = encoding::get_f64(&mut cur);
    let _ = RoaringUnion::decode(bytes);
    let _ = RoaringDelta::decode(bytes);
    let _ = RoaringDelta::members(bytes);
    let _ = I64Add::decode(bytes);
    let _ = SequenceAllocator::decode(bytes);
}

fn bitmap(ids: &[u32]) -> RoaringBitmap {
    ids.iter().copied().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn should_decode_or_refuse_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_all(&bytes);
    }

    #[test]
    fn should_decode_or_refuse_mutated_encodings(
        ids in prop::collection::vec(any::<u32>(), 0..64),
        removed in prop::collection::vec(any::<u32>(), 0..16),
        n in any::<i64>(),
        raw in prop::collection::vec(any::<u8>(), 0..16),
        edits in edits(),
    ) {
        decode_all(&mutate(RoaringUnion::encode(&bitmap(&ids)).to_vec(), &edits));
        decode_all(&mutate(RoaringDelta::encode(&bitmap(&ids), &bitmap(&removed)).to_vec(), &edits));
        decode_all(&mutate(I64Add::encode(n).to_vec(), &edits));
        let mut buf = Vec::new();
        encoding::put_bytes(&mut buf, &raw);
        encoding::put_varint(&mut buf, n as u64);
        encoding::put_f64(&mut buf, n as f64);
        decode_all(&mutate(buf, &edits));
    }

    #[test]
    fn should_merge_or_refuse_corrupt_operands(
        ids in prop::collection::vec(any::<u32>(), 0..32),
        n in any::<i64>(),
        edits in edits(),
    ) {
        let key = Bytes::from_static(b"k");
        let union = RoaringUnion::encode(&bitmap(&ids));
        let corrupt = Bytes::from(mutate(union.to_vec(), &edits));
        let _ = RoaringUnion.merge(&key, Some(corrupt.clone()), union.clone());
        let _ = RoaringUnion.merge(&key, Some(union.clone()), corrupt.clone());
        let delta = RoaringDelta::encode(&bitmap(&ids), &RoaringBitmap::new());
        let corrupt = Bytes::from(mutate(delta.to_vec(), &edits));
        let _ = RoaringDelta.merge(&key, Some(corrupt.clone()), delta.clone());
        let _ = RoaringDelta.merge(&key, None, corrupt);
        let add = I64Add::encode(n);
        let corrupt = Bytes::from(mutate(add.to_vec(), &edits));
        let _ = I64Add.merge(&key, Some(corrupt.clone()), add.clone());
        let _ = I64Add.merge(&key, Some(add), corrupt);
    }
}
