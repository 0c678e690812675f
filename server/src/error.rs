//! Errors of the server binary.

/// A `Result` whose error is [`ServerError`].
pub type Result<T, E = ServerError> = std::result::Result<T, E>;

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// A storage operation failed.
    #[error(transparent)]
    Storage(#[from] opendata_common::Error),
    /// The log database failed.
    #[error(transparent)]
    Log(#[from] opendata_log::Error),
    /// A time series database failure.
    #[error(transparent)]
    TimeSeries(#[from] opendata_timeseries::Error),
    /// A vector database failure.
    #[error(transparent)]
    Vector(#[from] opendata_vector::Error),
    /// Binding or serving the socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A client command failed.
    #[error("{0}")]
    Client(String),
}
