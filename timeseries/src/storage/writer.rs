//! The writer: remote-write batches in, through group commit, into write-ahead records
//! and the head.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use opendata_common::sequence::SequenceAllocator;
use opendata_common::storage::{Storage, StorageRoot, WriteOps};
use opendata_common::task::spawn_supervised;
use opendata_common::{Durability, StorageConfig};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::head::{FastMap, Head, HeadBucket};
use super::read::{Querier, ReadShared};
use super::{DATABASE, MAX_ABS_TIMESTAMP_MS, bucket_end, bucket_of, load, now_ms};
use crate::config::TimeSeriesConfig;
use crate::error::{Error, Result};
use crate::model::{
    Exemplar, HistogramSample, Labels, MAX_EXEMPLAR_LABEL_CHARS, MetricMetadata, Sample,
    SeriesSamples, WriteBatch, valid_label_name,
};
use crate::serde::labels::fingerprint;
use crate::serde::wal::{self, WalBuilder};
use crate::serde::{exemplar, merge_router, metadata, sequences, settings};

/// Write sequences reserved per durable block record.
const WRITE_SEQUENCE_BLOCK: u64 = 1 << 20;

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Float samples written.
    pub samples: usize,
    /// Histogram samples written.
    pub histograms: usize,
    /// Series seen for the first time in a bucket.
    pub new_series: usize,
    /// Metadata records written (changed or new).
    pub metadata: usize,
    /// Samples refused as out of bounds (the rest were written).
    pub out_of_bounds: usize,
    /// Why the first refused sample was refused.
    pub first_out_of_bounds: Option<String>,
    /// Exemplars written.
    pub exemplars: usize,
    /// Exemplars refused: invalid, outside the window that takes samples, for a series
    /// without samples in the exemplar's bucket, or past `max_exemplars_per_bucket`.
    pub exemplars_refused: usize,
}

/// The time series database, opened for writing.
///
/// Cloning shares the database. [`TimeSeriesDb::close`] stops it; acknowledged writes
/// are durable whether or not it is closed.
#[derive(Clone)]
pub struct TimeSeriesDb {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) storage: Storage,
    pub(crate) config: TimeSeriesConfig,
    pub(crate) shared: Arc<ReadShared>,
    pub(crate) state: Mutex<WriterState>,
    pub(crate) wake: Notify,
    /// Set by a write that made an open bucket due to close or flush.
    due: AtomicBool,
    /// Serializes flushes, retention and closing.
    pub(crate) maintenance_lock: tokio::sync::Mutex<()>,
    maintenance: Mutex<Option<JoinHandle<()>>>,
}

/// State only the commit path changes (inside `prepare`, which runs serially), and
/// flushes read under the same lock.
pub(crate) struct WriterState {
    series_alloc: SequenceAllocator,
    write_alloc: SequenceAllocator,
    /// Series of the open buckets, by fingerprint (collisions kept apart by labels).
    pub(crate) series: FastMap<u64, Vec<(u32, Arc<Labels>)>>,
    metadata: FastMap<String, MetricMetadata>,
    /// Newest sample timestamp taken.
    pub(crate) max_ts: Option<i64>,
}

impl WriterState {
    /// The id of an open bucket's series with `labels`, if there is one.
    fn lookup(&self, labels: &Labels) -> Option<u32> {
        self.series
            .get(&fingerprint(labels))?
            .iter()
            .find(|(_, l)| **l == *labels)
            .map(|(id, _)| *id)
    }

    fn resolve(&mut self, labels: &Labels, ops: &mut WriteOps) -> Result<(u32, Arc<Labels>)> {
        let fp = fingerprint(labels);
        if let Some(ids) = self.series.get(&fp) {
            for (id, l) in ids {
                if **l == *labels {
                    return Ok((*id, l.clone()));
                }
            }
        }
        let id = self.series_alloc.allocate(1, ops);
        let id = u32::try_from(id)
            .map_err(|_| Error::Config("the series id space (2^32 ids) is exhausted".into()))?;
        let l = Arc::new(labels.clone());
        self.series.entry(fp).or_default().push((id, l.clone()));
        Ok((id, l))
    }

    /// Forgets series `id` (it left every open bucket).
    pub(crate) fn forget(&mut self, id: u32, labels: &Labels) {
        let fp = fingerprint(labels);
        if let Some(ids) = self.series.get_mut(&fp) {
            ids.retain(|(i, _)| *i != id);
            if ids.is_empty() {
                self.series.remove(&fp);
            }
        }
    }
}

/// Settings of an embedded database: storage and the time series settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The object store and SlateDB tuning.
    pub storage: StorageConfig,
    /// The time series settings.
    pub timeseries: TimeSeriesConfig,
}

impl TimeSeriesDb {
    /// Opens (or creates) the database described by `config`.
    pub async fn open(config: Config) -> Result<Self> {
        let root = StorageRoot::new(config.storage)?;
        Self::open_in(&root, config.timeseries).await
    }

    /// Opens (or creates) the database under an existing storage root.
    pub async fn open_in(root: &StorageRoot, config: TimeSeriesConfig) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        let storage = root.open_writer(DATABASE, Some(merge_router())).await?;
        let reader = storage.reader();
        let bucket_ms = config.bucket_ms();
        match reader.get(&settings::key()).await? {
            Some(v) => {
                let stored = settings::decode(&v)?;
                if stored != bucket_ms as u64 {
                    return Err(Error::Config(format!(
                        "the database was created with buckets of {} s; timeseries.bucket_secs \
                         is {} s. The bucket width cannot change once data exists",
                        stored / 1000,
                        config.bucket_secs
                    )));
                }
            }
            None => {
                let mut ops = WriteOps::new();
                ops.put(settings::key(), settings::encode(bucket_ms as u64));
                storage.write(ops, Durability::Remote).await?;
            }
        }
        let series_alloc =
            SequenceAllocator::load(&reader, sequences::series_key(), config.series_id_block)
                .await?;
        let write_alloc =
            SequenceAllocator::load(&reader, sequences::write_key(), WRITE_SEQUENCE_BLOCK).await?;
        let shared = Arc::new(ReadShared {
            reader: reader.clone(),
            head: Head::default(),
            closed: Default::default(),
            bucket_ms,
        });
        let max_ts = load::load_all(&shared, config.head_chunk_samples).await?;
        // What each open bucket already holds of its exemplar allowance.
        for hb in shared.head.all() {
            let (lo, hi) = exemplar::bucket_range(hb.bucket);
            let mut iter = reader.scan(lo..hi).await?;
            let mut n = 0u64;
            while n < config.max_exemplars_per_bucket && iter.next().await?.is_some() {
                n += 1;
            }
            hb.data.write().exemplars = n;
        }
        // Series of the open buckets, for id lookups.
        let mut series: FastMap<u64, Vec<(u32, Arc<Labels>)>> = FastMap::default();
        let mut seen = std::collections::HashSet::new();
        for hb in shared.head.all() {
            let data = hb.data.read();
            for (id, s) in &data.series {
                if seen.insert(*id) {
                    series
                        .entry(fingerprint(&s.labels))
                        .or_default()
                        .push((*id, s.labels.clone()));
                }
            }
        }
        let mut meta = FastMap::default();
        let querier = Querier {
            shared: shared.clone(),
        };
        for m in querier.metadata(None, 0).await? {
            meta.insert(m.metric.clone(), m);
        }
        // After a restart with every bucket closed, the newest closed bucket bounds what
        // is still accepted.
        let max_ts = max_ts.or_else(|| {
            shared
                .closed
                .read()
                .iter()
                .next_back()
                .map(|b| bucket_end(*b, bucket_ms))
        });
        let inner = Arc::new(Inner {
            storage,
            config,
            shared,
            state: Mutex::new(WriterState {
                series_alloc,
                write_alloc,
                series,
                metadata: meta,
                max_ts,
            }),
            wake: Notify::new(),
            due: AtomicBool::new(false),
            maintenance_lock: tokio::sync::Mutex::new(()),
            maintenance: Mutex::new(None),
        });
        let task = spawn_supervised(
            "time series maintenance",
            inner.storage.health(),
            maintenance_loop(Arc::downgrade(&inner)),
        );
        *inner.maintenance.lock() = Some(task);
        Ok(Self { inner })
    }

    /// The read interface.
    pub fn querier(&self) -> Querier {
        Querier {
            shared: self.inner.shared.clone(),
        }
    }

    /// The underlying storage.
    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The settings.
    pub fn config(&self) -> &TimeSeriesConfig {
        &self.inner.config
    }

    /// Writes a batch and returns once it is durable in the object store.
    pub async fn write(&self, batch: WriteBatch) -> Result<WriteOutcome> {
        self.write_with(batch, Durability::Remote).await
    }

    /// Writes a batch with the given durability. The samples are visible to queries
    /// when this returns. Samples outside the window that takes samples are refused and
    /// counted in the outcome; the rest are written.
    pub async fn write_with(
        &self,
        batch: WriteBatch,
        durability: Durability,
    ) -> Result<WriteOutcome> {
        for (i, s) in batch.series.iter().enumerate() {
            let times = s
                .samples
                .iter()
                .map(|x| x.timestamp_ms)
                .chain(s.histograms.iter().map(|h| h.timestamp_ms));
            for t in times {
                if !(-MAX_ABS_TIMESTAMP_MS..=MAX_ABS_TIMESTAMP_MS).contains(&t) {
                    return Err(Error::BadData(format!(
                        "series {i}: timestamp {t} ms is out of range (|t| must be at most {MAX_ABS_TIMESTAMP_MS} ms)",
                    )));
                }
            }
            for h in &s.histograms {
                h.histogram.validate().map_err(|why| {
                    Error::BadData(format!(
                        "series {i}: histogram sample at {} ms: {why}",
                        h.timestamp_ms
                    ))
                })?;
            }
        }
        if batch.series.is_empty() && batch.metadata.is_empty() {
            return Ok(WriteOutcome::default());
        }
        let inner = self.inner.clone();
        let now = now_ms();
        let outcome = self
            .inner
            .storage
            .committer()
            .submit(durability, move |ops: &mut WriteOps| {
                inner.prepare(&batch, ops, now)
            })
            .await?;
        if self.inner.due.swap(false, Ordering::Relaxed) {
            self.inner.wake.notify_one();
        }
        Ok(outcome)
    }

    /// Flushes the samples of every open bucket into chunks now (without closing them),
    /// so their write-ahead records can go. Reopening then replays nothing.
    pub async fn flush_head(&self) -> Result<()> {
        let _guard = self.inner.maintenance_lock.lock().await;
        for hb in self.inner.shared.head.all() {
            self.inner.flush_bucket(&hb, false).await?;
        }
        Ok(())
    }

    /// Runs bucket closing and retention now (they also run in the background).
    pub async fn maintain(&self) -> Result<()> {
        self.inner.maintain().await
    }

    /// Checks the database can serve.
    pub fn check(&self) -> Result<()> {
        Ok(self.inner.storage.check()?)
    }

    /// Stops background work and closes storage. Acknowledged writes are already
    /// durable; open buckets are replayed from their write-ahead records on reopen.
    pub async fn close(&self) -> Result<()> {
        if let Some(task) = self.inner.maintenance.lock().take() {
            task.abort();
        }
        let _guard = self.inner.maintenance_lock.lock().await;
        self.inner.storage.close().await?;
        Ok(())
    }
}

struct BucketWal {
    bucket: u32,
    head: Arc<HeadBucket>,
    wal: WalBuilder,
}

impl Inner {
    /// The write-ahead record being built for `bucket` in this write, started if new.
    fn bucket_wal<'w>(&self, wals: &'w mut Vec<BucketWal>, bucket: u32) -> &'w mut BucketWal {
        let k = match wals.iter().position(|w| w.bucket == bucket) {
            Some(k) => k,
            None => {
                wals.push(BucketWal {
                    bucket,
                    head: self.shared.head.bucket(bucket),
                    wal: WalBuilder::new(),
                });
                wals.len() - 1
            }
        };
        &mut wals[k]
    }

    /// Applies a batch to the head and adds its write-ahead records to `ops`. Runs on the
    /// commit task, serially with every other write.
    fn prepare(&self, batch: &WriteBatch, ops: &mut WriteOps, now: i64) -> Result<WriteOutcome> {
        let cfg = &self.config;
        let bucket_ms = self.shared.bucket_ms;
        let ooo_ms = (cfg.out_of_order_secs * 1000) as i64;
        let seal_at = cfg.head_chunk_samples;
        let oldest = if cfg.retention_secs > 0 {
            now - (cfg.retention_secs * 1000) as i64
        } else {
            i64::MIN
        };
        let newest = now.saturating_add((cfg.max_future_secs * 1000) as i64);
        let mut st = self.state.lock();
        // Sequences start at 1: 0 means "nothing" in bucket states.
        let seq = st.write_alloc.allocate(1, ops) + 1;
        let max_before = st.max_ts;
        let mut max_ts = st.max_ts;
        let mut out = WriteOutcome::default();
        let mut wals: Vec<BucketWal> = Vec::with_capacity(2);
        let refuse = |out: &mut WriteOutcome, n: usize, why: String| {
            if n == 0 {
                return;
            }
            out.out_of_bounds += n;
            if out.first_out_of_bounds.is_none() {
                out.first_out_of_bounds = Some(why);
            }
        };
        let mut accepted = Vec::new();
        for s in &batch.series {
            if s.samples.is_empty() {
                continue;
            }
            let (id, labels) = st.resolve(&s.labels, ops)?;
            // A created timestamp's zero sample goes first, and counts nowhere: it is
            // only written where it cannot be refused, and is never reported.
            let zero = self.created_zero(s, id, max_before, oldest, newest);
            let with_zero: Vec<Sample>;
            let samples: &[Sample] = match zero {
                Some(z) => {
                    with_zero = std::iter::once(z)
                        .chain(s.samples.iter().copied())
                        .collect();
                    &with_zero
                }
                None => &s.samples,
            };
            let mut i = 0;
            while i < samples.len() {
                let run_start = i;
                // The run's samples that the client sent (the zero sample excluded).
                let sent = |n: usize| n - usize::from(zero.is_some() && run_start == 0);
                let bucket = bucket_of(samples[i].timestamp_ms, bucket_ms);
                let mut j = i + 1;
                while j < samples.len() && bucket_of(samples[j].timestamp_ms, bucket_ms) == bucket {
                    j += 1;
                }
                let run = &samples[i..j];
                i = j;
                let end = bucket_end(bucket, bucket_ms);
                if self.shared.closed.read().contains(&bucket)
                    || max_before.is_some_and(|m| end.saturating_add(ooo_ms) <= m)
                {
                    refuse(
                        &mut out,
                        sent(run.len()),
                        format!(
                            "sample at {} ms of series {} is older than the out-of-order window \
                             ({} s before the newest sample, {} ms)",
                            run[0].timestamp_ms,
                            describe(&labels),
                            cfg.out_of_order_secs,
                            max_before.unwrap_or_default()
                        ),
                    );
                    continue;
                }
                accepted.clear();
                let mut zero_taken = false;
                for (k, sample) in run.iter().enumerate() {
                    if zero.is_some() && run_start == 0 && k == 0 {
                        // Checked against the same bounds by `created_zero`.
                        accepted.push(*sample);
                        zero_taken = true;
                    } else if sample.timestamp_ms < oldest {
                        refuse(
                            &mut out,
                            1,
                            format!(
                                "sample at {} ms of series {} is older than the retention period",
                                sample.timestamp_ms,
                                describe(&labels)
                            ),
                        );
                    } else if sample.timestamp_ms > newest {
                        refuse(
                            &mut out,
                            1,
                            format!(
                                "sample at {} ms of series {} is more than {} s in the future",
                                sample.timestamp_ms,
                                describe(&labels),
                                cfg.max_future_secs
                            ),
                        );
                    } else {
                        accepted.push(*sample);
                    }
                }
                if accepted.is_empty() {
                    continue;
                }
                let w = self.bucket_wal(&mut wals, bucket);
                let mut data = w.head.data.write();
                if data.closing {
                    drop(data);
                    refuse(
                        &mut out,
                        accepted.len() - usize::from(zero_taken),
                        format!(
                            "sample at {} ms of series {} falls in a bucket that is closing",
                            accepted[0].timestamp_ms,
                            describe(&labels)
                        ),
                    );
                    continue;
                }
                if !data.contains(id) {
                    data.add_series(id, labels.clone(), false);
                    w.wal.new_series(id, &labels);
                    out.new_series += 1;
                }
                data.append(id, &accepted, seal_at);
                if cfg.flush_samples > 0 && data.unflushed_samples >= cfg.flush_samples {
                    self.due.store(true, Ordering::Relaxed);
                }
                data.last_seq = seq;
                drop(data);
                w.wal.samples(id, &accepted);
                out.samples += accepted.len() - usize::from(zero_taken);
                let run_max = accepted.iter().map(|s| s.timestamp_ms).max();
                max_ts = max_ts.max(run_max);
            }
        }
        // Histogram samples: the same windows as float samples.
        for s in &batch.series {
            if s.histograms.is_empty() {
                continue;
            }
            let (id, labels) = st.resolve(&s.labels, ops)?;
            let mut by_bucket: BTreeMap<u32, Vec<HistogramSample>> = BTreeMap::new();
            for h in &s.histograms {
                let t = h.timestamp_ms;
                let bucket = bucket_of(t, bucket_ms);
                let end = bucket_end(bucket, bucket_ms);
                if self.shared.closed.read().contains(&bucket)
                    || max_before.is_some_and(|m| end.saturating_add(ooo_ms) <= m)
                {
                    refuse(
                        &mut out,
                        1,
                        format!(
                            "histogram sample at {t} ms of series {} is older than the \
                             out-of-order window ({} s before the newest sample)",
                            describe(&labels),
                            cfg.out_of_order_secs
                        ),
                    );
                } else if t < oldest {
                    refuse(
                        &mut out,
                        1,
                        format!(
                            "histogram sample at {t} ms of series {} is older than the retention period",
                            describe(&labels)
                        ),
                    );
                } else if t > newest {
                    refuse(
                        &mut out,
                        1,
                        format!(
                            "histogram sample at {t} ms of series {} is more than {} s in the future",
                            describe(&labels),
                            cfg.max_future_secs
                        ),
                    );
                } else {
                    by_bucket.entry(bucket).or_default().push(h.clone());
                }
            }
            for (bucket, accepted) in by_bucket {
                let w = self.bucket_wal(&mut wals, bucket);
                let mut data = w.head.data.write();
                if data.closing {
                    drop(data);
                    refuse(
                        &mut out,
                        accepted.len(),
                        format!(
                            "histogram sample at {} ms of series {} falls in a bucket that is closing",
                            accepted[0].timestamp_ms,
                            describe(&labels)
                        ),
                    );
                    continue;
                }
                if !data.contains(id) {
                    data.add_series(id, labels.clone(), false);
                    w.wal.new_series(id, &labels);
                    out.new_series += 1;
                }
                data.append_histograms(id, &accepted, seal_at);
                if cfg.flush_samples > 0 && data.unflushed_samples >= cfg.flush_samples {
                    self.due.store(true, Ordering::Relaxed);
                }
                data.last_seq = seq;
                drop(data);
                w.wal.histograms(id, &accepted);
                out.histograms += accepted.len();
                max_ts = max_ts.max(accepted.iter().map(|h| h.timestamp_ms).max());
            }
        }
        for w in wals {
            if !w.wal.is_empty() {
                ops.put(wal::key(w.bucket, seq), w.wal.finish());
            }
        }
        // Exemplars, once every sample of the batch is in: an exemplar is kept for a series
        // with samples in the open bucket of its timestamp, in the same write as those
        // samples' records, so it is exactly as durable.
        for s in &batch.series {
            if s.exemplars.is_empty() {
                continue;
            }
            let id = st.lookup(&s.labels);
            for e in &s.exemplars {
                let kept = id.is_some_and(|id| {
                    exemplar_allowed(e, oldest, newest)
                        && self.store_exemplar(id, e, ops, bucket_ms)
                });
                if kept {
                    out.exemplars += 1;
                } else {
                    out.exemplars_refused += 1;
                }
            }
        }
        st.max_ts = max_ts;
        // The oldest open bucket is the first to fall out of the out-of-order window.
        if let (Some(m), Some(&oldest)) = (max_ts, self.shared.head.buckets.read().keys().next())
            && bucket_end(oldest, bucket_ms).saturating_add(ooo_ms) <= m
        {
            self.due.store(true, Ordering::Relaxed);
        }
        for m in &batch.metadata {
            if st.metadata.get(&m.metric) != Some(m) {
                ops.put(metadata::key(&m.metric), metadata::encode(m));
                st.metadata.insert(m.metric.clone(), m.clone());
                out.metadata += 1;
            }
        }
        Ok(out)
    }
}

impl Inner {
    /// The zero sample at series `s`'s created timestamp, with the
    /// `created-timestamp-zero-ingestion` feature: when the created timestamp is before
    /// the series' first sample in the batch, nothing stored of the series is at or after
    /// it, and its bucket takes samples. Otherwise none (as Prometheus, which ignores a
    /// created timestamp it cannot use).
    fn created_zero(
        &self,
        s: &SeriesSamples,
        id: u32,
        max_before: Option<i64>,
        oldest: i64,
        newest: i64,
    ) -> Option<Sample> {
        let ct = s.created_timestamp_ms?;
        if !self.config.feature("created-timestamp-zero-ingestion") {
            return None;
        }
        let first = s.samples.iter().map(|x| x.timestamp_ms).min()?;
        let bucket_ms = self.shared.bucket_ms;
        let ooo_ms = (self.config.out_of_order_secs * 1000) as i64;
        let bucket = bucket_of(ct, bucket_ms);
        let end = bucket_end(bucket, bucket_ms);
        if ct >= first
            || ct < oldest
            || ct > newest
            || !(-MAX_ABS_TIMESTAMP_MS..=MAX_ABS_TIMESTAMP_MS).contains(&ct)
            || self.shared.closed.read().contains(&bucket)
            || max_before.is_some_and(|m| end.saturating_add(ooo_ms) <= m)
        {
            return None;
        }
        for hb in self.shared.head.range(bucket, u32::MAX) {
            let data = hb.data.read();
            if hb.bucket == bucket && data.closing {
                return None;
            }
            if data
                .series
                .get(&id)
                .is_some_and(|hs| hs.data.last_ts().is_some_and(|t| t >= ct))
            {
                return None;
            }
        }
        Some(Sample {
            timestamp_ms: ct,
            value: 0.0,
        })
    }

    /// Writes exemplar `e` of series `id` if its bucket is open, holds the series and has
    /// room; answers whether it did.
    fn store_exemplar(&self, id: u32, e: &Exemplar, ops: &mut WriteOps, bucket_ms: i64) -> bool {
        let cap = self.config.max_exemplars_per_bucket;
        let bucket = bucket_of(e.timestamp_ms, bucket_ms);
        if cap == 0 || self.shared.closed.read().contains(&bucket) {
            return false;
        }
        let Some(hb) = self.shared.head.buckets.read().get(&bucket).cloned() else {
            return false;
        };
        let mut data = hb.data.write();
        if data.closing || !data.contains(id) || data.exemplars >= cap {
            return false;
        }
        data.exemplars += 1;
        ops.put(
            exemplar::key(bucket, id, e.timestamp_ms),
            exemplar::encode(e),
        );
        true
    }
}

/// Whether an exemplar may be stored: valid label names, at most
/// [`MAX_EXEMPLAR_LABEL_CHARS`] characters of labels, a time in the window that takes
/// samples.
fn exemplar_allowed(e: &Exemplar, oldest: i64, newest: i64) -> bool {
    let chars: usize = e
        .labels
        .as_slice()
        .iter()
        .map(|l| l.name.chars().count() + l.value.chars().count())
        .sum();
    chars <= MAX_EXEMPLAR_LABEL_CHARS
        && e.labels
            .as_slice()
            .iter()
            .all(|l| valid_label_name(&l.name))
        && (-MAX_ABS_TIMESTAMP_MS..=MAX_ABS_TIMESTAMP_MS).contains(&e.timestamp_ms)
        && e.timestamp_ms >= oldest
        && e.timestamp_ms <= newest
}

/// `{__name__="x", ...}`, short.
fn describe(labels: &Labels) -> String {
    let mut s = String::from("{");
    for (i, l) in labels.as_slice().iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&format!("{}={:?}", l.name, l.value));
    }
    s.push('}');
    s
}

async fn maintenance_loop(inner: Weak<Inner>) {
    loop {
        // Holding the database only while waiting one interval: once every handle is
        // dropped, the next round ends the loop.
        let Some(i) = inner.upgrade() else { return };
        let interval = Duration::from_secs(i.config.maintenance_interval_secs);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = i.wake.notified() => {}
        }
        if let Err(e) = i.maintain().await {
            tracing::warn!(error = %e, "time series maintenance failed; will retry");
        }
    }
}
