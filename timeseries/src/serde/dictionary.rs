//! The series dictionary: which series ids of a bucket have a given fingerprint.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────┬──────┬──────────────────┬──────────────────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE │ 0x12 │ fingerprint u64  │ series id u32 BE │
//!        └──────┴──────┴──────┴───────────────┴──────┴──────────────────┴──────────────────┘
//! value: empty
//! ```
//!
//! The fingerprint (`labels::fingerprint`) is only a hint: a lookup scans every id under
//! the fingerprint and compares labels through the forward index, so two label sets that
//! collide stay two series.

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{DICTIONARY, PREFIX};

/// Key of the dictionary entry of (`fingerprint`, `id`) in `bucket`.
pub fn key(bucket: u32, fingerprint: u64, id: u32) -> Bytes {
    PREFIX
        .segmented(bucket, DICTIONARY)
        .u64(fingerprint)
        .u32(id)
        .build()
}

/// Range of the entries of `fingerprint` in `bucket`.
pub fn range(bucket: u32, fingerprint: u64) -> (Bytes, Bytes) {
    let start = PREFIX
        .segmented(bucket, DICTIONARY)
        .u64(fingerprint)
        .build();
    let end = match fingerprint.checked_add(1) {
        Some(next) => PREFIX.segmented(bucket, DICTIONARY).u64(next).build(),
        None => PREFIX.segmented(bucket, SERIES_AFTER_DICTIONARY).build(),
    };
    (start, end)
}

/// The record type right after the dictionary's, which bounds its last fingerprint.
const SERIES_AFTER_DICTIONARY: opendata_common::keys::RecordType =
    opendata_common::keys::RecordType::new(0x13);

/// Decodes (fingerprint, series id) from a dictionary key.
pub fn decode_key(key: &[u8]) -> Result<(u64, u32), DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(DICTIONARY)?;
    let fp = parsed.read_u64()?;
    let id = parsed.read_u32()?;
    parsed.finish()?;
    Ok((fp, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip_dictionary_key(bucket in any::<u32>(), fp in any::<u64>(), id in any::<u32>()) {
            let k = key(bucket, fp, id);
            prop_assert_eq!(decode_key(&k).unwrap(), (fp, id));
            let (start, end) = range(bucket, fp);
            prop_assert!(start.as_ref() <= k.as_ref() && k.as_ref() < end.as_ref());
        }
    }
}
