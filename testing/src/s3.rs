//! Helpers for tests that need a real S3-compatible store.
//!
//! The project's test command (`scripts/test.sh`) starts an S3 emulator on loopback and
//! exports `OPENDATA_TEST_S3_ENDPOINT` and `OPENDATA_TEST_S3_BUCKET` (plus AWS
//! credentials the emulator accepts). Tests ask [`s3_config`] for a configuration:
//! without the variables, a test outside CI is skipped with a notice, and under CI
//! (`CI` set) it fails, so a missing emulator can never pass silently.

use opendata_common::config::{ObjectStoreConfig, StorageConfig};

/// The S3 emulator configuration from the environment, under a fresh prefix named
/// `test`, or `None` (outside CI) when no emulator was set up.
///
/// # Panics
/// Under CI (`CI` is set and not `false`) when the emulator variables are missing.
pub fn s3_config(test: &str) -> Option<StorageConfig> {
    let endpoint = std::env::var("OPENDATA_TEST_S3_ENDPOINT").ok();
    let bucket = std::env::var("OPENDATA_TEST_S3_BUCKET").ok();
    match (endpoint, bucket) {
        (Some(endpoint), Some(bucket)) => {
            let unique = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            Some(StorageConfig {
                object_store: ObjectStoreConfig::S3 {
                    bucket,
                    prefix: format!("{test}-{unique}-{}", std::process::id()),
                    endpoint: Some(endpoint),
                    region: Some("us-east-1".into()),
                },
                ..StorageConfig::default()
            })
        }
        _ => {
            let in_ci = std::env::var("CI")
                .map(|v| !v.is_empty() && v != "false")
                .unwrap_or(false);
            if in_ci {
                panic!(
                    "test '{test}' needs the S3 emulator: OPENDATA_TEST_S3_ENDPOINT and \
                     OPENDATA_TEST_S3_BUCKET are not set (run scripts/test.sh)"
                );
            }
            eprintln!("skipping S3 part of '{test}': no emulator configured (run scripts/test.sh)");
            None
        }
    }
}
