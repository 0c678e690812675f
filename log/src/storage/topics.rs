//! Topics: named sets of partitions whose log keys carry dense offsets, with the
//! idempotent-producer state and consumer-group offsets Kafka clients need.
//!
//! A partition is an ordinary log key (`topic/partition`, see
//! [`crate::model::partition_key`]): its entries are stored, scanned, followed and
//! expired like any other key's. What a topic adds is kept beside the entries:
//!
//! - the offset index (`serde::offset_index`): one record per chunk, naming the chunk
//!   and its offsets, plus the Kafka key, headers and timestamp of its records;
//! - the partition's next offset (`serde::partition`), written with every append;
//! - per-producer state (`serde::producer`), written with each idempotent batch.
//!
//! Every append to a partition key, through [`LogDb::produce`] or the plain
//! [`LogDb::append`], gets offsets on the commit path, which runs appends one at a
//! time, so offsets are dense and follow sequence order.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use opendata_common::StorageReader;
use opendata_common::storage::{Durability, WriteOps};

use super::now_ms;
use super::read::ReadCore;
use super::writer::{FastMap, LogDb, prepare};
use crate::error::{Error, Result};
use crate::model::{
    GroupOffset, PartitionChunk, PartitionRecord, ProduceResult, ProducerBatch, Record,
    RecordAttrs, TopicInfo, partition_key,
};
use crate::serde::entry::{self, ChunkReader};
use crate::serde::producer::{BatchMeta, MAX_BATCHES, ProducerState};
use crate::serde::{
    group_offset, key_index, offset_index, partition, producer, producer_id, topic,
};

/// Longest topic name (Kafka's limit).
pub const MAX_TOPIC_NAME: usize = 249;
/// Most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;

/// The commit path's view of the topic partitions.
#[derive(Default)]
pub(crate) struct TopicState {
    pub(crate) partitions: FastMap<Bytes, PartitionState>,
    next_producer_id: u64,
}

/// One partition on the commit path.
pub(crate) struct PartitionState {
    pub(crate) next_offset: u64,
    producers: FastMap<u64, ProducerState>,
}

/// Loads every topic, its partitions' next offsets and producer states.
pub(crate) async fn load(
    storage: &StorageReader,
) -> Result<(TopicState, BTreeMap<String, TopicInfo>)> {
    let topics = scan_topics(storage).await?;
    let mut state = TopicState::default();
    for t in topics.values() {
        for p in 0..t.partitions {
            let key = partition_key(&t.name, p);
            let next = match storage.get(&partition::encode_key(&key)).await? {
                Some(v) => partition::decode_value(&v)?,
                None => 0,
            };
            state.partitions.insert(
                key,
                PartitionState {
                    next_offset: next,
                    producers: FastMap::default(),
                },
            );
        }
    }
    let mut iter = storage.scan_prefix(&producer::prefix()).await?;
    while let Some(kv) = iter.next().await? {
        let (key, id) = producer::decode_key(&kv.key)?;
        if let Some(p) = state.partitions.get_mut(key.as_slice()) {
            p.producers.insert(id, producer::decode_value(&kv.value)?);
        }
    }
    state.next_producer_id = match storage.get(&producer_id::key()).await? {
        Some(v) => producer_id::decode_value(&v)?,
        None => 0,
    };
    Ok((state, topics))
}

async fn scan_topics(storage: &StorageReader) -> Result<BTreeMap<String, TopicInfo>> {
    let mut out = BTreeMap::new();
    let mut iter = storage.scan_prefix(&topic::prefix()).await?;
    while let Some(kv) = iter.next().await? {
        let name = topic::decode_key(&kv.key)?;
        let info = topic::decode_value(&name, &kv.value)?;
        out.insert(name, info);
    }
    Ok(out)
}

/// Checks a topic name as Kafka does: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_TOPIC_NAME {
        return Err(Error::InvalidInput(format!(
            "topic name must be 1 to {MAX_TOPIC_NAME} characters"
        )));
    }
    if name == "." || name == ".." {
        return Err(Error::InvalidInput(format!(
            "topic name cannot be {name:?}"
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(Error::InvalidInput(format!(
            "topic name {name:?} has {c:?}: only ASCII letters, digits, '.', '_' and '-' are allowed"
        )));
    }
    Ok(())
}

fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    for half in id.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(now_ms());
        half.copy_from_slice(&h.finish().to_be_bytes());
    }
    id
}

impl LogDb {
    /// Creates a topic of `partitions` partitions. Fails with
    /// [`Error::AlreadyExists`] if it exists, and with [`Error::InvalidInput`] if a
    /// partition's log key already holds entries appended before the topic existed.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicInfo> {
        validate_topic_name(name)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::InvalidInput(format!(
                "a topic has 1 to {MAX_PARTITIONS} partitions, not {partitions}"
            )));
        }
        if self.inner.topics.read().contains_key(name) {
            return Err(Error::AlreadyExists(format!("topic {name:?} exists")));
        }
        self.check_keys_unused(name, 0, partitions).await?;
        let info = TopicInfo {
            name: name.to_string(),
            id: random_id(),
            partitions,
            created_ms: now_ms(),
            configs,
        };
        let inner = self.inner.clone();
        let created = info.clone();
        self.inner
            .storage
            .committer()
            .submit(Durability::Remote, move |ops: &mut WriteOps| {
                let mut topics = inner.topics.write();
                if topics.contains_key(&created.name) {
                    return Err(Error::AlreadyExists(format!(
                        "topic {:?} exists",
                        created.name
                    )));
                }
                let mut state = inner.state.lock();
                add_partitions(&mut state.topics, &created.name, 0, created.partitions, ops);
                ops.put(
                    topic::encode_key(&created.name),
                    topic::encode_value(&created),
                );
                topics.insert(created.name.clone(), created.clone());
                Ok(())
            })
            .await?;
        Ok(info)
    }

    /// Every topic as the commit path last changed it (no storage read).
    pub fn topic_snapshot(&self) -> BTreeMap<String, TopicInfo> {
        self.inner.topics.read().clone()
    }

    /// Grows topic `name` to `partitions` partitions (Kafka cannot shrink a topic).
    pub async fn create_partitions(&self, name: &str, partitions: u32) -> Result<TopicInfo> {
        let current = self
            .inner
            .topics
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("topic {name:?}")))?;
        if partitions <= current.partitions || partitions > MAX_PARTITIONS {
            return Err(Error::InvalidInput(format!(
                "topic {name:?} has {} partitions; the new count must be larger and at most {MAX_PARTITIONS}, not {partitions}",
                current.partitions
            )));
        }
        self.check_keys_unused(name, current.partitions, partitions)
            .await?;
        let inner = self.inner.clone();
        let name = name.to_string();
        self.inner
            .storage
            .committer()
            .submit(Durability::Remote, move |ops: &mut WriteOps| {
                let mut topics = inner.topics.write();
                let t = topics
                    .get_mut(&name)
                    .ok_or_else(|| Error::NotFound(format!("topic {name:?}")))?;
                if partitions <= t.partitions {
                    return Err(Error::InvalidInput(format!(
                        "topic {name:?} already has {} partitions",
                        t.partitions
                    )));
                }
                let mut state = inner.state.lock();
                add_partitions(&mut state.topics, &name, t.partitions, partitions, ops);
                t.partitions = partitions;
                ops.put(topic::encode_key(&name), topic::encode_value(t));
                Ok(t.clone())
            })
            .await
    }

    /// Replaces topic `name`'s configs.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicInfo> {
        let inner = self.inner.clone();
        let name = name.to_string();
        self.inner
            .storage
            .committer()
            .submit(Durability::Remote, move |ops: &mut WriteOps| {
                let mut topics = inner.topics.write();
                let t = topics
                    .get_mut(&name)
                    .ok_or_else(|| Error::NotFound(format!("topic {name:?}")))?;
                t.configs = configs;
                ops.put(topic::encode_key(&name), topic::encode_value(t));
                Ok(t.clone())
            })
            .await
    }

    async fn check_keys_unused(&self, name: &str, from: u32, to: u32) -> Result<()> {
        for p in from..to {
            let key = partition_key(name, p);
            if self
                .inner
                .core
                .storage
                .get(&key_index::encode_key(&key))
                .await?
                .is_some()
            {
                return Err(Error::InvalidInput(format!(
                    "log key {:?} already holds entries appended outside a topic; \
                     pick another topic name",
                    String::from_utf8_lossy(&key)
                )));
            }
        }
        Ok(())
    }

    /// Deletes topic `name` with all its data, offsets and producer state. Committed
    /// group offsets for it are deleted too.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let inner = self.inner.clone();
        let owned = name.to_string();
        let removed = self
            .inner
            .storage
            .committer()
            .submit(Durability::Remote, move |ops: &mut WriteOps| {
                let mut topics = inner.topics.write();
                let t = topics
                    .remove(&owned)
                    .ok_or_else(|| Error::NotFound(format!("topic {owned:?}")))?;
                let mut state = inner.state.lock();
                for p in 0..t.partitions {
                    let key = partition_key(&owned, p);
                    state.topics.partitions.remove(&key);
                    ops.delete(partition::encode_key(&key));
                }
                ops.delete(topic::encode_key(&owned));
                Ok::<TopicInfo, Error>(t)
            })
            .await?;
        // The topic is gone from the commit path, so nothing more is indexed for its
        // keys; now delete what it left.
        let storage = &self.inner.core.storage;
        let segments = self.inner.segments.read().clone();
        for p in 0..removed.partitions {
            let key = partition_key(name, p);
            let mut ops = WriteOps::new();
            for prefix in [
                offset_index::partition_prefix(&key),
                producer::partition_prefix(&key),
            ] {
                let mut iter = storage.scan_prefix(&prefix).await?;
                while let Some(kv) = iter.next().await? {
                    ops.delete(kv.key);
                }
            }
            for seg in &segments {
                let mut iter = storage
                    .scan_prefix(&entry::key_prefix(seg.id, &key))
                    .await?;
                while let Some(kv) = iter.next().await? {
                    ops.delete(kv.key);
                }
            }
            ops.delete(key_index::encode_key(&key));
            self.inner.storage.write(ops, Durability::Remote).await?;
        }
        let mut ops = WriteOps::new();
        let mut iter = storage.scan_prefix(&group_offset::prefix(None)).await?;
        while let Some(kv) = iter.next().await? {
            let (_, t, _) = group_offset::decode_key(&kv.key)?;
            if t == name {
                ops.delete(kv.key);
            }
        }
        if !ops.is_empty() {
            self.inner.storage.write(ops, Durability::Remote).await?;
        }
        Ok(())
    }

    /// Appends `records` to partition `partition` of `topic`, and returns the first
    /// record's offset. With `producer`, the batch is idempotent: a retry of one of
    /// the producer's last five batches writes nothing and returns the original
    /// offsets; a batch that does not follow the last one fails with
    /// [`Error::OutOfOrderSequence`], and an older epoch with
    /// [`Error::ProducerFenced`].
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<PartitionRecord>,
        producer: Option<ProducerBatch>,
        durability: Durability,
    ) -> Result<ProduceResult> {
        let pending = self.produce_enqueue(topic, partition, records, producer, durability)?;
        pending.await
    }

    /// [`LogDb::produce`], queued on the commit path before this returns: produces
    /// enqueued in order are written in that order, whenever their futures are awaited.
    pub fn produce_enqueue(
        &self,
        topic: &str,
        partition: u32,
        records: Vec<PartitionRecord>,
        producer: Option<ProducerBatch>,
        durability: Durability,
    ) -> Result<impl Future<Output = Result<ProduceResult>> + Send + 'static> {
        let cfg = &self.inner.config;
        if records.is_empty() {
            return Err(Error::InvalidInput(
                "a produce needs at least one record".into(),
            ));
        }
        if records.len() > cfg.max_records_per_append {
            return Err(Error::InvalidInput(format!(
                "{} records in one batch; the maximum is {}",
                records.len(),
                cfg.max_records_per_append
            )));
        }
        for (i, r) in records.iter().enumerate() {
            let size = r.value.len() + r.attrs.size();
            if size > cfg.max_value_bytes {
                return Err(Error::InvalidInput(format!(
                    "record {i}: {size} bytes with its key and headers; the maximum is {}",
                    cfg.max_value_bytes
                )));
            }
        }
        let key = partition_key(topic, partition);
        let count = records.len();
        let (values, attrs): (Vec<Record>, Vec<RecordAttrs>) = records
            .into_iter()
            .map(|r| {
                (
                    Record {
                        key: key.clone(),
                        value: r.value,
                    },
                    r.attrs,
                )
            })
            .unzip();
        let inner = self.inner.clone();
        let label = format!("{topic}/{partition}");
        let pending =
            self.inner
                .storage
                .committer()
                .enqueue(durability, move |ops: &mut WriteOps| {
                    let mut state = inner.state.lock();
                    let Some(part) = state.topics.partitions.get_mut(&key) else {
                        return Err(Error::NotFound(format!("topic partition {label}")));
                    };
                    let now = now_ms();
                    if let Some(pb) = producer
                        && let Some(dup) = check_producer(part, &pb, count)?
                    {
                        return Ok((
                            ProduceResult {
                                base_offset: dup,
                                append_ms: now,
                                duplicate: true,
                            },
                            None,
                        ));
                    }
                    let segments = inner.segments.clone();
                    let (result, base) = prepare(
                        &mut state,
                        &inner.config,
                        &segments,
                        &values,
                        Some(&attrs),
                        None,
                        None,
                        ops,
                    )?;
                    let base_offset = base.expect("a partition key is tracked");
                    if let Some(pb) = producer {
                        let part = state
                            .topics
                            .partitions
                            .get_mut(&key)
                            .expect("checked above");
                        let st = part
                            .producers
                            .entry(pb.producer_id)
                            .or_insert(ProducerState {
                                epoch: pb.epoch,
                                updated_ms: now,
                                batches: Vec::new(),
                            });
                        if st.epoch != pb.epoch {
                            st.epoch = pb.epoch;
                            st.batches.clear();
                        }
                        st.updated_ms = now;
                        st.batches.push(BatchMeta {
                            base_sequence: pb.base_sequence,
                            last_sequence: last_sequence(pb.base_sequence, count),
                            base_offset,
                        });
                        if st.batches.len() > MAX_BATCHES {
                            st.batches.remove(0);
                        }
                        ops.put(
                            producer::encode_key(&key, pb.producer_id),
                            producer::encode_value(st),
                        );
                    }
                    Ok((
                        ProduceResult {
                            base_offset,
                            append_ms: result.timestamp_ms,
                            duplicate: false,
                        },
                        result.sequences.last().copied(),
                    ))
                })?;
        let inner = self.inner.clone();
        Ok(async move {
            let (result, last) = pending.await?;
            if let Some(last) = last {
                inner.mark_visible(last);
            }
            Ok(result)
        })
    }

    /// A new idempotent producer id, durable before it is returned.
    pub async fn init_producer_id(&self) -> Result<u64> {
        let inner = self.inner.clone();
        self.inner
            .storage
            .committer()
            .submit(Durability::Remote, move |ops: &mut WriteOps| {
                let mut state = inner.state.lock();
                let id = state.topics.next_producer_id;
                state.topics.next_producer_id += 1;
                ops.put(
                    producer_id::key(),
                    producer_id::encode_value(state.topics.next_producer_id),
                );
                Ok::<u64, Error>(id)
            })
            .await
    }

    /// Commits `group`'s offsets.
    pub async fn commit_group_offsets(
        &self,
        group: &str,
        offsets: &[GroupOffset],
        durability: Durability,
    ) -> Result<()> {
        let mut ops = WriteOps::with_capacity(offsets.len());
        for o in offsets {
            ops.put(
                group_offset::encode_key(group, &o.topic, o.partition),
                group_offset::encode_value(o),
            );
        }
        Ok(self.inner.storage.write(ops, durability).await?)
    }

    /// Deletes every committed offset of `group`; returns how many there were.
    pub async fn delete_group_offsets(&self, group: &str) -> Result<usize> {
        let mut ops = WriteOps::new();
        let mut iter = self
            .inner
            .core
            .storage
            .scan_prefix(&group_offset::prefix(Some(group)))
            .await?;
        while let Some(kv) = iter.next().await? {
            ops.delete(kv.key);
        }
        let n = ops.len();
        if n > 0 {
            self.inner.storage.write(ops, Durability::Remote).await?;
        }
        Ok(n)
    }
}

fn add_partitions(state: &mut TopicState, name: &str, from: u32, to: u32, ops: &mut WriteOps) {
    for p in from..to {
        let key = partition_key(name, p);
        ops.put(partition::encode_key(&key), partition::encode_value(0));
        state.partitions.insert(
            key,
            PartitionState {
                next_offset: 0,
                producers: FastMap::default(),
            },
        );
    }
}

/// The sequence number of the last of `count` records starting at `base` (they wrap
/// at `i32::MAX`, as in Kafka).
fn last_sequence(base: i32, count: usize) -> i32 {
    ((i64::from(base) + count as i64 - 1) % (i64::from(i32::MAX) + 1)) as i32
}

/// Checks an idempotent batch against the producer's state: `Some(offset)` for a
/// duplicate of a remembered batch, `None` for a new batch that may be written.
fn check_producer(part: &PartitionState, pb: &ProducerBatch, count: usize) -> Result<Option<u64>> {
    let Some(st) = part.producers.get(&pb.producer_id) else {
        return Ok(None);
    };
    if pb.epoch < st.epoch {
        return Err(Error::ProducerFenced {
            producer_id: pb.producer_id,
            epoch: pb.epoch,
            current: st.epoch,
        });
    }
    if pb.epoch > st.epoch {
        return if pb.base_sequence == 0 {
            Ok(None)
        } else {
            Err(Error::OutOfOrderSequence {
                producer_id: pb.producer_id,
                got: pb.base_sequence,
                last: -1,
            })
        };
    }
    let last = last_sequence(pb.base_sequence, count);
    if let Some(b) = st
        .batches
        .iter()
        .find(|b| b.base_sequence == pb.base_sequence && b.last_sequence == last)
    {
        return Ok(Some(b.base_offset));
    }
    let prev = st.batches.last().map_or(-1, |b| b.last_sequence);
    let expected = if prev == i32::MAX { 0 } else { prev + 1 };
    if pb.base_sequence != expected {
        return Err(Error::OutOfOrderSequence {
            producer_id: pb.producer_id,
            got: pb.base_sequence,
            last: prev,
        });
    }
    Ok(None)
}

impl ReadCore {
    /// Every topic.
    pub(crate) async fn topics(&self) -> Result<BTreeMap<String, TopicInfo>> {
        scan_topics(&self.storage).await
    }

    /// The offsets of a partition: `(log start, next)`; `None` if it does not exist.
    pub(crate) async fn partition_offsets(&self, key: &[u8]) -> Result<Option<(u64, u64)>> {
        let Some(v) = self.storage.get(&partition::encode_key(key)).await? else {
            return Ok(None);
        };
        let next = partition::decode_value(&v)?;
        let mut iter = self
            .storage
            .scan_prefix(&offset_index::partition_prefix(key))
            .await?;
        let start = match iter.next().await? {
            Some(kv) => {
                let last = offset_index::decode_last_offset(&kv.key)?;
                let v = offset_index::decode_value(&kv.value)?;
                last + 1 - u64::from(v.count)
            }
            None => next,
        };
        Ok(Some((start, next)))
    }

    /// Records of partition `key` from offset `from`, whole chunks until at least
    /// `max_bytes` of values (always at least one chunk when there is one).
    pub(crate) async fn read_partition(
        &self,
        key: &[u8],
        from: u64,
        max_bytes: usize,
    ) -> Result<Vec<PartitionChunk>> {
        // 1. The index records from `from` until they hold `max_bytes` of values.
        let prefix = offset_index::partition_prefix(key);
        let start = offset_index::encode_key(key, from);
        let end = Bytes::from(
            opendata_common::encoding::prefix_successor(&prefix).expect("prefix is not all 0xFF"),
        );
        let mut iter = self.storage.scan(start..end).await?;
        let mut wanted: Vec<(u64, offset_index::OffsetIndexValue)> = Vec::new();
        let mut planned = 0u64;
        while let Some(kv) = iter.next().await? {
            let last_offset = offset_index::decode_last_offset(&kv.key)?;
            let idx = offset_index::decode_value(&kv.value)?;
            planned += idx.bytes;
            wanted.push((last_offset + 1 - u64::from(idx.count), idx));
            if planned >= max_bytes as u64 {
                break;
            }
        }
        // 2. Their chunks, one range scan per segment (a key's chunks in a segment are
        // adjacent and in index order), instead of a point read per chunk.
        let mut out = Vec::with_capacity(wanted.len());
        let mut i = 0;
        while i < wanted.len() {
            let seg = wanted[i].1.segment;
            let mut j = i;
            while j + 1 < wanted.len() && wanted[j + 1].1.segment == seg {
                j += 1;
            }
            let lo = entry::encode_key(seg, key, wanted[i].1.last_sequence);
            let hi = entry::encode_key(seg, key, wanted[j].1.last_sequence);
            let read_ahead = wanted[i..=j]
                .iter()
                .map(|(_, w)| w.bytes as usize)
                .sum::<usize>()
                .clamp(64 * 1024, 8 * 1024 * 1024);
            let mut chunks = self
                .storage
                .scan_with_read_ahead(lo..=hi, read_ahead)
                .await?;
            let mut next = chunks.next().await?;
            for (first_offset, idx) in wanted[i..=j].iter().cloned() {
                // Skip chunks with no index record of ours (none in a topic partition,
                // but a race with retention may leave gaps either way).
                while let Some(kv) = &next
                    && entry::decode_last_sequence(&kv.key)? < idx.last_sequence
                {
                    next = chunks.next().await?;
                }
                let value = match &next {
                    Some(kv) if entry::decode_last_sequence(&kv.key)? == idx.last_sequence => {
                        kv.value.clone()
                    }
                    // Dropped by retention: its index record is trimmed after.
                    _ => continue,
                };
                let mut reader = ChunkReader::new(idx.last_sequence, value)?;
                let skip = from.saturating_sub(first_offset) as usize;
                let mut values = Vec::with_capacity((idx.count as usize).saturating_sub(skip));
                let mut n = 0usize;
                while let Some((_, v)) = reader.next_entry()? {
                    if n >= skip {
                        values.push(v);
                    }
                    n += 1;
                }
                if values.is_empty() {
                    continue;
                }
                let attrs = idx.attrs.map(|mut a| {
                    a.drain(..skip.min(a.len()));
                    a
                });
                out.push(PartitionChunk {
                    base_offset: first_offset + skip as u64,
                    append_ms: idx.append_ms,
                    values,
                    attrs,
                });
            }
            i = j + 1;
        }
        Ok(out)
    }

    /// The first offset of partition `key` whose timestamp is at least
    /// `timestamp_ms`, with that timestamp.
    pub(crate) async fn offset_for_time(
        &self,
        key: &[u8],
        timestamp_ms: i64,
    ) -> Result<Option<(u64, i64)>> {
        let mut iter = self
            .storage
            .scan_prefix(&offset_index::partition_prefix(key))
            .await?;
        while let Some(kv) = iter.next().await? {
            let idx = offset_index::decode_value(&kv.value)?;
            if idx.max_timestamp_ms < timestamp_ms {
                continue;
            }
            let last = offset_index::decode_last_offset(&kv.key)?;
            let first = last + 1 - u64::from(idx.count);
            for i in 0..idx.count as usize {
                let ts = idx
                    .attrs
                    .as_ref()
                    .and_then(|a| a.get(i))
                    .and_then(|a| a.timestamp_ms)
                    .unwrap_or(idx.append_ms as i64);
                if ts >= timestamp_ms {
                    return Ok(Some((first + i as u64, ts)));
                }
            }
        }
        Ok(None)
    }

    /// The committed offsets of `group`.
    pub(crate) async fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>> {
        let mut out = Vec::new();
        let mut iter = self
            .storage
            .scan_prefix(&group_offset::prefix(Some(group)))
            .await?;
        while let Some(kv) = iter.next().await? {
            let (_, t, p) = group_offset::decode_key(&kv.key)?;
            out.push(group_offset::decode_value(t, p, &kv.value)?);
        }
        Ok(out)
    }

    /// Every group with committed offsets.
    pub(crate) async fn groups(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut iter = self
            .storage
            .scan_prefix(&group_offset::prefix(None))
            .await?;
        while let Some(kv) = iter.next().await? {
            let (g, _, _) = group_offset::decode_key(&kv.key)?;
            if out.last() != Some(&g) {
                out.push(g);
            }
        }
        Ok(out)
    }
}

/// After retention dropped segment `id`: deletes the offset index records of every
/// partition that point into it (or an older segment).
pub(crate) async fn trim_offset_index(inner: &Arc<super::writer::Inner>, id: u32) -> Result<()> {
    let keys: Vec<Bytes> = inner
        .state
        .lock()
        .topics
        .partitions
        .keys()
        .cloned()
        .collect();
    for key in keys {
        let mut ops = WriteOps::new();
        let mut iter = inner
            .core
            .storage
            .scan_prefix(&offset_index::partition_prefix(&key))
            .await?;
        while let Some(kv) = iter.next().await? {
            if offset_index::decode_value(&kv.value)?.segment > id {
                break;
            }
            ops.delete(kv.key);
        }
        if !ops.is_empty() {
            inner.storage.write(ops, Durability::Remote).await?;
        }
    }
    Ok(())
}

/// A topic's own retention (`retention.ms`, `retention.bytes`; -1 or absent: none):
/// deletes the oldest offset index records of each partition past either limit, which
/// moves its log start offset. Never the newest chunk, so the end offset stays
/// readable. The entries themselves go when log retention drops their segment.
pub(crate) async fn enforce_topic_retention(inner: &Arc<super::writer::Inner>) -> Result<()> {
    let topics = inner.topics.read().clone();
    let now = now_ms() as i64;
    for t in topics.values() {
        let limit = |k: &str| {
            t.configs
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| *v >= 0)
        };
        let (ms, bytes) = (limit("retention.ms"), limit("retention.bytes"));
        if ms.is_none() && bytes.is_none() {
            continue;
        }
        for p in 0..t.partitions {
            let key = partition_key(&t.name, p);
            let mut index = Vec::new();
            let mut iter = inner
                .core
                .storage
                .scan_prefix(&offset_index::partition_prefix(&key))
                .await?;
            while let Some(kv) = iter.next().await? {
                let v = offset_index::decode_value(&kv.value)?;
                index.push((kv.key, v.append_ms as i64, v.bytes));
            }
            let mut total: u64 = index.iter().map(|(_, _, b)| b).sum();
            let mut ops = WriteOps::new();
            for (k, append_ms, b) in index.iter().take(index.len().saturating_sub(1)) {
                let expired = ms.is_some_and(|ms| *append_ms < now - ms);
                let oversize = bytes.is_some_and(|limit| total > limit as u64);
                if !(expired || oversize) {
                    break;
                }
                total -= b;
                ops.delete(k.clone());
            }
            if !ops.is_empty() {
                inner.storage.write(ops, Durability::Remote).await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_wrap_sequences_as_kafka_does() {
        assert_eq!(last_sequence(0, 1), 0);
        assert_eq!(last_sequence(5, 10), 14);
        assert_eq!(last_sequence(i32::MAX, 2), 0);
    }

    #[test]
    fn should_validate_topic_names_as_kafka_does() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name(".").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
