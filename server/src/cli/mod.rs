//! The command line: `opendata serve` and the database clients.

pub mod log;
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
