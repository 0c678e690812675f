//! Kafka record batches (magic 2): decoding what producers send, with every codec, and
//! encoding what consumers fetch.
//!
//! ```text
//! batch:  ┌─────────────┬──────────────┬──────────────┬───────┬─────────┬────────────┐
//!         │ base offset │ batch length │ leader epoch │ magic │ crc32c  │ attributes │
//!         │ i64         │ i32          │ i32          │ i8=2  │ u32     │ i16        │
//!         ├─────────────┴──┬───────────┴────┬─────────┴───────┴──┬──────┴───┬────────┤
//!         │ last offset Δ  │ base timestamp │ max timestamp      │ producer │ epoch  │
//!         │ i32            │ i64            │ i64                │ id i64   │ i16    │
//!         ├────────────────┼────────────────┼────────────────────┴──────────┴────────┤
//!         │ base sequence  │ record count   │ records (compressed per attributes)    │
//!         │ i32            │ i32            │                                        │
//!         └────────────────┴────────────────┴────────────────────────────────────────┘
//! record: [length varint][attributes i8][timestamp Δ varlong][offset Δ varint]
//!         [key length varint (-1 null)][key][value length varint (-1 null)][value]
//!         [header count varint] × [name length varint][name][value length varint][value]
//! ```
//!
//! The CRC covers everything from the attributes to the end. Attributes: bits 0-2 the
//! codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), bit 3 LogAppendTime, bit 4
//! transactional, bit 5 control. Varints are zigzag, as in protocol buffers.
//!
//! Decoding is bounded: every length is checked against what is left, record counts
//! against the bytes that could hold them, and decompression against a per-request
//! budget (`kafka.max_decompressed_bytes`), so a small compressed request cannot expand
//! into unbounded memory.

use std::io::Read;

use bytes::{BufMut, Bytes, BytesMut};
use opendata_log::{PartitionChunk, PartitionRecord, RecordAttrs};

/// Bytes before the records in a batch.
const HEADER: usize = 61;

/// Why a batch was refused; each maps to a Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Malformed or failing its CRC (`CORRUPT_MESSAGE`).
    Corrupt(String),
    /// Older message format or a transactional or control batch
    /// (`UNSUPPORTED_FOR_MESSAGE_FORMAT`).
    Unsupported(String),
    /// Decompresses past the limit (`MESSAGE_TOO_LARGE`).
    TooLarge(String),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Corrupt(m) | BatchError::Unsupported(m) | BatchError::TooLarge(m) => {
                f.write_str(m)
            }
        }
    }
}

/// A decoded producer batch.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducedBatch {
    /// The producer id (-1: not idempotent).
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The first record's sequence number.
    pub base_sequence: i32,
    /// The records, with their CreateTime timestamps.
    pub records: Vec<PartitionRecord>,
}

fn corrupt(msg: impl Into<String>) -> BatchError {
    BatchError::Corrupt(msg.into())
}

struct Cursor<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<Bytes, BatchError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| corrupt("record is truncated"))?;
        let out = self.buf.slice(self.pos..end);
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, BatchError> {
        Ok(self.take(1)?[0])
    }

    fn varlong(&mut self) -> Result<i64, BatchError> {
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return Err(corrupt("varint is too long"));
            }
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err(corrupt("varint is too long"))
    }

    fn varint(&mut self) -> Result<i32, BatchError> {
        i32::try_from(self.varlong()?).map_err(|_| corrupt("varint out of range"))
    }

    /// A length-prefixed byte string; `None` for length -1.
    fn nullable(&mut self) -> Result<Option<Bytes>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            n if n < 0 => Err(corrupt(format!("negative length {n}"))),
            n => Ok(Some(self.take(n as usize)?)),
        }
    }
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes(b[..8].try_into().expect("8 bytes"))
}

/// Reads at most `limit` bytes from a decompressor.
fn read_limited(mut r: impl Read, limit: usize, codec: &str) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    (&mut r)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("{codec} data does not decompress: {e}")))?;
    if out.len() > limit {
        return Err(BatchError::TooLarge(format!(
            "the request decompresses to more than its budget of {limit} more bytes (kafka.max_decompressed_bytes)"
        )));
    }
    Ok(out)
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

fn snappy(data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let raw = |block: &[u8], out: &mut Vec<u8>| -> Result<(), BatchError> {
        let len = snap::raw::decompress_len(block)
            .map_err(|e| corrupt(format!("snappy data does not decompress: {e}")))?;
        if out.len() + len > limit {
            return Err(BatchError::TooLarge(format!(
                "the request decompresses to more than its budget of {limit} more bytes (kafka.max_decompressed_bytes)"
            )));
        }
        let start = out.len();
        out.resize(start + len, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| corrupt(format!("snappy data does not decompress: {e}")))?;
        Ok(())
    };
    let mut out = Vec::new();
    if data.starts_with(XERIAL_MAGIC) {
        // The Java client's framing: magic, version and compat (16 bytes), then blocks
        // each prefixed by its length.
        let mut pos = 16;
        while pos < data.len() {
            let len = data
                .get(pos..pos + 4)
                .map(be_i32)
                .ok_or_else(|| corrupt("snappy block is truncated"))?;
            pos += 4;
            let block = usize::try_from(len)
                .ok()
                .and_then(|l| data.get(pos..pos + l))
                .ok_or_else(|| corrupt("snappy block is truncated"))?;
            raw(block, &mut out)?;
            pos += block.len();
        }
    } else {
        raw(data, &mut out)?;
    }
    Ok(out)
}

fn decompress(codec: i16, data: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    match codec {
        1 => read_limited(flate2::read::MultiGzDecoder::new(data), limit, "gzip"),
        2 => snappy(data, limit),
        3 => {
            let dec = lz4::Decoder::new(data)
                .map_err(|e| corrupt(format!("lz4 data does not decompress: {e}")))?;
            read_limited(dec, limit, "lz4")
        }
        4 => {
            let dec = zstd::stream::read::Decoder::new(data)
                .map_err(|e| corrupt(format!("zstd data does not decompress: {e}")))?;
            read_limited(dec, limit, "zstd")
        }
        other => Err(corrupt(format!("unknown compression codec {other}"))),
    }
}

/// Decodes every batch in a produce request's records for one partition.
/// `budget` is what compressed batches may still decompress to (shared by every
/// partition of one request); it is reduced by what they take.
pub fn decode_batches(data: &Bytes, budget: &mut usize) -> Result<Vec<ProducedBatch>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() < HEADER {
            return Err(corrupt("record batch is truncated"));
        }
        let magic = rest[16] as i8;
        if magic != 2 {
            return Err(BatchError::Unsupported(format!(
                "message format v{magic} is not supported; clients must send record batches (magic 2)"
            )));
        }
        let length = be_i32(&rest[8..12]);
        let total = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(12))
            .filter(|t| *t >= HEADER && *t <= rest.len())
            .ok_or_else(|| corrupt(format!("record batch length {length} is invalid")))?;
        let batch = data.slice(pos..pos + total);
        pos += total;
        let crc = u32::from_be_bytes(batch[17..21].try_into().expect("4 bytes"));
        if crc32c::crc32c(&batch[21..]) != crc {
            return Err(corrupt("record batch fails its CRC"));
        }
        let attributes = be_i16(&batch[21..23]);
        if attributes & 0x20 != 0 {
            return Err(BatchError::Unsupported(
                "control batches (transactions) are not supported".into(),
            ));
        }
        if attributes & 0x10 != 0 {
            return Err(BatchError::Unsupported(
                "transactional batches are not supported".into(),
            ));
        }
        let base_timestamp = be_i64(&batch[27..35]);
        let producer_id = be_i64(&batch[43..51]);
        let producer_epoch = be_i16(&batch[51..53]);
        let base_sequence = be_i32(&batch[53..57]);
        let count = be_i32(&batch[57..61]);
        if count < 0 {
            return Err(corrupt(format!("record count {count} is negative")));
        }
        let body = match attributes & 0x07 {
            0 => batch.slice(HEADER..),
            codec => {
                let plain = decompress(codec, &batch[HEADER..], *budget)?;
                *budget -= plain.len();
                Bytes::from(plain)
            }
        };
        // Each record takes at least 7 bytes, which bounds the allocation.
        if (count as usize) > body.len() / 7 + 1 {
            return Err(corrupt(format!(
                "record count {count} does not fit in {} bytes",
                body.len()
            )));
        }
        let mut cur = Cursor { buf: &body, pos: 0 };
        let mut records = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let len = cur.varint()?;
            let start = cur.pos;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .filter(|e| *e <= body.len())
                .ok_or_else(|| corrupt(format!("record length {len} is invalid")))?;
            let _attrs = cur.u8()?;
            let ts_delta = cur.varlong()?;
            let _offset_delta = cur.varint()?;
            let key = cur.nullable()?;
            let value = cur.nullable()?;
            let n = cur.varint()?;
            if n < 0 || n as usize > end - cur.pos {
                return Err(corrupt(format!("header count {n} is invalid")));
            }
            let mut headers = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let name = cur
                    .nullable()?
                    .ok_or_else(|| corrupt("a header name is null"))?;
                let v = cur.nullable()?;
                headers.push((name, v));
            }
            if cur.pos != end {
                return Err(corrupt("record length does not match its fields"));
            }
            let null_value = value.is_none();
            records.push(PartitionRecord {
                value: value.unwrap_or_default(),
                attrs: RecordAttrs {
                    timestamp_ms: Some(base_timestamp.wrapping_add(ts_delta)),
                    key,
                    headers,
                    null_value,
                },
            });
        }
        if cur.pos != body.len() {
            return Err(corrupt("record batch has trailing bytes"));
        }
        out.push(ProducedBatch {
            producer_id,
            producer_epoch,
            base_sequence,
            records,
        });
    }
    if out.is_empty() {
        return Err(corrupt("no record batch"));
    }
    Ok(out)
}

fn put_varlong(out: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

fn varlong_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    ((64 - z.leading_zeros() as usize).max(1)).div_ceil(7)
}

fn put_nullable(out: &mut BytesMut, v: Option<&[u8]>) {
    match v {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.put_slice(b);
        }
    }
}

fn nullable_len(v: Option<&[u8]>) -> usize {
    match v {
        None => 1,
        Some(b) => varlong_len(b.len() as i64) + b.len(),
    }
}

/// Appends one uncompressed batch holding `chunk` to `out`. With `log_append_time`,
/// every record's timestamp is the append time (the topic's
/// `message.timestamp.type=LogAppendTime`).
pub fn encode_chunk(out: &mut BytesMut, chunk: &PartitionChunk, log_append_time: bool) {
    let n = chunk.values.len();
    let ts_of = |i: usize| -> i64 {
        if log_append_time {
            return chunk.append_ms as i64;
        }
        chunk
            .attrs
            .as_ref()
            .and_then(|a| a.get(i))
            .and_then(|a| a.timestamp_ms)
            .unwrap_or(chunk.append_ms as i64)
    };
    let base_ts = if n > 0 {
        ts_of(0)
    } else {
        chunk.append_ms as i64
    };
    let mut max_ts = base_ts;
    let start = out.len();
    out.put_i64(chunk.base_offset as i64);
    out.put_i32(0); // length, patched below
    out.put_i32(0); // partition leader epoch
    out.put_i8(2);
    out.put_u32(0); // crc, patched below
    let attributes: i16 = if log_append_time { 0x08 } else { 0 };
    out.put_i16(attributes);
    out.put_i32(n.saturating_sub(1) as i32);
    out.put_i64(base_ts);
    out.put_i64(0); // max timestamp, patched below
    out.put_i64(-1);
    out.put_i16(-1);
    out.put_i32(-1);
    out.put_i32(n as i32);
    for (i, value) in chunk.values.iter().enumerate() {
        let attrs = chunk.attrs.as_ref().and_then(|a| a.get(i));
        let ts = ts_of(i);
        max_ts = max_ts.max(ts);
        let key = attrs.and_then(|a| a.key.as_deref());
        let val = if attrs.is_some_and(|a| a.null_value) {
            None
        } else {
            Some(value.as_ref())
        };
        let headers: &[(Bytes, Option<Bytes>)] = attrs.map_or(&[], |a| a.headers.as_slice());
        let ts_delta = ts.wrapping_sub(base_ts);
        let body_len = 1
            + varlong_len(ts_delta)
            + varlong_len(i as i64)
            + nullable_len(key)
            + nullable_len(val)
            + varlong_len(headers.len() as i64)
            + headers
                .iter()
                .map(|(h, v)| nullable_len(Some(h)) + nullable_len(v.as_deref()))
                .sum::<usize>();
        put_varlong(out, body_len as i64);
        out.put_u8(0);
        put_varlong(out, ts_delta);
        put_varlong(out, i as i64);
        put_nullable(out, key);
        put_nullable(out, val);
        put_varlong(out, headers.len() as i64);
        for (h, v) in headers {
            put_nullable(out, Some(h));
            put_nullable(out, v.as_deref());
        }
    }
    let total = out.len() - start;
    out[start + 8..start + 12].copy_from_slice(&((total - 12) as i32).to_be_bytes());
    out[start + 35..start + 43].copy_from_slice(&max_ts.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + 21..]);
    out[start + 17..start + 21].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunk(values: Vec<Vec<u8>>, keys: Vec<Option<Vec<u8>>>) -> PartitionChunk {
        PartitionChunk {
            base_offset: 42,
            append_ms: 1_700_000_000_000,
            attrs: Some(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| RecordAttrs {
                        timestamp_ms: Some(1_700_000_000_000 + i as i64 * 7 - 3),
                        key: k.clone().map(Bytes::from),
                        headers: vec![(Bytes::from("h"), Some(Bytes::from(format!("v{i}"))))],
                        null_value: false,
                    })
                    .collect(),
            ),
            values: values.into_iter().map(Bytes::from).collect(),
        }
    }

    proptest! {
        #[test]
        fn should_decode_what_it_encodes(
            records in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..40), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10))), 1..20),
        ) {
            let (values, keys): (Vec<_>, Vec<_>) = records.into_iter().unzip();
            let c = chunk(values, keys);
            let mut out = BytesMut::new();
            encode_chunk(&mut out, &c, false);
            let batches = decode_batches(&out.freeze(), &mut (1 << 20)).unwrap();
            prop_assert_eq!(batches.len(), 1);
            let got = &batches[0].records;
            prop_assert_eq!(got.len(), c.values.len());
            for (i, r) in got.iter().enumerate() {
                prop_assert_eq!(&r.value, &c.values[i]);
                prop_assert_eq!(&r.attrs, &c.attrs.as_ref().unwrap()[i]);
            }
        }

        #[test]
        fn should_refuse_garbage_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_batches(&Bytes::from(data), &mut (1 << 16));
        }
    }

    #[test]
    fn should_detect_a_flipped_bit() {
        let c = chunk(vec![b"hello".to_vec()], vec![None]);
        let mut out = BytesMut::new();
        encode_chunk(&mut out, &c, false);
        let n = out.len();
        out[n - 3] ^= 1;
        assert!(matches!(
            decode_batches(&out.freeze(), &mut (1 << 16)),
            Err(BatchError::Corrupt(_))
        ));
    }

    fn compressed(codec: i16, body: &[u8]) -> Bytes {
        // Re-wraps an uncompressed batch's records with `codec`.
        let c = chunk(
            vec![b"one".to_vec(), b"two".to_vec()],
            vec![Some(b"k".to_vec()), None],
        );
        let mut plain = BytesMut::new();
        encode_chunk(&mut plain, &c, false);
        let records = &plain[HEADER..];
        let packed: Vec<u8> = match codec {
            1 => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut e, records).unwrap();
                e.finish().unwrap()
            }
            2 => snap::raw::Encoder::new().compress_vec(records).unwrap(),
            3 => {
                let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
                std::io::Write::write_all(&mut e, records).unwrap();
                let (v, r) = e.finish();
                r.unwrap();
                v
            }
            4 => zstd::stream::encode_all(records, 1).unwrap(),
            _ => body.to_vec(),
        };
        let mut out = BytesMut::new();
        out.put_slice(&plain[..HEADER]);
        out.put_slice(&packed);
        let total = out.len();
        out[8..12].copy_from_slice(&((total - 12) as i32).to_be_bytes());
        out[21..23].copy_from_slice(&codec.to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        out.freeze()
    }

    #[test]
    fn should_decode_every_codec() {
        for codec in 1..=4 {
            let batches = decode_batches(&compressed(codec, &[]), &mut (1 << 16)).unwrap();
            let values: Vec<_> = batches[0].records.iter().map(|r| r.value.clone()).collect();
            assert_eq!(
                values,
                vec![Bytes::from("one"), Bytes::from("two")],
                "codec {codec}"
            );
            assert_eq!(batches[0].records[0].attrs.key, Some(Bytes::from("k")));
        }
    }

    #[test]
    fn should_refuse_a_batch_that_decompresses_past_the_limit() {
        let err = decode_batches(&compressed(4, &[]), &mut 16).unwrap_err();
        assert!(matches!(err, BatchError::TooLarge(_)), "{err:?}");
    }
}
