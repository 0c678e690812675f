//! Write-ahead records: what one commit added to one bucket, durable before the write is
//! acknowledged and replayed into memory on open.
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────┬──────┬───────────────────────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE │ 0x30 │ write sequence u64 BE │
//!        └──────┴──────┴──────┴───────────────┴──────┴───────────────────────┘
//! value: ┌─────────┬──────────────────────┬───────────────────────────────────────────┐
//!        │ 0x01 v. │ new series LEB128    │ n × ( id LEB128 │ labels )                │
//!        ├─────────┴──────────────────────┼───────────────────────────────────────────┤
//!        │ sample groups LEB128           │ m × ( id LEB128 │ len LEB128 │ chunk )     │
//!        ├────────────────────────────────┼───────────────────────────────────────────┤
//!        │ histogram groups LEB128 (v. 2)  │ k × ( id LEB128 │ len LEB128 │ h. chunk )  │
//!        └────────────────────────────────┴───────────────────────────────────────────┘
//! ```
//!
//! `labels` is the label encoding (`labels.rs`), `chunk` the sample chunk codec
//! (`chunk.rs`) and `h. chunk` the histogram chunk codec (`histogram_chunk.rs`). A
//! record without histograms is written as version 1, without the last part (so
//! records written before histograms existed read the same); one with histograms is
//! version 2. Chunks hold the samples in the order they were received (out-of-order
//! and duplicate timestamps included: replay applies them in the same order, so
//! last-write-wins comes out the same). New series are those the bucket had not seen
//! before this commit. Records of a bucket are replayed in sequence order; once a
//! bucket's samples are flushed into chunks, its records up to the flushed sequence are
//! deleted.

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, put_leb128};

use super::{PREFIX, WAL, get_slice, labels};
use crate::model::{HistogramSample, Labels, Sample};
use crate::serde::{chunk, histogram_chunk};

const VERSION: u8 = 1;
const VERSION_WITH_HISTOGRAMS: u8 = 2;

/// Key of the record of write `seq` in `bucket`.
pub fn key(bucket: u32, seq: u64) -> Bytes {
    PREFIX.segmented(bucket, WAL).u64(seq).build()
}

/// Range of the records of `bucket` with a sequence of at least `from`.
pub fn range_from(bucket: u32, from: u64) -> (Bytes, Bytes) {
    (
        PREFIX.segmented(bucket, WAL).u64(from).build(),
        PREFIX.segmented(bucket, WAL).u64(u64::MAX).u8(0).build(),
    )
}

/// Decodes the sequence from a record key.
pub fn decode_key(key: &[u8]) -> Result<u64, DecodeError> {
    let mut parsed = PREFIX.parse(key)?.expect_record_type(WAL)?;
    let seq = parsed.read_u64()?;
    parsed.finish()?;
    Ok(seq)
}

/// Builds one record.
#[derive(Debug, Default)]
pub struct WalBuilder {
    new_series: Vec<u8>,
    new_count: u64,
    groups: Vec<u8>,
    group_count: u64,
    histograms: Vec<u8>,
    histogram_count: u64,
}

impl WalBuilder {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a series new to the bucket.
    pub fn new_series(&mut self, id: u32, labels: &Labels) {
        put_leb128(&mut self.new_series, id as u64);
        labels::encode_into(&mut self.new_series, labels);
        self.new_count += 1;
    }

    /// Adds samples of series `id`, in the order received.
    pub fn samples(&mut self, id: u32, samples: &[Sample]) {
        let chunk = chunk::encode(samples);
        put_leb128(&mut self.groups, id as u64);
        put_leb128(&mut self.groups, chunk.len() as u64);
        self.groups.extend_from_slice(&chunk);
        self.group_count += 1;
    }

    /// Adds histogram samples of series `id`, in the order received.
    pub fn histograms(&mut self, id: u32, samples: &[HistogramSample]) {
        let chunk = histogram_chunk::encode(samples);
        put_leb128(&mut self.histograms, id as u64);
        put_leb128(&mut self.histograms, chunk.len() as u64);
        self.histograms.extend_from_slice(&chunk);
        self.histogram_count += 1;
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.new_count == 0 && self.group_count == 0 && self.histogram_count == 0
    }

    /// The record value.
    pub fn finish(self) -> Bytes {
        let mut out = Vec::with_capacity(
            self.new_series.len() + self.groups.len() + self.histograms.len() + 31,
        );
        let with_histograms = self.histogram_count > 0;
        out.push(if with_histograms {
            VERSION_WITH_HISTOGRAMS
        } else {
            VERSION
        });
        put_leb128(&mut out, self.new_count);
        out.extend_from_slice(&self.new_series);
        put_leb128(&mut out, self.group_count);
        out.extend_from_slice(&self.groups);
        if with_histograms {
            put_leb128(&mut out, self.histogram_count);
            out.extend_from_slice(&self.histograms);
        }
        Bytes::from(out)
    }
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub struct WalRecord {
    /// Series new to the bucket.
    pub new_series: Vec<(u32, Labels)>,
    /// Samples per series, in the order received.
    pub samples: Vec<(u32, Vec<Sample>)>,
    /// Histogram samples per series, in the order received.
    pub histograms: Vec<(u32, Vec<HistogramSample>)>,
}

fn get_id(buf: &[u8], pos: &mut usize) -> Result<u32, DecodeError> {
    u32::try_from(get_leb128(buf, pos)?)
        .map_err(|_| DecodeError::new("wal record", "series id out of range"))
}

/// Decodes a record value.
pub fn decode(value: &[u8]) -> Result<WalRecord, DecodeError> {
    let version = value.first().copied();
    if version != Some(VERSION) && version != Some(VERSION_WITH_HISTOGRAMS) {
        return Err(DecodeError::new("wal record", "unknown version"));
    }
    let mut pos = 1;
    let n = get_leb128(value, &mut pos)? as usize;
    if n > value.len() {
        return Err(DecodeError::new("wal record", "series count too large"));
    }
    let mut new_series = Vec::with_capacity(n);
    for _ in 0..n {
        let id = get_id(value, &mut pos)?;
        let labels = labels::decode_at(value, &mut pos)?;
        new_series.push((id, labels));
    }
    let m = get_leb128(value, &mut pos)? as usize;
    if m > value.len() {
        return Err(DecodeError::new("wal record", "group count too large"));
    }
    let mut samples = Vec::with_capacity(m);
    for _ in 0..m {
        let id = get_id(value, &mut pos)?;
        let bytes = get_slice(value, &mut pos, "wal record")?;
        samples.push((id, chunk::decode(bytes)?));
    }
    let mut histograms = Vec::new();
    if version == Some(VERSION_WITH_HISTOGRAMS) {
        let k = get_leb128(value, &mut pos)? as usize;
        if k > value.len() {
            return Err(DecodeError::new(
                "wal record",
                "histogram group count too large",
            ));
        }
        for _ in 0..k {
            let id = get_id(value, &mut pos)?;
            let bytes = get_slice(value, &mut pos, "wal record")?;
            histograms.push((id, histogram_chunk::decode(bytes)?));
        }
    }
    if pos != value.len() {
        return Err(DecodeError::new("wal record", "trailing bytes"));
    }
    Ok(WalRecord {
        new_series,
        samples,
        histograms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_samples() -> impl Strategy<Value = Vec<Sample>> {
        proptest::collection::vec((any::<i64>(), any::<f64>()), 1..20).prop_map(|v| {
            v.into_iter()
                .map(|(t, v)| Sample {
                    timestamp_ms: t,
                    value: v,
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn should_round_trip_wal_records(
            new in proptest::collection::vec((any::<u32>(), proptest::collection::btree_map("[a-z]{1,5}", "[a-z0-9]{1,5}", 1..4)), 0..5),
            groups in proptest::collection::vec((any::<u32>(), arb_samples()), 0..5),
        ) {
            let mut b = WalBuilder::new();
            let new: Vec<(u32, Labels)> = new.into_iter().map(|(id, m)| (id, Labels::from_pairs(m))).collect();
            for (id, l) in &new { b.new_series(*id, l); }
            for (id, s) in &groups { b.samples(*id, s); }
            let hist = |t: i64| crate::model::HistogramSample {
                timestamp_ms: t,
                histogram: std::sync::Arc::new(crate::model::FloatHistogram { count: 2.0, sum: 3.0, positive: vec![(1, 2.0)], ..Default::default() }),
            };
            let with_histograms = groups.len() % 2 == 1;
            if with_histograms { b.histograms(7, &[hist(1), hist(2)]); }
            let rec = decode(&b.finish()).unwrap();
            prop_assert_eq!(rec.histograms.len(), usize::from(with_histograms));
            if with_histograms { prop_assert_eq!(&rec.histograms[0].1, &vec![hist(1), hist(2)]); }
            prop_assert_eq!(&rec.new_series, &new);
            prop_assert_eq!(rec.samples.len(), groups.len());
            for ((id, got), (want_id, want)) in rec.samples.iter().zip(&groups) {
                prop_assert_eq!(id, want_id);
                let bits = |s: &[Sample]| s.iter().map(|x| (x.timestamp_ms, x.value.to_bits())).collect::<Vec<_>>();
                prop_assert_eq!(bits(got), bits(want));
            }
        }

        #[test]
        fn should_not_panic_on_arbitrary_wal_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn should_round_trip_wal_key(bucket in any::<u32>(), seq in any::<u64>()) {
            let k = key(bucket, seq);
            prop_assert_eq!(decode_key(&k).unwrap(), seq);
            let (start, end) = range_from(bucket, seq);
            prop_assert!(start.as_ref() <= k.as_ref() && k.as_ref() < end.as_ref());
        }
    }
}
