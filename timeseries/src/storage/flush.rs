//! Flushing open buckets into chunks and indexes, closing them, and retention.
//!
//! A flush freezes a bucket's samples (under the writer lock, so it holds exactly the
//! write-ahead records up to some sequence), writes one chunk per series keyed by that
//! sequence plus the index records of series not yet indexed, then the bucket state
//! naming the sequence, durably. Only then are the covered write-ahead records deleted
//! and the frozen samples dropped. A crash at any point leaves either the records or
//! the chunks (or both: replay then rewrites the same samples, and reads keep one per
//! timestamp).

use std::collections::BTreeMap;
use std::sync::Arc;

use opendata_common::Durability;
use opendata_common::merge::RoaringUnion;
use opendata_common::segment::{delete_range, drop_segment};
use opendata_common::storage::WriteOps;
use roaring::RoaringBitmap;

use super::head::{FastMap, HeadBucket};
use super::writer::Inner;
use super::{bucket_end, now_ms};
use crate::error::Result;
use crate::model::Labels;
use crate::serde::bucket::{self, BucketState};
use crate::serde::labels::fingerprint;
use crate::serde::{
    PREFIX, chunk, dictionary, histogram_chunk, label_names, labels, postings, series, wal,
};

/// Bytes of writes gathered before handing them to the committer.
const FLUSH_BATCH_BYTES: usize = 4 << 20;

impl Inner {
    /// Closes buckets that fell out of the out-of-order window, flushes buckets holding
    /// many unflushed samples, and applies retention.
    pub(crate) async fn maintain(&self) -> Result<()> {
        let _guard = self.maintenance_lock.lock().await;
        let max_ts = self.state.lock().max_ts;
        let ooo_ms = (self.config.out_of_order_secs * 1000) as i64;
        for hb in self.shared.head.all() {
            let end = bucket_end(hb.bucket, self.shared.bucket_ms);
            if max_ts.is_some_and(|m| end.saturating_add(ooo_ms) <= m) {
                self.flush_bucket(&hb, true).await?;
            } else if self.config.flush_samples > 0
                && hb.data.read().unflushed_samples >= self.config.flush_samples
            {
                self.flush_bucket(&hb, false).await?;
            }
        }
        self.apply_retention().await
    }

    /// Writes a bucket's head samples into chunks; with `close`, the bucket then takes no
    /// more samples and leaves the head.
    pub(crate) async fn flush_bucket(&self, hb: &Arc<HeadBucket>, close: bool) -> Result<()> {
        let b = hb.bucket;
        let committer = self.storage.committer();
        let (frozen, unindexed) = {
            // The writer lock: no write is half-applied while the bucket freezes.
            let _st = self.state.lock();
            let mut d = hb.data.write();
            if close {
                d.closing = true;
            }
            let ids = std::mem::take(&mut d.unindexed);
            let unindexed: Vec<(u32, Arc<Labels>)> = ids
                .iter()
                .filter_map(|id| d.series.get(&id).map(|s| (id, s.labels.clone())))
                .collect();
            (d.freeze(), unindexed)
        };
        let seq = frozen.through_seq;
        let mut ops = WriteOps::new();
        // Series scraped together share timestamps: each distinct run of timestamps is
        // stored once as a column, and chunks hold values only.
        let mut columns: FastMap<u64, Vec<i64>> = FastMap::default();
        for (id, sd) in &frozen.series {
            let histograms = sd.histograms(i64::MIN, i64::MAX)?;
            if !histograms.is_empty() {
                ops.put(
                    histogram_chunk::key(b, *id, seq),
                    histogram_chunk::encode(&histograms),
                );
            }
            let samples = sd.samples(i64::MIN, i64::MAX)?;
            if samples.is_empty() {
                continue;
            }
            let ts: Vec<i64> = samples.iter().map(|s| s.timestamp_ms).collect();
            let col = chunk::column_id(&ts);
            let value = match columns.get(&col) {
                Some(existing) if *existing == ts => chunk::encode_values_only(&samples, col),
                Some(_) => chunk::encode(&samples),
                None => {
                    ops.put(
                        chunk::timestamps_key(b, seq, col),
                        chunk::encode_timestamps(&ts),
                    );
                    columns.insert(col, ts);
                    chunk::encode_values_only(&samples, col)
                }
            };
            ops.put(chunk::key(b, *id, seq), value);
            if ops.size_bytes() >= FLUSH_BATCH_BYTES {
                committer
                    .write(std::mem::take(&mut ops), Durability::Memory)
                    .await?;
            }
        }
        let mut by_pair: BTreeMap<(&str, &str), RoaringBitmap> = BTreeMap::new();
        let mut by_name: BTreeMap<&str, RoaringBitmap> = BTreeMap::new();
        for (id, l) in &unindexed {
            ops.put(series::key(b, *id), labels::encode(l));
            ops.put(dictionary::key(b, fingerprint(l), *id), bytes::Bytes::new());
            for label in l.as_slice() {
                by_pair
                    .entry((label.name.as_str(), label.value.as_str()))
                    .or_default()
                    .insert(*id);
                by_name.entry(label.name.as_str()).or_default().insert(*id);
            }
            if ops.size_bytes() >= FLUSH_BATCH_BYTES {
                committer
                    .write(std::mem::take(&mut ops), Durability::Memory)
                    .await?;
            }
        }
        for ((name, value), ids) in &by_pair {
            ops.merge(postings::key(b, name, value), RoaringUnion::encode(ids));
        }
        for (name, ids) in &by_name {
            ops.merge(label_names::key(b, name), RoaringUnion::encode(ids));
        }
        ops.put(
            bucket::key(b),
            bucket::encode(BucketState {
                closed: close,
                flushed_through: seq,
            }),
        );
        committer.write(ops, Durability::Remote).await?;
        // The chunks are durable: the covered write-ahead records can go. Losing these
        // deletes in a crash is harmless (replay skips covered records).
        let (start, _) = wal::range_from(b, 0);
        let end = wal::key(b, seq.saturating_add(1));
        delete_range(&self.storage, start, end, Durability::Memory).await?;
        {
            let mut d = hb.data.write();
            d.frozen = None;
            d.checkpoint = seq;
        }
        if close {
            // Readers look at the head first, so the bucket is in `closed` before it
            // leaves the head.
            self.shared.closed.write().insert(b);
            self.shared.head.remove(b);
            self.forget_series(hb);
        }
        tracing::debug!(
            bucket = b,
            close,
            series = frozen.series.len(),
            "flushed bucket"
        );
        Ok(())
    }

    /// Drops from the id lookup the series of `hb` that no open bucket holds any more.
    fn forget_series(&self, hb: &HeadBucket) {
        let others = self.shared.head.all();
        let mut st = self.state.lock();
        let data = hb.data.read();
        for (id, s) in &data.series {
            if !others.iter().any(|o| o.data.read().contains(*id)) {
                st.forget(*id, &s.labels);
            }
        }
    }

    /// Drops every bucket whose end is older than the retention period.
    pub(crate) async fn apply_retention(&self) -> Result<()> {
        if self.config.retention_secs == 0 {
            return Ok(());
        }
        let cutoff = now_ms() - (self.config.retention_secs * 1000) as i64;
        let expired = |b: u32| bucket_end(b, self.shared.bucket_ms) < cutoff;
        let closed: Vec<u32> = self
            .shared
            .closed
            .read()
            .iter()
            .copied()
            .filter(|b| expired(*b))
            .collect();
        for b in closed {
            self.shared.closed.write().remove(&b);
            drop_segment(&self.storage, PREFIX, b, Durability::Memory).await?;
            tracing::info!(bucket = b, "retention dropped a bucket");
        }
        for hb in self.shared.head.all() {
            if expired(hb.bucket) {
                {
                    let _st = self.state.lock();
                    hb.data.write().closing = true;
                }
                self.shared.head.remove(hb.bucket);
                self.forget_series(&hb);
                drop_segment(&self.storage, PREFIX, hb.bucket, Durability::Memory).await?;
                tracing::info!(bucket = hb.bucket, "retention dropped an open bucket");
            }
        }
        Ok(())
    }
}
