//! # opendata-timeseries
//!
//! The Prometheus-compatible time series database of OpenData: remote write in, PromQL
//! and the Prometheus HTTP API out, on the shared storage foundation in
//! `opendata-common`.
//!
//! - [`TimeSeriesDb`], the writer: remote-write batches in through group commit; an
//!   acknowledged write is durable in the object store and visible to queries at once.
//!   Time is cut into buckets (segments); open buckets live in memory (the head) and in
//!   write-ahead records, closed buckets in compressed chunks with a forward index, a
//!   series dictionary, an inverted index of roaring bitmaps and a label-name index.
//! - [`TimeSeriesDbReader`], a read-only replica following the writer.
//! - [`Querier`], the read interface the PromQL engine builds on: series by matchers
//!   over a time range with their samples in time order, label names and values,
//!   metadata.
//! - [`promql`]: the PromQL engine over a [`Querier`].
//!
//! The wire protocols (remote write, the Prometheus HTTP API) are adapters in the server's
//! API layer; this crate is the storage, the model and the engine.
//!
//! Layouts and algorithms are in `docs/timeseries.md`.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use opendata_common::StorageConfig;
//! use opendata_timeseries::model::{Labels, Matcher, Sample, SeriesSamples, WriteBatch};
//! use opendata_timeseries::storage::Config;
//! use opendata_timeseries::{TimeSeriesConfig, TimeSeriesDb};
//!
//! let db = TimeSeriesDb::open(Config {
//!     storage: StorageConfig::in_memory(),
//!     timeseries: TimeSeriesConfig { retention_secs: 0, ..Default::default() },
//! })
//! .await
//! .unwrap();
//! let now = opendata_timeseries::storage::now_ms();
//! db.write(WriteBatch {
//!     series: vec![SeriesSamples {
//!         histograms: Vec::new(),
//!         exemplars: Vec::new(),
//!         created_timestamp_ms: None,
//!         labels: Labels::from_pairs([("__name__", "up"), ("job", "api")]),
//!         samples: vec![Sample { timestamp_ms: now, value: 1.0 }],
//!     }],
//!     metadata: vec![],
//! })
//! .await
//! .unwrap();
//! let series = db
//!     .querier()
//!     .select(&[Matcher::equal("__name__", "up")], 0, i64::MAX / 4)
//!     .await
//!     .unwrap()
//!     .collect()
//!     .await
//!     .unwrap();
//! assert_eq!(series[0].samples.len(), 1);
//! assert_eq!(series[0].samples[0].value, 1.0);
//! db.close().await.unwrap();
//! # });
//! ```

pub mod config;
pub mod error;
pub mod histogram;
pub mod lifecycle;
pub mod model;
pub mod promql;
pub mod serde;
pub mod storage;

pub use config::TimeSeriesConfig;
pub use error::{Error, Result};
pub use lifecycle::{TimeSeriesHandle, TimeSeriesRead};
pub use storage::{Querier, SeriesSet, TimeSeriesDb, TimeSeriesDbReader, WriteOutcome};
