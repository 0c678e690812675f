//! Errors of the log database.

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the log database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid (empty key, oversized value, bad range, ...).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// A conditional append found a different last sequence than expected.
    #[error("conflict: key {key:?} has {}, expected {}", describe(*actual), describe(*expected))]
    Conflict {
        /// The key, lossily printed.
        key: String,
        /// The sequence the caller expected (`None`: no entries).
        expected: Option<u64>,
        /// The key's actual last sequence (`None`: no entries).
        actual: Option<u64>,
    },
    /// No such topic or partition.
    #[error("not found: {0}")]
    NotFound(String),
    /// A topic of that name exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// An idempotent producer's epoch is older than the partition has seen.
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced {
        /// The producer id.
        producer_id: u64,
        /// The epoch the batch carried.
        epoch: i16,
        /// The newest epoch the partition has seen.
        current: i16,
    },
    /// An idempotent producer's batch does not follow its last one.
    #[error("producer {producer_id}: batch sequence {got} does not follow {last}")]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: u64,
        /// The batch's first sequence number.
        got: i32,
        /// The last sequence number written.
        last: i32,
    },
    /// A storage failure.
    #[error(transparent)]
    Storage(#[from] opendata_common::Error),
    /// Stored bytes could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(#[from] opendata_common::DecodeError),
    /// The key cache moved while a conditional append waited; retried internally.
    #[error("conditional append must be retried")]
    RetryCondition,
}

fn describe(last: Option<u64>) -> String {
    match last {
        Some(seq) => format!("last sequence {seq}"),
        None => "no entries".to_string(),
    }
}

impl From<slatedb::Error> for Error {
    fn from(err: slatedb::Error) -> Self {
        Error::Storage(err.into())
    }
}
