//! One collection: its write path, its in-memory index view, search, and maintenance.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::future::try_join_all;
use opendata_common::merge::RoaringDelta;
use opendata_common::sequence::SequenceAllocator;
use opendata_common::storage::{Durability, Storage, StorageReader, WriteOps};
use parking_lot::RwLock;
use roaring::RoaringBitmap;

use crate::cache::ReadCache;
use crate::centroids::{CentroidIndex, Rank};
use crate::config::VectorConfig;
use crate::distance::{dot, l2_sq, normalize};
use crate::error::{Error, Result};
use crate::filter::{Bound, Filter};
use crate::kmeans::balanced_kmeans;
use crate::model::{
    AttributePatch, AttributeType, AttributeValue, CollectionInfo, CollectionSpec, FieldSelection,
    MAX_K, Metric, SearchHit, SearchPlan, SearchRequest, SearchResponse, SearchStats, VectorRecord,
    WriteResult, validate_id,
};
use crate::quantizer::{CodeQuery, Quantizer};
use crate::serde::state::IndexState;
use crate::serde::{self as keys, attribute, centroid, posting, state, vector};

/// How many nearest centroids are considered when choosing a vector's posting lists.
const REPLICA_CANDIDATES: usize = 8;
/// Neighbouring posting lists checked for reassignment after a split.
const REASSIGN_NEIGHBOURS: usize = 8;
/// Internal ids are reserved durably in blocks of this many.
const ID_BLOCK: u64 = 65_536;

/// What searches read: the centroid table and the state it belongs to.
pub(crate) struct View {
    pub state: IndexState,
    pub centroids: CentroidIndex,
    pub entry_size: usize,
}

/// Bookkeeping of one posting list, kept by the writer.
#[derive(Debug, Clone, Copy, Default)]
struct PostingMeta {
    /// Entries stored, dead or alive.
    entries: u32,
    /// Entries known (or likely) to be dead.
    dead_hint: u32,
}

impl PostingMeta {
    /// Whether enough of the list is likely dead to rewrite it (a quarter).
    fn needs_cleanup(&self) -> bool {
        self.dead_hint > 0 && self.dead_hint * 4 >= self.entries
    }
}

/// State only the writer touches, under the collection's write lock.
struct WriterState {
    ids: SequenceAllocator,
    state: IndexState,
    postings: HashMap<u32, PostingMeta>,
}

impl WriterState {
    /// Counts one likely-dead entry in each of `postings`; true when one of them now
    /// needs a clean-up.
    fn add_dead_hints(&mut self, postings: impl IntoIterator<Item = u32>) -> bool {
        let mut wake = false;
        for p in postings {
            if let Some(meta) = self.postings.get_mut(&p) {
                meta.dead_hint += 1;
                wake |= meta.needs_cleanup();
            }
        }
        wake
    }
}

/// Recall measured per `nprobe` on a sample of the collection.
#[derive(Debug, Clone, Default)]
struct Calibration {
    postings: usize,
    curve: Vec<(usize, f64)>,
}

/// A collection.
pub(crate) struct Collection {
    pub id: u32,
    pub spec: CollectionSpec,
    config: VectorConfig,
    reader: StorageReader,
    storage: Option<Storage>,
    view: RwLock<Arc<View>>,
    live: RwLock<RoaringBitmap>,
    writer: tokio::sync::Mutex<Option<WriterState>>,
    calibration: RwLock<Calibration>,
    pub(crate) notify: tokio::sync::Notify,
    pub(crate) closed: AtomicBool,
    calibrating: AtomicBool,
    cache: Arc<ReadCache>,
}

/// A candidate during a search: internal distance (smaller is nearer) and internal id.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Candidate {
    dist: f32,
    id: u32,
}

/// The best `cap` candidates, unique by id.
struct TopK {
    cap: usize,
    items: Vec<Candidate>,
    worst: f32,
}

impl TopK {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            items: Vec::with_capacity(cap + 1),
            worst: f32::INFINITY,
        }
    }

    #[inline]
    fn would_accept(&self, dist: f32) -> bool {
        self.items.len() < self.cap || dist < self.worst
    }

    fn push(&mut self, c: Candidate) {
        if let Some(existing) = self.items.iter_mut().find(|x| x.id == c.id) {
            if c.dist < existing.dist {
                existing.dist = c.dist;
            }
            return;
        }
        self.items.push(c);
        if self.items.len() > self.cap {
            let (worst_pos, _) = self
                .items
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.dist.total_cmp(&b.1.dist))
                .expect("not empty");
            self.items.swap_remove(worst_pos);
        }
        if self.items.len() == self.cap {
            self.worst = self
                .items
                .iter()
                .map(|x| x.dist)
                .fold(f32::NEG_INFINITY, f32::max);
        }
    }

    fn into_sorted(mut self) -> Vec<Candidate> {
        self.items.sort_by(|a, b| a.dist.total_cmp(&b.dist));
        self.items
    }
}

fn entry_size(spec: &CollectionSpec, state: &IndexState) -> usize {
    posting::entry_size(spec.dimension as usize, state.quantizer.is_some())
}

impl Collection {
    /// Loads a collection's in-memory state from storage.
    pub async fn load(
        id: u32,
        spec: CollectionSpec,
        config: VectorConfig,
        reader: StorageReader,
        storage: Option<Storage>,
        cache: Arc<ReadCache>,
    ) -> Result<Arc<Self>> {
        let state = match reader.get(&keys::state_key(id)).await? {
            Some(v) => state::decode(&v)?,
            None => IndexState::default(),
        };
        let centroids = load_centroids(&reader, id, spec.dimension as usize).await?;
        let live = load_live(&reader, id).await?;
        let es = entry_size(&spec, &state);
        let writer = match &storage {
            Some(_) => {
                let ids =
                    SequenceAllocator::load(&reader, keys::id_sequence_key(id), ID_BLOCK).await?;
                let mut postings = HashMap::new();
                let (start, end) = keys::type_range(id, keys::POSTING);
                let mut iter = reader.scan(start..end).await?;
                while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
                    let p = keys::key_u32(&kv.key)?;
                    let mut meta = PostingMeta::default();
                    for (vid, _) in posting::entries(&kv.value, es)? {
                        meta.entries += 1;
                        if !live.contains(vid) {
                            meta.dead_hint += 1;
                        }
                    }
                    postings.insert(p, meta);
                }
                Some(WriterState {
                    ids,
                    state: state.clone(),
                    postings,
                })
            }
            None => None,
        };
        let view = View {
            entry_size: es,
            centroids,
            state,
        };
        Ok(Arc::new(Self {
            id,
            spec,
            config,
            reader,
            storage,
            view: RwLock::new(Arc::new(view)),
            live: RwLock::new(live),
            writer: tokio::sync::Mutex::new(writer),
            calibration: RwLock::new(Calibration::default()),
            notify: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
            calibrating: AtomicBool::new(false),
            cache,
        }))
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    fn storage(&self) -> Result<&Storage> {
        self.storage.as_ref().ok_or(Error::ReadOnly)
    }

    /// Applies `ops` (in memory; durability is awaited separately) and drops the keys
    /// they touch from the read cache.
    async fn apply(&self, storage: &Storage, ops: WriteOps) -> Result<()> {
        let keys: Vec<Bytes> = ops.keys().cloned().collect();
        let result = storage.write(ops, Durability::Memory).await;
        for k in &keys {
            self.cache.invalidate(k);
        }
        Ok(result?)
    }

    /// Reads `key` through the read cache.
    async fn cached_get(&self, key: &Bytes) -> Result<Option<Bytes>> {
        match self.cache.get(key) {
            Ok(v) => Ok(Some(v)),
            Err(generation) => {
                let v = self.reader.get(key).await?;
                if let Some(v) = &v {
                    self.cache.insert(key.clone(), v.clone(), generation);
                }
                Ok(v)
            }
        }
    }

    /// The error for a write to a collection whose writer is shut.
    fn gone(&self) -> Error {
        if self.storage.is_none() {
            Error::ReadOnly
        } else {
            Error::CollectionNotFound(self.spec.name.clone())
        }
    }

    /// Waits for writes in flight, then shuts the writer: later writes fail. Unused
    /// reserved internal ids are released so a reopen does not skip them.
    pub async fn shut_writer(&self) {
        let mut guard = self.writer.lock().await;
        if let (Some(mut w), Some(storage)) = (guard.take(), &self.storage) {
            let mut ops = WriteOps::new();
            w.ids.release_unused(&mut ops);
            if !ops.is_empty() {
                let _ = self.apply(storage, ops).await;
            }
        }
    }

    /// Starts measuring recall per nprobe in the background, if it is stale.
    pub fn calibrate_in_background(self: &Arc<Self>) {
        if self.calibrating.swap(true, Ordering::Relaxed) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.calibrate().await {
                tracing::warn!(collection = %me.spec.name, error = %e, "recall calibration failed");
            }
            me.calibrating.store(false, Ordering::Relaxed);
        });
    }

    /// The measured recall per nprobe (empty until calibrated).
    pub fn calibration_curve(&self) -> Vec<(usize, f64)> {
        self.calibration.read().curve.clone()
    }

    /// Reloads what a replica keeps in memory: the live set, and the centroids when
    /// they changed.
    pub async fn refresh(&self) -> Result<()> {
        let state = match self.reader.get(&keys::state_key(self.id)).await? {
            Some(v) => state::decode(&v)?,
            None => IndexState::default(),
        };
        if state != self.view().state {
            self.cache.clear();
            let centroids =
                load_centroids(&self.reader, self.id, self.spec.dimension as usize).await?;
            let es = entry_size(&self.spec, &state);
            *self.view.write() = Arc::new(View {
                state,
                centroids,
                entry_size: es,
            });
        }
        let live = load_live(&self.reader, self.id).await?;
        let changed = *self.live.read() != live;
        if changed {
            // Posting lists may have changed too; a replica cannot tell which.
            self.cache.clear();
            *self.live.write() = live;
        }
        Ok(())
    }

    /// The description of the collection.
    pub async fn info(&self) -> CollectionInfo {
        let (entries, meta_bytes) = {
            let w = self.writer.lock().await;
            w.as_ref().map_or((0, 0), |w| {
                (
                    w.postings.values().map(|m| m.entries as u64).sum(),
                    w.postings.len() * 24,
                )
            })
        };
        let view = self.view();
        let live = self.live.read();
        let quantizer_bytes = view.state.quantizer.as_ref().map_or(0, |q| q.dim() * 8);
        CollectionInfo {
            spec: self.spec.clone(),
            vectors: live.len(),
            postings: view.centroids.len() as u64,
            posting_entries: entries,
            index_memory_bytes: (view.centroids.memory_bytes()
                + live.serialized_size()
                + meta_bytes
                + quantizer_bytes) as u64,
        }
    }

    fn rank(&self) -> Rank {
        match self.spec.metric {
            Metric::L2 => Rank::L2,
            Metric::Cosine | Metric::Dot => Rank::Dot,
        }
    }

    /// The internal distance (smaller is nearer) between a query and a vector.
    #[inline]
    fn exact_distance(&self, q: &[f32], v: &[f32]) -> f32 {
        match self.spec.metric {
            Metric::L2 => l2_sq(q, v),
            Metric::Cosine | Metric::Dot => -dot(q, v),
        }
    }

    /// The score reported for an internal distance.
    fn score(&self, dist: f32) -> f32 {
        match self.spec.metric {
            Metric::L2 => dist.max(0.0).sqrt(),
            Metric::Cosine | Metric::Dot => -dist,
        }
    }

    /// The posting lists a vector is stored in: its nearest centroid, plus further
    /// centroids nearly as near that are not "behind" an already chosen one (SPANN's
    /// relative-neighbourhood rule), at most `max_replicas`.
    fn assign(&self, centroids: &CentroidIndex, v: &[f32]) -> Vec<u32> {
        let cands = centroids.nearest(v, REPLICA_CANDIDATES, 256, Rank::L2);
        let Some(&(first, d0)) = cands.first() else {
            return Vec::new();
        };
        let mut chosen = vec![first];
        let limit = d0 * self.config.replica_distance_factor.powi(2);
        for &(c, d) in &cands[1..] {
            if chosen.len() >= self.config.max_replicas.max(1) || d > limit {
                break;
            }
            let cv = centroids.get(c).expect("candidate exists");
            let blocked = chosen.iter().any(|o| {
                let ov = centroids.get(*o).expect("chosen exists");
                l2_sq(cv, ov) < d
            });
            if !blocked {
                chosen.push(c);
            }
        }
        chosen
    }

    /// The posting lists a stored vector is probably in now: those it was written to,
    /// and those it would be assigned to today (splits move entries to the nearest new
    /// centroid).
    fn likely_postings(&self, view: &View, rec: &vector::StoredVector) -> Vec<u32> {
        let mut out = rec.postings.clone();
        if view.state.clustered {
            for p in self.assign(&view.centroids, &rec.vector) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    fn payload(&self, view: &View, v: &[f32], out: &mut Vec<u8>) {
        match &view.state.quantizer {
            Some(q) => q.encode_into(v, out),
            None => posting::f32_payload(v, out),
        }
    }

    fn decode_payload(&self, view: &View, payload: &[u8], out: &mut Vec<f32>) {
        match &view.state.quantizer {
            Some(q) => q.decode_into(payload, out),
            None => posting::read_f32_payload(payload, out),
        }
    }

    fn check_record(&self, r: &mut VectorRecord) -> Result<()> {
        validate_id(&r.id)?;
        self.spec.check_vector(&r.id, &r.vector)?;
        r.attributes = self
            .spec
            .check_attributes(&r.id, std::mem::take(&mut r.attributes))?;
        if self.spec.metric == Metric::Cosine {
            normalize(&mut r.vector);
        }
        Ok(())
    }

    async fn lookup_ids(&self, ids: &[String]) -> Result<Vec<Option<u32>>> {
        let futs = ids.iter().map(|id| {
            let key = keys::id_map_key(self.id, id);
            let reader = &self.reader;
            async move {
                match reader.get(&key).await? {
                    Some(v) => Ok::<_, Error>(Some(keys::decode_u32(&v)?)),
                    None => Ok(None),
                }
            }
        });
        try_join_all(futs).await
    }

    async fn load_records(&self, ids: &[u32]) -> Result<Vec<Option<vector::StoredVector>>> {
        let dim = self.spec.dimension as usize;
        self.fetch_values(ids)
            .await?
            .into_iter()
            .map(|v| v.map(|v| vector::decode(&v, dim)).transpose())
            .collect::<Result<_, _>>()
            .map_err(Error::from)
    }

    /// Inserts or replaces records.
    pub async fn upsert(
        &self,
        mut records: Vec<VectorRecord>,
        durability: Durability,
    ) -> Result<WriteResult> {
        let storage = self.storage()?;
        for r in records.iter_mut() {
            self.check_record(r)?;
        }
        // Within one batch the last record of an id wins.
        let mut seen = HashSet::new();
        let mut deduped: Vec<VectorRecord> = Vec::with_capacity(records.len());
        for r in records.into_iter().rev() {
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
        patches: Vec<AttributePatch>,
        durability: Durability,
    ) -> Result<WriteResult> {
        let storage = self.storage()?;
        let mut checked = Vec::with_capacity(patches.len());
        for p in patches {
            validate_id(&p.id)?;
            let set = self.spec.check_attributes(&p.id, p.set)?;
            for name in &p.unset {
                if !self.spec.attributes.contains_key(name) {
                    return Err(Error::invalid(format!(
                        "vector {:?}: unknown attribute {name:?} to unset",
                        p.id
                    )));
                }
            }
            checked.push((p.id, set, p.unset));
        }
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
    async fn delete_locked(
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

    /// Records by external id.
    pub async fn get(
        &self,
        ids: &[String],
        fields: &FieldSelection,
    ) -> Result<Vec<Option<VectorRecord>>> {
        for id in ids {
            validate_id(id)?;
        }
        let internal = self.lookup_ids(ids).await?;
        let found: Vec<u32> = internal.iter().flatten().copied().collect();
        let records = self.load_records(&found).await?;
        let mut records = records.into_iter();
        let live = self.live.read();
        Ok(internal
            .iter()
            .map(|i| {
                let i = (*i)?;
                let rec = records.next().flatten()?;
                if !live.contains(i) {
                    return None;
                }
                Some(VectorRecord {
                    id: rec.id,
                    vector: if fields.vector {
                        rec.vector
                    } else {
                        Vec::new()
                    },
                    attributes: select_attributes(rec.attributes, fields),
                })
            })
            .collect())
    }

    // ---------------------------------------------------------------- filters

    /// The live records matching `filter`.
    pub async fn evaluate(&self, filter: &Filter) -> Result<RoaringBitmap> {
        let mut out = self.eval(filter).await?;
        out &= &*self.live.read();
        Ok(out)
    }

    fn eval<'a>(
        &'a self,
        filter: &'a Filter,
    ) -> futures::future::BoxFuture<'a, Result<RoaringBitmap>> {
        Box::pin(async move {
            Ok(match filter {
                Filter::Eq(f, v) => self.bitmap(attribute::value_key(self.id, f, v)).await?,
                Filter::Contains(f, s) => {
                    self.bitmap(attribute::value_key(
                        self.id,
                        f,
                        &AttributeValue::String(s.clone()),
                    ))
                    .await?
                }
                Filter::In(f, vs) => self.union_of(f, vs).await?,
                Filter::Ne(f, v) => {
                    let mut e = self.bitmap(keys::exists_key(self.id, f)).await?;
                    e -= self.bitmap(attribute::value_key(self.id, f, v)).await?;
                    e
                }
                Filter::NotIn(f, vs) => {
                    let mut e = self.bitmap(keys::exists_key(self.id, f)).await?;
                    e -= self.union_of(f, vs).await?;
                    e
                }
                Filter::Exists(f) => self.bitmap(keys::exists_key(self.id, f)).await?,
                Filter::Range {
                    field,
                    lower,
                    upper,
                } => self.range(field, lower.as_ref(), upper.as_ref()).await?,
                Filter::And(parts) => {
                    let mut acc: Option<RoaringBitmap> = None;
                    for p in parts {
                        let b = self.eval(p).await?;
                        acc = Some(match acc {
                            None => b,
                            Some(a) => a & b,
                        });
                        if acc.as_ref().is_some_and(|a| a.is_empty()) {
                            break;
                        }
                    }
                    acc.unwrap_or_else(|| self.live.read().clone())
                }
                Filter::Or(parts) => {
                    let mut acc = RoaringBitmap::new();
                    for p in parts {
                        acc |= self.eval(p).await?;
                    }
                    acc
                }
                Filter::Not(inner) => {
                    let b = self.eval(inner).await?;
                    let mut all = self.live.read().clone();
                    all -= b;
                    all
                }
            })
        })
    }

    async fn bitmap(&self, key: Bytes) -> Result<RoaringBitmap> {
        Ok(match self.cached_get(&key).await? {
            Some(v) => RoaringDelta::members(&v)?,
            None => RoaringBitmap::new(),
        })
    }

    async fn union_of(&self, field: &str, values: &[AttributeValue]) -> Result<RoaringBitmap> {
        let futs = values
            .iter()
            .map(|v| self.bitmap(attribute::value_key(self.id, field, v)));
        let maps = try_join_all(futs).await?;
        Ok(maps.into_iter().fold(RoaringBitmap::new(), |a, b| a | b))
    }

    async fn range(
        &self,
        field: &str,
        lower: Option<&Bound>,
        upper: Option<&Bound>,
    ) -> Result<RoaringBitmap> {
        let ty = self.spec.attributes.get(field).copied();
        let tag = match ty {
            Some(AttributeType::Integer) => 2u8,
            _ => 3u8,
        };
        let mut type_prefix = attribute::name_prefix(self.id, field);
        type_prefix.push(tag);
        let start = match lower {
            Some(b) => {
                let key = attribute::value_key(self.id, field, &b.value);
                if b.inclusive {
                    key
                } else {
                    attribute::after_prefix(&key)
                }
            }
            None => Bytes::from(type_prefix.clone()),
        };
        let end = match upper {
            Some(b) => {
                let key = attribute::value_key(self.id, field, &b.value);
                if b.inclusive {
                    attribute::after_prefix(&key)
                } else {
                    key
                }
            }
            None => attribute::after_prefix(&type_prefix),
        };
        let mut out = RoaringBitmap::new();
        if start >= end {
            return Ok(out);
        }
        let mut iter = self.reader.scan(start..end).await?;
        while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
            out |= RoaringDelta::members(&kv.value)?;
        }
        Ok(out)
    }

    // ---------------------------------------------------------------- search

    /// Nearest neighbours.
    pub async fn search(&self, req: &SearchRequest) -> Result<SearchResponse> {
        if req.k == 0 || req.k > MAX_K {
            return Err(Error::invalid(format!(
                "k must be between 1 and {MAX_K}, got {}",
                req.k
            )));
        }
        if req.nprobe == Some(0) {
            return Err(Error::invalid("nprobe must be at least 1"));
        }
        if let Some(r) = req.recall_target
            && !(r > 0.0 && r <= 1.0)
        {
            return Err(Error::invalid(format!(
                "recall_target must be in (0, 1], got {r}"
            )));
        }
        self.spec.check_vector("query", &req.vector)?;
        let mut q = req.vector.clone();
        if self.spec.metric == Metric::Cosine {
            normalize(&mut q);
        }
        let filter = match &req.filter {
            Some(f) => Some(self.evaluate(f).await?),
            None => None,
        };
        let view = self.view();
        let (candidates, stats) = if !view.state.clustered {
            self.flat_scan(&q, req.k, filter.as_ref()).await?
        } else if let Some(f) = filter
            .as_ref()
            .filter(|f| f.len() <= self.config.exact_filter_limit)
        {
            let c = self.exact_scan(&q, req.k, f).await?;
            let n = c.len();
            (
                c,
                SearchStats {
                    plan: SearchPlan::ExactFiltered,
                    postings_probed: 0,
                    candidates_scored: n,
                    filter_matches: None,
                },
            )
        } else {
            let nprobe = self.pick_nprobe(req);
            self.probe(&view, &q, req.k, nprobe, filter.as_ref())
                .await?
        };
        let mut stats = stats;
        stats.filter_matches = filter.as_ref().map(|f| f.len());
        let hits = self.hits(candidates, req.k, &req.fields).await?;
        Ok(SearchResponse { hits, stats })
    }

    fn pick_nprobe(&self, req: &SearchRequest) -> usize {
        if let Some(n) = req.nprobe {
            return n;
        }
        let default = self.config.default_nprobe.max(1);
        let Some(target) = req.recall_target else {
            return default;
        };
        let cal = self.calibration.read();
        if !cal.curve.is_empty() {
            return cal
                .curve
                .iter()
                .find(|(_, r)| *r >= target)
                .or(cal.curve.last())
                .map_or(default, |(n, _)| *n);
        }
        // Uncalibrated: scale the default with how demanding the target is.
        if target >= 0.99 {
            default * 4
        } else if target >= 0.95 {
            default * 2
        } else {
            default
        }
    }

    /// Exact scan of every record (a collection not yet clustered).
    async fn flat_scan(
        &self,
        q: &[f32],
        k: usize,
        filter: Option<&RoaringBitmap>,
    ) -> Result<(Vec<Rescored>, SearchStats)> {
        let dim = self.spec.dimension as usize;
        let (start, end) = keys::type_range(self.id, keys::VECTOR);
        let mut iter = self.reader.scan(start..end).await?;
        let live = self.live.read().clone();
        let mut top: Vec<Rescored> = Vec::new();
        let mut scored = 0usize;
        let mut v = Vec::with_capacity(dim);
        while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
            let iid = keys::key_u32(&kv.key)?;
            if !live.contains(iid) || filter.is_some_and(|f| !f.contains(iid)) {
                continue;
            }
            v.clear();
            vector::decode_head(&kv.value, dim, &mut v)?;
            let d = self.exact_distance(q, &v);
            scored += 1;
            push_rescored(
                &mut top,
                k,
                Rescored {
                    dist: d,
                    id: iid,
                    value: kv.value,
                },
            );
        }
        Ok((
            top,
            SearchStats {
                plan: SearchPlan::Flat,
                postings_probed: 0,
                candidates_scored: scored,
                filter_matches: None,
            },
        ))
    }

    /// Exact scan of a (small) matching set.
    async fn exact_scan(
        &self,
        q: &[f32],
        k: usize,
        matching: &RoaringBitmap,
    ) -> Result<Vec<Rescored>> {
        let ids: Vec<u32> = matching.iter().collect();
        let values = self.fetch_values(&ids).await?;
        let dim = self.spec.dimension as usize;
        let mut top = Vec::new();
        let mut v = Vec::with_capacity(dim);
        for (id, value) in ids.into_iter().zip(values) {
            let Some(value) = value else { continue };
            v.clear();
            vector::decode_head(&value, dim, &mut v)?;
            push_rescored(
                &mut top,
                k,
                Rescored {
                    dist: self.exact_distance(q, &v),
                    id,
                    value,
                },
            );
        }
        Ok(top)
    }

    async fn fetch_values(&self, ids: &[u32]) -> Result<Vec<Option<Bytes>>> {
        let futs = ids.iter().map(|id| {
            let key = keys::vector_key(self.id, *id);
            async move { self.cached_get(&key).await }
        });
        try_join_all(futs).await
    }

    /// Probes the nearest posting lists, scans them, and re-ranks the best candidates
    /// with exact distances.
    async fn probe(
        &self,
        view: &View,
        q: &[f32],
        k: usize,
        nprobe: usize,
        filter: Option<&RoaringBitmap>,
    ) -> Result<(Vec<Rescored>, SearchStats)> {
        let total = view.centroids.len();
        let live_count = self.live.read().len().max(1);
        let mut want = nprobe.min(total).max(1);
        if let Some(f) = filter {
            // A selective filter leaves few matches per list: probe more lists, in
            // proportion to 1/√selectivity.
            let selectivity = (f.len() as f64 / live_count as f64).clamp(1e-6, 1.0);
            want = ((want as f64) / selectivity.sqrt()).ceil() as usize;
            want = want.min(total).max(1);
        }
        let coverage = (want * 32).max(2048);
        let ranked = view.centroids.nearest(q, want, coverage, self.rank());
        let probes: Vec<u32> = match (self.rank(), ranked.first()) {
            (Rank::L2, Some(&(_, d0))) => {
                let limit = d0 * self.config.prune_distance_factor.powi(2);
                ranked
                    .iter()
                    .take_while(|(_, d)| *d <= limit || d0 == 0.0)
                    .map(|(p, _)| *p)
                    .collect()
            }
            _ => ranked.iter().map(|(p, _)| *p).collect(),
        };
        let keys: Vec<Bytes> = probes
            .iter()
            .map(|p| keys::posting_key(self.id, *p))
            .collect();
        let values = try_join_all(keys.iter().map(|key| self.cached_get(key))).await?;
        let rerank = (k * self.config.rerank_factor.max(1)).max(k + 8);
        let mut top = TopK::new(rerank);
        let mut scored = 0usize;
        let es = view.entry_size;
        {
            let live = self.live.read();
            let code_query: Option<CodeQuery> = view
                .state
                .quantizer
                .as_ref()
                .map(|qz| qz.prepare(self.spec.metric, q));
            let mut buf = Vec::new();
            for value in values.iter().flatten() {
                if !value.len().is_multiple_of(es) {
                    return Err(Error::Corrupt(opendata_common::DecodeError::new(
                        "posting list",
                        "not a whole number of entries",
                    )));
                }
                for e in value.chunks_exact(es) {
                    let iid = u32::from_le_bytes(e[..4].try_into().expect("4 bytes"));
                    if let Some(f) = filter
                        && !f.contains(iid)
                    {
                        continue;
                    }
                    let payload = &e[4..];
                    let d = match &code_query {
                        Some(cq) => cq.distance(payload),
                        None => {
                            buf.clear();
                            posting::read_f32_payload(payload, &mut buf);
                            self.exact_distance(q, &buf)
                        }
                    };
                    scored += 1;
                    if top.would_accept(d) && live.contains(iid) {
                        top.push(Candidate { dist: d, id: iid });
                    }
                }
            }
        }
        let candidates = top.into_sorted();
        let ids: Vec<u32> = candidates.iter().map(|c| c.id).collect();
        let fetched = self.fetch_values(&ids).await?;
        let dim = self.spec.dimension as usize;
        let mut out = Vec::with_capacity(k);
        let mut v = Vec::with_capacity(dim);
        for (id, value) in ids.into_iter().zip(fetched) {
            let Some(value) = value else { continue };
            v.clear();
            vector::decode_head(&value, dim, &mut v)?;
            push_rescored(
                &mut out,
                k,
                Rescored {
                    dist: self.exact_distance(q, &v),
                    id,
                    value,
                },
            );
        }
        Ok((
            out,
            SearchStats {
                plan: SearchPlan::Probe,
                postings_probed: probes.len(),
                candidates_scored: scored,
                filter_matches: None,
            },
        ))
    }

    async fn hits(
        &self,
        candidates: Vec<Rescored>,
        k: usize,
        fields: &FieldSelection,
    ) -> Result<Vec<SearchHit>> {
        let dim = self.spec.dimension as usize;
        let mut hits = Vec::with_capacity(k);
        for c in candidates.into_iter().take(k) {
            let (id, vector, attributes) = if fields.wants_attributes() {
                let rec = vector::decode(&c.value, dim)?;
                (
                    rec.id,
                    fields.vector.then_some(rec.vector),
                    select_attributes(rec.attributes, fields),
                )
            } else {
                let mut v = Vec::with_capacity(dim);
                let id = vector::decode_head(&c.value, dim, &mut v)?;
                (id, fields.vector.then_some(v), BTreeMap::new())
            };
            hits.push(SearchHit {
                id,
                score: self.score(c.dist),
                vector,
                attributes,
            });
        }
        Ok(hits)
    }

    // ---------------------------------------------------------------- maintenance

    /// Runs one round of maintenance; returns whether anything was done.
    pub async fn maintain_once(&self) -> Result<bool> {
        if self.storage.is_none() {
            return Ok(false);
        }
        let view = self.view();
        if !view.state.clustered {
            if self.live.read().len() as usize >= self.config.initial_build_size.max(1) {
                self.initial_build().await?;
                return Ok(true);
            }
            return Ok(false);
        }
        let work = {
            let guard = self.writer.lock().await;
            let Some(w) = guard.as_ref() else {
                return Ok(false);
            };
            let max = self.config.max_posting_size as u32;
            let min = self.config.min_posting_size as u32;
            let mut split: Vec<(u32, u32)> = Vec::new();
            let mut clean = Vec::new();
            let mut merge = Vec::new();
            for (p, m) in &w.postings {
                let live_est = m.entries.saturating_sub(m.dead_hint);
                if m.entries > max {
                    split.push((*p, m.entries));
                } else if m.needs_cleanup() {
                    clean.push(*p);
                } else if live_est < min && w.postings.len() > 1 {
                    merge.push(*p);
                }
            }
            split.sort_by_key(|s| std::cmp::Reverse(s.1));
            (split, clean, merge)
        };
        let (split, clean, merge) = work;
        if split.is_empty() && clean.is_empty() && merge.is_empty() {
            return Ok(false);
        }
        let mut did = false;
        for (p, _) in split.into_iter().take(64) {
            did |= self.split(p).await?;
        }
        for p in clean.into_iter().take(64) {
            did |= self.rewrite(p).await?;
        }
        for p in merge.into_iter().take(16) {
            did |= self.merge_posting(p).await?;
        }
        Ok(did)
    }

    /// Decodes a posting list's live entries, first occurrence of each id.
    fn live_entries(&self, view: &View, value: &[u8]) -> Result<(Vec<u32>, Vec<f32>)> {
        let live = self.live.read();
        let mut ids = Vec::new();
        let mut vecs = Vec::new();
        let mut seen = HashSet::new();
        for (iid, payload) in posting::entries(value, view.entry_size)? {
            if live.contains(iid) && seen.insert(iid) {
                ids.push(iid);
                self.decode_payload(view, payload, &mut vecs);
            }
        }
        Ok((ids, vecs))
    }

    fn encode_entries(&self, view: &View, ids: &[u32], vecs: &[f32]) -> Vec<u8> {
        let dim = self.spec.dimension as usize;
        let mut out = Vec::with_capacity(ids.len() * view.entry_size);
        let mut payload = Vec::with_capacity(view.entry_size);
        for (i, id) in ids.iter().enumerate() {
            payload.clear();
            self.payload(view, &vecs[i * dim..(i + 1) * dim], &mut payload);
            posting::push_entry(&mut out, *id, &payload);
        }
        out
    }

    /// Rewrites a posting list without its dead and duplicate entries.
    async fn rewrite(&self, p: u32) -> Result<bool> {
        let storage = self.storage()?;
        let mut guard = self.writer.lock().await;
        let w = guard.as_mut().ok_or_else(|| self.gone())?;
        if !w.postings.contains_key(&p) {
            return Ok(false);
        }
        let view = self.view();
        let value = self
            .reader
            .get(&keys::posting_key(self.id, p))
            .await?
            .unwrap_or_default();
        let (ids, vecs) = self.live_entries(&view, &value)?;
        let mut ops = WriteOps::new();
        ops.put(
            keys::posting_key(self.id, p),
            self.encode_entries(&view, &ids, &vecs),
        );
        self.apply(storage, ops).await?;
        w.postings.insert(
            p,
            PostingMeta {
                entries: ids.len() as u32,
                dead_hint: 0,
            },
        );
        Ok(true)
    }

    /// Splits an oversized posting list in two with balanced 2-means, then reassigns
    /// vectors of the new lists and of neighbouring lists whose nearest centroid
    /// changed (SPFresh's LIRE).
    async fn split(&self, p: u32) -> Result<bool> {
        let storage = self.storage()?;
        let dim = self.spec.dimension as usize;
        let view = self.view();
        let key = keys::posting_key(self.id, p);
        let Some(snapshot) = self.reader.get(&key).await? else {
            return Ok(false);
        };
        let (mut ids, mut vecs) = self.live_entries(&view, &snapshot)?;
        if ids.len() <= self.config.max_posting_size {
            return self.rewrite(p).await;
        }
        let clustering = balanced_kmeans(&vecs, dim, 2, 12, 1.0, p as u64);

        let mut guard = self.writer.lock().await;
        let w = guard.as_mut().ok_or_else(|| self.gone())?;
        if !w.postings.contains_key(&p) {
            return Ok(false);
        }
        let view = self.view();
        // Entries appended since the snapshot (lists only grow between rewrites, and
        // rewrites happen under this lock).
        let current = self.reader.get(&key).await?.unwrap_or_default();
        let mut assignment = clustering.assignment;
        if current.len() > snapshot.len() {
            let (more_ids, more_vecs) = self.live_entries(&view, &current[snapshot.len()..])?;
            for (i, id) in more_ids.iter().enumerate() {
                let v = &more_vecs[i * dim..(i + 1) * dim];
                let a =
                    l2_sq(v, &clustering.centroids[..dim]) > l2_sq(v, &clustering.centroids[dim..]);
                ids.push(*id);
                vecs.extend_from_slice(v);
                assignment.push(u32::from(a));
            }
        }
        let old_centroid = view.centroids.get(p).map(|c| c.to_vec());
        let p1 = w.state.next_posting;
        let p2 = p1 + 1;
        let new_ids = [p1, p2];
        let c = [
            clustering.centroids[..dim].to_vec(),
            clustering.centroids[dim..].to_vec(),
        ];
        let centroids = view
            .centroids
            .with_changes(&[p], &[(p1, c[0].clone()), (p2, c[1].clone())]);
        // Members of the two halves; vectors nearer some other centroid move there.
        let mut members: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
        let mut moves: HashMap<u32, (Vec<u32>, Vec<f32>)> = HashMap::new();
        for (i, a) in assignment.iter().enumerate() {
            let v = &vecs[i * dim..(i + 1) * dim];
            let own = l2_sq(v, &c[*a as usize]);
            if let Some(oc) = &old_centroid
                && l2_sq(v, oc) <= own
            {
                let nearest = centroids.nearest(v, 1, 256, Rank::L2);
                if let Some(&(t, _)) = nearest.first()
                    && t != p1
                    && t != p2
                {
                    let m = moves.entry(t).or_default();
                    m.0.push(ids[i]);
                    m.1.extend_from_slice(v);
                    continue;
                }
            }
            members[*a as usize].push(i);
        }
        let mut lists: [(Vec<u32>, Vec<f32>); 2] = Default::default();
        for h in 0..2 {
            for &i in &members[h] {
                lists[h].0.push(ids[i]);
                lists[h].1.extend_from_slice(&vecs[i * dim..(i + 1) * dim]);
            }
        }
        // Neighbouring lists: vectors now nearer one of the new centroids move in.
        let mut rewritten: Vec<(u32, Vec<u8>, u32)> = Vec::new();
        if let Some(oc) = &old_centroid {
            let neighbours: Vec<u32> = centroids
                .nearest(oc, REASSIGN_NEIGHBOURS + 2, 512, Rank::L2)
                .into_iter()
                .map(|(n, _)| n)
                .filter(|n| *n != p1 && *n != p2 && !moves.contains_key(n))
                .take(REASSIGN_NEIGHBOURS)
                .collect();
            let nkeys: Vec<Bytes> = neighbours
                .iter()
                .map(|n| keys::posting_key(self.id, *n))
                .collect();
            let values = try_join_all(nkeys.iter().map(|k| self.cached_get(k))).await?;
            for (n, value) in neighbours.iter().zip(values) {
                let Some(value) = value else { continue };
                let Some(nc) = centroids.get(*n) else {
                    continue;
                };
                let (nids, nvecs) = self.live_entries(&view, &value)?;
                let mut keep_ids = Vec::new();
                let mut keep_vecs = Vec::new();
                let mut moved = false;
                for (i, id) in nids.iter().enumerate() {
                    let v = &nvecs[i * dim..(i + 1) * dim];
                    let own = l2_sq(v, nc);
                    let d1 = l2_sq(v, &c[0]);
                    let d2 = l2_sq(v, &c[1]);
                    if d1.min(d2) < own {
                        let h = usize::from(d2 < d1);
                        if !lists[h].0.contains(id) {
                            lists[h].0.push(*id);
                            lists[h].1.extend_from_slice(v);
                        }
                        moved = true;
                    } else {
                        keep_ids.push(*id);
                        keep_vecs.extend_from_slice(v);
                    }
                }
                if moved || nids.len() * view.entry_size != value.len() {
                    let n_entries = keep_ids.len() as u32;
                    rewritten.push((
                        *n,
                        self.encode_entries(&view, &keep_ids, &keep_vecs),
                        n_entries,
                    ));
                }
            }
        }
        let mut ops = WriteOps::new();
        ops.delete(key.clone());
        ops.delete(keys::centroid_key(self.id, p));
        for h in 0..2 {
            ops.put(
                keys::posting_key(self.id, new_ids[h]),
                self.encode_entries(&view, &lists[h].0, &lists[h].1),
            );
            ops.put(
                keys::centroid_key(self.id, new_ids[h]),
                centroid::encode(&c[h]),
            );
        }
        for (n, bytes, _) in &rewritten {
            ops.put(keys::posting_key(self.id, *n), bytes.clone());
        }
        for (t, (mids, mvecs)) in &moves {
            ops.merge(
                keys::posting_key(self.id, *t),
                self.encode_entries(&view, mids, mvecs),
            );
        }
        let mut new_state = w.state.clone();
        new_state.next_posting = p2 + 1;
        new_state.epoch += 1;
        ops.put(keys::state_key(self.id), state::encode(&new_state));
        self.apply(storage, ops).await?;
        w.state = new_state.clone();
        w.postings.remove(&p);
        for h in 0..2 {
            w.postings.insert(
                new_ids[h],
                PostingMeta {
                    entries: lists[h].0.len() as u32,
                    dead_hint: 0,
                },
            );
        }
        for (n, _, count) in rewritten {
            w.postings.insert(
                n,
                PostingMeta {
                    entries: count,
                    dead_hint: 0,
                },
            );
        }
        for (t, (mids, _)) in &moves {
            w.postings.entry(*t).or_default().entries += mids.len() as u32;
        }
        *self.view.write() = Arc::new(View {
            state: new_state,
            centroids,
            entry_size: view.entry_size,
        });
        Ok(true)
    }

    /// Merges an undersized posting list into its neighbours and retires it.
    async fn merge_posting(&self, p: u32) -> Result<bool> {
        let storage = self.storage()?;
        let dim = self.spec.dimension as usize;
        let mut guard = self.writer.lock().await;
        let w = guard.as_mut().ok_or_else(|| self.gone())?;
        if !w.postings.contains_key(&p) || w.postings.len() <= 1 {
            return Ok(false);
        }
        let view = self.view();
        let key = keys::posting_key(self.id, p);
        let value = self.reader.get(&key).await?.unwrap_or_default();
        let (ids, vecs) = self.live_entries(&view, &value)?;
        if ids.len() >= self.config.min_posting_size {
            w.postings.insert(
                p,
                PostingMeta {
                    entries: (value.len() / view.entry_size) as u32,
                    dead_hint: (value.len() / view.entry_size - ids.len()) as u32,
                },
            );
            return Ok(false);
        }
        let centroids = view.centroids.with_changes(&[p], &[]);
        let mut moves: HashMap<u32, (Vec<u32>, Vec<f32>)> = HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            let v = &vecs[i * dim..(i + 1) * dim];
            if let Some(&(t, _)) = centroids.nearest(v, 1, 256, Rank::L2).first() {
                let m = moves.entry(t).or_default();
                m.0.push(*id);
                m.1.extend_from_slice(v);
            }
        }
        let mut ops = WriteOps::new();
        ops.delete(key);
        ops.delete(keys::centroid_key(self.id, p));
        for (t, (mids, mvecs)) in &moves {
            ops.merge(
                keys::posting_key(self.id, *t),
                self.encode_entries(&view, mids, mvecs),
            );
        }
        let mut new_state = w.state.clone();
        new_state.epoch += 1;
        ops.put(keys::state_key(self.id), state::encode(&new_state));
        self.apply(storage, ops).await?;
        w.state = new_state.clone();
        w.postings.remove(&p);
        for (t, (mids, _)) in &moves {
            w.postings.entry(*t).or_default().entries += mids.len() as u32;
        }
        *self.view.write() = Arc::new(View {
            state: new_state,
            centroids,
            entry_size: view.entry_size,
        });
        Ok(true)
    }

    /// The first clustering: balanced k-means over the flat list picks the centroids,
    /// the quantizer is trained, and every vector is written to its posting lists.
    async fn initial_build(&self) -> Result<()> {
        let storage = self.storage()?;
        let dim = self.spec.dimension as usize;
        let (ids, vecs) = self.scan_vectors(0).await?;
        if ids.is_empty() {
            return Ok(());
        }
        let n = ids.len();
        let k = n.div_ceil(self.config.target_posting_size.max(1)).max(1);
        // Train on at most 256 points per cluster.
        let sample_n = n.min(256 * k);
        let sample: Vec<f32> = if sample_n == n {
            vecs.clone()
        } else {
            let mut rng = crate::kmeans::Rng::new(n as u64);
            (0..sample_n)
                .flat_map(|_| {
                    let i = rng.below(n);
                    vecs[i * dim..(i + 1) * dim].to_vec()
                })
                .collect()
        };
        let clustering = balanced_kmeans(&sample, dim, k, 12, 1.0, 42);
        let quantizer = self.config.quantize.then(|| Quantizer::train(&sample, dim));

        let mut guard = self.writer.lock().await;
        let w = guard.as_mut().ok_or_else(|| self.gone())?;
        if w.state.clustered {
            return Ok(());
        }
        let last = ids.last().copied().unwrap_or(0);
        let (more_ids, more_vecs) = self.scan_vectors(last + 1).await?;
        let mut state = w.state.clone();
        state.clustered = true;
        state.quantizer = quantizer;
        state.next_posting = k as u32;
        state.epoch += 1;
        let centroid_ids: Vec<u32> = (0..k as u32).collect();
        let centroids = CentroidIndex::new(dim, centroid_ids.clone(), clustering.centroids);
        let view = View {
            entry_size: entry_size(&self.spec, &state),
            centroids,
            state: state.clone(),
        };
        let mut lists: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut payload = Vec::new();
        for (all_ids, all_vecs) in [(&ids, &vecs), (&more_ids, &more_vecs)] {
            for (i, id) in all_ids.iter().enumerate() {
                let v = &all_vecs[i * dim..(i + 1) * dim];
                for p in self.assign(&view.centroids, v) {
                    payload.clear();
                    self.payload(&view, v, &mut payload);
                    posting::push_entry(lists.entry(p).or_default(), *id, &payload);
                }
            }
        }
        let mut ops = WriteOps::new();
        for id in &centroid_ids {
            ops.put(
                keys::centroid_key(self.id, *id),
                centroid::encode(view.centroids.get(*id).expect("centroid")),
            );
        }
        for (p, bytes) in &lists {
            ops.put(keys::posting_key(self.id, *p), Bytes::from(bytes.clone()));
        }
        ops.put(keys::state_key(self.id), state::encode(&state));
        self.apply(storage, ops).await?;
        w.state = state;
        w.postings = lists
            .iter()
            .map(|(p, b)| {
                (
                    *p,
                    PostingMeta {
                        entries: (b.len() / view.entry_size) as u32,
                        dead_hint: 0,
                    },
                )
            })
            .collect();
        for id in centroid_ids {
            w.postings.entry(id).or_default();
        }
        *self.view.write() = Arc::new(view);
        tracing::info!(
            collection = %self.spec.name,
            vectors = n + more_ids.len(),
            postings = k,
            "clustered collection"
        );
        Ok(())
    }

    /// Live vectors with internal id `from` or later, in id order.
    async fn scan_vectors(&self, from: u32) -> Result<(Vec<u32>, Vec<f32>)> {
        let dim = self.spec.dimension as usize;
        let (_, end) = keys::type_range(self.id, keys::VECTOR);
        let start = keys::vector_key(self.id, from);
        let mut iter = self.reader.scan(start..end).await?;
        let live = self.live.read().clone();
        let mut ids = Vec::new();
        let mut vecs = Vec::new();
        while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
            let iid = keys::key_u32(&kv.key)?;
            if !live.contains(iid) {
                continue;
            }
            vector::decode_head(&kv.value, dim, &mut vecs)?;
            ids.push(iid);
        }
        Ok((ids, vecs))
    }

    /// Measures recall per `nprobe` on a sample of stored vectors (each used as a query
    /// with itself excluded), against exact results from a full scan.
    pub async fn calibrate(&self) -> Result<()> {
        let view = self.view();
        if !view.state.clustered {
            return Ok(());
        }
        {
            let cal = self.calibration.read();
            let n = view.centroids.len();
            if !cal.curve.is_empty() && cal.postings * 4 / 5 <= n && n <= cal.postings * 5 / 4 {
                return Ok(());
            }
        }
        let dim = self.spec.dimension as usize;
        let live: Vec<u32> = self.live.read().iter().collect();
        if live.len() < 100 {
            return Ok(());
        }
        let mut rng = crate::kmeans::Rng::new(live.len() as u64);
        let sample: Vec<u32> = (0..32).map(|_| live[rng.below(live.len())]).collect();
        let values = self.fetch_values(&sample).await?;
        let mut queries: Vec<(u32, Vec<f32>)> = Vec::new();
        for (id, v) in sample.iter().zip(values) {
            if let Some(v) = v {
                let mut vec = Vec::with_capacity(dim);
                vector::decode_head(&v, dim, &mut vec)?;
                queries.push((*id, vec));
            }
        }
        let k = 10;
        let mut truth: Vec<Vec<(f32, u32)>> = vec![Vec::new(); queries.len()];
        let (start, end) = keys::type_range(self.id, keys::VECTOR);
        let mut iter = self.reader.scan(start..end).await?;
        let live_set = self.live.read().clone();
        let mut v = Vec::with_capacity(dim);
        while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
            let iid = keys::key_u32(&kv.key)?;
            if !live_set.contains(iid) {
                continue;
            }
            v.clear();
            vector::decode_head(&kv.value, dim, &mut v)?;
            for (qi, (qid, q)) in queries.iter().enumerate() {
                if *qid == iid {
                    continue;
                }
                let d = self.exact_distance(q, &v);
                let t = &mut truth[qi];
                if t.len() < k || d < t[t.len() - 1].0 {
                    let pos = t.partition_point(|x| x.0 <= d);
                    t.insert(pos, (d, iid));
                    t.truncate(k);
                }
            }
        }
        let mut curve = Vec::new();
        let total = view.centroids.len();
        let mut nprobe = 1;
        loop {
            let mut hit = 0usize;
            let mut all = 0usize;
            for (qi, (qid, q)) in queries.iter().enumerate() {
                let (res, _) = self.probe(&view, q, k + 1, nprobe, None).await?;
                let found: HashSet<u32> = res.iter().map(|r| r.id).filter(|id| id != qid).collect();
                all += truth[qi].len();
                hit += truth[qi].iter().filter(|t| found.contains(&t.1)).count();
            }
            let recall = hit as f64 / all.max(1) as f64;
            curve.push((nprobe, recall));
            if recall >= 0.995 || nprobe >= total || nprobe >= 1024 {
                break;
            }
            nprobe = (nprobe * 3).div_ceil(2).max(nprobe + 1);
        }
        *self.calibration.write() = Calibration {
            postings: total,
            curve,
        };
        Ok(())
    }
}

/// A candidate after exact re-ranking, with its stored record.
struct Rescored {
    dist: f32,
    id: u32,
    value: Bytes,
}

fn push_rescored(top: &mut Vec<Rescored>, k: usize, item: Rescored) {
    if top.len() == k && item.dist >= top[k - 1].dist {
        return;
    }
    let pos = top.partition_point(|x| x.dist <= item.dist);
    top.insert(pos, item);
    top.truncate(k);
}

fn select_attributes(
    mut attrs: BTreeMap<String, AttributeValue>,
    fields: &FieldSelection,
) -> BTreeMap<String, AttributeValue> {
    match &fields.attributes {
        None => attrs,
        Some(names) => names.iter().filter_map(|n| attrs.remove_entry(n)).collect(),
    }
}

/// Bitmap-index changes of one write batch.
#[derive(Default)]
struct IndexDelta {
    values: HashMap<Bytes, (RoaringBitmap, RoaringBitmap)>,
    exists: HashMap<String, (RoaringBitmap, RoaringBitmap)>,
    live_adds: RoaringBitmap,
    live_removes: RoaringBitmap,
}

impl IndexDelta {
    fn add_attributes(&mut self, coll: u32, id: u32, attrs: &BTreeMap<String, AttributeValue>) {
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

    fn remove_attributes(&mut self, coll: u32, id: u32, attrs: &BTreeMap<String, AttributeValue>) {
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

    fn drain_into(&mut self, coll: u32, ops: &mut WriteOps) {
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

async fn load_centroids(reader: &StorageReader, id: u32, dim: usize) -> Result<CentroidIndex> {
    let (start, end) = keys::type_range(id, keys::CENTROID);
    let mut iter = reader.scan(start..end).await?;
    let mut ids = Vec::new();
    let mut data = Vec::new();
    while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
        ids.push(keys::key_u32(&kv.key)?);
        centroid::decode_into(&kv.value, dim, &mut data)?;
    }
    Ok(CentroidIndex::new(dim, ids, data))
}

async fn load_live(reader: &StorageReader, id: u32) -> Result<RoaringBitmap> {
    Ok(match reader.get(&keys::live_key(id)).await? {
        Some(v) => RoaringDelta::members(&v)?,
        None => RoaringBitmap::new(),
    })
}
