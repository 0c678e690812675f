//! Segments: contiguous key ranges that are scanned, compacted and dropped whole.
//!
//! A segmented key puts the segment id right after the key prefix (see
//! [`crate::keys`]), so every record of segment `s` lies in
//! `[prefix 0x80 s, prefix 0x80 s+1)`, whatever its record type.

use bytes::Bytes;

use crate::encoding::prefix_successor;
use crate::error::Result;
use crate::keys::{KeyPrefix, ParsedKey, SEGMENT_MARKER};
use crate::storage::{Durability, Storage, StorageReader, WriteOps};

/// The half-open key range `[start, end)` holding every record of `segment`.
pub fn segment_range(prefix: KeyPrefix, segment: u32) -> (Bytes, Bytes) {
    let start = Bytes::copy_from_slice(&prefix.segment_prefix(segment));
    let end = match segment.checked_add(1) {
        Some(next) => Bytes::copy_from_slice(&prefix.segment_prefix(next)),
        None => Bytes::from(all_segments_end(prefix)),
    };
    (start, end)
}

fn all_segments_start(prefix: KeyPrefix) -> Vec<u8> {
    let [a, b] = prefix.bytes();
    vec![a, b, SEGMENT_MARKER]
}

fn all_segments_end(prefix: KeyPrefix) -> Vec<u8> {
    prefix_successor(&all_segments_start(prefix)).expect("marker byte is below 0xFF")
}

/// Every segment id that holds at least one record, ascending.
///
/// Costs one seek per segment, not a scan of the data: after finding a key of segment
/// `s`, the iterator jumps to the start of `s + 1`.
pub async fn list_segments(reader: &StorageReader, prefix: KeyPrefix) -> Result<Vec<u32>> {
    let start = Bytes::from(all_segments_start(prefix));
    let end = Bytes::from(all_segments_end(prefix));
    let mut iter = reader.scan(start..end).await?;
    let mut segments = Vec::new();
    while let Some(kv) = iter.next().await? {
        let parsed = ParsedKey::parse(&kv.key)?;
        let Some(segment) = parsed.segment else {
            break;
        };
        segments.push(segment);
        match segment.checked_add(1) {
            Some(next) => iter.seek(prefix.segment_prefix(next)).await?,
            None => break,
        }
    }
    Ok(segments)
}

/// Deletes every record of `segment` and returns how many were deleted. Deletes are
/// written in batches through the group-commit path with the given durability.
pub async fn drop_segment(
    storage: &Storage,
    prefix: KeyPrefix,
    segment: u32,
    durability: Durability,
) -> Result<u64> {
    let (start, end) = segment_range(prefix, segment);
    delete_range(storage, start, end, durability).await
}

/// Deletes every record with a key in `[start, end)` and returns how many were deleted.
/// Deletes are written in batches of 10,000 through the group-commit path with the given
/// durability.
pub async fn delete_range(
    storage: &Storage,
    start: Bytes,
    end: Bytes,
    durability: Durability,
) -> Result<u64> {
    const BATCH: usize = 10_000;
    let mut deleted = 0u64;
    let mut cursor = start;
    loop {
        let mut iter = storage.reader().scan(cursor.clone()..end.clone()).await?;
        let mut ops = WriteOps::with_capacity(BATCH);
        let mut last = None;
        while ops.len() < BATCH {
            match iter.next().await? {
                Some(kv) => {
                    ops.delete(kv.key.clone());
                    last = Some(kv.key);
                }
                None => break,
            }
        }
        let n = ops.len();
        if n == 0 {
            break;
        }
        storage.write(ops, durability).await?;
        deleted += n as u64;
        if n < BATCH {
            break;
        }
        let mut next = last.expect("a key was deleted").to_vec();
        next.push(0);
        cursor = Bytes::from(next);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{RecordType, Subsystem};
    use proptest::prelude::*;

    const P: KeyPrefix = KeyPrefix::new(Subsystem::Timeseries, 1);

    proptest! {
        #[test]
        fn should_contain_exactly_the_segments_keys(seg in any::<u32>(), other in any::<u32>(), rt in 0u8..0x80, tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let key = P.segmented(other, RecordType::new(rt)).raw(&tail).build();
            let (start, end) = segment_range(P, seg);
            prop_assert_eq!(key >= start && key < end, seg == other);
            let global = P.record(RecordType::new(rt)).raw(&tail).build();
            prop_assert!(!(global >= start && global < end));
        }
    }
}
