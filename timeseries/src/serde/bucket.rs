//! A bucket's state: whether it still takes samples, and how far its write-ahead
//! records have been flushed into chunks.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬────────────────┬──────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE  │ 0x10 │
//!        └──────┴──────┴──────┴────────────────┴──────┘
//! value: ┌─────────┬──────────────────────┬──────────────────────────────────────┐
//!        │ 0x01 v. │ state u8 (0 open,    │ flushed through write sequence u64 BE│
//!        │         │ 1 closed)            │                                      │
//!        └─────────┴──────────────────────┴──────────────────────────────────────┘
//! ```
//!
//! A bucket without this record is open with nothing flushed. Write-ahead records with
//! a sequence at or below the flushed-through sequence are already in chunks and may be
//! deleted; a closed bucket's samples are all in chunks and its indexes are complete.

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{BUCKET, PREFIX};

const VERSION: u8 = 1;

/// The state of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketState {
    /// True once the bucket takes no more samples and lives only in chunks and indexes.
    pub closed: bool,
    /// Write-ahead records up to this sequence are in chunks.
    pub flushed_through: u64,
}

/// Key of the state of `bucket`.
pub fn key(bucket: u32) -> Bytes {
    PREFIX.segmented(bucket, BUCKET).build()
}

/// Encodes a bucket state.
pub fn encode(state: BucketState) -> Bytes {
    let mut out = Vec::with_capacity(10);
    out.push(VERSION);
    out.push(state.closed as u8);
    out.extend_from_slice(&state.flushed_through.to_be_bytes());
    Bytes::from(out)
}

/// Decodes a bucket state.
pub fn decode(value: &[u8]) -> Result<BucketState, DecodeError> {
    match value {
        [VERSION, closed @ (0 | 1), rest @ ..] if rest.len() == 8 => Ok(BucketState {
            closed: *closed == 1,
            flushed_through: u64::from_be_bytes(rest.try_into().expect("8 bytes")),
        }),
        _ => Err(DecodeError::new(
            "bucket state",
            "unknown version or length",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip_bucket_state(closed in any::<bool>(), through in any::<u64>()) {
            let s = BucketState { closed, flushed_through: through };
            prop_assert_eq!(decode(&encode(s)).unwrap(), s);
        }

        #[test]
        fn should_not_panic_on_arbitrary_bucket_state(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = decode(&bytes);
        }
    }
}
