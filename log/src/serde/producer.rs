//! An idempotent producer's state in one topic partition: its epoch and its last
//! batches, so a retried batch is recognised (and not written twice) across restarts.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────────────────┬──────────────────┐
//!        │ 0x01 │ 0x01 │ 0x09 │ log key (escaped)         │ producer id u64  │
//!        └──────┴──────┴──────┴───────────────────────────┴──────────────────┘
//! value: ┌──────────┬──────────────┬─────────┬───────────────────────────────────────────────┐
//!        │ epoch    │ updated (ms) │ n u8    │ n × [base seq i32 BE][last seq i32 BE]        │
//!        │ i16 BE   │ u64 BE       │ (≤ 5)   │     [base offset u64 BE]  (oldest first)      │
//!        └──────────┴──────────────┴─────────┴───────────────────────────────────────────────┘
//! ```
//!
//! Written in the same write as the batch it describes, so the state and the data are
//! durable together.

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{PREFIX, PRODUCER};

/// Batches remembered per producer and partition (as in Kafka).
pub const MAX_BATCHES: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// The batch's first sequence number.
    pub base_sequence: i32,
    /// The batch's last sequence number.
    pub last_sequence: i32,
    /// The offset its first record got.
    pub base_offset: u64,
}

/// A producer's state in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerState {
    /// The producer's epoch.
    pub epoch: i16,
    /// When it last wrote (ms since the Unix epoch).
    pub updated_ms: u64,
    /// Its last batches, oldest first (at most [`MAX_BATCHES`]).
    pub batches: Vec<BatchMeta>,
}

/// The key of producer `producer_id`'s state in partition log key `log_key`.
pub fn encode_key(log_key: &[u8], producer_id: u64) -> Bytes {
    PREFIX
        .record(PRODUCER)
        .bytes(log_key)
        .u64(producer_id)
        .build()
}

/// The prefix of every producer state key.
pub fn prefix() -> Bytes {
    PREFIX.record(PRODUCER).build()
}

/// The prefix of every producer state key of partition `log_key`.
pub fn partition_prefix(log_key: &[u8]) -> Vec<u8> {
    PREFIX.record(PRODUCER).bytes(log_key).into_vec()
}

/// Decodes a state key into `(log key, producer id)`.
pub fn decode_key(key: &[u8]) -> Result<(Vec<u8>, u64), DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(PRODUCER)?;
    let log_key = parsed.read_bytes()?;
    let id = parsed.read_u64()?;
    parsed.finish()?;
    Ok((log_key, id))
}

/// Encodes a state value.
pub fn encode_value(state: &ProducerState) -> Bytes {
    let n = state.batches.len().min(MAX_BATCHES);
    let skip = state.batches.len() - n;
    let mut out = Vec::with_capacity(11 + n * 16);
    out.extend_from_slice(&state.epoch.to_be_bytes());
    out.extend_from_slice(&state.updated_ms.to_be_bytes());
    out.push(n as u8);
    for b in &state.batches[skip..] {
        out.extend_from_slice(&b.base_sequence.to_be_bytes());
        out.extend_from_slice(&b.last_sequence.to_be_bytes());
        out.extend_from_slice(&b.base_offset.to_be_bytes());
    }
    Bytes::from(out)
}

/// Decodes a state value.
pub fn decode_value(value: &[u8]) -> Result<ProducerState, DecodeError> {
    if value.len() < 11 {
        return Err(DecodeError::truncated("producer state"));
    }
    let epoch = i16::from_be_bytes([value[0], value[1]]);
    let updated_ms = u64::from_be_bytes(value[2..10].try_into().expect("8 bytes"));
    let n = value[10] as usize;
    if n > MAX_BATCHES {
        return Err(DecodeError::new("producer state", "too many batches"));
    }
    if value.len() != 11 + n * 16 {
        return Err(DecodeError::new("producer state", "wrong length"));
    }
    let batches = value[11..]
        .chunks_exact(16)
        .map(|c| BatchMeta {
            base_sequence: i32::from_be_bytes(c[0..4].try_into().expect("4 bytes")),
            last_sequence: i32::from_be_bytes(c[4..8].try_into().expect("4 bytes")),
            base_offset: u64::from_be_bytes(c[8..16].try_into().expect("8 bytes")),
        })
        .collect();
    Ok(ProducerState {
        epoch,
        updated_ms,
        batches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_roundtrip_producer_state(
            key in proptest::collection::vec(any::<u8>(), 1..16),
            id in any::<u64>(),
            epoch in any::<i16>(),
            updated_ms in any::<u64>(),
            batches in proptest::collection::vec((any::<i32>(), any::<i32>(), any::<u64>()), 0..=MAX_BATCHES),
        ) {
            prop_assert_eq!(decode_key(&encode_key(&key, id)).unwrap(), (key.clone(), id));
            let state = ProducerState {
                epoch,
                updated_ms,
                batches: batches.into_iter().map(|(b, l, o)| BatchMeta { base_sequence: b, last_sequence: l, base_offset: o }).collect(),
            };
            prop_assert_eq!(decode_value(&encode_value(&state)).unwrap(), state);
        }

        #[test]
        fn should_reject_garbage(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_key(&data);
            let _ = decode_value(&data);
        }
    }
}
