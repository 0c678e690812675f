//! The read-only replica: follows a writer through the object store.
//!
//! It opens like the writer (closed buckets by number, open buckets rebuilt from the
//! forward index and write-ahead records), then polls: new write-ahead records are
//! applied to its head, a bucket whose flushed-through sequence moved is rebuilt, a
//! bucket that closed leaves the head, and dropped buckets are forgotten.

use std::collections::BTreeSet;
use std::sync::Arc;

use opendata_common::StorageRoot;
use opendata_common::replica::ReplicaFollower;
use opendata_common::segment::list_segments;

use super::DATABASE;
use super::head::Head;
use super::load::{self, Interner};
use super::read::{Querier, ReadShared};
use crate::config::TimeSeriesConfig;
use crate::error::Result;
use crate::serde::{PREFIX, merge_router, settings};

/// A read-only view of a time series database that follows its writer, seeing writes
/// once they are durable in the object store.
#[derive(Clone)]
pub struct TimeSeriesDbReader {
    inner: Arc<ReplicaInner>,
}

struct ReplicaInner {
    shared: Arc<ReadShared>,
    follower: ReplicaFollower,
}

impl TimeSeriesDbReader {
    /// Opens a replica under an existing storage root. The database must exist.
    pub async fn open_in(root: &StorageRoot, config: TimeSeriesConfig) -> Result<Self> {
        let reader = root.open_replica(DATABASE, Some(merge_router())).await?;
        let bucket_ms = match reader.get(&settings::key()).await? {
            Some(v) => settings::decode(&v)? as i64,
            None => config.bucket_ms(),
        };
        let shared = Arc::new(ReadShared {
            reader,
            head: Head::default(),
            closed: Default::default(),
            bucket_ms,
        });
        load::load_all(&shared, config.head_chunk_samples).await?;
        let seal_at = config.head_chunk_samples;
        let follower = ReplicaFollower::start(
            DATABASE,
            root.config().replica_poll_interval(),
            &shared,
            move |shared| async move { refresh(&shared, seal_at).await },
        );
        Ok(Self {
            inner: Arc::new(ReplicaInner { shared, follower }),
        })
    }

    /// The read interface.
    pub fn querier(&self) -> Querier {
        Querier {
            shared: self.inner.shared.clone(),
        }
    }

    /// Reads what the writer made durable since the last poll, now.
    pub async fn refresh(&self, seal_at: usize) -> Result<()> {
        refresh(&self.inner.shared, seal_at).await
    }

    /// Checks the replica can serve.
    pub fn check(&self) -> Result<()> {
        Ok(self.inner.follower.check()?)
    }
}

async fn refresh(shared: &ReadShared, seal_at: usize) -> Result<()> {
    let reader = &shared.reader;
    let present: BTreeSet<u32> = list_segments(reader, PREFIX).await?.into_iter().collect();
    let mut interner = Interner::default();
    // Forget dropped buckets.
    shared.closed.write().retain(|b| present.contains(b));
    for hb in shared.head.all() {
        if !present.contains(&hb.bucket) {
            shared.head.remove(hb.bucket);
        }
    }
    for &b in &present {
        if shared.closed.read().contains(&b) {
            continue;
        }
        let state = load::read_state(reader, b).await?;
        if state.closed {
            shared.closed.write().insert(b);
            shared.head.remove(b);
            continue;
        }
        let current = shared.head.buckets.read().get(&b).cloned();
        match current {
            Some(hb) if hb.data.read().checkpoint == state.flushed_through => {
                let after = hb.data.read().last_seq;
                let records = load::read_wal(reader, b, after).await?;
                if !records.is_empty() {
                    let mut data = hb.data.write();
                    load::apply_wal(&mut data, records, seal_at, &mut interner);
                }
            }
            _ => {
                let (hb, _) = load::load_bucket(reader, b, state, seal_at, &mut interner).await?;
                shared.head.buckets.write().insert(b, Arc::new(hb));
            }
        }
    }
    Ok(())
}
