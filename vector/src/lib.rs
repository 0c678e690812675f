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

mod cache;
pub mod centroids;
mod collection;
pub mod config;
pub mod dataset;
pub mod db;
pub mod distance;
pub mod error;
pub mod filter;
pub mod io;
pub mod kmeans;
pub mod model;
pub mod quantizer;
pub mod serde;
pub mod server;

pub use config::VectorConfig;
pub use db::VectorDb;
pub use error::{Error, Result};
pub use filter::Filter;
pub use model::*;
