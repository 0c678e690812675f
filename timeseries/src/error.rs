//! Errors of the time series database.

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the time series database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or its data invalid (HTTP 400; never worth retrying).
    #[error("bad data: {0}")]
    BadData(String),
    /// Some samples fell outside the window that takes samples (too old, in a closed
    /// bucket, past retention, or too far in the future). The others were written
    /// (HTTP 400, like Prometheus: resending would not help).
    #[error("out of bounds: {0}")]
    OutOfBounds(String),
    /// The request's content type or protocol version is not supported (HTTP 415).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The request is larger than allowed (HTTP 413).
    #[error("too large: {0}")]
    TooLarge(String),
    /// The configuration is invalid or does not fit the stored database.
    #[error("configuration: {0}")]
    Config(String),
    /// A storage failure.
    #[error(transparent)]
    Storage(#[from] opendata_common::Error),
}

impl From<slatedb::Error> for Error {
    fn from(err: slatedb::Error) -> Self {
        Error::Storage(err.into())
    }
}

impl From<opendata_common::DecodeError> for Error {
    fn from(err: opendata_common::DecodeError) -> Self {
        Error::Storage(err.into())
    }
}
