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
//! - [`server`]: Prometheus remote write 1.0/2.0 and the Prometheus HTTP API's
//!   series, labels, label values, metadata and buildinfo endpoints.
//! - [`workload`]: a node-exporter-like workload generator for benchmarks.
//!
//! Layouts and algorithms are in `docs/timeseries.md`.
//!
//! ```
//! use opendata_timeseries::ingest::remote_write::{decode, RemoteWriteVersion};
//! use opendata_timeseries::server::proto::v1;
//! use prost::Message;
//!
//! let request = v1::WriteRequest {
//!     timeseries: vec![v1::TimeSeries {
//!         labels: vec![v1::Label { name: "__name__".into(), value: "up".into() }],
//!         samples: vec![v1::Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
//!         ..Default::default()
//!     }],
//!     ..Default::default()
//! };
//! let body = snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).unwrap();
//! let batch = decode(&body, RemoteWriteVersion::V1, 1 << 20).unwrap();
//! assert_eq!(batch.series[0].labels.metric_name(), Some("up"));
//! assert_eq!(batch.series[0].samples[0].value, 1.0);
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use opendata_common::StorageConfig;
//! use opendata_timeseries::model::Matcher;
//! use opendata_timeseries::storage::Config;
//! use opendata_timeseries::{TimeSeriesConfig, TimeSeriesDb};
//!
//! let db = TimeSeriesDb::open(Config {
//!     storage: StorageConfig::in_memory(),
//!     timeseries: TimeSeriesConfig { retention_secs: 0, ..Default::default() },
//! })
//! .await
//! .unwrap();
//! db.write(batch).await.unwrap();
//! let series = db
//!     .querier()
//!     .select(&[Matcher::equal("__name__", "up")], 0, i64::MAX / 4)
//!     .await
//!     .unwrap()
//!     .collect()
//!     .await
//!     .unwrap();
//! assert_eq!(series[0].samples.len(), 1);
//! db.close().await.unwrap();
//! # });
//! ```

pub mod config;
pub mod error;
pub mod ingest;
pub mod model;
pub mod promql;
pub mod serde;
pub mod server;
pub mod storage;
pub mod workload;

pub use config::TimeSeriesConfig;
pub use error::{Error, Result};
pub use storage::{Querier, SeriesSet, TimeSeriesDb, TimeSeriesDbReader, WriteOutcome};
