//! The inverted index: for a label name and value, the bitmap of a bucket's series ids
//! carrying it.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────┬──────┬─────────────────────┬──────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE │ 0x13 │ name (escaped 00 01)│ value (escaped 00 01)│
//!        └──────┴──────┴──────┴───────────────┴──────┴─────────────────────┴──────────────────────┘
//! value: a serialized roaring bitmap of series ids
//! ```
//!
//! Written through the `RoaringUnion` merge operator: every flush of a bucket merges in
//! the ids of the series it adds, so the stored value is the union. All values of one
//! name are one contiguous key range, read by regex matchers without touching other
//! names; an equality matcher is one point read.

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{POSTINGS, PREFIX};

/// Key of (`name`, `value`) in `bucket`.
pub fn key(bucket: u32, name: &str, value: &str) -> Bytes {
    PREFIX
        .segmented(bucket, POSTINGS)
        .bytes(name.as_bytes())
        .bytes(value.as_bytes())
        .build()
}

/// Scan prefix of every value of `name` in `bucket`.
pub fn name_prefix(bucket: u32, name: &str) -> Bytes {
    PREFIX
        .segmented(bucket, POSTINGS)
        .bytes(name.as_bytes())
        .build()
}

/// Decodes (name, value) from a postings key.
pub fn decode_key(key: &[u8]) -> Result<(String, String), DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(POSTINGS)?;
    let name = parsed.read_bytes()?;
    let value = parsed.read_bytes()?;
    parsed.finish()?;
    let utf8 = |b: Vec<u8>| {
        String::from_utf8(b).map_err(|_| DecodeError::new("postings key", "not UTF-8"))
    };
    Ok((utf8(name)?, utf8(value)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip_postings_key(bucket in any::<u32>(), name in "[a-z_]{1,10}", value in ".{0,20}") {
            let k = key(bucket, &name, &value);
            prop_assert_eq!(decode_key(&k).unwrap(), (name.clone(), value));
            prop_assert!(k.starts_with(&name_prefix(bucket, &name)));
        }

        #[test]
        fn should_keep_one_names_values_apart_from_a_longer_name(bucket in any::<u32>(), value in ".{0,8}") {
            // "a" + value must never fall under the prefix of name "ab" or vice versa.
            prop_assert!(!key(bucket, "a", &value).starts_with(&name_prefix(bucket, "ab")));
            prop_assert!(!key(bucket, "ab", &value).starts_with(&name_prefix(bucket, "a")));
        }
    }
}
