//! The log database's records: one file per record kind, each with its byte layout.
//!
//! Every key starts with the common prefix `[0x01 log][0x01 layout version]`
//! (see `opendata_common::keys`).
//!
//! | record | kind | record type |
//! |---|---|---|
//! | [`entry`] | segmented | `0x01` |
//! | [`segment`] | global | `0x02` |
//! | [`key_index`] | global | `0x03` |
//! | [`sequence`] | global | `0x04` |
//! | [`segment_bytes`] | global | `0x05` |

pub mod entry;
pub mod key_index;
pub mod segment;
pub mod segment_bytes;
pub mod sequence;

use opendata_common::keys::{KeyPrefix, RecordType, Subsystem};

/// The key prefix of every log record.
pub const PREFIX: KeyPrefix = KeyPrefix::new(Subsystem::Log, 1);

/// Record type of log entries.
pub const ENTRY: RecordType = RecordType::new(0x01);
/// Record type of segment descriptors.
pub const SEGMENT: RecordType = RecordType::new(0x02);
/// Record type of the key index.
pub const KEY_INDEX: RecordType = RecordType::new(0x03);
/// Record type of the sequence block record.
pub const SEQUENCE: RecordType = RecordType::new(0x04);
/// Record type of per-segment byte counters.
pub const SEGMENT_BYTES: RecordType = RecordType::new(0x05);

/// The merge operator of the log database: byte counters add up.
pub fn merge_router() -> opendata_common::merge::MergeRouter {
    opendata_common::merge::MergeRouter::new().route(
        Subsystem::Log,
        SEGMENT_BYTES,
        opendata_common::merge::I64Add,
    )
}
