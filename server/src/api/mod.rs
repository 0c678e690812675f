//! The API layer: every protocol adapter of every database, over the engines' Rust APIs.
//!
//! | module | what |
//! |---|---|
//! | [`error`] | [`ApiError`]: the one mapping from every engine's errors to HTTP statuses and the JSON error shape |
//! | [`negotiate`] | the one content negotiation (JSON, protobuf, protobuf-JSON) and the two answer styles |
//! | [`log`] | `/api/v1/log/...` |
//! | [`timeseries`] | Prometheus remote write and the Prometheus HTTP API (`/api/v1/write`, `/api/v1/query`, ...) |
//! | [`vector`] | `/api/v1/vector/collections/...` |
//! | [`sql`] | SQL over the PostgreSQL wire protocol, on its own listener (`[sql] listen`) |
//!
//! [`Apis::routes`] is every database's routes, as the server mounts them. A new
//! protocol is a module here (its wire types, its routes or listener), mapping its
//! errors through [`ApiError`].

pub mod error;
pub mod kafka;
pub mod log;
pub mod negotiate;
pub mod sql;
pub mod timeseries;
pub mod vector;

use axum::Router;
use opendata_log::LogHandle;
use opendata_timeseries::TimeSeriesHandle;
use opendata_timeseries::promql::Engine;
use opendata_vector::VectorHandle;

pub use self::error::{ApiError, ApiResult};
pub use self::negotiate::{Body, Decode, Encode, Format, Negotiated};
pub use crate::server::pool::Pools;

/// What the routes of every database need: the opened databases, the PromQL engine and
/// the work pools CPU-heavy requests run on.
#[derive(Clone)]
pub struct Apis {
    /// The log database.
    pub log: LogHandle,
    /// The time series database.
    pub timeseries: TimeSeriesHandle,
    /// The PromQL engine with the `[timeseries.query]` limits.
    pub query_engine: Engine,
    /// The vector database.
    pub vector: VectorHandle,
    /// The work pools.
    pub pools: Pools,
    /// Largest body of a query route (`http.max_query_body_bytes`).
    pub max_query_body_bytes: usize,
    /// What running requests may hold (`limits.memory_budget_bytes`).
    pub budget: opendata_common::budget::MemoryBudget,
}

impl Apis {
    /// Every database's routes.
    pub fn routes(&self) -> Router {
        Router::new()
            .merge(log::router(self.log.clone(), self.pools.log.clone()))
            .merge(timeseries::router(
                self.timeseries.clone(),
                self.query_engine.clone(),
                self.pools.query.clone(),
                self.pools.ingest.clone(),
                self.max_query_body_bytes,
                self.budget.clone(),
            ))
            .merge(vector::router(
                self.vector.handle().clone(),
                self.pools.vector.clone(),
            ))
    }
}
