//! The forward index: a bucket's series id to its labels.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬────────────────┬──────┬────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE  │ 0x11 │ series id u32 BE   │
//!        └──────┴──────┴──────┴────────────────┴──────┴────────────────────┘
//! value: the label encoding of `labels` (sorted names, LEB128 lengths)
//! ```
//!
//! Written when a series' first samples in the bucket are flushed into chunks. Ids are
//! big-endian, so a bucket's series scan in id order and a set of ids is read with one
//! iterator that seeks from id to id.

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{PREFIX, SERIES};

/// Key of series `id` in `bucket`.
pub fn key(bucket: u32, id: u32) -> Bytes {
    PREFIX.segmented(bucket, SERIES).u32(id).build()
}

/// Range of every forward-index key of `bucket`.
pub fn range(bucket: u32) -> (Bytes, Bytes) {
    (
        PREFIX.segmented(bucket, SERIES).build(),
        PREFIX.segmented(bucket, SERIES).u32(u32::MAX).u8(0).build(),
    )
}

/// Decodes the series id from a forward-index key.
pub fn decode_key(key: &[u8]) -> Result<u32, DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(SERIES)?;
    let id = parsed.read_u32()?;
    parsed.finish()?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip_series_key(bucket in any::<u32>(), id in any::<u32>()) {
            let k = key(bucket, id);
            prop_assert_eq!(decode_key(&k).unwrap(), id);
            let (start, end) = range(bucket);
            prop_assert!(start.as_ref() <= k.as_ref() && k.as_ref() < end.as_ref());
        }
    }
}
