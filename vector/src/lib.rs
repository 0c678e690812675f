//! # opendata-vector
//!
//! SPANN-style approximate nearest-neighbour search on object storage: each collection
//! keeps its centroids in memory and its posting lists (the vectors of each cluster) in
//! SlateDB, so a collection can be far larger than memory.
//!
//! - **Index.** The first clustering is balanced k-means over the collection's first
//!   records; after that, posting lists that grow too large are split with balanced
//!   2-means and nearby vectors are reassigned (SPFresh's LIRE), lists that shrink are
//!   merged into their neighbours, and dead entries are cleaned out. A vector near
//!   several centroids is stored in each of their lists (boundary replication).
//! - **Search.** Rank centroids, prune far ones, scan the nearest `nprobe` posting lists
//!   (8-bit quantized codes), re-rank the best candidates exactly.
//! - **Filters.** Roaring-bitmap indexes per attribute value; a selective filter is
//!   answered by an exact scan of its matching set, others by filtered probing.
//! - **Durability.** Writes go through the group-commit path; an acknowledged write
//!   is durable and visible to search.
//!
//! The crate's parts: [`db`] (the collections of one database), `storage` (a
//! collection's state, its write path and a replica's refresh), [`index`] (centroids,
//! quantizer, k-means, distance kernels, posting lists), `search` (plans, probing,
//! re-ranking, recall calibration), `maintenance` (splits, merges, clean-up), [`filter`]
//! (parsing and evaluation) and [`serde`] (the stored records). The HTTP API is an
//! adapter in the server's API layer.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use opendata_common::{StorageConfig, StorageRoot, Durability};
//! use opendata_vector::{CollectionSpec, Metric, SearchRequest, VectorConfig, VectorDb, VectorRecord};
//!
//! let root = StorageRoot::new(StorageConfig::in_memory()).unwrap();
//! let db = VectorDb::open(&root, VectorConfig::default()).await.unwrap();
//! db.create_collection(CollectionSpec::new("docs", 3, Metric::L2)).await.unwrap();
//! db.upsert("docs", vec![
//!     VectorRecord::new("a", vec![0.0, 0.0, 1.0]),
//!     VectorRecord::new("b", vec![1.0, 0.0, 0.0]),
//! ], Durability::Remote).await.unwrap();
//! let found = db.search("docs", SearchRequest::new(vec![0.9, 0.0, 0.1], 1)).await.unwrap();
//! assert_eq!(found.hits[0].id, "b");
//! db.close().await.unwrap();
//! # });
//! ```

pub mod config;
pub mod db;
pub mod error;
pub mod filter;
pub mod index;
pub mod lifecycle;
mod maintenance;
pub mod model;
mod search;
pub mod serde;
mod storage;

pub use config::VectorConfig;
pub use db::VectorDb;
pub use error::{Error, Result};
pub use filter::Filter;
pub use lifecycle::VectorHandle;
pub use model::*;
