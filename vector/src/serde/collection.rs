//! The collection record: a collection's definition and id.
//!
//! ```text
//! key:   [0x03][0x01][0x01] name (escaped bytes)
//! value: ┌─────────┬───────────────┬───────────┬────────┬────────────┬──────────────────────────────────┐
//!        │ version │ collection id │ dimension │ metric │ attr count │ per attribute:                   │
//!        │ u8 = 1  │ u32 LE        │ u32 LE    │ u8     │ u16 LE     │ name len u16 LE, name, type u8   │
//!        └─────────┴───────────────┴───────────┴────────┴────────────┴──────────────────────────────────┘
//! metric: 1 l2, 2 cosine, 3 dot; type: 1 string, 2 integer, 3 float, 4 bool, 5 string_list
//! ```

use opendata_common::DecodeError;

use super::Cursor;
use crate::model::{AttributeType, CollectionSpec, Metric};

/// Encodes a collection record value.
pub fn encode(id: u32, spec: &CollectionSpec) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + spec.attributes.len() * 16);
    out.push(1);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&spec.dimension.to_le_bytes());
    out.push(spec.metric.as_u8());
    out.extend_from_slice(&(spec.attributes.len() as u16).to_le_bytes());
    for (name, ty) in &spec.attributes {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(ty.as_u8());
    }
    out
}

/// Decodes a collection record value of collection `name`.
pub fn decode(name: &str, value: &[u8]) -> Result<(u32, CollectionSpec), DecodeError> {
    let mut c = Cursor::new(value, "collection record");
    let version = c.u8()?;
    if version != 1 {
        return Err(c.err(&format!("unknown version {version}")));
    }
    let id = c.u32()?;
    let dimension = c.u32()?;
    let metric = Metric::from_u8(c.u8()?).ok_or_else(|| c.err("unknown metric"))?;
    let count = c.u16()?;
    let mut spec = CollectionSpec::new(name, dimension, metric);
    for _ in 0..count {
        let len = c.u16()? as usize;
        let attr = c.string(len)?;
        let ty = AttributeType::from_u8(c.u8()?).ok_or_else(|| c.err("unknown attribute type"))?;
        spec.attributes.insert(attr, ty);
    }
    c.finish()?;
    Ok((id, spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip(id in any::<u32>(), dim in 1u32..5000, m in 1u8..4, attrs in proptest::collection::btree_map("[a-z]{1,12}", 1u8..6, 0..8)) {
            let mut spec = CollectionSpec::new("c", dim, Metric::from_u8(m).unwrap());
            for (k, t) in attrs { spec.attributes.insert(k, AttributeType::from_u8(t).unwrap()); }
            let bytes = encode(id, &spec);
            prop_assert_eq!(decode("c", &bytes).unwrap(), (id, spec));
            for cut in 0..bytes.len() { prop_assert!(decode("c", &bytes[..cut]).is_err()); }
        }
    }
}
