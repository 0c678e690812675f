//! HTTP-facing pieces of the time series database.

pub mod proto;
