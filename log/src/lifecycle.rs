//! The log database in the common lifecycle: how a server opens, checks, flushes and
//! closes it as writer ([`LogDb`]) or replica ([`LogDbReader`]), and reading from
//! either through [`LogRead`].

use futures::future::BoxFuture;
use opendata_common::StorageRoot;
use opendata_common::lifecycle::{BoxError, Database, OpenDatabase, Opened, Role, boxed};
use opendata_common::storage::CommitStats;
use tokio::sync::watch;

use crate::config::LogConfig;
use crate::storage::{DATABASE, LogDb, LogDbReader, LogRead, ReadCore};

/// The log database opened as writer or replica, as a server holds it.
pub type LogHandle = Opened<LogDb, LogDbReader>;

impl OpenDatabase for LogDb {
    const NAME: &'static str = DATABASE;
    type Config = LogConfig;
    type Error = crate::Error;
    type Writer = LogDb;
    type Replica = LogDbReader;

    async fn open_writer(root: &StorageRoot, config: LogConfig) -> crate::Result<LogDb> {
        LogDb::open_in(root, config).await
    }

    async fn open_replica(root: &StorageRoot, _config: LogConfig) -> crate::Result<LogDbReader> {
        LogDbReader::open_in(root).await
    }
}

impl Database for LogDb {
    fn name(&self) -> &'static str {
        DATABASE
    }

    fn role(&self) -> Role {
        Role::Writer
    }

    fn check(&self) -> Result<(), BoxError> {
        LogDb::check(self).map_err(boxed)
    }

    fn commit_stats(&self) -> Option<CommitStats> {
        Some(self.storage().committer().stats())
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { LogDb::flush(self).await.map_err(boxed) })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { LogDb::close(self).await.map_err(boxed) })
    }
}

impl Database for LogDbReader {
    fn name(&self) -> &'static str {
        DATABASE
    }

    fn role(&self) -> Role {
        Role::Replica
    }

    fn check(&self) -> Result<(), BoxError> {
        LogDbReader::check(self).map_err(boxed)
    }
}

impl LogRead for LogHandle {
    fn read_core(&self) -> &ReadCore {
        match self {
            Opened::Writer(w) => w.read_core(),
            Opened::Replica(r) => r.read_core(),
        }
    }

    fn changes(&self) -> watch::Receiver<u64> {
        match self {
            Opened::Writer(w) => w.changes(),
            Opened::Replica(r) => r.changes(),
        }
    }
}
