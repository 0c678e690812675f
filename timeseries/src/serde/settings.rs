//! The database settings fixed at creation.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┐   value: ┌─────────┬─────────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x04 │          │ 0x01 v. │ bucket width ms u64 BE  │
//!        └──────┴──────┴──────┘          └─────────┴─────────────────────────┘
//! ```
//!
//! Bucket boundaries follow from the width, so it cannot change once data exists.

use bytes::Bytes;
use opendata_common::DecodeError;

use super::{PREFIX, SETTINGS};

const VERSION: u8 = 1;

/// Key of the settings record.
pub fn key() -> Bytes {
    PREFIX.record(SETTINGS).build()
}

/// Encodes the settings.
pub fn encode(bucket_ms: u64) -> Bytes {
    let mut out = Vec::with_capacity(9);
    out.push(VERSION);
    out.extend_from_slice(&bucket_ms.to_be_bytes());
    Bytes::from(out)
}

/// Decodes the settings: the bucket width in milliseconds.
pub fn decode(value: &[u8]) -> Result<u64, DecodeError> {
    match value {
        [VERSION, rest @ ..] if rest.len() == 8 => {
            Ok(u64::from_be_bytes(rest.try_into().expect("8 bytes")))
        }
        _ => Err(DecodeError::new("settings", "unknown version or length")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_round_trip_settings(width in any::<u64>()) {
            prop_assert_eq!(decode(&encode(width)).unwrap(), width);
        }
    }

    #[test]
    fn should_reject_bad_settings() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[2, 0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        assert!(decode(&[1, 0]).is_err());
    }
}
