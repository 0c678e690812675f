//! The time series database in the common lifecycle: how a server opens, checks,
//! flushes and closes it as writer ([`TimeSeriesDb`]) or replica
//! ([`TimeSeriesDbReader`]), and querying either through [`TimeSeriesRead`].

use futures::future::BoxFuture;
use opendata_common::StorageRoot;
use opendata_common::lifecycle::{BoxError, Database, OpenDatabase, Opened, Role, boxed};
use opendata_common::storage::CommitStats;

use crate::config::TimeSeriesConfig;
use crate::storage::{DATABASE, Querier, TimeSeriesDb, TimeSeriesDbReader};

/// The time series database opened as writer or replica, as a server holds it.
pub type TimeSeriesHandle = Opened<TimeSeriesDb, TimeSeriesDbReader>;

/// Reading a time series database: the writer, a replica, or either.
pub trait TimeSeriesRead {
    /// The read interface the query engine and the API use.
    fn querier(&self) -> Querier;
}

impl TimeSeriesRead for TimeSeriesDb {
    fn querier(&self) -> Querier {
        TimeSeriesDb::querier(self)
    }
}

impl TimeSeriesRead for TimeSeriesDbReader {
    fn querier(&self) -> Querier {
        TimeSeriesDbReader::querier(self)
    }
}

impl TimeSeriesRead for TimeSeriesHandle {
    fn querier(&self) -> Querier {
        match self {
            Opened::Writer(w) => w.querier(),
            Opened::Replica(r) => r.querier(),
        }
    }
}

impl OpenDatabase for TimeSeriesDb {
    const NAME: &'static str = DATABASE;
    type Config = TimeSeriesConfig;
    type Error = crate::Error;
    type Writer = TimeSeriesDb;
    type Replica = TimeSeriesDbReader;

    async fn open_writer(root: &StorageRoot, config: TimeSeriesConfig) -> crate::Result<Self> {
        TimeSeriesDb::open_in(root, config).await
    }

    async fn open_replica(
        root: &StorageRoot,
        config: TimeSeriesConfig,
    ) -> crate::Result<TimeSeriesDbReader> {
        TimeSeriesDbReader::open_in(root, config).await
    }
}

impl Database for TimeSeriesDb {
    fn name(&self) -> &'static str {
        DATABASE
    }

    fn role(&self) -> Role {
        Role::Writer
    }

    fn check(&self) -> Result<(), BoxError> {
        TimeSeriesDb::check(self).map_err(boxed)
    }

    fn commit_stats(&self) -> Option<CommitStats> {
        Some(self.storage().committer().stats())
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { self.storage().flush().await.map_err(boxed) })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async move { TimeSeriesDb::close(self).await.map_err(boxed) })
    }
}

impl Database for TimeSeriesDbReader {
    fn name(&self) -> &'static str {
        DATABASE
    }

    fn role(&self) -> Role {
        Role::Replica
    }

    fn check(&self) -> Result<(), BoxError> {
        TimeSeriesDbReader::check(self).map_err(boxed)
    }
}
