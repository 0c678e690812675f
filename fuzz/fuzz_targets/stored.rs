//! Every decoder of stored keys and values of the three databases and of common: the
//! first byte picks the decoder. A corrupt record must be an error, never a panic or an
//! allocation sized by the corrupt bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use opendata_common::keys::ParsedKey;
use opendata_common::merge::{I64Add, RoaringDelta, RoaringUnion};
use opendata_common::sequence::SequenceAllocator;
use opendata_log::serde::entry::{self, ChunkReader};
use opendata_log::serde::{key_index, segment, segment_bytes};
use opendata_timeseries::serde::{
    bucket, chunk, dictionary, exemplar, label_names, labels, metadata, postings, series,
    settings, wal,
};
use opendata_vector::serde::{self as vs, centroid, collection, posting, state, vector};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, b)) = data.split_first() else {
        return;
    };
    let dim = 1 + (pick as usize >> 5);
    match pick % 34 {
        0 => {
            if let Ok(mut k) = ParsedKey::parse(b) {
                let _ = k.read_bytes();
                let _ = k.read_varint();
            }
        }
        1 => drop(RoaringUnion::decode(b)),
        2 => drop(RoaringDelta::decode(b)),
        3 => drop(I64Add::decode(b)),
        4 => drop(SequenceAllocator::decode(b)),
        5 => drop(entry::decode_key(b)),
        6 => {
            if let Ok(mut r) = ChunkReader::new(u64::from(pick), Bytes::copy_from_slice(b)) {
                for _ in 0..=b.len() {
                    match r.next_entry() {
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            }
        }
        7 => drop(key_index::decode_key(b)),
        8 => drop(key_index::decode_value(b)),
        9 => drop(segment::decode(b, b)),
        10 => drop(segment_bytes::decode_value(b)),
        11 => drop(wal::decode(b)),
        12 => drop(chunk::decode(b)),
        13 => drop(chunk::decode_timestamps(b)),
        14 => drop(chunk::decode_with_timestamps(b, &[1, 2, 3, 4])),
        15 => drop(labels::decode(b)),
        16 => drop(bucket::decode(b)),
        17 => drop(settings::decode(b)),
        18 => drop(metadata::decode("m".into(), b)),
        19 => drop(wal::decode_key(b)),
        20 => drop(chunk::decode_key(b)),
        21 => drop(series::decode_key(b)),
        22 => drop(postings::decode_key(b)),
        23 => drop(label_names::decode_key(b)),
        24 => drop(dictionary::decode_key(b)),
        25 => drop(centroid::decode_into(b, dim, &mut Vec::new())),
        26 => drop(collection::decode("c", b)),
        27 => drop(state::decode(b)),
        28 => drop(vector::decode(b, dim)),
        29 => drop(vector::decode_head(b, dim, &mut Vec::new())),
        30 => {
            if let Ok(entries) = posting::entries(b, posting::entry_size(dim, false)) {
                let mut out = Vec::new();
                for (_, p) in entries {
                    posting::read_f32_payload(p, &mut out);
                }
            }
        }
        31 => drop(vs::decode_u32(b)),
        32 => drop(exemplar::decode(b, 0)),
        _ => drop(exemplar::decode_key(b)),
    }
});
