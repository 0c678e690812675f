//! The sequence block record (see `opendata_common::sequence`).
//!
//! ```text
//! key:   ┌──────┬──────┬──────┐       value: ┌───────────────────────────────┐
//!        │ 0x01 │ 0x01 │ 0x04 │              │ reserved end (excl.) u64 BE   │
//!        └──────┴──────┴──────┘              └───────────────────────────────┘
//! ```

use bytes::Bytes;

use super::{PREFIX, SEQUENCE};

/// The key of the sequence block record.
pub fn key() -> Bytes {
    PREFIX.record(SEQUENCE).build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn should_use_log_prefix_and_type() {
        assert_eq!(&super::key()[..], &[0x01, 0x01, 0x04]);
    }
}
