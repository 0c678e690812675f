//! The in-memory centroid table and its two-level routing.
//!
//! Every posting list has a centroid. With more than [`GROUPING_THRESHOLD`] centroids,
//! the centroids are themselves clustered into about `√n` groups; a lookup ranks the
//! group centres first and then only the centroids of the nearest groups, until it has
//! looked at enough of them. A lookup then costs about `2·√n·16` distance computations
//! instead of `n`. New centroids (from splits) join their nearest group; the grouping is
//! redone when the table has grown or shrunk by half since it was made (a few
//! milliseconds of work on centroids only).

use std::collections::HashMap;

use crate::index::distance::{dot, l2_sq};
use crate::index::kmeans::balanced_kmeans;

/// Below this many centroids, lookups scan every centroid.
pub const GROUPING_THRESHOLD: usize = 1024;

/// How centroids are ranked against a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    /// Squared L2 distance.
    L2,
    /// Negative dot product.
    Dot,
}

impl Rank {
    #[inline]
    fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Rank::L2 => l2_sq(a, b),
            Rank::Dot => -dot(a, b),
        }
    }
}

/// An immutable table of centroids; changes make a new table.
#[derive(Debug, Clone, Default)]
pub struct CentroidIndex {
    dim: usize,
    ids: Vec<u32>,
    data: Vec<f32>,
    rows: HashMap<u32, usize>,
    group_centres: Vec<f32>,
    group_members: Vec<Vec<u32>>,
    grouped_at: usize,
}

impl CentroidIndex {
    /// A table of the given posting ids and centroids (row-major).
    pub fn new(dim: usize, ids: Vec<u32>, data: Vec<f32>) -> Self {
        let rows = ids.iter().enumerate().map(|(r, id)| (*id, r)).collect();
        let mut index = Self {
            dim,
            ids,
            data,
            rows,
            group_centres: Vec::new(),
            group_members: Vec::new(),
            grouped_at: 0,
        };
        index.regroup();
        index
    }

    fn regroup(&mut self) {
        let n = self.ids.len();
        self.grouped_at = n;
        self.group_centres.clear();
        self.group_members.clear();
        if n <= GROUPING_THRESHOLD {
            return;
        }
        let g = ((n as f64).sqrt().round() as usize).max(2);
        let clustering = balanced_kmeans(&self.data, self.dim, g, 8, 0.5, n as u64);
        self.group_centres = clustering.centroids;
        self.group_members = vec![Vec::new(); g];
        for (row, group) in clustering.assignment.iter().enumerate() {
            self.group_members[*group as usize].push(row as u32);
        }
    }

    /// The number of centroids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no centroids.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Every posting id.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The centroid of posting `id`.
    pub fn get(&self, id: u32) -> Option<&[f32]> {
        self.rows
            .get(&id)
            .map(|r| &self.data[r * self.dim..(r + 1) * self.dim])
    }

    /// Bytes of memory the table holds.
    pub fn memory_bytes(&self) -> usize {
        self.data.len() * 4
            + self.ids.len() * 4
            + self.rows.len() * 16
            + self.group_centres.len() * 4
            + self
                .group_members
                .iter()
                .map(|m| m.len() * 4 + 24)
                .sum::<usize>()
    }

    /// The `n` nearest centroids to `q` by `rank`, nearest first, as (posting id,
    /// distance). With grouping, at least `coverage` centroids are examined.
    pub fn nearest(&self, q: &[f32], n: usize, coverage: usize, rank: Rank) -> Vec<(u32, f32)> {
        let mut out: Vec<(u32, f32)> = Vec::new();
        if self.ids.is_empty() || n == 0 {
            return out;
        }
        let consider = |row: usize, out: &mut Vec<(u32, f32)>| {
            let d = rank.distance(q, &self.data[row * self.dim..(row + 1) * self.dim]);
            push_top(out, n, (self.ids[row], d));
        };
        if self.group_members.is_empty() || coverage >= self.ids.len() {
            for row in 0..self.ids.len() {
                consider(row, &mut out);
            }
        } else {
            let mut groups: Vec<(usize, f32)> = (0..self.group_members.len())
                .map(|g| {
                    (
                        g,
                        rank.distance(q, &self.group_centres[g * self.dim..(g + 1) * self.dim]),
                    )
                })
                .collect();
            groups.sort_unstable_by(|a, b| a.1.total_cmp(&b.1));
            let mut seen = 0usize;
            for (g, _) in groups {
                for &row in &self.group_members[g] {
                    consider(row as usize, &mut out);
                }
                seen += self.group_members[g].len();
                if seen >= coverage.max(n) {
                    break;
                }
            }
        }
        out
    }

    /// A new table without `removed` and with `added`.
    pub fn with_changes(&self, removed: &[u32], added: &[(u32, Vec<f32>)]) -> Self {
        let dim = self.dim;
        let mut ids = Vec::with_capacity(self.ids.len() + added.len());
        let mut data = Vec::with_capacity(self.data.len() + added.len() * dim);
        let mut old_to_new = vec![u32::MAX; self.ids.len()];
        for (row, id) in self.ids.iter().enumerate() {
            if removed.contains(id) {
                continue;
            }
            old_to_new[row] = ids.len() as u32;
            ids.push(*id);
            data.extend_from_slice(&self.data[row * dim..(row + 1) * dim]);
        }
        let first_added = ids.len();
        for (id, c) in added {
            ids.push(*id);
            data.extend_from_slice(c);
        }
        let n = ids.len();
        let regroup = self.group_members.is_empty() && n > GROUPING_THRESHOLD
            || n > self.grouped_at * 3 / 2
            || n < self.grouped_at / 2;
        if regroup {
            return Self::new(dim, ids, data);
        }
        let rows = ids.iter().enumerate().map(|(r, id)| (*id, r)).collect();
        let mut group_members: Vec<Vec<u32>> = self
            .group_members
            .iter()
            .map(|m| {
                m.iter()
                    .map(|r| old_to_new[*r as usize])
                    .filter(|r| *r != u32::MAX)
                    .collect()
            })
            .collect();
        if !group_members.is_empty() {
            for row in first_added..n {
                let c = &data[row * dim..(row + 1) * dim];
                let g = (0..group_members.len())
                    .min_by(|a, b| {
                        l2_sq(c, &self.group_centres[a * dim..(a + 1) * dim])
                            .total_cmp(&l2_sq(c, &self.group_centres[b * dim..(b + 1) * dim]))
                    })
                    .unwrap_or(0);
                group_members[g].push(row as u32);
            }
        }
        Self {
            dim,
            ids,
            data,
            rows,
            group_centres: self.group_centres.clone(),
            group_members,
            grouped_at: self.grouped_at,
        }
    }
}

/// Keeps the `n` smallest by distance in `out`, sorted.
#[inline]
fn push_top(out: &mut Vec<(u32, f32)>, n: usize, item: (u32, f32)) {
    if out.len() == n {
        if item.1 >= out[n - 1].1 {
            return;
        }
        out.pop();
    }
    let pos = out.partition_point(|x| x.1 <= item.1);
    out.insert(pos, item);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::kmeans::Rng;

    #[test]
    fn should_find_the_same_nearest_centroids_with_grouping() {
        let dim = 8;
        let n = 3000;
        let mut rng = Rng::new(5);
        let data: Vec<f32> = (0..n * dim).map(|_| rng.unit() as f32).collect();
        let index = CentroidIndex::new(dim, (0..n as u32).collect(), data.clone());
        assert!(!index.group_members.is_empty());
        let mut hits = 0;
        for _ in 0..50 {
            let q: Vec<f32> = (0..dim).map(|_| rng.unit() as f32).collect();
            let exact = index.nearest(&q, 10, usize::MAX, Rank::L2);
            let approx = index.nearest(&q, 10, 512, Rank::L2);
            hits += approx.iter().filter(|a| exact.contains(a)).count();
        }
        assert!(hits as f64 / 500.0 > 0.9, "{hits}");
        let changed = index.with_changes(&[0, 1], &[(5000, vec![0.5; dim])]);
        assert_eq!(changed.len(), n - 1);
        assert!(changed.get(0).is_none());
        assert_eq!(changed.get(5000).unwrap(), &[0.5; 8][..]);
        let all: usize = changed.group_members.iter().map(|m| m.len()).sum();
        assert_eq!(all, n - 1);
    }
}
