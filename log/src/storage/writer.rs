//! The writer: appends with group commit, sequence allocation, segment sealing,
//! conditional appends and retention.

use std::collections::HashMap;

/// A fast, DoS-resistant hasher for the commit path's per-key maps.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::Arc;

use bytes::Bytes;
use opendata_common::sequence::SequenceAllocator;
use opendata_common::storage::{Storage, StorageRoot, WriteOps};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::read::{LogRead, ReadCore, SegmentSource, load_segments};
use super::topics::TopicState;
use super::{DATABASE, now_ms, retention};
use crate::config::{Config, LogConfig};
use crate::error::{Error, Result};
use crate::model::{AppendOptions, AppendResult, Condition, Record, RecordAttrs, TopicInfo};
use crate::serde::entry::ChunkBuilder;
use crate::serde::segment::SegmentRecord;
use crate::serde::{
    entry, key_index, merge_router, offset_index, partition, segment, segment_bytes, sequence,
};

/// Keys per generation of the last-sequence cache (see [`KeyCache`]).
const KEY_CACHE_GENERATION: usize = 500_000;

/// The log database, opened for writing.
///
/// Cloning shares the database. Close it with [`LogDb::close`] to flush everything.
#[derive(Clone)]
pub struct LogDb {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) storage: Storage,
    pub(crate) config: LogConfig,
    pub(crate) core: ReadCore,
    pub(crate) segments: Arc<RwLock<Vec<SegmentRecord>>>,
    pub(crate) state: Arc<Mutex<WriterState>>,
    /// Topic descriptors, as the commit path last changed them.
    pub(crate) topics: Arc<RwLock<std::collections::BTreeMap<String, TopicInfo>>>,
    pub(crate) visible: watch::Sender<u64>,
    retention: Mutex<Option<JoinHandle<()>>>,
}

/// State only the commit path changes (inside `prepare`, which runs serially).
pub(crate) struct WriterState {
    alloc: SequenceAllocator,
    current: Option<SegmentRecord>,
    current_bytes: u64,
    last_ts: u64,
    keys: KeyCache,
    /// Topic partitions (their next offsets and idempotent producers).
    pub(crate) topics: TopicState,
}

/// Last sequence of recently appended keys, for conditional appends.
///
/// A key is inserted when its append is prepared, before the write reaches SlateDB, so
/// a reader of storage could miss it for a moment: the cache covers that window. It
/// holds two generations; when the newer fills up, the older is dropped. A conditional
/// append reads storage first and remembers the generation it saw; if a rotation
/// happened since, it reads again. Without a rotation, every key appended before the
/// read is either still cached or was already applied to storage when it was read.
struct KeyCache {
    current: FastMap<Bytes, u64>,
    previous: FastMap<Bytes, u64>,
    generation: u64,
}

impl KeyCache {
    fn get(&self, key: &[u8]) -> Option<u64> {
        self.current
            .get(key)
            .or_else(|| self.previous.get(key))
            .copied()
    }

    fn insert(&mut self, key: Bytes, seq: u64) {
        if self.current.len() >= KEY_CACHE_GENERATION && !self.current.contains_key(&key) {
            self.previous = std::mem::take(&mut self.current);
            self.generation += 1;
        }
        self.current.insert(key, seq);
    }
}

impl LogDb {
    /// Opens (or creates) the log database described by `config`.
    pub async fn open(config: Config) -> Result<Self> {
        let root = StorageRoot::new(config.storage)?;
        Self::open_in(&root, config.log).await
    }

    /// Opens the log database under an existing storage root (as the server does, so
    /// that every database shares one object store client and metrics registry).
    pub async fn open_in(root: &StorageRoot, config: LogConfig) -> Result<Self> {
        config.validate().map_err(Error::InvalidInput)?;
        let storage = root.open_writer(DATABASE, Some(merge_router())).await?;
        let reader = storage.reader();
        let alloc =
            SequenceAllocator::load(&reader, sequence::key(), config.sequence_block).await?;
        let records = load_segments(&reader).await?;
        let current = records.last().copied();
        let next = alloc.peek();
        let (topic_state, topics) = super::topics::load(&reader).await?;
        let segments = Arc::new(RwLock::new(records));
        let state = WriterState {
            alloc,
            current,
            current_bytes: 0,
            last_ts: current.map_or(0, |c| c.start_time_ms),
            keys: KeyCache {
                current: FastMap::default(),
                previous: FastMap::default(),
                generation: 0,
            },
            topics: topic_state,
        };
        let (visible, _) = watch::channel(next);
        let inner = Arc::new(Inner {
            core: ReadCore {
                storage: reader,
                segments: SegmentSource::Writer(segments.clone()),
            },
            storage,
            config,
            segments,
            state: Arc::new(Mutex::new(state)),
            topics: Arc::new(RwLock::new(topics)),
            visible,
            retention: Mutex::new(None),
        });
        let db = LogDb { inner };
        // Always running: topics may set their own retention (`retention.ms`,
        // `retention.bytes`) even when the log as a whole keeps everything.
        let task = retention::spawn(Arc::downgrade(&db.inner), db.inner.storage.health());
        *db.inner.retention.lock() = Some(task);
        Ok(db)
    }

    /// Appends records, durably, and returns their sequences in order.
    pub async fn append(&self, records: Vec<Record>) -> Result<Vec<u64>> {
        Ok(self
            .append_with(records, AppendOptions::default())
            .await?
            .sequences)
    }

    /// Appends records with options: memory-only durability, or a condition on a key's
    /// last sequence (on a mismatch nothing is written and [`Error::Conflict`] returned).
    pub async fn append_with(
        &self,
        records: Vec<Record>,
        options: AppendOptions,
    ) -> Result<AppendResult> {
        self.validate(&records)?;
        if let Some(cond) = &options.condition
            && cond.key.is_empty()
        {
            return Err(Error::InvalidInput(
                "condition key must not be empty".into(),
            ));
        }
        let records = Arc::new(records);
        loop {
            let pre = match &options.condition {
                Some(cond) => Some(self.preread(cond).await?),
                None => None,
            };
            let state = self.inner.state.clone();
            let config = self.inner.config.clone();
            let segments = self.inner.segments.clone();
            let condition = options.condition.clone();
            let recs = records.clone();
            let result = self
                .inner
                .storage
                .committer()
                .submit(options.durability, move |ops: &mut WriteOps| {
                    prepare(
                        &mut state.lock(),
                        &config,
                        &segments,
                        &recs,
                        None,
                        condition,
                        pre,
                        ops,
                    )
                    .map(|(result, _)| result)
                })
                .await;
            match result {
                Err(Error::RetryCondition) => continue,
                Ok(result) => {
                    if let Some(last) = result.sequences.last() {
                        self.inner.mark_visible(*last);
                    }
                    return Ok(result);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn preread(&self, cond: &Condition) -> Result<(u64, Option<u64>)> {
        let generation = self.inner.state.lock().keys.generation;
        let stored = self
            .inner
            .core
            .storage
            .get(&key_index::encode_key(&cond.key))
            .await?;
        let last = match stored {
            Some(v) => Some(key_index::decode_value(&v)?.last_seq),
            None => None,
        };
        Ok((generation, last))
    }

    fn validate(&self, records: &[Record]) -> Result<()> {
        let cfg = &self.inner.config;
        if records.is_empty() {
            return Err(Error::InvalidInput(
                "append needs at least one record".into(),
            ));
        }
        if records.len() > cfg.max_records_per_append {
            return Err(Error::InvalidInput(format!(
                "{} records in one append; the maximum is {}",
                records.len(),
                cfg.max_records_per_append
            )));
        }
        for (i, r) in records.iter().enumerate() {
            if r.key.is_empty() {
                return Err(Error::InvalidInput(format!(
                    "record {i}: key must not be empty"
                )));
            }
            if r.key.len() > cfg.max_key_bytes {
                return Err(Error::InvalidInput(format!(
                    "record {i}: key is {} bytes; the maximum is {}",
                    r.key.len(),
                    cfg.max_key_bytes
                )));
            }
            if r.value.len() > cfg.max_value_bytes {
                return Err(Error::InvalidInput(format!(
                    "record {i}: value is {} bytes; the maximum is {}",
                    r.value.len(),
                    cfg.max_value_bytes
                )));
            }
        }
        Ok(())
    }

    /// Makes every acknowledged append durable (useful after memory-durability appends).
    pub async fn flush(&self) -> Result<()> {
        Ok(self.inner.storage.flush().await?)
    }

    /// Stops retention, flushes and closes the database.
    pub async fn close(&self) -> Result<()> {
        if let Some(task) = self.inner.retention.lock().take() {
            task.abort();
        }
        // Give back the unused part of the sequence block so a clean restart continues
        // where this run stopped. Runs on the commit path, after every queued append.
        let state = self.inner.state.clone();
        let released = self
            .inner
            .storage
            .committer()
            .submit(
                opendata_common::Durability::Remote,
                move |ops: &mut WriteOps| {
                    state.lock().alloc.release_unused(ops);
                    Ok::<(), Error>(())
                },
            )
            .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not release the unused sequence block");
        }
        Ok(self.inner.storage.close().await?)
    }

    /// Checks the database can serve: open and not fenced.
    pub fn check(&self) -> Result<()> {
        Ok(self.inner.storage.check()?)
    }

    /// Runs retention now: drops whole segments past the time or size limits and
    /// returns the ids dropped.
    pub async fn enforce_retention(&self) -> Result<Vec<u32>> {
        retention::enforce(&self.inner).await
    }

    /// The underlying storage (for metrics and tests).
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The configuration in force.
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }
}

impl LogRead for LogDb {
    fn read_core(&self) -> &ReadCore {
        &self.inner.core
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.visible.subscribe()
    }
}

/// Opens a new segment when there is none yet (`for_append`), or when the current one
/// is due to be sealed by age or size. The new segment starts at the next sequence.
fn roll_segment_if_due(
    state: &mut WriterState,
    config: &LogConfig,
    segments: &RwLock<Vec<SegmentRecord>>,
    ops: &mut WriteOps,
    now: u64,
    for_append: bool,
) -> Result<bool> {
    let due = match &state.current {
        None => for_append,
        Some(cur) => {
            let by_time = config.seal_interval_secs > 0
                && now.saturating_sub(cur.start_time_ms) >= config.seal_interval_secs * 1000;
            let by_size = config.seal_bytes > 0 && state.current_bytes >= config.seal_bytes;
            by_time || by_size
        }
    };
    if !due {
        return Ok(false);
    }
    let id = match &state.current {
        None => 0,
        Some(cur) => cur
            .id
            .checked_add(1)
            .ok_or_else(|| Error::InvalidInput("segment ids exhausted".into()))?,
    };
    let record = SegmentRecord {
        id,
        start_seq: state.alloc.peek(),
        start_time_ms: now,
    };
    ops.put(segment::encode_key(id), segment::encode_value(&record));
    state.current = Some(record);
    state.current_bytes = 0;
    segments.write().push(record);
    Ok(true)
}

impl Inner {
    /// Wakes followers: every sequence up to `last` is readable.
    pub(crate) fn mark_visible(&self, last: u64) {
        self.visible.send_if_modified(|v| {
            if *v <= last {
                *v = last + 1;
                true
            } else {
                false
            }
        });
    }

    /// Seals the current segment if it is due, even with no append to trigger it, so
    /// that an idle log's data still ages out. Returns whether a new segment was opened.
    pub(crate) async fn seal_if_due(self: &Arc<Self>) -> Result<bool> {
        let state = self.state.clone();
        let config = self.config.clone();
        let segments = self.segments.clone();
        self.storage
            .committer()
            .submit(
                opendata_common::Durability::Remote,
                move |ops: &mut WriteOps| {
                    let mut state = state.lock();
                    let now = now_ms().max(state.last_ts);
                    state.last_ts = now;
                    roll_segment_if_due(&mut state, &config, &segments, ops, now, false)
                },
            )
            .await
    }

    /// Deletes the key index records of `candidates` (keys whose indexed newest entry
    /// lies before sequence `end_seq`), on the commit path, skipping every key the writer
    /// has seen appended at or after `end_seq` in the meantime: a concurrent append's
    /// fresh index record is never deleted.
    pub(crate) async fn forget_keys(
        self: &Arc<Self>,
        candidates: Vec<Bytes>,
        end_seq: u64,
    ) -> Result<()> {
        let state = self.state.clone();
        self.storage
            .committer()
            .submit(
                opendata_common::Durability::Remote,
                move |ops: &mut WriteOps| {
                    let state = state.lock();
                    for key in candidates {
                        if state.keys.get(&key).is_some_and(|last| last >= end_seq) {
                            continue;
                        }
                        ops.delete(key_index::encode_key(&key));
                    }
                    Ok::<(), Error>(())
                },
            )
            .await
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn prepare(
    state: &mut WriterState,
    config: &LogConfig,
    segments: &RwLock<Vec<SegmentRecord>>,
    records: &[Record],
    attrs: Option<&[RecordAttrs]>,
    condition: Option<Condition>,
    pre: Option<(u64, Option<u64>)>,
    ops: &mut WriteOps,
) -> Result<(AppendResult, Option<u64>)> {
    if let Some(cond) = condition {
        let actual = match state.keys.get(&cond.key) {
            Some(seq) => Some(seq),
            None => {
                let (generation, stored) = pre.expect("conditions are pre-read");
                if generation != state.keys.generation {
                    return Err(Error::RetryCondition);
                }
                stored
            }
        };
        if actual != cond.last_sequence {
            return Err(Error::Conflict {
                key: String::from_utf8_lossy(&cond.key).into_owned(),
                expected: cond.last_sequence,
                actual,
            });
        }
    }

    let now = now_ms().max(state.last_ts);
    state.last_ts = now;

    roll_segment_if_due(state, config, segments, ops, now, true)?;
    let seg = state.current.expect("set above").id;

    let first = state.alloc.allocate(records.len() as u64, ops);
    let mut bytes = 0u64;
    let mut base_offset = None;
    // One chunk per key (split when large), in order of each key's first record; keys
    // that are topic partitions also get dense offsets and an offset index record per
    // chunk.
    let mut chunks: Vec<(&Bytes, ChunkBuilder, Option<OffsetTrack>)> = Vec::new();
    let mut slot: FastMap<&Bytes, usize> = FastMap::default();
    for (i, record) in records.iter().enumerate() {
        let seq = first + i as u64;
        bytes += (record.key.len() + record.value.len()) as u64;
        let idx = *slot.entry(&record.key).or_insert_with(|| {
            let track = state
                .topics
                .partitions
                .get(&record.key)
                .map(|p| OffsetTrack::new(p.next_offset, attrs.is_some()));
            chunks.push((&record.key, ChunkBuilder::new(now, 0), track));
            chunks.len() - 1
        });
        let (key, builder, track) = &mut chunks[idx];
        if !builder.is_empty()
            && (builder.payload_bytes() + record.value.len() > entry::CHUNK_TARGET_BYTES
                || builder.len() >= entry::CHUNK_MAX_ENTRIES)
        {
            let full = std::mem::replace(builder, ChunkBuilder::new(now, 0));
            let (last, value) = full.finish();
            ops.put(entry::encode_key(seg, key, last), value);
            if let Some(t) = track {
                t.finish_chunk(key, seg, last, now, ops);
            }
        }
        builder.push(seq, record.value.clone());
        if let Some(t) = track {
            t.push(attrs.map(|a| &a[i]), record.value.len(), now);
        }
    }
    for (key, builder, track) in chunks {
        let (last, value) = builder.finish();
        ops.put(entry::encode_key(seg, key, last), value);
        ops.put(
            key_index::encode_key(key),
            key_index::encode_value(&key_index::KeyIndexValue {
                last_seq: last,
                last_segment: seg,
            }),
        );
        state.keys.insert(key.clone(), last);
        if let Some(mut t) = track {
            t.finish_chunk(key, seg, last, now, ops);
            ops.put(partition::encode_key(key), partition::encode_value(t.next));
            if let Some(p) = state.topics.partitions.get_mut(key) {
                p.next_offset = t.next;
            }
            base_offset.get_or_insert(t.base);
        }
    }
    ops.merge(
        segment_bytes::encode_key(seg),
        segment_bytes::operand(bytes),
    );
    state.current_bytes += bytes;
    Ok((
        AppendResult {
            sequences: (first..first + records.len() as u64).collect(),
            timestamp_ms: now,
        },
        base_offset,
    ))
}

/// The offsets of one key's chunks in an append, when the key is a topic partition.
struct OffsetTrack {
    /// The offset of the append's first record to this key.
    base: u64,
    /// The offset the next record gets.
    next: u64,
    /// The offset of the current chunk's first record.
    chunk_first: u64,
    /// The current chunk's record attributes (when the append carries any).
    attrs: Option<Vec<RecordAttrs>>,
    any_attrs: bool,
    max_ts: i64,
    bytes: u64,
}

impl OffsetTrack {
    fn new(next: u64, with_attrs: bool) -> Self {
        Self {
            base: next,
            next,
            chunk_first: next,
            attrs: with_attrs.then(Vec::new),
            any_attrs: false,
            max_ts: i64::MIN,
            bytes: 0,
        }
    }

    fn push(&mut self, attrs: Option<&RecordAttrs>, value_len: usize, now: u64) {
        self.bytes += value_len as u64;
        let ts = attrs.and_then(|a| a.timestamp_ms).unwrap_or(now as i64);
        self.max_ts = self.max_ts.max(ts);
        if let (Some(list), Some(a)) = (&mut self.attrs, attrs) {
            self.any_attrs |= !a.is_empty();
            list.push(a.clone());
        }
        self.next += 1;
    }

    fn finish_chunk(&mut self, key: &[u8], seg: u32, last_seq: u64, now: u64, ops: &mut WriteOps) {
        let count = (self.next - self.chunk_first) as u32;
        let attrs = match &mut self.attrs {
            Some(list) if self.any_attrs => Some(std::mem::take(list)),
            Some(list) => {
                list.clear();
                None
            }
            None => None,
        };
        ops.put(
            offset_index::encode_key(key, self.next - 1),
            offset_index::encode_value(&offset_index::OffsetIndexValue {
                segment: seg,
                last_sequence: last_seq,
                append_ms: now,
                max_timestamp_ms: self.max_ts,
                count,
                bytes: self.bytes,
                attrs,
            }),
        );
        self.chunk_first = self.next;
        self.any_attrs = false;
        self.max_ts = i64::MIN;
        self.bytes = 0;
    }
}
