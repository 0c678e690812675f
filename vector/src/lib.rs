//! # opendata-vector
//!
//! The SPANN-style approximate nearest-neighbour database of OpenData: centroids in
//! memory, posting lists in SlateDB, metadata filters on roaring bitmaps. Its index is
//! built by its own issue; until then the crate only reserves its place in the workspace
//! and its subsystem byte (`opendata_common::keys::Subsystem::Vector`).
