//! Configuration of the log database.

use opendata_common::StorageConfig;
use serde::{Deserialize, Serialize};

/// Settings of the log database (the `[log]` section of the server's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Seal the current segment once it is this many seconds old (0: never by time).
    pub seal_interval_secs: u64,
    /// Seal the current segment once this many bytes were appended to it since it was
    /// opened or since the database was opened (0: never by size).
    pub seal_bytes: u64,
    /// Drop whole segments whose newest possible entry is older than this (0: keep forever).
    pub retention_secs: u64,
    /// Drop the oldest sealed segments while the log holds more than this many bytes
    /// (0: no size limit).
    pub retention_bytes: u64,
    /// How often retention runs, in seconds.
    pub retention_check_secs: u64,
    /// Largest accepted key, in bytes.
    pub max_key_bytes: usize,
    /// Largest accepted value, in bytes.
    pub max_value_bytes: usize,
    /// Largest number of records in one append.
    pub max_records_per_append: usize,
    /// How many sequences are reserved per durable block record.
    pub sequence_block: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            seal_interval_secs: 3600,
            seal_bytes: 1024 * 1024 * 1024,
            retention_secs: 0,
            retention_bytes: 0,
            retention_check_secs: 60,
            max_key_bytes: 4096,
            max_value_bytes: 16 * 1024 * 1024,
            max_records_per_append: 100_000,
            sequence_block: 1 << 20,
        }
    }
}

impl LogConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_key_bytes == 0 {
            return Err("max_key_bytes must be at least 1".into());
        }
        if self.max_key_bytes > 1 << 20 {
            return Err("max_key_bytes must be at most 1 MiB".into());
        }
        if self.max_value_bytes == 0 {
            return Err("max_value_bytes must be at least 1".into());
        }
        if self.max_records_per_append == 0 {
            return Err("max_records_per_append must be at least 1".into());
        }
        if self.sequence_block == 0 {
            return Err("sequence_block must be at least 1".into());
        }
        if self.retention_check_secs == 0 {
            return Err("retention_check_secs must be at least 1".into());
        }
        Ok(())
    }
}

/// Everything [`crate::LogDb::open`] needs: where to store data and how the log behaves.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// The object store and SlateDB tuning. Defaults to the local directory `./data`.
    pub storage: StorageConfig,
    /// The log's own settings.
    pub log: LogConfig,
}

/// Everything [`crate::LogDbReader::open`] needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReaderConfig {
    /// The object store the writer uses. Defaults to the local directory `./data`.
    pub storage: StorageConfig,
}
