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
