//! Group commit: many callers' writes coalesce into few SlateDB writes and WAL flushes.
//!
//! ```text
//!  callers ──submit──► bounded queue ──► commit task ──write batch──► SlateDB memtable/WAL
//!                                            │
//!                                            └─ remote-durability acks ──► flush task
//!                                                                           │ db.flush()
//!                                                                           ▼
//!                                                             ack every caller in the flush
//! ```
//!
//! The commit task drains every queued job (up to `max_commit_bytes`), runs each job's
//! prepare step in submission order (this is where databases allocate sequences and
//! check conditions, with no lock contention), and applies all of their writes in one
//! SlateDB write batch. Jobs that asked for [`Durability::Memory`] are acknowledged
//! right away. The others are handed to the flush task, which flushes the WAL to the
//! object store and then acknowledges every job whose write preceded the flush. While
//! one flush is in flight, new writes pile up and share the next flush, so the number
//! of object store PUTs stays low however many callers there are.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use slatedb::Db;
use slatedb::config::WriteOptions;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::write_ops::WriteOps;
use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::task::{TaskHealth, spawn_supervised};

/// When an acknowledged write is safe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledge once the write is durable in the object store (the default).
    #[default]
    Remote,
    /// Acknowledge once the write is applied in memory: visible to reads, durable
    /// within the flush interval, lost if the process dies before that.
    Memory,
}

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Prepare = Box<dyn FnOnce(&mut WriteOps) -> Option<Completion> + Send>;

enum Job {
    Write {
        prepare: Prepare,
        durability: Durability,
    },
    /// Stop accepting jobs, finish the queued ones, then end.
    Shutdown,
}

/// Counters of the group-commit path.
#[derive(Debug, Default)]
struct Counters {
    jobs: AtomicU64,
    writes: AtomicU64,
    flushes: AtomicU64,
}

/// A snapshot of the group-commit counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommitStats {
    /// Jobs whose writes were applied.
    pub jobs: u64,
    /// SlateDB write batches those jobs were coalesced into.
    pub writes: u64,
    /// WAL flushes made to acknowledge remote-durability jobs.
    pub flushes: u64,
}

/// The commit and flush tasks.
type Tasks = (JoinHandle<()>, JoinHandle<()>);

/// The group-commit write path of one database. Cloning shares it.
#[derive(Clone)]
pub struct GroupCommitter {
    tx: mpsc::Sender<Job>,
    counters: Arc<Counters>,
    tasks: Arc<Mutex<Option<Tasks>>>,
    poison: Poison,
    ack_timeout: std::time::Duration,
}

impl GroupCommitter {
    pub(crate) fn start(db: Arc<Db>, config: &StorageConfig, health: &TaskHealth) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(config.write_queue_depth.max(1));
        let (flush_tx, flush_rx) = mpsc::unbounded_channel::<Vec<Completion>>();
        let max_bytes = config.max_commit_bytes.max(1) as usize;
        let poison = Poison::default();
        let counters = Arc::new(Counters::default());
        let commit = spawn_supervised(
            "group commit",
            health,
            commit_loop(
                db.clone(),
                rx,
                flush_tx,
                max_bytes,
                poison.clone(),
                counters.clone(),
            ),
        );
        let flush = spawn_supervised(
            "group commit flush",
            health,
            flush_loop(db, flush_rx, poison.clone(), counters.clone()),
        );
        Self {
            tx,
            counters,
            tasks: Arc::new(Mutex::new(Some((commit, flush)))),
            poison,
            ack_timeout: std::time::Duration::from_millis(config.write_ack_timeout_ms.max(1)),
        }
    }

    /// `Ok` until a write or flush has failed; then that failure (every later write is
    /// refused with it until the database is reopened).
    pub fn check(&self) -> Result<()> {
        match self.poison.get() {
            None => Ok(()),
            Some(err) => Err(err),
        }
    }

    /// How many jobs, SlateDB writes and flushes the path has made.
    pub fn stats(&self) -> CommitStats {
        CommitStats {
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            writes: self.counters.writes.load(Ordering::Relaxed),
            flushes: self.counters.flushes.load(Ordering::Relaxed),
        }
    }

    /// Applies `ops` atomically; returns when they are applied with `durability`.
    pub async fn write(&self, ops: WriteOps, durability: Durability) -> Result<()> {
        self.submit(durability, move |batch: &mut WriteOps| {
            batch.append(ops);
            Ok::<(), Error>(())
        })
        .await
    }

    /// Returns once every write applied before this call is durable in the object
    /// store. Concurrent calls share one flush. Used by writers that apply with
    /// [`Durability::Memory`] under their own lock and wait for durability after
    /// releasing it.
    pub async fn sync(&self) -> Result<()> {
        self.write(WriteOps::new(), Durability::Remote).await
    }

    /// Runs `prepare` on the commit task, in submission order with every other job, and
    /// applies the writes it adds to the batch. `prepare` may inspect and update state
    /// that only the commit path touches (sequence counters, last-write caches) without
    /// further locking. If it returns an error, none of its writes are applied and the
    /// error is returned. Otherwise its value is returned once the writes are applied
    /// with the requested durability.
    ///
    /// Fails with [`Error::Backpressure`] when the queue is full.
    pub async fn submit<T, E, F>(&self, durability: Durability, prepare: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut WriteOps) -> Result<T, E> + Send + 'static,
    {
        self.enqueue(durability, prepare)?.await
    }

    /// Queues a write now, before returning, and gives a future of its outcome: writes
    /// enqueued one after another are prepared and committed in that order, however
    /// their futures are awaited (a connection can pipeline writes that way).
    pub fn enqueue<T, E, F>(
        &self,
        durability: Durability,
        prepare: F,
    ) -> Result<impl Future<Output = Result<T, E>> + Send + 'static, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
        F: FnOnce(&mut WriteOps) -> Result<T, E> + Send + 'static,
    {
        let (done_tx, done_rx) = oneshot::channel::<Result<T, E>>();
        let prepare: Prepare = Box::new(move |batch: &mut WriteOps| {
            let mut mine = WriteOps::new();
            match prepare(&mut mine) {
                Ok(value) => {
                    batch.append(mine);
                    Some(Box::new(move |result: Result<()>| {
                        let _ = done_tx.send(result.map(|()| value).map_err(E::from));
                    }) as Completion)
                }
                Err(err) => {
                    let _ = done_tx.send(Err(err));
                    None
                }
            }
        });
        let job = Job::Write {
            prepare,
            durability,
        };
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(E::from(Error::Backpressure(
                    "write queue is full; retry later".into(),
                )));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(E::from(Error::Closed)),
        }
        let ack_timeout = self.ack_timeout;
        Ok(async move {
            match tokio::time::timeout(ack_timeout, done_rx).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(E::from(Error::Closed)),
                Err(_) => Err(E::from(Error::Unavailable(format!(
                    "the write was not acknowledged within {} s (storage.write_ack_timeout_ms): \
                     the object store is slow or unreachable. The write may still become \
                     durable; retry once the store answers",
                    ack_timeout.as_secs_f64()
                )))),
            }
        })
    }

    /// Stops accepting writes, finishes the queued ones and waits for both tasks.
    pub async fn shutdown(&self) {
        let tasks = self.tasks.lock().await.take();
        if let Some((commit, flush)) = tasks {
            // Callers may still hold clones of the sender, so the loop is told to stop
            // rather than waiting for every sender to go.
            let _ = self.tx.send(Job::Shutdown).await;
            let _ = commit.await;
            let _ = flush.await;
        }
    }
}

/// The first write or flush failure. Once set, every later job fails with it: state the
/// jobs' prepare steps keep (sequence counters, caches) may have run ahead of what is
/// durable, so the database must be reopened.
#[derive(Clone, Default)]
struct Poison(Arc<parking_lot::Mutex<Option<Error>>>);

impl Poison {
    fn set(&self, err: &Error) {
        let mut slot = self.0.lock();
        if slot.is_none() {
            *slot = Some(clone_error(err));
        }
    }

    fn get(&self) -> Option<Error> {
        self.0.lock().as_ref().map(clone_error)
    }
}

async fn commit_loop(
    db: Arc<Db>,
    mut rx: mpsc::Receiver<Job>,
    flush_tx: mpsc::UnboundedSender<Vec<Completion>>,
    max_bytes: usize,
    poison: Poison,
    counters: Arc<Counters>,
) {
    let options = WriteOptions::default();
    let mut jobs = Vec::with_capacity(256);
    while rx.recv_many(&mut jobs, 4096).await > 0 {
        let mut pending = std::collections::VecDeque::from(std::mem::take(&mut jobs));
        while !pending.is_empty() {
            let mut batch = WriteOps::new();
            let mut memory = Vec::new();
            let mut remote = Vec::new();
            while let Some(job) = pending.pop_front() {
                let (prepare, durability) = match job {
                    Job::Write {
                        prepare,
                        durability,
                    } => (prepare, durability),
                    Job::Shutdown => {
                        rx.close();
                        continue;
                    }
                };
                if let Some(done) = prepare(&mut batch) {
                    match durability {
                        Durability::Memory => memory.push(done),
                        Durability::Remote => remote.push(done),
                    }
                }
                if batch.size_bytes() >= max_bytes {
                    break;
                }
            }
            if let Some(err) = poison.get() {
                memory
                    .into_iter()
                    .chain(remote)
                    .for_each(|d| d(Err(clone_error(&err))));
                continue;
            }
            if batch.is_empty() {
                // Nothing to write: memory jobs are done, and remote jobs (barriers such
                // as `sync`) wait for a flush, which makes every earlier write durable.
                memory.into_iter().for_each(|d| d(Ok(())));
                if !remote.is_empty()
                    && let Err(mpsc::error::SendError(remote)) = flush_tx.send(remote)
                {
                    remote.into_iter().for_each(|d| d(Err(Error::Closed)));
                }
                continue;
            }
            match db
                .write_with_options(batch.into_write_batch(), &options)
                .await
            {
                Ok(_) => {
                    counters.writes.fetch_add(1, Ordering::Relaxed);
                    counters
                        .jobs
                        .fetch_add((memory.len() + remote.len()) as u64, Ordering::Relaxed);
                    memory.into_iter().for_each(|d| d(Ok(())));
                    if !remote.is_empty()
                        && let Err(mpsc::error::SendError(remote)) = flush_tx.send(remote)
                    {
                        remote.into_iter().for_each(|d| d(Err(Error::Closed)));
                    }
                }
                Err(err) => {
                    let err = Error::from(err);
                    tracing::error!(error = %err, "group commit write failed; writes are refused until reopen");
                    poison.set(&err);
                    memory
                        .into_iter()
                        .chain(remote)
                        .for_each(|d| d(Err(clone_error(&err))));
                }
            }
        }
    }
}

async fn flush_loop(
    db: Arc<Db>,
    mut rx: mpsc::UnboundedReceiver<Vec<Completion>>,
    poison: Poison,
    counters: Arc<Counters>,
) {
    let mut groups = Vec::new();
    while rx.recv_many(&mut groups, usize::MAX).await > 0 {
        let result = db.flush().await.map_err(Error::from);
        counters.flushes.fetch_add(1, Ordering::Relaxed);
        if let Err(err) = &result {
            tracing::error!(error = %err, "group commit flush failed; writes are refused until reopen");
            poison.set(err);
        }
        for done in groups.drain(..).flatten() {
            done(match &result {
                Ok(()) => Ok(()),
                Err(err) => Err(clone_error(err)),
            });
        }
    }
}

/// Errors are not `Clone`; give every waiting caller an equivalent one.
fn clone_error(err: &Error) -> Error {
    match err {
        Error::Fenced => Error::Fenced,
        Error::Closed => Error::Closed,
        Error::ReadOnly => Error::ReadOnly,
        Error::Backpressure(m) => Error::Backpressure(m.clone()),
        Error::Config(m) => Error::Config(m.clone()),
        Error::Decode(d) => Error::Decode(d.clone()),
        Error::Internal(m) => Error::Internal(m.clone()),
        Error::Unavailable(m) => Error::Unavailable(m.clone()),
        other => Error::Unavailable(format!(
            "the write path failed ({other}); writes are refused until the database is reopened"
        )),
    }
}
