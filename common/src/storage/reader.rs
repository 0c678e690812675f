//! One read interface over a writer's database and a read-only replica.

use std::ops::RangeBounds;
use std::sync::Arc;

use bytes::Bytes;
use slatedb::config::{DurabilityLevel, ReadOptions, ScanOptions};
use slatedb::{Db, DbIterator, DbReader};

use crate::error::Result;

/// Reads from either the writer's own database or a read-only replica.
#[derive(Clone)]
pub enum StorageReader {
    /// The writer's handle: sees every applied write, durable or not.
    Writer(Arc<Db>),
    /// A replica: sees writes once they are durable in the object store.
    Replica(Arc<DbReader>),
}

impl std::fmt::Debug for StorageReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageReader::Writer(_) => f.write_str("StorageReader::Writer"),
            StorageReader::Replica(_) => f.write_str("StorageReader::Replica"),
        }
    }
}

fn scan_options(read_ahead_bytes: usize) -> ScanOptions {
    ScanOptions {
        durability_filter: DurabilityLevel::Memory,
        read_ahead_bytes: read_ahead_bytes.max(1),
        ..ScanOptions::default()
    }
}

impl StorageReader {
    /// True for a read-only replica.
    pub fn is_replica(&self) -> bool {
        matches!(self, StorageReader::Replica(_))
    }

    /// The value of `key`, if any.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let options = ReadOptions::default();
        Ok(match self {
            StorageReader::Writer(db) => db.get_with_options(key, &options).await?,
            StorageReader::Replica(r) => r.get_with_options(key, &options).await?,
        })
    }

    /// An iterator over `range` in key order.
    pub async fn scan<R>(&self, range: R) -> Result<DbIterator>
    where
        R: RangeBounds<Bytes> + Clone + Send,
    {
        self.scan_with_read_ahead(range, 1).await
    }

    /// An iterator over `range` that prefetches `read_ahead_bytes` from the object
    /// store, for long sequential scans.
    pub async fn scan_with_read_ahead<R>(
        &self,
        range: R,
        read_ahead_bytes: usize,
    ) -> Result<DbIterator>
    where
        R: RangeBounds<Bytes> + Clone + Send,
    {
        let range = (range.start_bound().cloned(), range.end_bound().cloned());
        let options = scan_options(read_ahead_bytes);
        Ok(match self {
            StorageReader::Writer(db) => db.scan_with_options(range, &options).await?,
            StorageReader::Replica(r) => r.scan_with_options(range, &options).await?,
        })
    }

    /// An iterator over every key that starts with `prefix`.
    pub async fn scan_prefix(&self, prefix: &[u8]) -> Result<DbIterator> {
        let start = Bytes::copy_from_slice(prefix);
        match crate::encoding::prefix_successor(prefix) {
            Some(end) => self.scan(start..Bytes::from(end)).await,
            None => self.scan(start..).await,
        }
    }
}
