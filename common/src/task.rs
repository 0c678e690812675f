//! Background tasks that cannot die silently.
//!
//! A database's background work (the group-commit tasks, retention, bucket closing,
//! index maintenance, a replica's follower) runs in tasks spawned with
//! [`spawn_supervised`]. A panic in one is caught, logged with the task's name, and
//! recorded in the database's [`TaskHealth`]; the database's readiness check then fails
//! with that message (so `/-/ready` turns red and an orchestrator can restart the
//! process), instead of the task vanishing while the database looks healthy.
//!
//! ```
//! use opendata_common::task::{TaskHealth, spawn_supervised};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let health = TaskHealth::default();
//! assert!(health.check().is_ok());
//! let task = spawn_supervised("demo", &health, async { panic!("boom") });
//! task.await.unwrap();
//! assert!(health.check().unwrap_err().to_string().contains("demo panicked: boom"));
//! # });
//! ```

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// The first failure of any background task of one database.
#[derive(Debug, Clone, Default)]
pub struct TaskHealth(Arc<Mutex<Option<String>>>);

impl TaskHealth {
    /// `Ok` while no task has failed; the first failure otherwise.
    pub fn check(&self) -> Result<()> {
        match self.0.lock().as_ref() {
            None => Ok(()),
            Some(failure) => Err(Error::Internal(format!(
                "a background task failed, restart the server: {failure}"
            ))),
        }
    }

    /// Records a failure (the first one is kept).
    pub fn fail(&self, failure: impl Into<String>) {
        let mut slot = self.0.lock();
        if slot.is_none() {
            *slot = Some(failure.into());
        }
    }
}

/// The message of a caught panic.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Spawns `task` on the current runtime. If it panics, the panic is logged with `name`
/// and recorded in `health`; the returned handle then completes normally.
pub fn spawn_supervised<F>(name: &'static str, health: &TaskHealth, task: F) -> JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let health = health.clone();
    tokio::spawn(async move {
        if let Err(panic) = AssertUnwindSafe(task).catch_unwind().await {
            let message = panic_message(panic.as_ref());
            tracing::error!(
                task = name,
                panic = %message,
                "background task panicked; the database reports not ready until restarted"
            );
            health.fail(format!("{name} panicked: {message}"));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn should_record_a_panic_and_keep_the_first() {
        let health = TaskHealth::default();
        spawn_supervised("one", &health, async {}).await.unwrap();
        assert!(health.check().is_ok());
        spawn_supervised("two", &health, async { panic!("first") })
            .await
            .unwrap();
        spawn_supervised("three", &health, async {
            panic!("{}", String::from("second"))
        })
        .await
        .unwrap();
        let err = health.check().unwrap_err().to_string();
        assert!(err.contains("two panicked: first"), "{err}");
        assert!(!err.contains("second"), "{err}");
    }
}
