//! Keys and values of every record the vector database stores.
//!
//! Database-wide records are global keys; every record of one collection lives in the
//! collection's segment (its collection id), so a collection is one contiguous key
//! range and is dropped by deleting that range.
//!
//! ```text
//! global:    [0x03 vector][0x01 layout][type]            [fields]
//! segmented: [0x03 vector][0x01 layout][0x80][collection id u32 BE][type][fields]
//!
//! type  record              key fields                         value
//! 0x01  Collection (global) name (escaped bytes)               collection.rs
//! 0x02  NextCollection (gl) -                                  u32 BE: next collection id
//! 0x10  IndexState          -                                  state.rs
//! 0x11  Centroid            posting id u32 BE                  centroid.rs
//! 0x12  Posting             posting id u32 BE                  posting.rs (merge: append)
//! 0x13  Vector              internal id u32 BE                 vector.rs
//! 0x14  IdMap               external id (escaped bytes)        u32 BE: internal id
//! 0x15  AttributeValue      name (escaped), value (attribute.rs) roaring delta (merge)
//! 0x16  AttributeExists     name (escaped)                     roaring delta (merge)
//! 0x17  Live                -                                  roaring delta (merge)
//! 0x18  IdSequence          -                                  u64 BE: reserved id end
//! ```

pub mod attribute;
pub mod centroid;
pub mod collection;
pub mod posting;
pub mod state;
pub mod vector;

use bytes::Bytes;
use opendata_common::keys::{KeyBuilder, KeyPrefix, RecordType, Subsystem};
use opendata_common::{DecodeError, merge::MergeRouter};

/// The key layout of the vector database.
pub const PREFIX: KeyPrefix = KeyPrefix::new(Subsystem::Vector, 1);

/// Collection definitions (global).
pub const COLLECTION: RecordType = RecordType::new(0x01);
/// The next collection id (global).
pub const NEXT_COLLECTION: RecordType = RecordType::new(0x02);
/// A collection's index state.
pub const INDEX_STATE: RecordType = RecordType::new(0x10);
/// A posting list's centroid.
pub const CENTROID: RecordType = RecordType::new(0x11);
/// A posting list.
pub const POSTING: RecordType = RecordType::new(0x12);
/// A vector with its id and attributes.
pub const VECTOR: RecordType = RecordType::new(0x13);
/// External id to internal id.
pub const ID_MAP: RecordType = RecordType::new(0x14);
/// Records with one attribute value.
pub const ATTRIBUTE_VALUE: RecordType = RecordType::new(0x15);
/// Records having an attribute.
pub const ATTRIBUTE_EXISTS: RecordType = RecordType::new(0x16);
/// Live internal ids.
pub const LIVE: RecordType = RecordType::new(0x17);
/// The internal id sequence block.
pub const ID_SEQUENCE: RecordType = RecordType::new(0x18);

/// The merge operators of the vector database's records.
pub fn merge_router() -> MergeRouter {
    use opendata_common::merge::{ByteAppend, RoaringDelta};
    MergeRouter::new()
        .route(Subsystem::Vector, POSTING, ByteAppend)
        .route(Subsystem::Vector, ATTRIBUTE_VALUE, RoaringDelta)
        .route(Subsystem::Vector, ATTRIBUTE_EXISTS, RoaringDelta)
        .route(Subsystem::Vector, LIVE, RoaringDelta)
}

/// Key of a collection definition.
pub fn collection_key(name: &str) -> Bytes {
    PREFIX.record(COLLECTION).bytes(name.as_bytes()).build()
}

/// The range of all collection definitions.
pub fn collection_range() -> (Bytes, Bytes) {
    let start = PREFIX.record(COLLECTION).build();
    let end = PREFIX.record(RecordType::new(0x02)).build();
    (start, end)
}

/// Key of the next-collection-id counter.
pub fn next_collection_key() -> Bytes {
    PREFIX.record(NEXT_COLLECTION).build()
}

fn seg(collection: u32, t: RecordType) -> KeyBuilder {
    PREFIX.segmented(collection, t)
}

/// Key of a collection's index state.
pub fn state_key(collection: u32) -> Bytes {
    seg(collection, INDEX_STATE).build()
}

/// Key of a centroid.
pub fn centroid_key(collection: u32, posting: u32) -> Bytes {
    seg(collection, CENTROID).u32(posting).build()
}

/// Key of a posting list.
pub fn posting_key(collection: u32, posting: u32) -> Bytes {
    seg(collection, POSTING).u32(posting).build()
}

/// Key of a vector record.
pub fn vector_key(collection: u32, id: u32) -> Bytes {
    seg(collection, VECTOR).u32(id).build()
}

/// Key of an id-map entry.
pub fn id_map_key(collection: u32, external: &str) -> Bytes {
    seg(collection, ID_MAP).bytes(external.as_bytes()).build()
}

/// Key of an attribute-exists bitmap.
pub fn exists_key(collection: u32, name: &str) -> Bytes {
    seg(collection, ATTRIBUTE_EXISTS)
        .bytes(name.as_bytes())
        .build()
}

/// Key of the live bitmap.
pub fn live_key(collection: u32) -> Bytes {
    seg(collection, LIVE).build()
}

/// Key of the id sequence block.
pub fn id_sequence_key(collection: u32) -> Bytes {
    seg(collection, ID_SEQUENCE).build()
}

/// The range `[start, end)` of every key of `collection` with record type `t`.
pub fn type_range(collection: u32, t: RecordType) -> (Bytes, Bytes) {
    let start = seg(collection, t).build();
    let end = seg(collection, RecordType::new(t.as_u8() + 1)).build();
    (start, end)
}

/// The u32 field after a segmented key's header (posting or internal id).
pub fn key_u32(key: &[u8]) -> Result<u32, DecodeError> {
    let mut parsed = PREFIX.parse(key)?;
    let v = parsed.read_u32()?;
    parsed.finish()?;
    Ok(v)
}

/// A big-endian u32 value.
pub fn decode_u32(value: &[u8]) -> Result<u32, DecodeError> {
    value
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| DecodeError::new("u32 value", format!("{} bytes, expected 4", value.len())))
}

pub(crate) struct Cursor<'a> {
    pub buf: &'a [u8],
    pub what: &'static str,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Self { buf, what }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::new(
                self.what,
                format!("truncated: needed {n} bytes, {} left", self.buf.len()),
            ));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub fn f32s(&mut self, n: usize, out: &mut Vec<f32>) -> Result<(), DecodeError> {
        let bytes = self.take(
            n.checked_mul(4)
                .ok_or_else(|| self.err("length overflow"))?,
        )?;
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
        );
        Ok(())
    }
    pub fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        let b = self.take(len)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.err("invalid UTF-8"))
    }
    pub fn err(&self, msg: &str) -> DecodeError {
        DecodeError::new(self.what, msg.to_string())
    }
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::new(
                self.what,
                format!("{} trailing bytes", self.buf.len()),
            ))
        }
    }
}
