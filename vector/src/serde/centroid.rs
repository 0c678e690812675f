//! The centroid record of one posting list.
//!
//! ```text
//! key:   [0x03][0x01][0x80][collection id u32 BE][0x11][posting id u32 BE]
//! value: ┌──────────────────────────┐
//!        │ component f32 LE × dim   │
//!        └──────────────────────────┘
//! ```

use opendata_common::DecodeError;

use super::Cursor;

/// Encodes a centroid.
pub fn encode(centroid: &[f32]) -> Vec<u8> {
    centroid.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Decodes a centroid of `dim` components, appending them to `out`.
pub fn decode_into(value: &[u8], dim: usize, out: &mut Vec<f32>) -> Result<(), DecodeError> {
    let mut c = Cursor::new(value, "centroid");
    c.f32s(dim, out)?;
    c.finish()?;
    if out[out.len() - dim..].iter().any(|x| !x.is_finite()) {
        return Err(DecodeError::new("centroid", "non-finite component"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip(v in proptest::collection::vec(-1e30f32..1e30, 1..64)) {
            let bytes = encode(&v);
            let mut out = Vec::new();
            decode_into(&bytes, v.len(), &mut out).unwrap();
            prop_assert_eq!(&out, &v);
            let mut out = Vec::new();
            prop_assert!(decode_into(&bytes[..bytes.len() - 1], v.len(), &mut out).is_err());
        }
    }
}
