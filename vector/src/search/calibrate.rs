//! Recall calibration: recall measured per `nprobe` on a sample of stored vectors
//! against exact answers, so a search can ask for a recall target.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use opendata_common::task::spawn_supervised;

use crate::error::Result;
use crate::serde::{self as keys, vector};
use crate::storage::Collection;

/// Recall measured per `nprobe` on a sample of the collection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Calibration {
    pub(crate) postings: usize,
    pub(crate) curve: Vec<(usize, f64)>,
}

impl Collection {
    /// Starts measuring recall per nprobe in the background, if it is stale.
    pub fn calibrate_in_background(self: &Arc<Self>) {
        if self.calibrating.swap(true, Ordering::Relaxed) {
            return;
        }
        let me = self.clone();
        spawn_supervised("vector recall calibration", &self.health, async move {
            if let Err(e) = me.calibrate().await {
                tracing::warn!(collection = %me.spec.name, error = %e, "recall calibration failed");
            }
            me.calibrating.store(false, Ordering::Relaxed);
        });
    }

    /// The measured recall per nprobe (empty until calibrated).
    pub fn calibration_curve(&self) -> Vec<(usize, f64)> {
        self.calibration.read().curve.clone()
    }

    /// Measures recall per `nprobe` on a sample of stored vectors (each used as a query
    /// with itself excluded), against exact results from a full scan.
    pub async fn calibrate(&self) -> Result<()> {
        let view = self.view();
        if !view.state.clustered {
            return Ok(());
        }
        {
            let cal = self.calibration.read();
            let n = view.centroids.len();
            if !cal.curve.is_empty() && cal.postings * 4 / 5 <= n && n <= cal.postings * 5 / 4 {
                return Ok(());
            }
        }
        let dim = self.spec.dimension as usize;
        let live: Vec<u32> = self.live.read().iter().collect();
        if live.len() < 100 {
            return Ok(());
        }
        let mut rng = crate::index::kmeans::Rng::new(live.len() as u64);
        let sample: Vec<u32> = (0..32).map(|_| live[rng.below(live.len())]).collect();
        let values = self.fetch_values(&sample).await?;
        let mut queries: Vec<(u32, Vec<f32>)> = Vec::new();
        for (id, v) in sample.iter().zip(values) {
            if let Some(v) = v {
                let mut vec = Vec::with_capacity(dim);
                vector::decode_head(&v, dim, &mut vec)?;
                queries.push((*id, vec));
            }
        }
        let k = 10;
        let mut truth: Vec<Vec<(f32, u32)>> = vec![Vec::new(); queries.len()];
        let (start, end) = keys::type_range(self.id, keys::VECTOR);
        let mut iter = self.reader.scan(start..end).await?;
        let live_set = self.live.read().clone();
        let mut v = Vec::with_capacity(dim);
        while let Some(kv) = iter.next().await.map_err(opendata_common::Error::from)? {
            let iid = keys::key_u32(&kv.key)?;
            if !live_set.contains(iid) {
                continue;
            }
            v.clear();
            vector::decode_head(&kv.value, dim, &mut v)?;
            for (qi, (qid, q)) in queries.iter().enumerate() {
                if *qid == iid {
                    continue;
                }
                let d = self.exact_distance(q, &v);
                let t = &mut truth[qi];
                if t.len() < k || d < t[t.len() - 1].0 {
                    let pos = t.partition_point(|x| x.0 <= d);
                    t.insert(pos, (d, iid));
                    t.truncate(k);
                }
            }
        }
        let mut curve = Vec::new();
        let total = view.centroids.len();
        let mut nprobe = 1;
        loop {
            let mut hit = 0usize;
            let mut all = 0usize;
            for (qi, (qid, q)) in queries.iter().enumerate() {
                let (res, _) = self.probe(&view, q, k + 1, nprobe, None).await?;
                let found: HashSet<u32> = res.iter().map(|r| r.id).filter(|id| id != qid).collect();
                all += truth[qi].len();
                hit += truth[qi].iter().filter(|t| found.contains(&t.1)).count();
            }
            let recall = hit as f64 / all.max(1) as f64;
            curve.push((nprobe, recall));
            if recall >= 0.995 || nprobe >= total || nprobe >= 1024 {
                break;
            }
            nprobe = (nprobe * 3).div_ceil(2).max(nprobe + 1);
        }
        *self.calibration.write() = Calibration {
            postings: total,
            curve,
        };
        Ok(())
    }
}
