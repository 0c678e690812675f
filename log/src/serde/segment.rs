//! Segment descriptors: where each segment starts.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬────────────┐
//!        │ 0x01 │ 0x01 │ 0x02 │ segment id │
//!        │ log  │ ver  │ type │  u32 BE    │
//!        └──────┴──────┴──────┴────────────┘
//! value: ┌───────────────────────┬───────────────────────────┐
//!        │ first sequence u64 BE │ start time (ms) u64 BE    │
//!        └───────────────────────┴───────────────────────────┘
//! ```
//!
//! A segment holds the entries with sequences from its first sequence up to the next
//! segment's first sequence.

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::get_u64;

use super::{PREFIX, SEGMENT};

/// A segment's descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRecord {
    /// The segment id.
    pub id: u32,
    /// The first sequence the segment may hold.
    pub start_seq: u64,
    /// When the segment was opened (ms since the Unix epoch).
    pub start_time_ms: u64,
}

/// The key of segment `id`'s descriptor.
pub fn encode_key(id: u32) -> Bytes {
    PREFIX.record(SEGMENT).u32(id).build()
}

/// The prefix of every segment descriptor.
pub fn all_prefix() -> Bytes {
    PREFIX.record(SEGMENT).build()
}

/// Encodes a descriptor value.
pub fn encode_value(record: &SegmentRecord) -> Bytes {
    let mut out = Vec::with_capacity(16);
    out.extend_from_slice(&record.start_seq.to_be_bytes());
    out.extend_from_slice(&record.start_time_ms.to_be_bytes());
    Bytes::from(out)
}

/// Decodes a descriptor from its key and value.
pub fn decode(key: &[u8], value: &[u8]) -> Result<SegmentRecord, DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(SEGMENT)?;
    let id = parsed.read_u32()?;
    parsed.finish()?;
    let mut cur = value;
    let start_seq = get_u64(&mut cur)?;
    let start_time_ms = get_u64(&mut cur)?;
    if !cur.is_empty() {
        return Err(DecodeError::new("segment value", "trailing bytes"));
    }
    Ok(SegmentRecord {
        id,
        start_seq,
        start_time_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_segments(id in any::<u32>(), s in any::<u64>(), t in any::<u64>()) {
            let r = SegmentRecord { id, start_seq: s, start_time_ms: t };
            prop_assert_eq!(decode(&encode_key(id), &encode_value(&r)).unwrap(), r);
        }

        #[test]
        fn should_order_segments_by_id(a in any::<u32>(), b in any::<u32>()) {
            prop_assert_eq!(encode_key(a).cmp(&encode_key(b)), a.cmp(&b));
        }

        #[test]
        fn should_reject_garbage(k in proptest::collection::vec(any::<u8>(), 0..12), v in proptest::collection::vec(any::<u8>(), 0..20)) {
            let _ = decode(&k, &v);
            let _ = decode(&encode_key(1), &v);
        }
    }
}
