//! The label-name index: for a label name, the bitmap of a bucket's series ids that
//! carry it (with any value).
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────┬──────┬─────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE │ 0x14 │ name (escaped 00 01)│
//!        └──────┴──────┴──────┴───────────────┴──────┴─────────────────────┘
//! value: a serialized roaring bitmap of series ids (merge: union)
//! ```
//!
//! It answers `/api/v1/labels` without reading values, and gives the complement for
//! matchers that match the empty string (`name!="x"`, `name=~".*"`): a series without
//! the label matches them. The bitmap of `__name__` holds every series of the bucket.

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{LABEL_NAMES, PREFIX};

/// Key of `name` in `bucket`.
pub fn key(bucket: u32, name: &str) -> Bytes {
    PREFIX
        .segmented(bucket, LABEL_NAMES)
        .bytes(name.as_bytes())
        .build()
}

/// Scan prefix of every label name of `bucket`.
pub fn prefix(bucket: u32) -> Bytes {
    PREFIX.segmented(bucket, LABEL_NAMES).build()
}

/// Decodes the name from a label-name key.
pub fn decode_key(key: &[u8]) -> Result<String, DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(LABEL_NAMES)?;
    let name = parsed.read_bytes()?;
    parsed.finish()?;
    String::from_utf8(name).map_err(|_| DecodeError::new("label name key", "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip_label_name_key(bucket in any::<u32>(), name in ".{1,20}") {
            let k = key(bucket, &name);
            prop_assert_eq!(decode_key(&k).unwrap(), name);
            prop_assert!(k.starts_with(&prefix(bucket)));
        }
    }
}
