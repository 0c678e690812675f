//! Work pools: CPU-heavy work of one database on threads of its own, with admission
//! control.
//!
//! The server's request runtime only moves bytes: it accepts connections, reads bodies
//! and writes answers. PromQL evaluation, remote-write decoding and vector searches run
//! on a pool per database, a small multi-threaded runtime whose threads have large
//! stacks. A pool admits at most `concurrency` tasks at once and lets at most `queue`
//! more wait (each for at most `queue_timeout_ms`); anything beyond is refused at once
//! with a 503 and `Retry-After`, and counted. So one database's load reaches another
//! only through the shared CPU, and `/-/healthy`, `/-/ready` and `/metrics` stay
//! responsive whatever runs in the pools.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::ApiError;

/// Stack size of pool threads: evaluation recurses along a query's syntax tree, whose
/// depth the query limits bound.
const STACK_BYTES: usize = 16 * 1024 * 1024;

/// Stack size of the `sql` pool's threads: SQL planning recurses along expressions (at
/// most `opendata_sql::MAX_OPERATORS` deep) several times over, about 6 KiB a level
/// in unoptimized builds. Untouched stack costs no memory.
const SQL_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Settings of one pool (`[pools.<database>]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Threads (0: one per core).
    pub threads: usize,
    /// Tasks running at once.
    pub concurrency: usize,
    /// Tasks waiting for a slot before new ones are refused.
    pub queue: usize,
    /// Longest a task waits for a slot before it is refused, in milliseconds.
    pub queue_timeout_ms: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            threads: 0,
            concurrency: 8,
            queue: 256,
            queue_timeout_ms: 10_000,
        }
    }
}

impl PoolConfig {
    /// Checks the settings.
    pub fn validate(&self, name: &str) -> Result<(), String> {
        if self.concurrency == 0 {
            return Err(format!("pools.{name}.concurrency must be at least 1"));
        }
        if self.queue_timeout_ms == 0 {
            return Err(format!("pools.{name}.queue_timeout_ms must be at least 1"));
        }
        Ok(())
    }
}

/// The pools of `[pools]`: one per database's CPU-heavy work.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolsConfig {
    /// PromQL: parsing and evaluating queries.
    pub query: PoolConfig,
    /// Remote write: decompressing and decoding bodies.
    pub ingest: PoolConfig,
    /// Vector searches, and decoding large vector request bodies.
    pub vector: PoolConfig,
    /// Decoding large log append bodies.
    pub log: PoolConfig,
    /// SQL statements (planning, scans, joins, aggregations).
    pub sql: PoolConfig,
}

impl PoolsConfig {
    /// Checks every pool's settings.
    pub fn validate(&self) -> Result<(), String> {
        self.query.validate("query")?;
        self.ingest.validate("ingest")?;
        self.vector.validate("vector")?;
        self.log.validate("log")?;
        self.sql.validate("sql")
    }
}

/// The running pools.
#[derive(Debug, Clone)]
pub struct Pools {
    /// PromQL.
    pub query: Arc<WorkPool>,
    /// Remote-write decoding.
    pub ingest: Arc<WorkPool>,
    /// Vector searches and large vector bodies.
    pub vector: Arc<WorkPool>,
    /// Large log append bodies.
    pub log: Arc<WorkPool>,
    /// SQL statements.
    pub sql: Arc<WorkPool>,
}

impl Pools {
    /// Starts every pool.
    pub fn start(config: &PoolsConfig) -> std::io::Result<Self> {
        Ok(Self {
            query: Arc::new(WorkPool::new("query", config.query.clone())?),
            ingest: Arc::new(WorkPool::new("ingest", config.ingest.clone())?),
            vector: Arc::new(WorkPool::new("vector", config.vector.clone())?),
            log: Arc::new(WorkPool::new("log", config.log.clone())?),
            sql: Arc::new(WorkPool::with_stack(
                "sql",
                config.sql.clone(),
                SQL_STACK_BYTES,
            )?),
        })
    }

    /// Every pool's metrics in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        WorkPool::render(
            &[
                &self.query,
                &self.ingest,
                &self.vector,
                &self.log,
                &self.sql,
            ],
            out,
        );
    }
}

/// A metric family of the pools: name, help, and how to read it from a pool's counters.
type Family = (&'static str, &'static str, fn(&PoolStats) -> u64);

/// Counters of one pool.
#[derive(Debug, Default)]
struct PoolStats {
    admitted: AtomicU64,
    rejected: AtomicU64,
    running: AtomicUsize,
    waiting: AtomicUsize,
}

/// A pool of threads with admission control. Cheap to share (`Arc`).
pub struct WorkPool {
    name: &'static str,
    handle: tokio::runtime::Handle,
    /// Kept to shut the threads down when the pool goes; `shutdown_background` is
    /// allowed where a plain drop of a runtime is not (inside another runtime).
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    permits: Arc<Semaphore>,
    config: PoolConfig,
    stats: PoolStats,
}

impl std::fmt::Debug for WorkPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkPool")
            .field("name", &self.name)
            .finish()
    }
}

impl Drop for WorkPool {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.lock().take() {
            rt.shutdown_background();
        }
    }
}

/// Counts one running task while it lives.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn start(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Aborts the task when the request that started it goes away first.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl WorkPool {
    /// Starts the pool's threads, named `<name>-N`.
    pub fn new(name: &'static str, config: PoolConfig) -> std::io::Result<Self> {
        Self::with_stack(name, config, STACK_BYTES)
    }

    /// Starts the pool's threads with stacks of `stack_bytes`.
    pub fn with_stack(
        name: &'static str,
        config: PoolConfig,
        stack_bytes: usize,
    ) -> std::io::Result<Self> {
        let threads = if config.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.threads
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_stack_size(stack_bytes)
            .thread_name(format!("{name}-pool"))
            .enable_all()
            .build()?;
        Ok(Self {
            name,
            handle: runtime.handle().clone(),
            runtime: Mutex::new(Some(runtime)),
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            config,
            stats: PoolStats::default(),
        })
    }

    /// The pool's name (its database).
    pub fn name(&self) -> &'static str {
        self.name
    }

    async fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let waiting = self.stats.waiting.fetch_add(1, Ordering::Relaxed);
        let result = if waiting >= self.config.queue {
            None
        } else {
            tokio::time::timeout(
                Duration::from_millis(self.config.queue_timeout_ms),
                self.permits.clone().acquire_owned(),
            )
            .await
            .ok()
            .and_then(Result::ok)
        };
        self.stats.waiting.fetch_sub(1, Ordering::Relaxed);
        result.ok_or_else(|| {
            self.stats.rejected.fetch_add(1, Ordering::Relaxed);
            ApiError::unavailable(format!(
                "the {} pool is full ({} running, {} waiting; pools.{}.concurrency and \
                 queue); retry later",
                self.name, self.config.concurrency, self.config.queue, self.name
            ))
        })
    }

    /// Runs `task` on the pool once admitted. Refused with a 503 when the pool and its
    /// queue are full; a panic in the task is a 500 (and logged); if the caller goes
    /// away, the task is aborted.
    pub async fn run<F, T>(&self, task: F) -> Result<T, ApiError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let permit = self.admit().await?;
        self.stats.admitted.fetch_add(1, Ordering::Relaxed);
        let _running = Running::start(&self.stats.running);
        let handle = self.handle.spawn(async move {
            let _permit = permit;
            task.await
        });
        let _abort = AbortOnDrop(handle.abort_handle());
        match handle.await {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => {
                let message = opendata_common::task::panic_message(e.into_panic().as_ref());
                tracing::error!(pool = self.name, panic = %message, "pool task panicked");
                Err(ApiError::internal(
                    "the request failed on an internal error; the server log has the details",
                ))
            }
            Err(_) => Err(ApiError::unavailable("the task was cancelled")),
        }
    }

    /// Appends the pool's metrics in the Prometheus text format.
    pub fn render(pools: &[&WorkPool], out: &mut String) {
        let gauges: [Family; 2] = [
            (
                "opendata_pool_running",
                "Tasks running in a work pool.",
                |s| s.running.load(Ordering::Relaxed) as u64,
            ),
            (
                "opendata_pool_waiting",
                "Tasks waiting for a slot in a work pool.",
                |s| s.waiting.load(Ordering::Relaxed) as u64,
            ),
        ];
        let counters: [Family; 2] = [
            (
                "opendata_pool_admitted_total",
                "Tasks a work pool admitted.",
                |s| s.admitted.load(Ordering::Relaxed),
            ),
            (
                "opendata_pool_rejected_total",
                "Tasks a work pool refused because it and its queue were full (answered 503).",
                |s| s.rejected.load(Ordering::Relaxed),
            ),
        ];
        for (kind, list) in [("gauge", &gauges), ("counter", &counters)] {
            for (metric, help, value) in list.iter() {
                let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
                for p in pools {
                    let _ = writeln!(out, "{metric}{{pool=\"{}\"}} {}", p.name, value(&p.stats));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn should_refuse_work_beyond_the_slots_and_queue() {
        let pool = Arc::new(
            WorkPool::new(
                "test",
                PoolConfig {
                    threads: 1,
                    concurrency: 1,
                    queue: 1,
                    queue_timeout_ms: 60_000,
                },
            )
            .unwrap(),
        );
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let p = pool.clone();
        let first = tokio::spawn(async move {
            p.run(async move {
                let _ = wait.await;
                1
            })
            .await
        });
        while pool.stats.running.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        let p = pool.clone();
        let second = tokio::spawn(async move { p.run(async { 2 }).await });
        while pool.stats.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        let third = pool.run(async { 3 }).await.unwrap_err();
        assert_eq!(third.status.as_u16(), 503);
        assert!(
            third.message.contains("test pool is full"),
            "{}",
            third.message
        );
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 1);
        assert_eq!(second.await.unwrap().unwrap(), 2);
        assert_eq!(pool.stats.rejected.load(Ordering::Relaxed), 1);
        let mut out = String::new();
        WorkPool::render(&[&pool], &mut out);
        assert!(
            out.contains("opendata_pool_rejected_total{pool=\"test\"} 1"),
            "{out}"
        );
        let err = pool
            .run(async { panic!("task bug") })
            .await
            .map(|_: ()| ())
            .unwrap_err();
        assert_eq!(err.status.as_u16(), 500);
    }
}
