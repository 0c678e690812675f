//! A topic partition's next offset: the offset its next record will get.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────────────────┐
//!        │ 0x01 │ 0x01 │ 0x07 │ log key (escaped)         │
//!        └──────┴──────┴──────┴───────────────────────────┘
//! value: ┌──────────────────────┐
//!        │ next offset u64 BE   │
//!        └──────────────────────┘
//! ```
//!
//! Rewritten by every append to the partition, in the same write as its entries, and
//! never dropped by retention: a partition whose every entry has expired keeps its end
//! offset, so offsets are never reused.

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::get_u64;

use super::{PARTITION, PREFIX};

/// The record key of partition log key `log_key`.
pub fn encode_key(log_key: &[u8]) -> Bytes {
    PREFIX.record(PARTITION).bytes(log_key).build()
}

/// Encodes the next offset.
pub fn encode_value(next_offset: u64) -> Bytes {
    Bytes::copy_from_slice(&next_offset.to_be_bytes())
}

/// Decodes the next offset.
pub fn decode_value(value: &[u8]) -> Result<u64, DecodeError> {
    let mut cur = value;
    let next = get_u64(&mut cur)?;
    if !cur.is_empty() {
        return Err(DecodeError::new("partition value", "trailing bytes"));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_next_offset(next in any::<u64>()) {
            prop_assert_eq!(decode_value(&encode_value(next)).unwrap(), next);
        }

        #[test]
        fn should_reject_garbage(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            prop_assert_eq!(decode_value(&data).is_ok(), data.len() == 8);
        }
    }
}
