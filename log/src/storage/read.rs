//! The read path shared by the writer and replicas.

use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

use bytes::Bytes;
use opendata_common::StorageReader;
use opendata_common::encoding::prefix_successor;
use slatedb::DbIterator;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::model::{KeyInfo, KeyPage, LogEntry, SegmentInfo};
use crate::serde::segment::SegmentRecord;
use crate::serde::{entry, key_index, segment, segment_bytes};

const SCAN_READ_AHEAD: usize = 256 * 1024;

/// Reading a log database: implemented by the writer ([`crate::LogDb`]) and by
/// read-only replicas ([`crate::LogDbReader`]).
pub trait LogRead: Sync {
    /// The read path.
    #[doc(hidden)]
    fn read_core(&self) -> &ReadCore;

    /// A receiver that changes whenever new entries may be visible (used to follow tails
    /// without polling storage).
    fn changes(&self) -> watch::Receiver<u64>;

    /// Entries of `key` with sequences in `range`, oldest first, read lazily.
    fn scan(
        &self,
        key: impl Into<Bytes>,
        range: impl RangeBounds<u64>,
    ) -> impl Future<Output = Result<LogIterator>> + Send {
        let key = key.into();
        let bounds = seq_bounds(&range);
        async move {
            let (start, end) = bounds?;
            self.read_core().scan(key, start, end, None).await
        }
    }

    /// Entries of `key` appended at or after `start_time_ms` with sequences in `range`.
    fn scan_from_time(
        &self,
        key: impl Into<Bytes>,
        start_time_ms: u64,
        range: impl RangeBounds<u64>,
    ) -> impl Future<Output = Result<LogIterator>> + Send {
        let key = key.into();
        let bounds = seq_bounds(&range);
        async move {
            let (start, end) = bounds?;
            self.read_core()
                .scan(key, start, end, Some(start_time_ms))
                .await
        }
    }

    /// How many entries of `key` have sequences in `range`.
    fn count(
        &self,
        key: impl Into<Bytes>,
        range: impl RangeBounds<u64>,
    ) -> impl Future<Output = Result<u64>> + Send {
        let key = key.into();
        let bounds = seq_bounds(&range);
        async move {
            let (start, end) = bounds?;
            self.read_core().count(key, start, end).await
        }
    }

    /// Keys starting with `prefix`, ascending, after `after` (exclusive), at most `limit`.
    fn list_keys(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> impl Future<Output = Result<KeyPage>> + Send {
        let prefix = prefix.to_vec();
        let after = after.map(|a| a.to_vec());
        async move {
            self.read_core()
                .list_keys(&prefix, after.as_deref(), limit)
                .await
        }
    }

    /// Every topic, by name.
    fn list_topics(
        &self,
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, crate::model::TopicInfo>>> + Send
    {
        async move { self.read_core().topics().await }
    }

    /// A topic partition's offsets: `(log start offset, next offset)`, `None` when the
    /// partition does not exist.
    fn partition_offsets(
        &self,
        topic: &str,
        partition: u32,
    ) -> impl Future<Output = Result<Option<(u64, u64)>>> + Send {
        let key = crate::model::partition_key(topic, partition);
        async move { self.read_core().partition_offsets(&key).await }
    }

    /// A topic partition's records from offset `from`: whole stored chunks until at
    /// least `max_bytes` of values (at least one chunk when there is one).
    fn read_partition(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Vec<crate::model::PartitionChunk>>> + Send {
        let key = crate::model::partition_key(topic, partition);
        async move { self.read_core().read_partition(&key, from, max_bytes).await }
    }

    /// The first offset of a topic partition whose timestamp is at least
    /// `timestamp_ms`, with its timestamp; `None` when every record is older.
    fn offset_for_time(
        &self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> impl Future<Output = Result<Option<(u64, i64)>>> + Send {
        let key = crate::model::partition_key(topic, partition);
        async move { self.read_core().offset_for_time(&key, timestamp_ms).await }
    }

    /// The committed offsets of consumer group `group`.
    fn group_offsets(
        &self,
        group: &str,
    ) -> impl Future<Output = Result<Vec<crate::model::GroupOffset>>> + Send {
        let group = group.to_string();
        async move { self.read_core().group_offsets(&group).await }
    }

    /// Every consumer group with committed offsets.
    fn list_groups(&self) -> impl Future<Output = Result<Vec<String>>> + Send {
        async move { self.read_core().groups().await }
    }

    /// Every segment, oldest first.
    fn list_segments(&self) -> impl Future<Output = Result<Vec<SegmentInfo>>> + Send {
        async move {
            let records = self.read_core().segments().await?;
            Ok(to_infos(&records))
        }
    }
}

pub(crate) fn to_infos(records: &[SegmentRecord]) -> Vec<SegmentInfo> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| SegmentInfo {
            id: r.id,
            start_sequence: r.start_seq,
            end_sequence: records.get(i + 1).map(|n| n.start_seq),
            start_time_ms: r.start_time_ms,
        })
        .collect()
}

/// Converts a sequence range to `[start, end)`, `end == None` meaning unbounded.
pub(crate) fn seq_bounds(range: &impl RangeBounds<u64>) -> Result<(u64, Option<u64>)> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => s
            .checked_add(1)
            .ok_or_else(|| Error::InvalidInput("range starts after the largest sequence".into()))?,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.checked_add(1),
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    };
    if let Some(end) = end
        && end < start
    {
        return Err(Error::InvalidInput(format!(
            "empty sequence range: end {end} is before start {start}"
        )));
    }
    Ok((start, end))
}

/// Where the segment list comes from.
pub(crate) enum SegmentSource {
    /// The writer keeps it in memory.
    Writer(std::sync::Arc<parking_lot::RwLock<Vec<SegmentRecord>>>),
    /// Replicas read it from storage on demand (it is a handful of small records).
    Storage,
}

/// The read path: storage plus the segment list.
pub struct ReadCore {
    pub(crate) storage: StorageReader,
    pub(crate) segments: SegmentSource,
}

impl ReadCore {
    pub(crate) async fn segments(&self) -> Result<Vec<SegmentRecord>> {
        match &self.segments {
            SegmentSource::Writer(list) => Ok(list.read().clone()),
            SegmentSource::Storage => load_segments(&self.storage).await,
        }
    }

    pub(crate) async fn scan(
        &self,
        key: Bytes,
        start: u64,
        end: Option<u64>,
        min_time_ms: Option<u64>,
    ) -> Result<LogIterator> {
        let segments = self.segments().await?;
        let mut selected = VecDeque::new();
        for (i, seg) in segments.iter().enumerate() {
            let seg_end = segments.get(i + 1).map(|n| n.start_seq);
            if seg_end.is_some_and(|e| e <= start) {
                continue;
            }
            if end.is_some_and(|e| seg.start_seq >= e) {
                break;
            }
            if let Some(t) = min_time_ms {
                // Every entry of a segment is older than the next segment's start.
                if segments.get(i + 1).is_some_and(|n| n.start_time_ms < t) {
                    continue;
                }
            }
            selected.push_back(seg.id);
        }
        Ok(LogIterator {
            storage: self.storage.clone(),
            key,
            start,
            end,
            min_time_ms,
            segments: selected,
            current: None,
            chunk: None,
        })
    }

    pub(crate) async fn count(&self, key: Bytes, start: u64, end: Option<u64>) -> Result<u64> {
        let mut iter = self.scan(key, start, end, None).await?;
        let mut n = 0;
        while iter.next_raw().await?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    pub(crate) async fn list_keys(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<KeyPage> {
        let limit = limit.max(1);
        let scan_prefix = key_index::prefix(prefix);
        let end = prefix_successor(&scan_prefix).map(Bytes::from);
        let mut start = scan_prefix.clone();
        if let Some(after) = after {
            let mut from = key_index::encode_key(after).to_vec();
            from.push(0);
            if from.as_slice() > start.as_ref() {
                start = Bytes::from(from);
            }
        }
        let mut iter = match end {
            Some(end) => self.storage.scan(start..end).await?,
            None => self.storage.scan(start..).await?,
        };
        let mut keys = Vec::new();
        while let Some(kv) = iter.next().await? {
            let key = Bytes::from(key_index::decode_key(&kv.key)?);
            let value = key_index::decode_value(&kv.value)?;
            if keys.len() == limit {
                let next_after = keys.last().map(|k: &KeyInfo| k.key.clone());
                return Ok(KeyPage { keys, next_after });
            }
            keys.push(KeyInfo {
                key,
                last_sequence: value.last_seq,
            });
        }
        Ok(KeyPage {
            keys,
            next_after: None,
        })
    }

    pub(crate) async fn segment_bytes(&self, id: u32) -> Result<u64> {
        match self.storage.get(&segment_bytes::encode_key(id)).await? {
            Some(v) => Ok(segment_bytes::decode_value(&v)?),
            None => Ok(0),
        }
    }
}

pub(crate) async fn load_segments(storage: &StorageReader) -> Result<Vec<SegmentRecord>> {
    let mut iter = storage.scan_prefix(&segment::all_prefix()).await?;
    let mut out = Vec::new();
    while let Some(kv) = iter.next().await? {
        out.push(segment::decode(&kv.key, &kv.value)?);
    }
    Ok(out)
}

/// A lazy iterator over one key's entries, segment by segment.
pub struct LogIterator {
    storage: StorageReader,
    key: Bytes,
    start: u64,
    end: Option<u64>,
    min_time_ms: Option<u64>,
    segments: VecDeque<u32>,
    current: Option<DbIterator>,
    chunk: Option<entry::ChunkReader>,
}

impl LogIterator {
    /// The next entry, or `None` at the end of the range.
    pub async fn next(&mut self) -> Result<Option<LogEntry>> {
        loop {
            let Some((sequence, timestamp_ms, value)) = self.next_raw().await? else {
                return Ok(None);
            };
            if let Some(min) = self.min_time_ms {
                if timestamp_ms < min {
                    continue;
                }
                // Timestamps never decrease along a key, so the rest qualify.
                self.min_time_ms = None;
            }
            return Ok(Some(LogEntry {
                key: self.key.clone(),
                sequence,
                timestamp_ms,
                value,
            }));
        }
    }

    /// The next `(sequence, timestamp, payload)` in range.
    async fn next_raw(&mut self) -> Result<Option<(u64, u64, Bytes)>> {
        loop {
            if let Some(chunk) = self.chunk.as_mut() {
                match chunk.next_entry()? {
                    Some((seq, payload)) => {
                        if seq < self.start {
                            continue;
                        }
                        if self.end.is_some_and(|e| seq >= e) {
                            self.finish();
                            return Ok(None);
                        }
                        return Ok(Some((seq, chunk.timestamp_ms(), payload)));
                    }
                    None => self.chunk = None,
                }
            }
            if !self.load().await? {
                return Ok(None);
            }
        }
    }

    /// Reads the next stored chunk of the range into memory, unless one is loaded
    /// already; `false` at the end of the range. With [`LogIterator::drain_loaded`],
    /// the batch form of [`LogIterator::next`]: one await per chunk, not per entry.
    pub async fn load(&mut self) -> Result<bool> {
        loop {
            if self.chunk.is_some() {
                return Ok(true);
            }
            if self.current.is_none() {
                let Some(segment) = self.segments.pop_front() else {
                    return Ok(false);
                };
                // Chunks are keyed by their last sequence: the first chunk whose last
                // sequence is >= start holds start (or comes after it).
                let prefix = entry::key_prefix(segment, &self.key);
                let mut from = prefix.clone();
                from.extend_from_slice(&self.start.to_be_bytes());
                let to = prefix_successor(&prefix).expect("entry prefix ends with a terminator");
                let iter = self
                    .storage
                    .scan_with_read_ahead(Bytes::from(from)..Bytes::from(to), SCAN_READ_AHEAD)
                    .await?;
                self.current = Some(iter);
            }
            let iter = self.current.as_mut().expect("set above");
            match iter.next().await? {
                Some(kv) => {
                    let last = entry::decode_last_sequence(&kv.key)?;
                    self.chunk = Some(entry::ChunkReader::new(last, kv.value)?);
                }
                None => self.current = None,
            }
        }
    }

    /// Hands the loaded chunk's entries in range to `f(sequence, timestamp_ms,
    /// payload)`, borrowed and without reading storage, until `f` returns `false` (after
    /// taking that entry) or the chunk is used up; then [`LogIterator::load`] reads the
    /// next. Entries are the ones [`LogIterator::next`] would return, in the same order.
    pub fn drain_loaded(&mut self, mut f: impl FnMut(u64, u64, &[u8]) -> bool) -> Result<()> {
        let Some(chunk) = self.chunk.as_mut() else {
            return Ok(());
        };
        let timestamp_ms = chunk.timestamp_ms();
        if let Some(min) = self.min_time_ms {
            // Every entry of a chunk has the chunk's timestamp.
            if timestamp_ms < min {
                self.chunk = None;
                return Ok(());
            }
            self.min_time_ms = None;
        }
        loop {
            match chunk.next_entry_ref()? {
                Some((seq, payload)) => {
                    if seq < self.start {
                        continue;
                    }
                    if self.end.is_some_and(|e| seq >= e) {
                        break;
                    }
                    if !f(seq, timestamp_ms, payload) {
                        return Ok(());
                    }
                }
                None => {
                    self.chunk = None;
                    return Ok(());
                }
            }
        }
        // Past the end of the range.
        self.finish();
        Ok(())
    }

    fn finish(&mut self) {
        self.segments.clear();
        self.current = None;
        self.chunk = None;
    }

    /// Collects up to `limit` entries.
    pub async fn collect(mut self, limit: usize) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.next().await? {
                Some(e) => out.push(e),
                None => break,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_convert_sequence_ranges() {
        assert_eq!(seq_bounds(&(..)).unwrap(), (0, None));
        assert_eq!(seq_bounds(&(5..)).unwrap(), (5, None));
        assert_eq!(seq_bounds(&(5..9)).unwrap(), (5, Some(9)));
        assert_eq!(seq_bounds(&(5..=9)).unwrap(), (5, Some(10)));
        assert_eq!(seq_bounds(&(..=u64::MAX)).unwrap(), (0, None));
        let (hi, lo) = (9u64, 5u64);
        assert!(seq_bounds(&(hi..lo)).is_err());
    }
}
