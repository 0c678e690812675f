//! # opendata-vector
//!
//! SPANN-style approximate nearest-neighbour search on object storage.
pub mod config;
pub mod dataset;
pub mod db;
pub mod error;
pub mod filter;
pub mod model;

pub use config::VectorConfig;
pub use db::VectorDb;
pub use error::{Error, Result};
pub use filter::Filter;
pub use model::*;
