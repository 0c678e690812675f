//! # opendata-timeseries
//!
//! The Prometheus-compatible time series database of OpenData: remote write in, PromQL
//! and the Prometheus HTTP API out, on the shared storage foundation in
//! `opendata-common`.
//!
//! Built so far: the data model ([`model`]), decoding of Prometheus remote-write
//! requests, 1.0 (`prometheus.WriteRequest`) and 2.0 (`io.prometheus.write.v2.Request`),
//! with validation ([`ingest::remote_write`]), and the sample chunk codec
//! ([`serde::chunk`]: delta-of-delta timestamps, XOR or decimal-integer values, chosen per
//! chunk). Storage, the HTTP API and the PromQL engine come with their own issues.
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
//! ```

pub mod config;
pub mod error;
pub mod ingest;
pub mod model;
pub mod serde;
pub mod server;
pub mod storage;
pub mod workload;

pub use config::TimeSeriesConfig;
pub use error::{Error, Result};
pub use storage::{Querier, SeriesSet, TimeSeriesDb, TimeSeriesDbReader, WriteOutcome};
