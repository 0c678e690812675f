//! Opening: bucket states, the head rebuilt from the forward index and write-ahead
//! records of open buckets.

use std::sync::Arc;

use opendata_common::segment::list_segments;
use opendata_common::storage::StorageReader;

use super::head::{BucketData, FastMap, HeadBucket};
use super::read::ReadShared;
use crate::error::Result;
use crate::model::Labels;
use crate::serde::bucket::{self, BucketState};
use crate::serde::wal::{self, WalRecord};
use crate::serde::{PREFIX, labels, series};

/// Shares one `Arc<Labels>` per series id across buckets.
pub(crate) type Interner = FastMap<u32, Arc<Labels>>;

fn intern(interner: &mut Interner, id: u32, labels: Labels) -> Arc<Labels> {
    match interner.get(&id) {
        Some(l) if **l == labels => l.clone(),
        _ => {
            let l = Arc::new(labels);
            interner.insert(id, l.clone());
            l
        }
    }
}

/// The state of `bucket` (open with nothing flushed when it has no record).
pub(crate) async fn read_state(reader: &StorageReader, bucket: u32) -> Result<BucketState> {
    Ok(match reader.get(&bucket::key(bucket)).await? {
        Some(v) => bucket::decode(&v)?,
        None => BucketState::default(),
    })
}

/// Write-ahead records of `bucket` after sequence `after`, in order.
pub(crate) async fn read_wal(
    reader: &StorageReader,
    bucket: u32,
    after: u64,
) -> Result<Vec<(u64, WalRecord)>> {
    let (start, end) = wal::range_from(bucket, after.saturating_add(1));
    let mut iter = reader.scan(start..end).await?;
    let mut out = Vec::new();
    while let Some(kv) = iter.next().await? {
        out.push((wal::decode_key(&kv.key)?, wal::decode(&kv.value)?));
    }
    Ok(out)
}

/// Applies write-ahead records to a bucket, as the writer applied them. Returns the
/// newest sample timestamp seen.
pub(crate) fn apply_wal(
    data: &mut BucketData,
    records: Vec<(u64, WalRecord)>,
    seal_at: usize,
    interner: &mut Interner,
) -> Option<i64> {
    let mut max_ts = None;
    for (seq, record) in records {
        if seq <= data.last_seq {
            continue;
        }
        for (id, labels) in record.new_series {
            if !data.contains(id) {
                let labels = intern(interner, id, labels);
                data.add_series(id, labels, false);
            }
        }
        for (id, samples) in record.samples {
            if let Some(t) = samples.iter().map(|s| s.timestamp_ms).max() {
                max_ts = max_ts.max(Some(t));
            }
            data.append(id, &samples, seal_at);
        }
        for (id, histograms) in record.histograms {
            if let Some(t) = histograms.iter().map(|s| s.timestamp_ms).max() {
                max_ts = max_ts.max(Some(t));
            }
            data.append_histograms(id, &histograms, seal_at);
        }
        data.last_seq = seq;
    }
    max_ts
}

/// Builds the head of open bucket `bucket`: the series already flushed (from the forward
/// index) and everything after the flushed-through sequence (from write-ahead records).
pub(crate) async fn load_bucket(
    reader: &StorageReader,
    bucket: u32,
    state: BucketState,
    seal_at: usize,
    interner: &mut Interner,
) -> Result<(HeadBucket, Option<i64>)> {
    let mut data = BucketData::default();
    if state.flushed_through > 0 {
        data.has_stored_chunks = true;
        let (start, end) = series::range(bucket);
        let mut iter = reader.scan(start..end).await?;
        while let Some(kv) = iter.next().await? {
            let id = series::decode_key(&kv.key)?;
            let labels = intern(interner, id, labels::decode(&kv.value)?);
            data.add_series(id, labels, true);
        }
    }
    data.last_seq = state.flushed_through;
    data.checkpoint = state.flushed_through;
    let records = read_wal(reader, bucket, state.flushed_through).await?;
    let max_ts = apply_wal(&mut data, records, seal_at, interner);
    // Replayed samples are not in chunks yet: they count towards the next flush.
    data.unflushed_samples = data.sample_hint() as u64;
    Ok((
        HeadBucket {
            bucket,
            data: parking_lot::RwLock::new(data),
        },
        max_ts,
    ))
}

/// Loads every bucket into `shared`: closed ones by number, open ones into the head.
/// Returns the newest sample timestamp in the head.
pub(crate) async fn load_all(shared: &ReadShared, seal_at: usize) -> Result<Option<i64>> {
    let mut interner = Interner::default();
    let mut max_ts = None;
    for bucket in list_segments(&shared.reader, PREFIX).await? {
        let state = read_state(&shared.reader, bucket).await?;
        if state.closed {
            shared.closed.write().insert(bucket);
            continue;
        }
        let (hb, ts) = load_bucket(&shared.reader, bucket, state, seal_at, &mut interner).await?;
        max_ts = max_ts.max(ts);
        shared.head.buckets.write().insert(bucket, Arc::new(hb));
    }
    Ok(max_ts)
}
