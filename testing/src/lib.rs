//! # opendata-testing
//!
//! What OpenData's tests and benchmarks share, kept out of the production crates
//! (`publish = false`):
//!
//! - [`workload`]: a deterministic, node-exporter-like time series workload;
//! - [`dataset`]: clustered vector data sets with exact nearest neighbours;
//! - [`fuzz`]: byte mutations for the fuzz tests;
//! - [`s3`]: the S3 emulator the test command starts, as a storage configuration;
//! - [`process`]: the real `opendata` binary started, stopped and killed in tests;
//! - [`client`]: one HTTP client for tests, answering status and JSON;
//! - [`browser`]: headless Chromium over WebDriver, for the console's tests.
//!
//! ```
//! use opendata_testing::workload::{Workload, WorkloadConfig};
//!
//! let w = Workload::new(WorkloadConfig { series: 1_000, ..Default::default() });
//! assert_eq!(w.series_count(), 1_000);
//! assert_eq!(w.labels(0).get("job"), Some("node"));
//! ```

// Test support: a failed expectation here is a failed test.
#![allow(clippy::unwrap_used)]

pub mod browser;
pub mod client;
pub mod dataset;
pub mod fuzz;
pub mod process;
pub mod s3;
pub mod workload;

pub use client::{TestClient, metric_value};
pub use process::ServerProcess;
pub use s3::s3_config;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
