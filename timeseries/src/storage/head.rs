//! The head: the samples of open buckets, in memory, rebuilt from write-ahead records on
//! open.
//!
//! Each open bucket holds its series (labels, in-order samples sealed into compressed
//! chunks every `head_chunk_samples`, and out-of-order overwrites), and an in-memory
//! inverted index of them. When a bucket is flushed, its data is frozen (moved aside,
//! still readable) while it is written into chunks, then dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use parking_lot::RwLock;
use roaring::RoaringBitmap;

use super::select::{Postings, select};
use crate::error::Result;
use crate::model::{FloatHistogram, HistogramSample, Labels, Matcher, Sample, Timed};
use crate::serde::{chunk, histogram_chunk};

pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Samples of one series in one bucket as received: in-order runs and overwrites.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeriesData {
    /// Sealed runs of in-order samples: (first ts, last ts, chunk).
    sealed: Vec<(i64, i64, Bytes)>,
    /// The unsealed in-order tail.
    tail: Vec<Sample>,
    /// Samples at or before the in-order end, kept by timestamp (value bits), newest write
    /// wins.
    overwrites: BTreeMap<i64, u64>,
    /// Timestamp of the newest in-order sample.
    last_ts: Option<i64>,
    /// Native-histogram samples, kept as float samples are: sealed runs of in-order
    /// samples (histogram chunks), an in-order tail, and overwrites at or before the
    /// in-order end (the newest write wins). A timestamp written as a float and as a
    /// histogram answers with the histogram.
    hists: HistogramData,
}

/// The histogram samples of one series in one bucket (see [`SeriesData`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct HistogramData {
    sealed: Vec<(i64, i64, Bytes)>,
    tail: Vec<HistogramSample>,
    overwrites: BTreeMap<i64, Arc<FloatHistogram>>,
    last_ts: Option<i64>,
}

impl HistogramData {
    fn append(&mut self, s: &HistogramSample, seal_at: usize) {
        match self.last_ts {
            Some(last) if s.timestamp_ms < last => {
                self.overwrites.insert(s.timestamp_ms, s.histogram.clone());
            }
            Some(last) if s.timestamp_ms == last => match self.tail.last_mut() {
                Some(t) if t.timestamp_ms == last => t.histogram = s.histogram.clone(),
                _ => {
                    self.overwrites.insert(s.timestamp_ms, s.histogram.clone());
                }
            },
            _ => {
                self.tail.push(s.clone());
                self.last_ts = Some(s.timestamp_ms);
                if self.tail.len() >= seal_at {
                    let first = self.tail[0].timestamp_ms;
                    let bytes = Bytes::from(histogram_chunk::encode(&self.tail));
                    self.sealed.push((first, s.timestamp_ms, bytes));
                    self.tail.clear();
                }
            }
        }
    }

    fn len_hint(&self) -> usize {
        self.sealed.len() * 120 + self.tail.len() + self.overwrites.len()
    }

    fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.tail.is_empty() && self.overwrites.is_empty()
    }

    fn take(&mut self) -> HistogramData {
        HistogramData {
            sealed: std::mem::take(&mut self.sealed),
            tail: std::mem::take(&mut self.tail),
            overwrites: std::mem::take(&mut self.overwrites),
            last_ts: self.last_ts,
        }
    }

    fn samples(&self, start: i64, end: i64) -> Result<Vec<HistogramSample>, crate::Error> {
        if start > end {
            return Ok(Vec::new());
        }
        let mut inorder = Vec::new();
        for (first, last, bytes) in &self.sealed {
            if *last < start || *first > end {
                continue;
            }
            let decoded = histogram_chunk::decode(bytes).map_err(opendata_common::Error::from)?;
            inorder.extend(
                decoded
                    .into_iter()
                    .filter(|s| s.timestamp_ms >= start && s.timestamp_ms <= end),
            );
        }
        inorder.extend(
            self.tail
                .iter()
                .filter(|s| s.timestamp_ms >= start && s.timestamp_ms <= end)
                .cloned(),
        );
        if self.overwrites.is_empty() {
            return Ok(inorder);
        }
        let over: Vec<HistogramSample> = self
            .overwrites
            .range(start..=end)
            .map(|(&timestamp_ms, h)| HistogramSample {
                timestamp_ms,
                histogram: h.clone(),
            })
            .collect();
        Ok(overlay(inorder, over))
    }
}

impl SeriesData {
    fn append(&mut self, s: Sample, seal_at: usize) {
        match self.last_ts {
            Some(last) if s.timestamp_ms < last => {
                self.overwrites.insert(s.timestamp_ms, s.value.to_bits());
            }
            Some(last) if s.timestamp_ms == last => match self.tail.last_mut() {
                Some(t) if t.timestamp_ms == last => t.value = s.value,
                _ => {
                    self.overwrites.insert(s.timestamp_ms, s.value.to_bits());
                }
            },
            _ => {
                // A new in-order sample supersedes nothing: overwrites are all older.
                self.tail.push(s);
                self.last_ts = Some(s.timestamp_ms);
                if self.tail.len() >= seal_at {
                    let first = self.tail[0].timestamp_ms;
                    let bytes = Bytes::from(chunk::encode(&self.tail));
                    self.sealed.push((first, s.timestamp_ms, bytes));
                    self.tail.clear();
                }
            }
        }
    }

    fn append_histogram(&mut self, s: &HistogramSample, seal_at: usize) {
        self.hists.append(s, seal_at);
    }

    /// Timestamp of the newest float sample (every overwrite is at or before it).
    pub(crate) fn last_ts(&self) -> Option<i64> {
        self.last_ts
    }

    /// Number of samples held (overwrites and histograms included).
    fn len_hint(&self) -> usize {
        self.sealed.len() * 120 + self.tail.len() + self.overwrites.len() + self.hists.len_hint()
    }

    fn is_empty(&self) -> bool {
        self.sealed.is_empty()
            && self.tail.is_empty()
            && self.overwrites.is_empty()
            && self.hists.is_empty()
    }

    /// The histogram samples in `[start, end]`, sorted, one per timestamp (later writes
    /// win).
    pub(crate) fn histograms(
        &self,
        start: i64,
        end: i64,
    ) -> Result<Vec<HistogramSample>, crate::Error> {
        self.hists.samples(start, end)
    }

    /// Moves the samples out, keeping the in-order end so later samples are ordered the
    /// same way.
    fn take(&mut self) -> SeriesData {
        SeriesData {
            sealed: std::mem::take(&mut self.sealed),
            tail: std::mem::take(&mut self.tail),
            overwrites: std::mem::take(&mut self.overwrites),
            last_ts: self.last_ts,
            hists: self.hists.take(),
        }
    }

    /// The samples in `[start, end]`, sorted, one per timestamp (later writes win).
    pub(crate) fn samples(&self, start: i64, end: i64) -> Result<Vec<Sample>, crate::Error> {
        let mut inorder = Vec::new();
        for (first, last, bytes) in &self.sealed {
            if *last < start || *first > end {
                continue;
            }
            let decoded = chunk::decode(bytes).map_err(opendata_common::Error::from)?;
            inorder.extend(
                decoded
                    .into_iter()
                    .filter(|s| s.timestamp_ms >= start && s.timestamp_ms <= end),
            );
        }
        inorder.extend(
            self.tail
                .iter()
                .filter(|s| s.timestamp_ms >= start && s.timestamp_ms <= end),
        );
        if self.overwrites.is_empty() {
            return Ok(inorder);
        }
        let over: Vec<Sample> = self
            .overwrites
            .range(start..=end)
            .map(|(&t, &bits)| Sample {
                timestamp_ms: t,
                value: f64::from_bits(bits),
            })
            .collect();
        Ok(overlay(inorder, over))
    }
}

/// Merges two sorted, timestamp-unique runs; on equal timestamps `newer` wins.
pub(crate) fn overlay<T: Timed>(older: Vec<T>, newer: Vec<T>) -> Vec<T> {
    if older.is_empty() {
        return newer;
    }
    if newer.is_empty() {
        return older;
    }
    let mut out = Vec::with_capacity(older.len() + newer.len());
    let (mut i, mut j) = (0, 0);
    while i < older.len() && j < newer.len() {
        let (a, b) = (older[i].ts(), newer[j].ts());
        if a < b {
            out.push(older[i].clone());
            i += 1;
        } else if a > b {
            out.push(newer[j].clone());
            j += 1;
        } else {
            out.push(newer[j].clone());
            i += 1;
            j += 1;
        }
    }
    out.extend_from_slice(&older[i..]);
    out.extend_from_slice(&newer[j..]);
    out
}

/// A series of an open bucket.
#[derive(Debug)]
pub(crate) struct HeadSeries {
    pub(crate) labels: Arc<Labels>,
    pub(crate) data: SeriesData,
}

/// In-memory inverted index of an open bucket.
#[derive(Debug, Default)]
pub(crate) struct MemIndex {
    pub(crate) postings: BTreeMap<String, BTreeMap<String, RoaringBitmap>>,
    pub(crate) all: RoaringBitmap,
}

impl MemIndex {
    fn add(&mut self, id: u32, labels: &Labels) {
        self.all.insert(id);
        for l in labels.as_slice() {
            let values = match self.postings.get_mut(l.name.as_str()) {
                Some(v) => v,
                None => self.postings.entry(l.name.clone()).or_default(),
            };
            match values.get_mut(l.value.as_str()) {
                Some(b) => {
                    b.insert(id);
                }
                None => {
                    values.insert(l.value.clone(), RoaringBitmap::from_iter([id]));
                }
            }
        }
    }

    fn with_name(&self, name: &str) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        if let Some(values) = self.postings.get(name) {
            for b in values.values() {
                out |= b;
            }
        }
        out
    }

    /// Series ids matching every matcher.
    pub(crate) fn select(&self, matchers: &[Matcher]) -> RoaringBitmap {
        // The in-memory index answers at once: the future never waits.
        select(self, matchers)
            .now_or_never()
            .and_then(|r| r.ok())
            .unwrap_or_default()
    }

    /// Label names carried by at least one series of `ids`.
    pub(crate) fn names(&self, ids: &RoaringBitmap) -> Vec<String> {
        self.postings
            .iter()
            .filter(|(name, _)| !self.with_name(name).is_disjoint(ids))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Values of `name` carried by at least one series of `ids`.
    pub(crate) fn values(&self, name: &str, ids: &RoaringBitmap) -> Vec<String> {
        self.postings
            .get(name)
            .map(|values| {
                values
                    .iter()
                    .filter(|(_, b)| !b.is_disjoint(ids))
                    .map(|(v, _)| v.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Postings for MemIndex {
    async fn all(&self) -> Result<RoaringBitmap> {
        Ok(self.all.clone())
    }

    async fn with_name(&self, name: &str) -> Result<RoaringBitmap> {
        Ok(MemIndex::with_name(self, name))
    }

    async fn equal(&self, name: &str, value: &str) -> Result<RoaringBitmap> {
        Ok(self
            .postings
            .get(name)
            .and_then(|values| values.get(value))
            .cloned()
            .unwrap_or_default())
    }

    async fn union_where(&self, name: &str, keep: impl Fn(&str) -> bool) -> Result<RoaringBitmap> {
        let mut out = RoaringBitmap::new();
        if let Some(values) = self.postings.get(name) {
            for (v, b) in values {
                if keep(v) {
                    out |= b;
                }
            }
        }
        Ok(out)
    }
}

/// Data frozen for a flush: readable until its chunks are written.
#[derive(Debug, Default)]
pub(crate) struct Frozen {
    /// Write-ahead records up to this sequence are in it.
    pub(crate) through_seq: u64,
    pub(crate) series: FastMap<u32, SeriesData>,
}

/// Everything of an open bucket, behind its lock.
#[derive(Debug, Default)]
pub(crate) struct BucketData {
    pub(crate) series: FastMap<u32, HeadSeries>,
    pub(crate) index: MemIndex,
    /// Series whose index records are not yet in storage.
    pub(crate) unindexed: RoaringBitmap,
    /// Highest write sequence applied.
    pub(crate) last_seq: u64,
    /// Write sequence the stored chunks are complete through.
    pub(crate) checkpoint: u64,
    /// Samples applied since the last flush.
    pub(crate) unflushed_samples: u64,
    /// True once chunks of this bucket may be in storage.
    pub(crate) has_stored_chunks: bool,
    /// Data being flushed.
    pub(crate) frozen: Option<Arc<Frozen>>,
    /// Set when the bucket starts closing: no more samples are taken.
    pub(crate) closing: bool,
    /// Exemplars stored in the bucket (counted up to `max_exemplars_per_bucket`).
    pub(crate) exemplars: u64,
}

impl BucketData {
    /// True when the bucket knows series `id`.
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.series.contains_key(&id)
    }

    /// Adds a series new to the bucket; `indexed` tells whether its index records are
    /// already stored.
    pub(crate) fn add_series(&mut self, id: u32, labels: Arc<Labels>, indexed: bool) {
        self.index.add(id, &labels);
        if !indexed {
            self.unindexed.insert(id);
        }
        self.series.insert(
            id,
            HeadSeries {
                labels,
                data: SeriesData::default(),
            },
        );
    }

    /// Appends samples (in the order received) to series `id`, which must be known.
    pub(crate) fn append(&mut self, id: u32, samples: &[Sample], seal_at: usize) {
        if let Some(s) = self.series.get_mut(&id) {
            for &sample in samples {
                s.data.append(sample, seal_at);
            }
            self.unflushed_samples += samples.len() as u64;
        }
    }

    /// Appends histogram samples (in the order received) to series `id`, which must be
    /// known.
    pub(crate) fn append_histograms(
        &mut self,
        id: u32,
        samples: &[HistogramSample],
        seal_at: usize,
    ) {
        if let Some(s) = self.series.get_mut(&id) {
            for h in samples {
                s.data.append_histogram(h, seal_at);
            }
            self.unflushed_samples += samples.len() as u64;
        }
    }

    /// Moves every series' samples into a frozen snapshot for a flush.
    pub(crate) fn freeze(&mut self) -> Arc<Frozen> {
        let mut frozen = Frozen {
            through_seq: self.last_seq,
            series: FastMap::default(),
        };
        for (id, s) in self.series.iter_mut() {
            if !s.data.is_empty() {
                frozen.series.insert(*id, s.data.take());
            }
        }
        let frozen = Arc::new(frozen);
        self.frozen = Some(frozen.clone());
        self.has_stored_chunks = true;
        self.unflushed_samples = 0;
        frozen
    }

    /// Approximate number of samples held.
    pub(crate) fn sample_hint(&self) -> usize {
        self.series.values().map(|s| s.data.len_hint()).sum()
    }
}

/// An open bucket.
#[derive(Debug)]
pub(crate) struct HeadBucket {
    pub(crate) bucket: u32,
    pub(crate) data: RwLock<BucketData>,
}

/// Every open bucket.
#[derive(Debug, Default)]
pub(crate) struct Head {
    pub(crate) buckets: RwLock<BTreeMap<u32, Arc<HeadBucket>>>,
}

impl Head {
    /// The open bucket `bucket`, created if missing.
    pub(crate) fn bucket(&self, bucket: u32) -> Arc<HeadBucket> {
        if let Some(b) = self.buckets.read().get(&bucket) {
            return b.clone();
        }
        self.buckets
            .write()
            .entry(bucket)
            .or_insert_with(|| {
                Arc::new(HeadBucket {
                    bucket,
                    data: RwLock::new(BucketData::default()),
                })
            })
            .clone()
    }

    /// The open buckets in `[lo, hi]`.
    pub(crate) fn range(&self, lo: u32, hi: u32) -> Vec<Arc<HeadBucket>> {
        self.buckets
            .read()
            .range(lo..=hi)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Every open bucket.
    pub(crate) fn all(&self) -> Vec<Arc<HeadBucket>> {
        self.buckets.read().values().cloned().collect()
    }

    /// Removes bucket `bucket`.
    pub(crate) fn remove(&self, bucket: u32) {
        self.buckets.write().remove(&bucket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample {
            timestamp_ms: t,
            value: v,
        }
    }

    proptest! {
        /// Whatever order samples arrive in, reading gives each timestamp's last write.
        #[test]
        fn should_keep_the_last_write_per_timestamp(writes in proptest::collection::vec((0i64..50, -5i64..5), 0..200), seal in 8usize..20) {
            let mut d = SeriesData::default();
            let mut model = BTreeMap::new();
            for (t, v) in &writes {
                d.append(s(*t, *v as f64), seal);
                model.insert(*t, *v as f64);
            }
            let got: Vec<(i64, f64)> = d.samples(i64::MIN, i64::MAX).unwrap().iter().map(|s| (s.timestamp_ms, s.value)).collect();
            let want: Vec<(i64, f64)> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }

        /// Freezing part-way and overlaying the later writes gives the same result.
        #[test]
        fn should_read_the_same_across_a_freeze(writes in proptest::collection::vec((0i64..50, -5i64..5), 0..200), cut in 0usize..200) {
            let mut d = SeriesData::default();
            let mut model = BTreeMap::new();
            let mut frozen = None;
            for (i, (t, v)) in writes.iter().enumerate() {
                if i == cut { frozen = Some(d.take()); }
                d.append(s(*t, *v as f64), 8);
                model.insert(*t, *v as f64);
            }
            let older = frozen.map(|f| f.samples(i64::MIN, i64::MAX).unwrap()).unwrap_or_default();
            let got: Vec<(i64, f64)> = overlay(older, d.samples(i64::MIN, i64::MAX).unwrap()).iter().map(|s| (s.timestamp_ms, s.value)).collect();
            let want: Vec<(i64, f64)> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn should_select_with_every_matcher_kind() {
        use crate::model::MatchKind::*;
        let mut idx = MemIndex::default();
        idx.add(1, &Labels::from_pairs([("__name__", "up"), ("job", "api")]));
        idx.add(2, &Labels::from_pairs([("__name__", "up"), ("job", "web")]));
        idx.add(3, &Labels::from_pairs([("__name__", "up")]));
        let sel = |ms: &[(crate::model::MatchKind, &str, &str)]| -> Vec<u32> {
            let ms: Vec<Matcher> = ms
                .iter()
                .map(|(k, n, v)| Matcher::new(*k, *n, *v).unwrap())
                .collect();
            idx.select(&ms).iter().collect()
        };
        assert_eq!(sel(&[(Equal, "job", "api")]), vec![1]);
        assert_eq!(sel(&[(NotEqual, "job", "api")]), vec![2, 3]);
        assert_eq!(sel(&[(Regex, "job", "a.*|w.*")]), vec![1, 2]);
        assert_eq!(sel(&[(NotRegex, "job", "a.*")]), vec![2, 3]);
        assert_eq!(sel(&[(Equal, "job", "")]), vec![3]);
        assert_eq!(sel(&[(NotEqual, "job", "")]), vec![1, 2]);
        assert_eq!(sel(&[(Regex, "job", ".*")]), vec![1, 2, 3]);
        assert_eq!(
            sel(&[(Equal, "__name__", "up"), (Regex, "job", "web|api")]),
            vec![1, 2]
        );
        assert_eq!(sel(&[(Equal, "__name__", "down")]), Vec::<u32>::new());
    }
}
