//! [`VectorDb`]: the collections of one server.

use std::sync::Arc;

use opendata_common::storage::{Durability, StorageRoot};

use crate::config::VectorConfig;
use crate::error::Result;
use crate::filter::Filter;
use crate::model::{
    AttributePatch, CollectionInfo, CollectionSpec, FieldSelection, SearchRequest,
    SearchResponse, VectorRecord, WriteResult,
};

/// The vector database: every collection of one server, in one SlateDB.
#[derive(Clone)]
pub struct VectorDb {
    inner: Arc<()>,
}

impl VectorDb {
    /// Opens (or creates) the database under `root` as its single writer.
    pub async fn open(root: &StorageRoot, config: VectorConfig) -> Result<Self> { todo!() }
    /// Opens the database under `root` as a read-only replica that follows the writer.
    pub async fn open_replica(root: &StorageRoot, config: VectorConfig) -> Result<Self> { todo!() }
    /// Whether this instance is a read-only replica.
    pub fn is_read_only(&self) -> bool { todo!() }
    /// Creates a collection. Creating one that exists with the same definition
    /// succeeds; with a different definition, fails with `CollectionExists`.
    pub async fn create_collection(&self, spec: CollectionSpec) -> Result<CollectionInfo> { todo!() }
    /// Every collection, by name.
    pub async fn list_collections(&self) -> Result<Vec<CollectionInfo>> { todo!() }
    /// One collection.
    pub async fn describe_collection(&self, name: &str) -> Result<CollectionInfo> { todo!() }
    /// The definition of one collection (cheap; no counting).
    pub fn collection_spec(&self, name: &str) -> Result<CollectionSpec> { todo!() }
    /// Drops a collection and all its data.
    pub async fn drop_collection(&self, name: &str) -> Result<()> { todo!() }
    /// Inserts or replaces records. All are checked before any is written.
    pub async fn upsert(&self, collection: &str, records: Vec<VectorRecord>, durability: Durability) -> Result<WriteResult> { todo!() }
    /// Changes attributes of existing records; ids not found are counted in `missing`.
    pub async fn patch(&self, collection: &str, patches: Vec<AttributePatch>, durability: Durability) -> Result<WriteResult> { todo!() }
    /// Deletes records by id; ids not found are counted in `missing`.
    pub async fn delete(&self, collection: &str, ids: Vec<String>, durability: Durability) -> Result<WriteResult> { todo!() }
    /// Deletes every record matching `filter`.
    pub async fn delete_by_filter(&self, collection: &str, filter: Filter, durability: Durability) -> Result<WriteResult> { todo!() }
    /// Records by id, in the order asked (`None` for ids not found).
    pub async fn get(&self, collection: &str, ids: &[String], fields: &FieldSelection) -> Result<Vec<Option<VectorRecord>>> { todo!() }
    /// Nearest neighbours.
    pub async fn search(&self, collection: &str, request: SearchRequest) -> Result<SearchResponse> { todo!() }
    /// Several searches.
    pub async fn search_batch(&self, collection: &str, requests: Vec<SearchRequest>) -> Result<Vec<SearchResponse>> { todo!() }
    /// Runs pending index maintenance (splits, merges, reassignment, cleanup) to completion.
    /// Maintenance also runs in the background; this is for tests and bulk loads.
    pub async fn maintain(&self, collection: &str) -> Result<()> { todo!() }
    /// Flushes and closes.
    pub async fn close(&self) -> Result<()> { todo!() }
}
