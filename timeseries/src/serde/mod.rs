//! The time series database's records: one file per record kind, each with its byte
//! layout.
//!
//! Every key starts with the common prefix `[0x02 timeseries][0x01 layout version]`
//! (see `opendata_common::keys`). Global records follow it with their record type;
//! bucket records with `0x80`, the bucket's segment id (`u32` big-endian) and then their
//! record type, so a bucket (a time range of `bucket_secs`) is one contiguous key range
//! that retention drops whole.
//!
//! | record | kind | record type | value |
//! |---|---|---|---|
//! | series id block ([`sequences`]) | global | `0x01` | next free series id block |
//! | write sequence block ([`sequences`]) | global | `0x02` | next free write sequence block |
//! | [`metadata`] | global | `0x03` | metric type, help, unit |
//! | [`settings`] | global | `0x04` | bucket width (fixed at creation) |
//! | [`bucket`] state | bucket | `0x10` | open/closed, flushed-through write sequence |
//! | [`series`] (forward index) | bucket | `0x11` | series id → labels |
//! | [`dictionary`] | bucket | `0x12` | fingerprint + series id → (empty) |
//! | [`postings`] (inverted index) | bucket | `0x13` | label name + value → roaring bitmap of ids (merge: union) |
//! | [`label_names`] | bucket | `0x14` | label name → roaring bitmap of ids (merge: union) |
//! | [`chunk`] | bucket | `0x20` | series id + flush sequence → compressed samples |
//! | timestamp column ([`chunk`]) | bucket | `0x21` | column id → timestamps shared by many series |
//! | [`wal`] | bucket | `0x30` | write sequence → one commit's new series and samples |
//! | [`exemplar`] | bucket | `0x40` | series id + timestamp → exemplar value and labels |

pub mod bits;
pub mod bucket;
pub mod chunk;
pub mod dictionary;
pub mod exemplar;
pub mod histogram_chunk;
pub mod label_names;
pub mod labels;
pub mod metadata;
pub mod postings;
pub mod sequences;
pub mod series;
pub mod settings;
pub mod wal;

use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, put_leb128};
use opendata_common::keys::{KeyPrefix, RecordType, Subsystem};
use opendata_common::merge::{MergeRouter, RoaringUnion};

/// The key prefix of every time series record.
pub const PREFIX: KeyPrefix = KeyPrefix::new(Subsystem::Timeseries, 1);

/// Record type of the series id block record.
pub const SERIES_SEQUENCE: RecordType = RecordType::new(0x01);
/// Record type of the write sequence block record.
pub const WRITE_SEQUENCE: RecordType = RecordType::new(0x02);
/// Record type of metric metadata.
pub const METADATA: RecordType = RecordType::new(0x03);
/// Record type of the database settings.
pub const SETTINGS: RecordType = RecordType::new(0x04);
/// Record type of a bucket's state.
pub const BUCKET: RecordType = RecordType::new(0x10);
/// Record type of the forward index.
pub const SERIES: RecordType = RecordType::new(0x11);
/// Record type of the series dictionary.
pub const DICTIONARY: RecordType = RecordType::new(0x12);
/// Record type of the inverted index.
pub const POSTINGS: RecordType = RecordType::new(0x13);
/// Record type of the label-name index.
pub const LABEL_NAMES: RecordType = RecordType::new(0x14);
/// Record type of sample chunks.
pub const CHUNK: RecordType = RecordType::new(0x20);
/// Record type of timestamp columns.
pub const TIMESTAMPS: RecordType = RecordType::new(0x21);
/// Record type of write-ahead records.
pub const WAL: RecordType = RecordType::new(0x30);
/// Record type of exemplars.
pub const EXEMPLAR: RecordType = RecordType::new(0x40);

/// The merge operator of the time series database: index bitmaps are unions.
pub fn merge_router() -> MergeRouter {
    MergeRouter::new()
        .route(Subsystem::Timeseries, POSTINGS, RoaringUnion)
        .route(Subsystem::Timeseries, LABEL_NAMES, RoaringUnion)
}

/// 64-bit FNV-1a, the stable hash behind stored fingerprints and column ids: feed it
/// byte slices in order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    pub(crate) fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// Appends a length-prefixed (LEB128) byte string.
pub(crate) fn put_str(buf: &mut Vec<u8>, value: &[u8]) {
    put_leb128(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

/// Reads a length-prefixed (LEB128) UTF-8 string.
pub(crate) fn get_str(
    buf: &[u8],
    pos: &mut usize,
    what: &'static str,
) -> Result<String, DecodeError> {
    let bytes = get_slice(buf, pos, what)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::new(what, "string is not UTF-8"))
}

/// Reads a length-prefixed (LEB128) byte string.
pub(crate) fn get_slice<'a>(
    buf: &'a [u8],
    pos: &mut usize,
    what: &'static str,
) -> Result<&'a [u8], DecodeError> {
    let len = get_leb128(buf, pos)? as usize;
    let end = pos
        .checked_add(len)
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| DecodeError::new(what, "length runs past the end"))?;
    let out = &buf[*pos..end];
    *pos = end;
    Ok(out)
}
