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
    /// A database could not be opened.
    #[error(transparent)]
    Open(#[from] opendata_common::lifecycle::OpenError),
    /// A database failed to flush or close.
    #[error("{database} database: {message}")]
    Database {
        /// Which database.
        database: &'static str,
        /// What went wrong.
        message: String,
    },
    /// Binding or serving the socket failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A client command failed.
    #[error("{0}")]
    Client(String),
}
