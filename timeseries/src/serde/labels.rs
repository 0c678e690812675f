//! The label-set encoding shared by the forward index and write-ahead records, and the
//! series fingerprint.
//!
//! ```text
//! ┌──────────────┬───────────────────────────────────────────────────────────────┐
//! │ count LEB128 │ count × ( name len LEB128 │ name │ value len LEB128 │ value ) │
//! └──────────────┴───────────────────────────────────────────────────────────────┘
//! ```
//!
//! Labels are stored sorted by name with unique names, as [`Labels`] keeps them.

use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, put_leb128};

use super::{Fnv64, get_str, put_str};
use crate::model::{Label, Labels};

/// Appends the encoding of `labels`.
pub fn encode_into(buf: &mut Vec<u8>, labels: &Labels) {
    put_leb128(buf, labels.len() as u64);
    for l in labels.as_slice() {
        put_str(buf, l.name.as_bytes());
        put_str(buf, l.value.as_bytes());
    }
}

/// The encoding of `labels`.
pub fn encode(labels: &Labels) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    encode_into(&mut buf, labels);
    buf
}

/// Decodes a label set at `pos`, checking names are sorted and unique.
pub fn decode_at(buf: &[u8], pos: &mut usize) -> Result<Labels, DecodeError> {
    let count = get_leb128(buf, pos)? as usize;
    if count > buf.len() {
        return Err(DecodeError::new(
            "labels",
            "label count larger than the record",
        ));
    }
    let mut labels: Vec<Label> = Vec::with_capacity(count);
    for _ in 0..count {
        let name = get_str(buf, pos, "labels")?;
        let value = get_str(buf, pos, "labels")?;
        if let Some(prev) = labels.last()
            && prev.name >= name
        {
            return Err(DecodeError::new("labels", "names not sorted and unique"));
        }
        labels.push(Label { name, value });
    }
    Ok(Labels::from_sorted(labels))
}

/// Decodes a whole value holding one label set.
pub fn decode(buf: &[u8]) -> Result<Labels, DecodeError> {
    let mut pos = 0;
    let labels = decode_at(buf, &mut pos)?;
    if pos != buf.len() {
        return Err(DecodeError::new("labels", "trailing bytes"));
    }
    Ok(labels)
}

/// The series fingerprint: 64-bit FNV-1a over the label encoding. It is stable across
/// versions and platforms (it is stored in dictionary keys), and it is only a hint:
/// two label sets with the same fingerprint are told apart by comparing labels.
pub fn fingerprint(labels: &Labels) -> u64 {
    let mut h = Fnv64::new();
    for l in labels.as_slice() {
        h.write(l.name.as_bytes());
        h.write(&[0xff]);
        h.write(l.value.as_bytes());
        h.write(&[0xfe]);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_labels() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[a-z_]{1,8}", ".{1,12}", 0..8).prop_map(Labels::from_pairs)
    }

    proptest! {
        #[test]
        fn should_round_trip_labels(labels in arb_labels()) {
            let bytes = encode(&labels);
            prop_assert_eq!(decode(&bytes).unwrap(), labels);
        }

        #[test]
        fn should_reject_truncated_labels(labels in arb_labels(), cut in 0usize..64) {
            let bytes = encode(&labels);
            if cut < bytes.len() && !labels.is_empty() {
                prop_assert!(decode(&bytes[..cut]).is_err());
            }
        }
    }

    #[test]
    fn should_give_distinct_fingerprints_to_boundary_shifted_labels() {
        let a = Labels::from_pairs([("ab", "c")]);
        let b = Labels::from_pairs([("a", "bc")]);
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
    }
}
