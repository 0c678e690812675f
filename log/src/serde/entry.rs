//! Log entries.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬────────────┬──────┬───────────────────────────┬─────────────┐
//!        │ 0x01 │ 0x01 │ 0x80 │ segment id │ 0x01 │ log key (escaped, 00 01)  │ sequence    │
//!        │ log  │ ver  │ mark │  u32 BE    │ type │ 0x00 -> 00 FF             │ u64 BE      │
//!        └──────┴──────┴──────┴────────────┴──────┴───────────────────────────┴─────────────┘
//! value: ┌─────────────────────────┬──────────────────────┐
//!        │ append time (ms) u64 BE │ payload (raw bytes)  │
//!        └─────────────────────────┴──────────────────────┘
//! ```
//!
//! Inside a segment, entries sort by log key and then sequence, so one key's entries
//! are one contiguous range that compaction keeps together.

use bytes::{Bytes, BytesMut};
use opendata_common::DecodeError;
use opendata_common::encoding::{escape_prefix, get_u64};

use super::{ENTRY, PREFIX};

/// The storage key of entry `sequence` of `key` in `segment`.
pub fn encode_key(segment: u32, key: &[u8], sequence: u64) -> Bytes {
    PREFIX
        .segmented(segment, ENTRY)
        .bytes(key)
        .u64(sequence)
        .build()
}

/// The prefix every entry of `key` in `segment` starts with.
pub fn key_prefix(segment: u32, key: &[u8]) -> Vec<u8> {
    PREFIX.segmented(segment, ENTRY).bytes(key).into_vec()
}

/// The prefix every entry in `segment` whose log key starts with `key_prefix` has.
pub fn key_prefix_prefix(segment: u32, key_prefix: &[u8]) -> Vec<u8> {
    let mut out = PREFIX.segmented(segment, ENTRY).into_vec();
    escape_prefix(&mut out, key_prefix);
    out
}

/// Decodes an entry key into `(segment, log key, sequence)`.
pub fn decode_key(key: &[u8]) -> Result<(u32, Vec<u8>, u64), DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(ENTRY)?;
    let segment = parsed
        .segment
        .ok_or_else(|| DecodeError::new("log entry key", "not segmented"))?;
    let log_key = parsed.read_bytes()?;
    let sequence = parsed.read_u64()?;
    parsed.finish()?;
    Ok((segment, log_key, sequence))
}

/// Decodes only the sequence: the last eight bytes of an entry key.
pub fn decode_sequence(key: &[u8]) -> Result<u64, DecodeError> {
    if key.len() < 8 {
        return Err(DecodeError::truncated("log entry key"));
    }
    let mut tail = &key[key.len() - 8..];
    get_u64(&mut tail)
}

/// Encodes an entry value.
pub fn encode_value(timestamp_ms: u64, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(8 + payload.len());
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(payload);
    out.freeze()
}

/// Decodes an entry value into `(append time ms, payload)`; the payload shares `value`'s memory.
pub fn decode_value(value: &Bytes) -> Result<(u64, Bytes), DecodeError> {
    let mut cur = &value[..];
    let ts = get_u64(&mut cur).map_err(|_| DecodeError::truncated("log entry value"))?;
    Ok((ts, value.slice(8..)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_entries(seg in any::<u32>(), key in proptest::collection::vec(any::<u8>(), 0..16), seq in any::<u64>(), ts in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..32)) {
            let k = encode_key(seg, &key, seq);
            prop_assert_eq!(decode_key(&k).unwrap(), (seg, key.clone(), seq));
            prop_assert_eq!(decode_sequence(&k).unwrap(), seq);
            prop_assert!(k.starts_with(&key_prefix(seg, &key)));
            let v = encode_value(ts, &payload);
            let (t, p) = decode_value(&v).unwrap();
            prop_assert_eq!(t, ts);
            prop_assert_eq!(&p[..], &payload[..]);
        }

        #[test]
        fn should_order_by_segment_key_then_sequence(a in (any::<u32>(), proptest::collection::vec(0u8..3, 0..4), any::<u64>()), b in (any::<u32>(), proptest::collection::vec(0u8..3, 0..4), any::<u64>())) {
            prop_assert_eq!(encode_key(a.0, &a.1, a.2).cmp(&encode_key(b.0, &b.1, b.2)), a.cmp(&b));
        }

        #[test]
        fn should_reject_garbage(data in proptest::collection::vec(any::<u8>(), 0..24)) {
            let _ = decode_key(&data);
            let _ = decode_value(&Bytes::from(data));
        }
    }
}
