//! Tail following: wait for new entries without polling storage.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::read::LogRead;
use crate::error::Result;
use crate::model::LogEntry;

/// Follows one key's log from a sequence on, waiting for new entries.
///
/// The writer wakes followers in-process as soon as an append is acknowledged; a
/// replica wakes them after each refresh from the object store. Storage is read only
/// after a wake-up, never in a polling loop.
pub struct LogFollower<R: LogRead> {
    reader: R,
    key: Bytes,
    next: u64,
    changes: watch::Receiver<u64>,
}

impl<R: LogRead> LogFollower<R> {
    /// Follows `key` starting at sequence `from`.
    pub fn new(reader: R, key: impl Into<Bytes>, from: u64) -> Self {
        let changes = reader.changes();
        Self {
            reader,
            key: key.into(),
            next: from,
            changes,
        }
    }

    /// The sequence the next entry will have at least.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Up to `limit` entries from the current position; waits up to `timeout` for the
    /// first one. Returns an empty list on timeout.
    pub async fn next_batch(&mut self, limit: usize, timeout: Duration) -> Result<Vec<LogEntry>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Mark the current version seen before reading, so an append that lands
            // during the read still wakes the wait below.
            self.changes.borrow_and_update();
            let entries = self
                .reader
                .scan(self.key.clone(), self.next..)
                .await?
                .collect(limit)
                .await?;
            if let Some(last) = entries.last() {
                self.next = last.sequence + 1;
                return Ok(entries);
            }
            match tokio::time::timeout_at(deadline, self.changes.changed()).await {
                Ok(Ok(())) => continue,
                // Timed out, or the database is gone.
                Ok(Err(_)) | Err(_) => return Ok(Vec::new()),
            }
        }
    }
}
