//! The offset index: for each chunk of a topic partition, its dense offsets and the
//! Kafka attributes of its records (key, headers, create time) that the chunk itself
//! does not hold.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────────────────┬──────────────────┐
//!        │ 0x01 │ 0x01 │ 0x08 │ log key (escaped)         │ last offset u64  │
//!        └──────┴──────┴──────┴───────────────────────────┴──────────────────┘
//! value: ┌─────────┬───────────────┬─────────────┬──────────────┬────────┬──────────────┬───────┬─────────┐
//!        │ segment │ last sequence │ append (ms) │ max time(ms) │ count  │ value bytes  │ flags │ [records│
//!        │ u32 BE  │ u64 BE        │ u64 BE      │ i64 BE       │ LEB128 │ LEB128       │ u8    │  ]      │
//!        └─────────┴───────────────┴─────────────┴──────────────┴────────┴──────────────┴───────┴─────────┘
//! records (flags bit 0), count × :
//!        ┌───────┬─────────────────────────┬──────────────────┬──────────────┬─────────────────────────┐
//!        │ rflag │ [create time − append,  │ [key len LEB128, │ headers      │ headers × [name len,    │
//!        │ u8    │  zigzag LEB128] (bit 2) │  key]   (bit 0)  │ count LEB128 │  name][value len+1 or 0,│
//!        │       │                         │                  │              │  value] (0: null)       │
//!        └───────┴─────────────────────────┴──────────────────┴──────────────┴─────────────────────────┘
//! rflag: bit 0 key present, bit 1 value is null, bit 2 create time present.
//! ```
//!
//! The chunk a record names is `entry::encode_key(segment, log key, last sequence)`;
//! its `count` entries have offsets `last offset − count + 1 ..= last offset`, in
//! order. Records sort by last offset, so a read from offset `o` starts at the first
//! index record whose last offset is `>= o`. A chunk appended through the plain log API
//! (no Kafka attributes) has flags 0 and no records part.

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, put_leb128};

use super::{OFFSET_INDEX, PREFIX};
use crate::model::RecordAttrs;

/// One chunk of a topic partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetIndexValue {
    /// The segment holding the chunk.
    pub segment: u32,
    /// The chunk's last sequence.
    pub last_sequence: u64,
    /// When the chunk was appended (ms since the Unix epoch).
    pub append_ms: u64,
    /// The largest record timestamp in the chunk.
    pub max_timestamp_ms: i64,
    /// Entries in the chunk.
    pub count: u32,
    /// Bytes of the chunk's values (for `retention.bytes`).
    pub bytes: u64,
    /// Per-record attributes, when any record has some.
    pub attrs: Option<Vec<RecordAttrs>>,
}

/// The index key of the chunk of partition `log_key` ending at `last_offset`.
pub fn encode_key(log_key: &[u8], last_offset: u64) -> Bytes {
    PREFIX
        .record(OFFSET_INDEX)
        .bytes(log_key)
        .u64(last_offset)
        .build()
}

/// The prefix of every index key of partition `log_key`.
pub fn partition_prefix(log_key: &[u8]) -> Vec<u8> {
    PREFIX.record(OFFSET_INDEX).bytes(log_key).into_vec()
}

/// Decodes only the last offset: the last eight bytes of an index key.
pub fn decode_last_offset(key: &[u8]) -> Result<u64, DecodeError> {
    if key.len() < 8 {
        return Err(DecodeError::truncated("offset index key"));
    }
    Ok(u64::from_be_bytes(
        key[key.len() - 8..].try_into().expect("8 bytes"),
    ))
}

const RF_KEY: u8 = 1;
const RF_NULL_VALUE: u8 = 2;
const RF_TIME: u8 = 4;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Encodes an index value.
pub fn encode_value(v: &OffsetIndexValue) -> Bytes {
    let mut out = Vec::with_capacity(40);
    out.extend_from_slice(&v.segment.to_be_bytes());
    out.extend_from_slice(&v.last_sequence.to_be_bytes());
    out.extend_from_slice(&v.append_ms.to_be_bytes());
    out.extend_from_slice(&v.max_timestamp_ms.to_be_bytes());
    put_leb128(&mut out, u64::from(v.count));
    put_leb128(&mut out, v.bytes);
    match &v.attrs {
        None => out.push(0),
        Some(attrs) => {
            out.push(1);
            for a in attrs {
                let mut flag = 0;
                if a.key.is_some() {
                    flag |= RF_KEY;
                }
                if a.null_value {
                    flag |= RF_NULL_VALUE;
                }
                if a.timestamp_ms.is_some() {
                    flag |= RF_TIME;
                }
                out.push(flag);
                if let Some(ts) = a.timestamp_ms {
                    put_leb128(&mut out, zigzag(ts.wrapping_sub(v.append_ms as i64)));
                }
                if let Some(k) = &a.key {
                    put_leb128(&mut out, k.len() as u64);
                    out.extend_from_slice(k);
                }
                put_leb128(&mut out, a.headers.len() as u64);
                for (name, value) in &a.headers {
                    put_leb128(&mut out, name.len() as u64);
                    out.extend_from_slice(name);
                    match value {
                        None => put_leb128(&mut out, 0),
                        Some(val) => {
                            put_leb128(&mut out, val.len() as u64 + 1);
                            out.extend_from_slice(val);
                        }
                    }
                }
            }
        }
    }
    Bytes::from(out)
}

fn take(value: &Bytes, pos: &mut usize, n: usize) -> Result<Bytes, DecodeError> {
    let end = pos
        .checked_add(n)
        .filter(|e| *e <= value.len())
        .ok_or_else(|| DecodeError::truncated("offset index value"))?;
    let out = value.slice(*pos..end);
    *pos = end;
    Ok(out)
}

/// Decodes an index value (attributes share `value`'s buffer).
pub fn decode_value(value: &Bytes) -> Result<OffsetIndexValue, DecodeError> {
    let mut pos = 0;
    let fixed = take(value, &mut pos, 28)?;
    let segment = u32::from_be_bytes(fixed[0..4].try_into().expect("4 bytes"));
    let last_sequence = u64::from_be_bytes(fixed[4..12].try_into().expect("8 bytes"));
    let append_ms = u64::from_be_bytes(fixed[12..20].try_into().expect("8 bytes"));
    let max_timestamp_ms = i64::from_be_bytes(fixed[20..28].try_into().expect("8 bytes"));
    let count = u32::try_from(get_leb128(value, &mut pos)?)
        .map_err(|_| DecodeError::new("offset index value", "count too large"))?;
    let bytes = get_leb128(value, &mut pos)?;
    let flags = take(value, &mut pos, 1)?[0];
    let attrs = match flags {
        0 => None,
        1 => {
            // Each record takes at least two bytes, which bounds the allocation.
            if (count as usize) > value.len() {
                return Err(DecodeError::new("offset index value", "count too large"));
            }
            let mut attrs = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let flag = take(value, &mut pos, 1)?[0];
                if flag & !(RF_KEY | RF_NULL_VALUE | RF_TIME) != 0 {
                    return Err(DecodeError::new(
                        "offset index value",
                        "unknown record flag",
                    ));
                }
                let timestamp_ms = if flag & RF_TIME != 0 {
                    Some((append_ms as i64).wrapping_add(unzigzag(get_leb128(value, &mut pos)?)))
                } else {
                    None
                };
                let key = if flag & RF_KEY != 0 {
                    let len = get_leb128(value, &mut pos)? as usize;
                    Some(take(value, &mut pos, len)?)
                } else {
                    None
                };
                let n = get_leb128(value, &mut pos)? as usize;
                if n > value.len() {
                    return Err(DecodeError::new("offset index value", "too many headers"));
                }
                let mut headers = Vec::with_capacity(n);
                for _ in 0..n {
                    let len = get_leb128(value, &mut pos)? as usize;
                    let name = take(value, &mut pos, len)?;
                    let vlen = get_leb128(value, &mut pos)? as usize;
                    let val = if vlen == 0 {
                        None
                    } else {
                        Some(take(value, &mut pos, vlen - 1)?)
                    };
                    headers.push((name, val));
                }
                attrs.push(RecordAttrs {
                    timestamp_ms,
                    key,
                    headers,
                    null_value: flag & RF_NULL_VALUE != 0,
                });
            }
            Some(attrs)
        }
        other => {
            return Err(DecodeError::new(
                "offset index value",
                format!("unknown flags {other}"),
            ));
        }
    };
    if pos != value.len() {
        return Err(DecodeError::new("offset index value", "trailing bytes"));
    }
    Ok(OffsetIndexValue {
        segment,
        last_sequence,
        append_ms,
        max_timestamp_ms,
        count,
        bytes,
        attrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn attrs() -> impl Strategy<Value = RecordAttrs> {
        (
            proptest::option::of(any::<i64>()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..6),
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..6)),
                ),
                0..3,
            ),
            any::<bool>(),
        )
            .prop_map(|(timestamp_ms, key, headers, null_value)| RecordAttrs {
                timestamp_ms,
                key: key.map(Bytes::from),
                headers: headers
                    .into_iter()
                    .map(|(n, v)| (Bytes::from(n), v.map(Bytes::from)))
                    .collect(),
                null_value,
            })
    }

    proptest! {
        #[test]
        fn should_roundtrip_index_value(
            segment in any::<u32>(),
            last_sequence in any::<u64>(),
            append_ms in any::<u64>(),
            max_timestamp_ms in any::<i64>(),
            records in proptest::option::of(proptest::collection::vec(attrs(), 1..6)),
            count in 1u32..100,
            bytes in any::<u64>(),
        ) {
            let count = records.as_ref().map_or(count, |r| r.len() as u32);
            let v = OffsetIndexValue { segment, last_sequence, append_ms, max_timestamp_ms, count, bytes, attrs: records };
            prop_assert_eq!(decode_value(&encode_value(&v)).unwrap(), v);
        }

        #[test]
        fn should_order_by_last_offset(key in proptest::collection::vec(any::<u8>(), 1..8), a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(encode_key(&key, a).cmp(&encode_key(&key, b)), a.cmp(&b));
            prop_assert!(encode_key(&key, a).starts_with(&partition_prefix(&key)));
            prop_assert_eq!(decode_last_offset(&encode_key(&key, a)).unwrap(), a);
        }

        #[test]
        fn should_reject_garbage(data in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = decode_value(&Bytes::from(data));
        }
    }
}
