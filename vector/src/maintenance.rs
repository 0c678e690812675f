//! Index maintenance, run by a background task per collection: the first clustering,
//! splits of oversized posting lists with reassignment of nearby vectors (SPFresh's
//! LIRE), merges of undersized ones, and clean-up of dead entries.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::try_join_all;
use opendata_common::storage::WriteOps;

use crate::error::Result;
use crate::index::centroids::{CentroidIndex, Rank};
use crate::index::distance::l2_sq;
use crate::index::kmeans::balanced_kmeans;
use crate::index::quantizer::Quantizer;
use crate::serde::{self as keys, centroid, posting, state, vector};
use crate::storage::{Collection, PostingMeta, View, entry_size};

/// Neighbouring posting lists checked for reassignment after a split.
const REASSIGN_NEIGHBOURS: usize = 8;

impl Collection {
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

    /// Rewrites a posting list without its dead and duplicate entries.
    pub(crate) async fn rewrite(&self, p: u32) -> Result<bool> {
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
    pub(crate) async fn split(&self, p: u32) -> Result<bool> {
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
    pub(crate) async fn merge_posting(&self, p: u32) -> Result<bool> {
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
    pub(crate) async fn initial_build(&self) -> Result<()> {
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
            let mut rng = crate::index::kmeans::Rng::new(n as u64);
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
    pub(crate) async fn scan_vectors(&self, from: u32) -> Result<(Vec<u32>, Vec<f32>)> {
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
}
