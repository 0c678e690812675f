//! # opendata-log
//!
//! Many independent, replayable logs on object storage. Every key is its own log
//! stream (like a topic partition each); creating a stream is just writing to a new
//! key. Sequences come from one global counter, so they increase within a key but are
//! not contiguous. Entries are stored by `(segment, key, sequence)`: segments are
//! windows of time across all keys, sealed by age or size and dropped whole by
//! retention, and compaction clusters each key's entries inside a segment.
//!
//! Appends are acknowledged once durable in the object store (group commit across
//! concurrent appenders), unless the caller asks for memory durability. Read-only
//! replicas ([`LogDbReader`]) follow the writer through the object store.
//!
//! ## Writing
//!
//! ```rust,standalone_crate
//! use opendata_log::{LogDb, Config, Record};
//! use bytes::Bytes;
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> opendata_log::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//! let log = LogDb::open(Config::default()).await?;
//!
//! log.append(vec![
//!     Record { key: Bytes::from("orders"), value: Bytes::from(&b"..."[..]) },
//!     Record { key: Bytes::from("events"), value: Bytes::from(&b"..."[..]) },
//! ]).await?;
//! # log.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Reading
//!
//! ```rust,standalone_crate
//! use opendata_log::{LogRead, LogDbReader, ReaderConfig};
//! # use opendata_log::{LogDb, Config, Record};
//! use bytes::Bytes;
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> opendata_log::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # std::env::set_current_dir(dir.path()).unwrap();
//! # let log = LogDb::open(Config::default()).await?;
//! # let seqs = log.append(vec![Record { key: Bytes::from("orders"), value: Bytes::from("order-1") }]).await?;
//! # let checkpoint = seqs[0];
//! let reader = LogDbReader::open(ReaderConfig::default()).await?;
//!
//! // Scan all entries for a key
//! let mut iter = reader.scan(Bytes::from("orders"), ..).await?;
//! while let Some(entry) = iter.next().await? {
//!     println!("seq={} value={:?}", entry.sequence, entry.value);
//! }
//!
//! // Scan from a checkpoint
//! let mut iter = reader.scan(Bytes::from("orders"), checkpoint..).await?;
//! # assert_eq!(iter.next().await?.unwrap().value, Bytes::from("order-1"));
//! # log.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Topics
//!
//! A topic ([`LogDb::create_topic`]) is a named set of partitions, each the log key
//! `topic/partition` ([`partition_key`]) with dense offsets `0, 1, 2, …` kept beside its
//! entries, plus what Kafka clients need: record keys, headers and timestamps
//! ([`RecordAttrs`]), idempotent producers ([`LogDb::produce`] with a
//! [`ProducerBatch`]) and consumer groups' committed offsets
//! ([`LogDb::commit_group_offsets`]). Reads by offset go through [`LogRead`], so replicas
//! serve them too. The server's Kafka listener is an adapter over this API.

pub mod config;
pub mod error;
pub mod lifecycle;
pub mod model;
pub mod serde;
pub mod storage;

pub use config::{Config, LogConfig, ReaderConfig};
pub use error::{Error, Result};
pub use lifecycle::LogHandle;
pub use model::{
    AppendOptions, AppendResult, Condition, GroupOffset, KeyInfo, KeyPage, LogEntry,
    PartitionChunk, PartitionRecord, ProduceResult, ProducerBatch, Record, RecordAttrs,
    SegmentInfo, TopicInfo, partition_key,
};
pub use storage::{
    LogDb, LogDbReader, LogFollower, LogIterator, LogRead, MAX_PARTITIONS, MAX_TOPIC_NAME,
    validate_topic_name,
};
