//! Read-only replicas: follow the writer through the object store.

use std::sync::Arc;
use std::time::Duration;

use opendata_common::StorageRoot;
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
    core: ReadCore,
    ticks: watch::Sender<u64>,
    ticker: JoinHandle<()>,
}

impl Drop for ReaderInner {
    fn drop(&mut self) {
        self.ticker.abort();
    }
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
        let (ticks, _) = watch::channel(0u64);
        // The replica refreshes itself from the object store; followers are woken on
        // each refresh period and re-read from where they stopped.
        let period = Duration::from_millis(root.config().replica_poll_interval_ms.max(10));
        let tx = ticks.clone();
        let ticker = tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                interval.tick().await;
                tx.send_modify(|t| *t += 1);
            }
        });
        Ok(Self {
            inner: Arc::new(ReaderInner {
                core: ReadCore {
                    storage,
                    segments: SegmentSource::Storage,
                },
                ticks,
                ticker,
            }),
        })
    }

    /// Checks the replica is usable.
    pub fn check(&self) -> Result<()> {
        Ok(())
    }
}

impl LogRead for LogDbReader {
    fn read_core(&self) -> &ReadCore {
        &self.inner.core
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.ticks.subscribe()
    }
}
