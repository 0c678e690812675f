//! The key index: one record per log key, for listing keys without reading entries.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────────────────┐
//!        │ 0x01 │ 0x01 │ 0x03 │ log key (escaped, 00 01)  │
//!        └──────┴──────┴──────┴───────────────────────────┘
//! value: ┌──────────────────────────┬──────────────────────────────┐
//!        │ last sequence u64 BE     │ segment of last entry u32 BE │
//!        └──────────────────────────┴──────────────────────────────┘
//! ```
//!
//! The record is overwritten by every append to the key, so it always names the key's
//! newest entry; retention deletes records whose last segment it drops.

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::{get_u32, get_u64};

use super::{KEY_INDEX, PREFIX};

/// The newest entry of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIndexValue {
    /// Sequence of the key's newest entry.
    pub last_seq: u64,
    /// Segment holding that entry.
    pub last_segment: u32,
}

/// The index key of `log_key`.
pub fn encode_key(log_key: &[u8]) -> Bytes {
    PREFIX.record(KEY_INDEX).bytes(log_key).build()
}

/// The scan prefix of every indexed key starting with `log_key_prefix`.
pub fn prefix(log_key_prefix: &[u8]) -> Bytes {
    PREFIX
        .record(KEY_INDEX)
        .bytes_prefix(log_key_prefix)
        .build()
}

/// Decodes an index key into the log key.
pub fn decode_key(key: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(KEY_INDEX)?;
    let log_key = parsed.read_bytes()?;
    parsed.finish()?;
    Ok(log_key)
}

/// Encodes an index value.
pub fn encode_value(value: &KeyIndexValue) -> Bytes {
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&value.last_seq.to_be_bytes());
    out.extend_from_slice(&value.last_segment.to_be_bytes());
    Bytes::from(out)
}

/// Decodes an index value.
pub fn decode_value(value: &[u8]) -> Result<KeyIndexValue, DecodeError> {
    let mut cur = value;
    let last_seq = get_u64(&mut cur)?;
    let last_segment = get_u32(&mut cur)?;
    if !cur.is_empty() {
        return Err(DecodeError::new("key index value", "trailing bytes"));
    }
    Ok(KeyIndexValue {
        last_seq,
        last_segment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_index(key in proptest::collection::vec(any::<u8>(), 0..16), seq in any::<u64>(), seg in any::<u32>()) {
            prop_assert_eq!(decode_key(&encode_key(&key)).unwrap(), key.clone());
            let v = KeyIndexValue { last_seq: seq, last_segment: seg };
            prop_assert_eq!(decode_value(&encode_value(&v)).unwrap(), v);
        }

        #[test]
        fn should_match_prefix_exactly(key in proptest::collection::vec(0u8..3, 0..6), p in proptest::collection::vec(0u8..3, 0..4)) {
            prop_assert_eq!(encode_key(&key).starts_with(&prefix(&p)), key.starts_with(&p));
        }

        #[test]
        fn should_order_like_keys(a in proptest::collection::vec(any::<u8>(), 0..6), b in proptest::collection::vec(any::<u8>(), 0..6)) {
            prop_assert_eq!(encode_key(&a).cmp(&encode_key(&b)), a.cmp(&b));
        }

        #[test]
        fn should_reject_garbage(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = decode_key(&data);
            let _ = decode_value(&data);
        }
    }
}
