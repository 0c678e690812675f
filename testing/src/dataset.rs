//! Synthetic data sets and exact answers, for measuring recall and speed.
//!
//! - [`Clustered`]: a deterministic generator of clustered vectors. Every vector is a
//!   function of the seed, its stream (base or queries) and its index alone, so data
//!   sets are reproducible, can be generated in parallel and any vector can be
//!   regenerated on its own.
//! - [`exact_knn`]: exact L2 nearest neighbours by brute force, over every core,
//!   optionally restricted to the base vectors a predicate keeps.
//! - [`Neighbours::recall`]: recall@k of approximate results against them.
//! - [`write_fvecs`], [`write_ivecs`], [`write_npy_f32`], [`write_npy_i32`]: the
//!   `.fvecs`/`.ivecs` (TEXMEX) and NumPy `.npy` formats, so other tools (faiss) can
//!   be run on the very same data.
//!
//! # The clustered distribution
//!
//! `clusters` clusters (by default 2·√n) of unequal sizes (log-normal weights). Cluster
//! centres are drawn around √clusters group centres, so clusters of one group sit close
//! together and overlap heavily. Each cluster is a Gaussian on its own random subspace of
//! 16 to 48 dimensions (real embeddings have an intrinsic dimension well below their
//! dimension) with a spread of its own (log-normal around a common scale), plus an
//! isotropic Gaussian noise of half that spread in every dimension. An inverted-file
//! index over such data must probe several lists for high recall: a query's neighbours
//! straddle the cells that cut through its group of overlapping clusters. (With
//! 1,000,000 × 128 and faiss's IndexIVFFlat at 4,000 lists, recall@10 is about 0.5 at
//! nprobe 1, 0.96 at 16 and 0.99 at 32: see docs/benchmarks.md.)
//!
//! Queries come from the same distribution, drawn from a separate stream: they are not
//! copies of base vectors. Each base vector also gets an integer attribute, its
//! [`bucket`](Clustered::bucket) in `0..100`, drawn independently of its position, so a
//! filter `bucket == b` keeps about 1% of the vectors spread over every cluster.

use std::io::{self, BufWriter, Write};
use std::path::Path;

/// The generator's name and version: bumped whenever the data it draws changes.
pub const GENERATOR: &str = "clustered-1";

/// The number of buckets [`Clustered::bucket`] draws from.
pub const BUCKETS: u32 = 100;

/// The smallest and largest dimension of a cluster's subspace.
const MIN_RANK: usize = 16;
const MAX_RANK: usize = 48;
/// The spread of cluster centres around their group's centre, per component.
const CENTRE_SPREAD: f32 = 0.2;
/// The common scale of cluster spreads (per subspace component).
const CLUSTER_SCALE: f32 = 0.45;
/// The isotropic noise, relative to the cluster's spread.
const NOISE: f32 = 0.5;

const STREAM_MODEL: u64 = 0x6d6f_6465_6c00_0000;
const STREAM_BASE: u64 = 0x6261_7365_0000_0000;
const STREAM_QUERY: u64 = 0x7175_6572_7900_0000;
const STREAM_BUCKET: u64 = 0x6275_636b_6574_0000;

/// One step of SplitMix64: a well-mixed 64-bit hash of `x`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small, fast, seeded pseudo-random generator (xoshiro256**), with uniform and
/// Gaussian draws. Not for cryptography.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    /// A generator seeded with `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut s = [0u64; 4];
        for slot in &mut s {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            *slot = splitmix64(x);
        }
        Self { s, spare: None }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A standard normal draw (Marsaglia's polar method).
    pub fn gaussian(&mut self) -> f64 {
        if let Some(g) = self.spare.take() {
            return g;
        }
        loop {
            let u = 2.0 * self.next_f64() - 1.0;
            let v = 2.0 * self.next_f64() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let m = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * m);
                return u * m;
            }
        }
    }
}

/// The parameters of a [`Clustered`] data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusteredSpec {
    /// The seed everything derives from.
    pub seed: u64,
    /// The number of base vectors.
    pub n: usize,
    /// The dimension.
    pub dim: usize,
    /// The number of natural clusters.
    pub clusters: usize,
}

impl ClusteredSpec {
    /// `n` vectors of `dim` components in the default 2·√n clusters.
    pub fn new(seed: u64, n: usize, dim: usize) -> Self {
        Self {
            seed,
            n,
            dim,
            clusters: default_clusters(n),
        }
    }
}

/// The default number of natural clusters for `n` vectors: 2·√n (2,000 for a million).
pub fn default_clusters(n: usize) -> usize {
    ((2.0 * (n as f64).sqrt()).round() as usize).clamp(1, n.max(1))
}

/// A deterministic clustered data set; see the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Clustered {
    spec: ClusteredSpec,
    /// `clusters × dim` centres.
    centres: Vec<f32>,
    /// `clusters × MAX_RANK × dim` subspace bases; cluster `c` uses its first `rank[c]` rows.
    bases: Vec<f32>,
    rank: Vec<usize>,
    sigma: Vec<f32>,
    /// Cumulative cluster weights, the last one 1.
    cumulative: Vec<f64>,
}

impl Clustered {
    /// Draws the clusters of `spec`.
    pub fn new(spec: ClusteredSpec) -> Self {
        assert!(spec.dim > 0, "dimension must be positive");
        let k = spec.clusters.max(1);
        let dim = spec.dim;
        let mut rng = Rng::new(spec.seed ^ STREAM_MODEL);
        let groups = ((k as f64).sqrt().round() as usize).max(1);
        let group_centres: Vec<f32> = (0..groups * dim).map(|_| rng.gaussian() as f32).collect();
        let mut centres = Vec::with_capacity(k * dim);
        let mut bases = vec![0f32; k * MAX_RANK * dim];
        let mut rank = Vec::with_capacity(k);
        let mut sigma = Vec::with_capacity(k);
        let mut weights = Vec::with_capacity(k);
        for c in 0..k {
            let g = rng.below(groups as u64) as usize;
            let gc = &group_centres[g * dim..(g + 1) * dim];
            centres.extend(gc.iter().map(|x| x + CENTRE_SPREAD * rng.gaussian() as f32));
            let r = MIN_RANK + rng.below((MAX_RANK - MIN_RANK + 1) as u64) as usize;
            let scale = 1.0 / (r as f64).sqrt();
            let basis = &mut bases[c * MAX_RANK * dim..(c * MAX_RANK + r) * dim];
            for x in basis {
                *x = (rng.gaussian() * scale) as f32;
            }
            rank.push(r);
            sigma.push(CLUSTER_SCALE * (0.35 * rng.gaussian()).exp() as f32);
            weights.push((0.5 * rng.gaussian()).exp());
        }
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        Self {
            spec,
            centres,
            bases,
            rank,
            sigma,
            cumulative,
        }
    }

    /// The parameters.
    pub fn spec(&self) -> ClusteredSpec {
        self.spec
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.spec.dim
    }

    /// The cluster base vector `i` belongs to.
    pub fn cluster_of(&self, i: usize) -> usize {
        let mut rng = Rng::new(point_seed(self.spec.seed, STREAM_BASE, i as u64));
        self.pick_cluster(&mut rng)
    }

    fn pick_cluster(&self, rng: &mut Rng) -> usize {
        let u = rng.next_f64();
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.cumulative.len() - 1)
    }

    fn point(&self, stream: u64, index: u64, out: &mut [f32]) {
        let dim = self.spec.dim;
        let mut rng = Rng::new(point_seed(self.spec.seed, stream, index));
        let c = self.pick_cluster(&mut rng);
        let sigma = self.sigma[c];
        out.copy_from_slice(&self.centres[c * dim..(c + 1) * dim]);
        for j in 0..self.rank[c] {
            let z = sigma * rng.gaussian() as f32;
            let row = &self.bases[(c * MAX_RANK + j) * dim..(c * MAX_RANK + j + 1) * dim];
            for (o, b) in out.iter_mut().zip(row) {
                *o += z * b;
            }
        }
        let noise = NOISE * sigma;
        for o in out.iter_mut() {
            *o += noise * rng.gaussian() as f32;
        }
    }

    /// Base vector `i`, written to `out` (`dim` components).
    pub fn base_vector(&self, i: usize, out: &mut [f32]) {
        self.point(STREAM_BASE, i as u64, out);
    }

    /// Query `i`, written to `out` (`dim` components).
    pub fn query_vector(&self, i: usize, out: &mut [f32]) {
        self.point(STREAM_QUERY, i as u64, out);
    }

    /// Every base vector, row after row (`n × dim`), generated on every core.
    pub fn base(&self) -> Vec<f32> {
        self.generate(STREAM_BASE, self.spec.n)
    }

    /// `count` queries, row after row (`count × dim`).
    pub fn queries(&self, count: usize) -> Vec<f32> {
        self.generate(STREAM_QUERY, count)
    }

    /// The bucket (`0..BUCKETS`) of base vector `i`.
    pub fn bucket(&self, i: usize) -> u32 {
        (splitmix64(point_seed(self.spec.seed, STREAM_BUCKET, i as u64)) % BUCKETS as u64) as u32
    }

    fn generate(&self, stream: u64, count: usize) -> Vec<f32> {
        let dim = self.spec.dim;
        let mut out = vec![0f32; count * dim];
        let threads = threads().min(count.div_ceil(1024)).max(1);
        let rows_per_thread = count.div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (t, chunk) in out.chunks_mut(rows_per_thread * dim).enumerate() {
                s.spawn(move || {
                    let first = t * rows_per_thread;
                    for (r, row) in chunk.chunks_exact_mut(dim).enumerate() {
                        self.point(stream, (first + r) as u64, row);
                    }
                });
            }
        });
        out
    }
}

fn point_seed(seed: u64, stream: u64, index: u64) -> u64 {
    splitmix64(splitmix64(seed ^ stream) ^ index)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Squared Euclidean distance.
#[inline]
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler keep them in vector registers.
    let mut acc = [0f32; 8];
    let (ac, ar) = a.split_at(a.len() / 8 * 8);
    let (bc, br) = b.split_at(ac.len());
    for (x, y) in ac.chunks_exact(8).zip(bc.chunks_exact(8)) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ar.iter().zip(br) {
        let d = x - y;
        sum += d * d;
    }
    sum
}

/// Exact nearest neighbours of every query: ids (indexes of base rows) and squared L2
/// distances, nearest first (ties by smaller id).
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbours {
    /// How many neighbours were asked for per query.
    pub k: usize,
    /// Per query, up to `k` base indexes, nearest first. Fewer than `k` only when fewer
    /// base vectors were eligible.
    pub ids: Vec<Vec<u32>>,
    /// Per query, the squared distances matching `ids`.
    pub distances: Vec<Vec<f32>>,
}

impl Neighbours {
    /// The number of queries.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Recall@`k` of `found` (ids, nearest first) for query `q`: the share of the `k`
    /// true nearest neighbours among the first `k` found. When fewer than `k` vectors
    /// were eligible, the share of those; 1 when none was.
    pub fn recall(&self, q: usize, found: &[u32], k: usize) -> f64 {
        assert!(
            k <= self.k,
            "ground truth holds {} neighbours, asked for {k}",
            self.k
        );
        let truth = &self.ids[q][..k.min(self.ids[q].len())];
        if truth.is_empty() {
            return 1.0;
        }
        let found = &found[..k.min(found.len())];
        let hits = truth.iter().filter(|t| found.contains(t)).count();
        hits as f64 / truth.len() as f64
    }

    /// The mean recall@`k` over every query; `found[q]` are query `q`'s results.
    pub fn mean_recall(&self, found: &[Vec<u32>], k: usize) -> f64 {
        assert_eq!(found.len(), self.len(), "one result list per query");
        if found.is_empty() {
            return 1.0;
        }
        let sum: f64 = found
            .iter()
            .enumerate()
            .map(|(q, f)| self.recall(q, f, k))
            .sum();
        sum / found.len() as f64
    }

    /// The ids as a `queries × k` row-major matrix, `-1` where a query has fewer than
    /// `k` neighbours (the layout of `.ivecs` and faiss results).
    pub fn id_matrix(&self) -> Vec<i32> {
        let mut out = vec![-1i32; self.len() * self.k];
        for (row, ids) in out.chunks_exact_mut(self.k.max(1)).zip(&self.ids) {
            for (o, id) in row.iter_mut().zip(ids) {
                *o = *id as i32;
            }
        }
        out
    }
}

/// Base rows scanned at a time by [`exact_knn`]: 512 rows of 128 floats fill 256 KiB,
/// which stays in a core's L2 cache while every query of a thread is compared with it.
const BLOCK_BYTES: usize = 256 * 1024;

/// The `k` exact nearest neighbours by L2 distance of every query (`queries` is
/// `nq × dim`, row-major) among the rows of `base` (`n × dim`) for which `keep(row)`
/// is true. Queries are shared out over every core; each thread walks the base in
/// cache-sized blocks, comparing each block with all its queries.
pub fn exact_knn<F>(base: &[f32], queries: &[f32], dim: usize, k: usize, keep: F) -> Neighbours
where
    F: Fn(usize) -> bool + Sync,
{
    assert!(dim > 0 && base.len().is_multiple_of(dim) && queries.len().is_multiple_of(dim));
    let n = base.len() / dim;
    let nq = queries.len() / dim;
    assert!(n <= u32::MAX as usize, "base too large for u32 ids");
    let mut results: Vec<TopK> = (0..nq).map(|_| TopK::new(k)).collect();
    if nq > 0 && k > 0 {
        let threads = threads().min(nq);
        let per_thread = nq.div_ceil(threads);
        let block_rows = (BLOCK_BYTES / (dim * 4)).max(1);
        let keep = &keep;
        std::thread::scope(|s| {
            for (t, tops) in results.chunks_mut(per_thread).enumerate() {
                let qs = &queries[t * per_thread * dim..(t * per_thread + tops.len()) * dim];
                s.spawn(move || {
                    let mut kept: Vec<usize> = Vec::with_capacity(block_rows);
                    for start in (0..n).step_by(block_rows) {
                        let end = (start + block_rows).min(n);
                        kept.clear();
                        kept.extend((start..end).filter(|&r| keep(r)));
                        if kept.is_empty() {
                            continue;
                        }
                        for (q, top) in qs.chunks_exact(dim).zip(tops.iter_mut()) {
                            for &r in &kept {
                                let d = l2_squared(q, &base[r * dim..(r + 1) * dim]);
                                top.offer(d, r as u32);
                            }
                        }
                    }
                });
            }
        });
    }
    let (ids, distances) = results
        .into_iter()
        .map(|t| t.items.into_iter().map(|(d, id)| (id, d)).unzip())
        .unzip();
    Neighbours { k, ids, distances }
}

/// The `k` smallest (distance, id) pairs seen, kept sorted; ties go to the smaller id.
struct TopK {
    k: usize,
    items: Vec<(f32, u32)>,
}

impl TopK {
    fn new(k: usize) -> Self {
        Self {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    #[inline]
    fn offer(&mut self, d: f32, id: u32) {
        if self.items.len() == self.k {
            let (wd, wid) = self.items[self.k - 1];
            if d > wd || (d == wd && id >= wid) {
                return;
            }
        }
        let at = self
            .items
            .partition_point(|&(xd, xid)| xd < d || (xd == d && xid < id));
        if self.items.len() == self.k {
            self.items.pop();
        }
        self.items.insert(at, (d, id));
    }
}

/// Writes `data` (rows of `dim` floats) as `.fvecs`: per row, the dimension as a
/// little-endian `i32`, then the components as little-endian `f32`.
pub fn write_fvecs(path: &Path, data: &[f32], dim: usize) -> io::Result<()> {
    write_vecs(path, dim, data.chunks_exact(dim.max(1)), |w, x: &f32| {
        w.write_all(&x.to_le_bytes())
    })
}

/// Writes `data` (rows of `dim` integers) as `.ivecs`: like `.fvecs` with `i32` components.
pub fn write_ivecs(path: &Path, data: &[i32], dim: usize) -> io::Result<()> {
    write_vecs(path, dim, data.chunks_exact(dim.max(1)), |w, x: &i32| {
        w.write_all(&x.to_le_bytes())
    })
}

fn write_vecs<'a, T: 'a>(
    path: &Path,
    dim: usize,
    rows: impl Iterator<Item = &'a [T]>,
    mut put: impl FnMut(&mut BufWriter<std::fs::File>, &T) -> io::Result<()>,
) -> io::Result<()> {
    let d = i32::try_from(dim).map_err(|_| io::Error::other("dimension too large"))?;
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    for row in rows {
        w.write_all(&d.to_le_bytes())?;
        for x in row {
            put(&mut w, x)?;
        }
    }
    w.flush()
}

/// Writes `data` as a NumPy `.npy` array of little-endian `f32` (`<f4`) with `shape`
/// (C order).
pub fn write_npy_f32(path: &Path, data: &[f32], shape: &[usize]) -> io::Result<()> {
    write_npy(path, "<f4", shape, data.len(), |w| {
        for x in data {
            w.write_all(&x.to_le_bytes())?;
        }
        Ok(())
    })
}

/// Writes `data` as a NumPy `.npy` array of little-endian `i32` (`<i4`) with `shape`.
pub fn write_npy_i32(path: &Path, data: &[i32], shape: &[usize]) -> io::Result<()> {
    write_npy(path, "<i4", shape, data.len(), |w| {
        for x in data {
            w.write_all(&x.to_le_bytes())?;
        }
        Ok(())
    })
}

fn write_npy(
    path: &Path,
    descr: &str,
    shape: &[usize],
    len: usize,
    body: impl FnOnce(&mut BufWriter<std::fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    if shape.iter().product::<usize>() != len {
        return Err(io::Error::other(format!(
            "shape {shape:?} does not hold {len} elements"
        )));
    }
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces and
    // ended by a newline to a multiple of 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let header_len =
        u16::try_from(header.len()).map_err(|_| io::Error::other("header too long"))?;
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&header_len.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    body(&mut w)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Clustered {
        Clustered::new(ClusteredSpec {
            seed: 7,
            n: 3_000,
            dim: 20,
            clusters: 30,
        })
    }

    #[test]
    fn should_generate_the_same_data_from_the_same_seed() {
        let a = tiny();
        let b = tiny();
        let base = a.base();
        assert_eq!(base, b.base());
        assert_eq!(a.queries(50), b.queries(50));
        // Any vector can be regenerated on its own, whatever the threading.
        let mut row = vec![0f32; 20];
        for i in [0, 1, 1_234, 2_999] {
            a.base_vector(i, &mut row);
            assert_eq!(row, base[i * 20..(i + 1) * 20]);
        }
        let other = Clustered::new(ClusteredSpec {
            seed: 8,
            ..a.spec()
        });
        assert_ne!(base, other.base());
    }

    #[test]
    fn should_draw_queries_apart_from_base_vectors() {
        let d = tiny();
        let base = d.base();
        let queries = d.queries(100);
        for q in queries.chunks_exact(20) {
            assert!(base.chunks_exact(20).all(|b| b != q));
        }
    }

    #[test]
    fn should_spread_buckets_and_clusters() {
        let d = Clustered::new(ClusteredSpec::new(1, 100_000, 8));
        assert_eq!(d.spec().clusters, 632);
        let mut buckets = [0usize; BUCKETS as usize];
        for i in 0..100_000 {
            buckets[d.bucket(i) as usize] += 1;
        }
        // About 1,000 each; a 20% band is > 6 standard deviations.
        assert!(
            buckets.iter().all(|&c| (800..1200).contains(&c)),
            "{buckets:?}"
        );
        let mut sizes = vec![0usize; 632];
        for i in 0..20_000 {
            sizes[d.cluster_of(i)] += 1;
        }
        let used = sizes.iter().filter(|&&s| s > 0).count();
        assert!(used > 550, "{used} of 632 clusters used");
        let max = *sizes.iter().max().unwrap();
        assert!(
            max > 3 * 20_000 / 632,
            "cluster sizes should vary, max {max}"
        );
    }

    fn naive(
        base: &[f32],
        q: &[f32],
        dim: usize,
        k: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Vec<u32> {
        let mut all: Vec<(f64, u32)> = base
            .chunks_exact(dim)
            .enumerate()
            .filter(|(i, _)| keep(*i))
            .map(|(i, b)| {
                let d: f64 = b.iter().zip(q).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
                (d, i as u32)
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        all.into_iter().take(k).map(|(_, i)| i).collect()
    }

    #[test]
    fn should_match_a_naive_search() {
        let d = tiny();
        let base = d.base();
        let queries = d.queries(37);
        let truth = exact_knn(&base, &queries, 20, 10, |_| true);
        assert_eq!(truth.len(), 37);
        for (q, row) in queries.chunks_exact(20).enumerate() {
            assert_eq!(
                truth.ids[q],
                naive(&base, row, 20, 10, |_| true),
                "query {q}"
            );
            let dists = &truth.distances[q];
            assert!(dists.windows(2).all(|w| w[0] <= w[1]));
            let expect = l2_squared(row, &base[truth.ids[q][0] as usize * 20..][..20]);
            assert_eq!(dists[0], expect);
        }
        assert_eq!(truth.mean_recall(&truth.ids, 10), 1.0);
    }

    #[test]
    fn should_restrict_to_the_kept_rows() {
        let d = tiny();
        let base = d.base();
        let queries = d.queries(9);
        let keep = |i: usize| d.bucket(i) == 7;
        let truth = exact_knn(&base, &queries, 20, 10, keep);
        for (q, row) in queries.chunks_exact(20).enumerate() {
            assert!(truth.ids[q].iter().all(|&i| d.bucket(i as usize) == 7));
            assert_eq!(truth.ids[q], naive(&base, row, 20, 10, keep));
        }
        // Fewer eligible rows than k: all of them, and the matrix is padded.
        let few = exact_knn(&base, &queries, 20, 10, |i| i < 3);
        assert!(few.ids.iter().all(|ids| ids.len() == 3));
        assert_eq!(&few.id_matrix()[3..10], &[-1; 7]);
        assert_eq!(few.recall(0, &[2, 0, 1], 10), 1.0);
    }

    #[test]
    fn should_compute_recall() {
        let truth = Neighbours {
            k: 4,
            ids: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
            distances: vec![vec![0.0; 4], vec![0.0; 4]],
        };
        assert_eq!(truth.recall(0, &[4, 3, 9, 1], 4), 0.75);
        assert_eq!(truth.recall(0, &[1, 9], 2), 0.5);
        assert_eq!(truth.mean_recall(&[vec![1, 2, 3, 4], vec![]], 4), 0.5);
    }

    #[test]
    fn should_need_more_than_one_cluster_for_high_recall() {
        // The nearest neighbours of a query are not all in its own cluster.
        let d = Clustered::new(ClusteredSpec::new(3, 20_000, 32));
        let base = d.base();
        let queries = d.queries(50);
        let truth = exact_knn(&base, &queries, 32, 10, |_| true);
        let spread = truth
            .ids
            .iter()
            .filter(|ids| {
                let first = d.cluster_of(ids[0] as usize);
                ids.iter().any(|&i| d.cluster_of(i as usize) != first)
            })
            .count();
        assert!(
            spread >= 5,
            "only {spread} of 50 queries have neighbours in several clusters"
        );
    }

    #[test]
    fn should_write_npy_and_vecs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy_f32(&p, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + hlen + 24);
        assert_eq!(&bytes[10 + hlen..10 + hlen + 4], &1f32.to_le_bytes());

        let p = dir.path().join("b.npy");
        write_npy_i32(&p, &[1, 2, 3], &[3]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert!(
            std::str::from_utf8(&bytes[10..10 + hlen])
                .unwrap()
                .contains("'shape': (3,)")
        );
        assert!(write_npy_i32(&p, &[1, 2, 3], &[2, 2]).is_err());

        let p = dir.path().join("c.fvecs");
        write_fvecs(&p, &[1.0, 2.0, 3.0, 4.0], 2).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 2 * (4 + 8));
        assert_eq!(&bytes[..4], &2i32.to_le_bytes());
        assert_eq!(&bytes[12..16], &2i32.to_le_bytes());
        assert_eq!(&bytes[16..20], &3f32.to_le_bytes());

        let p = dir.path().join("d.ivecs");
        write_ivecs(&p, &[7, 8, 9], 3).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[12..16], &9i32.to_le_bytes());
    }
}
