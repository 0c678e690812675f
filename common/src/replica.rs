//! The replica follower: one background task per read-only replica that brings the
//! replica's in-memory state up to date with what its writer made durable.
//!
//! SlateDB's reader refreshes its own view of the object store (its manifest poll
//! interval is the replica poll interval). On top of that, each database keeps state of
//! its own in memory (the time series head, the vector centroids and live set), which
//! the follower refreshes with the database's `refresh` function every poll interval.
//! After each round it bumps a change counter, so readers waiting for new data (log
//! tails) re-read then instead of polling storage themselves.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//! use opendata_common::replica::ReplicaFollower;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let state = Arc::new(AtomicU64::new(0));
//! let follower = ReplicaFollower::start("demo", Duration::from_millis(10), &state, |s| async move {
//!     s.fetch_add(1, Ordering::Relaxed);
//!     Ok::<(), std::io::Error>(())
//! });
//! let mut changes = follower.changes();
//! changes.changed().await.unwrap();
//! assert!(state.load(Ordering::Relaxed) >= 1);
//! assert!(follower.check().is_ok());
//! # });
//! ```

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::task::{TaskHealth, spawn_supervised};

/// A running follower. Dropping it stops the task.
pub struct ReplicaFollower {
    database: &'static str,
    changes: watch::Sender<u64>,
    task: JoinHandle<()>,
    health: TaskHealth,
}

impl std::fmt::Debug for ReplicaFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaFollower")
            .field("database", &self.database)
            .finish()
    }
}

impl ReplicaFollower {
    /// Every `period`, while `target` is alive, runs `refresh(target)` and then signals
    /// a change. A failed refresh is logged and retried next period; the follower stops
    /// when the last strong reference to `target` is gone.
    pub fn start<T, F, Fut, E>(
        database: &'static str,
        period: Duration,
        target: &Arc<T>,
        refresh: F,
    ) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Arc<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display,
    {
        let (changes, _) = watch::channel(0u64);
        let tx = changes.clone();
        let weak: Weak<T> = Arc::downgrade(target);
        let health = TaskHealth::default();
        let task = spawn_supervised("replica follower", &health, async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(target) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = refresh(target).await {
                    tracing::warn!(database, error = %e, "replica refresh failed; will retry");
                }
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        });
        Self {
            database,
            changes,
            task,
            health,
        }
    }

    /// A receiver that sees a change after every refresh round.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// `Ok` while the follower runs; the panic that stopped it, or
    /// [`crate::Error::Closed`], once it has stopped.
    pub fn check(&self) -> crate::Result<()> {
        self.health.check()?;
        if self.task.is_finished() {
            return Err(crate::Error::Closed);
        }
        Ok(())
    }

    /// Stops the follower.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for ReplicaFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}
