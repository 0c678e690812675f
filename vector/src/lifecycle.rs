//! The vector database in the common lifecycle. [`VectorDb`] is one type for the writer
//! and for replicas (a replica refuses writes itself), so both roles open it.

use futures::future::BoxFuture;
use opendata_common::StorageRoot;
use opendata_common::lifecycle::{BoxError, Database, OpenDatabase, Opened, Role, boxed};
use opendata_common::storage::CommitStats;

use crate::config::VectorConfig;
use crate::db::{DATABASE, VectorDb};

/// The vector database opened as writer or replica, as a server holds it.
pub type VectorHandle = Opened<VectorDb, VectorDb>;

impl OpenDatabase for VectorDb {
    const NAME: &'static str = DATABASE;
    type Config = VectorConfig;
    type Error = crate::Error;
    type Writer = VectorDb;
    type Replica = VectorDb;

    async fn open_writer(root: &StorageRoot, config: VectorConfig) -> crate::Result<VectorDb> {
        VectorDb::open(root, config).await
    }

    async fn open_replica(root: &StorageRoot, config: VectorConfig) -> crate::Result<VectorDb> {
        VectorDb::open_replica(root, config).await
    }
}

impl Database for VectorDb {
    fn name(&self) -> &'static str {
        DATABASE
    }

    fn role(&self) -> Role {
        if self.is_read_only() {
            Role::Replica
        } else {
            Role::Writer
        }
    }

    fn check(&self) -> Result<(), BoxError> {
        VectorDb::check(self).map_err(boxed)
    }

    fn commit_stats(&self) -> Option<CommitStats> {
        VectorDb::commit_stats(self)
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { VectorDb::flush(self).await.map_err(boxed) })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { VectorDb::close(self).await.map_err(boxed) })
    }
}
