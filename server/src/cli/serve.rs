//! `opendata serve`: configuration from a TOML file, `OPENDATA_*` variables and flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use opendata_common::ObjectStoreConfig;

use crate::config::ServerConfig;
use crate::error::Result;

/// Options of `opendata serve`. Each flag can also be set with the environment variable
/// shown; flags win over variables, and both win over the `--config` file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/architecture.md for every setting).
    #[arg(long, env = "OPENDATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "OPENDATA_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Where data lives: memory://, file:///path (or a plain path), or s3://bucket/prefix
    /// [default: ./data].
    #[arg(long, env = "OPENDATA_OBJECT_STORE", value_name = "URL")]
    pub object_store: Option<String>,

    /// Endpoint of an S3-compatible store, e.g. http://127.0.0.1:9000 (with s3:// URLs).
    /// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    #[arg(long, env = "OPENDATA_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// Region of the S3 bucket [default: us-east-1].
    #[arg(long, env = "OPENDATA_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,

    /// Serve SQL over the PostgreSQL wire protocol on this address (e.g.
    /// 127.0.0.1:5432) [default: off].
    #[arg(long, env = "OPENDATA_SQL_LISTEN", value_name = "ADDR")]
    pub sql_listen: Option<SocketAddr>,

    /// Serve the Kafka protocol over the log database on this address (e.g.
    /// 127.0.0.1:9092) [default: off].
    #[arg(long, env = "OPENDATA_KAFKA_LISTEN", value_name = "ADDR")]
    pub kafka_listen: Option<SocketAddr>,

    /// Run a read-only replica that follows the writer through the object store.
    #[arg(long, env = "OPENDATA_READ_ONLY")]
    pub read_only: bool,

    /// Largest accepted request body in bytes [default: 67108864].
    #[arg(long, env = "OPENDATA_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,

    /// Background WAL flush interval in milliseconds [default: 100].
    #[arg(long, env = "OPENDATA_FLUSH_INTERVAL_MS", value_name = "MS")]
    pub flush_interval_ms: Option<u64>,

    /// Log database: seal segments after this many seconds [default: 3600].
    #[arg(long, env = "OPENDATA_LOG_SEAL_INTERVAL_SECS", value_name = "SECS")]
    pub log_seal_interval_secs: Option<u64>,

    /// Log database: seal segments after this many bytes [default: 1073741824].
    #[arg(long, env = "OPENDATA_LOG_SEAL_BYTES", value_name = "BYTES")]
    pub log_seal_bytes: Option<u64>,

    /// Log database: drop segments older than this many seconds (0 keeps forever).
    #[arg(long, env = "OPENDATA_LOG_RETENTION_SECS", value_name = "SECS")]
    pub log_retention_secs: Option<u64>,

    /// Log database: drop the oldest segments beyond this many bytes (0: no limit).
    #[arg(long, env = "OPENDATA_LOG_RETENTION_BYTES", value_name = "BYTES")]
    pub log_retention_bytes: Option<u64>,

    /// Tracing filter, e.g. `info` or `opendata=debug` [default: info].
    #[arg(long, env = "OPENDATA_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
}

impl ServeArgs {
    /// The configuration: defaults, then the file, then variables and flags.
    pub fn resolve(&self) -> Result<ServerConfig> {
        let mut config = match &self.config {
            Some(path) => ServerConfig::from_file(path)?,
            None => ServerConfig::default(),
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(url) = &self.object_store {
            config.storage.object_store =
                ObjectStoreConfig::from_url(url, self.s3_endpoint.clone(), self.s3_region.clone())?;
        } else if let ObjectStoreConfig::S3 {
            endpoint, region, ..
        } = &mut config.storage.object_store
        {
            if self.s3_endpoint.is_some() {
                *endpoint = self.s3_endpoint.clone();
            }
            if self.s3_region.is_some() {
                *region = self.s3_region.clone();
            }
        }
        if self.read_only {
            config.read_only = true;
        }
        if let Some(addr) = self.sql_listen {
            config.sql.listen = Some(addr);
        }
        if let Some(addr) = self.kafka_listen {
            config.kafka.listen = Some(addr);
        }
        if let Some(v) = self.max_body_bytes {
            config.max_body_bytes = v;
        }
        if let Some(v) = self.flush_interval_ms {
            config.storage.flush_interval_ms = v;
        }
        if let Some(v) = self.log_seal_interval_secs {
            config.log.seal_interval_secs = v;
        }
        if let Some(v) = self.log_seal_bytes {
            config.log.seal_bytes = v;
        }
        if let Some(v) = self.log_retention_secs {
            config.log.retention_secs = v;
        }
        if let Some(v) = self.log_retention_bytes {
            config.log.retention_bytes = v;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_let_flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nmax_body_bytes = 4096\n[log]\nseal_interval_secs = 5\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            object_store: Some("memory://".into()),
            max_body_bytes: Some(8192),
            ..Default::default()
        };
        let cfg = args.resolve().unwrap();
        assert_eq!(cfg.listen.port(), 9999);
        assert_eq!(cfg.max_body_bytes, 8192);
        assert_eq!(cfg.log.seal_interval_secs, 5);
        assert_eq!(cfg.storage.object_store, ObjectStoreConfig::Memory);
    }

    #[test]
    fn should_reject_bad_object_store_url() {
        let args = ServeArgs {
            object_store: Some("ftp://x".into()),
            ..Default::default()
        };
        assert!(
            args.resolve()
                .unwrap_err()
                .to_string()
                .contains("unsupported object store URL")
        );
    }
}
