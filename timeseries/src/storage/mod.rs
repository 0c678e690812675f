//! The time series database on SlateDB: the writer ([`TimeSeriesDb`]), the replica
//! ([`TimeSeriesDbReader`]) and the read path they share ([`Querier`]).
//!
//! Time is cut into buckets of `bucket_secs`. Each bucket is one segment of the key
//! space. An open bucket lives in the head (memory) and in write-ahead records; when
//! the newest sample is `out_of_order_secs` past its end, it closes: its samples are
//! written as one compressed chunk per series, its indexes (forward, dictionary,
//! inverted, label names) are written, and its write-ahead records are deleted.

mod flush;
mod head;
mod load;
mod read;
mod replica;
mod select;
mod writer;

pub use read::limited;
pub use read::{Querier, SeriesSet};
pub use replica::TimeSeriesDbReader;
pub use writer::{Config, TimeSeriesDb, WriteOutcome};

/// The database's directory name under the storage root.
pub const DATABASE: &str = "timeseries";

/// Offset that maps bucket numbers (which can be negative) onto segment ids.
const BUCKET_OFFSET: i64 = 1 << 31;

/// The bucket (segment id) holding timestamp `ts`.
pub(crate) fn bucket_of(ts: i64, width: i64) -> u32 {
    (ts.div_euclid(width) + BUCKET_OFFSET).clamp(0, u32::MAX as i64) as u32
}

/// First timestamp of `bucket`.
pub(crate) fn bucket_start(bucket: u32, width: i64) -> i64 {
    (bucket as i64 - BUCKET_OFFSET).saturating_mul(width)
}

/// Last timestamp of `bucket`.
pub(crate) fn bucket_end(bucket: u32, width: i64) -> i64 {
    bucket_start(bucket, width).saturating_add(width - 1)
}

/// Largest accepted |timestamp|, in ms (about 3,170 years either side of 1970: with buckets of a minute or more every accepted timestamp maps onto a segment id).
pub(crate) const MAX_ABS_TIMESTAMP_MS: i64 = 100_000_000_000_000;

/// The wall clock in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn should_put_timestamps_inside_their_bucket(ts in -MAX_ABS_TIMESTAMP_MS..MAX_ABS_TIMESTAMP_MS, width in 60_000i64..100_000_000) {
            let b = bucket_of(ts, width);
            prop_assert!(bucket_start(b, width) <= ts && ts <= bucket_end(b, width));
            prop_assert!(bucket_of(ts + width, width) == b + 1);
        }
    }
}
