//! The structured key model every OpenData database uses.
//!
//! Every key starts with a two-byte prefix naming the subsystem that owns it and the
//! version of that subsystem's key layout. What follows depends on the record kind:
//!
//! ```text
//! global record:     ┌───────────┬─────────┬─────────────┬──────────────────┐
//!                    │ subsystem │ version │ record type │ record fields... │
//!                    │   u8      │   u8    │ u8 (< 0x80) │                  │
//!                    └───────────┴─────────┴─────────────┴──────────────────┘
//!
//! segmented record:  ┌───────────┬─────────┬──────┬────────────┬─────────────┬──────────────────┐
//!                    │ subsystem │ version │ 0x80 │ segment id │ record type │ record fields... │
//!                    │   u8      │   u8    │ mark │  u32 BE    │ u8 (< 0x80) │                  │
//!                    └───────────┴─────────┴──────┴────────────┴─────────────┴──────────────────┘
//! ```
//!
//! Record types are below `0x80`; the byte `0x80` after the prefix marks a segmented
//! key, so global and segmented records never collide, and all of one segment's
//! records form one contiguous key range (see [`crate::segment`]).
//! Record fields are written with the order-preserving encodings in
//! [`crate::encoding`] through [`KeyBuilder`] and read back with [`KeyReader`].

use bytes::Bytes;

use crate::encoding;
use crate::error::DecodeError;

/// The owner of a key: which database's layout the rest of the key follows.
///
/// `0x00` is reserved and never a valid subsystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Subsystem {
    /// The log database (`opendata-log`).
    Log = 0x01,
    /// The time series database (`opendata-timeseries`).
    Timeseries = 0x02,
    /// The vector database (`opendata-vector`).
    Vector = 0x03,
}

impl Subsystem {
    /// Every registered subsystem.
    pub const ALL: [Subsystem; 3] = [Subsystem::Log, Subsystem::Timeseries, Subsystem::Vector];

    /// The subsystem's byte.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The subsystem's name, also the directory its database lives in.
    pub fn name(self) -> &'static str {
        match self {
            Subsystem::Log => "log",
            Subsystem::Timeseries => "timeseries",
            Subsystem::Vector => "vector",
        }
    }
}

impl TryFrom<u8> for Subsystem {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            0x01 => Ok(Subsystem::Log),
            0x02 => Ok(Subsystem::Timeseries),
            0x03 => Ok(Subsystem::Vector),
            0x00 => Err(DecodeError::new("subsystem", "0x00 is reserved")),
            other => Err(DecodeError::new(
                "subsystem",
                format!("unknown subsystem 0x{other:02x}"),
            )),
        }
    }
}

/// The byte after the prefix that marks a segmented key.
pub const SEGMENT_MARKER: u8 = 0x80;

/// A record type byte. Valid record types are `0x00..0x80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType(u8);

impl RecordType {
    /// A record type; panics at compile time (in const contexts) or at startup when
    /// `value >= 0x80`, which would collide with [`SEGMENT_MARKER`]. Record types are
    /// constants chosen by the programmer, never data.
    pub const fn new(value: u8) -> Self {
        assert!(value < SEGMENT_MARKER, "record types must be below 0x80");
        RecordType(value)
    }

    /// The record type's byte.
    pub const fn as_u8(self) -> u8 {
        self.0
    }

    fn parse(value: u8) -> Result<Self, DecodeError> {
        if value < SEGMENT_MARKER {
            Ok(RecordType(value))
        } else {
            Err(DecodeError::new(
                "record type",
                format!("0x{value:02x} is not a record type"),
            ))
        }
    }
}

/// The `[subsystem][version]` prefix of a key layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyPrefix {
    /// Who owns the key.
    pub subsystem: Subsystem,
    /// The version of the owner's key layout.
    pub version: u8,
}

impl KeyPrefix {
    /// A prefix for `subsystem` at layout `version`.
    pub const fn new(subsystem: Subsystem, version: u8) -> Self {
        Self { subsystem, version }
    }

    /// The two prefix bytes.
    pub fn bytes(&self) -> [u8; 2] {
        [self.subsystem.as_u8(), self.version]
    }

    /// Starts a key for a global (unsegmented) record.
    pub fn record(&self, record_type: RecordType) -> KeyBuilder {
        let mut buf = Vec::with_capacity(32);
        buf.extend_from_slice(&self.bytes());
        buf.push(record_type.as_u8());
        KeyBuilder { buf }
    }

    /// Starts a key for a record in `segment`.
    pub fn segmented(&self, segment: u32, record_type: RecordType) -> KeyBuilder {
        let mut buf = Vec::with_capacity(32);
        buf.extend_from_slice(&self.segment_prefix(segment));
        buf.push(record_type.as_u8());
        KeyBuilder { buf }
    }

    /// The bytes every key of `segment` starts with: `[subsystem][version][0x80][segment]`.
    pub fn segment_prefix(&self, segment: u32) -> [u8; 7] {
        let s = segment.to_be_bytes();
        let [a, b] = self.bytes();
        [a, b, SEGMENT_MARKER, s[0], s[1], s[2], s[3]]
    }

    /// Parses `key`, checking that it belongs to this prefix, and returns a reader over
    /// its header and fields.
    pub fn parse<'a>(&self, key: &'a [u8]) -> Result<ParsedKey<'a>, DecodeError> {
        let parsed = ParsedKey::parse(key)?;
        if parsed.subsystem != self.subsystem {
            return Err(DecodeError::new(
                "key",
                format!(
                    "belongs to subsystem {:?}, expected {:?}",
                    parsed.subsystem, self.subsystem
                ),
            ));
        }
        if parsed.version != self.version {
            return Err(DecodeError::new(
                "key",
                format!(
                    "has layout version {}, expected {}",
                    parsed.version, self.version
                ),
            ));
        }
        Ok(parsed)
    }
}

/// Builds a key field by field with order-preserving encodings.
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    buf: Vec<u8>,
}

impl KeyBuilder {
    /// Appends an escaped, terminated byte string.
    pub fn bytes(mut self, value: &[u8]) -> Self {
        encoding::put_bytes(&mut self.buf, value);
        self
    }

    /// Appends the escaped form of `value` with no terminator. Only useful as the last
    /// field of a scan prefix.
    pub fn bytes_prefix(mut self, value: &[u8]) -> Self {
        encoding::escape_prefix(&mut self.buf, value);
        self
    }

    /// Appends one raw byte.
    pub fn u8(mut self, value: u8) -> Self {
        self.buf.push(value);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(mut self, value: u16) -> Self {
        encoding::put_u16(&mut self.buf, value);
        self
    }

    /// Appends a big-endian `u32`.
    pub fn u32(mut self, value: u32) -> Self {
        encoding::put_u32(&mut self.buf, value);
        self
    }

    /// Appends a big-endian `u64`.
    pub fn u64(mut self, value: u64) -> Self {
        encoding::put_u64(&mut self.buf, value);
        self
    }

    /// Appends a sortable `i64`.
    pub fn i64(mut self, value: i64) -> Self {
        encoding::put_i64(&mut self.buf, value);
        self
    }

    /// Appends a sortable `f64`.
    pub fn f64(mut self, value: f64) -> Self {
        encoding::put_f64(&mut self.buf, value);
        self
    }

    /// Appends an order-preserving varint.
    pub fn varint(mut self, value: u64) -> Self {
        encoding::put_varint(&mut self.buf, value);
        self
    }

    /// Appends raw bytes with no encoding (only safe as the last field).
    pub fn raw(mut self, value: &[u8]) -> Self {
        self.buf.extend_from_slice(value);
        self
    }

    /// The key built so far, as a vector.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The finished key.
    pub fn build(self) -> Bytes {
        Bytes::from(self.buf)
    }
}

/// A key whose header has been parsed; its fields are read with the `read_*` methods.
#[derive(Debug, Clone)]
pub struct ParsedKey<'a> {
    /// Owner of the key.
    pub subsystem: Subsystem,
    /// Key layout version.
    pub version: u8,
    /// The segment, for segmented keys.
    pub segment: Option<u32>,
    /// The record type.
    pub record_type: RecordType,
    rest: &'a [u8],
}

impl<'a> ParsedKey<'a> {
    /// Parses the header of any OpenData key.
    pub fn parse(key: &'a [u8]) -> Result<Self, DecodeError> {
        let mut cur = key;
        let subsystem = Subsystem::try_from(encoding::get_u8(&mut cur)?)?;
        let version = encoding::get_u8(&mut cur)?;
        let tag = encoding::get_u8(&mut cur)?;
        let (segment, record_type) = if tag == SEGMENT_MARKER {
            let segment = encoding::get_u32(&mut cur)?;
            let rt = encoding::get_u8(&mut cur)?;
            (Some(segment), RecordType::parse(rt)?)
        } else {
            (None, RecordType::parse(tag)?)
        };
        Ok(Self {
            subsystem,
            version,
            segment,
            record_type,
            rest: cur,
        })
    }

    /// Fails unless the key has the given record type.
    pub fn expect_record_type(self, record_type: RecordType) -> Result<Self, DecodeError> {
        if self.record_type == record_type {
            Ok(self)
        } else {
            Err(DecodeError::new(
                "key",
                format!(
                    "has record type 0x{:02x}, expected 0x{:02x}",
                    self.record_type.as_u8(),
                    record_type.as_u8()
                ),
            ))
        }
    }

    /// Reads an escaped, terminated byte string.
    pub fn read_bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        encoding::get_bytes(&mut self.rest)
    }

    /// Reads one raw byte.
    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        encoding::get_u8(&mut self.rest)
    }

    /// Reads a big-endian `u16`.
    pub fn read_u16(&mut self) -> Result<u16, DecodeError> {
        encoding::get_u16(&mut self.rest)
    }

    /// Reads a big-endian `u32`.
    pub fn read_u32(&mut self) -> Result<u32, DecodeError> {
        encoding::get_u32(&mut self.rest)
    }

    /// Reads a big-endian `u64`.
    pub fn read_u64(&mut self) -> Result<u64, DecodeError> {
        encoding::get_u64(&mut self.rest)
    }

    /// Reads a sortable `i64`.
    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        encoding::get_i64(&mut self.rest)
    }

    /// Reads a sortable `f64`.
    pub fn read_f64(&mut self) -> Result<f64, DecodeError> {
        encoding::get_f64(&mut self.rest)
    }

    /// Reads an order-preserving varint.
    pub fn read_varint(&mut self) -> Result<u64, DecodeError> {
        encoding::get_varint(&mut self.rest)
    }

    /// The bytes not read yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Fails if any bytes are left unread.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::new(
                "key",
                format!("{} unexpected trailing bytes", self.rest.len()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const P: KeyPrefix = KeyPrefix::new(Subsystem::Log, 1);
    const DATA: RecordType = RecordType::new(0x10);

    #[test]
    fn should_build_and_parse_global_key() {
        let key = P.record(DATA).bytes(b"orders").u64(7).build();
        assert_eq!(&key[..3], &[0x01, 0x01, 0x10]);
        let mut parsed = P.parse(&key).unwrap().expect_record_type(DATA).unwrap();
        assert_eq!(parsed.segment, None);
        assert_eq!(parsed.read_bytes().unwrap(), b"orders");
        assert_eq!(parsed.read_u64().unwrap(), 7);
        parsed.finish().unwrap();
    }

    #[test]
    fn should_build_and_parse_segmented_key() {
        let key = P.segmented(0x01020304, DATA).varint(300).build();
        assert_eq!(&key[..8], &[0x01, 0x01, 0x80, 1, 2, 3, 4, 0x10]);
        let mut parsed = P.parse(&key).unwrap();
        assert_eq!(parsed.segment, Some(0x01020304));
        assert_eq!(parsed.record_type, DATA);
        assert_eq!(parsed.read_varint().unwrap(), 300);
        parsed.finish().unwrap();
    }

    #[test]
    fn should_reject_malformed_keys() {
        assert!(ParsedKey::parse(&[]).is_err());
        assert!(ParsedKey::parse(&[0x00, 0x01, 0x10]).is_err());
        assert!(ParsedKey::parse(&[0x09, 0x01, 0x10]).is_err());
        assert!(ParsedKey::parse(&[0x01, 0x01]).is_err());
        assert!(ParsedKey::parse(&[0x01, 0x01, 0x80, 0x00]).is_err());
        assert!(ParsedKey::parse(&[0x01, 0x01, 0x90]).is_err());
        let other = KeyPrefix::new(Subsystem::Vector, 1).record(DATA).build();
        assert!(P.parse(&other).is_err());
        let newer = KeyPrefix::new(Subsystem::Log, 2).record(DATA).build();
        assert!(P.parse(&newer).is_err());
        let trailing = P.record(DATA).u8(1).build();
        assert!(P.parse(&trailing).unwrap().finish().is_err());
    }

    proptest! {
        #[test]
        fn should_never_panic_parsing_garbage(data in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(mut p) = ParsedKey::parse(&data) {
                let _ = p.read_bytes();
                let _ = p.read_varint();
                let _ = p.read_u64();
            }
        }

        #[test]
        fn should_order_keys_like_their_fields(a in (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..6), any::<i64>()),
                                               b in (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..6), any::<i64>())) {
            let ka = P.segmented(a.0, DATA).bytes(&a.1).i64(a.2).build();
            let kb = P.segmented(b.0, DATA).bytes(&b.1).i64(b.2).build();
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }

        #[test]
        fn should_sort_global_records_before_segments(rt in 0u8..0x80, seg in any::<u32>()) {
            let global = P.record(RecordType::new(rt)).raw(&[0xFF; 8]).build();
            let segmented = P.segmented(seg, RecordType::new(0)).build();
            prop_assert!(global < segmented);
        }
    }
}
