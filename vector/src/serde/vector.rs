//! The vector record: one stored vector with its external id and attributes.
//!
//! ```text
//! key:   [0x03][0x01][0x80][collection id u32 BE][0x13][internal id u32 BE]
//! value: ┌─────────┬────────────┬─────────────┬────────────────────┬────────────┬─────────────────────────────┬──────────┬─────────────────────┐
//!        │ version │ id length  │ external id │ vector             │ attr count │ per attribute: name len u16 │ postings │ posting id u32 LE   │
//!        │ u8 = 1  │ u16 LE     │ UTF-8       │ f32 LE × dimension │ u16 LE     │ LE, name, value (attribute) │ u8       │ × postings          │
//!        └─────────┴────────────┴─────────────┴────────────────────┴────────────┴─────────────────────────────┴──────────┴─────────────────────┘
//! ```
//!
//! Internal ids are handed out in increasing order and never reused: an upsert of an
//! existing external id writes a new internal id and retires the old one, so posting
//! entries never need an in-place update. `postings` lists the posting lists the vector
//! was first written to (a hint for clean-up after deletes; later splits move entries
//! without rewriting this record).

use std::collections::BTreeMap;

use opendata_common::DecodeError;

use super::Cursor;
use super::attribute::{get_value, put_value};
use crate::model::AttributeValue;

/// A decoded vector record.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVector {
    /// The external id.
    pub id: String,
    /// The vector.
    pub vector: Vec<f32>,
    /// Attributes by name.
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Posting lists the vector was written to.
    pub postings: Vec<u32>,
}

/// Encodes a vector record.
pub fn encode(
    id: &str,
    vector: &[f32],
    attributes: &BTreeMap<String, AttributeValue>,
    postings: &[u32],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + id.len() + vector.len() * 4 + attributes.len() * 16);
    out.push(1);
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(&(attributes.len() as u16).to_le_bytes());
    for (name, value) in attributes {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        put_value(&mut out, value);
    }
    let n = postings.len().min(255);
    out.push(n as u8);
    for p in &postings[..n] {
        out.extend_from_slice(&p.to_le_bytes());
    }
    out
}

/// Decodes only the external id and the vector (the re-ranking path).
pub fn decode_head(value: &[u8], dim: usize, vector: &mut Vec<f32>) -> Result<String, DecodeError> {
    let mut c = Cursor::new(value, "vector record");
    let version = c.u8()?;
    if version != 1 {
        return Err(c.err(&format!("unknown version {version}")));
    }
    let len = c.u16()? as usize;
    let id = c.string(len)?;
    c.f32s(dim, vector)?;
    Ok(id)
}

/// Decodes a whole record.
pub fn decode(value: &[u8], dim: usize) -> Result<StoredVector, DecodeError> {
    let mut c = Cursor::new(value, "vector record");
    let version = c.u8()?;
    if version != 1 {
        return Err(c.err(&format!("unknown version {version}")));
    }
    let len = c.u16()? as usize;
    let id = c.string(len)?;
    let mut vector = Vec::with_capacity(dim);
    c.f32s(dim, &mut vector)?;
    let count = c.u16()?;
    let mut attributes = BTreeMap::new();
    for _ in 0..count {
        let len = c.u16()? as usize;
        let name = c.string(len)?;
        let value = get_value(&mut c)?;
        attributes.insert(name, value);
    }
    let n = c.u8()? as usize;
    let mut postings = Vec::with_capacity(n);
    for _ in 0..n {
        postings.push(c.u32()?);
    }
    c.finish()?;
    Ok(StoredVector {
        id,
        vector,
        attributes,
        postings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            ".{0,20}".prop_map(AttributeValue::String),
            any::<i64>().prop_map(AttributeValue::Integer),
            (-1e300f64..1e300).prop_map(AttributeValue::Float),
            any::<bool>().prop_map(AttributeValue::Bool),
            proptest::collection::vec(".{0,8}", 0..5).prop_map(AttributeValue::StringList),
        ]
    }

    proptest! {
        #[test]
        fn should_round_trip(id in ".{1,40}", v in proptest::collection::vec(-1e9f32..1e9, 1..32),
                             attrs in proptest::collection::btree_map("[a-z]{1,10}", value(), 0..6),
                             postings in proptest::collection::vec(any::<u32>(), 0..5)) {
            let bytes = encode(&id, &v, &attrs, &postings);
            let back = decode(&bytes, v.len()).unwrap();
            prop_assert_eq!(&back, &StoredVector { id: id.clone(), vector: v.clone(), attributes: attrs, postings });
            let mut head = Vec::new();
            prop_assert_eq!(decode_head(&bytes, v.len(), &mut head).unwrap(), id);
            prop_assert_eq!(head, v.clone());
            for cut in 0..bytes.len() { prop_assert!(decode(&bytes[..cut], v.len()).is_err()); }
        }
    }
}
