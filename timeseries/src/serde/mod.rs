//! Encodings of the time series database's records.

pub mod bits;
pub mod chunk;
