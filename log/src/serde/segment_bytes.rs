//! Per-segment byte counters, kept with the `I64Add` merge operator so appends never
//! read before writing.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬────────────┐      value (merge operand and result):
//!        │ 0x01 │ 0x01 │ 0x05 │ segment id │      ┌──────────────────────────────┐
//!        │ log  │ ver  │ type │  u32 BE    │      │ bytes appended i64 BE        │
//!        └──────┴──────┴──────┴────────────┘      └──────────────────────────────┘
//! ```
//!
//! The counter adds key and value bytes of every entry appended to the segment; size
//! retention sums it over segments.

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::merge::I64Add;

use super::{PREFIX, SEGMENT_BYTES};

/// The key of segment `id`'s byte counter.
pub fn encode_key(id: u32) -> Bytes {
    PREFIX.record(SEGMENT_BYTES).u32(id).build()
}

/// The merge operand that adds `bytes`.
pub fn operand(bytes: u64) -> Bytes {
    I64Add::encode(bytes.min(i64::MAX as u64) as i64)
}

/// Decodes a counter value.
pub fn decode_value(value: &[u8]) -> Result<u64, DecodeError> {
    Ok(I64Add::decode(value)?.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_counter(v in 0u64..(i64::MAX as u64)) {
            prop_assert_eq!(decode_value(&operand(v)).unwrap(), v);
        }

        #[test]
        fn should_order_counters_by_segment(a in any::<u32>(), b in any::<u32>()) {
            prop_assert_eq!(encode_key(a).cmp(&encode_key(b)), a.cmp(&b));
        }
    }
}
