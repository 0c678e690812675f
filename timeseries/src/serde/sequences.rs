//! The two sequence block records (layout in `opendata_common::sequence`).
//!
//! ```text
//! key:   ┌──────┬──────┬──────┐          value: ┌──────────────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x01 │ series ids     │ end of reserved block u64 BE │
//!        │ 0x02 │ 0x01 │ 0x02 │ write seqs     └──────────────────────────────┘
//!        └──────┴──────┴──────┘
//! ```
//!
//! Series ids (`u32`, they go into roaring bitmaps) are never reused, so a series id
//! names one label set for the life of the database. Write sequences order write-ahead
//! records and chunk flushes.

use bytes::Bytes;

use super::{PREFIX, SERIES_SEQUENCE, WRITE_SEQUENCE};

/// Key of the series id block record.
pub fn series_key() -> Bytes {
    PREFIX.record(SERIES_SEQUENCE).build()
}

/// Key of the write sequence block record.
pub fn write_key() -> Bytes {
    PREFIX.record(WRITE_SEQUENCE).build()
}
