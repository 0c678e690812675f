//! Posting lists: which lists a vector is stored in (its nearest centroid plus
//! boundary replicas), and the entries of a list (internal id and the vector's code).

use std::collections::HashSet;

use crate::error::Result;
use crate::index::centroids::{CentroidIndex, Rank};
use crate::index::distance::l2_sq;
use crate::serde::{posting, vector};
use crate::storage::{Collection, View};

/// How many nearest centroids are considered when choosing a vector's posting lists.
const REPLICA_CANDIDATES: usize = 8;

impl Collection {
    /// The posting lists a vector is stored in: its nearest centroid, plus further
    /// centroids nearly as near that are not "behind" an already chosen one (SPANN's
    /// relative-neighbourhood rule), at most `max_replicas`.
    pub(crate) fn assign(&self, centroids: &CentroidIndex, v: &[f32]) -> Vec<u32> {
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
    pub(crate) fn likely_postings(&self, view: &View, rec: &vector::StoredVector) -> Vec<u32> {
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

    pub(crate) fn payload(&self, view: &View, v: &[f32], out: &mut Vec<u8>) {
        match &view.state.quantizer {
            Some(q) => q.encode_into(v, out),
            None => posting::f32_payload(v, out),
        }
    }

    pub(crate) fn decode_payload(&self, view: &View, payload: &[u8], out: &mut Vec<f32>) {
        match &view.state.quantizer {
            Some(q) => q.decode_into(payload, out),
            None => posting::read_f32_payload(payload, out),
        }
    }

    /// Decodes a posting list's live entries, first occurrence of each id.
    pub(crate) fn live_entries(&self, view: &View, value: &[u8]) -> Result<(Vec<u32>, Vec<f32>)> {
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

    pub(crate) fn encode_entries(&self, view: &View, ids: &[u32], vecs: &[f32]) -> Vec<u8> {
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
}
