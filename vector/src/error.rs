//! Errors of the vector database.

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the vector database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is invalid: wrong dimension, non-finite component, unknown attribute,
    /// wrong attribute type, oversized id, malformed filter, bad parameter.
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// No collection of that name.
    #[error("collection {0:?} not found")]
    CollectionNotFound(String),
    /// A collection of that name already exists with a different definition.
    #[error("collection {0:?} already exists with a different definition")]
    CollectionExists(String),
    /// This instance is a read-only replica.
    #[error("read-only: this instance is a read-only replica")]
    ReadOnly,
    /// A storage failure.
    #[error(transparent)]
    Storage(#[from] opendata_common::Error),
    /// Stored bytes could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(#[from] opendata_common::DecodeError),
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }
}

impl From<slatedb::Error> for Error {
    fn from(err: slatedb::Error) -> Self {
        Error::Storage(err.into())
    }
}
