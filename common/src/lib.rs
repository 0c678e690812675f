//! # opendata-common
//!
//! The storage foundation every OpenData database is built on:
//!
//! - [`keys`]: the structured key model. Every key starts with
//!   `[subsystem u8][version u8]`, then a record type, or a segment id and a record type.
//! - [`encoding`]: order-preserving encodings for key fields (escaped byte strings,
//!   sortable `i64`/`f64`, order-preserving varints, big-endian integers).
//! - [`segment`]: segments, contiguous key ranges that are listed, scanned and
//!   dropped whole.
//! - [`merge`]: a merge-operator router and ready operators (roaring union and delta,
//!   integer add, byte append).
//! - [`storage`]: opening SlateDB on an object store (memory, local directory, S3),
//!   read-only replicas, and the group-commit write path.
//! - [`sequence`]: durable sequence allocation in blocks.
//! - [`lifecycle`]: the [`Database`] trait every database implements (open as writer or
//!   replica, readiness, metrics, flush, close), so a server mounts them all alike.
//! - [`replica`]: the one follower that keeps a read-only replica's in-memory state in
//!   step with its writer.
//! - [`task`]: background tasks whose panics are logged and fail readiness.
//! - [`metrics`]: SlateDB metrics in the Prometheus text format.
//!
//! ## Example
//!
//! ```
//! use opendata_common::keys::{KeyPrefix, RecordType, Subsystem};
//! use opendata_common::storage::{Durability, StorageRoot, WriteOps};
//! use opendata_common::config::StorageConfig;
//!
//! const PREFIX: KeyPrefix = KeyPrefix::new(Subsystem::Log, 1);
//! const ENTRY: RecordType = RecordType::new(0x01);
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> opendata_common::Result<()> {
//! let root = StorageRoot::new(StorageConfig::in_memory())?;
//! let storage = root.open_writer("log", None).await?;
//!
//! let key = PREFIX.segmented(0, ENTRY).bytes(b"orders").u64(42).build();
//! let mut ops = WriteOps::new();
//! ops.put(key.clone(), &b"hello"[..]);
//! // Returns once the write is durable in the object store.
//! storage.write(ops, Durability::Remote).await?;
//!
//! assert_eq!(storage.reader().get(&key).await?.as_deref(), Some(&b"hello"[..]));
//! let mut parsed = PREFIX.parse(&key)?;
//! assert_eq!(parsed.segment, Some(0));
//! assert_eq!(parsed.read_bytes()?, b"orders");
//! storage.close().await?;
//! # Ok(())
//! # }
//! ```

pub mod budget;
pub mod config;
pub mod encoding;
pub mod error;
pub mod keys;
pub mod lifecycle;
pub mod merge;
pub mod metrics;
pub mod replica;
pub mod segment;
pub mod sequence;
pub mod storage;
pub mod task;

pub use config::{ObjectStoreConfig, StorageConfig};
pub use error::{DecodeError, Error, Result};
pub use lifecycle::{Database, OpenDatabase, Opened, Role};
pub use storage::{Durability, Storage, StorageReader, StorageRoot, WriteOps};

/// Re-exported so databases and the server use the exact SlateDB this crate builds on.
pub use slatedb;
