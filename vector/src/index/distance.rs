//! Distance kernels: squared L2 and dot product on `f32`, and the same against 8-bit
//! scalar-quantized codes. Each kernel has a portable version written so the compiler
//! vectorises it (eight independent accumulators) and, on x86-64, an AVX2+FMA build of
//! the same code chosen at run time.
//!
//! This module is the workspace's one exception to `unsafe_code = "deny"`: calling a
//! `#[target_feature(enable = "avx2,fma")]` function is `unsafe`, and each call is made
//! only after `has_avx2()` confirmed the CPU has both features (see the `SAFETY`
//! comments). The kernels themselves are safe Rust.

#![allow(unsafe_code)]

/// Squared Euclidean distance.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { l2_sq_avx2(a, b) };
    }
    l2_sq_portable(a, b)
}

/// Dot product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// `Σ w[i] · (q[i] − c[i])²` where `c` are 8-bit codes: squared L2 against a quantized
/// vector, with the query already moved into code space and `w` the squared scales.
#[inline]
pub fn l2_sq_codes(q: &[f32], w: &[f32], codes: &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { l2_sq_codes_avx2(q, w, codes) };
    }
    l2_sq_codes_portable(q, w, codes)
}

/// `Σ q[i] · c[i]` where `c` are 8-bit codes.
#[inline]
pub fn dot_codes(q: &[f32], codes: &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { dot_codes_avx2(q, codes) };
    }
    dot_codes_portable(q, codes)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static STATE: AtomicU8 = AtomicU8::new(0);
    match STATE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            STATE.store(if yes { 1 } else { 2 }, Ordering::Relaxed);
            yes
        }
    }
}

macro_rules! kernels {
    ($l2:ident, $dot:ident, $l2c:ident, $dotc:ident) => {
        #[inline(always)]
        fn $l2(a: &[f32], b: &[f32]) -> f32 {
            let n = a.len().min(b.len());
            let (a, b) = (&a[..n], &b[..n]);
            let mut acc = [0f32; 8];
            let chunks = n / 8;
            for c in 0..chunks {
                let x = &a[c * 8..c * 8 + 8];
                let y = &b[c * 8..c * 8 + 8];
                for i in 0..8 {
                    let d = x[i] - y[i];
                    acc[i] = d.mul_add(d, acc[i]);
                }
            }
            let mut sum = acc.iter().sum::<f32>();
            for i in chunks * 8..n {
                let d = a[i] - b[i];
                sum += d * d;
            }
            sum
        }

        #[inline(always)]
        fn $dot(a: &[f32], b: &[f32]) -> f32 {
            let n = a.len().min(b.len());
            let (a, b) = (&a[..n], &b[..n]);
            let mut acc = [0f32; 8];
            let chunks = n / 8;
            for c in 0..chunks {
                let x = &a[c * 8..c * 8 + 8];
                let y = &b[c * 8..c * 8 + 8];
                for i in 0..8 {
                    acc[i] = x[i].mul_add(y[i], acc[i]);
                }
            }
            let mut sum = acc.iter().sum::<f32>();
            for i in chunks * 8..n {
                sum += a[i] * b[i];
            }
            sum
        }

        #[inline(always)]
        fn $l2c(q: &[f32], w: &[f32], codes: &[u8]) -> f32 {
            let n = q.len().min(w.len()).min(codes.len());
            let (q, w, codes) = (&q[..n], &w[..n], &codes[..n]);
            let mut acc = [0f32; 8];
            let chunks = n / 8;
            for c in 0..chunks {
                let x = &q[c * 8..c * 8 + 8];
                let s = &w[c * 8..c * 8 + 8];
                let y = &codes[c * 8..c * 8 + 8];
                for i in 0..8 {
                    let d = x[i] - y[i] as f32;
                    acc[i] = (d * d).mul_add(s[i], acc[i]);
                }
            }
            let mut sum = acc.iter().sum::<f32>();
            for i in chunks * 8..n {
                let d = q[i] - codes[i] as f32;
                sum += d * d * w[i];
            }
            sum
        }

        #[inline(always)]
        fn $dotc(q: &[f32], codes: &[u8]) -> f32 {
            let n = q.len().min(codes.len());
            let (q, codes) = (&q[..n], &codes[..n]);
            let mut acc = [0f32; 8];
            let chunks = n / 8;
            for c in 0..chunks {
                let x = &q[c * 8..c * 8 + 8];
                let y = &codes[c * 8..c * 8 + 8];
                for i in 0..8 {
                    acc[i] = x[i].mul_add(y[i] as f32, acc[i]);
                }
            }
            let mut sum = acc.iter().sum::<f32>();
            for i in chunks * 8..n {
                sum += q[i] * codes[i] as f32;
            }
            sum
        }
    };
}

kernels!(
    l2_sq_portable,
    dot_portable,
    l2_sq_codes_portable,
    dot_codes_portable
);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    kernels!(l2_sq_inner, dot_inner, l2_sq_codes_inner, dot_codes_inner);

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn l2_sq_avx2(a: &[f32], b: &[f32]) -> f32 {
        l2_sq_inner(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        dot_inner(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn l2_sq_codes_avx2(q: &[f32], w: &[f32], c: &[u8]) -> f32 {
        l2_sq_codes_inner(q, w, c)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_codes_avx2(q: &[f32], c: &[u8]) -> f32 {
        dot_codes_inner(q, c)
    }
}
#[cfg(target_arch = "x86_64")]
use avx2::{dot_avx2, dot_codes_avx2, l2_sq_avx2, l2_sq_codes_avx2};

/// Normalises `v` to unit length in place (a zero vector is left as it is).
pub fn normalize(v: &mut [f32]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_l2(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    proptest! {
        #[test]
        fn should_match_naive_kernels(v in proptest::collection::vec((-100f32..100f32, -100f32..100f32, 0u8..=255), 0..70)) {
            let a: Vec<f32> = v.iter().map(|x| x.0).collect();
            let b: Vec<f32> = v.iter().map(|x| x.1).collect();
            let c: Vec<u8> = v.iter().map(|x| x.2).collect();
            let w: Vec<f32> = v.iter().map(|x| x.1.abs() / 10.0).collect();
            let tol = |x: f32| 1e-3 * (1.0 + x.abs());
            let l2 = naive_l2(&a, &b);
            prop_assert!((l2_sq(&a, &b) - l2).abs() <= tol(l2));
            prop_assert!((l2_sq_portable(&a, &b) - l2).abs() <= tol(l2));
            let d: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            prop_assert!((dot(&a, &b) - d).abs() <= tol(d) * 10.0);
            let lc: f32 = a.iter().zip(&c).zip(&w).map(|((x, y), w)| (x - *y as f32).powi(2) * w).sum();
            prop_assert!((l2_sq_codes(&a, &w, &c) - lc).abs() <= tol(lc) * 10.0);
            let dc: f32 = a.iter().zip(&c).map(|(x, y)| x * *y as f32).sum();
            prop_assert!((dot_codes(&a, &c) - dc).abs() <= tol(dc) * 10.0);
        }
    }
}
