//! The error type shared by every OpenData crate's storage layer.

use std::fmt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors raised by the common storage foundation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that should hold an encoded key, value or operand could not be decoded.
    #[error("decode error: {0}")]
    Decode(#[from] DecodeError),

    /// The configuration is invalid (bad object store URL, missing bucket, ...).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// Another writer opened the same database path; this instance may no longer write.
    #[error("fenced: another writer has opened this database; this instance can no longer write")]
    Fenced,

    /// The database has been closed.
    #[error("database is closed")]
    Closed,

    /// The write queue is full; the caller should retry later.
    #[error("backpressure: {0}")]
    Backpressure(String),

    /// The database cannot take writes now: its write path failed (the object store
    /// refused a write or a flush) and stays failed until the database is reopened.
    #[error("unavailable: {0}")]
    Unavailable(String),

    /// This instance is a read-only replica and cannot write.
    #[error("read-only: this instance is a read-only replica")]
    ReadOnly,

    /// An error from SlateDB that is not one of the cases above.
    #[error("storage error: {0}")]
    Storage(slatedb::Error),

    /// An unexpected internal fault, described by its message.
    #[error("internal error: {0}")]
    Internal(String),

    /// An error from the object store client.
    #[error("object store error: {0}")]
    ObjectStore(#[from] slatedb::object_store::Error),
}

impl From<slatedb::Error> for Error {
    fn from(err: slatedb::Error) -> Self {
        match err.kind() {
            slatedb::ErrorKind::Closed(slatedb::CloseReason::Fenced) => Error::Fenced,
            slatedb::ErrorKind::Closed(slatedb::CloseReason::Clean) => Error::Closed,
            _ => Error::Storage(err),
        }
    }
}

impl Error {
    /// True when retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Backpressure(_) | Error::Unavailable(_) => true,
            Error::Storage(e) => matches!(e.kind(), slatedb::ErrorKind::Unavailable),
            Error::ObjectStore(_) => true,
            _ => false,
        }
    }
}

/// A failure to decode bytes (keys, values, merge operands) that came from storage or a client.
///
/// Decoders never panic on malformed input; they return this error instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    what: &'static str,
    detail: String,
}

impl DecodeError {
    /// A decode error for `what` (the thing being decoded) with a human-readable detail.
    pub fn new(what: &'static str, detail: impl Into<String>) -> Self {
        Self {
            what,
            detail: detail.into(),
        }
    }

    /// The input ended before `what` was complete.
    pub fn truncated(what: &'static str) -> Self {
        Self::new(what, "input is truncated")
    }

    /// What was being decoded.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.detail)
    }
}

impl std::error::Error for DecodeError {}
