//! Server configuration: a TOML file, overridden by `OPENDATA_*` environment variables,
//! overridden by command-line flags.
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! read_only = false
//! max_body_bytes = 67108864
//!
//! [storage]
//! flush_interval_ms = 100
//! [storage.object_store]
//! type = "local"          # or "memory", or "s3" with bucket/prefix/endpoint/region
//! path = "./data"
//!
//! [log]                   # settings of the log database
//!
//! [timeseries]            # settings of the time series database
//! bucket_secs = 7200      # fixed when the database is created
//! out_of_order_secs = 3600
//! retention_secs = 1296000
//!
//! [vector]                # settings of the vector database (opendata_vector::VectorConfig)
//! default_nprobe = 16
//! quantize = true
//!
//! [sql]                   # SQL over the PostgreSQL wire protocol; off without listen
//! listen = "127.0.0.1:5432"
//! statement_timeout_secs = 300
//!
//! [kafka]                 # the Kafka protocol over the log database; off without listen
//! listen = "127.0.0.1:9092"
//! default_partitions = 1
//! ```

use std::net::SocketAddr;
use std::path::Path;

use opendata_common::StorageConfig;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ServerError};

/// Everything `opendata serve` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Serve reads only, following the writer through the object store.
    pub read_only: bool,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds to wait for in-flight requests at shutdown before closing anyway.
    pub shutdown_timeout_secs: u64,
    /// The object store and SlateDB tuning shared by every database.
    pub storage: StorageConfig,
    /// The log database.
    pub log: opendata_log::LogConfig,
    /// The time series database.
    pub timeseries: opendata_timeseries::TimeSeriesConfig,
    /// The vector database.
    pub vector: opendata_vector::VectorConfig,
    /// The work pools CPU-heavy requests run on (`[pools.query]`, `[pools.ingest]`,
    /// `[pools.vector]`, `[pools.log]`, `[pools.sql]`).
    pub pools: crate::server::pool::PoolsConfig,
    /// Connections and requests (`[http]`).
    pub http: HttpConfig,
    /// TLS on the listener (`[tls]`; plain HTTP without it).
    pub tls: Option<TlsConfig>,
    /// Bearer tokens and their scopes (`[[auth.tokens]]`; no authentication without any).
    pub auth: AuthConfig,
    /// Process-wide limits (`[limits]`).
    pub limits: LimitsConfig,
    /// SQL over the PostgreSQL wire protocol (`[sql]`; off unless `sql.listen` is set).
    pub sql: crate::api::sql::SqlServerConfig,
    /// The Kafka protocol over the log database (`[kafka]`; off unless `kafka.listen`
    /// is set).
    pub kafka: crate::api::kafka::KafkaServerConfig,
}

/// Process-wide limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Bytes that running requests may hold at once (PromQL samples and points, decoded
    /// remote-write bodies); work that would pass it is refused with 503 (or 422 when a
    /// single query alone needs more than the whole budget). Unset: half of the
    /// machine's or the cgroup's memory, whichever is smaller. 0: no budget.
    pub memory_budget_bytes: Option<u64>,
}

/// Limits on connections and requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// A connection that sends and receives nothing for this long is closed, in seconds
    /// (above the longest long-poll, 300 s).
    pub idle_timeout_secs: u64,
    /// Longest a request may take to be answered, in seconds; a request past it gets 503.
    /// Long-polls and event streams are bounded by their own limits instead.
    pub request_timeout_secs: u64,
    /// Longest a TLS handshake may take, in seconds.
    pub tls_handshake_timeout_secs: u64,
    /// Largest request body on the query routes (PromQL, series and labels), in bytes;
    /// the other routes take up to `max_body_bytes`.
    pub max_query_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            idle_timeout_secs: 360,
            request_timeout_secs: 180,
            tls_handshake_timeout_secs: 10,
            max_query_body_bytes: 1024 * 1024,
        }
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (leaf first).
    pub cert_file: std::path::PathBuf,
    /// The private key (PKCS #8, PKCS #1 or SEC1).
    pub key_file: std::path::PathBuf,
}

/// Access control.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// The tokens; with none, every request is allowed (and the server should then only
    /// listen on loopback).
    pub tokens: Vec<TokenConfig>,
}

/// One bearer token and what it may do.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for logs (the token itself is never logged).
    pub name: String,
    /// The secret sent as `Authorization: Bearer <token>`.
    pub token: String,
    /// What it may do: `<database>:<read|write|admin>` with database `log`,
    /// `timeseries`, `vector` or `*`; `write` includes `read`, `admin` includes both.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            read_only: false,
            max_body_bytes: 64 * 1024 * 1024,
            shutdown_timeout_secs: 30,
            storage: StorageConfig::default(),
            log: opendata_log::LogConfig::default(),
            timeseries: opendata_timeseries::TimeSeriesConfig::default(),
            vector: opendata_vector::VectorConfig::default(),
            pools: crate::server::pool::PoolsConfig::default(),
            http: HttpConfig::default(),
            tls: None,
            auth: AuthConfig::default(),
            limits: LimitsConfig::default(),
            sql: crate::api::sql::SqlServerConfig::default(),
            kafka: crate::api::kafka::KafkaServerConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Reads a TOML configuration file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ServerError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML configuration text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| ServerError::Config(e.to_string()))
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.max_body_bytes < 1024 {
            return Err(ServerError::Config(
                "max_body_bytes must be at least 1024".into(),
            ));
        }
        self.log
            .validate()
            .map_err(|e| ServerError::Config(format!("[log] {e}")))?;
        self.timeseries
            .validate()
            .map_err(|e| ServerError::Config(format!("[timeseries] {e}")))?;
        self.pools.validate().map_err(ServerError::Config)?;
        if self.http.max_connections == 0 {
            return Err(ServerError::Config(
                "http.max_connections must be at least 1".into(),
            ));
        }
        crate::server::auth::Tokens::new(&self.auth).map_err(ServerError::Config)?;
        self.sql.validate().map_err(ServerError::Config)?;
        self.kafka.validate().map_err(ServerError::Config)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opendata_common::ObjectStoreConfig;

    #[test]
    fn should_parse_partial_toml_with_defaults() {
        let cfg = ServerConfig::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            [storage.object_store]
            type = "s3"
            bucket = "b"
            endpoint = "http://127.0.0.1:5000"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert!(matches!(
            cfg.storage.object_store,
            ObjectStoreConfig::S3 { .. }
        ));
        assert_eq!(cfg.max_body_bytes, ServerConfig::default().max_body_bytes);
    }

    #[test]
    fn should_parse_the_vector_section() {
        let cfg = ServerConfig::from_toml(
            "[vector]\ndefault_nprobe = 32\nquantize = false\ntarget_posting_size = 128\n",
        )
        .unwrap();
        assert_eq!(cfg.vector.default_nprobe, 32);
        assert!(!cfg.vector.quantize);
        assert_eq!(cfg.vector.target_posting_size, 128);
        assert_eq!(
            cfg.vector.max_replicas,
            opendata_vector::VectorConfig::default().max_replicas
        );
        let err = ServerConfig::from_toml("[vector]\ndefault_nprobes = 3\n").unwrap_err();
        assert!(err.to_string().contains("default_nprobes"), "{err}");
    }

    #[test]
    fn should_reject_unknown_fields() {
        let err = ServerConfig::from_toml("listne = \"x\"").unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
    }
}
