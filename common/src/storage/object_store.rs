//! Building the object store client from the configuration.

use std::sync::Arc;
use std::time::Duration;

use slatedb::object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use slatedb::object_store::local::LocalFileSystem;
use slatedb::object_store::memory::InMemory;
use slatedb::object_store::path::Path;
use slatedb::object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::config::{ObjectStoreConfig, StorageConfig};
use crate::error::{Error, Result};

/// Builds the object store client and the root path databases live under.
///
/// S3 credentials are read from the standard AWS environment variables; conditional
/// put (ETag match) is enabled so that SlateDB's writer fencing works.
pub fn build_object_store(storage: &StorageConfig) -> Result<(Arc<dyn ObjectStore>, Path)> {
    match &storage.object_store {
        ObjectStoreConfig::Memory => Ok((Arc::new(InMemory::new()), Path::default())),
        ObjectStoreConfig::Local { path } => {
            std::fs::create_dir_all(path).map_err(|e| {
                Error::Config(format!(
                    "cannot create data directory {}: {e}",
                    path.display()
                ))
            })?;
            let store = LocalFileSystem::new_with_prefix(path).map_err(|e| {
                Error::Config(format!(
                    "cannot open data directory {}: {e}",
                    path.display()
                ))
            })?;
            Ok((Arc::new(store), Path::default()))
        }
        ObjectStoreConfig::S3 {
            bucket,
            prefix,
            endpoint,
            region,
        } => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_region(region.as_deref().unwrap_or("us-east-1"))
                .with_conditional_put(S3ConditionalPut::ETagMatch)
                .with_client_options(
                    ClientOptions::new()
                        .with_timeout(Duration::from_millis(
                            storage.object_store_request_timeout_ms.max(1),
                        ))
                        .with_connect_timeout(Duration::from_millis(
                            storage.object_store_connect_timeout_ms.max(1),
                        )),
                )
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: storage.object_store_http_retries,
                    retry_timeout: Duration::from_millis(storage.object_store_retry_timeout_ms),
                });
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            let store = builder.build().map_err(|e| {
                Error::Config(format!("cannot configure S3 bucket '{bucket}': {e}"))
            })?;
            let root = Path::parse(prefix.trim_matches('/'))
                .map_err(|e| Error::Config(format!("invalid S3 prefix '{prefix}': {e}")))?;
            Ok((Arc::new(store), root))
        }
    }
}
