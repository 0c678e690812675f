//! Errors of the time series database.

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors of the time series database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or its data invalid (HTTP 400; never worth retrying).
    #[error("bad data: {0}")]
    BadData(String),
    /// The request's content type or protocol version is not supported (HTTP 415).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The request is larger than allowed (HTTP 413).
    #[error("too large: {0}")]
    TooLarge(String),
    /// A storage failure.
    #[error(transparent)]
    Storage(#[from] opendata_common::Error),
}
