//! # opendata-timeseries
//!
//! The Prometheus-compatible time series database of OpenData: remote write in, PromQL
//! and the Prometheus HTTP API out, on the shared storage foundation in
//! `opendata-common`. Its storage layout and engine are built by their own issues; until
//! then the crate only reserves its place in the workspace and its subsystem byte
//! (`opendata_common::keys::Subsystem::Timeseries`).
