//! The log database's data model.

use bytes::Bytes;
use opendata_common::Durability;

/// A record to append: the log it goes to (`key`) and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The log stream: every key is its own log.
    pub key: Bytes,
    /// The payload.
    pub value: Bytes,
}

/// An entry read back from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// The log stream.
    pub key: Bytes,
    /// The entry's sequence: from one global counter, increasing within a key, not contiguous.
    pub sequence: u64,
    /// When the entry was appended, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The payload.
    pub value: Bytes,
}

/// A condition on an append: the key's last sequence must be `last_sequence`
/// (`None`: the key must have no entries), or nothing is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The key whose last sequence is checked.
    pub key: Bytes,
    /// The expected last sequence.
    pub last_sequence: Option<u64>,
}

/// Options of an append.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOptions {
    /// When the append is acknowledged (default: durable in the object store).
    pub durability: Durability,
    /// An optional optimistic-concurrency condition.
    pub condition: Option<Condition>,
}

/// What an append returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    /// The sequence of each record, in order.
    pub sequences: Vec<u64>,
    /// The append timestamp given to every record.
    pub timestamp_ms: u64,
}

/// A segment of the log: a window of sequences (and time) across all keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment id.
    pub id: u32,
    /// The first sequence it may hold.
    pub start_sequence: u64,
    /// The first sequence of the next segment, `None` for the open segment.
    pub end_sequence: Option<u64>,
    /// When it was opened (ms since the Unix epoch).
    pub start_time_ms: u64,
}

/// A key listed by [`crate::LogRead::list_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key.
    pub key: Bytes,
    /// Its newest entry's sequence.
    pub last_sequence: u64,
}

/// A page of keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// Keys in ascending order.
    pub keys: Vec<KeyInfo>,
    /// Pass as `after` to get the next page; `None` when this is the last page.
    pub next_after: Option<Bytes>,
}

/// A topic: a named set of partitions, each its own log key with dense offsets (see
/// [`partition_key`]), as Kafka clients expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's name (`[a-zA-Z0-9._-]`, at most 249 bytes).
    pub name: String,
    /// A random id, fixed at creation (Kafka's topic id).
    pub id: [u8; 16],
    /// Number of partitions.
    pub partitions: u32,
    /// When it was created (ms since the Unix epoch).
    pub created_ms: u64,
    /// Kafka-style topic configs (`retention.ms`, `message.timestamp.type`, ...).
    pub configs: std::collections::BTreeMap<String, String>,
}

/// The log key of partition `partition` of `topic`: `topic/partition`.
pub fn partition_key(topic: &str, partition: u32) -> Bytes {
    Bytes::from(format!("{topic}/{partition}"))
}

/// What a Kafka record carries beyond its value; kept in the offset index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordAttrs {
    /// The record's own timestamp (Kafka CreateTime); `None`: the append time.
    pub timestamp_ms: Option<i64>,
    /// The record key.
    pub key: Option<Bytes>,
    /// Headers in order: name and value (`None`: a null value).
    pub headers: Vec<(Bytes, Option<Bytes>)>,
    /// The value is null (a tombstone); the stored entry is empty.
    pub null_value: bool,
}

impl RecordAttrs {
    /// Whether there is nothing to store: no key, headers, timestamp or null value.
    pub fn is_empty(&self) -> bool {
        self.timestamp_ms.is_none()
            && self.key.is_none()
            && self.headers.is_empty()
            && !self.null_value
    }

    /// Bytes the attributes take (for limits).
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, |k| k.len())
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>()
    }
}

/// A record produced to a topic partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRecord {
    /// The payload (empty for a null value).
    pub value: Bytes,
    /// Key, headers and timestamp.
    pub attrs: RecordAttrs,
}

/// The idempotent producer that sent a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The producer id (from [`crate::LogDb::init_producer_id`]).
    pub producer_id: u64,
    /// The producer's epoch.
    pub epoch: i16,
    /// The sequence number of the batch's first record.
    pub base_sequence: i32,
}

/// What a produce to a topic partition returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceResult {
    /// The offset of the first record.
    pub base_offset: u64,
    /// The append time (ms since the Unix epoch).
    pub append_ms: u64,
    /// The batch was a retry of one already written: nothing new was written and
    /// `base_offset` is the original's.
    pub duplicate: bool,
}

/// Records of a topic partition read by offset: one stored chunk (or its tail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionChunk {
    /// The offset of the first record.
    pub base_offset: u64,
    /// When the chunk was appended (ms since the Unix epoch).
    pub append_ms: u64,
    /// The values, in offset order.
    pub values: Vec<Bytes>,
    /// Per-record attributes, parallel to `values`, when any record has some.
    pub attrs: Option<Vec<RecordAttrs>>,
}

/// A consumer group's committed offset in one topic partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The next offset the group reads.
    pub offset: i64,
    /// The leader epoch the client saw (-1: none).
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When it was committed (ms since the Unix epoch).
    pub commit_ms: u64,
}
