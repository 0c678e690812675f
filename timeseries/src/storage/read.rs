//! The read path: selecting series by matchers over a time range, reading their
//! samples, and listing label names, values and metadata.
//!
//! For each bucket overlapping the range, the matching series ids come from the head's
//! in-memory index (open buckets) or from the stored indexes (closed buckets: one point
//! read per equality matcher, one scan of a single label name's values per regex). Only
//! buckets in the range are touched. Series are then grouped by labels across buckets
//! and their samples read bucket by bucket, in time order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use opendata_common::storage::StorageReader;
use parking_lot::RwLock;
use roaring::RoaringBitmap;

use super::head::{Head, HeadBucket, overlay};
use super::select::{Postings, select};
use super::{bucket_end, bucket_of, bucket_start};
use crate::error::Result;
use crate::model::{
    HistogramSample, Labels, METRIC_NAME, Matcher, MetricMetadata, Sample, Series, SeriesExemplars,
};
use crate::serde::{
    chunk, exemplar, histogram_chunk, label_names, labels, metadata, postings, series,
};

/// Series read per batch when streaming samples.
const READ_BATCH: usize = 512;

/// What the writer and replicas share with queries.
pub(crate) struct ReadShared {
    pub(crate) reader: StorageReader,
    pub(crate) head: Head,
    /// Buckets that live only in storage.
    pub(crate) closed: RwLock<BTreeSet<u32>>,
    pub(crate) bucket_ms: i64,
}

/// Reads a time series database: the interface the query engine uses.
///
/// Cheap to clone. Obtained from [`super::TimeSeriesDb::querier`] or
/// [`super::TimeSeriesDbReader::querier`].
#[derive(Clone)]
pub struct Querier {
    pub(crate) shared: Arc<ReadShared>,
}

/// Where a series' samples in one bucket are.
#[derive(Clone)]
enum Part {
    /// An open bucket: memory, plus chunks of earlier flushes if any.
    Head { bucket: Arc<HeadBucket>, id: u32 },
    /// A closed bucket: chunks only.
    Stored { bucket: u32, id: u32 },
}

impl Part {
    fn bucket(&self) -> u32 {
        match self {
            Part::Head { bucket, .. } => bucket.bucket,
            Part::Stored { bucket, .. } => *bucket,
        }
    }
}

/// A series' float and histogram samples in one bucket.
type Parts = (Vec<Sample>, Vec<HistogramSample>);

/// Series selected by matchers, their samples read in batches as the caller iterates.
/// Series come in label order; each series' samples in time order.
pub struct SeriesSet {
    querier: Querier,
    selected: std::collections::btree_map::IntoIter<Labels, Vec<Part>>,
    start: i64,
    end: i64,
    ready: std::collections::VecDeque<Series>,
    total: usize,
    memory: usize,
}

impl SeriesSet {
    /// Number of series selected (some may have no samples in the range and be skipped).
    pub fn series_count(&self) -> usize {
        self.total
    }

    /// Bytes the selection holds before any sample is read, approximately: the
    /// selected series' labels and where their samples are.
    pub fn memory_size(&self) -> usize {
        self.memory
    }

    /// The selected series' label sets, in label order, without reading samples.
    pub fn into_labels(self) -> impl Iterator<Item = Labels> {
        self.selected.map(|(labels, _)| labels)
    }

    /// The next series with at least one sample in the range, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Series>> {
        loop {
            if let Some(s) = self.ready.pop_front() {
                return Ok(Some(s));
            }
            let batch: Vec<(Labels, Vec<Part>)> = self.selected.by_ref().take(READ_BATCH).collect();
            if batch.is_empty() {
                return Ok(None);
            }
            self.read_batch(batch).await?;
        }
    }

    /// Every remaining series.
    pub async fn collect(mut self) -> Result<Vec<Series>> {
        let mut out = Vec::new();
        while let Some(s) = self.next().await? {
            out.push(s);
        }
        Ok(out)
    }

    async fn read_batch(&mut self, batch: Vec<(Labels, Vec<Part>)>) -> Result<()> {
        // Stored chunks needed, per bucket.
        let mut wanted: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        for (_, parts) in &batch {
            for p in parts {
                match p {
                    Part::Stored { bucket, id } => {
                        wanted.entry(*bucket).or_default().insert(*id);
                    }
                    Part::Head { bucket, id } => {
                        if bucket.data.read().has_stored_chunks {
                            wanted.entry(bucket.bucket).or_default().insert(*id);
                        }
                    }
                }
            }
        }
        // Buckets are read and decoded in parallel tasks, so a long range uses every
        // core of the runtime.
        let mut stored: BTreeMap<(u32, u32), Parts> = BTreeMap::new();
        let tasks: Vec<_> = wanted
            .into_iter()
            .map(|(bucket, ids)| {
                let querier = self.querier.clone();
                let (start, end) = (self.start, self.end);
                tokio::spawn(async move {
                    let mut out = BTreeMap::new();
                    querier
                        .read_chunks(bucket, &ids, start, end, &mut out)
                        .await
                        .map(|_| out)
                })
            })
            .collect();
        for task in tasks {
            let part = task.await.map_err(|e| {
                crate::Error::Storage(opendata_common::Error::Internal(format!(
                    "chunk read task failed: {e}"
                )))
            })??;
            stored.extend(part);
        }
        for (labels, parts) in batch {
            let mut samples: Vec<Sample> = Vec::new();
            let mut histograms: Vec<HistogramSample> = Vec::new();
            for p in parts {
                let (from_storage, from_storage_h) = stored
                    .remove(&(p.bucket(), part_id(&p)))
                    .unwrap_or_default();
                let (mut part, mut part_h) = match &p {
                    Part::Stored { .. } => (from_storage, from_storage_h),
                    Part::Head { bucket, id } => {
                        let data = bucket.data.read();
                        let mut merged = from_storage;
                        let mut merged_h = from_storage_h;
                        if let Some(frozen) = &data.frozen
                            && let Some(sd) = frozen.series.get(id)
                        {
                            merged = overlay(merged, sd.samples(self.start, self.end)?);
                            merged_h = overlay(merged_h, sd.histograms(self.start, self.end)?);
                        }
                        if let Some(s) = data.series.get(id) {
                            merged = overlay(merged, s.data.samples(self.start, self.end)?);
                            merged_h = overlay(merged_h, s.data.histograms(self.start, self.end)?);
                        }
                        (merged, merged_h)
                    }
                };
                if samples.is_empty() {
                    samples = part;
                } else {
                    samples.append(&mut part);
                }
                if histograms.is_empty() {
                    histograms = part_h;
                } else {
                    histograms.append(&mut part_h);
                }
            }
            if !histograms.is_empty() && !samples.is_empty() {
                // A timestamp holds one sample: a histogram written there wins.
                let at: BTreeSet<i64> = histograms.iter().map(|h| h.timestamp_ms).collect();
                samples.retain(|s| !at.contains(&s.timestamp_ms));
            }
            if !samples.is_empty() || !histograms.is_empty() {
                self.ready.push_back(Series {
                    labels,
                    samples,
                    histograms,
                });
            }
        }
        Ok(())
    }
}

fn part_id(p: &Part) -> u32 {
    match p {
        Part::Head { id, .. } | Part::Stored { id, .. } => *id,
    }
}

fn decode_bitmap(bytes: &[u8]) -> Result<RoaringBitmap> {
    RoaringBitmap::deserialize_from(bytes)
        .map_err(|e| opendata_common::DecodeError::new("index bitmap", e.to_string()).into())
}

/// The stored inverted index of a closed bucket: one point read per label value, one
/// scan of a label name's values for a regex.
struct StoredPostings<'a> {
    querier: &'a Querier,
    bucket: u32,
}

impl Postings for StoredPostings<'_> {
    async fn all(&self) -> Result<RoaringBitmap> {
        // Every series has a metric name.
        self.with_name(METRIC_NAME).await
    }

    async fn with_name(&self, name: &str) -> Result<RoaringBitmap> {
        self.querier
            .get_bitmap(label_names::key(self.bucket, name))
            .await
    }

    async fn equal(&self, name: &str, value: &str) -> Result<RoaringBitmap> {
        self.querier
            .get_bitmap(postings::key(self.bucket, name, value))
            .await
    }

    async fn union_where(&self, name: &str, keep: impl Fn(&str) -> bool) -> Result<RoaringBitmap> {
        let mut out = RoaringBitmap::new();
        for (v, b) in self.querier.stored_values(self.bucket, name).await? {
            if keep(&v) {
                out |= b;
            }
        }
        Ok(out)
    }
}

impl Querier {
    fn buckets(&self, start: i64, end: i64) -> (Vec<Arc<HeadBucket>>, Vec<u32>) {
        let (lo, hi) = (
            bucket_of(start, self.shared.bucket_ms),
            bucket_of(end, self.shared.bucket_ms),
        );
        if lo > hi {
            return (Vec::new(), Vec::new());
        }
        // The head first: a bucket leaves the head only after it is in `closed`.
        let head = self.shared.head.range(lo, hi);
        let in_head: BTreeSet<u32> = head.iter().map(|b| b.bucket).collect();
        let closed = self
            .shared
            .closed
            .read()
            .range(lo..=hi)
            .copied()
            .filter(|b| !in_head.contains(b))
            .collect();
        (head, closed)
    }

    async fn get_bitmap(&self, key: Bytes) -> Result<RoaringBitmap> {
        match self.shared.reader.get(&key).await? {
            Some(v) => decode_bitmap(&v),
            None => Ok(RoaringBitmap::new()),
        }
    }

    /// Every (value, bitmap) of label `name` in stored bucket `bucket`.
    async fn stored_values(&self, bucket: u32, name: &str) -> Result<Vec<(String, RoaringBitmap)>> {
        let mut iter = self
            .shared
            .reader
            .scan_prefix(&postings::name_prefix(bucket, name))
            .await?;
        let mut out = Vec::new();
        while let Some(kv) = iter.next().await? {
            let (_, value) = postings::decode_key(&kv.key)?;
            out.push((value, decode_bitmap(&kv.value)?));
        }
        Ok(out)
    }

    /// Series ids of stored bucket `bucket` matching every matcher.
    async fn stored_select(&self, bucket: u32, matchers: &[Matcher]) -> Result<RoaringBitmap> {
        select(
            &StoredPostings {
                querier: self,
                bucket,
            },
            matchers,
        )
        .await
    }

    /// The series of stored bucket `bucket` that `matchers` select, or `None` (every
    /// series) when there are no matchers: listings then skip the bitmap checks.
    async fn stored_filter(
        &self,
        bucket: u32,
        matchers: &[Matcher],
    ) -> Result<Option<RoaringBitmap>> {
        if matchers.is_empty() {
            return Ok(None);
        }
        Ok(Some(self.stored_select(bucket, matchers).await?))
    }

    /// Labels of `ids` in stored bucket `bucket`, in id order.
    async fn stored_labels(&self, bucket: u32, ids: &RoaringBitmap) -> Result<Vec<(u32, Labels)>> {
        let (Some(min), Some(max)) = (ids.min(), ids.max()) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(ids.len() as usize);
        let span = (max - min) as u64 + 1;
        let end = series::range(bucket).1;
        let mut iter = self
            .shared
            .reader
            .scan(series::key(bucket, min)..end)
            .await?;
        // Dense sets are read in one pass; sparse ones seek from id to id.
        let dense = ids.len() * 4 >= span;
        let mut carried: Option<(u32, Bytes)> = None;
        for id in ids {
            match &carried {
                Some((got, _)) if *got > id => continue,
                Some((got, _)) if *got < id && !dense => carried = None,
                _ => {}
            }
            if !dense && carried.is_none() {
                iter.seek(series::key(bucket, id)).await?;
            }
            loop {
                let (got, value) = match carried.take() {
                    Some(c) => c,
                    None => match iter.next().await? {
                        Some(kv) => (series::decode_key(&kv.key)?, kv.value),
                        None => break,
                    },
                };
                if got < id {
                    continue;
                }
                if got == id {
                    out.push((id, labels::decode(&value)?));
                } else {
                    carried = Some((got, value));
                }
                break;
            }
        }
        Ok(out)
    }

    /// Samples of `ids` in bucket `bucket`'s chunks, merged per series (later flushes
    /// win), into `out`.
    async fn read_chunks(
        &self,
        bucket: u32,
        ids: &BTreeSet<u32>,
        start: i64,
        end: i64,
        out: &mut BTreeMap<(u32, u32), Parts>,
    ) -> Result<()> {
        let Some(&first) = ids.iter().next() else {
            return Ok(());
        };
        let range_end = chunk::series_prefix(bucket, u32::MAX).to_vec();
        let mut range_end = range_end;
        range_end.extend_from_slice(&[0xff; 9]);
        let mut iter = self
            .shared
            .reader
            .scan(chunk::series_prefix(bucket, first)..Bytes::from(range_end))
            .await?;
        let mut pending: Option<(u32, u64, Bytes)> = None;
        let mut columns: BTreeMap<(u64, u64), Arc<Vec<i64>>> = BTreeMap::new();
        for &id in ids {
            let mut merged: Vec<Sample> = Vec::new();
            let mut merged_h: Vec<HistogramSample> = Vec::new();
            // A key read past the previous series may already belong to this one.
            let mut carried = pending.take();
            if carried.as_ref().is_none_or(|(got, _, _)| *got < id) {
                carried = None;
                iter.seek(chunk::series_prefix(bucket, id)).await?;
            }
            loop {
                let (got, seq, value) = match carried.take() {
                    Some(c) => c,
                    None => match iter.next().await? {
                        Some(kv) => {
                            let (got, seq) = chunk::decode_key(&kv.key)?;
                            (got, seq, kv.value)
                        }
                        None => break,
                    },
                };
                if got > id {
                    pending = Some((got, seq, value));
                    break;
                }
                if got < id {
                    continue;
                }
                if histogram_chunk::is_histogram_chunk(&value) {
                    let samples: Vec<HistogramSample> = histogram_chunk::decode(&value)?
                        .into_iter()
                        .filter(|s| s.timestamp_ms >= start && s.timestamp_ms <= end)
                        .collect();
                    merged_h = overlay(merged_h, samples);
                    continue;
                }
                let decoded = match chunk::timestamp_column(&value)? {
                    None => chunk::decode(&value)?,
                    Some(col) => {
                        let ts = self.column(bucket, seq, col, &mut columns).await?;
                        chunk::decode_with_timestamps(&value, &ts)?
                    }
                };
                let samples: Vec<Sample> = decoded
                    .into_iter()
                    .filter(|s| s.timestamp_ms >= start && s.timestamp_ms <= end)
                    .collect();
                merged = overlay(merged, samples);
            }
            if !merged.is_empty() || !merged_h.is_empty() {
                out.insert((bucket, id), (merged, merged_h));
            }
        }
        Ok(())
    }

    /// Timestamp column `col` of flush `seq` in `bucket`, cached for one read.
    async fn column(
        &self,
        bucket: u32,
        seq: u64,
        col: u64,
        cache: &mut BTreeMap<(u64, u64), Arc<Vec<i64>>>,
    ) -> Result<Arc<Vec<i64>>> {
        if let Some(ts) = cache.get(&(seq, col)) {
            return Ok(ts.clone());
        }
        let bytes = self
            .shared
            .reader
            .get(&chunk::timestamps_key(bucket, seq, col))
            .await?
            .ok_or_else(|| {
                opendata_common::DecodeError::new(
                    "sample chunk",
                    format!(
                        "timestamp column {col:016x} of flush {seq} in bucket {bucket} is missing"
                    ),
                )
            })?;
        let ts = Arc::new(chunk::decode_timestamps(&bytes)?);
        cache.insert((seq, col), ts.clone());
        Ok(ts)
    }

    /// Matching series per label set, with where their samples are.
    async fn resolve(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<BTreeMap<Labels, Vec<Part>>> {
        let (head, closed) = self.buckets(start, end);
        let mut by_labels: BTreeMap<Labels, Vec<Part>> = BTreeMap::new();
        for bucket in closed {
            let ids = self.stored_select(bucket, matchers).await?;
            for (id, labels) in self.stored_labels(bucket, &ids).await? {
                by_labels
                    .entry(labels)
                    .or_default()
                    .push(Part::Stored { bucket, id });
            }
        }
        for hb in head {
            let found: Vec<(u32, Arc<Labels>)> = {
                let data = hb.data.read();
                let ids = data.index.select(matchers);
                ids.iter()
                    .filter_map(|id| data.series.get(&id).map(|s| (id, s.labels.clone())))
                    .collect()
            };
            for (id, labels) in found {
                by_labels
                    .entry(Labels::clone(&labels))
                    .or_default()
                    .push(Part::Head {
                        bucket: hb.clone(),
                        id,
                    });
            }
        }
        for parts in by_labels.values_mut() {
            parts.sort_by_key(Part::bucket);
        }
        Ok(by_labels)
    }

    /// Series matching every matcher with samples in `[start, end]` (ms, inclusive),
    /// streamed in label order. An empty matcher list selects every series.
    pub async fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<SeriesSet> {
        let resolved = self.resolve(matchers, start, end).await?;
        let total = resolved.len();
        let memory = resolved
            .iter()
            .map(|(labels, parts)| {
                labels.memory_size() + std::mem::size_of_val(parts.as_slice()) + 64
            })
            .sum();
        Ok(SeriesSet {
            querier: self.clone(),
            selected: resolved.into_iter(),
            start,
            end,
            ready: Default::default(),
            total,
            memory,
        })
    }

    /// Exemplars of the series matching every matcher, in `[start, end]` (ms,
    /// inclusive): series in label order, each one's exemplars in time order, at most
    /// `limit` exemplars in all (the series cut at the limit keeps the first ones).
    pub async fn exemplars(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<SeriesExemplars>> {
        let resolved = self.resolve(matchers, start, end).await?;
        let mut out = Vec::new();
        let mut total = 0usize;
        for (labels, parts) in resolved {
            let mut found = Vec::new();
            'parts: for p in &parts {
                let (lo, hi) = exemplar::range(p.bucket(), part_id(p), start, end);
                let mut iter = self.shared.reader.scan(lo..hi).await?;
                while total < limit {
                    let Some(kv) = iter.next().await? else {
                        continue 'parts;
                    };
                    let (_, ts) = exemplar::decode_key(&kv.key)?;
                    found.push(exemplar::decode(&kv.value, ts)?);
                    total += 1;
                }
                break;
            }
            if !found.is_empty() {
                out.push(SeriesExemplars {
                    labels,
                    exemplars: found,
                });
            }
            if total >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Label sets of the series matching every matcher in any bucket overlapping
    /// `[start, end]`, sorted, at most `limit` (0: no limit).
    pub async fn series(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<Labels>> {
        let resolved = self.resolve(matchers, start, end).await?;
        Ok(resolved.into_keys().take(max_items(limit)).collect())
    }

    /// Label names of series matching every matcher (every series when empty), sorted.
    pub async fn label_names(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let (head, closed) = self.buckets(start, end);
        let mut names = BTreeSet::new();
        for bucket in closed {
            let ids = self.stored_filter(bucket, matchers).await?;
            let mut iter = self
                .shared
                .reader
                .scan_prefix(&label_names::prefix(bucket))
                .await?;
            while let Some(kv) = iter.next().await? {
                let name = label_names::decode_key(&kv.key)?;
                let keep = match &ids {
                    None => true,
                    Some(ids) => !decode_bitmap(&kv.value)?.is_disjoint(ids),
                };
                if keep {
                    names.insert(name);
                }
            }
        }
        for hb in head {
            let data = hb.data.read();
            let ids = data.index.select(matchers);
            names.extend(data.index.names(&ids));
        }
        Ok(limited(names, limit))
    }

    /// Values of label `name` on series matching every matcher, sorted.
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        limit: usize,
    ) -> Result<Vec<String>> {
        let (head, closed) = self.buckets(start, end);
        let mut values = BTreeSet::new();
        for bucket in closed {
            let ids = self.stored_filter(bucket, matchers).await?;
            for (v, b) in self.stored_values(bucket, name).await? {
                if ids.as_ref().is_none_or(|ids| !b.is_disjoint(ids)) {
                    values.insert(v);
                }
            }
        }
        for hb in head {
            let data = hb.data.read();
            let ids = data.index.select(matchers);
            values.extend(data.index.values(name, &ids));
        }
        Ok(limited(values, limit))
    }

    /// Metric metadata, for one metric or all, at most `limit` metrics (0: no limit).
    pub async fn metadata(
        &self,
        metric: Option<&str>,
        limit: usize,
    ) -> Result<Vec<MetricMetadata>> {
        let mut out = Vec::new();
        if let Some(metric) = metric {
            if let Some(v) = self.shared.reader.get(&metadata::key(metric)).await? {
                out.push(metadata::decode(metric.to_string(), &v)?);
            }
            return Ok(out);
        }
        let mut iter = self.shared.reader.scan_prefix(&metadata::prefix()).await?;
        while let Some(kv) = iter.next().await? {
            let name = metadata::decode_key(&kv.key)?;
            out.push(metadata::decode(name, &kv.value)?);
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The time range that holds data: the first bucket's start and the last bucket's
    /// end, if any.
    pub fn time_bounds(&self) -> Option<(i64, i64)> {
        let closed = self.shared.closed.read();
        let head = self.shared.head.buckets.read();
        let first = closed
            .iter()
            .next()
            .copied()
            .into_iter()
            .chain(head.keys().next().copied())
            .min()?;
        let last = closed
            .iter()
            .next_back()
            .copied()
            .into_iter()
            .chain(head.keys().next_back().copied())
            .max()?;
        Some((
            bucket_start(first, self.shared.bucket_ms),
            bucket_end(last, self.shared.bucket_ms),
        ))
    }

    /// Number of open (in memory) and closed (in storage) buckets.
    pub fn bucket_counts(&self) -> (usize, usize) {
        (
            self.shared.head.buckets.read().len(),
            self.shared.closed.read().len(),
        )
    }
}

/// How many items a `limit` parameter allows (0: no limit).
pub fn max_items(limit: usize) -> usize {
    if limit == 0 { usize::MAX } else { limit }
}

/// The first `limit` items of a sorted set (0: all of them), as the Prometheus API's
/// `limit` parameters mean it.
pub fn limited<T>(set: BTreeSet<T>, limit: usize) -> Vec<T> {
    set.into_iter().take(max_items(limit)).collect()
}
