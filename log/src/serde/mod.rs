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
//! | [`topic`] | global | `0x06` |
//! | [`partition`] | global | `0x07` |
//! | [`offset_index`] | global | `0x08` |
//! | [`producer`] | global | `0x09` |
//! | [`producer_id`] | global | `0x0A` |
//! | [`group_offset`] | global | `0x0B` |

pub mod entry;
pub mod group_offset;
pub mod key_index;
pub mod offset_index;
pub mod partition;
pub mod producer;
pub mod producer_id;
pub mod segment;
pub mod segment_bytes;
pub mod sequence;
pub mod topic;

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
/// Record type of topic descriptors.
pub const TOPIC: RecordType = RecordType::new(0x06);
/// Record type of a topic partition's next offset.
pub const PARTITION: RecordType = RecordType::new(0x07);
/// Record type of the offset index (a topic partition's chunks by offset).
pub const OFFSET_INDEX: RecordType = RecordType::new(0x08);
/// Record type of an idempotent producer's state in a topic partition.
pub const PRODUCER: RecordType = RecordType::new(0x09);
/// Record type of the producer id counter.
pub const PRODUCER_ID: RecordType = RecordType::new(0x0A);
/// Record type of a consumer group's committed offset.
pub const GROUP_OFFSET: RecordType = RecordType::new(0x0B);

/// The merge operator of the log database: byte counters add up.
pub fn merge_router() -> opendata_common::merge::MergeRouter {
    opendata_common::merge::MergeRouter::new().route(
        Subsystem::Log,
        SEGMENT_BYTES,
        opendata_common::merge::I64Add,
    )
}
