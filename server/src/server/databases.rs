//! The databases one server mounts, opened and managed through the common lifecycle.

use std::sync::Arc;

use opendata_common::StorageRoot;
use opendata_common::lifecycle::{self, Database, OpenDatabase, Opened, Role};
use opendata_common::storage::CommitStats;
use opendata_log::LogDb;
use opendata_timeseries::TimeSeriesDb;
use opendata_timeseries::promql::Engine;
use opendata_vector::VectorDb;

use crate::api::{Apis, Pools};
use crate::config::ServerConfig;
use crate::error::{Result, ServerError};

/// Every database the server serves: typed handles for the API layer, and the same
/// databases as a list for readiness, metrics and shutdown.
pub struct Databases {
    apis: Apis,
    all: Vec<Arc<dyn Database>>,
}

/// Opens database `D` in `role` and adds it to `all`.
async fn mount<D: OpenDatabase>(
    root: &StorageRoot,
    config: D::Config,
    role: Role,
    all: &mut Vec<Arc<dyn Database>>,
) -> Result<Opened<D::Writer, D::Replica>>
where
    Opened<D::Writer, D::Replica>: Clone,
{
    let db = lifecycle::open::<D>(root, config, role).await?;
    all.push(Arc::new(db.clone()));
    Ok(db)
}

impl Databases {
    /// Opens every database: as writers, or as replicas when `read_only` is set.
    pub async fn open(root: &StorageRoot, config: &ServerConfig) -> Result<Self> {
        let role = if config.read_only {
            Role::Replica
        } else {
            Role::Writer
        };
        let budget = crate::server::memory::budget(&config.limits);
        let mut all = Vec::new();
        let log = mount::<LogDb>(root, config.log.clone(), role, &mut all).await?;
        let timeseries =
            mount::<TimeSeriesDb>(root, config.timeseries.clone(), role, &mut all).await?;
        let vector = mount::<VectorDb>(root, config.vector.clone(), role, &mut all).await?;
        Ok(Self {
            apis: Apis {
                log,
                timeseries,
                query_engine: Engine::new(config.timeseries.query.clone())
                    .with_features(config.timeseries.promql_features())
                    .with_budget(budget.clone()),
                vector,
                pools: Pools::start(&config.pools)?,
                max_query_body_bytes: config.http.max_query_body_bytes,
                budget,
            },
            all,
        })
    }

    /// The API layer's view of the databases.
    pub fn apis(&self) -> &Apis {
        &self.apis
    }

    /// Every database, in the order they were opened.
    pub fn all(&self) -> &[Arc<dyn Database>] {
        &self.all
    }

    /// Names and health of each database.
    pub fn check(&self) -> Vec<(&'static str, std::result::Result<(), String>)> {
        self.all
            .iter()
            .map(|db| (db.name(), db.check().map_err(|e| e.to_string())))
            .collect()
    }

    /// Group-commit counters of each writer, for `/metrics`.
    pub fn commit_stats(&self) -> Vec<(&'static str, CommitStats)> {
        self.all
            .iter()
            .filter_map(|db| db.commit_stats().map(|s| (db.name(), s)))
            .collect()
    }

    /// Flushes and closes every database (all of them, even after a failure; the first
    /// failure is returned).
    pub async fn close(&self) -> Result<()> {
        let mut first = None;
        for db in &self.all {
            if let Err(e) = db.close().await {
                tracing::error!(database = db.name(), error = %e, "closing failed");
                first.get_or_insert(ServerError::Database {
                    database: db.name(),
                    message: e.to_string(),
                });
            }
        }
        first.map_or(Ok(()), Err)
    }
}
