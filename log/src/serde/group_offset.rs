//! A consumer group's committed offset for one topic partition.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬──────────────────┬──────────────────┬──────────────┐
//!        │ 0x01 │ 0x01 │ 0x0B │ group (escaped)  │ topic (escaped)  │ partition    │
//!        │      │      │      │                  │                  │ u32 BE       │
//!        └──────┴──────┴──────┴──────────────────┴──────────────────┴──────────────┘
//! value: ┌──────────────┬──────────────────┬───────────────┬────────────┬──────────────┐
//!        │ offset i64   │ leader epoch i32 │ commit (ms)   │ len LEB128 │ metadata     │
//!        │ BE           │ BE (-1: none)    │ u64 BE        │            │ UTF-8        │
//!        └──────────────┴──────────────────┴───────────────┴────────────┴──────────────┘
//! ```
//!
//! The offset is the next one the group will read (Kafka's convention).

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, put_leb128};

use super::{GROUP_OFFSET, PREFIX};
use crate::model::GroupOffset;

/// The key of `group`'s committed offset in `topic` partition `partition`.
pub fn encode_key(group: &str, topic: &str, partition: u32) -> Bytes {
    PREFIX
        .record(GROUP_OFFSET)
        .bytes(group.as_bytes())
        .bytes(topic.as_bytes())
        .u32(partition)
        .build()
}

/// The prefix of every committed offset of `group` (all groups when `None`).
pub fn prefix(group: Option<&str>) -> Bytes {
    let b = PREFIX.record(GROUP_OFFSET);
    match group {
        Some(g) => b.bytes(g.as_bytes()).build(),
        None => b.build(),
    }
}

/// Decodes a key into `(group, topic, partition)`.
pub fn decode_key(key: &[u8]) -> Result<(String, String, u32), DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(GROUP_OFFSET)?;
    let group = parsed.read_bytes()?;
    let topic = parsed.read_bytes()?;
    let partition = parsed.read_u32()?;
    parsed.finish()?;
    let utf8 = |b: Vec<u8>| {
        String::from_utf8(b).map_err(|_| DecodeError::new("group offset key", "not UTF-8"))
    };
    Ok((utf8(group)?, utf8(topic)?, partition))
}

/// Encodes a committed offset.
pub fn encode_value(offset: &GroupOffset) -> Bytes {
    let mut out = Vec::with_capacity(24 + offset.metadata.len());
    out.extend_from_slice(&offset.offset.to_be_bytes());
    out.extend_from_slice(&offset.leader_epoch.to_be_bytes());
    out.extend_from_slice(&offset.commit_ms.to_be_bytes());
    put_leb128(&mut out, offset.metadata.len() as u64);
    out.extend_from_slice(offset.metadata.as_bytes());
    Bytes::from(out)
}

/// Decodes a committed offset of `topic` partition `partition`.
pub fn decode_value(
    topic: String,
    partition: u32,
    value: &[u8],
) -> Result<GroupOffset, DecodeError> {
    if value.len() < 20 {
        return Err(DecodeError::truncated("group offset"));
    }
    let offset = i64::from_be_bytes(value[0..8].try_into().expect("8 bytes"));
    let leader_epoch = i32::from_be_bytes(value[8..12].try_into().expect("4 bytes"));
    let commit_ms = u64::from_be_bytes(value[12..20].try_into().expect("8 bytes"));
    let mut pos = 20;
    let len = get_leb128(value, &mut pos)? as usize;
    if value.len() != pos.saturating_add(len) {
        return Err(DecodeError::new("group offset", "wrong length"));
    }
    let metadata = String::from_utf8(value[pos..].to_vec())
        .map_err(|_| DecodeError::new("group offset", "metadata is not UTF-8"))?;
    Ok(GroupOffset {
        topic,
        partition,
        offset,
        leader_epoch,
        metadata,
        commit_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_group_offset(
            group in "[ -~]{0,12}",
            topic in "[a-z._-]{1,12}",
            partition in any::<u32>(),
            offset in any::<i64>(),
            leader_epoch in any::<i32>(),
            commit_ms in any::<u64>(),
            metadata in "[ -~]{0,20}",
        ) {
            let key = encode_key(&group, &topic, partition);
            prop_assert!(key.starts_with(&prefix(Some(&group))));
            prop_assert_eq!(decode_key(&key).unwrap(), (group.clone(), topic.clone(), partition));
            let o = GroupOffset { topic: topic.clone(), partition, offset, leader_epoch, metadata, commit_ms };
            prop_assert_eq!(decode_value(topic, partition, &encode_value(&o)).unwrap(), o);
        }

        #[test]
        fn should_reject_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_key(&data);
            let _ = decode_value(String::new(), 0, &data);
        }
    }
}
