//! Storage configuration: which object store to use and how SlateDB is tuned.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Where durable state lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectStoreConfig {
    /// In process memory: fast, and gone when the process exits. For tests and demos.
    Memory,
    /// A local directory (the default, `./data`).
    Local {
        /// The root directory; each database lives in `<path>/<database>/`.
        path: PathBuf,
    },
    /// An S3-compatible object store. Credentials come from the standard
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`
    /// environment variables.
    S3 {
        /// The bucket.
        bucket: String,
        /// A key prefix inside the bucket; each database lives in `<prefix>/<database>/`.
        #[serde(default)]
        prefix: String,
        /// A custom endpoint (for S3-compatible stores and emulators), e.g.
        /// `http://127.0.0.1:9000`.
        #[serde(default)]
        endpoint: Option<String>,
        /// The region; `us-east-1` when not given.
        #[serde(default)]
        region: Option<String>,
    },
}

impl Default for ObjectStoreConfig {
    fn default() -> Self {
        ObjectStoreConfig::Local {
            path: PathBuf::from("./data"),
        }
    }
}

impl ObjectStoreConfig {
    /// Parses an object store URL: `memory://`, `file:///abs/path`, `file://relative/path`
    /// or a plain path, or `s3://bucket/prefix`. S3 endpoint and region are given apart.
    pub fn from_url(url: &str, endpoint: Option<String>, region: Option<String>) -> Result<Self> {
        let url = url.trim();
        if url == "memory://" || url == "memory" {
            return Ok(ObjectStoreConfig::Memory);
        }
        if let Some(rest) = url.strip_prefix("file://") {
            if rest.is_empty() {
                return Err(Error::Config("file:// URL needs a path".into()));
            }
            return Ok(ObjectStoreConfig::Local {
                path: PathBuf::from(rest),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = match rest.split_once('/') {
                Some((b, p)) => (b, p.trim_matches('/')),
                None => (rest, ""),
            };
            if bucket.is_empty() {
                return Err(Error::Config(format!("s3 URL '{url}' has no bucket")));
            }
            return Ok(ObjectStoreConfig::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                endpoint,
                region,
            });
        }
        if url.contains("://") {
            return Err(Error::Config(format!(
                "unsupported object store URL '{url}': use memory://, file://PATH or s3://BUCKET/PREFIX"
            )));
        }
        if url.is_empty() {
            return Err(Error::Config("object store URL is empty".into()));
        }
        Ok(ObjectStoreConfig::Local {
            path: PathBuf::from(url),
        })
    }
}

/// How SlateDB and the write path are tuned. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// The object store.
    pub object_store: ObjectStoreConfig,
    /// Background WAL flush interval in milliseconds. Durable writes do not wait for
    /// it: the group-commit path flushes as soon as a batch is written. It bounds how
    /// long a memory-durability write stays only in memory.
    pub flush_interval_ms: u64,
    /// How often read-only replicas poll for new data, in milliseconds.
    pub replica_poll_interval_ms: u64,
    /// Bytes of in-memory block cache per database.
    pub block_cache_bytes: u64,
    /// Unflushed bytes after which writers are slowed down.
    pub max_unflushed_bytes: u64,
    /// SST compression: `none`, `lz4` or `zstd`.
    pub compression: Compression,
    /// How often the compactor looks for work, in milliseconds. Prompt compaction keeps
    /// level 0 short, so writers are not stalled waiting for it.
    pub compactor_poll_interval_ms: u64,
    /// Compactions that may run at once.
    pub max_concurrent_compactions: usize,
    /// Level-0 SSTs allowed before memtable flushes wait for compaction.
    pub l0_max_ssts: usize,
    /// Size of a memtable flushed to one level-0 SST, in bytes.
    pub l0_sst_size_bytes: u64,
    /// Largest number of bytes the group-commit path puts in one SlateDB write.
    pub max_commit_bytes: u64,
    /// How many writes may wait for the group-commit path before new ones are rejected
    /// with a backpressure error.
    pub write_queue_depth: usize,
    /// Longest a write waits to be acknowledged, in milliseconds. SlateDB retries a
    /// failing object store without end, so a store that is down makes writes wait;
    /// past this they are answered "unavailable" (HTTP 503), and may still become
    /// durable when the store comes back.
    pub write_ack_timeout_ms: u64,
    /// How many times SlateDB retries a failing object-store call before giving up.
    /// Unset (the default): without end, so an outage of the store is ridden out and
    /// the server recovers by itself when it returns; clients are bounded by
    /// `write_ack_timeout_ms` and the query timeout instead. A number: a call that still
    /// fails after that many retries fails the write path (503 until a restart).
    pub object_store_max_retries: Option<u32>,
    /// Longest one HTTP request to an S3 store may take, in milliseconds, before the
    /// client retries it.
    pub object_store_request_timeout_ms: u64,
    /// Longest connecting to an S3 store may take, in milliseconds.
    pub object_store_connect_timeout_ms: u64,
    /// Retries of one failed HTTP request to an S3 store inside the client (below
    /// SlateDB's own retries), within `object_store_retry_timeout_ms`.
    pub object_store_http_retries: usize,
    /// Longest the S3 client retries one request, in milliseconds.
    pub object_store_retry_timeout_ms: u64,
    /// Faults to inject into the object store, for tests and chaos runs
    /// (`[storage.faults]`; none by default).
    pub faults: Option<crate::storage::faults::FaultConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            object_store: ObjectStoreConfig::default(),
            flush_interval_ms: 100,
            replica_poll_interval_ms: 250,
            block_cache_bytes: 256 * 1024 * 1024,
            max_unflushed_bytes: 256 * 1024 * 1024,
            compactor_poll_interval_ms: 100,
            max_concurrent_compactions: 4,
            l0_max_ssts: 16,
            l0_sst_size_bytes: 64 * 1024 * 1024,
            compression: Compression::Lz4,
            max_commit_bytes: 8 * 1024 * 1024,
            write_queue_depth: 16 * 1024,
            write_ack_timeout_ms: 30_000,
            object_store_max_retries: None,
            object_store_request_timeout_ms: 30_000,
            object_store_connect_timeout_ms: 5_000,
            object_store_http_retries: 10,
            object_store_retry_timeout_ms: 180_000,
            faults: None,
        }
    }
}

impl StorageConfig {
    /// A configuration for an in-memory store (for tests).
    pub fn in_memory() -> Self {
        Self {
            object_store: ObjectStoreConfig::Memory,
            ..Self::default()
        }
    }

    /// A configuration for a local directory.
    pub fn local(path: impl Into<PathBuf>) -> Self {
        Self {
            object_store: ObjectStoreConfig::Local { path: path.into() },
            ..Self::default()
        }
    }

    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms.max(1))
    }

    pub(crate) fn compactor_poll_interval(&self) -> Duration {
        Duration::from_millis(self.compactor_poll_interval_ms.max(10))
    }

    /// How often replicas poll the object store for new data (at least 10 ms).
    pub fn replica_poll_interval(&self) -> Duration {
        Duration::from_millis(self.replica_poll_interval_ms.max(10))
    }
}

/// SST compression codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4: fast, modest ratio.
    #[default]
    Lz4,
    /// Zstandard: slower, better ratio.
    Zstd,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_parse_object_store_urls() {
        assert_eq!(
            ObjectStoreConfig::from_url("memory://", None, None).unwrap(),
            ObjectStoreConfig::Memory
        );
        assert_eq!(
            ObjectStoreConfig::from_url("file:///var/lib/od", None, None).unwrap(),
            ObjectStoreConfig::Local {
                path: "/var/lib/od".into()
            }
        );
        assert_eq!(
            ObjectStoreConfig::from_url("./data", None, None).unwrap(),
            ObjectStoreConfig::Local {
                path: "./data".into()
            }
        );
        assert_eq!(
            ObjectStoreConfig::from_url("s3://b/p/q/", Some("http://h:1".into()), None).unwrap(),
            ObjectStoreConfig::S3 {
                bucket: "b".into(),
                prefix: "p/q".into(),
                endpoint: Some("http://h:1".into()),
                region: None
            }
        );
        assert!(ObjectStoreConfig::from_url("s3:///x", None, None).is_err());
        assert!(ObjectStoreConfig::from_url("gs://x", None, None).is_err());
        assert!(ObjectStoreConfig::from_url("", None, None).is_err());
    }

    #[test]
    fn should_deserialize_partial_toml_like_config() {
        let cfg: StorageConfig = serde_json::from_str(
            r#"{"object_store":{"type":"s3","bucket":"b"},"flush_interval_ms":5}"#,
        )
        .unwrap();
        assert_eq!(cfg.flush_interval_ms, 5);
        assert_eq!(
            cfg.block_cache_bytes,
            StorageConfig::default().block_cache_bytes
        );
        assert!(serde_json::from_str::<StorageConfig>(r#"{"bogus":1}"#).is_err());
    }
}
