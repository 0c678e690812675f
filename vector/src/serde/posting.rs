//! The posting list of one centroid: the vectors of its cluster.
//!
//! ```text
//! key:   [0x03][0x01][0x80][collection id u32 BE][0x12][posting id u32 BE]
//! value: entry × n, each:
//!        ┌────────────────┬──────────────────────────────────────────────────────┐
//!        │ internal id    │ payload: dim bytes of 8-bit codes (quantized), or    │
//!        │ u32 LE         │          dim f32 LE (full precision)                 │
//!        └────────────────┴──────────────────────────────────────────────────────┘
//! ```
//!
//! Entries are appended with the `ByteAppend` merge operator, so an insert writes only
//! its own entry; maintenance rewrites a list whole (split, merge, clean-up). An entry
//! whose internal id is no longer live (deleted, or replaced by a newer upsert) is
//! skipped by searches and dropped at the list's next rewrite.

use opendata_common::DecodeError;

/// The byte size of one entry.
pub fn entry_size(dim: usize, quantized: bool) -> usize {
    4 + if quantized { dim } else { dim * 4 }
}

/// Appends one entry.
pub fn push_entry(out: &mut Vec<u8>, id: u32, payload: &[u8]) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Checks a posting value is a whole number of entries and returns how many.
pub fn entry_count(value: &[u8], entry_size: usize) -> Result<usize, DecodeError> {
    if !value.len().is_multiple_of(entry_size) {
        return Err(DecodeError::new(
            "posting list",
            format!(
                "{} bytes is not a whole number of {entry_size}-byte entries",
                value.len()
            ),
        ));
    }
    Ok(value.len() / entry_size)
}

/// The entries of a posting value as (internal id, payload).
pub fn entries(
    value: &[u8],
    entry_size: usize,
) -> Result<impl Iterator<Item = (u32, &[u8])>, DecodeError> {
    entry_count(value, entry_size)?;
    Ok(value.chunks_exact(entry_size).map(|e| {
        (
            u32::from_le_bytes(e[..4].try_into().expect("4 bytes")),
            &e[4..],
        )
    }))
}

/// Full-precision payload of a vector.
pub fn f32_payload(v: &[f32], out: &mut Vec<u8>) {
    out.extend(v.iter().flat_map(|x| x.to_le_bytes()));
}

/// Reads a full-precision payload.
pub fn read_f32_payload(payload: &[u8], out: &mut Vec<f32>) {
    out.extend(
        payload
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip_entries(items in proptest::collection::vec((any::<u32>(), proptest::collection::vec(any::<u8>(), 6)), 0..50)) {
            let mut value = Vec::new();
            for (id, p) in &items { push_entry(&mut value, *id, p); }
            let back: Vec<(u32, Vec<u8>)> = entries(&value, 10).unwrap().map(|(i, p)| (i, p.to_vec())).collect();
            prop_assert_eq!(&back, &items);
            if !value.is_empty() { prop_assert!(entries(&value[..value.len() - 1], 10).is_err()); }
        }
    }
}
