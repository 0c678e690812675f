//! Fuzzing the decoders of stored keys and values: random bytes and mutated valid
//! encodings of every record type. A corrupt record must be a `DecodeError`, never a
//! panic, an endless loop or an allocation sized by the corrupt bytes.
//!
//! CI runs a bounded number of cases; a long run is
//! `PROPTEST_CASES=1000000 cargo test --release -p opendata-log --test fuzz`.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use opendata_log::serde::entry::{self, ChunkBuilder, ChunkReader};
use opendata_log::serde::{key_index, segment, segment_bytes};
use opendata_testing::fuzz::{Edit, mutate};
use proptest::prelude::*;

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(any::<Edit>(), 0..6)
}

/// Reads every entry of a chunk; a chunk holds at most as many entries as it has bytes.
fn read_chunk(last_sequence: u64, value: Vec<u8>) {
    let limit = value.len() + 2;
    if let Ok(mut reader) = ChunkReader::new(last_sequence, Bytes::from(value)) {
        let _ = reader.timestamp_ms();
        for _ in 0..limit {
            match reader.next_entry() {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
        panic!("a chunk yielded more entries than it has bytes");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn should_decode_or_refuse_random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128), seq in any::<u64>()) {
        let _ = entry::decode_key(&bytes);
        let _ = entry::decode_last_sequence(&bytes);
        let _ = key_index::decode_key(&bytes);
        let _ = key_index::decode_value(&bytes);
        let _ = segment::decode(&bytes, &bytes);
        let _ = segment_bytes::decode_value(&bytes);
        read_chunk(seq, bytes);
    }

    #[test]
    fn should_decode_or_refuse_mutated_keys_and_values(
        segment_id in any::<u32>(),
        key in prop::collection::vec(any::<u8>(), 0..24),
        seq in any::<u64>(),
        edits in edits(),
    ) {
        let k = mutate(entry::encode_key(segment_id, &key, seq).to_vec(), &edits);
        let _ = entry::decode_key(&k);
        let _ = entry::decode_last_sequence(&k);
        let k = mutate(key_index::encode_key(&key).to_vec(), &edits);
        let _ = key_index::decode_key(&k);
        let v = key_index::encode_value(&key_index::KeyIndexValue { last_seq: seq, last_segment: segment_id });
        let _ = key_index::decode_value(&mutate(v.to_vec(), &edits));
        let record = segment::SegmentRecord { id: segment_id, start_seq: seq, start_time_ms: seq / 3 };
        let _ = segment::decode(
            &mutate(segment::encode_key(segment_id).to_vec(), &edits),
            &mutate(segment::encode_value(&record).to_vec(), &edits),
        );
        let _ = segment_bytes::decode_value(&mutate(segment_bytes::operand(seq).to_vec(), &edits));
    }

    #[test]
    fn should_read_or_refuse_mutated_chunks(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..12),
        first in 0u64..1 << 40,
        edits in edits(),
    ) {
        let mut builder = ChunkBuilder::new(1_700_000_000_000, payloads.len());
        for (i, p) in payloads.iter().enumerate() {
            builder.push(first + i as u64, Bytes::from(p.clone()));
        }
        let (last, value) = builder.finish();
        read_chunk(last, mutate(value.to_vec(), &edits));
    }
}
