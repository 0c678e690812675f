//! The command line: `opendata serve` and the database clients.

pub mod log;

/// An HTTP client that sends `token` as a bearer token with every request.
pub(crate) fn http_client(token: Option<&str>) -> crate::error::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| {
                crate::error::ServerError::Client("the token is not valid header text".into())
            })?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .map_err(|e| {
            crate::error::ServerError::Client(format!("cannot build the HTTP client: {e}"))
        })
}
pub mod serve;
pub mod vector;

use clap::{Parser, Subcommand};

/// OpenData: object-store-native databases (log, time series, vector) on one port.
#[derive(Debug, Parser)]
#[command(name = "opendata", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server with every database mounted on one port.
    Serve(serve::ServeArgs),
    /// Talk to the log database of a running server.
    #[command(subcommand)]
    Log(log::LogCommand),
    /// Talk to the vector database of a running server.
    #[command(subcommand)]
    Vector(vector::VectorCommand),
}
