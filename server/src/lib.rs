//! # opendata-server
//!
//! The `opendata` binary: every OpenData database on one port, with the shared runtime
//! (configuration, health, readiness, Prometheus metrics, request tracing, body limits,
//! graceful shutdown) and command-line clients.
//!
//! ```no_run
//! use opendata_server::{ServerConfig, Server};
//!
//! # #[tokio::main]
//! # async fn main() -> opendata_server::Result<()> {
//! let config = ServerConfig::default(); // 127.0.0.1:8080, data in ./data
//! let server = Server::start(config).await?;
//! println!("listening on {}", server.local_addr());
//! server.run_until_signal().await?;
//! # Ok(())
//! # }
//! ```

pub mod cli;
pub mod config;
pub mod error;
pub mod server;

pub use config::ServerConfig;
pub use error::{Result, ServerError};
pub use server::Server;
