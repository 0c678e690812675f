//! A collection's storage: the in-memory state a collection keeps beside its records in
//! SlateDB (the live set, the centroid view, the writer's posting-list bookkeeping), and
//! the reads every other part goes through (the read cache, records by id).
//!
//! The other parts of a collection are their own modules, each an `impl Collection`:
//! the write path ([`writer`]), the replica's refresh ([`replica`]), the posting lists
//! ([`crate::index::posting`]), filters ([`crate::filter::eval`]), search
//! ([`crate::search`]) and index maintenance ([`crate::maintenance`]).

pub(crate) mod cache;
pub(crate) mod replica;
pub(crate) mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use futures::future::try_join_all;
use opendata_common::merge::RoaringDelta;
use opendata_common::sequence::SequenceAllocator;
use opendata_common::storage::{Durability, Storage, StorageReader, WriteOps};
use parking_lot::RwLock;
use roaring::RoaringBitmap;

use opendata_common::task::TaskHealth;

use self::cache::ReadCache;
use crate::config::VectorConfig;
use crate::error::{Error, Result};
use crate::index::centroids::{CentroidIndex, Rank};
use crate::index::distance::{dot, l2_sq};
use crate::model::{
    CollectionInfo, CollectionSpec, FieldSelection, Metric, VectorRecord, validate_id,
};
use crate::search::calibrate::Calibration;
use crate::serde::state::IndexState;
use crate::serde::{self as keys, centroid, posting, state, vector};

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
pub(crate) struct PostingMeta {
    /// Entries stored, dead or alive.
    pub(crate) entries: u32,
    /// Entries known (or likely) to be dead.
    pub(crate) dead_hint: u32,
}

impl PostingMeta {
    /// Whether enough of the list is likely dead to rewrite it (a quarter).
    pub(crate) fn needs_cleanup(&self) -> bool {
        self.dead_hint > 0 && self.dead_hint * 4 >= self.entries
    }
}

/// State only the writer touches, under the collection's write lock.
pub(crate) struct WriterState {
    pub(crate) ids: SequenceAllocator,
    pub(crate) state: IndexState,
    pub(crate) postings: HashMap<u32, PostingMeta>,
}

impl WriterState {
    /// Counts one likely-dead entry in each of `postings`; true when one of them now
    /// needs a clean-up.
    pub(crate) fn add_dead_hints(&mut self, postings: impl IntoIterator<Item = u32>) -> bool {
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

/// A collection.
pub(crate) struct Collection {
    pub id: u32,
    pub spec: CollectionSpec,
    pub(crate) config: VectorConfig,
    pub(crate) reader: StorageReader,
    pub(crate) storage: Option<Storage>,
    pub(crate) view: RwLock<Arc<View>>,
    pub(crate) live: RwLock<RoaringBitmap>,
    pub(crate) writer: tokio::sync::Mutex<Option<WriterState>>,
    pub(crate) calibration: RwLock<Calibration>,
    pub(crate) notify: tokio::sync::Notify,
    pub(crate) closed: AtomicBool,
    pub(crate) calibrating: AtomicBool,
    pub(crate) cache: Arc<ReadCache>,
    /// Where the collection's background tasks report a panic.
    pub(crate) health: TaskHealth,
}

pub(crate) fn entry_size(spec: &CollectionSpec, state: &IndexState) -> usize {
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
        health: TaskHealth,
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
            health,
        }))
    }

    pub(crate) fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    pub(crate) fn storage(&self) -> Result<&Storage> {
        self.storage.as_ref().ok_or(Error::ReadOnly)
    }

    /// Applies `ops` (in memory; durability is awaited separately) and drops the keys
    /// they touch from the read cache.
    pub(crate) async fn apply(&self, storage: &Storage, ops: WriteOps) -> Result<()> {
        let keys: Vec<Bytes> = ops.keys().cloned().collect();
        let result = storage.write(ops, Durability::Memory).await;
        for k in &keys {
            self.cache.invalidate(k);
        }
        Ok(result?)
    }

    /// Reads `key` through the read cache.
    pub(crate) async fn cached_get(&self, key: &Bytes) -> Result<Option<Bytes>> {
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
    pub(crate) fn gone(&self) -> Error {
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

    pub(crate) fn rank(&self) -> Rank {
        match self.spec.metric {
            Metric::L2 => Rank::L2,
            Metric::Cosine | Metric::Dot => Rank::Dot,
        }
    }

    /// The internal distance (smaller is nearer) between a query and a vector.
    #[inline]
    pub(crate) fn exact_distance(&self, q: &[f32], v: &[f32]) -> f32 {
        match self.spec.metric {
            Metric::L2 => l2_sq(q, v),
            Metric::Cosine | Metric::Dot => -dot(q, v),
        }
    }

    /// The score reported for an internal distance.
    pub(crate) fn score(&self, dist: f32) -> f32 {
        match self.spec.metric {
            Metric::L2 => dist.max(0.0).sqrt(),
            Metric::Cosine | Metric::Dot => -dist,
        }
    }

    pub(crate) async fn lookup_ids(&self, ids: &[String]) -> Result<Vec<Option<u32>>> {
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

    pub(crate) async fn load_records(
        &self,
        ids: &[u32],
    ) -> Result<Vec<Option<vector::StoredVector>>> {
        let dim = self.spec.dimension as usize;
        self.fetch_values(ids)
            .await?
            .into_iter()
            .map(|v| v.map(|v| vector::decode(&v, dim)).transpose())
            .collect::<Result<_, _>>()
            .map_err(Error::from)
    }

    pub(crate) async fn fetch_values(&self, ids: &[u32]) -> Result<Vec<Option<Bytes>>> {
        let futs = ids.iter().map(|id| {
            let key = keys::vector_key(self.id, *id);
            async move { self.cached_get(&key).await }
        });
        try_join_all(futs).await
    }

    /// Live records in internal-id order (the order they were first written), after
    /// internal id `after` (exclusive), at most `limit`; with `only`, just those ids.
    /// Returns the records and the internal id to continue after (`None` at the end).
    pub async fn scan(
        &self,
        after: Option<u32>,
        limit: usize,
        fields: &FieldSelection,
        only: Option<&RoaringBitmap>,
    ) -> Result<(Vec<VectorRecord>, Option<u32>)> {
        let limit = limit.max(1);
        let from = match after {
            Some(u32::MAX) => return Ok((Vec::new(), None)),
            Some(a) => a + 1,
            None => 0,
        };
        let dim = self.spec.dimension as usize;
        let to_record = |rec: vector::StoredVector| VectorRecord {
            id: rec.id,
            vector: if fields.vector {
                rec.vector
            } else {
                Vec::new()
            },
            attributes: fields.select(rec.attributes),
        };
        if let Some(only) = only {
            // A filtered scan reads just the matching records.
            let mut ids: Vec<u32> = {
                let live = self.live.read();
                let mut wanted = only & &*live;
                wanted.remove_range(..from);
                wanted.iter().take(limit + 1).collect()
            };
            let more = ids.len() > limit;
            ids.truncate(limit);
            let next = if more { ids.last().copied() } else { None };
            let records = self.load_records(&ids).await?;
            return Ok((records.into_iter().flatten().map(to_record).collect(), next));
        }
        let (_, end) = keys::type_range(self.id, keys::VECTOR);
        let start = keys::vector_key(self.id, from);
        let mut iter = self.reader.scan(start..end).await?;
        let mut out = Vec::new();
        while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
            let id = keys::key_u32(&kv.key)?;
            if !self.live.read().contains(id) {
                continue;
            }
            out.push(to_record(vector::decode(&kv.value, dim)?));
            if out.len() >= limit {
                return Ok((out, Some(id)));
            }
        }
        Ok((out, None))
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
                    attributes: fields.select(rec.attributes),
                })
            })
            .collect())
    }
}

pub(crate) async fn load_centroids(
    reader: &StorageReader,
    id: u32,
    dim: usize,
) -> Result<CentroidIndex> {
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

pub(crate) async fn load_live(reader: &StorageReader, id: u32) -> Result<RoaringBitmap> {
    Ok(match reader.get(&keys::live_key(id)).await? {
        Some(v) => RoaringDelta::members(&v)?,
        None => RoaringBitmap::new(),
    })
}
