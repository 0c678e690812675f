//! Topic descriptors: a named set of partitions, each a log key with dense offsets.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────────────────┐
//!        │ 0x01 │ 0x01 │ 0x06 │ topic name (escaped)      │
//!        └──────┴──────┴──────┴───────────────────────────┘
//! value: ┌────────┬──────────┬───────────────┬───────────────┬──────────────┬─────────────────────────────┐
//!        │ 0x01   │ id       │ partitions    │ created (ms)  │ count LEB128 │ count × [len][name][len][v] │
//!        │ layout │ 16 bytes │ u32 BE        │ u64 BE        │              │ lengths LEB128, UTF-8       │
//!        └────────┴──────────┴───────────────┴───────────────┴──────────────┴─────────────────────────────┘
//! ```
//!
//! Partition `p` of topic `t` is the log key `t/p` (decimal `p`); see
//! [`crate::model::partition_key`]. The configs are the topic's Kafka-style settings
//! (`retention.ms`, `message.timestamp.type`, ...), sorted by name.

use std::collections::BTreeMap;

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, put_leb128};

use super::{PREFIX, TOPIC};
use crate::model::TopicInfo;

const LAYOUT: u8 = 1;

/// The descriptor key of topic `name`.
pub fn encode_key(name: &str) -> Bytes {
    PREFIX.record(TOPIC).bytes(name.as_bytes()).build()
}

/// The prefix every topic descriptor key starts with.
pub fn prefix() -> Bytes {
    PREFIX.record(TOPIC).build()
}

/// Decodes a descriptor key into the topic name.
pub fn decode_key(key: &[u8]) -> Result<String, DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(TOPIC)?;
    let name = parsed.read_bytes()?;
    parsed.finish()?;
    String::from_utf8(name).map_err(|_| DecodeError::new("topic key", "name is not UTF-8"))
}

/// Encodes a descriptor value.
pub fn encode_value(topic: &TopicInfo) -> Bytes {
    let mut out = Vec::with_capacity(64);
    out.push(LAYOUT);
    out.extend_from_slice(&topic.id);
    out.extend_from_slice(&topic.partitions.to_be_bytes());
    out.extend_from_slice(&topic.created_ms.to_be_bytes());
    put_leb128(&mut out, topic.configs.len() as u64);
    for (k, v) in &topic.configs {
        put_leb128(&mut out, k.len() as u64);
        out.extend_from_slice(k.as_bytes());
        put_leb128(&mut out, v.len() as u64);
        out.extend_from_slice(v.as_bytes());
    }
    Bytes::from(out)
}

fn take<'a>(value: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], DecodeError> {
    let end = pos
        .checked_add(n)
        .filter(|e| *e <= value.len())
        .ok_or_else(|| DecodeError::truncated("topic value"))?;
    let out = &value[*pos..end];
    *pos = end;
    Ok(out)
}

fn take_str(value: &[u8], pos: &mut usize) -> Result<String, DecodeError> {
    let len = get_leb128(value, pos)? as usize;
    let raw = take(value, pos, len)?;
    String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::new("topic value", "not UTF-8"))
}

/// Decodes a descriptor value of topic `name`.
pub fn decode_value(name: &str, value: &[u8]) -> Result<TopicInfo, DecodeError> {
    let mut pos = 0;
    let layout = take(value, &mut pos, 1)?[0];
    if layout != LAYOUT {
        return Err(DecodeError::new(
            "topic value",
            format!("unknown layout {layout}"),
        ));
    }
    let id: [u8; 16] = take(value, &mut pos, 16)?.try_into().expect("16 bytes");
    let partitions = u32::from_be_bytes(take(value, &mut pos, 4)?.try_into().expect("4 bytes"));
    let created_ms = u64::from_be_bytes(take(value, &mut pos, 8)?.try_into().expect("8 bytes"));
    let count = get_leb128(value, &mut pos)?;
    let mut configs = BTreeMap::new();
    for _ in 0..count {
        let k = take_str(value, &mut pos)?;
        let v = take_str(value, &mut pos)?;
        configs.insert(k, v);
    }
    if pos != value.len() {
        return Err(DecodeError::new("topic value", "trailing bytes"));
    }
    Ok(TopicInfo {
        name: name.to_string(),
        id,
        partitions,
        created_ms,
        configs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_topic(
            name in "[a-zA-Z0-9._-]{1,20}",
            id in any::<[u8; 16]>(),
            partitions in any::<u32>(),
            created_ms in any::<u64>(),
            configs in proptest::collection::btree_map("[a-z.]{1,12}", "[ -~]{0,12}", 0..5),
        ) {
            prop_assert_eq!(decode_key(&encode_key(&name)).unwrap(), name.clone());
            let t = TopicInfo { name: name.clone(), id, partitions, created_ms, configs };
            prop_assert_eq!(decode_value(&name, &encode_value(&t)).unwrap(), t);
        }

        #[test]
        fn should_reject_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_key(&data);
            let _ = decode_value("t", &data);
        }
    }
}
