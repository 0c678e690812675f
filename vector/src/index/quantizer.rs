//! 8-bit scalar quantization of posting-list vectors.
//!
//! Each dimension `i` has a range `[min_i, min_i + 255·scale_i]`, trained on the data the
//! first clustering sees (the 0.1st to 99.9th percentile, widened by 5%); a component is
//! stored as `round((x − min_i) / scale_i)` clamped to `0..=255`. Scanning compares the
//! query with codes; the best candidates are then re-ranked with their exact vectors,
//! so the quantization error costs candidates, not accuracy of the final scores.

use crate::index::distance;
use crate::model::Metric;

/// Per-dimension affine 8-bit quantizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantizer {
    /// The lower end of each dimension's range.
    pub min: Vec<f32>,
    /// The width of one code step in each dimension (> 0).
    pub scale: Vec<f32>,
}

/// A query prepared for scanning codes.
#[derive(Debug, Clone)]
pub enum CodeQuery {
    /// Squared L2: the query in code space and the squared scales.
    L2 {
        /// `(q − min) / scale`.
        q: Vec<f32>,
        /// `scale²`.
        w: Vec<f32>,
    },
    /// Negative dot product: `−(c + Σ qs·code)`.
    Dot {
        /// `q · scale`.
        qs: Vec<f32>,
        /// `Σ q · min`.
        c: f32,
    },
}

impl CodeQuery {
    /// The approximate internal distance (smaller is nearer) to a coded vector.
    #[inline]
    pub fn distance(&self, codes: &[u8]) -> f32 {
        match self {
            CodeQuery::L2 { q, w } => distance::l2_sq_codes(q, w, codes),
            CodeQuery::Dot { qs, c } => -(c + distance::dot_codes(qs, codes)),
        }
    }
}

impl Quantizer {
    /// Trains ranges on `vectors` (row-major, `dim` columns).
    pub fn train(vectors: &[f32], dim: usize) -> Self {
        let n = vectors.len().checked_div(dim).unwrap_or(0);
        let mut min = vec![0f32; dim];
        let mut scale = vec![1f32 / 255.0; dim];
        if n == 0 {
            return Self { min, scale };
        }
        let mut column = Vec::with_capacity(n);
        for d in 0..dim {
            column.clear();
            column.extend((0..n).map(|r| vectors[r * dim + d]));
            column.sort_unstable_by(f32::total_cmp);
            let lo = column[(n - 1) / 1000];
            let hi = column[n - 1 - (n - 1) / 1000];
            let width = (hi - lo).max(1e-6 * (1.0 + hi.abs().max(lo.abs())));
            let lo = lo - width * 0.025;
            let width = width * 1.05;
            min[d] = lo;
            scale[d] = width / 255.0;
        }
        Self { min, scale }
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.min.len()
    }

    /// Appends the codes of `v` to `out`.
    pub fn encode_into(&self, v: &[f32], out: &mut Vec<u8>) {
        out.extend(v.iter().zip(&self.min).zip(&self.scale).map(|((x, m), s)| {
            let c = ((x - m) / s).round();
            c.clamp(0.0, 255.0) as u8
        }));
    }

    /// The vector a code stands for.
    pub fn decode_into(&self, codes: &[u8], out: &mut Vec<f32>) {
        out.extend(
            codes
                .iter()
                .zip(&self.min)
                .zip(&self.scale)
                .map(|((c, m), s)| m + *c as f32 * s),
        );
    }

    /// Prepares `query` for [`CodeQuery::distance`] under `metric` (cosine queries are
    /// already normalised and use the dot product).
    pub fn prepare(&self, metric: Metric, query: &[f32]) -> CodeQuery {
        match metric {
            Metric::L2 => CodeQuery::L2 {
                q: query
                    .iter()
                    .zip(&self.min)
                    .zip(&self.scale)
                    .map(|((x, m), s)| (x - m) / s)
                    .collect(),
                w: self.scale.iter().map(|s| s * s).collect(),
            },
            Metric::Cosine | Metric::Dot => CodeQuery::Dot {
                qs: query.iter().zip(&self.scale).map(|(x, s)| x * s).collect(),
                c: distance::dot(query, &self.min),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn should_approximate_distances_within_quantization_error() {
        let dim = 16;
        let data: Vec<f32> = (0..dim * 200)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let q = Quantizer::train(&data, dim);
        let query: Vec<f32> = (0..dim).map(|i| i as f32 / 3.0).collect();
        let prepared = q.prepare(Metric::L2, &query);
        for row in data.chunks(dim).take(50) {
            let mut codes = Vec::new();
            q.encode_into(row, &mut codes);
            let exact = distance::l2_sq(&query, row);
            let approx = prepared.distance(&codes);
            assert!(
                (exact - approx).abs() < 0.05 * exact.max(1.0),
                "{exact} vs {approx}"
            );
            let mut back = Vec::new();
            q.decode_into(&codes, &mut back);
            for (a, b) in back.iter().zip(row) {
                assert!((a - b).abs() <= q.scale[0] * 0.6 + 1e-4);
            }
        }
        let dp = q.prepare(Metric::Dot, &query);
        let mut codes = Vec::new();
        q.encode_into(&data[..dim], &mut codes);
        let exact = -distance::dot(&query, &data[..dim]);
        assert!((dp.distance(&codes) - exact).abs() < 0.05 * exact.abs().max(1.0));
    }
}
