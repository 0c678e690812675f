//! Retention: dropping whole segments by age and by total size.
//!
//! Only sealed segments (every segment but the newest) are dropped. A sealed segment's
//! entries are all older than the next segment's start time, so it expires once that
//! start time is older than `retention_secs`. For size retention, the oldest sealed
//! segments are dropped while the byte counters of all segments add up to more than
//! `retention_bytes`. Dropping removes the segment from the in-memory list first (so
//! scans skip it), then deletes its entries, its descriptor, its byte counter, and
//! the key index records of keys whose newest entry was in it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use opendata_common::segment::drop_segment;
use opendata_common::storage::{Durability, WriteOps};
use opendata_common::task::{TaskHealth, spawn_supervised};
use tokio::task::JoinHandle;

use super::now_ms;
use super::writer::Inner;
use crate::error::Result;
use crate::serde::{PREFIX, key_index, segment, segment_bytes};

pub(crate) fn spawn(inner: Weak<Inner>, health: &TaskHealth) -> JoinHandle<()> {
    spawn_supervised("log retention", health, async move {
        loop {
            let period = match inner.upgrade() {
                Some(i) => Duration::from_secs(i.config.retention_check_secs),
                None => return,
            };
            tokio::time::sleep(period).await;
            let Some(inner) = inner.upgrade() else { return };
            match enforce(&inner).await {
                Ok(dropped) if !dropped.is_empty() => {
                    tracing::info!(?dropped, "log retention dropped segments")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "log retention failed"),
            }
        }
    })
}

pub(crate) async fn enforce(inner: &Arc<Inner>) -> Result<Vec<u32>> {
    let cfg = &inner.config;
    // Seal an old open segment even if nothing is being appended, so it can expire.
    inner.seal_if_due().await?;
    super::topics::enforce_topic_retention(inner).await?;
    let segments = inner.segments.read().clone();
    if segments.len() < 2 {
        return Ok(Vec::new());
    }
    let sealed = &segments[..segments.len() - 1];
    let mut victims = Vec::new();
    if cfg.retention_secs > 0 {
        let cutoff = now_ms().saturating_sub(cfg.retention_secs * 1000);
        for (i, seg) in sealed.iter().enumerate() {
            if segments[i + 1].start_time_ms <= cutoff {
                victims.push(seg.id);
            }
        }
    }
    if cfg.retention_bytes > 0 {
        let mut sizes = Vec::with_capacity(segments.len());
        for seg in &segments {
            sizes.push(inner.core.segment_bytes(seg.id).await?);
        }
        let mut total: u64 = sizes.iter().sum();
        for (i, seg) in sealed.iter().enumerate() {
            if total <= cfg.retention_bytes {
                break;
            }
            total = total.saturating_sub(sizes[i]);
            if !victims.contains(&seg.id) {
                victims.push(seg.id);
            }
        }
    }
    victims.sort_unstable();
    for id in &victims {
        let end_seq = segments
            .iter()
            .position(|s| s.id == *id)
            .and_then(|i| segments.get(i + 1))
            .map_or(u64::MAX, |next| next.start_seq);
        drop_one(inner, *id, end_seq).await?;
    }
    Ok(victims)
}

/// Drops segment `id`, whose sequences end (exclusive) at `end_seq`.
async fn drop_one(inner: &Arc<Inner>, id: u32, end_seq: u64) -> Result<()> {
    inner.segments.write().retain(|s| s.id != id);
    drop_segment(&inner.storage, PREFIX, id, Durability::Remote).await?;
    // Key index records pointing into the dropped segment: their keys have no entries
    // left, unless an append raced with this scan (forget_keys checks that).
    let mut iter = inner
        .core
        .storage
        .scan_prefix(&key_index::prefix(&[]))
        .await?;
    let mut candidates = Vec::new();
    while let Some(kv) = iter.next().await? {
        if key_index::decode_value(&kv.value)?.last_segment <= id {
            candidates.push(bytes::Bytes::from(key_index::decode_key(&kv.key)?));
            if candidates.len() >= 10_000 {
                inner
                    .forget_keys(std::mem::take(&mut candidates), end_seq)
                    .await?;
            }
        }
    }
    inner.forget_keys(candidates, end_seq).await?;
    super::topics::trim_offset_index(inner, id).await?;
    let mut ops = WriteOps::new();
    ops.delete(segment::encode_key(id));
    ops.delete(segment_bytes::encode_key(id));
    inner.storage.write(ops, Durability::Remote).await?;
    Ok(())
}
