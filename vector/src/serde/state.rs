//! The index-state record: whether a collection is clustered, its quantizer, and the
//! counters of its index.
//!
//! ```text
//! key:   [0x03][0x01][0x80][collection id u32 BE][0x10]
//! value: ┌─────────┬───────┬─────────────────┬──────────┬─────────────────────────────────────────┐
//!        │ version │ flags │ next posting id │ epoch    │ if flags & 2: dim u32 LE,               │
//!        │ u8 = 1  │ u8    │ u32 LE          │ u64 LE   │ min f32 LE × dim, scale f32 LE × dim    │
//!        └─────────┴───────┴─────────────────┴──────────┴─────────────────────────────────────────┘
//! flags: bit 0 clustered (posting lists exist), bit 1 quantized posting lists
//! epoch: bumped whenever the centroid set changes, so replicas reload centroids only then
//! ```

use opendata_common::DecodeError;

use super::Cursor;
use crate::index::quantizer::Quantizer;

/// A collection's index state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexState {
    /// Posting lists exist (the first clustering has run).
    pub clustered: bool,
    /// The next unused posting id.
    pub next_posting: u32,
    /// Bumped whenever the centroid set changes.
    pub epoch: u64,
    /// The posting-list quantizer, when posting lists hold codes.
    pub quantizer: Option<Quantizer>,
}

/// Encodes the state.
pub fn encode(state: &IndexState) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    out.push(1);
    let flags = u8::from(state.clustered) | (u8::from(state.quantizer.is_some()) << 1);
    out.push(flags);
    out.extend_from_slice(&state.next_posting.to_le_bytes());
    out.extend_from_slice(&state.epoch.to_le_bytes());
    if let Some(q) = &state.quantizer {
        out.extend_from_slice(&(q.dim() as u32).to_le_bytes());
        for v in q.min.iter().chain(&q.scale) {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Decodes the state.
pub fn decode(value: &[u8]) -> Result<IndexState, DecodeError> {
    let mut c = Cursor::new(value, "index state");
    let version = c.u8()?;
    if version != 1 {
        return Err(c.err(&format!("unknown version {version}")));
    }
    let flags = c.u8()?;
    if flags & !3 != 0 {
        return Err(c.err("unknown flags"));
    }
    let next_posting = c.u32()?;
    let epoch = c.u64()?;
    let quantizer = if flags & 2 != 0 {
        let dim = c.u32()? as usize;
        let mut min = Vec::new();
        let mut scale = Vec::new();
        c.f32s(dim, &mut min)?;
        c.f32s(dim, &mut scale)?;
        if scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) || min.iter().any(|m| !m.is_finite())
        {
            return Err(c.err("quantizer range is not finite and positive"));
        }
        Some(Quantizer { min, scale })
    } else {
        None
    };
    c.finish()?;
    Ok(IndexState {
        clustered: flags & 1 != 0,
        next_posting,
        epoch,
        quantizer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip(clustered in any::<bool>(), next in any::<u32>(), epoch in any::<u64>(), q in proptest::option::of(proptest::collection::vec((-1e6f32..1e6, 1e-6f32..1e3), 1..20))) {
            let state = IndexState {
                clustered, next_posting: next, epoch,
                quantizer: q.map(|v| Quantizer { min: v.iter().map(|x| x.0).collect(), scale: v.iter().map(|x| x.1).collect() }),
            };
            let bytes = encode(&state);
            prop_assert_eq!(decode(&bytes).unwrap(), state);
            for cut in 0..bytes.len() { prop_assert!(decode(&bytes[..cut]).is_err()); }
        }
    }
}
