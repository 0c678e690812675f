//! The databases one server mounts.

use axum::Router;
use opendata_common::StorageRoot;
use opendata_log::server::LogService;
use opendata_log::{LogDb, LogDbReader};
use opendata_timeseries::promql::Engine;
use opendata_timeseries::server::TimeSeriesService;
use opendata_timeseries::{TimeSeriesDb, TimeSeriesDbReader};
use opendata_vector::VectorDb;

use crate::config::ServerConfig;
use crate::error::{Result, ServerError};

/// Every database the server serves.
pub struct Databases {
    /// The log database.
    pub log: LogService,
    /// The time series database.
    pub timeseries: TimeSeriesService,
    /// The PromQL engine, with the `[timeseries.query]` limits.
    pub query_engine: Engine,
    /// The vector database (the writer, or a replica when read-only).
    pub vector: VectorDb,
}

impl Databases {
    /// Opens every database: as writers, or as replicas when `read_only` is set.
    pub async fn open(root: &StorageRoot, config: &ServerConfig) -> Result<Self> {
        let log = if config.read_only {
            let reader = LogDbReader::open_in(root).await.map_err(|e| {
                ServerError::Config(format!(
                    "cannot open a read-only replica of the log database at '{}': {e}. \
                     A replica follows an existing database: start the writer on the same \
                     object store first",
                    root.path_for(opendata_log::storage::DATABASE)
                ))
            })?;
            LogService::Replica(reader)
        } else {
            LogService::Writer(LogDb::open_in(root, config.log.clone()).await?)
        };
        let timeseries = if config.read_only {
            let reader = TimeSeriesDbReader::open_in(root, config.timeseries.clone())
                .await
                .map_err(|e| {
                    ServerError::Config(format!(
                        "cannot open a read-only replica of the time series database at '{}': {e}. \
                         A replica follows an existing database: start the writer on the same \
                         object store first",
                        root.path_for(opendata_timeseries::storage::DATABASE)
                    ))
                })?;
            TimeSeriesService::Replica(reader)
        } else {
            TimeSeriesService::Writer(TimeSeriesDb::open_in(root, config.timeseries.clone()).await?)
        };
        let query_engine = Engine::new(config.timeseries.query.clone());
        let vector = if config.read_only {
            VectorDb::open_replica(root, config.vector.clone())
                .await
                .map_err(|e| {
                    ServerError::Config(format!(
                        "cannot open a read-only replica of the vector database: {e}. \
                         A replica follows an existing database: start the writer on the same \
                         object store first"
                    ))
                })?
        } else {
            VectorDb::open(root, config.vector.clone()).await?
        };
        Ok(Self {
            log,
            timeseries,
            query_engine,
            vector,
        })
    }

    /// Every database's routes.
    pub fn routes(&self) -> Router {
        Router::new()
            .merge(opendata_log::server::router(self.log.clone()))
            .merge(opendata_timeseries::server::router_with_engine(
                self.timeseries.clone(),
                self.query_engine.clone(),
            ))
            .merge(opendata_vector::server::router(self.vector.clone()))
    }

    /// Names and health of each database.
    pub fn check(&self) -> Vec<(&'static str, std::result::Result<(), String>)> {
        vec![
            ("log", self.log.check().map_err(|e| e.to_string())),
            (
                "timeseries",
                self.timeseries.check().map_err(|e| e.to_string()),
            ),
        ]
    }

    /// Group-commit counters of each writer, for `/metrics`.
    pub fn commit_stats(&self) -> Vec<(&'static str, opendata_common::storage::CommitStats)> {
        let mut out = Vec::new();
        if let LogService::Writer(db) = &self.log {
            out.push(("log", db.storage().committer().stats()));
        }
        if let TimeSeriesService::Writer(db) = &self.timeseries {
            out.push(("timeseries", db.storage().committer().stats()));
        }
        out
    }

    /// Flushes and closes every database.
    pub async fn close(&self) -> Result<()> {
        self.log.close().await?;
        self.timeseries.close().await?;
        self.vector.close().await?;
        Ok(())
    }
}
