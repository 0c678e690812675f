//! A bounded in-process cache of posting lists and vector records.
//!
//! A SlateDB point read builds an iterator over every memtable and level, which costs
//! several microseconds even when every block is in SlateDB's block cache; a search
//! reads a few dozen records, so this cache keeps recently read values by key. It is
//! a cache, not part of the index: it is bounded (`[vector] read_cache_bytes`),
//! evicts at random when full, and a miss reads storage.
//!
//! The writer invalidates every key it writes right after the write is applied. A
//! read that raced with a write must not put the old value back: each shard has a
//! generation, bumped by every invalidation, and a value read from storage is only
//! inserted if its shard's generation did not move while it was being read.

use std::collections::HashMap;
use std::hash::BuildHasher;

use bytes::Bytes;
use parking_lot::Mutex;

const SHARDS: usize = 32;

struct Shard {
    map: HashMap<Bytes, Bytes, foldhash::fast::RandomState>,
    bytes: usize,
    generation: u64,
}

/// The cache.
pub struct ReadCache {
    shards: Vec<Mutex<Shard>>,
    shard_capacity: usize,
    hasher: foldhash::fast::RandomState,
}

impl ReadCache {
    /// A cache of at most `capacity` bytes (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::default(),
                        bytes: 0,
                        generation: 0,
                    })
                })
                .collect(),
            shard_capacity: capacity / SHARDS,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// The cached value of `key`, or the shard generation to pass to [`insert`](Self::insert).
    pub fn get(&self, key: &[u8]) -> Result<Bytes, u64> {
        let shard = self.shard(key).lock();
        match shard.map.get(key) {
            Some(v) => Ok(v.clone()),
            None => Err(shard.generation),
        }
    }

    /// Caches `value`, read from storage when the shard was at `generation`.
    pub fn insert(&self, key: Bytes, value: Bytes, generation: u64) {
        if self.shard_capacity == 0 || value.len() + key.len() > self.shard_capacity / 4 {
            return;
        }
        let mut shard = self.shard(&key).lock();
        if shard.generation != generation {
            return;
        }
        let size = key.len() + value.len() + 64;
        while shard.bytes + size > self.shard_capacity {
            let Some(victim) = shard.map.keys().next().cloned() else {
                break;
            };
            if let Some(v) = shard.map.remove(&victim) {
                shard.bytes -= victim.len() + v.len() + 64;
            }
        }
        if let Some(old) = shard.map.insert(key.clone(), value) {
            shard.bytes -= key.len() + old.len() + 64;
        }
        shard.bytes += size;
    }

    /// Forgets `key`.
    pub fn invalidate(&self, key: &[u8]) {
        let mut shard = self.shard(key).lock();
        shard.generation += 1;
        if let Some(v) = shard.map.remove(key) {
            shard.bytes -= key.len() + v.len() + 64;
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        for s in &self.shards {
            let mut shard = s.lock();
            shard.generation += 1;
            shard.map.clear();
            shard.bytes = 0;
        }
    }

    /// Bytes cached.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_not_reinsert_a_value_read_before_an_invalidation() {
        let cache = ReadCache::new(1 << 20);
        let key = Bytes::from_static(b"k");
        let generation = cache.get(&key).unwrap_err();
        cache.invalidate(&key);
        cache.insert(key.clone(), Bytes::from_static(b"old"), generation);
        assert!(cache.get(&key).is_err());
        let generation = cache.get(&key).unwrap_err();
        cache.insert(key.clone(), Bytes::from_static(b"new"), generation);
        assert_eq!(cache.get(&key).unwrap(), Bytes::from_static(b"new"));
    }

    #[test]
    fn should_stay_within_capacity() {
        let cache = ReadCache::new(32 * 4096);
        for i in 0..10_000u32 {
            let key = Bytes::copy_from_slice(&i.to_be_bytes());
            let g = cache.get(&key).unwrap_err();
            cache.insert(key, Bytes::from(vec![0u8; 100]), g);
        }
        assert!(cache.bytes() <= 32 * 4096);
        assert!(cache.bytes() > 16 * 4096);
    }
}
