//! [`VectorDb`]: the collections of one server.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use opendata_common::replica::ReplicaFollower;
use opendata_common::segment::drop_segment;
use opendata_common::storage::{Durability, Storage, StorageReader, StorageRoot, WriteOps};
use opendata_common::task::{TaskHealth, spawn_supervised};
use parking_lot::{Mutex, RwLock};
use tokio::task::JoinHandle;

use crate::config::VectorConfig;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::model::{
    AttributePatch, Checked, CheckedSearch, CollectionInfo, CollectionSpec, FieldSelection,
    SearchRequest, SearchResponse, VectorRecord, WriteResult, validate_collection_name,
};
use crate::serde::{self as keys, collection as collection_record};
use crate::storage::Collection;
use crate::storage::cache::ReadCache;

/// The directory (database name) the vector database lives in under the storage root.
pub const DATABASE: &str = "vector";

/// The vector database: every collection of one server, in one SlateDB.
///
/// Each collection keeps its centroids, its live-id bitmap and some bookkeeping in
/// memory; posting lists, vectors, attributes and bitmap indexes stay in storage.
#[derive(Clone)]
pub struct VectorDb {
    inner: Arc<Inner>,
}

struct Inner {
    config: VectorConfig,
    storage: Option<Storage>,
    reader: StorageReader,
    collections: RwLock<HashMap<String, Arc<Collection>>>,
    catalog: tokio::sync::Mutex<()>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
    cache: Arc<ReadCache>,
    /// A replica's follower of the writer.
    follower: Mutex<Option<ReplicaFollower>>,
    /// Where background tasks (maintenance, calibration) report a panic: the writer's
    /// storage health, or the replica's own.
    health: TaskHealth,
}

impl VectorDb {
    /// Opens (or creates) the database under `root` as its single writer.
    pub async fn open(root: &StorageRoot, config: VectorConfig) -> Result<Self> {
        let storage = root
            .open_writer(DATABASE, Some(keys::merge_router()))
            .await?;
        let reader = storage.reader();
        let db = Self::new(config, Some(storage), reader);
        for (id, spec) in db.load_catalog().await? {
            db.attach(id, spec).await?;
        }
        Ok(db)
    }

    /// Opens the database under `root` as a read-only replica that follows the writer:
    /// new collections, vectors and index changes appear within the replica poll
    /// interval of their becoming durable.
    pub async fn open_replica(root: &StorageRoot, config: VectorConfig) -> Result<Self> {
        let reader = root
            .open_replica(DATABASE, Some(keys::merge_router()))
            .await?;
        let db = Self::new(config, None, reader);
        db.sync_catalog().await?;
        let poll = root.config().replica_poll_interval();
        let follower = ReplicaFollower::start(
            DATABASE,
            poll.max(Duration::from_millis(50)),
            &db.inner,
            |inner| async move { VectorDb { inner }.sync_catalog().await },
        );
        *db.inner.follower.lock() = Some(follower);
        Ok(db)
    }

    fn new(config: VectorConfig, storage: Option<Storage>, reader: StorageReader) -> Self {
        let health = storage
            .as_ref()
            .map_or_else(TaskHealth::default, |s| s.health().clone());
        Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                storage,
                reader,
                collections: RwLock::new(HashMap::new()),
                catalog: tokio::sync::Mutex::new(()),
                tasks: Mutex::new(Vec::new()),
                closed: AtomicBool::new(false),
                cache: Arc::new(ReadCache::new(config.read_cache_bytes as usize)),
                follower: Mutex::new(None),
                health,
            }),
        }
    }

    async fn load_catalog(&self) -> Result<Vec<(u32, CollectionSpec)>> {
        let (start, end) = keys::collection_range();
        let mut iter = self.inner.reader.scan(start..end).await?;
        let mut out = Vec::new();
        while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
            let mut parsed = keys::PREFIX.parse(&kv.key)?;
            let name = String::from_utf8(parsed.read_bytes()?).map_err(|_| {
                opendata_common::DecodeError::new("collection key", "name is not UTF-8")
            })?;
            let (id, spec) = collection_record::decode(&name, &kv.value)?;
            out.push((id, spec));
        }
        Ok(out)
    }

    /// Replica: follows the writer's catalog and every collection's index.
    async fn sync_catalog(&self) -> Result<()> {
        let catalog = self.load_catalog().await?;
        let names: std::collections::HashSet<String> =
            catalog.iter().map(|(_, s)| s.name.clone()).collect();
        self.inner
            .collections
            .write()
            .retain(|name, _| names.contains(name));
        for (id, spec) in catalog {
            let existing = self.inner.collections.read().get(&spec.name).cloned();
            match existing {
                Some(c) if c.id == id => c.refresh().await?,
                _ => {
                    let c = Collection::load(
                        id,
                        spec.clone(),
                        self.inner.config.clone(),
                        self.inner.reader.clone(),
                        None,
                        self.inner.cache.clone(),
                        self.inner.health.clone(),
                    )
                    .await?;
                    self.inner.collections.write().insert(spec.name, c);
                }
            }
        }
        Ok(())
    }

    /// Loads a collection and starts its maintenance task.
    async fn attach(&self, id: u32, spec: CollectionSpec) -> Result<Arc<Collection>> {
        let name = spec.name.clone();
        let c = Collection::load(
            id,
            spec,
            self.inner.config.clone(),
            self.inner.reader.clone(),
            self.inner.storage.clone(),
            self.inner.cache.clone(),
            self.inner.health.clone(),
        )
        .await?;
        self.inner.collections.write().insert(name, c.clone());
        let weak = Arc::downgrade(&c);
        let task = spawn_supervised("vector index maintenance", &self.inner.health, async move {
            loop {
                let Some(c) = weak.upgrade() else { break };
                if c.closed.load(Ordering::Relaxed) {
                    break;
                }
                loop {
                    match c.maintain_once().await {
                        Ok(true) => tokio::task::yield_now().await,
                        Ok(false) => break,
                        Err(e) => {
                            if !c.closed.load(Ordering::Relaxed) {
                                tracing::warn!(collection = %c.spec.name, error = %e, "vector index maintenance failed");
                            }
                            break;
                        }
                    }
                    if c.closed.load(Ordering::Relaxed) {
                        break;
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), c.notify.notified()).await;
            }
        });
        self.inner.tasks.lock().push(task);
        Ok(c)
    }

    fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        self.inner
            .collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::CollectionNotFound(name.to_string()))
    }

    fn storage(&self) -> Result<&Storage> {
        self.inner.storage.as_ref().ok_or(Error::ReadOnly)
    }

    /// Bytes currently held by the read cache of posting lists and vector records.
    pub fn read_cache_bytes(&self) -> usize {
        self.inner.cache.bytes()
    }

    /// Checks the database can serve: open, not fenced, and (on a replica) following
    /// the writer.
    pub fn check(&self) -> Result<()> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(opendata_common::Error::Closed.into());
        }
        self.inner.health.check()?;
        match &self.inner.storage {
            Some(storage) => storage.check()?,
            None => {
                if let Some(f) = self.inner.follower.lock().as_ref() {
                    f.check()?;
                }
            }
        }
        Ok(())
    }

    /// The group-commit counters of the writer (`None` on a replica).
    pub fn commit_stats(&self) -> Option<opendata_common::storage::CommitStats> {
        self.inner.storage.as_ref().map(|s| s.committer().stats())
    }

    /// Makes every acknowledged write durable (nothing to do on a replica).
    pub async fn flush(&self) -> Result<()> {
        if let Some(storage) = &self.inner.storage {
            storage.flush().await?;
        }
        Ok(())
    }

    /// Whether this instance is a read-only replica.
    pub fn is_read_only(&self) -> bool {
        self.inner.storage.is_none()
    }

    /// Creates a collection. Creating one that exists with the same definition
    /// succeeds; with a different definition, fails with `CollectionExists`.
    pub async fn create_collection(&self, spec: CollectionSpec) -> Result<CollectionInfo> {
        spec.validate()?;
        let storage = self.storage()?;
        let _catalog = self.inner.catalog.lock().await;
        if let Ok(existing) = self.collection(&spec.name) {
            if existing.spec == spec {
                return Ok(existing.info().await);
            }
            return Err(Error::CollectionExists(spec.name));
        }
        let next = match self.inner.reader.get(&keys::next_collection_key()).await? {
            Some(v) => keys::decode_u32(&v)?,
            None => 1,
        };
        let mut ops = WriteOps::new();
        ops.put(
            keys::collection_key(&spec.name),
            collection_record::encode(next, &spec),
        );
        ops.put(
            keys::next_collection_key(),
            Bytes::copy_from_slice(&(next + 1).to_be_bytes()),
        );
        storage.write(ops, Durability::Remote).await?;
        let c = self.attach(next, spec).await?;
        Ok(c.info().await)
    }

    /// Every collection, by name.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> {
        let collections: Vec<Arc<Collection>> =
            self.inner.collections.read().values().cloned().collect();
        let mut all = Vec::with_capacity(collections.len());
        for c in collections {
            all.push(c.info().await);
        }
        all.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(all)
    }

    /// One collection.
    pub async fn describe_collection(&self, name: &str) -> Result<CollectionInfo> {
        Ok(self.collection(name)?.info().await)
    }

    /// The definition of one collection (cheap; no counting).
    pub fn collection_spec(&self, name: &str) -> Result<CollectionSpec> {
        Ok(self.collection(name)?.spec.clone())
    }

    /// Drops a collection and all its data.
    pub async fn drop_collection(&self, name: &str) -> Result<()> {
        validate_collection_name(name)?;
        let storage = self.storage()?;
        let _catalog = self.inner.catalog.lock().await;
        let c = self.collection(name)?;
        c.closed.store(true, Ordering::Relaxed);
        c.notify.notify_one();
        // Wait for writes in flight and keep the collection's writer shut.
        c.shut_writer().await;
        self.inner.collections.write().remove(name);
        let mut ops = WriteOps::new();
        ops.delete(keys::collection_key(name));
        storage.write(ops, Durability::Remote).await?;
        drop_segment(storage, keys::PREFIX, c.id, Durability::Remote).await?;
        Ok(())
    }

    /// Inserts or replaces records. All are checked before any is written.
    pub async fn upsert(
        &self,
        collection: &str,
        records: Vec<VectorRecord>,
        durability: Durability,
    ) -> Result<WriteResult> {
        self.storage()?;
        let c = self.collection(collection)?;
        let checked = c.spec.check_records(records)?;
        c.upsert(checked, durability).await
    }

    /// Inserts or replaces records already checked against the collection
    /// ([`CollectionSpec::check_records`]).
    pub async fn upsert_checked(
        &self,
        collection: &str,
        records: Checked<Vec<VectorRecord>>,
        durability: Durability,
    ) -> Result<WriteResult> {
        self.storage()?;
        self.collection(collection)?
            .upsert(records, durability)
            .await
    }

    /// Changes attributes of existing records; ids not found are counted in `missing`.
    pub async fn patch(
        &self,
        collection: &str,
        patches: Vec<AttributePatch>,
        durability: Durability,
    ) -> Result<WriteResult> {
        self.storage()?;
        let c = self.collection(collection)?;
        let checked = c.spec.check_patches(patches)?;
        c.patch(checked, durability).await
    }

    /// Changes attributes with patches already checked against the collection
    /// ([`CollectionSpec::check_patches`]).
    pub async fn patch_checked(
        &self,
        collection: &str,
        patches: Checked<Vec<AttributePatch>>,
        durability: Durability,
    ) -> Result<WriteResult> {
        self.storage()?;
        self.collection(collection)?
            .patch(patches, durability)
            .await
    }

    /// Deletes records by id; ids not found are counted in `missing`.
    pub async fn delete(
        &self,
        collection: &str,
        ids: Vec<String>,
        durability: Durability,
    ) -> Result<WriteResult> {
        self.storage()?;
        self.collection(collection)?.delete(ids, durability).await
    }

    /// Deletes every record matching `filter`.
    pub async fn delete_by_filter(
        &self,
        collection: &str,
        filter: Filter,
        durability: Durability,
    ) -> Result<WriteResult> {
        self.storage()?;
        self.collection(collection)?
            .delete_by_filter(&filter, durability)
            .await
    }

    /// Records by id, in the order asked (`None` for ids not found).
    pub async fn get(
        &self,
        collection: &str,
        ids: &[String],
        fields: &FieldSelection,
    ) -> Result<Vec<Option<VectorRecord>>> {
        self.collection(collection)?.get(ids, fields).await
    }

    /// The names of the collections, sorted (cheap; no storage read).
    pub fn collection_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.collections.read().keys().cloned().collect();
        names.sort();
        names
    }

    /// Live records of a collection in the order they were first written (an upsert
    /// moves a record to the end), after the cursor `after` (exclusive), at most `limit`,
    /// only those matching `filter` if given. Returns the records and the cursor of the
    /// next page (`None` after the last).
    pub async fn scan(
        &self,
        collection: &str,
        after: Option<u32>,
        limit: usize,
        fields: &FieldSelection,
        filter: Option<&Filter>,
    ) -> Result<(Vec<VectorRecord>, Option<u32>)> {
        let c = self.collection(collection)?;
        let only = match filter {
            Some(f) => Some(c.evaluate(f).await?),
            None => None,
        };
        c.scan(after, limit, fields, only.as_ref()).await
    }

    /// Nearest neighbours.
    pub async fn search(&self, collection: &str, request: SearchRequest) -> Result<SearchResponse> {
        let c = self.collection(collection)?;
        let checked = request.check(&c.spec, "query")?;
        Self::run_search(&c, &checked).await
    }

    /// Nearest neighbours for a request already checked against the collection
    /// ([`SearchRequest::check`]).
    pub async fn search_checked(
        &self,
        collection: &str,
        request: &CheckedSearch,
    ) -> Result<SearchResponse> {
        Self::run_search(&self.collection(collection)?, request).await
    }

    async fn run_search(c: &Arc<Collection>, request: &CheckedSearch) -> Result<SearchResponse> {
        if request.recall_target.is_some() && request.nprobe.is_none() {
            c.calibrate_in_background();
        }
        c.search(request).await
    }

    /// Several searches.
    pub async fn search_batch(
        &self,
        collection: &str,
        requests: Vec<SearchRequest>,
    ) -> Result<Vec<SearchResponse>> {
        let c = self.collection(collection)?;
        let checked = requests
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.check(&c.spec, &format!("queries[{i}]")))
            .collect::<Result<Vec<_>>>()?;
        Self::run_batch(&c, &checked).await
    }

    /// Several searches already checked against the collection.
    pub async fn search_batch_checked(
        &self,
        collection: &str,
        requests: &[CheckedSearch],
    ) -> Result<Vec<SearchResponse>> {
        Self::run_batch(&self.collection(collection)?, requests).await
    }

    async fn run_batch(
        c: &Arc<Collection>,
        requests: &[CheckedSearch],
    ) -> Result<Vec<SearchResponse>> {
        let futs = requests.iter().map(|r| Self::run_search(c, r));
        futures::future::try_join_all(futs).await
    }

    /// Runs pending index maintenance (the first clustering, splits, merges,
    /// reassignment, clean-up) to completion. Maintenance also runs in the background;
    /// this is for tests and bulk loads.
    pub async fn maintain(&self, collection: &str) -> Result<()> {
        let c = self.collection(collection)?;
        while c.maintain_once().await? {}
        Ok(())
    }

    /// Measures the collection's recall per `nprobe` (used by searches that give a
    /// recall target) and returns the curve.
    pub async fn calibrate(&self, collection: &str) -> Result<Vec<(usize, f64)>> {
        let c = self.collection(collection)?;
        c.calibrate().await?;
        Ok(c.calibration_curve())
    }

    /// Flushes and closes.
    pub async fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let collections: Vec<Arc<Collection>> =
            self.inner.collections.read().values().cloned().collect();
        for c in &collections {
            c.closed.store(true, Ordering::Relaxed);
            c.notify.notify_one();
        }
        for c in &collections {
            c.shut_writer().await;
        }
        if let Some(follower) = self.inner.follower.lock().take() {
            follower.stop();
        }
        let tasks: Vec<JoinHandle<()>> = self.inner.tasks.lock().drain(..).collect();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        if let Some(storage) = &self.inner.storage {
            storage.close().await?;
        }
        Ok(())
    }
}
