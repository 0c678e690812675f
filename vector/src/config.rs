//! Settings of the vector database (`[vector]` in the server's TOML).

use serde::{Deserialize, Serialize};

/// Index and search settings, shared by every collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorConfig {
    /// Records a collection holds as one flat list, searched exactly, before the first
    /// balanced clustering picks its centroids.
    pub initial_build_size: usize,
    /// The posting-list size clustering aims for.
    pub target_posting_size: usize,
    /// A posting list with more entries than this is split.
    pub max_posting_size: usize,
    /// A posting list with fewer live entries than this is merged into its neighbours.
    pub min_posting_size: usize,
    /// The most posting lists one vector is stored in (boundary replication).
    pub max_replicas: usize,
    /// A vector is also stored in a further posting list when its distance to that
    /// centroid is within this factor of its distance to the nearest one.
    pub replica_distance_factor: f32,
    /// Posting lists probed when a search names neither `nprobe` nor a recall target.
    pub default_nprobe: usize,
    /// Query-time pruning: posting lists whose centroid is farther than this factor times
    /// the nearest centroid's distance are not probed.
    pub prune_distance_factor: f32,
    /// Candidates re-ranked with exact distances, as a multiple of `k`.
    pub rerank_factor: usize,
    /// A filter matching at most this many records is answered by an exact scan of
    /// the matching set instead of probing.
    pub exact_filter_limit: u64,
    /// Whether posting lists carry 8-bit scalar-quantized codes (scanned, then
    /// re-ranked exactly) rather than full vectors.
    pub quantize: bool,
    /// Bytes of the in-process cache of posting lists and vector records (shared by
    /// every collection; 0 disables it). A cache, not part of the index: misses read
    /// storage.
    pub read_cache_bytes: u64,
}

impl Default for VectorConfig {
    fn default() -> Self {
        Self {
            initial_build_size: 16_384,
            target_posting_size: 256,
            max_posting_size: 512,
            min_posting_size: 48,
            max_replicas: 4,
            replica_distance_factor: 1.15,
            default_nprobe: 16,
            prune_distance_factor: 4.0,
            rerank_factor: 4,
            exact_filter_limit: 2_048,
            quantize: true,
            read_cache_bytes: 512 * 1024 * 1024,
        }
    }
}
