//! Histogram chunks: a run of one series' native-histogram samples.
//!
//! A flush writes a series' histogram samples beside its float chunk, under the same
//! record type and key with one more byte, so one scan of a series' chunks finds both
//! (a flush's float chunk sorts just before its histogram chunk):
//!
//! ```text
//! key:   ┌──────┬──────┬──────┬───────────────┬──────┬──────────────────┬──────────────────┬──────┐
//!        │ 0x02 │ 0x01 │ 0x80 │ bucket u32 BE │ 0x20 │ series id u32 BE │ flush seq u64 BE │ 0x01 │
//!        └──────┴──────┴──────┴───────────────┴──────┴──────────────────┴──────────────────┴──────┘
//! value: ┌───────────────────────────┬──────────────┬─────────────────────────────────────┐
//!        │ 0x20 (version 2 hi 4, 0)   │ count LEB128 │ bit stream: timestamps, samples    │
//!        └───────────────────────────┴──────────────┴─────────────────────────────────────┘
//! ```
//!
//! The version nibble `2` tells a histogram chunk from a float chunk (version `1`).
//! Timestamps are coded as in float chunks (64 raw bits, then delta and
//! delta-of-deltas in signed buckets). Then, per sample:
//!
//! ```text
//! ┌─────────────┬──────────────┬─────────────────────────────┬──────────────┬───────────────────┬────────────┐
//! │ hint 2 bits │ layout 1 bit │ [layout, when the bit is 1] │ integral 1b  │ count, zero count, │ sum (XOR)  │
//! │             │ (1: changed) │                             │              │ bucket counts      │            │
//! └─────────────┴──────────────┴─────────────────────────────┴──────────────┴───────────────────┴────────────┘
//! layout: schema (signed) │ zero threshold (64 bits) │ custom bounds: n (signed), n × 64 bits │
//!         positive: n (signed), first index (signed), n-1 × (gap − 1) (signed) │ negative: the same
//! ```
//!
//! The layout (schema, zero threshold, custom bounds and which bucket indexes are
//! present) is written only when it differs from the previous sample's, which for a
//! steady histogram is never after the first. Counts are written per field (count,
//! zero count, each bucket in index order, positive then negative): when every count is
//! an integer below 2^53 (the integral bit), as the delta-of-delta against the same field
//! of the previous samples in a signed bucket, so a bucket that grows at a steady rate
//! costs one bit; otherwise as an XOR against the field's previous value (`0` when equal;
//! `1` + 6 bits of leading zeros + 6 bits of length − 1 + the meaningful bits). The sum is
//! always an XOR. The integral state and the per-field history restart when the layout
//! or the integral bit changes. Hints: 0 unknown, 1 counter reset, 2 not a reset, 3
//! gauge. Corrupt input is a [`DecodeError`], never a panic; lengths are bounded by
//! [`MAX_BUCKETS`].

use std::sync::Arc;

use bytes::Bytes;
use opendata_common::DecodeError;
use opendata_common::encoding::{get_leb128, put_leb128};

use super::bits::{BitReader, BitWriter};
use super::chunk::{get_series, get_signed, put_series, put_signed};
use super::{CHUNK, PREFIX};
use crate::histogram::{CounterResetHint, FloatHistogram, HistogramSample, MAX_BUCKETS};

/// The byte after the flush sequence that marks a histogram chunk's key.
pub const KEY_SUFFIX: u8 = 0x01;
const VERSION: u8 = 2;
const WHAT: &str = "histogram chunk";
/// Integers up to this are exact in an `f64`.
const MAX_INT: f64 = 9_007_199_254_740_992.0;

/// Key of the histogram chunk of series `id` in `bucket` written by flush `seq`.
pub fn key(bucket: u32, id: u32, seq: u64) -> Bytes {
    PREFIX
        .segmented(bucket, CHUNK)
        .u32(id)
        .u64(seq)
        .u8(KEY_SUFFIX)
        .build()
}

/// True when a chunk value is a histogram chunk.
pub fn is_histogram_chunk(value: &[u8]) -> bool {
    value.first().is_some_and(|h| h >> 4 == VERSION)
}

/// A decoded sample's layout.
struct Layout {
    schema: i32,
    zero_threshold_bits: u64,
    custom: Arc<[f64]>,
    positive: Vec<i32>,
    negative: Vec<i32>,
}

/// True when two histograms have the same layout (schema, zero threshold, custom
/// bounds and bucket indexes), compared without allocating.
fn same_layout(a: &FloatHistogram, b: &FloatHistogram) -> bool {
    let same_bounds = Arc::ptr_eq(&a.custom_values, &b.custom_values)
        || (a.custom_values.len() == b.custom_values.len()
            && a.custom_values
                .iter()
                .zip(b.custom_values.iter())
                .all(|(x, y)| x.to_bits() == y.to_bits()));
    a.schema == b.schema
        && a.zero_threshold.to_bits() == b.zero_threshold.to_bits()
        && same_bounds
        && a.positive.len() == b.positive.len()
        && a.negative.len() == b.negative.len()
        && a.positive.iter().zip(&b.positive).all(|(x, y)| x.0 == y.0)
        && a.negative.iter().zip(&b.negative).all(|(x, y)| x.0 == y.0)
}

impl Layout {
    fn fields(&self) -> usize {
        2 + self.positive.len() + self.negative.len()
    }
}

fn fields_of(h: &FloatHistogram) -> impl Iterator<Item = f64> + '_ {
    [h.count, h.zero_count]
        .into_iter()
        .chain(h.positive.iter().map(|b| b.1))
        .chain(h.negative.iter().map(|b| b.1))
}

fn integral(v: f64) -> bool {
    v.is_finite() && v.fract() == 0.0 && v.abs() < MAX_INT && !(v == 0.0 && v.is_sign_negative())
}

fn put_indexes(w: &mut BitWriter, idx: &[i32]) {
    put_signed(w, idx.len() as i64);
    let mut prev = 0i64;
    for (k, &i) in idx.iter().enumerate() {
        if k == 0 {
            put_signed(w, i as i64);
        } else {
            put_signed(w, i as i64 - prev - 1);
        }
        prev = i as i64;
    }
}

fn get_len(r: &mut BitReader<'_>) -> Result<usize, DecodeError> {
    let n = get_signed(r)?;
    if !(0..=MAX_BUCKETS as i64).contains(&n) {
        return Err(DecodeError::new(WHAT, format!("bad length {n}")));
    }
    Ok(n as usize)
}

fn get_indexes(r: &mut BitReader<'_>) -> Result<Vec<i32>, DecodeError> {
    let n = get_len(r)?;
    let mut out = Vec::with_capacity(n);
    let mut prev = 0i64;
    for k in 0..n {
        let v = if k == 0 {
            get_signed(r)?
        } else {
            prev.checked_add(get_signed(r)?)
                .and_then(|x| x.checked_add(1))
                .ok_or_else(|| DecodeError::new(WHAT, "bucket index overflows"))?
        };
        let i =
            i32::try_from(v).map_err(|_| DecodeError::new(WHAT, "bucket index out of range"))?;
        out.push(i);
        prev = v;
    }
    Ok(out)
}

fn put_xor(w: &mut BitWriter, prev: u64, bits: u64) {
    let x = prev ^ bits;
    if x == 0 {
        w.bit(false);
        return;
    }
    w.bit(true);
    let leading = x.leading_zeros().min(63);
    let trailing = x.trailing_zeros();
    let len = 64 - leading - trailing;
    w.write(u64::from(leading), 6);
    w.write(u64::from(len - 1), 6);
    w.write(x >> trailing, len);
}

fn get_xor(r: &mut BitReader<'_>, prev: u64) -> Result<u64, DecodeError> {
    if !r.bit()? {
        return Ok(prev);
    }
    let leading = r.read(6)? as u32;
    let len = r.read(6)? as u32 + 1;
    if leading + len > 64 {
        return Err(DecodeError::new(WHAT, "XOR window exceeds 64 bits"));
    }
    let trailing = 64 - leading - len;
    Ok(prev ^ (r.read(len)? << trailing))
}

/// Per-field history for the count coding.
#[derive(Default)]
struct History {
    integral: bool,
    /// Previous values (as integers when integral, else as f64 bits).
    prev: Vec<i64>,
    prev_delta: Vec<i64>,
    fresh: bool,
}

impl History {
    fn reset(&mut self, fields: usize, integral: bool) {
        self.integral = integral;
        self.prev = vec![0; fields];
        self.prev_delta = vec![0; fields];
        self.fresh = true;
    }
}

/// Encodes histogram samples (sorted by timestamp, one per timestamp).
pub fn encode(samples: &[HistogramSample]) -> Vec<u8> {
    let mut w = BitWriter::new();
    put_series(&mut w, samples.iter().map(|s| s.timestamp_ms));
    let mut prev: Option<&FloatHistogram> = None;
    let mut hist = History::default();
    let mut prev_sum = 0u64;
    let indexes = |b: &[(i32, f64)]| -> Vec<i32> { b.iter().map(|x| x.0).collect() };
    for s in samples {
        let h = &s.histogram;
        w.write(h.counter_reset_hint.to_wire() as u64, 2);
        let changed = prev.is_none_or(|p| !same_layout(p, h));
        w.bit(changed);
        if changed {
            put_signed(&mut w, h.schema as i64);
            w.write(h.zero_threshold.to_bits(), 64);
            put_signed(&mut w, h.custom_values.len() as i64);
            for v in h.custom_values.iter() {
                w.write(v.to_bits(), 64);
            }
            put_indexes(&mut w, &indexes(&h.positive));
            put_indexes(&mut w, &indexes(&h.negative));
        }
        let is_integral = fields_of(h).all(integral);
        w.bit(is_integral);
        if changed || is_integral != hist.integral {
            hist.reset(2 + h.positive.len() + h.negative.len(), is_integral);
        }
        for (k, v) in fields_of(h).enumerate() {
            if is_integral {
                let v = v as i64;
                let delta = v - hist.prev[k];
                if hist.fresh {
                    put_signed(&mut w, v);
                } else {
                    put_signed(&mut w, delta - hist.prev_delta[k]);
                    hist.prev_delta[k] = delta;
                }
                hist.prev[k] = v;
            } else {
                let bits = v.to_bits();
                put_xor(&mut w, hist.prev[k] as u64, bits);
                hist.prev[k] = bits as i64;
            }
        }
        hist.fresh = false;
        put_xor(&mut w, prev_sum, h.sum.to_bits());
        prev_sum = h.sum.to_bits();
        prev = Some(h);
    }
    let body = w.finish();
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(VERSION << 4);
    put_leb128(&mut out, samples.len() as u64);
    out.extend_from_slice(&body);
    out
}

/// Decodes a histogram chunk.
pub fn decode(bytes: &[u8]) -> Result<Vec<HistogramSample>, DecodeError> {
    let header = *bytes.first().ok_or_else(|| DecodeError::truncated(WHAT))?;
    if header != VERSION << 4 {
        return Err(DecodeError::new(
            WHAT,
            format!("unknown header {header:#04x}"),
        ));
    }
    let mut pos = 1;
    let count = get_leb128(bytes, &mut pos)?;
    let body = &bytes[pos..];
    // Every sample takes at least 5 bits (hint, layout, integral, sum).
    if count > body.len() as u64 * 2 + 1 {
        return Err(DecodeError::new(WHAT, "count exceeds the size"));
    }
    let count = count as usize;
    if count == 0 {
        return Ok(Vec::new());
    }
    let mut r = BitReader::new(body);
    let timestamps = get_series(&mut r, count)?;
    let mut out = Vec::with_capacity(count);
    let mut layout: Option<Layout> = None;
    let mut hist = History::default();
    let mut prev_sum = 0u64;
    for timestamp_ms in timestamps {
        let hint = CounterResetHint::from_wire(r.read(2)? as i32);
        let changed = r.bit()?;
        if changed {
            let schema = i32::try_from(get_signed(&mut r)?)
                .map_err(|_| DecodeError::new(WHAT, "schema out of range"))?;
            let zero_threshold_bits = r.read(64)?;
            let n = get_len(&mut r)?;
            let mut custom = Vec::with_capacity(n);
            for _ in 0..n {
                custom.push(f64::from_bits(r.read(64)?));
            }
            let positive = get_indexes(&mut r)?;
            let negative = get_indexes(&mut r)?;
            layout = Some(Layout {
                schema,
                zero_threshold_bits,
                custom: Arc::from(custom),
                positive,
                negative,
            });
        }
        let l = layout
            .as_ref()
            .ok_or_else(|| DecodeError::new(WHAT, "the first sample has no layout"))?;
        let is_integral = r.bit()?;
        if changed || is_integral != hist.integral {
            hist.reset(l.fields(), is_integral);
        }
        let mut values = Vec::with_capacity(l.fields());
        for k in 0..l.fields() {
            if is_integral {
                let v = if hist.fresh {
                    get_signed(&mut r)?
                } else {
                    let delta = hist.prev_delta[k].wrapping_add(get_signed(&mut r)?);
                    hist.prev_delta[k] = delta;
                    hist.prev[k].wrapping_add(delta)
                };
                hist.prev[k] = v;
                values.push(v as f64);
            } else {
                let bits = get_xor(&mut r, hist.prev[k] as u64)?;
                hist.prev[k] = bits as i64;
                values.push(f64::from_bits(bits));
            }
        }
        hist.fresh = false;
        prev_sum = get_xor(&mut r, prev_sum)?;
        let np = l.positive.len();
        out.push(HistogramSample {
            timestamp_ms,
            histogram: Arc::new(FloatHistogram {
                counter_reset_hint: hint,
                schema: l.schema,
                zero_threshold: f64::from_bits(l.zero_threshold_bits),
                count: values[0],
                zero_count: values[1],
                sum: f64::from_bits(prev_sum),
                positive: l
                    .positive
                    .iter()
                    .copied()
                    .zip(values[2..2 + np].iter().copied())
                    .collect(),
                negative: l
                    .negative
                    .iter()
                    .copied()
                    .zip(values[2 + np..].iter().copied())
                    .collect(),
                custom_values: l.custom.clone(),
            }),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_hist() -> impl Strategy<Value = FloatHistogram> {
        (
            0..4i32,
            prop_oneof![Just(-53), -4..=8i32],
            prop_oneof![Just(0.0), Just(0.001), any::<f64>()],
            proptest::collection::btree_map(
                -20i32..20,
                prop_oneof![(0u32..1000).prop_map(f64::from), any::<f64>()],
                0..6,
            ),
            proptest::collection::btree_map(-20i32..20, (0u32..1000).prop_map(f64::from), 0..4),
            prop_oneof![(0u32..100000).prop_map(f64::from), any::<f64>()],
            any::<f64>(),
        )
            .prop_map(|(hint, schema, zt, pos, neg, count, sum)| FloatHistogram {
                counter_reset_hint: CounterResetHint::from_wire(hint),
                schema,
                zero_threshold: zt,
                zero_count: count / 2.0,
                count,
                sum,
                positive: pos.into_iter().collect(),
                negative: neg.into_iter().collect(),
                custom_values: if schema == -53 {
                    Arc::from(vec![1.0, 2.5, 10.0])
                } else {
                    Arc::from(Vec::new())
                },
            })
    }

    fn bits(s: &[HistogramSample]) -> Vec<String> {
        // Compare bit-exact through Debug of the bit patterns.
        s.iter()
            .map(|x| {
                let h = &x.histogram;
                let f = |v: f64| v.to_bits();
                format!(
                    "{} {:?} {} {} {} {} {} {:?} {:?} {:?}",
                    x.timestamp_ms,
                    h.counter_reset_hint,
                    h.schema,
                    f(h.zero_threshold),
                    f(h.zero_count),
                    f(h.count),
                    f(h.sum),
                    h.positive.iter().map(|b| (b.0, f(b.1))).collect::<Vec<_>>(),
                    h.negative.iter().map(|b| (b.0, f(b.1))).collect::<Vec<_>>(),
                    h.custom_values.iter().map(|v| f(*v)).collect::<Vec<_>>(),
                )
            })
            .collect()
    }

    proptest! {
        #[test]
        fn should_round_trip_histogram_chunks(hs in proptest::collection::vec(arb_hist(), 0..12), start in -1_000_000i64..1_000_000) {
            let samples: Vec<HistogramSample> = hs
                .into_iter()
                .enumerate()
                .map(|(i, h)| HistogramSample { timestamp_ms: start + i as i64 * 15_000, histogram: Arc::new(h) })
                .collect();
            let enc = encode(&samples);
            prop_assert!(is_histogram_chunk(&enc));
            let dec = decode(&enc).unwrap();
            prop_assert_eq!(bits(&dec), bits(&samples));
        }

        #[test]
        fn should_not_panic_on_arbitrary_histogram_chunk_bytes(mut bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            if let Some(b) = bytes.first_mut() { *b = VERSION << 4; }
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn should_code_a_steady_histogram_in_a_few_bits_per_bucket() {
        let samples: Vec<HistogramSample> = (0..120)
            .map(|i| {
                let positive: Vec<(i32, f64)> =
                    (0..30).map(|b| (b, (i * (b + 1)) as f64)).collect();
                let count = positive.iter().map(|b| b.1).sum();
                HistogramSample {
                    timestamp_ms: i as i64 * 15_000,
                    histogram: Arc::new(FloatHistogram {
                        schema: 3,
                        zero_threshold: 1e-128,
                        count,
                        sum: i as f64 * 12.5,
                        positive,
                        ..Default::default()
                    }),
                }
            })
            .collect();
        let enc = encode(&samples);
        // 120 samples × 32 fields: well under a byte per field.
        assert!(enc.len() < 120 * 32 / 4, "{} bytes", enc.len());
        assert_eq!(decode(&enc).unwrap(), samples);
    }

    #[test]
    fn should_tell_histogram_keys_from_float_chunk_keys() {
        let k = key(7, 9, 11);
        assert_eq!(super::super::chunk::decode_key(&k).unwrap(), (9, 11));
        let f = super::super::chunk::key(7, 9, 11);
        assert!(f < k && k < super::super::chunk::key(7, 9, 12));
    }
}
