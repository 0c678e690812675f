//! Read-only replicas: follow the writer through the object store.

use std::sync::Arc;

use opendata_common::StorageRoot;
use opendata_common::replica::ReplicaFollower;
use tokio::sync::watch;

use super::DATABASE;
use super::read::{LogRead, ReadCore, SegmentSource};
use crate::config::ReaderConfig;
use crate::error::Result;
use crate::serde::merge_router;

/// A read-only view of a log database that follows its writer, seeing appends once they
/// are durable in the object store.
#[derive(Clone)]
pub struct LogDbReader {
    inner: Arc<ReaderInner>,
}

struct ReaderInner {
    core: Arc<ReadCore>,
    follower: ReplicaFollower,
}

impl LogDbReader {
    /// Opens a replica of the log database in `config.storage`. The database must exist.
    pub async fn open(config: ReaderConfig) -> Result<Self> {
        let root = StorageRoot::new(config.storage)?;
        Self::open_in(&root).await
    }

    /// Opens a replica under an existing storage root.
    pub async fn open_in(root: &StorageRoot) -> Result<Self> {
        let storage = root.open_replica(DATABASE, Some(merge_router())).await?;
        let core = Arc::new(ReadCore {
            storage,
            segments: SegmentSource::Storage,
        });
        // SlateDB's reader refreshes itself from the object store, and the log keeps no
        // state of its own in memory: each round only wakes followers, which re-read
        // from where they stopped.
        let follower = ReplicaFollower::start(
            DATABASE,
            root.config().replica_poll_interval(),
            &core,
            |_| async { Ok::<(), crate::Error>(()) },
        );
        Ok(Self {
            inner: Arc::new(ReaderInner { core, follower }),
        })
    }

    /// Checks the replica is usable.
    pub fn check(&self) -> Result<()> {
        Ok(self.inner.follower.check()?)
    }
}

impl LogRead for LogDbReader {
    fn read_core(&self) -> &ReadCore {
        &self.inner.core
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.follower.changes()
    }
}
