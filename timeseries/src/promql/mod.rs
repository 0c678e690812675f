//! The PromQL engine: queries parsed by `promql-parser`, evaluated here over
//! [`Querier`](crate::Querier).
//!
//! An instant query is a range query with one step. Every expression evaluates to a
//! value over all steps at once: an instant vector is a set of series with at most one
//! point per step, a scalar is one number per step. Range vectors (selectors with a
//! range, and subqueries) are evaluated into per-series sample lists and windowed per
//! step by the function that consumes them. The samples every selector needs are
//! loaded up front, one `select` per selector over the union of the time ranges it
//! touches, and counted against the sample limit.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use opendata_common::StorageConfig;
//! use opendata_timeseries::model::{Labels, Sample, SeriesSamples, WriteBatch};
//! use opendata_timeseries::promql::{Engine, QueryOptions, Value};
//! use opendata_timeseries::storage::Config;
//! use opendata_timeseries::{TimeSeriesConfig, TimeSeriesDb};
//!
//! let config = TimeSeriesConfig { retention_secs: 0, ..Default::default() };
//! let engine = Engine::new(config.query.clone());
//! let db = TimeSeriesDb::open(Config { storage: StorageConfig::in_memory(), timeseries: config })
//!     .await
//!     .unwrap();
//! let now = opendata_timeseries::storage::now_ms();
//! let samples = (0..10).map(|i| Sample { timestamp: now - 90_000 + i * 10_000, value: (i * 10) as f64 });
//! db.write(WriteBatch {
//!     series: vec![SeriesSamples {
//!         labels: Labels::from_pairs([("__name__", "requests_total"), ("job", "api")]),
//!         samples: samples.collect(),
//!     }],
//!     metadata: vec![],
//! })
//! .await
//! .unwrap();
//! let result = engine
//!     .instant_query(&db.querier(), "sum by (job) (rate(requests_total[1m]))", now, &QueryOptions::default())
//!     .await
//!     .unwrap();
//! let Value::Vector(v) = result.value else { panic!() };
//! assert_eq!(v[0].labels, Labels::from_pairs([("job", "api")]));
//! assert!((v[0].f - 1.0).abs() < 1e-9);
//! # });
//! ```

mod value;

pub use value::{InstantSample, RangeSeries, Value};

use std::time::Duration;

use crate::config::QueryConfig;
use crate::storage::Querier;

/// Why a query failed, with Prometheus's error type.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query does not parse, or its parameters are invalid (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// Evaluation failed: e.g. many-to-many matching, too many samples or series
    /// (`execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The query ran longer than its timeout (`timeout`, HTTP 503).
    #[error("{0}")]
    Timeout(String),
    /// Reading from storage failed (`internal`, HTTP 500).
    #[error(transparent)]
    Storage(#[from] crate::Error),
}

impl QueryError {
    /// Prometheus's `errorType` for this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadData(_) => "bad_data",
            QueryError::Execution(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::Storage(_) => "internal",
        }
    }

    /// The HTTP status Prometheus answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            QueryError::BadData(_) => 400,
            QueryError::Execution(_) => 422,
            QueryError::Timeout(_) => 503,
            QueryError::Storage(_) => 500,
        }
    }
}

/// Per-query settings; unset fields take the engine's configured defaults.
#[derive(Debug, Clone, Default)]
pub struct QueryOptions {
    /// Shorter timeout than the configured one.
    pub timeout: Option<Duration>,
    /// Lookback delta for this query.
    pub lookback_delta_ms: Option<i64>,
}

/// A query's result with the warnings and infos evaluation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The value.
    pub value: Value,
    /// Warnings (e.g. a non-counter passed to `rate`), in Prometheus's words.
    pub warnings: Vec<String>,
    /// Infos, in Prometheus's words.
    pub infos: Vec<String>,
    /// Samples loaded from storage.
    pub samples_loaded: u64,
}

/// The PromQL engine. Cheap to clone; holds no data between queries.
#[derive(Debug, Clone)]
pub struct Engine {
    config: QueryConfig,
}

impl Engine {
    /// An engine with these limits and defaults.
    pub fn new(config: QueryConfig) -> Self {
        Self { config }
    }

    /// The engine's limits and defaults.
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// Evaluates `query` at `time_ms`. A range vector at the root returns a matrix.
    pub async fn instant_query(
        &self,
        querier: &Querier,
        query: &str,
        time_ms: i64,
        options: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        let _ = (querier, query, time_ms, options);
        Err(QueryError::Execution("not implemented yet".into()))
    }

    /// Evaluates `query` at every `step_ms` from `start_ms` through `end_ms`; the result
    /// is a matrix (or an error for a query that is not a scalar or instant vector).
    pub async fn range_query(
        &self,
        querier: &Querier,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        options: &QueryOptions,
    ) -> Result<QueryResult, QueryError> {
        let _ = (querier, query, start_ms, end_ms, step_ms, options);
        Err(QueryError::Execution("not implemented yet".into()))
    }
}
