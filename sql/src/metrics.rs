//! Counters of what SQL reads from the databases, so that push-down can be checked:
//! a query touching 1% of the data should read about 1% of the rows and bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
struct Inner {
    rows: AtomicU64,
    bytes: AtomicU64,
}

/// Rows and bytes read by table scans, since the engine started. Cloning shares them.
#[derive(Debug, Clone, Default)]
pub struct ScanCounters(Arc<Inner>);

impl ScanCounters {
    /// Counts `rows` read from storage, `bytes` in all (keys, values, samples).
    pub fn add_read(&self, rows: u64, bytes: usize) {
        self.0.rows.fetch_add(rows, Ordering::Relaxed);
        self.0.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Rows read so far.
    pub fn rows(&self) -> u64 {
        self.0.rows.load(Ordering::Relaxed)
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.0.bytes.load(Ordering::Relaxed)
    }
}
