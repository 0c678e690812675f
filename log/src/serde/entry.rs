//! Log entries, stored in chunks: the entries one append gave one key, in one value.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬────────────┬──────┬───────────────────────────┬─────────────────┐
//!        │ 0x01 │ 0x01 │ 0x80 │ segment id │ 0x01 │ log key (escaped, 00 01)  │ last sequence   │
//!        │ log  │ ver  │ mark │  u32 BE    │ type │ 0x00 -> 00 FF             │ u64 BE          │
//!        └──────┴──────┴──────┴────────────┴──────┴───────────────────────────┴─────────────────┘
//! value: ┌─────────────────────────┬──────────────┬──────────────────────────────────────────────┐
//!        │ append time (ms) u64 BE │ count LEB128 │ count × [seq step LEB128][len LEB128][bytes] │
//!        └─────────────────────────┴──────────────┴──────────────────────────────────────────────┘
//! ```
//!
//! Entries in a chunk ascend by sequence. The first entry's step is `last - first`
//! (so its sequence is `last - step`); each later step is the gap to the previous
//! sequence (at least 1). A key's chunks hold disjoint, ascending sequence ranges, and
//! sort by last sequence, so a scan from sequence `s` starts at the first chunk whose
//! last sequence is `>= s`: the chunk holding `s`, or the next one.
//!
//! Storing an append's entries for a key as one SlateDB value turns a batch of 100
//! records into one key-value write instead of 100, and one key instead of 100 on disk.

use bytes::{Bytes, BytesMut};
use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, get_u64, put_leb128};

use super::{ENTRY, PREFIX};

/// Largest payload bytes a writer puts in one chunk before starting another.
pub const CHUNK_TARGET_BYTES: usize = 512 * 1024;
/// Largest number of entries a writer puts in one chunk.
pub const CHUNK_MAX_ENTRIES: usize = 4096;

/// The storage key of the chunk of `key` in `segment` whose last entry is `last_sequence`.
pub fn encode_key(segment: u32, key: &[u8], last_sequence: u64) -> Bytes {
    PREFIX
        .segmented(segment, ENTRY)
        .bytes(key)
        .u64(last_sequence)
        .build()
}

/// The prefix every chunk of `key` in `segment` starts with.
pub fn key_prefix(segment: u32, key: &[u8]) -> Vec<u8> {
    PREFIX.segmented(segment, ENTRY).bytes(key).into_vec()
}

/// Decodes a chunk key into `(segment, log key, last sequence)`.
pub fn decode_key(key: &[u8]) -> Result<(u32, Vec<u8>, u64), DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(ENTRY)?;
    let segment = parsed
        .segment
        .ok_or_else(|| DecodeError::new("log entry key", "not segmented"))?;
    let log_key = parsed.read_bytes()?;
    let sequence = parsed.read_u64()?;
    parsed.finish()?;
    Ok((segment, log_key, sequence))
}

/// Decodes only the last sequence: the last eight bytes of a chunk key.
pub fn decode_last_sequence(key: &[u8]) -> Result<u64, DecodeError> {
    if key.len() < 8 {
        return Err(DecodeError::truncated("log entry key"));
    }
    let mut tail = &key[key.len() - 8..];
    get_u64(&mut tail)
}

/// Builds one chunk value.
#[derive(Debug)]
pub struct ChunkBuilder {
    timestamp_ms: u64,
    entries: Vec<(u64, Bytes)>,
    payload_bytes: usize,
}

impl ChunkBuilder {
    /// A chunk whose entries were appended at `timestamp_ms`.
    pub fn new(timestamp_ms: u64, capacity: usize) -> Self {
        Self {
            timestamp_ms,
            entries: Vec::with_capacity(capacity),
            payload_bytes: 0,
        }
    }

    /// Payload bytes added so far.
    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// Entries added so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry (the payload is shared, not copied, until [`ChunkBuilder::finish`]);
    /// sequences must ascend.
    pub fn push(&mut self, sequence: u64, payload: Bytes) {
        debug_assert!(self.entries.last().is_none_or(|(s, _)| sequence > *s));
        self.payload_bytes += payload.len();
        self.entries.push((sequence, payload));
    }

    /// The chunk's last sequence and its encoded value.
    pub fn finish(self) -> (u64, Bytes) {
        let first = self
            .entries
            .first()
            .expect("a chunk has at least one entry")
            .0;
        let last = self
            .entries
            .last()
            .expect("a chunk has at least one entry")
            .0;
        let mut out = BytesMut::with_capacity(self.payload_bytes + 18 + self.entries.len() * 6);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        put_leb128(&mut out, self.entries.len() as u64);
        let mut prev = None;
        for (seq, payload) in &self.entries {
            let step = match prev {
                None => last - first,
                Some(p) => seq - p,
            };
            prev = Some(*seq);
            put_leb128(&mut out, step);
            put_leb128(&mut out, payload.len() as u64);
            out.extend_from_slice(payload);
        }
        (last, out.freeze())
    }
}

/// Reads the entries of a chunk value. Every length is checked against the value, so
/// corrupt bytes give a [`DecodeError`], never a panic or an over-read.
#[derive(Debug, Clone)]
pub struct ChunkReader {
    value: Bytes,
    timestamp_ms: u64,
    remaining: u64,
    pos: usize,
    prev: Option<u64>,
    last: u64,
}

impl ChunkReader {
    /// Opens the chunk `value` whose key says its last sequence is `last_sequence`.
    pub fn new(last_sequence: u64, value: Bytes) -> Result<Self, DecodeError> {
        let mut cur = &value[..];
        let timestamp_ms = get_u64(&mut cur).map_err(|_| DecodeError::truncated("log chunk"))?;
        let mut pos = 8;
        let count = get_leb128(&value, &mut pos)?;
        if count == 0 {
            return Err(DecodeError::new("log chunk", "chunk has no entries"));
        }
        // Every entry takes at least two bytes: a cheap bound against absurd counts.
        if count > (value.len() as u64).saturating_sub(pos as u64) / 2 {
            return Err(DecodeError::new(
                "log chunk",
                "entry count exceeds the chunk size",
            ));
        }
        Ok(Self {
            value,
            timestamp_ms,
            remaining: count,
            pos,
            prev: None,
            last: last_sequence,
        })
    }

    /// When the chunk's entries were appended.
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// Entries not read yet.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next `(sequence, payload)`, sharing the chunk's memory.
    pub fn next_entry(&mut self) -> Result<Option<(u64, Bytes)>, DecodeError> {
        Ok(self
            .next_range()?
            .map(|(seq, range)| (seq, self.value.slice(range))))
    }

    /// The next `(sequence, payload)`, borrowed from the chunk (no reference count
    /// is taken: the fast path of scans that copy the payload anyway).
    pub fn next_entry_ref(&mut self) -> Result<Option<(u64, &[u8])>, DecodeError> {
        match self.next_range()? {
            Some((seq, range)) => Ok(Some((seq, &self.value[range]))),
            None => Ok(None),
        }
    }

    /// The next entry's sequence and where its payload lies in the chunk.
    fn next_range(&mut self) -> Result<Option<(u64, std::ops::Range<usize>)>, DecodeError> {
        if self.remaining == 0 {
            if self.pos != self.value.len() {
                return Err(DecodeError::new(
                    "log chunk",
                    "trailing bytes after the last entry",
                ));
            }
            return Ok(None);
        }
        let step = get_leb128(&self.value, &mut self.pos)?;
        let seq = match self.prev {
            None => self
                .last
                .checked_sub(step)
                .ok_or_else(|| DecodeError::new("log chunk", "first sequence underflows"))?,
            Some(p) => {
                if step == 0 {
                    return Err(DecodeError::new("log chunk", "sequences do not ascend"));
                }
                p.checked_add(step)
                    .ok_or_else(|| DecodeError::new("log chunk", "sequence overflows"))?
            }
        };
        let len = get_leb128(&self.value, &mut self.pos)? as usize;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.value.len())
            .ok_or_else(|| DecodeError::truncated("log chunk"))?;
        let payload = self.pos..end;
        self.pos = end;
        self.prev = Some(seq);
        self.remaining -= 1;
        if self.remaining == 0 && seq != self.last {
            return Err(DecodeError::new(
                "log chunk",
                "last entry does not match the key's sequence",
            ));
        }
        Ok(Some((seq, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(ts: u64, entries: &[(u64, Vec<u8>)]) -> (u64, Bytes) {
        let mut b = ChunkBuilder::new(ts, 0);
        for (s, p) in entries {
            b.push(*s, Bytes::copy_from_slice(p));
        }
        b.finish()
    }

    fn ascending() -> impl Strategy<Value = Vec<(u64, Vec<u8>)>> {
        (
            any::<u32>(),
            proptest::collection::vec(
                (1u64..1000, proptest::collection::vec(any::<u8>(), 0..40)),
                1..20,
            ),
        )
            .prop_map(|(base, steps)| {
                let mut seq = u64::from(base);
                steps
                    .into_iter()
                    .map(|(step, payload)| {
                        seq += step;
                        (seq, payload)
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn should_roundtrip_chunks(ts in any::<u64>(), entries in ascending()) {
            let (last, value) = build(ts, &entries);
            prop_assert_eq!(last, entries.last().unwrap().0);
            let mut r = ChunkReader::new(last, value).unwrap();
            prop_assert_eq!(r.timestamp_ms(), ts);
            let mut got = Vec::new();
            while let Some((s, p)) = r.next_entry().unwrap() {
                got.push((s, p.to_vec()));
            }
            prop_assert_eq!(got, entries);
        }

        #[test]
        fn should_roundtrip_keys(seg in any::<u32>(), key in proptest::collection::vec(any::<u8>(), 0..16), seq in any::<u64>()) {
            let k = encode_key(seg, &key, seq);
            prop_assert_eq!(decode_key(&k).unwrap(), (seg, key.clone(), seq));
            prop_assert_eq!(decode_last_sequence(&k).unwrap(), seq);
            prop_assert!(k.starts_with(&key_prefix(seg, &key)));
        }

        #[test]
        fn should_order_by_segment_key_then_sequence(a in (any::<u32>(), proptest::collection::vec(0u8..3, 0..4), any::<u64>()), b in (any::<u32>(), proptest::collection::vec(0u8..3, 0..4), any::<u64>())) {
            prop_assert_eq!(encode_key(a.0, &a.1, a.2).cmp(&encode_key(b.0, &b.1, b.2)), a.cmp(&b));
        }

        #[test]
        fn should_reject_garbage_without_panicking(last in any::<u64>(), data in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = decode_key(&data);
            if let Ok(mut r) = ChunkReader::new(last, Bytes::from(data)) {
                for _ in 0..64 {
                    match r.next_entry() {
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            }
        }

        #[test]
        fn should_detect_truncation(entries in ascending(), cut in 1usize..20) {
            let (last, value) = build(1, &entries);
            let cut = cut.min(value.len() - 9);
            let truncated = value.slice(..value.len() - cut);
            let result = ChunkReader::new(last, truncated).and_then(|mut r| {
                while r.next_entry()?.is_some() {}
                Ok(())
            });
            prop_assert!(result.is_err());
        }
    }
}
