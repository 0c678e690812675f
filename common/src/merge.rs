//! Merge operators.
//!
//! SlateDB takes one merge operator per database. [`MergeRouter`] is that operator: it
//! parses the key header (see [`crate::keys`]) and hands the merge to the operator
//! registered for the key's `(subsystem, record type)`. Ready operators:
//!
//! | operator | value and operand | merge |
//! |---|---|---|
//! | [`RoaringUnion`] | a serialized roaring bitmap | union |
//! | [`RoaringDelta`] | `[adds len u32 BE][adds bitmap][removes bitmap]` | apply removes, then adds |
//! | [`I64Add`] | 8-byte big-endian `i64` | wrapping sum |
//! | [`ByteAppend`] | any bytes | concatenation |
//!
//! A malformed operand or value is a merge error, never a panic.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use roaring::RoaringBitmap;
use slatedb::{MergeOperator, MergeOperatorError};

use crate::error::DecodeError;
use crate::keys::{ParsedKey, RecordType, Subsystem};

fn callback_error(message: impl Into<String>) -> MergeOperatorError {
    MergeOperatorError::Callback {
        message: message.into(),
    }
}

/// Dispatches merges to per-record-type operators by key header.
#[derive(Clone, Default)]
pub struct MergeRouter {
    routes: HashMap<(u8, u8), Arc<dyn MergeOperator + Send + Sync>>,
}

impl MergeRouter {
    /// A router with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Routes keys of `(subsystem, record_type)` to `operator`.
    pub fn route(
        mut self,
        subsystem: Subsystem,
        record_type: RecordType,
        operator: impl MergeOperator + Send + Sync + 'static,
    ) -> Self {
        self.routes
            .insert((subsystem.as_u8(), record_type.as_u8()), Arc::new(operator));
        self
    }

    fn operator_for(
        &self,
        key: &[u8],
    ) -> Result<&Arc<dyn MergeOperator + Send + Sync>, MergeOperatorError> {
        let parsed = ParsedKey::parse(key)
            .map_err(|e| callback_error(format!("merge on malformed key: {e}")))?;
        self.routes
            .get(&(parsed.subsystem.as_u8(), parsed.record_type.as_u8()))
            .ok_or_else(|| {
                callback_error(format!(
                    "no merge operator for subsystem {:?} record type 0x{:02x}",
                    parsed.subsystem,
                    parsed.record_type.as_u8()
                ))
            })
    }
}

impl MergeOperator for MergeRouter {
    fn merge(
        &self,
        key: &Bytes,
        existing: Option<Bytes>,
        value: Bytes,
    ) -> Result<Bytes, MergeOperatorError> {
        self.operator_for(key)?.merge(key, existing, value)
    }

    fn merge_batch(
        &self,
        key: &Bytes,
        existing: Option<Bytes>,
        operands: &[Bytes],
    ) -> Result<Bytes, MergeOperatorError> {
        self.operator_for(key)?.merge_batch(key, existing, operands)
    }
}

fn decode_bitmap(bytes: &[u8], what: &'static str) -> Result<RoaringBitmap, DecodeError> {
    RoaringBitmap::deserialize_from(bytes).map_err(|e| DecodeError::new(what, e.to_string()))
}

fn encode_bitmap(bitmap: &RoaringBitmap, out: &mut Vec<u8>) {
    bitmap
        .serialize_into(out)
        .expect("writing to a Vec cannot fail");
}

/// Union of roaring bitmaps (`u32` members).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoaringUnion;

impl RoaringUnion {
    /// Encodes a bitmap as a value or operand.
    pub fn encode(bitmap: &RoaringBitmap) -> Bytes {
        let mut out = Vec::with_capacity(bitmap.serialized_size());
        encode_bitmap(bitmap, &mut out);
        Bytes::from(out)
    }

    /// Decodes a value.
    pub fn decode(bytes: &[u8]) -> Result<RoaringBitmap, DecodeError> {
        decode_bitmap(bytes, "roaring bitmap")
    }
}

impl MergeOperator for RoaringUnion {
    fn merge(
        &self,
        key: &Bytes,
        existing: Option<Bytes>,
        value: Bytes,
    ) -> Result<Bytes, MergeOperatorError> {
        self.merge_batch(key, existing, std::slice::from_ref(&value))
    }

    fn merge_batch(
        &self,
        _key: &Bytes,
        existing: Option<Bytes>,
        operands: &[Bytes],
    ) -> Result<Bytes, MergeOperatorError> {
        let mut acc = match existing {
            Some(e) => Self::decode(&e).map_err(|e| callback_error(e.to_string()))?,
            None => RoaringBitmap::new(),
        };
        for op in operands {
            acc |= Self::decode(op).map_err(|e| callback_error(e.to_string()))?;
        }
        Ok(Self::encode(&acc))
    }
}

/// Set changes on roaring bitmaps: each operand adds some members and removes others.
///
/// ```text
/// ┌──────────────────┬─────────────────────┬───────────────────────┐
/// │ adds length u32BE│ adds (roaring)      │ removes (roaring)     │
/// └──────────────────┴─────────────────────┴───────────────────────┘
/// ```
///
/// Deltas compose associatively: applying `(a1, r1)` then `(a2, r2)` equals applying
/// `((a1 - r2) | a2, (r1 - a2) | r2)`, so SlateDB may merge operands in any grouping.
/// The members of a key are the adds of its fully merged value.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoaringDelta;

impl RoaringDelta {
    /// Encodes a delta.
    pub fn encode(adds: &RoaringBitmap, removes: &RoaringBitmap) -> Bytes {
        let mut out = Vec::with_capacity(4 + adds.serialized_size() + removes.serialized_size());
        out.extend_from_slice(&(adds.serialized_size() as u32).to_be_bytes());
        encode_bitmap(adds, &mut out);
        encode_bitmap(removes, &mut out);
        Bytes::from(out)
    }

    /// Decodes a delta into `(adds, removes)`.
    pub fn decode(bytes: &[u8]) -> Result<(RoaringBitmap, RoaringBitmap), DecodeError> {
        let mut cur = bytes;
        let len = crate::encoding::get_u32(&mut cur)? as usize;
        if cur.len() < len {
            return Err(DecodeError::truncated("roaring delta"));
        }
        let adds = decode_bitmap(&cur[..len], "roaring delta adds")?;
        let removes = decode_bitmap(&cur[len..], "roaring delta removes")?;
        Ok((adds, removes))
    }

    /// The members of a merged value.
    pub fn members(bytes: &[u8]) -> Result<RoaringBitmap, DecodeError> {
        Ok(Self::decode(bytes)?.0)
    }
}

impl MergeOperator for RoaringDelta {
    fn merge(
        &self,
        key: &Bytes,
        existing: Option<Bytes>,
        value: Bytes,
    ) -> Result<Bytes, MergeOperatorError> {
        self.merge_batch(key, existing, std::slice::from_ref(&value))
    }

    fn merge_batch(
        &self,
        _key: &Bytes,
        existing: Option<Bytes>,
        operands: &[Bytes],
    ) -> Result<Bytes, MergeOperatorError> {
        let (mut adds, mut removes) = match existing {
            Some(e) => Self::decode(&e).map_err(|e| callback_error(e.to_string()))?,
            None => (RoaringBitmap::new(), RoaringBitmap::new()),
        };
        for op in operands {
            let (a2, r2) = Self::decode(op).map_err(|e| callback_error(e.to_string()))?;
            adds -= &r2;
            adds |= &a2;
            removes -= &a2;
            removes |= r2;
        }
        Ok(Self::encode(&adds, &removes))
    }
}

/// Wrapping addition of 8-byte big-endian `i64` values.
#[derive(Debug, Clone, Copy, Default)]
pub struct I64Add;

impl I64Add {
    /// Encodes a value or operand.
    pub fn encode(value: i64) -> Bytes {
        Bytes::copy_from_slice(&value.to_be_bytes())
    }

    /// Decodes a value.
    pub fn decode(bytes: &[u8]) -> Result<i64, DecodeError> {
        let arr: [u8; 8] = bytes.try_into().map_err(|_| {
            DecodeError::new(
                "i64 counter",
                format!("expected 8 bytes, got {}", bytes.len()),
            )
        })?;
        Ok(i64::from_be_bytes(arr))
    }
}

impl MergeOperator for I64Add {
    fn merge(
        &self,
        key: &Bytes,
        existing: Option<Bytes>,
        value: Bytes,
    ) -> Result<Bytes, MergeOperatorError> {
        self.merge_batch(key, existing, std::slice::from_ref(&value))
    }

    fn merge_batch(
        &self,
        _key: &Bytes,
        existing: Option<Bytes>,
        operands: &[Bytes],
    ) -> Result<Bytes, MergeOperatorError> {
        let mut acc = match existing {
            Some(e) => Self::decode(&e).map_err(|e| callback_error(e.to_string()))?,
            None => 0,
        };
        for op in operands {
            acc = acc.wrapping_add(Self::decode(op).map_err(|e| callback_error(e.to_string()))?);
        }
        Ok(Self::encode(acc))
    }
}

/// Concatenation of byte strings, oldest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteAppend;

impl MergeOperator for ByteAppend {
    fn merge(
        &self,
        key: &Bytes,
        existing: Option<Bytes>,
        value: Bytes,
    ) -> Result<Bytes, MergeOperatorError> {
        self.merge_batch(key, existing, std::slice::from_ref(&value))
    }

    fn merge_batch(
        &self,
        _key: &Bytes,
        existing: Option<Bytes>,
        operands: &[Bytes],
    ) -> Result<Bytes, MergeOperatorError> {
        let len = existing.as_ref().map_or(0, |e| e.len())
            + operands.iter().map(|o| o.len()).sum::<usize>();
        let mut out = BytesMut::with_capacity(len);
        if let Some(e) = existing {
            out.extend_from_slice(&e);
        }
        for op in operands {
            out.extend_from_slice(op);
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPrefix;
    use proptest::prelude::*;

    const BITMAP: RecordType = RecordType::new(1);
    const COUNTER: RecordType = RecordType::new(2);

    fn router() -> MergeRouter {
        MergeRouter::new()
            .route(Subsystem::Log, BITMAP, RoaringUnion)
            .route(Subsystem::Log, COUNTER, I64Add)
    }

    fn bm(v: &[u32]) -> RoaringBitmap {
        v.iter().copied().collect()
    }

    #[test]
    fn should_route_by_record_type() {
        let r = router();
        let p = KeyPrefix::new(Subsystem::Log, 1);
        let bkey = p.record(BITMAP).build();
        let out = r
            .merge(
                &bkey,
                Some(RoaringUnion::encode(&bm(&[1]))),
                RoaringUnion::encode(&bm(&[2])),
            )
            .unwrap();
        assert_eq!(RoaringUnion::decode(&out).unwrap(), bm(&[1, 2]));
        let ckey = p.segmented(3, COUNTER).build();
        let out = r
            .merge_batch(&ckey, None, &[I64Add::encode(2), I64Add::encode(-5)])
            .unwrap();
        assert_eq!(I64Add::decode(&out).unwrap(), -3);
    }

    #[test]
    fn should_fail_on_unknown_route_or_bad_operand() {
        let r = router();
        let p = KeyPrefix::new(Subsystem::Log, 1);
        assert!(
            r.merge(&p.record(RecordType::new(9)).build(), None, Bytes::new())
                .is_err()
        );
        assert!(
            r.merge(&Bytes::from_static(&[0, 1, 2]), None, Bytes::new())
                .is_err()
        );
        assert!(
            r.merge(&p.record(COUNTER).build(), None, Bytes::from_static(b"abc"))
                .is_err()
        );
        assert!(
            r.merge(
                &p.record(BITMAP).build(),
                None,
                Bytes::from_static(b"\xff\xff\xff")
            )
            .is_err()
        );
        assert!(
            RoaringDelta
                .merge(&Bytes::new(), None, Bytes::from_static(&[0, 0, 0, 9, 1]))
                .is_err()
        );
    }

    #[test]
    fn should_append_bytes() {
        let out = ByteAppend
            .merge_batch(
                &Bytes::new(),
                Some(Bytes::from_static(b"ab")),
                &[Bytes::from_static(b"c"), Bytes::from_static(b"de")],
            )
            .unwrap();
        assert_eq!(&out[..], b"abcde");
    }

    fn apply(set: &mut std::collections::BTreeSet<u32>, adds: &[u32], removes: &[u32]) {
        for r in removes {
            set.remove(r);
        }
        for a in adds {
            set.insert(*a);
        }
    }

    proptest! {
        #[test]
        fn should_compose_roaring_deltas_in_any_grouping(
            ops in proptest::collection::vec((proptest::collection::vec(0u32..20, 0..5), proptest::collection::vec(0u32..20, 0..5)), 1..6),
            split in 0usize..6,
        ) {
            let mut model = std::collections::BTreeSet::new();
            let encoded: Vec<Bytes> = ops.iter().map(|(a, r)| {
                apply(&mut model, a, r);
                RoaringDelta::encode(&bm(a), &bm(r))
            }).collect();
            let split = split.min(encoded.len());
            let key = Bytes::new();
            // Merge the tail operands on their own (as compaction may), then apply them to
            // the merged head.
            let head = if split == 0 { None } else { Some(RoaringDelta.merge_batch(&key, None, &encoded[..split]).unwrap()) };
            let full = if split == encoded.len() { head.unwrap() } else {
                let tail = RoaringDelta.merge_batch(&key, None, &encoded[split..]).unwrap();
                RoaringDelta.merge(&key, head, tail).unwrap()
            };
            let members: Vec<u32> = RoaringDelta::members(&full).unwrap().iter().collect();
            prop_assert_eq!(members, model.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn should_roundtrip_counters(v in any::<i64>()) {
            prop_assert_eq!(I64Add::decode(&I64Add::encode(v)).unwrap(), v);
        }

        #[test]
        fn should_never_panic_on_garbage_operands(data in proptest::collection::vec(any::<u8>(), 0..40)) {
            let key = Bytes::new();
            let d = Bytes::from(data);
            let _ = RoaringUnion.merge(&key, Some(d.clone()), d.clone());
            let _ = RoaringDelta.merge(&key, Some(d.clone()), d.clone());
            let _ = I64Add.merge(&key, Some(d.clone()), d.clone());
            let _ = router().merge(&d, None, d.clone());
        }
    }
}
