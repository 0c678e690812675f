//! Opening SlateDB databases on an object store, and the write path in front of them.
//!
//! A [`StorageRoot`] is built once from an [`ObjectStoreConfig`](crate::config::ObjectStoreConfig)
//! and opens one SlateDB per database under `<root>/<database>/`:
//! [`StorageRoot::open_writer`] for the single writer (fencing any earlier writer of the
//! same path) and [`StorageRoot::open_replica`] for read-only followers.

pub mod faults;
mod group_commit;
mod object_store;
mod reader;
mod write_ops;

use std::sync::Arc;

use slatedb::config::{CompressionCodec, Settings};
use slatedb::db_cache::foyer::{FoyerCache, FoyerCacheOptions};
use slatedb::object_store::ObjectStore;
use slatedb::object_store::path::Path;
use slatedb::{Db, DbReader};
use slatedb_common::metrics::DefaultMetricsRecorder;

pub use self::group_commit::{CommitStats, Durability, GroupCommitter};
pub use self::object_store::build_object_store;
pub use self::reader::StorageReader;
pub use self::write_ops::WriteOps;

use crate::config::{Compression, StorageConfig};
use crate::error::Result;
use crate::merge::MergeRouter;
use crate::metrics::MetricsRegistry;
use crate::task::TaskHealth;

/// The runtime SlateDB's compaction and garbage collection run on: their own OS threads,
/// so a long merge is time-sliced by the kernel instead of holding one of the request
/// runtime's few worker threads. Created once per process and never dropped.
fn background_runtime() -> tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("slatedb-background")
                .enable_all()
                .build()
                .expect("the background runtime starts")
        })
        .handle()
        .clone()
}

/// The root every database of one server lives under.
#[derive(Clone)]
pub struct StorageRoot {
    config: StorageConfig,
    store: Arc<dyn ObjectStore>,
    root: Path,
    metrics: MetricsRegistry,
}

impl std::fmt::Debug for StorageRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageRoot")
            .field("object_store", &self.config.object_store)
            .field("root", &self.root)
            .finish()
    }
}

impl StorageRoot {
    /// Builds the object store client named by `config`. For an in-memory store, every
    /// database opened from this root (writer and replicas) shares one memory store.
    pub fn new(config: StorageConfig) -> Result<Self> {
        let (mut store, root) = build_object_store(&config)?;
        if let Some(faults) = &config.faults {
            faults.validate().map_err(crate::Error::Config)?;
            tracing::warn!(
                ?faults,
                "object store faults are injected ([storage.faults])"
            );
            store = Arc::new(faults::FaultyStore::new(store, faults.clone()));
        }
        Ok(Self {
            config,
            store,
            root,
            metrics: MetricsRegistry::default(),
        })
    }

    /// The configuration this root was built from.
    pub fn config(&self) -> &StorageConfig {
        &self.config
    }

    /// The object store client.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The root path inside the object store: every database is a directory below it.
    pub fn root_path(&self) -> &Path {
        &self.root
    }

    /// The path of `database` inside the object store.
    pub fn path_for(&self, database: &str) -> Path {
        self.root.clone().join(database)
    }

    /// Where every database's SlateDB metrics are collected.
    pub fn metrics(&self) -> &MetricsRegistry {
        &self.metrics
    }

    /// Opens `database` as its single writer. Opening fences any other writer of the
    /// same path: that writer's next write fails with [`crate::Error::Fenced`].
    pub async fn open_writer(&self, database: &str, merge: Option<MergeRouter>) -> Result<Storage> {
        let recorder = Arc::new(DefaultMetricsRecorder::new());
        let settings = self.settings();
        let background = background_runtime();
        let mut compactor =
            slatedb::CompactorBuilder::new(self.path_for(database), self.store.clone())
                .with_runtime(background.clone())
                .with_metrics_recorder(recorder.clone());
        if let Some(options) = settings.compactor_options.clone() {
            compactor = compactor.with_options(options);
        }
        if let Some(router) = &merge {
            compactor = compactor.with_merge_operator(Arc::new(router.clone()));
        }
        let mut builder = Db::builder(self.path_for(database), self.store.clone())
            .with_settings(settings)
            .with_compactor_builder(compactor)
            .with_gc_runtime(background)
            .with_db_cache(Arc::new(self.cache()), 0)
            .with_metrics_recorder(recorder.clone());
        if let Some(router) = merge {
            builder = builder.with_merge_operator(Arc::new(router));
        }
        let db = Arc::new(builder.build().await?);
        self.metrics.register(database, "writer", recorder);
        let health = TaskHealth::default();
        let committer = GroupCommitter::start(db.clone(), &self.config, &health);
        tracing::info!(database, path = %self.path_for(database), "opened writer");
        Ok(Storage {
            name: database.to_string(),
            db,
            committer,
            health,
        })
    }

    /// Opens `database` as a read-only replica that follows the writer, seeing new
    /// writes once they are durable in the object store. The database must exist.
    pub async fn open_replica(
        &self,
        database: &str,
        merge: Option<MergeRouter>,
    ) -> Result<StorageReader> {
        let recorder = Arc::new(DefaultMetricsRecorder::new());
        let options = slatedb::config::DbReaderOptions {
            manifest_poll_interval: self.config.replica_poll_interval(),
            object_store_max_retries: self.config.object_store_max_retries,
            ..Default::default()
        };
        let mut builder = DbReader::builder(self.path_for(database), self.store.clone())
            .with_options(options)
            .with_db_cache(Arc::new(self.cache()), 0)
            .with_metrics_recorder(recorder.clone());
        if let Some(router) = merge {
            builder = builder.with_merge_operator(Arc::new(router));
        }
        let reader = builder.build().await?;
        self.metrics.register(database, "replica", recorder);
        tracing::info!(database, path = %self.path_for(database), "opened replica");
        Ok(StorageReader::Replica(Arc::new(reader)))
    }

    fn cache(&self) -> FoyerCache {
        FoyerCache::new_with_opts(FoyerCacheOptions {
            max_capacity: self.config.block_cache_bytes.max(1024 * 1024),
            ..Default::default()
        })
    }

    /// SlateDB's settings. Retries of the object store are set on purpose: see
    /// `StorageConfig::object_store_max_retries`.
    fn settings(&self) -> Settings {
        let retries = self.config.object_store_max_retries;
        let mut settings = Settings {
            object_store_max_retries: retries,
            flush_interval: Some(self.config.flush_interval()),
            max_unflushed_bytes: self.config.max_unflushed_bytes as usize,
            l0_max_ssts: self.config.l0_max_ssts.max(1),
            l0_sst_size_bytes: self.config.l0_sst_size_bytes.max(1024 * 1024) as usize,
            compactor_options: Some(slatedb::config::CompactorOptions {
                poll_interval: self.config.compactor_poll_interval(),
                max_concurrent_compactions: self.config.max_concurrent_compactions.max(1),
                object_store_max_retries: retries,
                worker: Some(slatedb::config::CompactionWorkerOptions {
                    compactions_poll_interval: self.config.compactor_poll_interval(),
                    max_concurrent_compactions: self.config.max_concurrent_compactions.max(1),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            compression_codec: match self.config.compression {
                Compression::None => None,
                Compression::Lz4 => Some(CompressionCodec::Lz4),
                Compression::Zstd => Some(CompressionCodec::Zstd),
            },
            ..Settings::default()
        };
        if let Some(gc) = settings.garbage_collector_options.as_mut() {
            gc.object_store_max_retries = retries;
        }
        settings
    }
}

/// What the manifest references: see [`Storage::live_sst_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSsts {
    /// Estimated bytes of the referenced SSTs.
    pub bytes: u64,
    /// Level-0 SSTs.
    pub l0_ssts: usize,
    /// Sorted runs.
    pub sorted_runs: usize,
}

/// A database opened for writing: the SlateDB handle and its group-commit path.
#[derive(Clone)]
pub struct Storage {
    name: String,
    db: Arc<Db>,
    committer: GroupCommitter,
    health: TaskHealth,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("name", &self.name).finish()
    }
}

impl Storage {
    /// The database's name (its directory under the root).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The underlying SlateDB handle.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    /// A read handle over this writer's data (including writes not yet durable).
    pub fn reader(&self) -> StorageReader {
        StorageReader::Writer(self.db.clone())
    }

    /// The group-commit write path.
    pub fn committer(&self) -> &GroupCommitter {
        &self.committer
    }

    /// Writes `ops` through the group-commit path and returns once they are applied
    /// (and, for [`Durability::Remote`], durable in the object store).
    pub async fn write(&self, ops: WriteOps, durability: Durability) -> Result<()> {
        self.committer.write(ops, durability).await
    }

    /// Makes every write acknowledged so far durable.
    pub async fn flush(&self) -> Result<()> {
        self.db.flush().await?;
        Ok(())
    }

    /// Writes the memtable out as a level-0 SST now (normally SlateDB does so when it
    /// fills), so everything written so far is in SSTs the compactor can merge.
    pub async fn flush_memtable(&self) -> Result<()> {
        self.db
            .flush_with_options(slatedb::config::FlushOptions {
                flush_type: slatedb::config::FlushType::MemTable,
            })
            .await?;
        Ok(())
    }

    /// Bytes of the SSTs the current manifest references (level 0 and sorted runs):
    /// what the database keeps once obsolete files are collected. Refreshes the
    /// manifest first, so compactions finished by the compactor are counted.
    pub async fn live_sst_bytes(&self) -> Result<LiveSsts> {
        self.db.refresh_manifest().await?;
        let manifest = self.db.manifest();
        let l0: u64 = manifest.l0().iter().map(|v| v.estimate_size()).sum();
        let runs: u64 = manifest.compacted().iter().map(|r| r.estimate_size()).sum();
        Ok(LiveSsts {
            bytes: l0 + runs,
            l0_ssts: manifest.l0().len(),
            sorted_runs: manifest.compacted().len(),
        })
    }

    /// The health of this database's background tasks: the group-commit tasks, and
    /// every task the database spawns with [`crate::task::spawn_supervised`] on it.
    pub fn health(&self) -> &TaskHealth {
        &self.health
    }

    /// Checks the database is usable: it is open, not fenced, and none of its background
    /// tasks has failed.
    pub fn check(&self) -> Result<()> {
        let status = self.db.status();
        match status.close_reason {
            None => {}
            Some(slatedb::CloseReason::Fenced) => return Err(crate::Error::Fenced),
            Some(_) => return Err(crate::Error::Closed),
        }
        self.committer.check()?;
        self.health.check()
    }

    /// Stops the write path, flushes everything to the object store and closes.
    pub async fn close(&self) -> Result<()> {
        self.committer.shutdown().await;
        self.db.close().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_set_slatedb_retries_on_purpose() {
        let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
        let s = root.settings();
        assert_eq!(s.object_store_max_retries, None, "retry without end");
        let root = StorageRoot::new(StorageConfig {
            object_store_max_retries: Some(3),
            ..StorageConfig::in_memory()
        })
        .unwrap();
        let s = root.settings();
        assert_eq!(s.object_store_max_retries, Some(3));
        assert_eq!(
            s.compactor_options.unwrap().object_store_max_retries,
            Some(3)
        );
        if let Some(gc) = s.garbage_collector_options {
            assert_eq!(gc.object_store_max_retries, Some(3));
        }
    }
}
