//! Search: the plan (flat scan, exact scan of a small filtered set, or probing the
//! nearest posting lists), the scan of quantized codes, and exact re-ranking.

pub(crate) mod calibrate;

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::future::try_join_all;
use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::index::centroids::Rank;
use crate::index::quantizer::CodeQuery;
use crate::model::{
    CheckedSearch, FieldSelection, SearchHit, SearchPlan, SearchRequest, SearchResponse,
    SearchStats,
};
use crate::serde::{self as keys, posting, vector};
use crate::storage::{Collection, View};

/// A candidate during a search: internal distance (smaller is nearer) and internal id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) dist: f32,
    pub(crate) id: u32,
}

/// The best `cap` candidates, unique by id.
pub(crate) struct TopK {
    pub(crate) cap: usize,
    pub(crate) items: Vec<Candidate>,
    pub(crate) worst: f32,
}

impl TopK {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            items: Vec::with_capacity(cap + 1),
            worst: f32::INFINITY,
        }
    }

    #[inline]
    pub(crate) fn would_accept(&self, dist: f32) -> bool {
        self.items.len() < self.cap || dist < self.worst
    }

    pub(crate) fn push(&mut self, c: Candidate) {
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

    pub(crate) fn into_sorted(mut self) -> Vec<Candidate> {
        self.items.sort_by(|a, b| a.dist.total_cmp(&b.dist));
        self.items
    }
}

/// A candidate after exact re-ranking, with its stored record.
pub(crate) struct Rescored {
    pub(crate) dist: f32,
    pub(crate) id: u32,
    pub(crate) value: Bytes,
}

pub(crate) fn push_rescored(top: &mut Vec<Rescored>, k: usize, item: Rescored) {
    if top.len() == k && item.dist >= top[k - 1].dist {
        return;
    }
    let pos = top.partition_point(|x| x.dist <= item.dist);
    top.insert(pos, item);
    top.truncate(k);
}

impl Collection {
    /// Nearest neighbours.
    pub async fn search(&self, checked: &CheckedSearch) -> Result<SearchResponse> {
        let req = checked.for_spec(&self.spec)?;
        let q = &req.vector;
        let filter = match &req.filter {
            Some(f) => Some(self.evaluate(f).await?),
            None => None,
        };
        let view = self.view();
        let (candidates, stats) = if !view.state.clustered {
            self.flat_scan(q, req.k, filter.as_ref()).await?
        } else if let Some(f) = filter
            .as_ref()
            .filter(|f| f.len() <= self.config.exact_filter_limit)
        {
            let c = self.exact_scan(q, req.k, f).await?;
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
            self.probe(&view, q, req.k, nprobe, filter.as_ref()).await?
        };
        let mut stats = stats;
        stats.filter_matches = filter.as_ref().map(|f| f.len());
        let hits = self.hits(candidates, req.k, &req.fields).await?;
        Ok(SearchResponse { hits, stats })
    }

    pub(crate) fn pick_nprobe(&self, req: &SearchRequest) -> usize {
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
    pub(crate) async fn flat_scan(
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
    pub(crate) async fn exact_scan(
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

    /// Probes the nearest posting lists, scans them, and re-ranks the best candidates
    /// with exact distances.
    pub(crate) async fn probe(
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

    pub(crate) async fn hits(
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
                    fields.select(rec.attributes),
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
}
