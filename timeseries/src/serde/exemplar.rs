//! Exemplars: one record per series and timestamp in the bucket holding the timestamp.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────┬──────┬──────────────────┬──────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE │ 0x40 │ series id u32 BE │ timestamp i64 (sort) │
//!        └──────┴──────┴──────┴───────────────┴──────┴──────────────────┴──────────────────────┘
//! value: ┌─────────┬──────────────────┬──────────────────────────────────────────────┐
//!        │ 0x01 v. │ value f64 bits BE │ labels (count, then name len, name, value  │
//!        │         │ (u64)             │ len, value..., LEB128 lengths)              │
//!        └─────────┴──────────────────┴──────────────────────────────────────────────┘
//! ```
//!
//! The timestamp uses the sortable `i64` encoding (sign bit flipped, big-endian), so a
//! series' exemplars in a bucket scan in time order and a time range is one key range.
//! A second exemplar at the same timestamp replaces the first. Exemplar records are
//! written in the same write batch as the samples' write-ahead record, so they are as
//! durable as the samples, and they go with their bucket when retention drops it.

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{EXEMPLAR, PREFIX, labels};
use crate::model::Exemplar;

const VERSION: u8 = 1;

/// Key of the exemplar of series `id` at `timestamp_ms` in `bucket`.
pub fn key(bucket: u32, id: u32, timestamp_ms: i64) -> Bytes {
    PREFIX
        .segmented(bucket, EXEMPLAR)
        .u32(id)
        .i64(timestamp_ms)
        .build()
}

/// The key range of series `id`'s exemplars in `[start, end]` (ms, inclusive).
pub fn range(bucket: u32, id: u32, start: i64, end: i64) -> (Bytes, Bytes) {
    let from = key(bucket, id, start);
    let to = match end.checked_add(1) {
        Some(after) => key(bucket, id, after),
        None => PREFIX
            .segmented(bucket, EXEMPLAR)
            .u32(id)
            .u64(u64::MAX)
            .u8(0)
            .build(),
    };
    (from, to)
}

/// The key range of every exemplar in `bucket`.
pub fn bucket_range(bucket: u32) -> (Bytes, Bytes) {
    (
        PREFIX.segmented(bucket, EXEMPLAR).build(),
        PREFIX
            .segmented(bucket, EXEMPLAR)
            .u32(u32::MAX)
            .u64(u64::MAX)
            .u8(0)
            .build(),
    )
}

/// Decodes (series id, timestamp) from an exemplar key.
pub fn decode_key(key: &[u8]) -> Result<(u32, i64), DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(EXEMPLAR)?;
    let id = parsed.read_u32()?;
    let ts = parsed.read_i64()?;
    parsed.finish()?;
    Ok((id, ts))
}

/// Encodes an exemplar's value and labels (its series and time are in the key).
pub fn encode(e: &Exemplar) -> Bytes {
    let mut out = Vec::with_capacity(16 + e.labels.len() * 16);
    out.push(VERSION);
    out.extend_from_slice(&e.value.to_bits().to_be_bytes());
    labels::encode_into(&mut out, &e.labels);
    Bytes::from(out)
}

/// Decodes an exemplar value; `timestamp_ms` comes from its key.
pub fn decode(value: &[u8], timestamp_ms: i64) -> Result<Exemplar, DecodeError> {
    let what = "exemplar";
    match value.first() {
        Some(&VERSION) => {}
        Some(v) => return Err(DecodeError::new(what, format!("unknown version {v}"))),
        None => return Err(DecodeError::new(what, "empty value")),
    }
    let bits: [u8; 8] = value
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DecodeError::new(what, "value is cut short"))?;
    let mut pos = 9;
    let labels = labels::decode_at(value, &mut pos)?;
    if pos != value.len() {
        return Err(DecodeError::new(what, "bytes after the labels"));
    }
    Ok(Exemplar {
        labels,
        value: f64::from_bits(u64::from_be_bytes(bits)),
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use proptest::prelude::*;

    fn arb_exemplar() -> impl Strategy<Value = Exemplar> {
        (
            proptest::collection::btree_map("[a-z_]{1,8}", "[ -~]{1,12}", 0..4),
            any::<u64>(),
            any::<i64>(),
        )
            .prop_map(|(labels, bits, ts)| Exemplar {
                labels: Labels::from_pairs(labels),
                value: f64::from_bits(bits),
                timestamp_ms: ts,
            })
    }

    proptest! {
        #[test]
        fn should_round_trip_exemplars(e in arb_exemplar(), bucket in any::<u32>(), id in any::<u32>()) {
            let k = key(bucket, id, e.timestamp_ms);
            prop_assert_eq!(decode_key(&k).unwrap(), (id, e.timestamp_ms));
            let back = decode(&encode(&e), e.timestamp_ms).unwrap();
            prop_assert_eq!(back.labels, e.labels.clone());
            prop_assert_eq!(back.value.to_bits(), e.value.to_bits());
            let (lo, hi) = bucket_range(bucket);
            prop_assert!(lo.as_ref() <= k.as_ref() && k.as_ref() < hi.as_ref());
        }

        #[test]
        fn should_order_keys_by_series_then_time(a in any::<i64>(), b in any::<i64>(), id in 0u32..u32::MAX) {
            prop_assert_eq!(a.cmp(&b), key(1, id, a).cmp(&key(1, id, b)));
            prop_assert!(key(1, id, a) < key(1, id + 1, b));
        }

        #[test]
        fn should_keep_a_time_range_in_its_key_range(start in any::<i64>(), len in 0i64..1_000_000, t in any::<i64>(), id in any::<u32>()) {
            let end = start.saturating_add(len);
            let (lo, hi) = range(7, id, start, end);
            let k = key(7, id, t);
            let inside = lo.as_ref() <= k.as_ref() && k.as_ref() < hi.as_ref();
            prop_assert_eq!(inside, t >= start && t <= end);
        }

        #[test]
        fn should_refuse_garbage_values(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes, 0);
        }
    }
}
