//! One lifecycle for every database: how a server opens, checks, measures, flushes and
//! closes a database without knowing which one it is.
//!
//! A database crate implements two traits:
//!
//! - [`Database`] on each of its opened handles (the writer and the replica): readiness,
//!   group-commit counters, flush and close, object-safe so a server keeps a list of
//!   `dyn Database`;
//! - [`OpenDatabase`] once, naming its configuration, its writer and its replica type and
//!   how each is opened under a [`StorageRoot`].
//!
//! [`open`] then opens any database in either [`Role`], giving an [`Opened`]: the writer
//! or the replica, which is itself a [`Database`]. Adding a database to a server is one
//! more call to [`open`].
//!
//! ```
//! use opendata_common::lifecycle::{self, BoxError, Database, OpenDatabase, Opened, Role};
//! use opendata_common::{StorageConfig, StorageRoot};
//!
//! /// A database with nothing in it.
//! struct Empty(Role);
//!
//! impl Database for Empty {
//!     fn name(&self) -> &'static str { "empty" }
//!     fn role(&self) -> Role { self.0 }
//!     fn check(&self) -> Result<(), BoxError> { Ok(()) }
//! }
//!
//! impl OpenDatabase for Empty {
//!     const NAME: &'static str = "empty";
//!     type Config = ();
//!     type Error = opendata_common::Error;
//!     type Writer = Empty;
//!     type Replica = Empty;
//!     async fn open_writer(_: &StorageRoot, _: ()) -> opendata_common::Result<Empty> {
//!         Ok(Empty(Role::Writer))
//!     }
//!     async fn open_replica(_: &StorageRoot, _: ()) -> opendata_common::Result<Empty> {
//!         Ok(Empty(Role::Replica))
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
//! let db: Opened<Empty, Empty> = lifecycle::open::<Empty>(&root, (), Role::Replica).await.unwrap();
//! assert_eq!(db.role(), Role::Replica);
//! assert!(db.writer().is_err());
//! # });
//! ```

use std::future::Future;

use futures::future::BoxFuture;

use crate::storage::{CommitStats, StorageRoot};

/// Any error a database reports through the lifecycle.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The single writer: serves reads and writes.
    Writer,
    /// A read-only replica following the writer through the object store.
    Replica,
}

impl Role {
    /// `writer` or `replica`, as metrics and logs label it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Replica => "replica",
        }
    }
}

/// What a server needs of an opened database, whichever it is.
pub trait Database: Send + Sync + 'static {
    /// The database's name: its directory under the storage root and its label in
    /// metrics (`log`, `timeseries`, `vector`).
    fn name(&self) -> &'static str;
    /// Whether this is the writer or a replica.
    fn role(&self) -> Role;
    /// Readiness: `Ok` when the database can serve requests.
    fn check(&self) -> Result<(), BoxError>;
    /// The writer's group-commit counters; `None` (the default) for a replica.
    fn commit_stats(&self) -> Option<CommitStats> {
        None
    }
    /// Makes every acknowledged write durable; by default nothing to do (a replica).
    fn flush(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
    /// Stops background work, flushes and closes; by default nothing to do.
    fn close(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
}

/// How a database is opened: its configuration, and its writer and replica handles.
pub trait OpenDatabase {
    /// The database's name (its directory under the storage root).
    const NAME: &'static str;
    /// Its settings.
    type Config: Send;
    /// Its error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The handle of the single writer.
    type Writer: Database;
    /// The handle of a read-only replica.
    type Replica: Database;
    /// Opens (or creates) the database as its writer.
    fn open_writer(
        root: &StorageRoot,
        config: Self::Config,
    ) -> impl Future<Output = Result<Self::Writer, Self::Error>> + Send;
    /// Opens a read-only replica of an existing database.
    fn open_replica(
        root: &StorageRoot,
        config: Self::Config,
    ) -> impl Future<Output = Result<Self::Replica, Self::Error>> + Send;
}

/// A database opened as its writer or as a read-only replica.
#[derive(Debug, Clone)]
pub enum Opened<W, R> {
    /// The writer.
    Writer(W),
    /// A read-only replica.
    Replica(R),
}

impl<W, R> Opened<W, R> {
    /// The writer, or [`crate::Error::ReadOnly`] on a replica.
    pub fn writer(&self) -> crate::Result<&W> {
        match self {
            Opened::Writer(w) => Ok(w),
            Opened::Replica(_) => Err(crate::Error::ReadOnly),
        }
    }

    /// True for a read-only replica.
    pub fn is_replica(&self) -> bool {
        matches!(self, Opened::Replica(_))
    }
}

impl<T> Opened<T, T> {
    /// The handle, for a database whose writer and replica are the same type.
    pub fn handle(&self) -> &T {
        match self {
            Opened::Writer(t) | Opened::Replica(t) => t,
        }
    }
}

impl<W: Database, R: Database> Database for Opened<W, R> {
    fn name(&self) -> &'static str {
        match self {
            Opened::Writer(w) => w.name(),
            Opened::Replica(r) => r.name(),
        }
    }

    fn role(&self) -> Role {
        match self {
            Opened::Writer(_) => Role::Writer,
            Opened::Replica(_) => Role::Replica,
        }
    }

    fn check(&self) -> Result<(), BoxError> {
        match self {
            Opened::Writer(w) => w.check(),
            Opened::Replica(r) => r.check(),
        }
    }

    fn commit_stats(&self) -> Option<CommitStats> {
        match self {
            Opened::Writer(w) => w.commit_stats(),
            Opened::Replica(r) => r.commit_stats(),
        }
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        match self {
            Opened::Writer(w) => w.flush(),
            Opened::Replica(r) => r.flush(),
        }
    }

    fn close(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        match self {
            Opened::Writer(w) => w.close(),
            Opened::Replica(r) => r.close(),
        }
    }
}

/// Why [`open`] failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The writer could not be opened.
    #[error("cannot open the {database} database: {source}")]
    Writer {
        /// The database.
        database: &'static str,
        /// What went wrong.
        source: BoxError,
    },
    /// The replica could not be opened; usually because the writer never created the
    /// database on this object store.
    #[error(
        "cannot open a read-only replica of the {database} database at '{path}': {source}. \
         A replica follows an existing database: start the writer on the same object store \
         first"
    )]
    Replica {
        /// The database.
        database: &'static str,
        /// Where it was looked for.
        path: String,
        /// What went wrong.
        source: BoxError,
    },
}

/// Opens database `D` under `root` in `role`.
pub async fn open<D: OpenDatabase>(
    root: &StorageRoot,
    config: D::Config,
    role: Role,
) -> Result<Opened<D::Writer, D::Replica>, OpenError> {
    match role {
        Role::Writer => D::open_writer(root, config)
            .await
            .map(Opened::Writer)
            .map_err(|e| OpenError::Writer {
                database: D::NAME,
                source: Box::new(e),
            }),
        Role::Replica => D::open_replica(root, config)
            .await
            .map(Opened::Replica)
            .map_err(|e| OpenError::Replica {
                database: D::NAME,
                path: root.path_for(D::NAME).to_string(),
                source: Box::new(e),
            }),
    }
}

/// Boxes a database's own error for the lifecycle.
pub fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> BoxError {
    Box::new(e)
}
