//! # opendata-server
//!
//! The `opendata` binary: every OpenData database on one port, with the shared runtime
//! (configuration, health, readiness, Prometheus metrics, request tracing, body limits,
//! graceful shutdown) and command-line clients.
//!
//! - [`api`]: the API layer, every protocol adapter of every database (HTTP routes, wire
//!   formats, content negotiation, the one error mapping);
//! - [`server`]: the runtime, which opens every database through the common lifecycle
//!   and serves the API;
//! - [`cli`]: `opendata serve` and the command-line clients;
//! - [`config`]: the configuration file, variables and flags.
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

pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod error;
pub mod server;

pub use config::ServerConfig;
pub use error::{Result, ServerError};
pub use server::Server;
