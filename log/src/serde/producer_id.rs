//! The producer id counter: the next id `init_producer_id` hands out.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┐
//!        │ 0x01 │ 0x01 │ 0x0A │
//!        └──────┴──────┴──────┘
//! value: ┌──────────────────────┐
//!        │ next id u64 BE       │
//!        └──────────────────────┘
//! ```

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::get_u64;

use super::{PREFIX, PRODUCER_ID};

/// The counter's key.
pub fn key() -> Bytes {
    PREFIX.record(PRODUCER_ID).build()
}

/// Encodes the next id.
pub fn encode_value(next: u64) -> Bytes {
    Bytes::copy_from_slice(&next.to_be_bytes())
}

/// Decodes the next id.
pub fn decode_value(value: &[u8]) -> Result<u64, DecodeError> {
    let mut cur = value;
    let next = get_u64(&mut cur)?;
    if !cur.is_empty() {
        return Err(DecodeError::new("producer id counter", "trailing bytes"));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_counter(next in any::<u64>()) {
            prop_assert_eq!(decode_value(&encode_value(next)).unwrap(), next);
        }

        #[test]
        fn should_reject_garbage(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            prop_assert_eq!(decode_value(&data).is_ok(), data.len() == 8);
        }
    }
}
