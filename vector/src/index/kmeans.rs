//! Balanced k-means: the clustering that picks centroids.
//!
//! Lloyd iterations, except that the assignment step charges each cluster for its
//! size: a point goes to the cluster minimising `‖x − c‖² + λ·size`, with sizes counted
//! as the pass assigns points in a shuffled order, and `λ` set from the data so the
//! penalty of a cluster at its fair share (`n/k`) equals `balance` times the mean
//! distance to the nearest centroid. Seeds come from k-means++ on a sample. Posting
//! lists of similar length keep search cost predictable and make splits rare.

use crate::index::distance::l2_sq;

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The result of clustering.
#[derive(Debug, Clone)]
pub struct Clustering {
    /// `k` centroids, row-major.
    pub centroids: Vec<f32>,
    /// The cluster of each point.
    pub assignment: Vec<u32>,
}

/// Clusters `n = data.len() / dim` points into `k` balanced clusters.
pub fn balanced_kmeans(
    data: &[f32],
    dim: usize,
    k: usize,
    iterations: usize,
    balance: f32,
    seed: u64,
) -> Clustering {
    let n = data.len() / dim.max(1);
    let k = k.clamp(1, n.max(1));
    let mut rng = Rng::new(seed);
    if n == 0 {
        return Clustering {
            centroids: Vec::new(),
            assignment: Vec::new(),
        };
    }
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let mut centroids = seed_plus_plus(data, dim, k, &mut rng);
    let mut assignment = vec![0u32; n];
    let mut order: Vec<usize> = (0..n).collect();
    let mut sizes = vec![0usize; k];
    let mut dists = vec![0f32; k];
    let fair = n as f32 / k as f32;
    for iter in 0..iterations.max(1) {
        // Shuffle so no cluster is favoured by the order points are seen in.
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        // λ from the current mean nearest distance, measured on a sample.
        let sample = n.min(512);
        let mut mean_nearest = 0f64;
        for &i in order.iter().take(sample) {
            let x = row(i);
            let best = (0..k)
                .map(|j| l2_sq(x, &centroids[j * dim..(j + 1) * dim]))
                .fold(f32::INFINITY, f32::min);
            mean_nearest += best as f64;
        }
        let mean_nearest = (mean_nearest / sample as f64) as f32;
        let lambda = if k > 1 {
            balance * mean_nearest / fair
        } else {
            0.0
        };
        sizes.iter_mut().for_each(|s| *s = 0);
        let mut changed = 0usize;
        for &i in &order {
            let x = row(i);
            for (j, d) in dists.iter_mut().enumerate() {
                *d = l2_sq(x, &centroids[j * dim..(j + 1) * dim]);
            }
            let mut best = 0usize;
            let mut best_cost = f32::INFINITY;
            for j in 0..k {
                let cost = dists[j] + lambda * sizes[j] as f32;
                if cost < best_cost {
                    best_cost = cost;
                    best = j;
                }
            }
            sizes[best] += 1;
            if assignment[i] != best as u32 {
                changed += 1;
                assignment[i] = best as u32;
            }
        }
        // Update step.
        let mut sums = vec![0f64; k * dim];
        for (i, a) in assignment.iter().enumerate() {
            let c = *a as usize;
            for (s, x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row(i)) {
                *s += *x as f64;
            }
        }
        for j in 0..k {
            if sizes[j] == 0 {
                // Re-seed an empty cluster with a random point of the largest one.
                let largest = (0..k).max_by_key(|&c| sizes[c]).unwrap_or(0);
                let members: Vec<usize> = (0..n)
                    .filter(|&i| assignment[i] as usize == largest)
                    .collect();
                if let Some(&p) = members.get(rng.below(members.len().max(1))) {
                    centroids[j * dim..(j + 1) * dim].copy_from_slice(row(p));
                }
                continue;
            }
            for d in 0..dim {
                centroids[j * dim + d] = (sums[j * dim + d] / sizes[j] as f64) as f32;
            }
        }
        if iter > 0 && changed == 0 {
            break;
        }
    }
    Clustering {
        centroids,
        assignment,
    }
}

/// k-means++ seeding on a sample of at most `64·k` points.
fn seed_plus_plus(data: &[f32], dim: usize, k: usize, rng: &mut Rng) -> Vec<f32> {
    let n = data.len() / dim;
    let sample: Vec<usize> = if n <= 64 * k {
        (0..n).collect()
    } else {
        (0..64 * k).map(|_| rng.below(n)).collect()
    };
    let row = |i: usize| &data[i * dim..(i + 1) * dim];
    let mut centroids = Vec::with_capacity(k * dim);
    let first = sample[rng.below(sample.len())];
    centroids.extend_from_slice(row(first));
    let mut nearest: Vec<f32> = sample.iter().map(|&i| l2_sq(row(i), row(first))).collect();
    while centroids.len() < k * dim {
        let total: f64 = nearest.iter().map(|d| *d as f64).sum();
        let pick = if total <= 0.0 {
            sample[rng.below(sample.len())]
        } else {
            let mut target = rng.unit() * total;
            let mut chosen = sample[sample.len() - 1];
            for (s, d) in sample.iter().zip(&nearest) {
                target -= *d as f64;
                if target <= 0.0 {
                    chosen = *s;
                    break;
                }
            }
            chosen
        };
        let c = row(pick).to_vec();
        for (s, d) in sample.iter().zip(nearest.iter_mut()) {
            *d = d.min(l2_sq(row(*s), &c));
        }
        centroids.extend_from_slice(&c);
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_find_separated_clusters_with_balanced_sizes() {
        let dim = 4;
        let mut rng = Rng::new(7);
        let mut data = Vec::new();
        for c in 0..4 {
            for _ in 0..250 {
                for d in 0..dim {
                    let centre = if d == c { 100.0 } else { 0.0 };
                    data.push(centre + rng.unit() as f32);
                }
            }
        }
        let out = balanced_kmeans(&data, dim, 4, 20, 1.0, 1);
        let mut sizes = [0usize; 4];
        for (i, a) in out.assignment.iter().enumerate() {
            sizes[*a as usize] += 1;
            // Every point shares a cluster with the other points of its true cluster.
            assert_eq!(*a, out.assignment[(i / 250) * 250]);
        }
        assert!(sizes.iter().all(|s| *s == 250), "{sizes:?}");
    }

    #[test]
    fn should_balance_one_dense_blob() {
        let dim = 2;
        let mut rng = Rng::new(3);
        let data: Vec<f32> = (0..2000).map(|_| rng.unit() as f32).collect();
        let out = balanced_kmeans(&data, dim, 8, 15, 1.0, 2);
        let mut sizes = [0usize; 8];
        for a in &out.assignment {
            sizes[*a as usize] += 1;
        }
        let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(*hi <= 2 * *lo, "{sizes:?}");
    }
}
