//! # opendata-vector
//!
//! SPANN-style approximate nearest-neighbour search on object storage.
pub mod config;
pub mod db;
pub mod error;
pub mod filter;
pub mod io;
pub mod model;
pub mod server;

pub use config::VectorConfig;
pub use db::VectorDb;
pub use error::{Error, Result};
pub use filter::Filter;
pub use model::*;
