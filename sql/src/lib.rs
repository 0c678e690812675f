//! # opendata-sql
//!
//! SQL over the log, time series and vector databases, with no copy and no ETL: Apache
//! DataFusion plans and runs the statements over table providers of our own that read
//! the databases' storage directly, so a write is visible to SQL the moment it is
//! acknowledged, on the writer and on read-only replicas alike.
//!
//! | table | columns | pushed down |
//! |---|---|---|
//! | `log.entries` | `key`, `sequence`, `timestamp`, `value` | key `=`/`IN`/prefix `LIKE`, sequence and time ranges (segments skipped), `LIMIT` |
//! | `log.keys` | `key`, `last_sequence` | key `=`/`IN`/prefix |
//! | `timeseries.samples` | `metric`, `labels` (map), `timestamp`, `value` | `metric`, `labels['name']` comparisons, time range |
//! | `timeseries.series` | `metric`, `labels` | `metric`, `labels['name']` |
//! | `vector.<collection>` | `id`, one column per attribute, `vector` | attribute comparisons (on the bitmap indexes), `id` |
//! | `promql(query, start, end, step)` | as `timeseries.samples` | (the PromQL engine) |
//! | `vector_search(collection, query_vector, k [, filter])` | `id`, `score`, attributes, `vector` | (the vector index) |
//!
//! `INSERT INTO log.entries (key, value)` appends durably. The PostgreSQL wire protocol
//! that serves this engine lives in the server (`opendata-server`'s `api::sql`).
//!
//! ## Example
//!
//! ```rust,standalone_crate
//! use opendata_common::{StorageRoot, config::StorageConfig};
//! use opendata_common::budget::MemoryBudget;
//! use opendata_common::lifecycle::Opened;
//! use opendata_sql::{SqlConfig, SqlEngine, Sources};
//!
//! # #[tokio::main(flavor = "multi_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = StorageRoot::new(StorageConfig::in_memory())?;
//! let log = opendata_log::LogDb::open_in(&root, Default::default()).await?;
//! log.append(vec![opendata_log::Record { key: "orders".into(), value: "o-1".into() }]).await?;
//! let ts = opendata_timeseries::TimeSeriesDb::open_in(&root, Default::default()).await?;
//! let vector = opendata_vector::VectorDb::open(&root, Default::default()).await?;
//! let engine = SqlEngine::new(
//!     Sources {
//!         log: Opened::Writer(log),
//!         timeseries: Opened::Writer(ts),
//!         promql: opendata_timeseries::promql::Engine::new(Default::default()),
//!         vector: Opened::Writer(vector),
//!     },
//!     SqlConfig::default(),
//!     MemoryBudget::default(),
//! )?;
//! let batches = engine
//!     .query("SELECT key, count(*) AS n FROM log.entries GROUP BY key")
//!     .await?;
//! assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
//! # Ok(())
//! # }
//! ```

pub mod engine;
pub mod error;
mod filters;
pub mod log;
pub mod metrics;
mod scan;
pub mod timeseries;
pub mod vector;

pub use datafusion;
pub use engine::{Access, CATALOG, MAX_OPERATORS, Sources, SqlConfig, SqlEngine, accesses};
pub use error::{Error, Result, TableError};
pub use metrics::ScanCounters;
