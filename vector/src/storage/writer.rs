//! The write path of a collection: upserts, patches and deletes, applied under the
//! collection's write lock with their bitmap-index changes, then made durable with one
//! shared flush.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use opendata_common::merge::RoaringDelta;
use opendata_common::storage::{Durability, WriteOps};
use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::model::{
    AttributePatch, AttributeValue, Checked, VectorRecord, WriteResult, validate_id,
};
use crate::serde::{self as keys, attribute, posting, vector};
use crate::storage::{Collection, WriterState};

impl Collection {
    /// Inserts or replaces records.
    pub async fn upsert(
        &self,
        records: Checked<Vec<VectorRecord>>,
        durability: Durability,
    ) -> Result<WriteResult> {
        let storage = self.storage()?;
        records.for_spec(&self.spec)?;
        // Within one batch the last record of an id wins.
        let mut seen = HashSet::new();
        let mut deduped: Vec<VectorRecord> = Vec::with_capacity(records.len());
        for r in records.into_inner().into_iter().rev() {
            if seen.insert(r.id.clone()) {
                deduped.push(r);
            }
        }
        deduped.reverse();
        let records = deduped;
        if records.is_empty() {
            return Ok(WriteResult::default());
        }
        // Assign posting lists before taking the lock, with the current view.
        let view = self.view();
        let mut assignments: Vec<Vec<u32>> = if view.state.clustered {
            records
                .iter()
                .map(|r| self.assign(&view.centroids, &r.vector))
                .collect()
        } else {
            Vec::new()
        };
        let ext_ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();

        let mut guard = self.writer.lock().await;
        let w = guard.as_mut().ok_or_else(|| self.gone())?;
        let view = self.view();
        if view.state.clustered {
            if assignments.len() != records.len() {
                assignments = records
                    .iter()
                    .map(|r| self.assign(&view.centroids, &r.vector))
                    .collect();
            } else {
                // A split may have retired a chosen posting list meanwhile.
                for (r, a) in records.iter().zip(assignments.iter_mut()) {
                    if a.iter().any(|p| !w.postings.contains_key(p)) {
                        *a = self.assign(&view.centroids, &r.vector);
                    }
                }
            }
        } else {
            assignments.clear();
        }
        let old_ids = self.lookup_ids(&ext_ids).await?;
        let old_internal: Vec<u32> = old_ids.iter().flatten().copied().collect();
        let old_records = self.load_records(&old_internal).await?;

        let mut ops = WriteOps::with_capacity(records.len() * 6);
        let first = w.ids.allocate(records.len() as u64, &mut ops);
        if first + records.len() as u64 > u32::MAX as u64 {
            return Err(Error::invalid(
                "the collection has used up its 2^32 internal ids",
            ));
        }
        let mut idx = IndexDelta::default();
        let mut appends: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut payload = Vec::new();
        let mut dead_hints: Vec<u32> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let iid = first as u32 + i as u32;
            let postings: &[u32] = assignments.get(i).map_or(&[], |a| a.as_slice());
            ops.put(
                keys::vector_key(self.id, iid),
                vector::encode(&r.id, &r.vector, &r.attributes, postings),
            );
            ops.put(
                keys::id_map_key(self.id, &r.id),
                Bytes::copy_from_slice(&iid.to_be_bytes()),
            );
            idx.add_attributes(self.id, iid, &r.attributes);
            idx.live_adds.insert(iid);
            if !postings.is_empty() {
                payload.clear();
                self.payload(&view, &r.vector, &mut payload);
            }
            for p in postings {
                posting::push_entry(appends.entry(*p).or_default(), iid, &payload);
            }
        }
        let mut missing = 0u64;
        let mut old_iter = old_records.into_iter();
        for old in &old_ids {
            match old {
                None => missing += 1,
                Some(oid) => {
                    let rec = old_iter.next().flatten();
                    idx.live_removes.insert(*oid);
                    ops.delete(keys::vector_key(self.id, *oid));
                    if let Some(rec) = rec {
                        idx.remove_attributes(self.id, *oid, &rec.attributes);
                        dead_hints.extend(self.likely_postings(&view, &rec));
                    }
                }
            }
        }
        for (p, bytes) in &appends {
            ops.merge(keys::posting_key(self.id, *p), Bytes::from(bytes.clone()));
        }
        idx.drain_into(self.id, &mut ops);
        let live_adds = std::mem::take(&mut idx.live_adds);
        let live_removes = std::mem::take(&mut idx.live_removes);
        self.apply(storage, ops).await?;
        {
            let mut live = self.live.write();
            *live -= &live_removes;
            *live |= &live_adds;
        }
        let es = view.entry_size as u32;
        let mut wake = false;
        for (p, bytes) in &appends {
            let meta = w.postings.entry(*p).or_default();
            meta.entries += bytes.len() as u32 / es;
            wake |= meta.entries as usize > self.config.max_posting_size;
        }
        wake |= w.add_dead_hints(dead_hints);
        if !view.state.clustered
            && self.live.read().len() as usize >= self.config.initial_build_size
        {
            wake = true;
        }
        drop(guard);
        if wake {
            self.notify.notify_one();
        }
        if durability == Durability::Remote {
            storage.committer().sync().await?;
        }
        Ok(WriteResult {
            count: records.len() as u64,
            missing,
        })
    }

    /// Changes attributes of existing records.
    pub async fn patch(
        &self,
        patches: Checked<Vec<AttributePatch>>,
        durability: Durability,
    ) -> Result<WriteResult> {
        let storage = self.storage()?;
        patches.for_spec(&self.spec)?;
        let checked: Vec<(String, _, Vec<String>)> = patches
            .into_inner()
            .into_iter()
            .map(|p| (p.id, p.set, p.unset))
            .collect();
        let guard = self.writer.lock().await;
        if guard.is_none() {
            return Err(Error::ReadOnly);
        }
        let ids: Vec<String> = checked.iter().map(|c| c.0.clone()).collect();
        let internal = self.lookup_ids(&ids).await?;
        let found: Vec<u32> = internal.iter().flatten().copied().collect();
        let records = self.load_records(&found).await?;
        let mut records = records.into_iter();
        let mut ops = WriteOps::new();
        let mut idx = IndexDelta::default();
        let (mut count, mut missing) = (0u64, 0u64);
        for ((_, set, unset), iid) in checked.into_iter().zip(&internal) {
            let Some(iid) = iid else {
                missing += 1;
                continue;
            };
            let Some(rec) = records.next().flatten() else {
                missing += 1;
                continue;
            };
            let mut attrs = rec.attributes.clone();
            for name in &unset {
                attrs.remove(name);
            }
            attrs.extend(set);
            idx.remove_attributes(self.id, *iid, &rec.attributes);
            idx.add_attributes(self.id, *iid, &attrs);
            ops.put(
                keys::vector_key(self.id, *iid),
                vector::encode(&rec.id, &rec.vector, &attrs, &rec.postings),
            );
            count += 1;
        }
        idx.drain_into(self.id, &mut ops);
        if !ops.is_empty() {
            self.apply(storage, ops).await?;
        }
        drop(guard);
        if durability == Durability::Remote {
            storage.committer().sync().await?;
        }
        Ok(WriteResult { count, missing })
    }

    /// Deletes records by external id.
    pub async fn delete(&self, ids: Vec<String>, durability: Durability) -> Result<WriteResult> {
        for id in &ids {
            validate_id(id)?;
        }
        let guard = self.writer.lock().await;
        let internal = self.lookup_ids(&ids).await?;
        let pairs: Vec<(String, u32)> = ids
            .iter()
            .zip(&internal)
            .filter_map(|(e, i)| i.map(|i| (e.clone(), i)))
            .collect();
        let missing = (ids.len() - pairs.len()) as u64;
        let count = self.delete_locked(guard, pairs, durability).await?;
        Ok(WriteResult { count, missing })
    }

    /// Deletes `(external id, internal id)` pairs; the caller holds the write lock and
    /// has checked the id map points at those internal ids.
    pub(crate) async fn delete_locked(
        &self,
        mut guard: tokio::sync::MutexGuard<'_, Option<WriterState>>,
        pairs: Vec<(String, u32)>,
        durability: Durability,
    ) -> Result<u64> {
        let storage = self.storage()?;
        let w = guard.as_mut().ok_or_else(|| self.gone())?;
        let internal: Vec<u32> = pairs.iter().map(|p| p.1).collect();
        let records = self.load_records(&internal).await?;
        let mut ops = WriteOps::new();
        let mut idx = IndexDelta::default();
        let mut hints = Vec::new();
        let view = self.view();
        for ((ext, iid), rec) in pairs.iter().zip(records) {
            ops.delete(keys::vector_key(self.id, *iid));
            ops.delete(keys::id_map_key(self.id, ext));
            idx.live_removes.insert(*iid);
            if let Some(rec) = rec {
                idx.remove_attributes(self.id, *iid, &rec.attributes);
                hints.extend(self.likely_postings(&view, &rec));
            }
        }
        if ops.is_empty() {
            return Ok(0);
        }
        idx.drain_into(self.id, &mut ops);
        let removes = std::mem::take(&mut idx.live_removes);
        self.apply(storage, ops).await?;
        *self.live.write() -= &removes;
        let wake = w.add_dead_hints(hints);
        drop(guard);
        if wake {
            self.notify.notify_one();
        }
        if durability == Durability::Remote {
            storage.committer().sync().await?;
        }
        Ok(pairs.len() as u64)
    }

    /// Deletes every record matching `filter`.
    pub async fn delete_by_filter(
        &self,
        filter: &Filter,
        durability: Durability,
    ) -> Result<WriteResult> {
        self.storage()?;
        let matching = self.evaluate(filter).await?;
        let mut count = 0;
        let ids: Vec<u32> = matching.iter().collect();
        for chunk in ids.chunks(1000) {
            let guard = self.writer.lock().await;
            let records = self.load_records(chunk).await?;
            let mut pairs = Vec::new();
            for (iid, rec) in chunk.iter().zip(records) {
                let Some(rec) = rec else { continue };
                // Only if the id still maps to this record (no concurrent replace).
                let current = self.lookup_ids(std::slice::from_ref(&rec.id)).await?;
                if current[0] == Some(*iid) {
                    pairs.push((rec.id, *iid));
                }
            }
            count += self.delete_locked(guard, pairs, Durability::Memory).await?;
        }
        if durability == Durability::Remote {
            self.storage()?.committer().sync().await?;
        }
        Ok(WriteResult { count, missing: 0 })
    }
}

/// Bitmap-index changes of one write batch.
#[derive(Default)]
pub(crate) struct IndexDelta {
    pub(crate) values: HashMap<Bytes, (RoaringBitmap, RoaringBitmap)>,
    pub(crate) exists: HashMap<String, (RoaringBitmap, RoaringBitmap)>,
    pub(crate) live_adds: RoaringBitmap,
    pub(crate) live_removes: RoaringBitmap,
}

impl IndexDelta {
    pub(crate) fn add_attributes(
        &mut self,
        coll: u32,
        id: u32,
        attrs: &BTreeMap<String, AttributeValue>,
    ) {
        for (name, value) in attrs {
            for v in attribute::index_values(value) {
                let e = self
                    .values
                    .entry(attribute::value_key(coll, name, &v))
                    .or_default();
                e.0.insert(id);
                e.1.remove(id);
            }
            let e = self.exists.entry(name.clone()).or_default();
            e.0.insert(id);
            e.1.remove(id);
        }
    }

    pub(crate) fn remove_attributes(
        &mut self,
        coll: u32,
        id: u32,
        attrs: &BTreeMap<String, AttributeValue>,
    ) {
        for (name, value) in attrs {
            for v in attribute::index_values(value) {
                let e = self
                    .values
                    .entry(attribute::value_key(coll, name, &v))
                    .or_default();
                e.1.insert(id);
                e.0.remove(id);
            }
            let e = self.exists.entry(name.clone()).or_default();
            e.1.insert(id);
            e.0.remove(id);
        }
    }

    pub(crate) fn drain_into(&mut self, coll: u32, ops: &mut WriteOps) {
        for (key, (adds, removes)) in self.values.drain() {
            ops.merge(key, RoaringDelta::encode(&adds, &removes));
        }
        for (name, (adds, removes)) in self.exists.drain() {
            ops.merge(
                keys::exists_key(coll, &name),
                RoaringDelta::encode(&adds, &removes),
            );
        }
        if !self.live_adds.is_empty() || !self.live_removes.is_empty() {
            ops.merge(
                keys::live_key(coll),
                RoaringDelta::encode(&self.live_adds, &self.live_removes),
            );
        }
    }
}
